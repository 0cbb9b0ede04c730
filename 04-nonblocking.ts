/**
 * 04-nonblocking.ts: one thread serves every connection by asking each socket, over and over.
 *
 * Mirrors the article's section 「单线程非阻塞」 (single thread, non-blocking sockets).
 *
 *     npm install
 *     npx tsx 04-nonblocking.ts                    # then open http://127.0.0.1:7890/
 *     npx tsx 04-nonblocking.ts --verbose          # a summary of the polling every second
 *     npx tsx 04-nonblocking.ts --interval 500     # the article's half-second pause
 *     npx tsx 04-nonblocking.ts --help             # --port, --host, --root, --idle-timeout, --request-timeout, --trace
 *
 * What to watch while it runs (PID is in the start line):
 *  - With --verbose, once per second: "last 1.0 s: 93 passes, 93 accept() EAGAIN, 186 recv()
 *    EAGAIN" (two quiet clients). Almost every question the loop asks is answered "not yet".
 *  - `npx tsx 04-nonblocking.ts --trace`: each pass's calls, nearly all failing with EAGAIN, and
 *    a line that sums the pass up. From outside, `strace -p PID -e trace=accept4,recvfrom,sendto`
 *    shows the same steady rain, even when nobody is connected (recv and send are recvfrom and
 *    sendto there).
 *  - `top -p PID` with `--interval 1`: the CPU a polling loop burns while it waits.
 *
 * A blocking recv() waits until its one client sends something, which is why 01–03 give each
 * client a process, a thread or a coroutine of its own. Here every socket is switched to
 * non-blocking mode (O_NONBLOCK, Python's setblocking(False)): accept() and recv() then answer
 * at once, and "nothing has arrived yet" comes back as the error EAGAIN ("try again"). So one
 * thread can look after everybody: try accept(), try recv() on every client, answer those
 * that sent something, pause a moment, and go round again.
 *
 * The pause (--interval) is the trade-off this model is about. Without it the loop would ask
 * all day and burn a whole CPU core on EAGAINs while nobody is there; with it, a request that
 * arrives just after a pass waits until the next one. The article sleeps 0.5 s: every request
 * then waits up to half a second, and a page with ten pieces (HTML, CSS, images) crawls in.
 * The default 10 ms is too short for a person to notice, and costs about a hundred passes a
 * second when idle. 05-select.ts and 06-epoll.ts end the dilemma: the kernel wakes us exactly
 * when a socket is ready, and not before.
 *
 * The article explains this loop's slowness with a list of sockets that "must be copied into
 * kernel space" for accept and recv. No list is copied here: each recv() passes one descriptor
 * number (strace: `recvfrom(30, 0x39395f70, 65536, 0, NULL, NULL) = -1 EAGAIN`). The cost is one
 * system call per socket per pass, nearly all answered EAGAIN (an error return; Python turns it
 * into an exception), plus the pause. Copying the whole list in and out on every call is what
 * select() does, in 05.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { IPPROTO_TCP, SHUT_WR, Socket, TCP_NODELAY, formatAddress, isOSError, type Address } from './shared/libc.ts';
import { announce, exitOnCrash, exitOnListenError, onShutdown, parseCommandLine, type ExtraFlag } from './shared/cli.ts';
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
/** After our last response: how long and how much we keep reading before closing (see closeGently). */
const LINGER_MS = 2000;
const LINGER_LIMIT_BYTES = 64 * 1024;
/** How often idle connections are looked for (and, with --verbose, the polling summed up). */
const IDLE_SWEEP_EVERY_MS = 1000;
/** After accept() fails for lack of descriptors: first pause, and the longest one. */
const FIRST_ACCEPT_PAUSE_MS = 100;
const LONGEST_ACCEPT_PAUSE_MS = 1000;

const INTERVAL_FLAG: ExtraFlag = {
  name: 'interval',
  valueName: 'MS',
  help: 'pause between two passes over the sockets',
  default: 10,
  min: 1,
  max: 5000,
};

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
const options = parseCommandLine('04-nonblocking', 'one thread polling non-blocking sockets', [INTERVAL_FLAG]);
const intervalMs = options.extra[INTERVAL_FLAG.name]!;
if (options.trace) traceSystemCalls({ passPauseMs: intervalMs }); // --trace: each pass narrated on stderr
const verbose = isVerbose();
const site = new StaticSite(options.root);

let server: Socket;
try {
  server = Socket.listenTCP(options.host, options.port);
} catch (error) {
  exitOnListenError(options, error);
}
// tcp_server_socket.setblocking(False): from now on accept() never waits; when nobody is
// queued it fails with EAGAIN at once.
server.setblocking(false);

// The article's client_socket_list and fd_to_addr in one: the connections, by descriptor.
const clients: (Client | undefined)[] = [];

