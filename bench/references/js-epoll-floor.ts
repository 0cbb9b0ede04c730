/**
 * bench/references/js-epoll-floor.ts: the C ceiling's loop (c-epoll-ceiling.c) written in
 * TypeScript over shared/libc.ts, as the bench's "JS floor": what a Node process that calls
 * epoll_wait, recv and send through koffi spends per request before doing any HTTP work.
 *
 * Like the C ceiling it answers every request with one fixed response held in memory and only
 * looks for where each request head ends: no parsing, no files, no timeouts, no logging.
 * Between the C ceiling and this floor lies the price of JavaScript and of the FFI calls;
 * between this floor and 06-epoll, the price of the shared HTTP core (framing, parsing,
 * handleRequest, the Outbox) and of the model's own bookkeeping.
 *
 *   npx tsx bench/references/js-epoll-floor.ts PORT BODY_FILE      (PORT 0: any free port)
 */
import { readFileSync } from 'node:fs';
import { setImmediate } from 'node:timers/promises';
import { EPOLLIN, EPOLLOUT, Epoll, IPPROTO_TCP, Socket, TCP_NODELAY, isOSError } from '../../shared/libc.ts';
import { onShutdown } from '../../shared/cli.ts';

/** What one connection still owes its client: `owed` whole responses, the first from `sent`. */
interface Connection {
  socket: Socket;
  owed: number;
  sent: number;
  /** How much of "\r\n\r\n" the bytes received so far end with. */
  matched: number;
  watchingOutput: boolean;
}

const END_OF_HEAD = [0x0d, 0x0a, 0x0d, 0x0a];

function fixedResponse(body: Buffer): Buffer {
  const head =
    'HTTP/1.1 200 OK\r\nServer: js-epoll-floor\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\n' +
    `Content-Type: text/html; charset=utf-8\r\nContent-Length: ${body.length}\r\nAccept-Ranges: bytes\r\n` +
    'Last-Modified: Thu, 01 Jan 2026 00:00:00 GMT\r\nETag: "a52-19b771b5000"\r\n' +
    'X-Content-Type-Options: nosniff\r\nConnection: keep-alive\r\n\r\n';
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

/** Count the request heads that end in these bytes (a head may span two recv() calls). */
function countHeads(connection: Connection, bytes: Buffer, length: number): void {
  let matched = connection.matched;
  for (let i = 0; i < length; i++) {
    const byte = bytes[i];
    matched = byte === END_OF_HEAD[matched] ? matched + 1 : byte === 0x0d ? 1 : 0;
    if (matched === 4) {
      connection.owed += 1;
      matched = 0;
    }
  }
  connection.matched = matched;
}

/** Send what is owed until done (true) or the socket is full (false). */
function flush(connection: Connection, response: Buffer): boolean {
  while (connection.owed > 0) {
    let sent: number;
    try {
      sent = connection.socket.send(connection.sent === 0 ? response : response.subarray(connection.sent));
    } catch (error) {
      if (isOSError(error, 'EAGAIN')) return false;
      throw error;
    }
    connection.sent += sent;
    if (connection.sent === response.length) {
      connection.sent = 0;
      connection.owed -= 1;
    }
  }
  return true;
}

async function main(): Promise<void> {
  const [portText, bodyFile] = process.argv.slice(2);
  if (portText === undefined || bodyFile === undefined) {
    process.stderr.write('usage: js-epoll-floor.ts PORT BODY_FILE\n');
    process.exit(2);
  }
  const response = fixedResponse(readFileSync(bodyFile));
  const server = Socket.listenTCP('127.0.0.1', Number(portText));
  server.setblocking(false);
  const epoll = new Epoll();
  epoll.register(server.fd, EPOLLIN);
  const connections: (Connection | undefined)[] = [];
  const buffer = Buffer.allocUnsafe(64 * 1024);

  const drop = (connection: Connection) => {
    epoll.unregister(connection.socket.fd);
    connections[connection.socket.fd] = undefined;
    connection.socket.close();
  };
  const acceptAll = () => {
    for (;;) {
      let socket: Socket;
      try {
        [socket] = server.accept();
      } catch (error) {
        if (isOSError(error)) return; // EAGAIN: the queue is empty (or out of descriptors)
        throw error;
      }
      socket.setblocking(false);
      socket.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1);
      epoll.register(socket.fd, EPOLLIN);
      connections[socket.fd] = { socket, owed: 0, sent: 0, matched: 0, watchingOutput: false };
    }
  };
  const serve = (connection: Connection, events: number) => {
    if ((events & ~EPOLLOUT) !== 0) {
      // Readable, or hung up / in error (which recv then reports).
      let count: number;
      try {
        count = connection.socket.recvInto(buffer);
      } catch (error) {
        if (!isOSError(error, 'EAGAIN')) return drop(connection);
        count = -1;
      }
      if (count === 0) return drop(connection);
      if (count > 0) countHeads(connection, buffer, count);
    }
    let done: boolean;
    try {
      done = flush(connection, response);
    } catch {
      return drop(connection);
    }
    // Like the C ceiling: epoll_ctl only when the wish for EPOLLOUT changes.
    if (connection.watchingOutput !== !done) {
      connection.watchingOutput = !done;
      epoll.modify(connection.socket.fd, done ? EPOLLIN : EPOLLIN | EPOLLOUT);
    }
  };

  onShutdown(() => {
    for (const connection of connections) if (connection !== undefined) connection.socket.close();
    server.close();
    epoll.close();
  });
  const { port } = server.getsockname();
  process.stdout.write(`js-epoll-floor: serving a fixed response on http://127.0.0.1:${port}/ (pid ${process.pid})\n`);
  for (;;) {
    for (const [fd, events] of epoll.poll(500)) {
      if (fd === server.fd) acceptAll();
      else {
        const connection = connections[fd];
        if (connection !== undefined) serve(connection, events);
      }
    }
    await setImmediate(); // let Node run the Ctrl+C handler, as the models do
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`js-epoll-floor: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
