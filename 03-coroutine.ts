/**
 * 03-coroutine.ts: one coroutine per connection
 *
 * Mirrors the article's section 「协程并发」 (concurrency with coroutines, gevent).
 *
 *     npm install
 *     npx tsx 03-coroutine.ts [--port 7890] [--root DIR] [--idle-timeout S] [--verbose]
 *
 * The article's gevent server is the blocking server of 「多进程」 with two changes:
 * `monkey.patch_all()` at the top, and `gevent.spawn(handle_request, new_socket)` where the
 * process used to start. After patch_all(), a "blocking" `socket.recv()` no longer blocks the
 * process: it parks the current greenlet, and gevent's event loop (libev/libuv, running epoll)
 * switches to another greenlet whose socket is ready. The code still reads top to bottom like
 * blocking code; the switches are hidden inside recv() and send().
 *
 * Node needs no patching: its sockets never block. libuv runs epoll underneath and a Node
 * program is always "inside the event loop". What gevent hides, JavaScript spells out: an
 * `async function` is our coroutine, and every `await` is a place where it may be parked while
 * others run, where a greenlet would be parked inside a patched recv() or send(). The analogy
 * has limits. A greenlet has a stack of its own, so it can switch inside any patched call, at
 * any depth, with no mark in the code; an async function can be parked only at its own
 * `await`s. `gevent.spawn` only schedules a greenlet; an async function runs at once, up to its
 * first `await`. And an `await` always suspends, even on a value that is already there (the
 * function resumes in a later microtask). So below, `serveClient` is the article's
 * `handle_request`, written as one loop per connection, and calling it without waiting for it
 * plays the part of `gevent.spawn`.
 *
 * What to watch:
 *   - `ps -T -p PID`: the same handful of Node threads whether 1 or 1000 clients are connected
 *     (compare 02-multithread.ts). A parked coroutine and its socket cost a few KiB, not a thread.
 *   - `ls -l /proc/PID/fd`: one socket per connected client, nothing else grows.
 *   - `npx tsx 03-coroutine.ts --trace`: where each coroutine parks (its awaits) and what it
 *     resumes with. From outside, `strace -f -e trace=epoll_pwait,accept4,read,write -p PID` shows
 *     libuv's loop, the one that 05-select.ts and 06-epoll.ts write by hand, doing the waiting for
 *     every coroutine at once.
 *   - A download of a big file with a slow reader (`curl --limit-rate 100k`) parks only its own
 *     coroutine: everybody else is still answered at once.
 *
 * This file uses only Node's own modules (no shared/libc.ts), so it runs on any OS Node runs on.
 */
import net from 'node:net';
import fs from 'node:fs';
import { promisify } from 'node:util';
import { announce, exitOnListenError, onShutdown, parseCommandLine } from './shared/cli.ts';
import { debug, describeError, formatAddress, isVerbose, log } from './shared/log.ts';
import { handleRequest, type FileBody } from './shared/handle-request.ts';
import { RequestReader } from './shared/request-reader.ts';
import { StaticSite } from './shared/static-site.ts';
import { narrateCoroutines } from './shared/trace.ts';

const options = parseCommandLine('03-coroutine', 'one coroutine (async function) per connection, on node:net');
const site = new StaticSite(options.root);

/** How much of a large file is read from disk and handed to the socket at a time. */
const FILE_PIECE_BYTES = 64 * 1024;
/** After our last response: how long and how much we keep reading before closing (see close()). */
const LINGER_MS = 2000;
const LINGER_LIMIT_BYTES = 64 * 1024;

// ---------------------------------------------------------------------------------------
// The socket as a coroutine sees it.
//
// gevent gives a greenlet `recv()` and `sendall()` that look blocking but switch. Here are the
// same two calls for a net.Socket; each returns a promise, and the coroutine awaits it:
//   recv()     next bytes from the client, or null once the client has closed (Python's b'').
//   sendall()  hand bytes to the socket; if its buffer is full (a slow reader), wait for
//              'drain'. This wait is backpressure: it parks this coroutine only, and stops
//              it from queueing an unbounded amount of data for a client that does not read.
// Both throw when the connection failed (reset by the peer, idle for too long).
// ---------------------------------------------------------------------------------------

