/**
 * 06-epoll.ts: one thread serves every connection, and the kernel tells it who is ready.
 *
 * Mirrors the article's section 「epoll高并发」 (epoll for high concurrency).
 *
 *     npm install
 *     npx tsx 06-epoll.ts                 # then open http://127.0.0.1:7890/
 *     npx tsx 06-epoll.ts --verbose       # also log every connection and request
 *     npx tsx 06-epoll.ts --help          # --port, --host, --root, --idle-timeout, --request-timeout, --trace
 *
 * What to watch while it runs (PID is in the start line):
 *  - `ls -l /proc/PID/fd`: every client is a `socket:[...]`, and there are several
 *    `anon_inode:[eventpoll]` entries: Node's own event loop (libuv) is an epoll loop too.
 *  - `cat /proc/PID/fdinfo/EPFD` for each of those: ours is the one with a `tfd:` line for the
 *    listening socket and one per client, with the events watched, in hex: 19 is EPOLLIN (1)
 *    plus EPOLLERR (8) and EPOLLHUP (10), which the kernel always adds; 1d adds EPOLLOUT (4).
 *    That is the interest list, read out of the kernel: it is not in this program's memory.
 *  - `npx tsx 06-epoll.ts --trace`: each epoll_wait returns exactly the sockets that are ready,
 *    however many are connected. The same from outside:
 *    `strace -p PID -e trace=epoll_wait,epoll_ctl,accept4,recvfrom,sendto,sendfile` (recv
 *    and send show up as recvfrom and sendto; libuv's own waits are epoll_pwait). These are
 *    x86-64's names: arm64 has no epoll_wait system call, and glibc's epoll_wait() makes an
 *    epoll_pwait there, so trace epoll_pwait and tell ours from libuv's by the EPFD.
 *
 * The article's two figures, in a few words. 04 and 05 keep the list of sockets in the
 * program and ask about all of them on every pass: 04 calls recv() on each one, 05 hands the
 * whole list to select(), which the kernel copies in and checks one by one. That is the cook
 * asking each of 50 diners "hungry yet?". epoll turns it around: we tell the kernel once which
 * sockets we care about (epoll_ctl ADD; the list stays inside the kernel), and epoll_wait hands
 * back only the sockets that became ready, as events. Nothing is scanned: the hungry diners
 * raise a hand. With 10,000 idle connections and 3 busy ones, a pass costs 3, not 10,000.
 *
 * Where the article goes wrong: it says epoll's list of sockets sits in "a special memory
 * space shared by the application and the kernel" (应用程序与内核共享的空间). It does not.
 * The interest list (a red-black tree) and the ready list live inside the kernel; this
 * program holds only a descriptor for them (EPFD). epoll_ctl copies one entry in, and
 * epoll_wait copies the ready events out into an array we pass it. Nothing is mapped:
 * `grep eventpoll /proc/PID/maps` finds nothing (07's rings do show up there, mapped rw-s),
 * and mmap() on an epoll descriptor fails (ENODEV).
 * strace shows the copy-out: `epoll_wait(28, [{events=EPOLLIN, data={u32=29, u64=29}}], 1024,
 * 500) = 1`, the bracketed array being what the kernel wrote into our memory. What epoll saves
 * is handing the whole list over on every call, as select does. Nor does the kernel "tell" us
 * by itself: we still ask, with epoll_wait; the answer is simply ready, because a socket puts
 * itself on the ready list when data arrives. Memory the program and the kernel really share
 * is io_uring's pair of rings: 07-io_uring.ts.
 */
import { setImmediate } from 'node:timers/promises';
import {
  EPOLLERR,
  EPOLLHUP,
  EPOLLIN,
  EPOLLOUT,
  Epoll,
  IPPROTO_TCP,
  SHUT_WR,
  Socket,
  TCP_NODELAY,
  formatAddress,
  isOSError,
  type Address,
} from './shared/libc.ts';
import { announce, exitOnCrash, exitOnListenError, onShutdown, parseCommandLine } from './shared/cli.ts';
import { debug, describeError, isVerbose, log } from './shared/log.ts';
import { RequestReader } from './shared/request-reader.ts';
import { handleRequest } from './shared/handle-request.ts';
import { Outbox } from './shared/outbox.ts';
import { StaticSite } from './shared/static-site.ts';
import { traceSystemCalls } from './shared/trace-calls.ts';

