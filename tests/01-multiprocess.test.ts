/**
 * 01-multiprocess.ts: the shared suite, plus the lessons of one process per connection:
 * the parent closes its copy of every connection (its descriptors do not grow), each client
 * has its own process, children are collected (no zombies) and die on SIGTERM even while
 * blocked, a failed process start is a 503, and the prefork pool (--pool N) that production
 * servers use instead.
 *
 * A child is a new Node runtime (about a tenth of a second each, more on a busy machine), so
 * the connection counts here are modest.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readlinkSync } from 'node:fs';
import { $ } from 'zx';
import { describeModel } from './helpers/model-suite.ts';
import { assertClosesGentlyAfterA431 } from './helpers/gentle-close.ts';
import { assertCapOfTwo } from './helpers/max-clients.ts';
import { lowestFreeFd, openFdCount } from './helpers/proc.ts';
import { GET, RawClient, fetchWithKeepAlive, rawExchange } from './helpers/http-client.ts';
import { childrenOf, isAlive, isZombie, processTree, startModel, waitUntil } from './helpers/server.ts';

function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}

/** The children serving one connection each (started with --connection-fd). */
const connectionProcesses = (pid: number) => childrenOf(pid).filter((child) => commandLine(child).includes('--connection-fd'));
/** The workers of --pool N (started with --listener-fd). */
const poolWorkers = (pid: number) => childrenOf(pid).filter((child) => commandLine(child).includes('--listener-fd'));

