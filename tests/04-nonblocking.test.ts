/**
 * 04-nonblocking.ts: the shared suite, plus the lesson of 「单线程非阻塞」: the loop polls
 * non-blocking sockets, and "nothing yet" really comes back as EAGAIN from accept() and recv()
 * (counted in the --verbose summary); a half-sent request holds up nobody; a long --interval
 * makes answers slow, never wrong; and a bad --interval is refused with one line.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { $ } from 'zx';
import { describeModel } from './helpers/model-suite.ts';
import { assertClosesGentlyAfterA431 } from './helpers/gentle-close.ts';
import { GET, RawClient } from './helpers/http-client.ts';
import { REPO_ROOT, startModel, waitUntil } from './helpers/server.ts';

const WWW = path.join(REPO_ROOT, 'www');
const SUMMARY = /last [\d.]+ s: (\d+) passes, (\d+) accept\(\) EAGAIN, (\d+) recv\(\) EAGAIN/g;

describeModel('04-nonblocking.ts', {
  lessons({ server, site }) {
    test('closing after a 431 while the client still sends: a FIN after the whole answer, never a reset', async () => {
      await assertClosesGentlyAfterA431(server().port);
    });

    test('--verbose counts the polling: accept() and recv() answer EAGAIN; with --interval 300 answers are still exact', async (t) => {
      const model = await startModel(t, '04-nonblocking.ts', {
        args: ['--root', site().root, '--verbose', '--interval', '300', '--idle-timeout', '60'],
      });
      // One connected client that says nothing: every pass asks it, and it has nothing yet.
      const quiet = await RawClient.connect(model.port);
      try {
        const summaries = () => [...model.output().matchAll(SUMMARY)];
        // A summary of a second in which the quiet client was connected all along.
        await model.waitForOutput(/client \S+ online/);
        // The first summary after that may cover a second it was connected for only in part, so
        // wait for the one after it. A summary is due every second; the bound is for a busy machine.
        const start = summaries().length;
        await waitUntil(() => summaries().length >= start + 2, 30_000);
        const later = summaries().slice(start + 1);
        assert.ok(later.length > 0, `no summary line in:\n${model.output()}`);
        for (const [line, passes, acceptEagains, recvEagains] of later) {
          assert.ok(Number(passes) > 0, line);
          assert.ok(Number(acceptEagains) > 0, `accept() found nobody queued on most passes: ${line}`);
          assert.ok(Number(recvEagains) > 0, `recv() on the quiet client said EAGAIN: ${line}`);
        }

        // Slow polling delays the answers but does not change them, pipelined ones included.
        await quiet.send(GET('/') + GET('/hello.txt') + GET('/missing'));
        const index = await quiet.readResponse();
        assert.equal(index.status, 200);
        assert.deepEqual(index.body, readFileSync(path.join(WWW, 'index.html')));
        const hello = await quiet.readResponse();
        assert.deepEqual(hello.body, readFileSync(path.join(WWW, 'hello.txt')));
        assert.equal((await quiet.readResponse()).status, 404);
      } finally {
        quiet.close();
      }
    });

    test('a bad --interval exits with code 2 and one line', async () => {
      const values = ['fast', '0', '99999'];
      const results = await Promise.all(
        values.map((value) => $({ cwd: REPO_ROOT, nothrow: true, quiet: true })`npx tsx 04-nonblocking.ts --port 0 --interval ${value}`),
      );
      for (const [i, result] of results.entries()) {
        assert.equal(result.exitCode, 2, `--interval ${values[i]}`);
        const lines = result.stderr.trim().split('\n');
        assert.equal(lines.length, 1, result.stderr);
        assert.match(lines[0]!, /--interval/);
        assert.equal(result.stdout, '', 'no server was started');
      }
    });
  },
});