/** Bytes asked of one recv(). One buffer serves every connection, in turn. */
const RECEIVE_BUFFER_BYTES = 64 * 1024;
/** Stop answering a client's requests while more than this waits to be sent to it. */
const OUTBOX_LIMIT = 64 * 1024;
/** Longest time epoll_wait() may block, so that Ctrl+C is heard promptly (see the loop). */
const LONGEST_WAIT_MS = 500;
/** After our last response: how long and how much we keep reading before closing (see closeGently). */
const LINGER_MS = 2000;
const LINGER_LIMIT_BYTES = 64 * 1024;
/** How often idle connections are looked for. */
const IDLE_SWEEP_EVERY_MS = 1000;
/** After accept() fails for lack of descriptors: first pause, and the longest one. */
const FIRST_ACCEPT_PAUSE_MS = 100;
const LONGEST_ACCEPT_PAUSE_MS = 1000;

/** Everything we know about one connection. */
class Client {
  readonly reader = new RequestReader();
  readonly outbox = new Outbox();
  /** "127.0.0.1:53422", for log lines. */
  readonly name: string;
  /** When bytes last moved in either direction; the idle sweep compares against it. */
  lastProgress: number;
  /** The client closed its side (recv() returned 0): answer what we have, then close. */
  inputEnded = false;
  /** Answering stopped until the client reads what we sent; read nothing more meanwhile. */
  answeringPaused = false;
  /** After closeGently(): until when we wait for the client's FIN (0: not closing)... */
  lingerUntil = 0;
  /** ...and how many bytes it sent meanwhile, read and thrown away. */
  discarded = 0;
  /** The events epoll watches for on this socket right now (EPOLLIN and/or EPOLLOUT). */
  watching = EPOLLIN;

  constructor(
    readonly conn: Socket,
    address: Address,
    connectedAt: number,
  ) {
    this.name = formatAddress(address);
    this.lastProgress = connectedAt;
  }
}

// ---------------------------------------------------------------------------------------
// Start: the listening socket, non-blocking, registered with a new epoll instance.
// ---------------------------------------------------------------------------------------
const options = parseCommandLine('06-epoll', 'one thread, one epoll instance, every connection');
if (options.trace) traceSystemCalls(); // --trace: each call below narrates itself on stderr
const verbose = isVerbose();
const site = new StaticSite(options.root);

let server: Socket;
try {
  server = Socket.listenTCP(options.host, options.port);
} catch (error) {
  exitOnListenError(options, error);
}
// Non-blocking, so that "drain accept() until EAGAIN" below can never get stuck.
server.setblocking(false);

// epoll = select.epoll(); epoll.register(server_socket.fileno(), select.EPOLLIN)
const epoll = new Epoll();
epoll.register(server.fd, EPOLLIN);

// The article's fd_to_socket dictionary: epoll reports descriptor numbers, and this finds
// the connection behind one. An array indexed by fd is the quickest such lookup.
const clients: (Client | undefined)[] = [];

// The clock, read once per pass: every event of a pass happened "now" closely enough.
let now = Date.now();
let lastIdleSweep = now;
const receiveBuffer = Buffer.allocUnsafe(RECEIVE_BUFFER_BYTES);

// Accepting can be paused for a while when the process runs out of descriptors (EMFILE).
let acceptPausedUntil = 0; // 0: accepting
let nextAcceptPauseMs = FIRST_ACCEPT_PAUSE_MS;

onShutdown(() => {
  for (const client of clients) if (client !== undefined) dropClient(client, null);
  server.close();
  epoll.close();
});

// ---------------------------------------------------------------------------------------
// The loop
// ---------------------------------------------------------------------------------------

/**
 * Ctrl+C: Node runs a JavaScript signal handler only when its own event loop gets a turn,
 * and a synchronous `while (true) epoll_wait()` would never give it one. So each pass ends
 * with `await setImmediate()`, which lets Node run pending callbacks (the SIGINT handler
 * among them) before we continue, and epoll_wait never blocks longer than half a second.
 * A signal also interrupts epoll_wait at once (EINTR, which poll() reports as no events).
 */
