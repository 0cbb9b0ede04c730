/**
 * The libc layer: each call does what its man page says, errno becomes the right OSError,
 * and the things the models rely on (EAGAIN, partial writes, no SIGPIPE, select's 1024 limit,
 * epoll's events, shutdown waking a blocked accept, close and shutdown with a second descriptor
 * for the socket) really happen.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, writeFileSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { $ } from 'zx';
import {
  Epoll,
  EPOLLIN,
  EPOLLOUT,
  FdSet,
  FD_SETSIZE,
  OSError,
  SHUT_WR,
  Socket,
  closeFd,
  formatAddress,
  isOSError,
  select,
} from '../shared/libc.ts';
import { REPO_ROOT, isAlive, waitUntil } from './helpers/server.ts';

/** Resolves once node:net has handed `data` to the kernel, so a blocking recv will find it. */
function written(socket: net.Socket, data: string): Promise<void> {
  return new Promise((resolve, reject) => socket.write(data, (error) => (error ? reject(error) : resolve())));
}

/** A listening socket, a node:net client connected to it, and the accepted server side. */
async function connectedPair() {
  const server = Socket.listenTCP('127.0.0.1', 0);
  const { port } = server.getsockname();
  const client = net.connect(port, '127.0.0.1');
  await new Promise((resolve) => client.once('connect', resolve));
  const [conn, peer] = server.accept();
  return {
    server,
    client,
    conn,
    peer,
    close() {
      client.destroy();
      conn.close();
      server.close();
    },
  };
}

test('listenTCP binds port 0 to a real port, and accept returns the peer address', async () => {
  const pair = await connectedPair();
  try {
    assert.ok(pair.server.getsockname().port > 0);
    assert.equal(pair.peer.host, '127.0.0.1');
    assert.equal(pair.peer.port, pair.client.localPort);
    assert.equal(formatAddress(pair.peer), `127.0.0.1:${pair.client.localPort}`);
    assert.equal(pair.conn.fileno(), pair.conn.fd);
  } finally {
    pair.close();
  }
});

test('IPv6: listenTCP on ::1 and the address reads back', () => {
  const server = Socket.listenTCP('::1', 0);
  try {
    const address = server.getsockname();
    assert.equal(address.host, '::1');
    assert.equal(formatAddress(address), `[::1]:${address.port}`);
  } finally {
    server.close();
  }
});

test('a non-blocking accept with nobody waiting throws OSError EAGAIN', () => {
  const server = Socket.listenTCP('127.0.0.1', 0);
  try {
    server.setblocking(false);
    assert.throws(() => server.accept(), (error: unknown) => {
      assert.ok(error instanceof OSError);
      assert.equal(error.code, 'EAGAIN');
      assert.equal(error.syscall, 'accept4');
      assert.match(error.message, /accept4\(\) failed: EAGAIN \(Resource temporarily unavailable\)/);
      return isOSError(error, 'EAGAIN') && isOSError(error) && !isOSError(error, 'EMFILE');
    });
    server.setblocking(true);
    server.setblocking(true); // no change needed: no second fcntl
  } finally {
    server.close();
  }
});

test('binding a port in use throws EADDRINUSE and leaks no descriptor', () => {
  const first = Socket.listenTCP('127.0.0.1', 0);
  try {
    assert.throws(() => Socket.listenTCP('127.0.0.1', first.getsockname().port), (error) => isOSError(error, 'EADDRINUSE'));
    assert.throws(() => Socket.listenTCP('not-an-ip', 0), /not an IP address/);
  } finally {
    first.close();
  }
});

test('recv returns the bytes sent, and an empty buffer once the peer has closed', async () => {
  const pair = await connectedPair();
  try {
    await written(pair.client, 'hello');
    assert.equal(pair.conn.recv(1024).toString(), 'hello');
    assert.equal(pair.conn.send(Buffer.from('world')), 5);
    assert.equal(pair.conn.send(Buffer.alloc(0)), 0);
    const echoed = await new Promise<Buffer>((resolve) => pair.client.once('data', resolve));
    assert.equal(echoed.toString(), 'world');
    await new Promise<void>((resolve) => pair.client.end(resolve));
    assert.equal(pair.conn.recv(1024).length, 0);
  } finally {
    pair.close();
  }
});

test('a non-blocking send takes only what fits: a partial write, then EAGAIN', async () => {
  const pair = await connectedPair();
  try {
    pair.client.pause();
    pair.conn.setblocking(false);
    const big = Buffer.alloc(32 * 1024 * 1024);
    const taken = pair.conn.send(big);
    assert.ok(taken > 0 && taken < big.length, `send took ${taken} of ${big.length}`);
    assert.throws(() => pair.conn.send(big), (error) => isOSError(error, 'EAGAIN'));
  } finally {
    pair.close();
  }
});

