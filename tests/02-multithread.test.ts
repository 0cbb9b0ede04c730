/**
 * 02-multithread.ts: the shared suite, plus the lessons of 「多线程」: one descriptor table shared
 * by every thread, a thread per connection that ends (and gives its memory back) when the client
 * leaves, Ctrl+C waking threads blocked in recv(), a 503 when a thread cannot start, and the
 * fixed-size pool of --pool N.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { $ } from 'zx';
import { describeModel } from './helpers/model-suite.ts';
import { assertClosesGentlyAfterA431 } from './helpers/gentle-close.ts';
import { assertCapOfTwo } from './helpers/max-clients.ts';
import { descriptorsFrom, lowestFreeFd, statusField, threadCount } from './helpers/proc.ts';
import { makeServedRoot } from './helpers/served-root.ts';
import { GET, RawClient, fetchWithKeepAlive, rawExchange } from './helpers/http-client.ts';
import { isAlive, processTree, startModel, waitUntil, type RunningServer } from './helpers/server.ts';

const rssKb = (pid: number) => statusField(pid, 'VmRSS');

/** The line of /proc/net/tcp for the server's end of a client's connection, split in fields. */
function serverSideEntry(serverPort: number, clientPort: number): string[] {
  const hexPort = (port: number) => port.toString(16).toUpperCase().padStart(4, '0');
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields[1]?.endsWith(`:${hexPort(serverPort)}`) && fields[2]?.endsWith(`:${hexPort(clientPort)}`)) return fields;
  }
  throw new Error(`no server socket for client port ${clientPort} in /proc/net/tcp`);
}

/** The inode of the server's end of a client's connection (what /proc/PID/fd links show). */
const serverSideInode = (serverPort: number, clientPort: number) => serverSideEntry(serverPort, clientPort)[9]!;

/** Bytes the server has sent on that connection that the client has not yet acknowledged. */
const serverSendQueue = (serverPort: number, clientPort: number) =>
  parseInt(serverSideEntry(serverPort, clientPort)[4]!.split(':')[0]!, 16);

/** Descriptor numbers of process or thread `pid` that point at socket `inode`. */
const descriptorsOf = (pid: number, inode: string): number[] =>
  [...descriptorsFrom(pid)].filter(([, target]) => target === `socket:[${inode}]`).map(([fd]) => fd);

/** Open `count` connections and have each served one request, so each has a running thread. */
async function servedClients(port: number, count: number): Promise<RawClient[]> {
  const clients = await Promise.all(Array.from({ length: count }, () => RawClient.connect(port)));
  await exchangeOnEach(clients);
  return clients;
}

/** One request on every client at once (which also resets their idle timers). */
async function exchangeOnEach(clients: RawClient[]): Promise<void> {
  await Promise.all(clients.map((client) => client.send(GET('/hello.txt'))));
  for (const client of clients) assert.equal((await client.readResponse({ timeoutMs: 15_000 })).status, 200);
}

async function sequentialExchanges(port: number, count: number): Promise<void> {
  for (let i = 0; i < count; i++) assert.equal((await rawExchange(port, GET('/hello.txt'))).status, 200);
}