async function serveForever(): Promise<never> {
  for (;;) {
    // Block until some watched socket is ready. Only ready ones come back, as [fd, events].
    const ready = epoll.poll(waitBudgetMs());
    now = Date.now();
    for (const [fd, events] of ready) {
      if (fd === server.fd) {
        acceptNewClients();
      } else {
        const client = clients[fd];
        if (client !== undefined) serveClient(client, events);
      }
    }
    doChores();
    await setImmediate();
  }
}

/**
 * How long epoll_wait may sleep: at most LONGEST_WAIT_MS, less if the sweep is due sooner (so that it
 * runs once a second, not up to half a second late) or accepting resumes sooner.
 */
function waitBudgetMs(): number {
  const nextSweep = lastIdleSweep + IDLE_SWEEP_EVERY_MS;
  const wakeAt = acceptPausedUntil === 0 ? nextSweep : Math.min(nextSweep, acceptPausedUntil);
  return Math.max(0, Math.min(LONGEST_WAIT_MS, wakeAt - Date.now()));
}

/** Work driven by the clock rather than by events. */
function doChores(): void {
  if (acceptPausedUntil !== 0 && now >= acceptPausedUntil) {
    acceptPausedUntil = 0;
    epoll.register(server.fd, EPOLLIN); // watch the listener again
  }
  if (now - lastIdleSweep >= IDLE_SWEEP_EVERY_MS) {
    lastIdleSweep = now;
    closeIdleClients();
  }
}

// ---------------------------------------------------------------------------------------
// New connections
// ---------------------------------------------------------------------------------------

/**
 * The listener is readable: connections wait in its queue. Take all of them now (until
 * accept() says EAGAIN, "queue empty") instead of one per epoll_wait.
 */
function acceptNewClients(): void {
  for (;;) {
    let conn: Socket;
    let address: Address;
    try {
      [conn, address] = server.accept();
    } catch (error) {
      if (isOSError(error, 'EAGAIN')) return; // the queue is empty: the normal way out
      if (isOSError(error, 'ECONNABORTED')) continue; // that client gave up while queued
      pauseAccepting(error); // EMFILE and friends: out of descriptors or memory
      return;
    }
    if (nextAcceptPauseMs !== FIRST_ACCEPT_PAUSE_MS) {
      log('accepting new connections again');
      nextAcceptPauseMs = FIRST_ACCEPT_PAUSE_MS;
    }
    try {
      conn.setblocking(false);
      // Send small responses at once, without waiting for the client's ACK (Nagle's
      // algorithm would hold the second of two pipelined answers for up to 40 ms).
      conn.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1);
      // epoll.register(conn.fileno(), select.EPOLLIN): the kernel adds it to its list.
      epoll.register(conn.fd, EPOLLIN);
    } catch (error) {
      log(`${formatAddress(address)} dropped at once: ${describeError(error)}`);
      conn.close();
      continue;
    }
    clients[conn.fd] = new Client(conn, address, now);
    debug(`client ${formatAddress(address)} online (fd ${conn.fd})`);
  }
}

/**
 * accept() failed with EMFILE (no descriptor left for this process), ENFILE (none left in
 * the system), ENOBUFS or ENOMEM. The connection stays queued in the kernel. Retrying at once
 * would fail again, and level-triggered epoll would wake us for it again and again: a spin.
 * So stop watching the listener for a pause that grows from 100 ms to 1 s, log once per
 * episode, and carry on serving the clients we already have (closing some frees descriptors).
 */
function pauseAccepting(error: unknown): void {
  if (nextAcceptPauseMs === FIRST_ACCEPT_PAUSE_MS) {
    log(`cannot accept new connections: ${describeError(error)}; retrying after a pause (100 ms, growing to 1 s)`);
  }
  epoll.unregister(server.fd);
  acceptPausedUntil = now + nextAcceptPauseMs;
  nextAcceptPauseMs = Math.min(2 * nextAcceptPauseMs, LONGEST_ACCEPT_PAUSE_MS);
}

// ---------------------------------------------------------------------------------------
// One client's turn
// ---------------------------------------------------------------------------------------

/**
 * epoll said this client is ready: readable (EPOLLIN: bytes or the client's FIN arrived),
 * writable (EPOLLOUT: room in the send buffer again), or broken (EPOLLHUP/EPOLLERR, which
 * epoll always reports). Whatever goes wrong with one client is caught here and ends that
 * connection only, with one log line; it never reaches the loop.
 */
