/**
 * 07-io_uring.ts: the shared suite, plus what io_uring changes: one io_uring_enter serves many
 * requests (the model's own tally says so); the rings and the operations waiting in them are
 * visible in /proc/PID/fdinfo; thousands of idle connections each hold a waiting receive but no
 * receive buffer; a file read through the ring that comes up short ends only that download.
 * And where io_uring is refused, 07 says so in one line (exit code 2), these tests skip with
 * that line as the reason, and only then; the refusal itself is tested under a real seccomp
 * filter, as Docker applies one.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { readFileSync, readlinkSync } from 'node:fs';
import { describeModel } from './helpers/model-suite.ts';
import { assertClosesGentlyAfterA431 } from './helpers/gentle-close.ts';
import { residentBytes } from './helpers/proc.ts';
import { holdIdleCrowd } from './helpers/idle-crowd.ts';
import { assertShrinkingFileEndsOnlyItsDownload } from './helpers/shrinking-file.ts';
import { GET, RawClient, rawExchange } from './helpers/http-client.ts';
import { REPO_ROOT, startModel, waitUntil, type RunningServer } from './helpers/server.ts';
import { ioUringRefusal } from './helpers/io-uring-refusal.ts';
import { IORING_OP_ACCEPT, IORING_OP_RECV, explainRefusal } from '../shared/io-uring.ts';

/** The ring's descriptor, from the line 07 prints before it starts serving. */
async function ringFd(server: RunningServer): Promise<number> {
  return Number((await server.waitForOutput(/ring fd (\d+)/))[1]);
}

/** /proc/PID/fdinfo/RINGFD: the rings' counters, and the operations armed in the kernel. */
function ringInfo(pid: number, fd: number): { counters: Map<string, number>; armed: number[] } {
  const text = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
  const counters = new Map<string, number>();
  for (const match of text.matchAll(/^(\w+):\s+(0x[0-9a-f]+|\d+)$/gm)) counters.set(match[1]!, Number(match[2]));
  const armed = [...text.matchAll(/^\s+op=(\d+)/gm)].map((match) => Number(match[1]));
  return { counters, armed };
}

const refusal = ioUringRefusal();