test('sending to a peer that reset the connection is an error, not a SIGPIPE', async () => {
  const pair = await connectedPair();
  try {
    pair.client.resetAndDestroy();
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.throws(() => {
      for (let i = 0; i < 10; i++) pair.conn.send(Buffer.alloc(65536));
    }, (error) => isOSError(error, 'EPIPE', 'ECONNRESET'));
  } finally {
    pair.close();
  }
});

test('sendall and sendfile deliver exactly the bytes asked for', async () => {
  const pair = await connectedPair();
  const folder = mkdtempSync(path.join(os.tmpdir(), 'libc-test-'));
  const content = randomBytes(200_000);
  writeFileSync(path.join(folder, 'data.bin'), content);
  const fileFd = openSync(path.join(folder, 'data.bin'), 'r');
  try {
    const chunks: Buffer[] = [];
    pair.client.on('data', (chunk) => chunks.push(chunk));
    pair.conn.sendall(Buffer.from('head:'));
    let offset = 1000;
    while (offset < 150_000) offset += pair.conn.sendfile(fileFd, offset, 150_000 - offset);
    await waitUntil(() => Buffer.concat(chunks).length >= 5 + 149_000, 5000);
    assert.deepEqual(Buffer.concat(chunks), Buffer.concat([Buffer.from('head:'), content.subarray(1000, 150_000)]));
  } finally {
    closeSync(fileFd);
    pair.close();
    rmSync(folder, { recursive: true, force: true });
  }
});

test('settimeout makes a blocking recv give up with EAGAIN', async () => {
  const pair = await connectedPair();
  try {
    pair.conn.settimeout(100);
    assert.throws(() => pair.conn.recv(10), (error) => isOSError(error, 'EAGAIN'));
  } finally {
    pair.close();
  }
});

test('shutdown wakes an accept blocked on another thread', async () => {
  const server = Socket.listenTCP('127.0.0.1', 0);
  const waiting = server.acceptAsync();
  await new Promise((resolve) => setTimeout(resolve, 50));
  server.shutdown();
  await assert.rejects(waiting, (error) => isOSError(error, 'EINVAL'));
  server.close();
  server.close(); // closing twice is harmless
});

