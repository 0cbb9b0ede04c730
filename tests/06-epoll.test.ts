/**
 * 06-epoll.ts: the shared suite, plus the lessons of 「epoll高并发」: thousands of idle
 * connections cost nothing while others are served (the descriptors are really held, and
 * released when the clients leave); the interest list lives in the kernel, where
 * /proc/PID/fdinfo shows it, with EPOLLOUT asked for only while output waits; and a file that
 * shrinks under sendfile() ends only that download. Also: a half-sent request holds up nobody.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describeModel } from './helpers/model-suite.ts';
import { assertClosesGentlyAfterA431 } from './helpers/gentle-close.ts';
import { holdIdleCrowd } from './helpers/idle-crowd.ts';
import { assertShrinkingFileEndsOnlyItsDownload } from './helpers/shrinking-file.ts';
import { GET, RawClient } from './helpers/http-client.ts';
import { descriptorsFrom } from './helpers/proc.ts';
import { startModel, waitUntil } from './helpers/server.ts';

const EPOLLIN = 0x1;
const EPOLLOUT = 0x4;

/**
 * The descriptor number that process `pid` uses for one TCP socket, found through its inode in
 * /proc/net/tcp: the listening socket on `port` (no `remotePort`), or the server's end of the
 * connection from `remotePort`.
 */
function socketFd(pid: number, port: number, remotePort?: number): number {
  const hexPort = (value: number) => `:${value.toString(16).toUpperCase().padStart(4, '0')}`;
  const line = readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .map((text) => text.trim().split(/\s+/))
    .find((fields) =>
      fields[1]?.endsWith(hexPort(port)) &&
      (remotePort === undefined ? fields[3] === '0A' /* LISTEN */ : fields[2]?.endsWith(hexPort(remotePort))),
    );
  assert.ok(line, `no socket for port ${port} / ${remotePort} in /proc/net/tcp`);
  const fd = [...descriptorsFrom(pid)].find(([, target]) => target === `socket:[${line[9]}]`)?.[0];
  if (fd === undefined) throw new Error(`process ${pid} holds no such socket`);
  return fd;
}

/**
 * The model's epoll interest list, as the kernel shows it in /proc/PID/fdinfo/EPFD: one
 * `tfd: N events: HEX` line per watched descriptor. Node runs epoll instances of its own; ours
 * is the one that watches the listening socket.
 */
function interestList(pid: number, port: number): Map<number, number> {
  const listener = socketFd(pid, port);
  for (const [fd, target] of descriptorsFrom(pid)) {
    if (target !== 'anon_inode:[eventpoll]') continue;
    let info: string;
    try {
      info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
    } catch {
      continue; // closed while we looked
    }
    const watched = new Map<number, number>();
    for (const match of info.matchAll(/^tfd:\s+(\d+)\s+events:\s+([0-9a-f]+)/gm)) {
      watched.set(Number(match[1]), parseInt(match[2]!, 16));
    }
    if (watched.has(listener)) return watched;
  }
  throw new Error(`no epoll instance of process ${pid} watches the listener`);
}

describeModel('06-epoll.ts', {
  lessons({ server, site }) {
    test('closing after a 431 while the client still sends: a FIN after the whole answer, never a reset', async () => {
      await assertClosesGentlyAfterA431(server().port);
    });

    test('2000 idle connections are held (one descriptor each) while others get exact bytes; all are released after', async (t) => {
      // A server of its own, with an idle timeout long enough to hold the crowd through the test.
      const model = await startModel(t, '06-epoll.ts', { args: ['--root', site().root, '--idle-timeout', '120'] });
      await holdIdleCrowd(model, 2000, () => {
        assert.ok(interestList(model.pid, model.port).size >= 2001, 'every connection is in the kernel interest list');
      });
    });

    test('the interest list lives in the kernel: EPOLLIN for a waiting client, EPOLLOUT only while a download waits for room', async () => {
      const { pid, port } = server();
      const keptAlive = await RawClient.connect(port);
      const stalled = await RawClient.connect(port);
      try {
        await keptAlive.send(GET('/hello.txt'));
        assert.equal((await keptAlive.readResponse()).status, 200);
        stalled.socket.pause(); // read nothing: the send buffer fills and the download waits
        await stalled.send(GET(site().bigFile.urlPath));

        const keptAliveFd = socketFd(pid, port, keptAlive.socket.localPort!);
        const stalledFd = socketFd(pid, port, stalled.socket.localPort!);
        const watched = (fd: number) => (interestList(pid, port).get(fd) ?? 0) & (EPOLLIN | EPOLLOUT);
        assert.ok(await waitUntil(() => watched(stalledFd) === EPOLLOUT, 5000), `stalled download: events ${watched(stalledFd)}`);
        // Answered and waiting for its next request: only input is of interest.
        assert.equal(watched(keptAliveFd), EPOLLIN);
      } finally {
        stalled.close();
      }
      // The stalled client went away: its entry is gone; the kept-alive one is unchanged.
      const entries = () => interestList(pid, port);
      assert.ok(await waitUntil(() => [...entries().values()].every((events) => (events & EPOLLOUT) === 0), 5000), 'nothing waits for EPOLLOUT');
      try {
        await keptAlive.send(GET('/hello.txt'));
        assert.equal((await keptAlive.readResponse()).status, 200);
      } finally {
        keptAlive.close();
      }
    });

    test('a file that shrinks during sendfile() ends that download with a log line; others are served', async () => {
      await assertShrinkingFileEndsOnlyItsDownload(server(), site().root);
    });
  },
});