// The clock, read once per pass: everything in a pass happened "now" closely enough.
let now = Date.now();
let lastIdleSweep = now;
const receiveBuffer = Buffer.allocUnsafe(RECEIVE_BUFFER_BYTES);

// Accepting can be paused for a while when the process runs out of descriptors (EMFILE).
let acceptPausedUntil = 0; // 0: accepting
let nextAcceptPauseMs = FIRST_ACCEPT_PAUSE_MS;

// What the polling cost since the last summary (shown with --verbose).
let passes = 0;
let acceptEagains = 0;
let recvEagains = 0;

onShutdown(() => {
  for (const client of clients) if (client !== undefined) dropClient(client, null);
  server.close();
});

// ---------------------------------------------------------------------------------------
// The loop
// ---------------------------------------------------------------------------------------

/**
 * One pass: try accept(), then try every client, then pause. The pause is an `await`, which
 * also hands control back to Node's event loop: that is where Ctrl+C's handler gets to run
 * (a synchronous `while (true)` with a blocking sleep would never let it), so the model stops
 * at once whatever --interval is.
 */
async function serveForever(): Promise<never> {
  for (;;) {
    now = Date.now();
    passes += 1;
    if (acceptPausedUntil === 0) acceptNewClients();
    for (const client of clients) {
      if (client !== undefined) serveClient(client);
    }
    doChores();
    await sleep(intervalMs); // time.sleep(0.5) in the article
  }
}

/** Work driven by the clock: resume accepting, close idle clients, sum up the polling. */
function doChores(): void {
  if (acceptPausedUntil !== 0 && now >= acceptPausedUntil) acceptPausedUntil = 0;
  if (now - lastIdleSweep >= IDLE_SWEEP_EVERY_MS) {
    const seconds = (now - lastIdleSweep) / 1000;
    lastIdleSweep = now;
    closeIdleClients();
    debug(`last ${seconds.toFixed(1)} s: ${passes} passes, ${acceptEagains} accept() EAGAIN, ${recvEagains} recv() EAGAIN`);
    passes = acceptEagains = recvEagains = 0;
  }
}

// ---------------------------------------------------------------------------------------
// New connections
// ---------------------------------------------------------------------------------------

/**
 * Take every connection waiting in the listener's queue, until accept() says EAGAIN. Most
 * passes find nobody: that EAGAIN is the normal answer, not a failure.
 */
function acceptNewClients(): void {
  for (;;) {
    let conn: Socket;
    let address: Address;
    try {
      [conn, address] = server.accept();
    } catch (error) {
      if (isOSError(error, 'EAGAIN')) {
        acceptEagains += 1; // nobody is waiting: ask again next pass
        return;
      }
      if (isOSError(error, 'ECONNABORTED')) continue; // that client gave up while queued
      pauseAccepting(error); // EMFILE and friends: out of descriptors or memory
      return;
    }
    if (nextAcceptPauseMs !== FIRST_ACCEPT_PAUSE_MS) {
      log('accepting new connections again');
      nextAcceptPauseMs = FIRST_ACCEPT_PAUSE_MS;
    }
    try {
      // new_socket.setblocking(False): recv() and send() on it never wait either.
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
 * accept() failed with EMFILE (no descriptor left for this process), ENFILE (none left in
 * the system), ENOBUFS or ENOMEM. The connection stays queued in the kernel, and asking again
 * on every pass would fail again on every pass. So stop asking for a pause that grows from
 * 100 ms to 1 s, log once per episode, and carry on serving the clients we already have.
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
 * Try to read, answer, try to send. Whatever goes wrong with one client is caught here and
 * ends that connection only, with one log line; it never reaches the loop.
 */
function serveClient(client: Client): void {
  try {
    if (wantsInput(client)) receive(client);
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
 * One recv() into the shared buffer; its bytes go to this client's RequestReader. EAGAIN is
 * the everyday answer: this client has sent nothing since we last asked.
 */
function receive(client: Client): void {
  let count: number;
  try {
    count = client.conn.recvInto(receiveBuffer);
  } catch (error) {
    if (isOSError(error, 'EAGAIN')) {
      recvEagains += 1; // nothing yet: ask again next pass
      return;
    }
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
 * A non-blocking send() takes what fits and returns at once: a large file goes out a piece per
 * pass, and a client that reads slowly only ever waits for itself. The outbox remembers where
 * we are; the next pass tries again.
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
 * Close and forget: client_socket_list.remove(client_socket); client_socket.close(). `why` is
 * logged for every connection we end against the client's wishes (an error, a timeout); a
 * normal end is only a --verbose line.
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
      serveClient(client); // its reader now hands out the 408: answered, logged and closed like a 400
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
