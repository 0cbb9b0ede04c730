/**
 * 05-select.ts: one thread serves every connection, asking select() which sockets are ready.
 *
 * Mirrors the article's section 「select高并发」 (select for high concurrency).
 *
 *     npm install
 *     npx tsx 05-select.ts                # then open http://127.0.0.1:7890/
 *     npx tsx 05-select.ts --verbose      # also log every connection and request
 *     npx tsx 05-select.ts --help         # --port, --host, --root, --idle-timeout, --request-timeout, --trace
 *
 * What to watch while it runs (PID is in the start line):
 *  - `npx tsx 05-select.ts --trace`: every select() call carries the whole list of sockets in,
 *    and the ready ones out, as bit sets. From outside:
 *    `strace -p PID -e trace=pselect6,accept4,recvfrom,sendto` (glibc makes select() the
 *    pselect6 system call, on x86-64 and arm64 alike).
 *  - `ls /proc/PID/fd | wc -l`: one descriptor per client. Open more than a thousand
 *    connections and watch the limit below at work (the log says so).
 *
 * select() is the step up from 04-nonblocking.ts: instead of calling recv() on every socket to
 * find out that most have nothing (EAGAIN), we hand the kernel the list in one call and sleep
 * until at least one socket is ready. The list is an fd_set: a row of 1024 bits, one per
 * descriptor number. We rebuild it before every call; the kernel copies in the bits below
 * nfds (the highest descriptor we watch, plus one; a NULL set is not copied at all), checks
 * socket by socket, and copies them back, and we then scan the answer ourselves: the work
 * grows with the number of connections, busy or not (06-epoll.ts fixes that).
 *
 * And 1024 bits is all there is. The kernel's select takes any nfds (select(2): "the Linux
 * kernel imposes no fixed limit"), but glibc's fd_set is a fixed-size type of FD_SETSIZE =
 * 1024 bits, and so are our FdSet (shared/libc.ts) and the sets Python's select module
 * builds: a descriptor of 1024 or higher cannot be put in one. The article's Python stops
 * with "ValueError: filedescriptor out of range in select()" when the 1021st client or so
 * connects. Here such a client gets a short 503 answer and is closed, with one log line, and
 * everybody else is served as before.
 *
 * Two things the article says that are not quite so. The limit is not "1024 concurrent clients"
 * but descriptor NUMBERS below 1024: every descriptor the process already holds takes a number
 * (Node itself holds some 25, so about 1,000 clients fit here). What counts is each socket's own
 * number: a new descriptor takes the lowest free one, so a socket opened early keeps a small
 * number and can still be watched while the process holds descriptors above 1023
 * (tests/05-select.test.ts checks it). And select is not faster than 04 "because it is a call
 * into the operating system" (recv() is one too): it is ONE call per pass instead of one per
 * socket, and it sleeps until something is ready instead of for a fixed time.
 */
import { setImmediate } from 'node:timers/promises';
import { FD_SETSIZE, FdSet, IPPROTO_TCP, SHUT_WR, Socket, TCP_NODELAY, formatAddress, isOSError, select, type Address } from './shared/libc.ts';
import { announce, exitOnCrash, exitOnListenError, onShutdown, parseCommandLine } from './shared/cli.ts';
import { debug, describeError, isVerbose, log } from './shared/log.ts';
import { RequestReader } from './shared/request-reader.ts';
import { handleRequest, serviceUnavailable } from './shared/handle-request.ts';
import { Outbox } from './shared/outbox.ts';
import { StaticSite } from './shared/static-site.ts';
import { traceSystemCalls } from './shared/trace-calls.ts';

/** Bytes asked of one recv(). One buffer serves every connection, in turn. */
const RECEIVE_BUFFER_BYTES = 64 * 1024;
/** Stop answering a client's requests while more than this waits to be sent to it. */
const OUTBOX_LIMIT = 64 * 1024;
/** Longest time select() may block, so that Ctrl+C is heard promptly (see the loop). */
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
// Start: the listening socket, non-blocking, as in the article.
// ---------------------------------------------------------------------------------------
const options = parseCommandLine('05-select', 'one thread, select() over every connection');
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

// The article's `inputs` list and fd_to_addr dictionary in one: the connections, found by
// descriptor number, which is what select()'s bit sets are indexed by too.
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
});

// ---------------------------------------------------------------------------------------
// The loop
// ---------------------------------------------------------------------------------------

/**
 * Ctrl+C: Node runs a JavaScript signal handler only when its own event loop gets a turn,
 * and a synchronous `while (true) select()` would never give it one. So each pass ends with
 * `await setImmediate()`, which lets Node run pending callbacks (the SIGINT handler among
 * them) before we continue, and select never blocks longer than half a second. A signal
 * also interrupts select at once (EINTR, which our select() reports as "nothing ready").
 */
async function serveForever(): Promise<never> {
  const readable = new FdSet();
  const writable = new FdSet();
  for (;;) {
    // readable, writable, exceptional = select(inputs, outputs, []). The sets are built
    // afresh on every pass, because select() overwrites them with its answer.
    const highestFd = fillSets(readable, writable);
    const readyCount = select(highestFd + 1, readable, writable, null, waitBudgetMs());
    now = Date.now();
    if (readyCount > 0) {
      if (readable.has(server.fd)) acceptNewClients();
      // The answer is a bit set too: we look at every descriptor we asked about.
      for (let fd = 0; fd <= highestFd; fd++) {
        const client = clients[fd];
        if (client === undefined) continue;
        const canRead = readable.has(fd);
        if (canRead || writable.has(fd)) serveClient(client, canRead);
      }
    }
    doChores();
    await setImmediate();
  }
}