function serveClient(client: Client, events: number): void {
  try {
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) !== 0 && wantsInput(client)) receive(client);
    if (client.lingerUntil !== 0) {
      // Closing gently: done once the client has closed too, or has sent too much.
      if (client.inputEnded || client.discarded > LINGER_LIMIT_BYTES) dropClient(client, null);
      return;
    }
    answerAndSend(client);
    if (client.outbox.isEmpty && client.inputEnded) {
      dropClient(client, null); // all answered: the polite end of a connection
    } else if (client.outbox.isEmpty && client.outbox.closeAfterDrain) {
      closeGently(client);
      watchFor(client); // EPOLLIN only: the rest of what it sends, and its FIN
    } else if ((events & (EPOLLHUP | EPOLLERR)) !== 0) {
      dropClient(client, 'connection lost'); // broken, and nothing above noticed how
    } else {
      watchFor(client);
    }
  } catch (error) {
    // ECONNRESET, EPIPE, a file that shrank... While closing gently a reset is only the
    // client leaving too, after it had its answer: no log line then.
    dropClient(client, client.lingerUntil !== 0 ? null : describeError(error));
  }
}

/**
 * We read from a client unless it is done sending, or is not reading our answers. While we
 * close gently we read everything, to throw it away.
 */
function wantsInput(client: Client): boolean {
  if (client.lingerUntil !== 0) return true;
  return !client.inputEnded && !client.outbox.closeAfterDrain && !client.answeringPaused;
}

/**
 * Level-triggered, as in the article: epoll reports a socket for as long as it is ready, not
 * just when it becomes ready. So one recv() per event is enough; whatever it leaves behind is
 * reported again by the next epoll_wait. Leaving EPOLLOUT switched on for an idle client
 * would therefore wake us on every pass (a socket with an empty send buffer is always
 * writable): we ask for EPOLLOUT only while output is waiting. epoll_ctl costs a system
 * call, so it is made only when the wish changes.
 */
function watchFor(client: Client): void {
  const wanted = (wantsInput(client) ? EPOLLIN : 0) | (client.outbox.isEmpty ? 0 : EPOLLOUT);
  if (wanted !== client.watching) {
    epoll.modify(client.conn.fd, wanted);
    client.watching = wanted;
  }
}

/** One recv() into the shared buffer; its bytes go to this client's RequestReader. */
function receive(client: Client): void {
  let count: number;
  try {
    count = client.conn.recvInto(receiveBuffer);
  } catch (error) {
    if (isOSError(error, 'EAGAIN')) return; // a stale event: nothing to read after all
    throw error;
  }
  if (count === 0) {
    // recv() returned b'': the client closed its side. The article closes at once; we first
    // finish sending what it asked for (answerAndSend), then close.
    client.inputEnded = true;
    return;
  }
  client.lastProgress = now;
  if (client.lingerUntil !== 0) client.discarded += count; // after our last response: thrown away
  else client.reader.push(receiveBuffer, count);
}

/**
 * Answer the complete requests the reader holds and send what the socket takes. If answering
 * paused for a backed-up outbox and sending then emptied it, answer the next requests (a
 * pipelining client may have sent them long ago) and send again, until the reader is empty
 * or the socket full.
 */
function answerAndSend(client: Client): void {
  do {
    answerRequests(client);
  } while (sendPending(client) && client.answeringPaused);
}

/**
 * The one place where requests become responses, through the shared handleRequest. A client
 * that pipelines requests without reading the answers must not grow our memory without
 * bound, so we pause answering while more than OUTBOX_LIMIT waits to be sent to it (one large
 * file is enough), and read nothing more from it until answering resumes.
 */
function answerRequests(client: Client): void {
  const { reader, outbox } = client;
  client.answeringPaused = false;
  while (!outbox.closeAfterDrain) {
    if (outbox.pendingBytes > OUTBOX_LIMIT) {
      client.answeringPaused = true;
      // The reader may still be looking at bytes in receiveBuffer, which the next recv() (for any
      // client) overwrites: have it copy them now.
      client.reader.detach();
      return;
    }
    const parsed = reader.next();
    if (parsed === null) return; // needs more bytes
    const response = handleRequest(parsed, site, now); // the pass's clock reading serves its requests too
    if (response.status >= 400) log(`${client.name} ${response.status} ${response.reason}`);
    else if (verbose && parsed.kind === 'request') debug(`${client.name} ${parsed.method} ${parsed.target} ${response.status}`);
    outbox.push(response); // after a response with close=true, the loop ends
  }
}