/** Raised inside a coroutine whose client stayed silent for --idle-timeout. */
class IdleTimeout extends Error {
  constructor(ms: number) {
    super(`idle for ${ms / 1000} s: closed`);
  }
}

/** Stop reading from a client while this much of what it sent waits for its coroutine. */
const RECEIVED_LIMIT_BYTES = 64 * 1024;

class CoroutineSocket {
  /** Reassembles the client's requests; here, not in the coroutine, so that the sweep sees it too. */
  readonly reader = new RequestReader();
  private waiting: (() => void) | null = null;
  /** Bytes that arrived and wait for the coroutine's next recv(), oldest first. */
  private readonly received: Buffer[] = [];
  private receivedBytes = 0;
  private ended = false; //   the client closed its side (FIN), or the socket is gone
  private closed = false; //  the socket is destroyed
  private failure: Error | null = null;
  /** When bytes last moved in either direction; checkIdle() compares against it. */
  private lastProgress = Date.now();
  /** After close(): until when we wait for the client's FIN (0: not closing). */
  private lingerUntil = 0;

  constructor(readonly socket: net.Socket) {
    // Every event that could let a parked coroutine continue wakes it; recv() and sendall()
    // then look at what happened. A coroutine waits for one thing at a time, so one slot for
    // the waiting resolver is enough.
    //
    // Incoming bytes arrive as 'data' events and queue here until the coroutine asks for
    // them. If it is busy elsewhere (waiting for a slow reader to drain its answers, say) and
    // the client keeps sending, pause() stops reading from the kernel: the client's own TCP
    // window then fills up, and our memory stays bounded.
    socket.on('data', (chunk: Buffer) => {
      this.received.push(chunk);
      this.receivedBytes += chunk.length;
      if (this.receivedBytes >= RECEIVED_LIMIT_BYTES) socket.pause();
      this.lastProgress = Date.now();
      this.wake();
    });
    socket.on('drain', () => {
      this.lastProgress = Date.now(); // a slow reader took our bytes: not idle
      this.wake();
    });
    socket.on('end', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('close', () => {
      this.ended = this.closed = true;
      live.delete(this);
      this.wake();
    });
    // An 'error' event without a listener would crash the whole process: here it only
    // ends this one coroutine (recv or sendall throws it).
    socket.on('error', (error) => {
      this.failure ??= error;
      this.wake();
    });
    live.add(this); // the connections the idle sweep (below) looks at
  }

  private readonly wake = (): void => {
    const resume = this.waiting;
    this.waiting = null;
    resume?.();
  };

  /** Park this coroutine until the socket reports something. The greenlet switch. */
  private nextEvent(): Promise<void> {
    return new Promise((resolve) => (this.waiting = resolve));
  }

  private throwIfFailed(): void {
    if (this.failure !== null) throw this.failure;
    if (this.closed) throw new Error('connection closed');
  }

  async recv(): Promise<Buffer | null> {
    for (;;) {
      if (this.failure !== null) throw this.failure;
      const chunk = this.received.shift();
      if (chunk !== undefined) {
        this.receivedBytes -= chunk.length;
        if (this.socket.isPaused() && this.receivedBytes < RECEIVED_LIMIT_BYTES) this.socket.resume();
        return chunk;
      }
      if (this.ended) return null;
      await this.nextEvent();
    }
  }

  async sendall(data: Buffer): Promise<void> {
    this.throwIfFailed();
    // write() never blocks: it queues what the kernel does not take at once, and returns
    // false once the queue is over its limit (writableHighWaterMark: 16 KiB on Node 20, 64 KiB
    // from Node 22 on). Then we wait until it has drained.
    if (this.socket.write(data)) return;
    while (this.socket.writableNeedDrain) {
      await this.nextEvent();
      this.throwIfFailed();
    }
  }

  /**
   * Close after the last response: end() sends our FIN once every queued byte is out. Then
   * read and throw away whatever the client still sends until it closes too: closing a socket
   * with unread bytes makes the kernel answer with a reset, which can destroy the response
   * the client has not read yet (an error page, say). Bounded in bytes, and in time once our
   * last byte is out (the sweep ends the wait), so nobody can keep us forever.
   */
  async close(): Promise<void> {
    this.socket.end(() => {
      this.lingerUntil = Date.now() + LINGER_MS;
    });
    let discarded = 0;
    for (let data = await this.recv(); data !== null; data = await this.recv()) {
      discarded += data.length;
      if (discarded > LINGER_LIMIT_BYTES) {
        this.socket.destroy();
        return;
      }
    }
    // Both sides have closed: Node destroys the socket by itself once our last queued byte
    // is out (destroying it now could throw away the end of the last response).
  }

  /** Called by the sweep: end this connection if it has waited too long. */
  checkIdle(now: number, idleTimeoutMs: number, requestTimeoutMs: number): void {
    if (this.lingerUntil !== 0) {
      if (now >= this.lingerUntil) this.socket.destroy(); // closing gently: it had its chance
    } else if (now - this.lastProgress >= idleTimeoutMs) {
      this.failure ??= new IdleTimeout(idleTimeoutMs);
      this.socket.destroy();
      this.wake();
    } else if (this.reader.expire(now, requestTimeoutMs)) {
      // The reader now hands out a 408. The coroutine is parked in recv(), waiting for the rest
      // of that request: an empty read wakes it, and it answers the 408 like a 400, then closes.
      this.received.push(Buffer.alloc(0));
      this.wake();
    }
  }
}

// ---------------------------------------------------------------------------------------
// Idle connections.
//
// A client that connects and says nothing would otherwise hold its socket and coroutine
// forever. Node can time each socket itself (socket.setTimeout), but it then re-arms a timer
// on every read and every write: a cost on every request, to catch a rare case. Instead,
// as 04-07 do, we note when bytes last moved and look at every connection once a second.
// Reads and drained writes both count, so a client that receives a big file slowly is not idle.
// A client that trickles its request a byte at a time is never idle, so the same look also
// gives each request a deadline: --request-timeout seconds from its first byte, then a 408.
// ---------------------------------------------------------------------------------------
const live = new Set<CoroutineSocket>();
const IDLE_SWEEP_EVERY_MS = 1000;

setInterval(() => {
  const now = Date.now();
  for (const conn of live) conn.checkIdle(now, options.idleTimeoutMs, options.requestTimeoutMs);
}, IDLE_SWEEP_EVERY_MS).unref();

// ---------------------------------------------------------------------------------------
// One coroutine per connection: the article's handle_request(new_socket).
// ---------------------------------------------------------------------------------------

function describePeer(socket: net.Socket): string {
  return formatAddress({ host: socket.remoteAddress ?? '?', port: socket.remotePort ?? 0 });
}

async function serveClient(socket: net.Socket): Promise<void> {
  const peer = describePeer(socket);
  const conn = new CoroutineSocket(socket);
  debug(`${peer} OnLine`);
  try {
    await serveRequests(conn, peer);
    await conn.close();
    debug(`${peer} OffLine`);
  } catch (error) {
    // Whatever went wrong ends this coroutine only. One line says why.
    log(`${peer} dropped: ${describeDrop(error)}`);
    socket.destroy();
  }
}

/** Answer requests until the client closes or a response says "Connection: close". */
async function serveRequests(conn: CoroutineSocket, peer: string): Promise<void> {
  const { reader } = conn;
  for (;;) {
    // Python: recv_msg = new_socket.recv(1024). The coroutine is parked here until bytes
    // arrive; meanwhile every other connection is being served.
    const received = await conn.recv();
    if (received === null) return; // the client closed the connection

    // TCP delivers a stream, not messages: these bytes may hold half a request, or several
    // pipelined ones. The reader reassembles them; we answer each complete request in order.
    reader.push(received);
    for (let parsed = reader.next(); parsed !== null; parsed = reader.next()) {
      const response = handleRequest(parsed, site);
      if (response.status >= 400) log(`${peer} ${response.status} ${response.reason}`);
      else if (isVerbose() && parsed.kind === 'request') debug(`${peer} ${parsed.method} ${parsed.target} ${response.status}`);

      // Awaiting each response before parsing the next request keeps memory bounded: a
      // client that pipelines requests but reads nothing parks its coroutine right here.
      if (response.file === null) await conn.sendall(response.bytes);
      else await sendFileResponse(conn, response.bytes, response.file);
      if (response.close) return;
    }
  }
}

// fs.read on a plain descriptor, as a promise: the disk read runs on libuv's thread pool and
// the coroutine is parked meanwhile (gevent would need a thread pool for this too).
const readPiece = promisify(fs.read);

/**
 * The head, then a large file piece by piece. Each piece waits for the socket to drain, so a
 * slow reader costs us one piece of memory, not the whole file. The descriptor is ours to
 * close, whether the body was sent, the file shrank, or the client left halfway.
 */
async function sendFileResponse(conn: CoroutineSocket, head: Buffer, file: FileBody): Promise<void> {
  try {
    await conn.sendall(head);
    const end = file.offset + file.length;
    for (let position = file.offset; position < end; ) {
      // A fresh buffer per piece: the socket may still be holding the previous one.
      const piece = Buffer.allocUnsafe(Math.min(FILE_PIECE_BYTES, end - position));
      const { bytesRead } = await readPiece(file.fd, piece, 0, piece.length, position);
      // Content-Length is already sent; a short file would leave the client waiting for bytes
      // that never come. Throwing drops the connection, which at least tells it so.
      if (bytesRead === 0) throw new Error(`file ended ${end - position} bytes early (it shrank while being sent)`);
      position += bytesRead;
      await conn.sendall(bytesRead === piece.length ? piece : piece.subarray(0, bytesRead));
    }
  } finally {
    closeQuietly(file.fd);
  }
}

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // Already closed: nothing left to release.
  }
}