/**
 * FD_ZERO, then FD_SET for each socket we wait on: the listener (unless accepting is paused),
 * every client we want to read from, and every client with output waiting for room (asking
 * for "writable" without output would make select() return at once, every time). A client
 * whose answers pile up is not read from until it catches up. Returns the highest fd set.
 */
function fillSets(readable: FdSet, writable: FdSet): number {
  readable.clear();
  writable.clear();
  let highestFd = -1;
  if (acceptPausedUntil === 0) {
    readable.add(server.fd);
    highestFd = server.fd;
  }
  for (let fd = 0; fd < clients.length; fd++) {
    const client = clients[fd];
    if (client === undefined) continue;
    if (wantsInput(client)) readable.add(fd);
    if (!client.outbox.isEmpty) writable.add(fd);
    if (fd > highestFd) highestFd = fd;
  }
  return highestFd;
}

/**
 * How long select may sleep: at most LONGEST_WAIT_MS, less if the sweep is due sooner (so that it
 * runs once a second, not up to half a second late) or accepting resumes sooner.
 */
function waitBudgetMs(): number {
  const nextSweep = lastIdleSweep + IDLE_SWEEP_EVERY_MS;
  const wakeAt = acceptPausedUntil === 0 ? nextSweep : Math.min(nextSweep, acceptPausedUntil);
  return Math.max(0, Math.min(LONGEST_WAIT_MS, wakeAt - Date.now()));
}

/** Work driven by the clock rather than by sockets. */
function doChores(): void {
  if (acceptPausedUntil !== 0 && now >= acceptPausedUntil) acceptPausedUntil = 0; // listen again
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
 * accept() says EAGAIN, "queue empty") instead of one per select().
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
    if (conn.fd >= FD_SETSIZE) {
      turnAway(conn, address);
      continue;
    }
    try {
      conn.setblocking(false);
      // Send small responses at once, without waiting for the client's ACK (Nagle's
      // algorithm would hold the second of two pipelined answers for up to 40 ms).
      conn.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1);
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
 * select()'s limit, met head-on: this connection's descriptor does not fit in an fd_set. Answer
 * 503 and close it; the others are not affected. (What a real server does instead is not to
 * use select: see 06-epoll.ts.) We first read whatever the client already sent, so that close()
 * ends the connection with an orderly FIN, not a reset that could destroy the 503 in flight.
 * A request that arrives only after the close still meets a reset: with no bit to watch this
 * socket by, we cannot close it gently as closeGently() does for the others.
 */
function turnAway(conn: Socket, address: Address): void {
  log(
    `${formatAddress(address)} 503: its descriptor ${conn.fd} is beyond what select() can watch ` +
      `(FD_SETSIZE = ${FD_SETSIZE}: fds 0..${FD_SETSIZE - 1}); closed`,
  );
  try {
    conn.setblocking(false);
    conn.recvInto(receiveBuffer);
  } catch {
    // Usually EAGAIN (nothing sent yet). Any other error: we are closing anyway.
  }
  try {
    conn.send(serviceUnavailable('too many connections for select(); try again later').bytes);
  } catch {
    // The client already left: nothing to tell it.
  }
  conn.close();
}

/**
 * accept() failed with EMFILE (no descriptor left for this process), ENFILE (none left in
 * the system), ENOBUFS or ENOMEM. The connection stays queued in the kernel. Retrying at once
 * would fail again, and select() would report the listener readable again and again: a spin.
 * So leave the listener out of the read set for a pause that grows from 100 ms to 1 s, log
 * once per episode, and carry on serving the clients we already have.
 */
function pauseAccepting(error: unknown): void {
  if (nextAcceptPauseMs === FIRST_ACCEPT_PAUSE_MS) {
    log(`cannot accept new connections: ${describeError(error)}; retrying after a pause (100 ms, growing to 1 s)`);
  }
  acceptPausedUntil = now + nextAcceptPauseMs;
  nextAcceptPauseMs = Math.min(2 * nextAcceptPauseMs, LONGEST_ACCEPT_PAUSE_MS);
}

// ---------------------------------------------------------------------------------------
// One client's turn
// ---------------------------------------------------------------------------------------

/**
 * select() said this client is readable (bytes, its FIN or an error arrived) and/or writable
 * (room in the send buffer again). Whatever goes wrong with one client is caught here and
 * ends that connection only, with one log line; it never reaches the loop.
 */
function serveClient(client: Client, canRead: boolean): void {
  try {
    if (canRead) receive(client);
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
 * One recv() into the shared buffer; its bytes go to this client's RequestReader. Whatever it
 * leaves in the kernel keeps the socket readable, so the next select() reports it again.
 */
function receive(client: Client): void {
  let count: number;
  try {
    count = client.conn.recvInto(receiveBuffer);
  } catch (error) {
    if (isOSError(error, 'EAGAIN')) return; // nothing to read after all
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
 * peek() gives the next bytes: a response in memory, or the next piece of a large file (read
 * with pread into a reused buffer). send() may take only part of them; the outbox remembers
 * where we are, and select()'s write set tells us when there is room again.
 */
function sendPending(client: Client): boolean {
  const { conn, outbox } = client;
  try {
    while (!outbox.isEmpty) {
      const bytes = outbox.peek();
      const sent = conn.send(bytes);
      outbox.consumed(sent);
      client.lastProgress = now;
      if (sent < bytes.length) return false; // the send buffer is full
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
 * Close and forget (it leaves the sets on the next pass). `why` is logged for every
 * connection we end against the client's wishes (an error, a timeout); a normal end is only
 * a --verbose line.
 */
function dropClient(client: Client, why: string | null): void {
  clients[client.conn.fd] = undefined;
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
      serveClient(client, false); // its reader now hands out the 408: answered, logged and closed like a 400
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
