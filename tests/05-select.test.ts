/**
 * 05-select.ts: the shared suite, plus the lesson of 「select高并发」: select() cannot watch a
 * descriptor of 1024 or more (FD_SETSIZE). Where the article's Python dies, the model answers
 * such a connection with a 503, closes it, says why in one log line, and keeps serving the rest.
 * The limit is on each socket's number, not on how many descriptors the process holds: a socket
 * opened early keeps a small number and is still served while the process holds descriptors of
 * 1024 and more. Also: a half-sent request holds up nobody.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describeModel } from './helpers/model-suite.ts';
import { assertClosesGentlyAfterA431 } from './helpers/gentle-close.ts';
import { descriptorsFrom, lowestFreeFd, openFdCount } from './helpers/proc.ts';
import { GET, RawClient, openIdleConnections, rawExchange } from './helpers/http-client.ts';
import { REPO_ROOT, startModel, waitUntil, type RunningServer } from './helpers/server.ts';

const WWW = path.join(REPO_ROOT, 'www');

/** More connections than descriptor numbers below FD_SETSIZE. */
const CROWD = 1100;

/**
 * Open CROWD idle connections to `model` and wait until each one is either held (its descriptor
 * fits in an fd_set) or turned away with a 503. `before`: the server's descriptor count before.
 */
async function crowdPastTheLimit(model: RunningServer) {
  const before = openFdCount(model.pid);
  const crowd = await openIdleConnections(model.port, CROWD);
  const turnedAway = () => crowd.filter((client) => client.pending.length > 0);
  const settled = () => openFdCount(model.pid) - before + turnedAway().length >= CROWD;
  if (!(await waitUntil(settled, 15_000))) {
    for (const client of crowd) client.close();
    assert.fail('the server took or refused every connection');
  }
  return { crowd, turnedAway, before };
}

describeModel('05-select.ts', {
  lessons({ server, site }) {
    test('closing after a 431 while the client still sends: a FIN after the whole answer, never a reset', async () => {
      await assertClosesGentlyAfterA431(server().port);
    });

    test('past FD_SETSIZE (1024) a connection gets a 503 and is closed; the others are still served', async (t) => {
      // A server of its own, with an idle timeout long enough to hold the crowd through the test.
      const model = await startModel(t, '05-select.ts', { args: ['--root', site().root, '--idle-timeout', '120'] });
      const { crowd, turnedAway, before } = await crowdPastTheLimit(model);
      try {
        const refused = turnedAway();
        assert.ok(refused.length > 0, 'some connections got descriptors of 1024 or more');
        assert.ok(refused.length < CROWD - 900, `${refused.length} refused: only those past the limit should be`);
        for (const client of refused) {
          const response = await client.readResponse();
          assert.equal(response.status, 503);
          assert.equal(response.headers['connection'], 'close');
          assert.equal(Number(response.headers['content-length']), response.body.length);
          assert.equal(await client.closedByServer(), true, 'a refused connection is closed');
        }
        assert.ok(openFdCount(model.pid) < 1024 + 5, 'no descriptor past the limit is kept');
        await model.waitForOutput(/503.*FD_SETSIZE = 1024/, 5000);

        // The connections that fit are served normally, the first ones as well as the last.
        const held = crowd.filter((client) => !refused.includes(client));
        for (const client of [held[0]!, held[held.length - 1]!]) {
          await client.send(GET('/'));
          const response = await client.readResponse();
          assert.equal(response.status, 200);
          assert.deepEqual(response.body, readFileSync(path.join(WWW, 'index.html')));
        }
      } finally {
        for (const client of crowd) client.close();
      }
      // Once the crowd is gone, a newcomer fits again.
      assert.ok(await waitUntil(() => openFdCount(model.pid) <= before + 5, 15_000), 'the crowd\'s descriptors are released');
      const response = await rawExchange(model.port, GET('/hello.txt'));
      assert.equal(response.status, 200);
      assert.deepEqual(response.body, readFileSync(path.join(WWW, 'hello.txt')));
    });

    test('descriptors of 1024 and more in the process do not stop it watching a socket with a small number', async (t) => {
      const model = await startModel(t, '05-select.ts', { args: ['--root', site().root, '--idle-timeout', '120'] });
      // A new descriptor takes the lowest free number: the first client gets a small one.
      const firstFd = lowestFreeFd(model.pid);
      const first = await RawClient.connect(model.port);
      try {
        await first.send(GET('/hello.txt'));
        assert.equal((await first.readResponse()).status, 200);
        assert.match(descriptorsFrom(model.pid, firstFd).get(firstFd) ?? '', /^socket:/, `the first client is on fd ${firstFd}`);

        const { crowd, turnedAway } = await crowdPastTheLimit(model);
        try {
          assert.ok(lowestFreeFd(model.pid) >= 1024, 'every descriptor number below 1024 is taken');

          // One of the earliest clients asks for the large file and reads nothing: the response keeps
          // the file open in the server, on descriptor 1024 or above, opened after first's socket.
          const slowReader = crowd[0]!;
          assert.equal(turnedAway().includes(slowReader), false);
          slowReader.socket.pause();
          await slowReader.send(GET(site().bigFile.urlPath));
          const highFiles = () => [...descriptorsFrom(model.pid, 1024).values()].filter((target) => target.endsWith('/big.bin'));
          assert.ok(await waitUntil(() => highFiles().length === 1, 10_000), 'the server holds the large file open on a descriptor above 1023');

          // The first client, on its existing connection: still watched, still served.
          await first.send(GET('/hello.txt'));
          const response = await first.readResponse();
          assert.equal(response.status, 200);
          assert.deepEqual(response.body, readFileSync(path.join(WWW, 'hello.txt')));
          assert.equal(highFiles().length, 1, 'the descriptor above 1023 was open all along');

          // A newcomer's descriptor is past the limit: that one is turned away.
          assert.equal((await rawExchange(model.port, GET('/hello.txt'))).status, 503);
        } finally {
          for (const client of crowd) client.close();
        }
      } finally {
        first.close();
      }
    });
  },
});
