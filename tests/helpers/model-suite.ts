/**
 * The behaviour every model must share, as one suite that each tests/0N-*.test.ts runs against
 * its own file: exact bytes, 404 with Content-Length, keep-alive, pipelining, split requests,
 * HEAD, big files, byte ranges, vanished and stalled clients, garbage, oversized heads, descriptor
 * exhaustion, and a clean stop on Ctrl+C. Each model's own lesson tests go in `lessons`.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import path from 'node:path';
import fetch from 'node-fetch';
import { $ } from 'zx';
import { GET, RawClient, fetchWithKeepAlive, rawExchange } from './http-client.ts';
import { makeServedRoot, type ServedRoot } from './served-root.ts';
import { cpuTicks, lowestFreeFd } from './proc.ts';
import { REPO_ROOT, isAlive, processTree, startModel, type RunningServer } from './server.ts';

export interface SuiteContext {
  server(): RunningServer;
  site(): ServedRoot;
}

export interface ModelSuiteOptions {
  /** Extra command-line flags for this model. */
  args?: string[];
  /**
   * How the model meets EMFILE (no descriptor left for accept). 'paused' (the default): it
   * calls accept() itself, logs EMFILE, pauses accepting, and serves the waiting clients once
   * descriptors are back. 'closed-by-libuv': node:net leaves accept() to libuv, which closes
   * waiting connections at once to shed the load (its "EMFILE trick") and never tells
   * JavaScript, so there is nothing to log; the clients must see a closed connection, never
   * silence. 'paused-or-refused': a model blocked inside accept() had reserved its descriptor
   * number before the limit fell, so it gets one more connection and then has no descriptor to
   * serve it with: such clients get a complete 503 instead.
   */
  emfile?: 'paused' | 'paused-or-refused' | 'closed-by-libuv';
  /** The model's own lesson tests; they run after the shared ones, before the stop test. */
  lessons?: (context: SuiteContext) => void;
  /** Skip the whole suite, with this reason (07 where io_uring is refused: its one-line refusal). */
  skip?: string;
}

const WWW = path.join(REPO_ROOT, 'www');

/** Bytes [from, to) of a file, read at that offset. */
function bytesOfFile(file: string, from: number, to: number): Buffer {
  const bytes = Buffer.alloc(to - from);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, bytes, 0, bytes.length, from);
  } finally {
    closeSync(fd);
  }
  return bytes;
}