describeModel('07-io_uring.ts', {
  skip: refusal ?? undefined,
  lessons({ server, site }) {
    test('closing after a 431 while the client still sends: a FIN after the whole answer, never a reset', async () => {
      await assertClosesGentlyAfterA431(server().port);
    });

    test('one io_uring_enter serves many requests: the tally printed at Ctrl+C has fewer calls than requests', async (t) => {
      const model = await startModel(t, '07-io_uring.ts', { args: ['--root', site().root] });
      const connections = await Promise.all(Array.from({ length: 20 }, () => RawClient.connect(model.port)));
      try {
        // Each round: every connection pipelines 10 requests in one write, then reads 10 answers.
        await Promise.all(connections.map(async (client) => {
          for (let round = 0; round < 2; round++) {
            await client.send(GET('/hello.txt').repeat(10));
            for (let i = 0; i < 10; i++) assert.equal((await client.readResponse()).status, 200);
          }
        }));
      } finally {
        for (const client of connections) client.close();
      }
      await model.stop('SIGINT');
      const [, requests, calls] = model.output().match(/served (\d+) requests with (\d+) io_uring_enter calls/) ?? [];
      assert.ok(requests !== undefined, `no tally in the output:\n${model.output()}`);
      assert.equal(Number(requests), 400);
      assert.ok(Number(calls) < Number(requests), `${calls} io_uring_enter calls for ${requests} requests`);
    });

    test('the rings live in /proc/PID/fdinfo: every submission taken, a completion posted for each receive and send', async () => {
      const { pid, port } = server();
      const fd = await ringFd(server());
      assert.equal(readlinkSync(`/proc/${pid}/fd/${fd}`), 'anon_inode:[io_uring]');
      const before = ringInfo(pid, fd).counters;
      assert.equal(before.get('SqMask'), 1023, '1024 submission entries');
      assert.equal(before.get('CqMask'), 8191, '8192 completion entries');

      const client = await RawClient.connect(port);
      try {
        for (let i = 0; i < 10; i++) {
          await client.send(GET('/hello.txt'));
          assert.equal((await client.readResponse()).status, 200);
        }
      } finally {
        client.close();
      }
      // The server waits in io_uring_enter again: the kernel has taken every SQE it published.
      const settled = () => {
        const counters = ringInfo(pid, fd).counters;
        return counters.get('SqHead') === counters.get('SqTail') && counters.get('CqHead') === counters.get('CqTail');
      };
      assert.ok(await waitUntil(settled, 5000), 'submissions pending or completions unread');
      const after = ringInfo(pid, fd).counters;
      // Ten requests, each at least one receive completion and one send completion.
      assert.ok(after.get('CqTail')! - before.get('CqTail')! >= 20, `only ${after.get('CqTail')! - before.get('CqTail')!} completions`);
      assert.ok(after.get('SqTail')! - before.get('SqTail')! >= 10, 'a send was submitted for every answer');
    });

    test('2000 idle connections: a receive armed in the kernel for each (its PollList), one accept; all released after', async (t) => {
      // A server of its own, with an idle timeout long enough to hold the crowd through the test.
      const model = await startModel(t, '07-io_uring.ts', { args: ['--root', site().root, '--idle-timeout', '120'] });
      const fd = await ringFd(model);
      const armed = (op: number) => ringInfo(model.pid, fd).armed.filter((armedOp) => armedOp === op).length;
      await holdIdleCrowd(model, 2000, async () => {
        assert.ok(await waitUntil(() => armed(IORING_OP_RECV) >= 2000, 5000), `${armed(IORING_OP_RECV)} receives armed`);
        assert.equal(armed(IORING_OP_ACCEPT), 1, 'one accept pending');
      });
    });

    test('a file that shrinks under a read through the ring ends that download with a log line; others are served', async () => {
      await assertShrinkingFileEndsOnlyItsDownload(server(), site().root);
    });

    test('a client that pipelines without reading is not read from either: its requests wait in the kernel, not in our memory', async () => {
      const { pid, port } = server();
      const greedy = await RawClient.connect(port);
      try {
        greedy.socket.pause();
        const memoryBefore = residentBytes(pid);
        // Requests for the 24 MiB file, a megabyte at a time, never reading an answer. The kernel's
        // socket buffers take some megabytes; after that, what the server no longer receives
        // backs up in this process.
        const requests = Buffer.from(GET(site().bigFile.urlPath).repeat(Math.ceil(1024 * 1024 / GET(site().bigFile.urlPath).length)));
        let written = 0;
        while (written < 256 * 1024 * 1024 && greedy.socket.writableLength < 4 * 1024 * 1024) {
          greedy.socket.write(requests);
          written += requests.length;
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
        assert.ok(greedy.socket.writableLength >= 4 * 1024 * 1024, `the server took all ${written} bytes of requests`);
        const grown = residentBytes(pid) - memoryBefore;
        assert.ok(grown < 32 * 1024 * 1024, `the server grew by ${grown} bytes`);
        assert.equal((await rawExchange(port, GET('/hello.txt'))).status, 200);
      } finally {
        greedy.close();
      }
    });
  },
});

describe('07-io_uring.ts where io_uring is refused', () => {
  const runRefused = (errnoName: string, file: string, ...args: string[]) =>
    spawnSync(process.execPath, ['--import', 'tsx', 'tests/helpers/without-io-uring.ts', errnoName, file, ...args], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
      timeout: 30_000,
    });

  for (const [errnoName, mentions] of [['EPERM', /seccomp.*--security-opt seccomp=unconfined/], ['ENOSYS', /kernel.*gVisor/]] as const) {
    test(`${errnoName} from io_uring_setup (a seccomp filter): one line naming the cause and the fix, exit code 2, and the tests' skip reason is that line`, (t) => {
      const model = runRefused(errnoName, '07-io_uring.ts', '--port', '0');
      if (model.status === 3) return t.skip(model.stderr.trim()); // no seccomp filters on this kernel
      assert.equal(model.status, 2, model.stderr);
      assert.equal(model.stdout, '', 'nothing served, nothing announced');
      const lines = model.stderr.split('\n').filter((line) => line !== '');
      assert.equal(lines.length, 1, model.stderr);
      assert.match(lines[0]!, new RegExp(`^07-io_uring: io_uring is .*\\(${errnoName}\\)`));
      assert.match(lines[0]!, mentions);
      // The test files' probe says the same, under the same filter: the suite skips with this line.
      const probe = runRefused(errnoName, 'tests/helpers/io-uring-refusal.ts');
      assert.equal(probe.stdout.trim(), lines[0]);
    });
  }

  test('the probe skips nothing where io_uring works (the suite above ran)', (t) => {
    if (refusal !== null) return t.skip(refusal);
    const probe = spawnSync(process.execPath, ['--import', 'tsx', 'tests/helpers/io-uring-refusal.ts'], { cwd: REPO_ROOT, encoding: 'utf8' });
    assert.equal(probe.stdout.trim(), 'io_uring works');
  });

  test('EPERM because of the sysctl kernel.io_uring_disabled names the sysctl and how to change it', () => {
    for (const value of ['1', '2']) {
      assert.match(explainRefusal(osConstants.errno.EPERM, value), new RegExp(`kernel\\.io_uring_disabled is ${value}.*sysctl kernel\\.io_uring_disabled=0`));
    }
    assert.match(explainRefusal(osConstants.errno.EPERM, '1'), /only the group kernel\.io_uring_group/);
    assert.match(explainRefusal(osConstants.errno.EPERM, '0'), /seccomp/);
    assert.match(explainRefusal(osConstants.errno.EPERM, null), /seccomp/);
    assert.match(explainRefusal(osConstants.errno.EINVAL, '0'), /EINVAL/);
  });
});