/**
 * Send until the outbox is empty (returns true) or the socket's send buffer is full (false).
 * Small responses are bytes in memory: send(). A large file goes with sendfile(2): the kernel
 * copies from the page cache straight into the socket, and the file never passes through
 * JavaScript. Either call may take only part of what we offered; the outbox remembers where
 * we are, and EPOLLOUT tells us when there is room again.
 */
function sendPending(client: Client): boolean {
  const { conn, outbox } = client;
  try {
    while (!outbox.isEmpty) {
      let offered: number;
      let sent: number;
      const file = outbox.peekFile();
      if (file !== null) {
        offered = file.length;
        sent = conn.sendfile(file.fd, file.offset, file.length);
        if (sent === 0) throw new Error(`file ended ${file.length} bytes early (it shrank while being sent)`);
      } else {
        const bytes = outbox.peek();
        offered = bytes.length;
        sent = conn.send(bytes);
      }
      outbox.consumed(sent);
      client.lastProgress = now;
      if (sent < offered) return false; // the send buffer is full
    }
    return true;
  } catch (error) {
    if (isOSError(error, 'EAGAIN')) return false; // full before we sent a byte
    throw error;
  }
}

// ---------------------------------------------------------------------------------------
// Ending connections
// ---------------------------------------------------------------------------------------

/**
 * Unregister, close, forget. `why` is logged for every connection we end against the
 * client's wishes (an error, a timeout); a normal end is only a --verbose line.
 */
function dropClient(client: Client, why: string | null): void {
  const fd = client.conn.fd;
  clients[fd] = undefined;
  try {
    epoll.unregister(fd); // close() would do it too; the article does it explicitly
  } catch {
    // Not registered (it failed half-way): nothing to undo.
  }
  client.outbox.discard(); // closes any file it was sending
  client.conn.close();
  if (why === null) debug(`client ${client.name} offline`);
  else log(`${client.name} closed: ${why}`);
}

/**
 * We decided to close (Connection: close, or an error such as 400) and every byte is sent.
 * shutdown(SHUT_WR) sends our FIN; then we go on reading, and throw away what the client still
 * sends until it closes too (at most LINGER_LIMIT_BYTES, for at most LINGER_MS; the sweep ends
 * the wait). Why not close() at once: closing a socket with unread bytes makes the kernel send
 * a reset instead of a FIN, and a reset can destroy the response the client has not read yet,
 * our 400 or 413 for instance (RFC 9112 §9.6).
 */
function closeGently(client: Client): void {
  client.conn.shutdown(SHUT_WR);
  client.lingerUntil = now + LINGER_MS;
}

/**
 * A connection that moved no byte in either direction for --idle-timeout seconds is closed:
 * otherwise clients that connect and say nothing would pile up until descriptors run out.
 * Sending a byte now and then resets that clock, so a request also has a deadline of its own:
 * still incomplete --request-timeout seconds after its first byte, it is answered 408 and the
 * connection closes. Else a client trickling its request would hold the connection forever.
 */
function closeIdleClients(): void {
  for (const client of clients) {
    if (client === undefined) continue;
    if (client.lingerUntil !== 0) {
      if (now >= client.lingerUntil) dropClient(client, null); // closing gently: it had its chance
    } else if (now - client.lastProgress >= options.idleTimeoutMs) {
      dropClient(client, `idle for ${Math.round((now - client.lastProgress) / 1000)} s`);
    } else if (client.reader.expire(now, options.requestTimeoutMs)) {
      serveClient(client, 0); // its reader now hands out the 408: answered, logged and closed like a 400
    }
  }
}

// ---------------------------------------------------------------------------------------
// Start: the start line, then the loop until Ctrl+C.
//
// main() is called here rather than written as a top-level `await serveForever()`: a copy of
// this file in a CommonJS package (what `npm init -y` makes) could not be compiled with one.
// ---------------------------------------------------------------------------------------
async function main(): Promise<void> {
  announce(options, server.getsockname());
  await serveForever();
}

main().catch(exitOnCrash);
