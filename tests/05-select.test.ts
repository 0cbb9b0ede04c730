/**
 * 05-select.ts: the shared suite, plus the lesson of 「select高并发」: select() cannot watch a
 * descriptor of 1024 or more (FD_SETSIZE). Where the article's Python dies, the model answers
 * such a connection with a 503, closes it, says why in one log line, and keeps serving the rest.
 * Also: a half-sent request holds up nobody.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describeModel } from './helpers/model-suite.ts';
import { assertClosesGentlyAfterA431 } from './helpers/gentle-close.ts';
import { openFdCount } from './helpers/proc.ts';
import { GET, openIdleConnections, rawExchange } from './helpers/http-client.ts';
import { REPO_ROOT, startModel, waitUntil } from './helpers/server.ts';

const WWW = path.join(REPO_ROOT, 'www');

describeModel('05-select.ts', {
  lessons({ server, site }) {
    test('closing after a 431 while the client still sends: a FIN after the whole answer, never a reset', async () => {
      await assertClosesGentlyAfterA431(server().port);
    });

    test('past FD_SETSIZE (1024) a connection gets a 503 and is closed; the others are still served', async (t) => {
      // A server of its own, with an idle timeout long enough to hold the crowd through the test.
      const model = await startModel(t, '05-select.ts', { args: ['--root', site().root, '--idle-timeout', '120'] });
      const before = openFdCount(model.pid);
      const crowd = await openIdleConnections(model.port, 1100);
      try {
        // Every connection is either held (its descriptor fits in an fd_set) or turned away.
        const turnedAway = () => crowd.filter((client) => client.pending.length > 0);
        const settled = () => openFdCount(model.pid) - before + turnedAway().length >= 1100;
        assert.ok(await waitUntil(settled, 15_000), 'the server took or refused every connection');

        const refused = turnedAway();
        assert.ok(refused.length > 0, 'some connections got descriptors of 1024 or more');
        assert.ok(refused.length < 1100 - 900, `${refused.length} refused: only those past the limit should be`);
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
  },
});