/** Why a connection ended early, in a few words. */
function describeDrop(error: unknown): string {
  if (error instanceof IdleTimeout) return error.message;
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ECONNRESET') return 'connection reset by the client (ECONNRESET)';
  if (code === 'EPIPE') return 'the client went away mid-response (EPIPE)';
  return describeError(error);
}

// ---------------------------------------------------------------------------------------
// The listening socket.
//
// The article loops `new_socket, client_addr = tcp_server_socket.accept()` and spawns a
// greenlet per socket. In Node, libuv owns that loop: when epoll says the listening socket is
// readable it calls accept() and hands us each new socket through the 'connection' callback.
// Calling serveClient() without awaiting it plays the part of gevent.spawn(), except that
// spawn() only schedules the greenlet: serveClient() runs at once, until its first await, and
// then the loop moves on.
// ---------------------------------------------------------------------------------------
const server = net.createServer({ noDelay: true }, (socket) => {
  void serveClient(socket);
});
if (options.trace) narrateCoroutines(server, CoroutineSocket.prototype); // --trace: every await, on stderr

server.on('error', (error: NodeJS.ErrnoException) => {
  // Before listening, an error means we could not bind: one line and exit 2.
  if (!server.listening) exitOnListenError(options, error);
  // Afterwards it is an accept() failure; log it and keep serving.
  //
  // Out of descriptors (EMFILE) is the interesting case, and libuv decides it for us: it keeps
  // one spare descriptor open, and when accept() fails with EMFILE it closes the spare,
  // accepts every waiting connection and closes each at once ("we are overloaded"), then
  // reopens the spare. The waiting clients see their connection closed without an answer, the
  // loop does not spin, and Node never emits this event for it. A server that wants to make
  // waiting clients wait instead must call accept() itself (01, 04, 05, 06 do).
  log(`accept failed: ${describeError(error)}; still serving`);
});

server.listen(options.port, options.host, () => {
  const { address, port } = server.address() as net.AddressInfo;
  announce(options, { host: address, port });
});

// Ctrl+C: stop accepting; process.exit() then closes every client socket with the process.
// Nothing else to clean up: coroutines are not processes or threads, nothing outlives us.
onShutdown(() => server.close());