describeModel('02-multithread.ts', {
  // It blocks inside accept(), which reserves a descriptor before it waits.
  emfile: 'paused-or-refused',
  lessons({ server }) {
    test('closing after a 431 while the client still sends: a FIN after the whole answer, never a reset', async () => {
      await assertClosesGentlyAfterA431(server().port);
    });

    // These hold clients open while they look at /proc, so they use a server of their own with a
    // long idle timeout: on a busy machine, starting five threads can take longer than 3 s.
    describe('a server with --idle-timeout 60', () => {
      let patient: RunningServer;
      before(async () => {
        patient = await startModel(null, '02-multithread.ts', { args: ['--idle-timeout', '60'] });
      });
      after(async () => {
        await patient?.stop(); // throws if it took SIGKILL
      });

      test('threads share ONE descriptor table: one fd for the connection, seen by every thread, closed by its worker', async () => {
        const { pid, port } = patient;
        const client = await RawClient.connect(port);
        try {
          await client.send(GET('/hello.txt'));
          assert.equal((await client.readResponse()).status, 200);
          const inode = serverSideInode(port, client.socket.localPort!);

          // Exactly one descriptor for the connection. (In 01-multiprocess the child gets a copy in
          // a table of its own, which is why that parent must close its copy and this one must not.)
          const inProcess = descriptorsOf(pid, inode);
          assert.equal(inProcess.length, 1, `descriptors for the connection: ${inProcess.join(', ')}`);
          const [fd] = inProcess;

          // Every thread, the main one and the worker serving the client alike, sees that same
          // number for that same socket: there is only one table.
          const tasks = readdirSync(`/proc/${pid}/task`);
          assert.ok(tasks.length > 1);
          for (const task of tasks) {
            try {
              assert.deepEqual(descriptorsOf(Number(task), inode), [fd], `thread ${task}`);
            } catch (error) {
              if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error; // that thread just ended
            }
          }

          // The client leaves; its worker sees recv() return 0 and closes the descriptor.
          client.close();
          const released = await waitUntil(() => descriptorsOf(pid, inode).length === 0, 10_000);
          assert.ok(released, 'the connection was never closed');
        } finally {
          client.close();
        }
      });

      test('one thread per connection: 5 open clients add threads, which end when the clients leave', async (t) => {
        const { pid, port } = patient;
        await sequentialExchanges(port, 1); // let anything started lazily start now
        await new Promise((resolve) => setTimeout(resolve, 500));
        const baseline = threadCount(pid);

        const clients = await servedClients(port, 5);
        try {
          await exchangeOnEach(clients); // every client is now held by its own worker
          const whileOpen = threadCount(pid);
          t.diagnostic(`threads: ${baseline} idle, ${whileOpen} with 5 connections open`);
          assert.ok(whileOpen >= baseline + 5, `threads: ${baseline} before, ${whileOpen} with 5 connections open`);
        } finally {
          for (const client of clients) client.close();
        }
        const ended = await waitUntil(() => threadCount(pid) <= baseline, 10_000);
        assert.ok(ended, `threads stayed at ${threadCount(pid)} (baseline ${baseline})`);
      });

      test('finished threads give their memory back: 40 connections in a row do not grow the process', async (t) => {
        const { pid, port } = patient;
        await sequentialExchanges(port, 10); // warm-up: allocator arenas, code caches
        await new Promise((resolve) => setTimeout(resolve, 500));
        const baselineThreads = threadCount(pid);
        const rssAfterWarmUp = rssKb(pid);

        await sequentialExchanges(port, 30);
        assert.ok(await waitUntil(() => threadCount(pid) <= baselineThreads, 10_000), 'some threads did not end');
        const grownMb = (rssKb(pid) - rssAfterWarmUp) / 1024;
        t.diagnostic(`RSS after 10 connections: ${(rssAfterWarmUp / 1024).toFixed(1)} MB; after 30 more: ${grownMb.toFixed(1)} MB more`);
        // A live worker holds about 28 MB: 30 that never gave theirs back would be ~840 MB.
        assert.ok(grownMb < 60, `RSS grew by ${grownMb.toFixed(1)} MB over 30 connections`);
      });
    });

    test('lines logged by worker threads carry the model name too (each isolate configures its own log)', async () => {
      const client = await RawClient.connect(server().port);
      try {
        await client.send(GET('/no-such-page.html'));
        assert.equal((await client.readResponse()).status, 404); // the worker logs every 4xx
        const [line] = await server().waitForOutput(new RegExp(`^.*:${client.socket.localPort} 404.*$`, 'm'));
        assert.match(line, /^02-multithread: 127\.0\.0\.1:\d+ 404 /);
      } finally {
        client.close();
      }
    });

    test('a thread that cannot start: the client gets a 503 with Content-Length, and serving goes on', async () => {
      const { pid, port } = server();
      await sequentialExchanges(port, 1);
      await new Promise((resolve) => setTimeout(resolve, 500));
      const limit = (await $`prlimit --pid ${pid} --nofile --noheadings --output SOFT,HARD`.quiet()).stdout.trim().split(/\s+/);
      let refused;
      try {
        // Room for the accepted connection and nothing more: a new thread cannot even create
        // its event loop, so its start fails.
        await $`prlimit --pid ${pid} --nofile=${lowestFreeFd(pid) + 1}:${limit[1]}`;
        refused = await rawExchange(port, GET('/hello.txt'));
      } finally {
        await $`prlimit --pid ${pid} --nofile=${limit[0]}:${limit[1]}`;
      }
      assert.equal(refused.status, 503);
      assert.equal(refused.headers['connection'], 'close');
      assert.equal(Number(refused.headers['content-length']), refused.body.length);
      await server().waitForOutput(/503 (no thread could start|its thread failed to start)/);
      await sequentialExchanges(port, 2);
    });

    test('Ctrl+C wakes threads blocked in recv() or send() (shutdown), so the process exits', async (t) => {
      const site = makeServedRoot();
      t.after(() => site.remove());
      const blocked = await startModel(t, '02-multithread.ts', { args: ['--root', site.root, '--idle-timeout', '60'] });
      const clients = await servedClients(blocked.port, 2); // two workers now wait in recv()
      const stalled = await RawClient.connect(blocked.port);
      clients.push(stalled);
      try {
        stalled.socket.pause(); // never read: its worker ends up blocked in send()
        await stalled.send(GET(site.bigFile.urlPath));
        const sending = () => serverSendQueue(blocked.port, stalled.socket.localPort!) > 0;
        assert.ok(await waitUntil(sending, 15_000), 'the stalled download never started');
        const tree = processTree(blocked.pid);
        await blocked.stop('SIGINT'); // throws if it took SIGKILL
        for (const pid of tree) assert.equal(isAlive(pid), false, `process ${pid} outlived the server`);
      } finally {
        for (const client of clients) client.close();
      }
    });

    test('Ctrl+C during a crowd of new connections (threads still starting) stops promptly', async (t) => {
      const crowded = await startModel(t, '02-multithread.ts', { args: ['--idle-timeout', '60'] });
      const baseline = threadCount(crowded.pid);
      const crowd = await Promise.all(Array.from({ length: 100 }, () => RawClient.connect(crowded.port)));
      try {
        await Promise.all(crowd.map((client) => client.send(GET('/hello.txt'))));
        // Let threads get going: a few have started, more are on their way.
        await waitUntil(() => threadCount(crowded.pid) >= baseline + 6, 10_000);
        await new Promise((resolve) => setTimeout(resolve, 1500));
        // Starting 100 isolates at once would take many seconds of CPU, and Node waits for
        // every half-started thread before it exits: so the model starts one at a time.
        await crowded.stop('SIGINT'); // throws if SIGKILL was needed
      } finally {
        for (const client of crowd) client.close();
      }
    });

    test('--max-clients 2: a third client waits in the listen queue and is served once one of two leaves; never a third thread', async (t) => {
      const capped = await startModel(t, '02-multithread.ts', { args: ['--idle-timeout', '60', '--max-clients', '2'] });
      await sequentialExchanges(capped.port, 1); // let anything started lazily start now
      await new Promise((resolve) => setTimeout(resolve, 500));
      const idleThreads = threadCount(capped.pid);
      await assertCapOfTwo(capped, () => threadCount(capped.pid) - idleThreads, 'threads');
    });

    test('--pool 2: requests are served, keep-alive works, threads do not grow per connection, Ctrl+C stops it', async (t) => {
      const pooled = await startModel(t, '02-multithread.ts', { args: ['--pool', '2', '--idle-timeout', '60'] });
      await sequentialExchanges(pooled.port, 1);
      const baseline = threadCount(pooled.pid);

      const keepAlive = await fetchWithKeepAlive(pooled.url, ['/', '/hello.txt', '/style.css']);
      assert.deepEqual(keepAlive.statuses, [200, 200, 200]);
      assert.equal(keepAlive.connectionsOpened, 1);
      await sequentialExchanges(pooled.port, 6);
      assert.ok(threadCount(pooled.pid) <= baseline, `threads grew from ${baseline} to ${threadCount(pooled.pid)}`);

      // Two clients occupy both workers; a third waits until one of them leaves.
      const holders = await servedClients(pooled.port, 2);
      const third = await RawClient.connect(pooled.port);
      try {
        assert.ok(threadCount(pooled.pid) <= baseline, 'a held connection started a thread');
        await third.send(GET('/hello.txt'));
        await assert.rejects(third.readResponse({ timeoutMs: 1000 }), /timed out/, 'served with both workers busy');
        holders[0]!.close();
        assert.equal((await third.readResponse()).status, 200);

        // Both pool threads are now blocked in recv() again; Ctrl+C must still stop everything.
        const tree = processTree(pooled.pid);
        await pooled.stop('SIGINT'); // throws if it took SIGKILL
        for (const pid of tree) assert.equal(isAlive(pid), false, `process ${pid} outlived the server`);
      } finally {
        for (const client of [...holders, third]) client.close();
      }
    });
  },
});