describeModel('01-multiprocess.ts', {
  // It blocks inside accept(), which reserves a descriptor before it waits.
  emfile: 'paused-or-refused',
  lessons({ server, site }) {
    test('closing after a 431 while the client still sends: a FIN after the whole answer, never a reset', async () => {
      await assertClosesGentlyAfterA431(server().port);
    });

    test('the parent closes its copy of every connection: 20 clients later it holds no more descriptors', async () => {
      const { pid, port } = server();
      await waitUntil(() => connectionProcesses(pid).length === 0, 10_000);
      const before = openFdCount(pid);
      for (let batch = 0; batch < 4; batch++) {
        const responses = await Promise.all(Array.from({ length: 5 }, () => rawExchange(port, GET('/hello.txt'))));
        assert.deepEqual(responses.map((response) => response.status), [200, 200, 200, 200, 200]);
      }
      assert.ok(await waitUntil(() => connectionProcesses(pid).length === 0, 10_000), 'every child ends when its client leaves');
      assert.equal(openFdCount(pid), before, 'the parent kept descriptors of finished connections');
    });

    test('5 clients held open: 5 processes, each with its own copy; none left over, no zombies', async (t) => {
      // A server of its own with a long idle timeout: with the suite's 3 s, on a busy machine the
      // first clients' connections could time out while this test still waits on the others,
      // and the count of closed connections below would be wrong.
      const { pid, port } = await startModel(t, '01-multiprocess.ts', { args: ['--root', site().root, '--idle-timeout', '60'] });
      const fdsBefore = openFdCount(pid);
      const clients = await Promise.all(Array.from({ length: 5 }, () => RawClient.connect(port)));
      try {
        for (const client of clients) await client.send(GET('/hello.txt'));
        for (const client of clients) assert.equal((await client.readResponse()).status, 200);

        // Keep-alive: every connection is still open, each served by its own process.
        const children = connectionProcesses(pid);
        assert.equal(children.length, 5);
        for (const child of children) assert.match(readlinkSync(`/proc/${child}/fd/3`), /^socket:/);
        assert.ok(openFdCount(pid) < fdsBefore + 5, `the parent went from ${fdsBefore} to ${openFdCount(pid)} descriptors`);

        // A child blocked in recv() has no JavaScript signal handler in the way: SIGTERM ends it,
        // and with its (now only) copy of the descriptor closed, its client sees the close.
        process.kill(children[0]!, 'SIGTERM');
        assert.ok(await waitUntil(() => !isAlive(children[0]!), 2000), 'SIGTERM did not end a child blocked in recv()');
        const closedOnes = await Promise.all(clients.map((client) => client.closedByServer(2000)));
        assert.equal(closedOnes.filter(Boolean).length, 1);
      } finally {
        for (const client of clients) client.close();
      }
      // The clients left: every child exits and is collected by the parent. A child that has
      // exited but was not collected stays in the table as a zombie (state Z) for good.
      assert.ok(await waitUntil(() => connectionProcesses(pid).length === 0, 5000), 'children outlived their clients');
      const collected = await waitUntil(() => childrenOf(pid).filter(isZombie).length === 0, 5000);
      assert.ok(collected, `zombie children: ${childrenOf(pid).filter(isZombie).join(', ')}`);
    });

    test('--max-clients 2: a third client waits in the listen queue and is served once one of two leaves; never a third process', async (t) => {
      const capped = await startModel(t, '01-multiprocess.ts', { args: ['--root', site().root, '--idle-timeout', '60', '--max-clients', '2'] });
      await assertCapOfTwo(capped, () => connectionProcesses(capped.pid).length, 'processes');
    });

    test('when no process can be started, the client gets a 503 and the server lives on', async () => {
      const { pid, port, output } = server();
      const refusals = () => output().split('\n').filter((line) => line.includes('503: cannot start')).length;
      const refusalsBefore = refusals();
      await waitUntil(() => connectionProcesses(pid).length === 0, 10_000);
      const limit = (await $`prlimit --pid ${pid} --nofile --noheadings --output SOFT,HARD`.quiet()).stdout.trim().split(/\s+/);
      try {
        // Room for exactly one more descriptor: accept() takes it, and starting a process
        // (which needs a pipe: two descriptors) fails with EMFILE.
        await $`prlimit --pid ${pid} --nofile=${lowestFreeFd(pid) + 1}:${limit[1]}`;
        const client = await RawClient.connect(port);
        try {
          await client.send(GET('/hello.txt'));
          const response = await client.readResponse();
          assert.equal(response.status, 503);
          assert.equal(response.headers['connection'], 'close');
          assert.equal(Number(response.headers['content-length']), response.body.length);
          assert.equal(await client.closedByServer(), true);
        } finally {
          client.close();
        }
        await waitUntil(() => refusals() > refusalsBefore, 5000);
      } finally {
        await $`prlimit --pid ${pid} --nofile=${limit[0]}:${limit[1]}`;
      }
      assert.equal(refusals(), refusalsBefore + 1, 'one log line for the refused client');
      assert.equal((await rawExchange(port, GET('/hello.txt'))).status, 200);
    });

    test('--pool 2: two prefork workers serve everybody, keep-alive included, and a dead one is replaced', async (t) => {
      const pool = await startModel(t, '01-multiprocess.ts', { args: ['--pool', '2', '--root', site().root] });
      assert.ok(await waitUntil(() => poolWorkers(pool.pid).length === 2, 10_000));

      // Exactly the parent and its two workers run this file (the workers as the JavaScript
      // compiled from it, 01-multiprocess.cjs): no process per connection.
      const ours = processTree(pool.pid).filter((p) => /\b01-multiprocess\.c?[jt]s\b/.test(commandLine(p)));
      assert.equal(ours.length, 3);

      const keepAlive = await fetchWithKeepAlive(pool.url, ['/', '/hello.txt', '/style.css']);
      assert.deepEqual(keepAlive.statuses, [200, 200, 200]);
      assert.equal(keepAlive.connectionsOpened, 1, 'keep-alive: one connection for three requests');
      const clients = await Promise.all([0, 1, 2, 3].map(() => rawExchange(pool.port, GET('/hello.txt', 'Connection: close\r\n'))));
      assert.deepEqual(clients.map((response) => response.status), [200, 200, 200, 200]);
      assert.equal(poolWorkers(pool.pid).length, 2, 'connections must not start processes');

      // A worker that dies unexpectedly is replaced.
      const [victim] = poolWorkers(pool.pid);
      process.kill(victim!, 'SIGKILL');
      assert.ok(await waitUntil(() => !isAlive(victim!) && poolWorkers(pool.pid).length === 2, 10_000), 'the dead worker was not replaced');
      await pool.waitForOutput(/worker \d+ ended by SIGKILL; starting another/, 5000);
      assert.equal((await rawExchange(pool.port, GET('/hello.txt'))).status, 200);

      const tree = processTree(pool.pid);
      await pool.stop('SIGINT'); // throws if anything needed SIGKILL
      for (const p of tree) assert.equal(isAlive(p), false, `process ${p} outlived the pool`);
    });
  },
});