/** Resolves true once the peer's FIN reaches `client` (its 'end'), false if none came within `ms`. */
function endArrives(client: net.Socket, ms: number): Promise<boolean> {
  client.resume();
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    client.once('end', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** A process that holds a copy of `fd` (as its descriptor 3) until killed, as 01's child does. */
function holdCopyInAnotherProcess(fd: number) {
  return spawn('sleep', ['60'], { stdio: ['ignore', 'ignore', 'ignore', fd] });
}

test('one socket, two descriptors (another process holds a copy): close() sends no FIN until the last copy goes; shutdown(SHUT_WR) sends it at once', async () => {
  // 01's lesson: the kernel counts the references. Closing ours leaves the connection open...
  const closed = await connectedPair();
  const holder = holdCopyInAnotherProcess(closed.conn.fd);
  try {
    closed.conn.close();
    assert.equal(await endArrives(closed.client, 300), false, 'close() with a copy still open sent a FIN');
    // ...until the other copy is gone too.
    const end = endArrives(closed.client, 5000);
    holder.kill('SIGKILL');
    assert.equal(await end, true, 'no FIN after the last copy was closed');
  } finally {
    holder.kill('SIGKILL');
    closed.close();
  }

  // shutdown() acts on the socket, whatever descriptors refer to it: the FIN goes out now.
  const shut = await connectedPair();
  const otherHolder = holdCopyInAnotherProcess(shut.conn.fd);
  try {
    const end = endArrives(shut.client, 5000);
    shut.conn.shutdown(SHUT_WR);
    assert.equal(await end, true, 'shutdown(SHUT_WR) sent no FIN while a copy was open');
    assert.equal(otherHolder.exitCode, null, 'the other copy was still open');
  } finally {
    otherHolder.kill('SIGKILL');
    shut.close();
  }
});

test('acceptAsync resolves with the connection', async () => {
  const server = Socket.listenTCP('127.0.0.1', 0);
  const client = net.connect(server.getsockname().port, '127.0.0.1');
  try {
    const [conn, peer] = await server.acceptAsync();
    assert.equal(peer.host, '127.0.0.1');
    conn.shutdown(); // and shutdown of a connected socket is fine too
    conn.close();
  } finally {
    client.destroy();
    server.close();
  }
});

test('select: an FdSet holds descriptors below 1024, and select reports the readable one', async () => {
  const set = new FdSet();
  set.add(3);
  set.add(FD_SETSIZE - 1);
  assert.equal(set.has(3), true);
  assert.equal(set.has(4), false);
  assert.equal(set.has(FD_SETSIZE - 1), true);
  assert.equal(set.has(FD_SETSIZE), false);
  assert.throws(() => set.add(FD_SETSIZE), RangeError);
  set.clear();
  assert.equal(set.has(3), false);

  const pair = await connectedPair();
  try {
    const readable = new FdSet();
    readable.add(pair.conn.fd);
    assert.equal(select(pair.conn.fd + 1, readable, null, null, 0), 0, 'nothing to read yet');
    await written(pair.client, 'x');
    readable.add(pair.conn.fd);
    const writable = new FdSet();
    writable.add(pair.conn.fd);
    assert.equal(select(pair.conn.fd + 1, readable, writable, null, 1000), 2);
    assert.equal(readable.has(pair.conn.fd), true);
    assert.equal(writable.has(pair.conn.fd), true);
    assert.throws(() => select(-1, null, null, null, 0), (error) => isOSError(error, 'EINVAL'));
  } finally {
    pair.close();
  }
});

test('epoll: registered sockets come back as events; modify and unregister change that', async () => {
  const pair = await connectedPair();
  const epoll = new Epoll(16);
  try {
    epoll.register(pair.conn.fd);
    assert.deepEqual(epoll.poll(0), [], 'no events before data arrives');
    await written(pair.client, 'x');
    assert.deepEqual(epoll.poll(1000), [[pair.conn.fd, EPOLLIN]]);
    epoll.modify(pair.conn.fd, EPOLLIN | EPOLLOUT);
    assert.deepEqual(epoll.poll(1000), [[pair.conn.fd, EPOLLIN | EPOLLOUT]]);
    epoll.unregister(pair.conn.fd);
    assert.deepEqual(epoll.poll(0), []);
    assert.throws(() => epoll.unregister(pair.conn.fd), (error) => isOSError(error, 'ENOENT'));
  } finally {
    epoll.close();
    pair.close();
  }
});

test('closeFd closes a bare descriptor number', () => {
  const server = Socket.listenTCP('127.0.0.1', 0);
  closeFd(server.fd);
  assert.throws(() => server.getsockname(), (error) => isOSError(error, 'EBADF'));
});

test('dieWithParent: a child dies when its parent is killed outright', async () => {
  const script = `
    import { spawn } from 'node:child_process';
    const child = spawn(process.execPath, ['--import', 'tsx', '-e',
      "import('./shared/libc.ts').then(({ dieWithParent }) => { dieWithParent('SIGKILL'); console.log('ready'); setInterval(() => {}, 1000); })"],
      { stdio: ['ignore', 'pipe', 'inherit'] });
    child.stdout.once('data', () => console.log(child.pid));
    setInterval(() => {}, 1000);`;
  const parent = $({ cwd: REPO_ROOT, nothrow: true, quiet: true })`node --input-type=module -e ${script}`;
  const childPid = await new Promise<number>((resolve) => parent.stdout.once('data', (data: Buffer) => resolve(Number(data.toString()))));
  assert.equal(isAlive(childPid), true);
  process.kill(parent.pid!, 'SIGKILL');
  await parent;
  assert.equal(await waitUntil(() => !isAlive(childPid), 5000), true, 'the child outlived its killed parent');
});

for (const [platform, wayIn] of [
  ['darwin', /: here, run it in a Linux container or virtual machine, as README\.md shows under "On Windows or macOS" \(中文：README\.zh-CN\.md「在 Windows 或 macOS 上」\); 03-coroutine\.ts runs anywhere Node does\.$/],
  ['win32', /: on Windows, run it inside WSL 2 \(wsl --install\), as README\.md shows under "On Windows or macOS" \(中文：README\.zh-CN\.md「在 Windows 或 macOS 上」\); 03-coroutine\.ts runs anywhere Node does\.$/],
] as const) {
  test(`on ${platform}, importing the libc layer exits with one line that names the way in`, async () => {
    const pretend = `data:text/javascript,Object.defineProperty(process, 'platform', { value: '${platform}' })`;
    // TEMP: where os.tmpdir() looks on Windows (tsx keeps its cache there); unset, it is a relative path.
    const env = { ...process.env, TEMP: os.tmpdir() };
    const result = await $({ cwd: REPO_ROOT, env, nothrow: true, quiet: true })`node --import ${pretend} --import tsx -e ${"import('./shared/libc.ts')"}`;
    assert.equal(result.exitCode, 1);
    const lines = result.stderr.trim().split('\n');
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, new RegExp(`runs only on Linux \\(this is ${platform}\\)`));
    assert.match(lines[0]!, wayIn);
  });
}