export function describeModel(file: string, options: ModelSuiteOptions = {}): void {
  describe(file, { skip: options.skip ?? false }, () => {
    let server: RunningServer;
    let site: ServedRoot;
    const context: SuiteContext = { server: () => server, site: () => site };

    before(async () => {
      site = makeServedRoot();
      server = await startModel(null, file, { args: ['--root', site.root, '--idle-timeout', '3', ...(options.args ?? [])] });
    });
    after(async () => {
      await server?.stop().catch(() => undefined);
      site?.remove();
    });

    test('GET / answers 200 with the exact bytes of www/index.html', async () => {
      const response = await fetch(server.url);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('content-type'), 'text/html; charset=utf-8');
      const body = Buffer.from(await response.arrayBuffer());
      assert.deepEqual(body, readFileSync(path.join(WWW, 'index.html')));
      assert.equal(response.headers.get('content-length'), String(body.length));
    });

    test('GET /hello.txt answers the exact bytes', async () => {
      const response = await rawExchange(server.port, GET('/hello.txt'));
      assert.equal(response.status, 200);
      assert.deepEqual(response.body, readFileSync(path.join(WWW, 'hello.txt')));
    });

    test('a missing file is a 404 with Content-Length, and the connection stays open', async () => {
      const client = await RawClient.connect(server.port);
      try {
        await client.send(GET('/no-such-page.html'));
        const missing = await client.readResponse();
        assert.equal(missing.status, 404);
        assert.equal(Number(missing.headers['content-length']), missing.body.length);
        assert.ok(missing.body.length > 0);
        await client.send(GET('/hello.txt'));
        assert.equal((await client.readResponse()).status, 200);
      } finally {
        client.close();
      }
    });

    test('keep-alive: two fetches reuse one TCP connection', async () => {
      const result = await fetchWithKeepAlive(server.url, ['/', '/hello.txt']);
      assert.deepEqual(result.statuses, [200, 200]);
      assert.deepEqual(result.connectionHeaders, ['keep-alive', 'keep-alive']);
      assert.equal(result.connectionsOpened, 1);
    });

    test('pipelining: three requests in one write get three answers, in order', async () => {
      const client = await RawClient.connect(server.port);
      try {
        await client.send(GET('/hello.txt') + GET('/missing') + GET('/style.css'));
        const statuses = [];
        for (let i = 0; i < 3; i++) statuses.push((await client.readResponse()).status);
        assert.deepEqual(statuses, [200, 404, 200]);
      } finally {
        client.close();
      }
    });

    test('a request split across many small writes is assembled', async () => {
      const client = await RawClient.connect(server.port);
      try {
        const request = GET('/hello.txt');
        for (let i = 0; i < request.length; i += 7) {
          await client.send(request.slice(i, i + 7));
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
        const response = await client.readResponse();
        assert.equal(response.status, 200);
        assert.deepEqual(response.body, readFileSync(path.join(WWW, 'hello.txt')));
      } finally {
        client.close();
      }
    });

    test('HEAD sends the same headers as GET and no body', async () => {
      const client = await RawClient.connect(server.port);
      try {
        await client.send(`HEAD /hello.txt HTTP/1.1\r\nHost: test\r\n\r\n`);
        const head = await client.readResponse({ forHead: true });
        await client.send(GET('/hello.txt'));
        const get = await client.readResponse();
        assert.equal(head.status, 200);
        assert.equal(head.headers['content-length'], get.headers['content-length']);
        assert.equal(head.headers['etag'], get.headers['etag']);
        assert.equal(client.pending.length, 0, 'HEAD must not send body bytes');
      } finally {
        client.close();
      }
    });

    test('Connection: close is honoured: the server answers, then closes', async () => {
      const client = await RawClient.connect(server.port);
      try {
        await client.send(GET('/hello.txt', 'Connection: close\r\n'));
        const response = await client.readResponse();
        assert.equal(response.headers['connection'], 'close');
        assert.equal(await client.closedByServer(), true);
      } finally {
        client.close();
      }
    });

    test('a large file arrives intact, byte for byte', async () => {
      const response = await fetch(new URL(site.bigFile.urlPath, server.url));
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('content-length'), String(site.bigFile.size));
      const hash = createHash('sha256');
      for await (const chunk of response.body!) hash.update(chunk as Buffer);
      assert.equal(hash.digest('hex'), site.bigFile.sha256);
    });

    test('byte ranges of a small file: a-b, a- and -n give 206 with exactly those bytes', async () => {
      const hello = readFileSync(path.join(WWW, 'hello.txt'));
      const size = hello.length;
      const client = await RawClient.connect(server.port);
      try {
        await client.send(GET('/hello.txt'));
        assert.equal((await client.readResponse()).headers['accept-ranges'], 'bytes');
        const cases: [string, number, number][] = [['bytes=0-4', 0, 5], ['bytes=10-', 10, size], ['bytes=-7', size - 7, size]];
        for (const [range, from, to] of cases) {
          await client.send(GET('/hello.txt', `Range: ${range}\r\n`));
          const response = await client.readResponse();
          assert.equal(response.status, 206, range);
          assert.equal(response.headers['content-range'], `bytes ${from}-${to - 1}/${size}`);
          assert.deepEqual(response.body, hello.subarray(from, to), range);
        }
      } finally {
        client.close();
      }
    });

    test('byte ranges of the large file are sent from the right offset', async () => {
      const size = site.bigFile.size;
      const cases: [string, number, number][] = [
        ['bytes=10000000-11000122', 10_000_000, 11_000_123], // from the middle
        [`bytes=${size - 70_000}-`, size - 70_000, size], // to the end
        ['bytes=-123457', size - 123_457, size], // the last bytes
        ['bytes=0-0', 0, 1],
      ];
      const client = await RawClient.connect(server.port);
      try {
        for (const [range, from, to] of cases) {
          await client.send(GET(site.bigFile.urlPath, `Range: ${range}\r\n`));
          const response = await client.readResponse();
          assert.equal(response.status, 206, range);
          assert.equal(response.headers['content-range'], `bytes ${from}-${to - 1}/${size}`);
          assert.ok(response.body.equals(bytesOfFile(path.join(site.root, 'big.bin'), from, to)), `wrong bytes for ${range}`);
        }
      } finally {
        client.close();
      }
    });

    test('byte ranges: 416 past the end, If-Range decides, HEAD gives the 206 head only', async () => {
      const client = await RawClient.connect(server.port);
      try {
        await client.send(GET('/hello.txt', 'Range: bytes=1000-\r\n'));
        const unsatisfiable = await client.readResponse();
        assert.equal(unsatisfiable.status, 416);
        assert.equal(unsatisfiable.headers['content-range'], `bytes */${readFileSync(path.join(WWW, 'hello.txt')).length}`);

        await client.send(GET(site.bigFile.urlPath, 'Range: bytes=0-0\r\n'));
        const etag = (await client.readResponse()).headers['etag']!;
        await client.send(GET(site.bigFile.urlPath, `Range: bytes=5-9\r\nIf-Range: ${etag}\r\n`));
        const matched = await client.readResponse();
        assert.equal(matched.status, 206);
        assert.equal(matched.body.length, 5);
        await client.send(GET('/hello.txt', 'Range: bytes=5-9\r\nIf-Range: "an-old-version"\r\n'));
        const mismatched = await client.readResponse();
        assert.equal(mismatched.status, 200);
        assert.deepEqual(mismatched.body, readFileSync(path.join(WWW, 'hello.txt')));

        await client.send(`HEAD ${site.bigFile.urlPath} HTTP/1.1\r\nHost: test\r\nRange: bytes=-100\r\n\r\n`);
        const head = await client.readResponse({ forHead: true });
        assert.equal(head.status, 206);
        assert.equal(head.headers['content-length'], '100');
        assert.equal(head.headers['content-range'], `bytes ${site.bigFile.size - 100}-${site.bigFile.size - 1}/${site.bigFile.size}`);
        await client.send(GET('/hello.txt', 'Range: bytes=0-1\r\n'));
        assert.equal((await client.readResponse()).body.toString(), readFileSync(path.join(WWW, 'hello.txt')).subarray(0, 2).toString(), 'HEAD sent body bytes');
      } finally {
        client.close();
      }
    });

    test('pipelining across a 206 and a 416: one write, answers in order, the connection stays', async () => {
      const hello = readFileSync(path.join(WWW, 'hello.txt'));
      const big = path.join(site.root, 'big.bin');
      const client = await RawClient.connect(server.port);
      try {
        await client.send(GET('/hello.txt', 'Range: bytes=2-5\r\n')
          + GET(site.bigFile.urlPath, `Range: bytes=${site.bigFile.size}-\r\n`)
          + GET(site.bigFile.urlPath, 'Range: bytes=1000000-1065535\r\n')
          + GET('/hello.txt', 'Range: bytes=99-\r\n')
          + GET('/hello.txt'));
        const responses = [];
        for (let i = 0; i < 5; i++) responses.push(await client.readResponse());
        assert.deepEqual(responses.map((response) => response.status), [206, 416, 206, 416, 200]);
        assert.deepEqual(responses[0]!.body, hello.subarray(2, 6));
        assert.ok(responses[2]!.body.equals(bytesOfFile(big, 1_000_000, 1_065_536)));
        assert.deepEqual(responses[4]!.body, hello);
        assert.equal(client.pending.length, 0, 'nothing beyond the five responses');
        // The same socket still serves: keep-alive survived the 206s and 416s.
        await client.send(GET(site.bigFile.urlPath, 'Range: bytes=-3\r\n'));
        const last = await client.readResponse();
        assert.equal(last.status, 206);
        assert.ok(last.body.equals(bytesOfFile(big, site.bigFile.size - 3, site.bigFile.size)));
      } finally {
        client.close();
      }
    });

    test('a half-sent request holds up nobody, and is answered once it is complete', async () => {
      const slow = await RawClient.connect(server.port);
      try {
        await slow.send('GET /hello.txt HTTP/1.1\r\nHo'); // and then nothing, for now
        for (let i = 0; i < 3; i++) assert.equal((await rawExchange(server.port, GET('/'))).status, 200);
        await slow.send('st: test\r\n\r\n');
        const response = await slow.readResponse();
        assert.equal(response.status, 200);
        assert.deepEqual(response.body, readFileSync(path.join(WWW, 'hello.txt')));
      } finally {
        slow.close();
      }
    });

    test('a request trickled in a byte at a time gets a 408 and a close at its --request-timeout, long before the trickle ends; others are served meanwhile', async (t) => {
      const deadlineSeconds = 2;
      const strict = await startModel(t, file, {
        args: ['--root', site.root, '--idle-timeout', '3', '--request-timeout', String(deadlineSeconds), ...(options.args ?? [])],
      });
      const slow = await RawClient.connect(strict.port);
      const slowPort = slow.socket.localPort!; // (a closed socket no longer says)
      let trickling = true;
      try {
        // A first request, whole: the connection is being served (01 and 02 have started its
        // process or thread), and a request deadline is per request, not per connection.
        await slow.send(GET('/hello.txt'));
        assert.equal((await slow.readResponse()).status, 200);

        // Then a head that never ends, a byte every 300 ms: never idle for the 3 s idle timeout,
        // so only a deadline counted from its first byte can end it.
        const head = `GET /hello.txt HTTP/1.1\r\nHost: test\r\nX-Slow: ${'a'.repeat(200)}`;
        const firstByteSent = performance.now();
        void (async () => {
          for (const byte of head) {
            if (!trickling) return;
            await slow.send(byte).catch(() => (trickling = false));
            await sleep(300);
          }
        })();
        for (let i = 0; i < 3; i++) assert.equal((await rawExchange(strict.port, GET('/hello.txt'))).status, 200);

        // The trickle would last a minute and never leaves the connection idle, so an answer
        // well before that can only come from the request deadline (the log line below says
        // which). The wait is generous, not a timing check: the 2 s deadline, the once-a-second
        // sweep of 03-07, and room for a busy machine to start 01's process and schedule everybody.
        const response = await slow.readResponse({ timeoutMs: 15_000 });
        const elapsedMs = performance.now() - firstByteSent;
        trickling = false;
        assert.equal(response.status, 408);
        assert.equal(response.headers['connection'], 'close');
        assert.equal(Number(response.headers['content-length']), response.body.length);
        assert.ok(elapsedMs >= deadlineSeconds * 1000, `the 408 came ${Math.round(elapsedMs)} ms after the first byte, before the deadline`);
        assert.equal(await slow.closedByServer(), true);
        assert.equal((await rawExchange(strict.port, GET('/hello.txt'))).status, 200);
        const lines = strict.output().split('\n').filter((line) => line.includes(`:${slowPort} `));
        assert.equal(lines.length, 1, `log lines for the trickling client:\n${lines.join('\n')}`);
        assert.match(lines[0]!, / 408 request not complete 2 s after its first byte$/);
      } finally {
        trickling = false;
        slow.close();
      }
    });

    test('a stalled reader of a large file does not hold up anybody else', async () => {
      const stalled = await RawClient.connect(server.port);
      try {
        stalled.socket.pause(); // read nothing: the server's send buffer fills up
        await stalled.send(GET(site.bigFile.urlPath));
        await new Promise((resolve) => setTimeout(resolve, 200));
        for (let i = 0; i < 3; i++) assert.equal((await rawExchange(server.port, GET('/hello.txt'))).status, 200);
      } finally {
        stalled.close();
      }
    });

    test('a client that vanishes mid-download does not hurt the server', async () => {
      for (let i = 0; i < 3; i++) {
        const client = await RawClient.connect(server.port);
        await client.send(GET(site.bigFile.urlPath));
        await new Promise((resolve) => client.socket.once('data', resolve));
        client.socket.resetAndDestroy(); // an abortive close: the server sees ECONNRESET or EPIPE
      }
      assert.equal((await rawExchange(server.port, GET('/hello.txt'))).status, 200);
    });

    test('garbage bytes get a 400 and a closed connection; the server lives on', async () => {
      const client = await RawClient.connect(server.port);
      try {
        await client.send(Buffer.from([0x16, 0x03, 0x01, 0x00, 0xff, 0x0d, 0x0a, 0x0d, 0x0a]));
        const response = await client.readResponse();
        assert.equal(response.status, 400);
        assert.equal(Number(response.headers['content-length']), response.body.length);
        assert.equal(await client.closedByServer(), true);
      } finally {
        client.close();
      }
      assert.equal((await rawExchange(server.port, GET('/hello.txt'))).status, 200);
    });

    test('a head larger than 8 KiB gets 431 and a closed connection', async () => {
      const client = await RawClient.connect(server.port);
      try {
        await client.send(GET('/', `X-Padding: ${'a'.repeat(9000)}\r\n`));
        assert.equal((await client.readResponse()).status, 431);
        assert.equal(await client.closedByServer(), true);
      } finally {
        client.close();
      }
    });

    test('a path that climbs out of the root is refused', async () => {
      for (const target of ['/../package.json', '/%2e%2e/package.json', '/guide/..%2f..%2fpackage.json']) {
        const response = await rawExchange(server.port, GET(target));
        assert.ok([403, 404].includes(response.status), `${target} answered ${response.status}`);
      }
    });

    test('an idle connection is closed after --idle-timeout, with a log line', async () => {
      const client = await RawClient.connect(server.port);
      try {
        assert.equal(await client.closedByServer(10_000), true);
      } finally {
        client.close();
      }
      await server.waitForOutput(/idle/i, 5000);
    });

    test(`out of descriptors (EMFILE): ${options.emfile === 'closed-by-libuv' ? 'waiting clients closed' : 'logged'}, no spinning, and serving resumes`, async () => {
      const pid = server.pid;
      const limit = (await $`prlimit --pid ${pid} --nofile --noheadings --output SOFT,HARD`.quiet()).stdout.trim().split(/\s+/);
      const clients: RawClient[] = [];
      try {
        // The kernel hands out the lowest free descriptor number, and a process may not use
        // numbers at or above its limit: so with the limit at the lowest free number, the
        // next accept() fails with EMFILE.
        await $`prlimit --pid ${pid} --nofile=${lowestFreeFd(pid)}:${limit[1]}`;
        const ticksBefore = cpuTicks(pid);
        for (let i = 0; i < 5; i++) {
          const client = await RawClient.connect(server.port);
          clients.push(client);
          await client.send(GET('/hello.txt'));
        }
        if (options.emfile === 'closed-by-libuv') {
          for (const client of clients) assert.equal(await client.closedByServer(10_000), true, 'a waiting client was left hanging');
        } else {
          await server.waitForOutput(/EMFILE/, 10_000);
        }
        await new Promise((resolve) => setTimeout(resolve, 2000));
        const ticksSpent = cpuTicks(pid) - ticksBefore;
        // A loop that retried accept() at once would burn both seconds (about 200 ticks).
        assert.ok(ticksSpent < 100, `the server used ${ticksSpent} CPU ticks while out of descriptors`);
        const emfileLines = server.output().split('\n').filter((line) => /EMFILE/.test(line)).length;
        assert.ok(emfileLines < 30, `EMFILE was logged ${emfileLines} times`);
      } finally {
        await $`prlimit --pid ${pid} --nofile=${limit[0]}:${limit[1]}`;
      }
      if (options.emfile === 'closed-by-libuv') {
        for (const client of clients) client.close();
      } else {
        // Every waiting client gets a complete answer, never silence: a model that paused
        // accepting serves them now that descriptors are back (200); one that had accepted a
        // connection it then could not serve (see 'paused-or-refused') turned it away with a
        // 503 and closed it.
        for (const client of clients) {
          const response = await client.readResponse({ timeoutMs: 15_000 });
          const allowed = options.emfile === 'paused-or-refused' ? [200, 503] : [200];
          assert.ok(allowed.includes(response.status), `a waiting client got ${response.status}`);
          if (response.status === 503) {
            assert.equal(response.headers['connection'], 'close');
            assert.equal(await client.closedByServer(), true);
          }
          client.close();
        }
      }
      assert.equal((await rawExchange(server.port, GET('/hello.txt'))).status, 200);
    });

    options.lessons?.(context);

    test('Ctrl+C (SIGINT to the process group) stops the model and everything it started', async () => {
      const tree = processTree(server.pid);
      await server.stop('SIGINT'); // throws if SIGKILL was needed
      for (const pid of tree) assert.equal(isAlive(pid), false, `process ${pid} outlived the server`);
    });
  });
}
