/**
 * 03-coroutine.ts: the shared suite, plus the lessons of one coroutine per connection:
 * many clients cost no process and no thread, a slow reader parks only its own coroutine
 * (backpressure keeps the server's memory flat), and a client that leaves mid-download
 * releases its file descriptor and is logged once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describeModel } from './helpers/model-suite.ts';
import { assertClosesGentlyAfterA431 } from './helpers/gentle-close.ts';
import { descriptorsFrom, residentBytes, threadCount } from './helpers/proc.ts';
import { GET, RawClient, rawExchange } from './helpers/http-client.ts';
import { processTree, waitUntil } from './helpers/server.ts';

/** How many descriptors of `pid` point at `file` (by its path). */
const descriptorsOpenOn = (pid: number, file: string): number =>
  [...descriptorsFrom(pid).values()].filter((target) => target.endsWith(file)).length;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describeModel('03-coroutine.ts', {
  // node:net lets libuv accept; see the 'error' handler in 03-coroutine.ts.
  emfile: 'closed-by-libuv',
  lessons({ server, site }) {
    test('closing after a 431 while the client still sends: a FIN after the whole answer, never a reset', async () => {
      await assertClosesGentlyAfterA431(server().port);
    });

    test('40 clients at once are served by one process with no new threads', async () => {
      const { pid, port } = server();
      const threadsBefore = threadCount(pid);
      const treeBefore = processTree(pid); // tsx may have an esbuild helper running: not ours
      const clients = await Promise.all(Array.from({ length: 40 }, () => RawClient.connect(port)));
      try {
        await Promise.all(clients.map((client) => client.send(GET('/hello.txt'))));
        const statuses = await Promise.all(clients.map(async (client) => (await client.readResponse()).status));
        assert.deepEqual(new Set(statuses), new Set([200]));
        // Every connection is still open (keep-alive), and all of them live in this one process.
        assert.deepEqual(processTree(pid), treeBefore, 'a coroutine must not cost a process');
        assert.equal(threadCount(pid), threadsBefore, 'a coroutine must not cost a thread');
      } finally {
        for (const client of clients) client.close();
      }
    });

    test('slow readers of a large file park only their own coroutine: memory stays flat', async () => {
      const { pid, port } = server();
      const big = site().bigFile;
      const readers = await Promise.all(Array.from({ length: 3 }, () => RawClient.connect(port)));
      try {
        const before = residentBytes(pid);
        for (const reader of readers) {
          reader.socket.pause(); // read nothing for now
          await reader.send(GET(big.urlPath));
        }
        await sleep(1500);
        // Without backpressure each coroutine would read its whole file into the socket's
        // queue: 3 x 24 MiB. With it, each holds about one piece.
        const grown = residentBytes(pid) - before;
        assert.ok(grown < 24 * 1024 * 1024, `the server grew by ${(grown / 2 ** 20).toFixed(1)} MiB for 3 stalled readers`);
        // Everybody else is still served meanwhile.
        assert.equal((await rawExchange(port, GET('/hello.txt'))).status, 200);

        // Once a reader reads again, its coroutine resumes and the file arrives intact.
        const first = readers[0]!;
        first.socket.resume();
        const response = await first.readResponse({ timeoutMs: 20_000 });
        assert.equal(response.status, 200);
        assert.equal(createHash('sha256').update(response.body).digest('hex'), big.sha256);
      } finally {
        for (const reader of readers) reader.close();
      }
    });

    test('a client that pipelines requests but reads no answers: the server stops reading from it, memory stays flat', async () => {
      const { pid, port } = server();
      const flooder = await RawClient.connect(port);
      try {
        const before = residentBytes(pid);
        flooder.socket.pause(); // never read an answer
        // 48 MiB of requests. The coroutine answers until its socket is full, then waits for
        // 'drain'; what keeps arriving meanwhile must stay in the kernel (pause()), not pile
        // up in the server's memory.
        const request = 'GET /hello.txt HTTP/1.1\r\nHost: test\r\n\r\n';
        flooder.socket.write(Buffer.from(request.repeat(Math.ceil((48 * 2 ** 20) / request.length)), 'latin1'));
        await sleep(1500);
        const grown = residentBytes(pid) - before;
        assert.ok(grown < 24 * 1024 * 1024, `the server grew by ${(grown / 2 ** 20).toFixed(1)} MiB for one client that does not read`);
        assert.ok(flooder.socket.writableLength > 0, 'the server read the whole flood: nothing held it back');
        // Everybody else is still served meanwhile.
        assert.equal((await rawExchange(port, GET('/hello.txt'))).status, 200);
      } finally {
        flooder.close();
      }
    });

    test('a client that resets mid-download releases the file descriptor and is logged once', async () => {
      const { pid, port, output } = server();
      const big = site().bigFile;
      // The earlier tests' downloads (finished, stalled, vanished) have all released the file.
      assert.ok(await waitUntil(() => descriptorsOpenOn(pid, 'big.bin') === 0, 5000), 'an earlier download left the file open');
      const client = await RawClient.connect(port);
      const clientPort = client.socket.localPort!;
      // Only what is logged from now on: an earlier test's client may have had the same port.
      const logBefore = output().length;
      client.socket.pause();
      await client.send(GET(big.urlPath));
      assert.ok(await waitUntil(() => descriptorsOpenOn(pid, 'big.bin') === 1, 5000), 'the file is open while it is sent');
      client.socket.resetAndDestroy();

      assert.ok(await waitUntil(() => descriptorsOpenOn(pid, 'big.bin') === 0, 5000), 'the file descriptor was not closed');
      const mentions = () => output().slice(logBefore).split('\n').filter((line) => line.includes(`:${clientPort} `));
      await waitUntil(() => mentions().length > 0, 5000);
      await sleep(300);
      assert.equal(mentions().length, 1, `expected one log line, got:\n${mentions().join('\n')}`);
      assert.match(mentions()[0]!, /reset|EPIPE|ECONNRESET/);
    });
  },
});
