/**
 * 07-io_uring.ts: one thread serves every connection, and the kernel does the I/O itself.
 *
 * The step beyond the article's last section, 「epoll高并发」 (epoll for high concurrency).
 *
 *     npm install
 *     npx tsx 07-io_uring.ts              # then open http://127.0.0.1:7890/
 *     npx tsx 07-io_uring.ts --verbose    # also log every connection and request
 *     npx tsx 07-io_uring.ts --help       # --port, --host, --root, --idle-timeout, --request-timeout, --trace
 *
 * Linux 6.0 or newer, where io_uring is allowed: Docker's default seccomp profile and the sysctl
 * kernel.io_uring_disabled refuse it, and then this file exits at once with one line saying so.
 *
 * What to watch while it runs (PID and RINGFD are in the first lines it prints):
 *  - `ls -l /proc/PID/fd`: the ring is `anon_inode:[io_uring]`. There is no eventpoll of ours.
 *  - `cat /proc/PID/fdinfo/RINGFD`: the rings' counters. SqTail is how many operations we have
 *    submitted, SqHead how many the kernel has taken; CqTail how many completions the kernel
 *    has posted, CqHead how many we have read. Run a load and read it again. Under PollList, the
 *    operations waiting in the kernel: one receive (op=27) per connection, one accept (op=13).
 *  - `grep io_uring /proc/PID/maps`: the rings and the SQE array, mapped shared (rw-s) into this
 *    process. (06 has no such line: epoll's lists stay inside the kernel.)
 *  - `npx tsx 07-io_uring.ts --trace`: each io_uring_enter with the operations it hands over and
 *    a line per completion it brings back. From outside,
 *    `strace -f -p PID -e trace=io_uring_enter,recvfrom,sendto,accept4` shows no accept, recv or
 *    send at all, only io_uring_enter, each handing over many operations at once (its second
 *    number) and collecting many results. Node's own loop adds an epoll_pwait now and then.
 *  - Ctrl+C prints how many requests were served with how many io_uring_enter calls.
 *
 * Readiness versus completion. 05 and 06 ask the kernel "which sockets are ready?" and then
 * make each call themselves: epoll_wait, then recv, then send, one system call each. io_uring
 * takes the calls themselves. We write "accept on the listener", "receive on fd 9", "send these
 * 200 bytes to fd 12" as entries of a submission queue, one io_uring_enter hands over all of them,
 * and the results come back as entries of a completion queue: "fd 9: 73 bytes arrived, in
 * buffer 5", "fd 12: 200 bytes sent". Both queues are rings mapped into our memory and the
 * kernel's: the article's picture of epoll, a list "in memory shared by the application and the
 * kernel", is what io_uring really is. And completion covers what readiness cannot: files.
 * epoll_ctl refuses a regular file (EPERM), and select and poll report one always ready, even
 * when reading it waits for the disk; so 06's sendfile() can stall its one thread on a disk
 * read. Here the read is one more operation in the ring, and our thread never waits for it:
 * a buffered read whose pages are not in memory yet mostly completes through the page cache's
 * asynchronous path (the kernel finishes it when the pages arrive); io-wq worker threads
 * are the fallback, not the rule. (Serving a 64 MiB file that was not cached, on ext4 here:
 * all its disk reads were issued from our own thread, none from the iou-wrk thread that
 * showed up in `ps -T`; see read_bytes in /proc/PID/task/TID/io.)
 *
 * The price: the kernel writes into our memory whenever it likes, so every buffer has an owner
 * at each moment (see shared/io-uring.ts), and memory handed to the kernel may be reused only
 * after its completion has arrived. Ending a connection takes two steps (stop everything
 * pending on it, then forget it once the last completion is in). strace and the usual tools see
 * less. And io_uring is new and complex kernel code: many sandboxes and distributions switch it
 * off, so a server must keep an epoll fallback.
 */
import { setImmediate } from 'node:timers/promises';
import { constants as osConstants } from 'node:os';
import { IPPROTO_TCP, OSError, SHUT_RDWR, SHUT_WR, Socket, TCP_NODELAY, closeFd, decodeAddress, formatAddress } from './shared/libc.ts';
import {
  IORING_CQE_BUFFER_SHIFT,
  IORING_CQE_F_BUFFER,
  IORING_CQE_F_MORE,
  IOSQE_IO_HARDLINK,
  IOSQE_IO_LINK,
  IoUring,
  PinnedSlots,
  ProvidedBuffers,
  refusalOf,
} from './shared/io-uring.ts';
import { announce, exitOnCrash, exitOnListenError, onShutdown, parseCommandLine } from './shared/cli.ts';
import { debug, describeError, isVerbose, log } from './shared/log.ts';
import { RequestReader } from './shared/request-reader.ts';
import { handleRequest } from './shared/handle-request.ts';
import { Outbox } from './shared/outbox.ts';
import { StaticSite } from './shared/static-site.ts';
import { traceSystemCallsAndRing } from './shared/trace-ring.ts';

/** Submission queue entries: how many operations can wait for one io_uring_enter. */
const SUBMISSION_ENTRIES = 1024;
/** Completion queue entries: more, since one multishot operation completes many times. */
const COMPLETION_ENTRIES = 8192;
/** Receive buffers shared by all connections, and their size. */
const RECEIVE_BUFFERS = 1024;
const RECEIVE_BUFFER_BYTES = 4096;
const RECEIVE_BUFFER_GROUP = 1;
/** One connection's outgoing bytes go through one slot of this size at a time. */
const SEND_SLOT_BYTES = 64 * 1024;
/** Stop answering a client's requests while more than this waits to be sent to it. */
const OUTBOX_LIMIT = 64 * 1024;
/** Longest time io_uring_enter may wait, so that Ctrl+C is heard promptly (see the loop). */
const LONGEST_WAIT_MS = 500;
/** Under load, how often the loop gives Node's own event loop a turn (signals, see the loop). */
const YIELD_EVERY_MS = 20;
/** How often idle connections are looked for. */
const IDLE_SWEEP_EVERY_MS = 1000;
/** After our last response: how long and how much we keep reading before closing (see closeGently). */
const LINGER_MS = 2000;
const LINGER_LIMIT_BYTES = 64 * 1024;
/** After accept failed for lack of descriptors: first pause, and the longest one. */
const FIRST_ACCEPT_PAUSE_MS = 100;
const LONGEST_ACCEPT_PAUSE_MS = 1000;

// What a completion is about travels in its user_data: the connection's number times 8, plus
// the kind of operation. (The kernel copies user_data from the SQE to the CQE untouched.)
const ACCEPTED = 0;
const RECEIVED = 1;
const SENT = 2;
const FILE_READ = 3;
const CLOSED = 4;
const NO_MATTER = 5; // shutdown and cancel: their own results tell us nothing we need
const userData = (id: number, kind: number): number => id * 8 + kind;

const { ECANCELED, ECONNABORTED, ENOBUFS, EINTR } = osConstants.errno;

/** Everything we know about one connection. */
class Client {
  readonly reader = new RequestReader();
  readonly outbox = new Outbox();
  /** When bytes last moved in either direction; the idle sweep compares against it. */
  lastProgress: number;
  /** The client closed its side (a receive completed with 0): answer what we have, then close. */
  inputEnded = false;
  /** Answering stopped until the client reads what we sent; receive nothing more meanwhile. */
  answeringPaused = false;
  /** After closeGently(): until when we wait for the client's FIN (0: not closing)... */
  lingerUntil = 0;
  /** ...and how many bytes it sent after the last request we answer, received and thrown away. */
  discarded = 0;

  // Operations in the kernel's hands. The Client, its number and its send slot live until
  // the last of their completions has arrived: only then is nothing of ours in use.
  /** Operations submitted whose final completion has not arrived yet. */
  inFlight = 0;
  /** A multishot receive is armed (it ends with a completion without IORING_CQE_F_MORE). */
  receiving = false;
  /** ...and we asked the kernel to cancel it. */
  receiveCancelled = false;
  /** A send (maybe after a linked file read) is in flight: the slot is the kernel's. */
  sending = false;

  /** The pinned memory this connection sends from, or -1 while it has nothing to send. */
  slot = -1;
  /** Bytes in the slot to send, and how many of them the kernel has sent so far. */
  slotFilled = 0;
  slotSent = 0;
  /** File bytes a read in flight puts into the slot (0: none). */
  fileBytesReading = 0;

  /** Shutting down: no new operations, just waiting for the pending ones to complete. */
  closing = false;

  constructor(
    readonly id: number,
    readonly fd: number,
    /** "127.0.0.1:53422", for log lines. */
    readonly name: string,
    connectedAt: number,
  ) {
    this.lastProgress = connectedAt;
  }
}

// ---------------------------------------------------------------------------------------
// Start: the ring, its buffers, and the listening socket.
// ---------------------------------------------------------------------------------------
const options = parseCommandLine('07-io_uring', 'one thread, one io_uring: submit operations, reap completions');
if (options.trace) traceSystemCallsAndRing(); // --trace: each io_uring_enter narrates what went in and came out
const verbose = isVerbose();
const site = new StaticSite(options.root);

// io_uring_setup and mmap of the rings. Where io_uring is refused, say why in one line and stop.
let ring: IoUring;
let buffers: ProvidedBuffers;
try {
  ring = new IoUring(SUBMISSION_ENTRIES, COMPLETION_ENTRIES);
  // Receive buffers the kernel picks from: a connection holds one only while its bytes are
  // being handled, so idle connections cost no receive memory at all.
  buffers = new ProvidedBuffers(ring, RECEIVE_BUFFER_GROUP, RECEIVE_BUFFERS, RECEIVE_BUFFER_BYTES);
} catch (error) {
  const refusal = refusalOf(error);
  if (refusal === null) throw error;
  process.stderr.write(`07-io_uring: ${refusal}\n`);
  process.exit(2);
}
// Outgoing bytes: each connection sends from a slot of pinned memory while it has bytes to send.
const slots = new PinnedSlots(SEND_SLOT_BYTES, 16);
// Where the kernel writes a new client's address (struct sockaddr, then its length): pinned
// too, and the kernel's while the accept is pending. One accept at a time: one place will do.
const SOCKADDR_BYTES = 128;
const acceptMemory = new PinnedSlots(2 * SOCKADDR_BYTES, 1);
const acceptSlot = acceptMemory.take();
const peerAddress = acceptMemory.view(acceptSlot);

let server: Socket;
try {
  server = Socket.listenTCP(options.host, options.port);
  // Accepted sockets inherit TCP_NODELAY from the listener on Linux: small responses leave at
  // once (Nagle's algorithm would hold the second of two pipelined answers for up to 40 ms).
  server.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1);
} catch (error) {
  exitOnListenError(options, error);
}

// Connections by number (not by descriptor: a descriptor number is reused as soon as it is
// closed, while completions for the old connection may still be on their way).
const clients: (Client | undefined)[] = [];
const freeIds: number[] = [];

// The clock, read once per pass: every event of a pass happened "now" closely enough.
let now = Date.now();
let lastIdleSweep = now;
let requestsServed = 0;
let lastYield = now;

// Accepting is paused for a while after running out of descriptors (EMFILE).
let acceptPausedUntil = 0; // 0: not paused
let nextAcceptPauseMs = FIRST_ACCEPT_PAUSE_MS;

onShutdown(() => {
  log(`served ${requestsServed} requests with ${ring.enterCalls} io_uring_enter calls`);
  // Closing the ring cancels every pending operation; then the sockets go.
  ring.close();
  for (const client of clients) if (client !== undefined && !client.closing) closeFd(client.fd);
  server.close();
});

// ---------------------------------------------------------------------------------------
// The loop: submit, wait, reap.
// ---------------------------------------------------------------------------------------

/**
 * Each pass makes one system call, io_uring_enter: it hands the kernel every operation we
 * prepared since the last pass and waits for at least one completion. Then we read every
 * completion the kernel has posted, and handling them prepares the next operations.
 *
 * Ctrl+C: as in 04–06, Node runs a JavaScript signal handler only when its own event loop gets
 * a turn, which `await setImmediate()` gives it. A turn costs a few microseconds (libuv polls
 * its own descriptors), so under load we take one every 20 ms rather than after every pass,
 * and always when a wait found nothing. The wait never lasts longer than half a second, and a
 * signal ends it at once.
 */
async function serveForever(): Promise<never> {
  for (;;) {
    ring.submitAndWait(waitBudgetMs());
    now = Date.now();
    const ready = ring.completionsReady();
    for (let i = 0; i < ready; i++) {
      handleCompletion(ring.completionUserData(i), ring.completionResult(i), ring.completionFlags(i));
    }
    ring.markCompletionsSeen(ready); // those CQE slots are the kernel's again
    doChores();
    if (ready === 0 || now - lastYield >= YIELD_EVERY_MS) {
      lastYield = now;
      await setImmediate();
    }
  }
}

/**
 * How long io_uring_enter may wait: at most LONGEST_WAIT_MS, less if the sweep is due sooner (so that it
 * runs once a second, not up to half a second late) or accepting resumes sooner.
 */
function waitBudgetMs(): number {
  const nextSweep = lastIdleSweep + IDLE_SWEEP_EVERY_MS;
  const wakeAt = acceptPausedUntil === 0 ? nextSweep : Math.min(nextSweep, acceptPausedUntil);
  return Math.max(0, Math.min(LONGEST_WAIT_MS, wakeAt - Date.now()));
}

/** Work driven by the clock rather than by completions. */
function doChores(): void {
  if (acceptPausedUntil !== 0 && now >= acceptPausedUntil) {
    acceptPausedUntil = 0;
    armAccept();
  }
  if (now - lastIdleSweep >= IDLE_SWEEP_EVERY_MS) {
    lastIdleSweep = now;
    closeIdleClients();
  }
}

/** One completion: which operation it ends (from its user_data), and for which connection. */
function handleCompletion(data: number, result: number, flags: number): void {
  const kind = data & 7;
  if (kind === ACCEPTED) return accepted(result);
  if (kind === NO_MATTER) return;
  const client = clients[data >>> 3]!;
  switch (kind) {
    case RECEIVED:
      return received(client, result, flags);
    case SENT:
      return sent(client, result);
    case FILE_READ:
      return fileRead(client, result);
    case CLOSED:
      return closed(client);
  }
}

// ---------------------------------------------------------------------------------------
// New connections
// ---------------------------------------------------------------------------------------

/**
 * One accept is always pending on the listener: the kernel completes it when a connection
 * arrives, with the new descriptor as its result, and we submit the next one. No accept() call
 * of ours, no readiness event. (io_uring also has a multishot accept, one SQE for every
 * connection to come, but it reads the process's descriptor limit once, when submitted, and
 * would go on accepting past a limit lowered later; a fresh accept each time obeys the limit.)
 */
function armAccept(): void {
  peerAddress.writeUInt32LE(SOCKADDR_BYTES, SOCKADDR_BYTES); // the room the kernel may use
  const address = acceptMemory.address(acceptSlot);
  ring.prepareAccept(server.fd, address, address + SOCKADDR_BYTES, userData(0, ACCEPTED));
}

function accepted(result: number): void {
  // Read the address the kernel wrote before the next accept is prepared over it.
  const name = result >= 0 ? formatAddress(decodeAddress(peerAddress)) : '';
  if (result < 0 && result !== -ECONNABORTED && result !== -EINTR) {
    pauseAccepting(new OSError('accept', -result)); // submitted again after a pause
    return;
  }
  armAccept(); // for the next connection
  if (result < 0) return; // ECONNABORTED: that client gave up while queued
  if (nextAcceptPauseMs !== FIRST_ACCEPT_PAUSE_MS) {
    log('accepting new connections again');
    nextAcceptPauseMs = FIRST_ACCEPT_PAUSE_MS;
  }
  const fd = result;
  const id = freeIds.pop() ?? clients.length;
  const client = new Client(id, fd, name, now);
  clients[id] = client;
  debug(`client ${name} online (fd ${fd})`);
  updateReceiving(client);
}

/**
 * accept failed with EMFILE (no descriptor left for this process), ENFILE, ENOBUFS or ENOMEM.
 * The connection stays queued in the kernel. Submitting the accept again at once would fail
 * again at once: a spin. So wait (100 ms, growing to 1 s), log once per episode, and carry on
 * serving the clients we have (closing some frees descriptors).
 */
function pauseAccepting(error: OSError): void {
  if (nextAcceptPauseMs === FIRST_ACCEPT_PAUSE_MS) {
    log(`cannot accept new connections: ${describeError(error)}; retrying after a pause (100 ms, growing to 1 s)`);
  }
  acceptPausedUntil = now + nextAcceptPauseMs;
  nextAcceptPauseMs = Math.min(2 * nextAcceptPauseMs, LONGEST_ACCEPT_PAUSE_MS);
}

// ---------------------------------------------------------------------------------------
// Receiving
// ---------------------------------------------------------------------------------------

/**
 * We receive from a client unless it is done sending, or is not reading our answers. While we
 * close gently we receive everything until its FIN, to throw it away.
 */
function wantsInput(client: Client): boolean {
  if (client.lingerUntil !== 0) return !client.inputEnded;
  return !client.inputEnded && !client.outbox.closeAfterDrain && !client.answeringPaused;
}

/**
 * Keep one multishot receive armed while we want input, and cancel it while we do not (a
 * client that pipelines requests without reading the answers must not fill our memory).
 */
function updateReceiving(client: Client): void {
  if (wantsInput(client)) {
    if (client.receiving) return;
    ring.prepareMultishotRecv(client.fd, RECEIVE_BUFFER_GROUP, userData(client.id, RECEIVED));
    client.receiving = true;
    client.receiveCancelled = false;
    client.inFlight++;
  } else if (client.receiving && !client.receiveCancelled) {
    ring.prepareCancel(userData(client.id, RECEIVED), userData(client.id, NO_MATTER));
    client.receiveCancelled = true;
  }
}

/**
 * Bytes arrived, already copied by the kernel into a receive buffer it picked: the buffer's
 * number is in the upper 16 bits of the flags. The buffer is ours until we give it back, so the
 * RequestReader must not keep looking at it afterwards (detach() copies what it still needs).
 */
function received(client: Client, result: number, flags: number): void {
  if ((flags & IORING_CQE_F_MORE) === 0) {
    client.receiving = false; // this was the receive's last completion
    client.inFlight--;
  }
  if ((flags & IORING_CQE_F_BUFFER) !== 0) {
    const buffer = flags >>> IORING_CQE_BUFFER_SHIFT;
    if (client.outbox.closeAfterDrain) {
      client.discarded += result; // sent after the request we answer last: thrown away
    } else if (!client.closing) {
      client.lastProgress = now;
      client.reader.push(buffers.buffer(buffer), result); // the first `result` bytes of that buffer
      answerRequests(client);
      client.reader.detach();
    }
    buffers.giveBack(buffer);
  } else if (result === 0) {
    client.inputEnded = true; // the client closed its side
  } else if (result < 0 && result !== -ENOBUFS && result !== -ECANCELED && !client.closing) {
    // ENOBUFS: every receive buffer was in use; the receive ended and is armed again below.
    // ECANCELED: we cancelled it. Anything else (ECONNRESET...) ends the connection; while we
    // close gently, a reset is only the client leaving too, after it had its answer: no log line.
    return closeClient(client, client.lingerUntil !== 0 ? null : describeError(new OSError('recv', -result)));
  }
  afterCompletion(client);
}

/**
 * The one place where requests become responses, through the shared handleRequest. As in 06,
 * answering pauses while more than OUTBOX_LIMIT waits to be sent to this client.
 */
function answerRequests(client: Client): void {
  const { reader, outbox } = client;
  client.answeringPaused = false;
  while (!outbox.closeAfterDrain) {
    if (outbox.pendingBytes > OUTBOX_LIMIT) {
      client.answeringPaused = true;
      return;
    }
    const parsed = reader.next();
    if (parsed === null) return; // needs more bytes
    const response = handleRequest(parsed, site, now); // the pass's clock reading serves its requests too
    requestsServed++;
    if (response.status >= 400) log(`${client.name} ${response.status} ${response.reason}`);
    else if (verbose && parsed.kind === 'request') debug(`${client.name} ${parsed.method} ${parsed.target} ${response.status}`);
    outbox.push(response); // after a response with close=true, the loop ends
  }
}

// ---------------------------------------------------------------------------------------
// Sending
// ---------------------------------------------------------------------------------------

/**
 * After any completion of a connection: answer what waits, send what is ready, receive or
 * stop receiving, or close. Whatever goes wrong here ends this connection only.
 */
function afterCompletion(client: Client): void {
  if (client.closing) return finishClosing(client);
  try {
    if (client.lingerUntil !== 0) {
      // Closing gently: done once the client has closed too, or has sent too much.
      if (client.inputEnded || client.discarded > LINGER_LIMIT_BYTES) return closeClient(client, null);
      return updateReceiving(client); // armed again if it ended (ENOBUFS, or our earlier cancel)
    }
    if (client.answeringPaused) answerRequests(client);
    if (!client.sending) startSending(client);
    if (!client.sending && client.outbox.isEmpty) {
      if (client.inputEnded) return closeClient(client, null); // all answered: the polite end
      if (client.outbox.closeAfterDrain) return closeGently(client); // we end it: politely too
    }
    updateReceiving(client);
  } catch (error) {
    closeClient(client, describeError(error));
  }
}

/**
 * Fill the connection's slot from its outbox and submit one send of it. The slot is pinned
 * memory: from here until the send's completion it is the kernel's, and we write nothing into
 * it. Several small responses (pipelining) go out together. A large file is not read here:
 * a read SQE puts the next piece of it into the slot, linked (IOSQE_IO_LINK) to the send, so
 * the kernel reads and then sends, and we hear about it only when both are done.
 *
 * The price of never waiting for the disk: file bytes are copied twice (file to slot, slot to
 * socket), where 06's sendfile() hands the kernel's own pages to the socket: two to three times
 * the CPU per MiB here. io_uring's splice would avoid the copy, but it runs on kernel worker
 * threads that stay blocked while a client reads slowly.
 */
function startSending(client: Client): void {
  const { outbox } = client;
  if (outbox.isEmpty) {
    if (client.slot !== -1) {
      slots.release(client.slot); // nothing more to send: the slot goes back to the pool
      client.slot = -1;
    }
    return;
  }
  if (client.slot === -1) client.slot = slots.take();
  const memory = slots.view(client.slot);
  let filled = 0;
  while (!outbox.isEmpty && filled < SEND_SLOT_BYTES) {
    const file = outbox.peekFile();
    if (file !== null) {
      const length = Math.min(file.length, SEND_SLOT_BYTES - filled);
      ring.reserve(2); // a linked pair must reach the kernel in the same io_uring_enter
      ring.prepareRead(file.fd, slots.address(client.slot) + filled, length, file.offset, userData(client.id, FILE_READ), IOSQE_IO_LINK);
      client.inFlight++;
      client.fileBytesReading = length;
      filled += length;
      break;
    }
    const copied = outbox.peek().copy(memory, filled);
    outbox.consumed(copied); // those bytes now live in the slot
    filled += copied;
  }
  client.slotFilled = filled;
  client.slotSent = 0;
  sendFromSlot(client);
}

function sendFromSlot(client: Client): void {
  const address = slots.address(client.slot) + client.slotSent;
  ring.prepareSend(client.fd, address, client.slotFilled - client.slotSent, userData(client.id, SENT));
  client.sending = true;
  client.inFlight++;
}

/**
 * The linked read of a file piece completed. All of it: the send goes ahead on its own. Fewer
 * bytes: the file shrank after its length went into Content-Length; the kernel cancels the
 * linked send (it completes with -ECANCELED) and we close the connection.
 */
function fileRead(client: Client, result: number): void {
  client.inFlight--;
  const expected = client.fileBytesReading;
  client.fileBytesReading = 0;
  if (client.closing) return finishClosing(client);
  if (result === expected) {
    client.lastProgress = now;
    client.outbox.consumed(result); // closes the file once its last piece is read
    return;
  }
  const why = result < 0
    ? describeError(new OSError('read', -result))
    : `file ended ${client.outbox.peekFile()!.length - result} bytes early (it shrank while being sent)`;
  closeClient(client, why);
}

/**
 * A send completed: the slot is ours again. A partial send (fewer bytes than asked: the
 * client's receive window or our send buffer was full) is resumed from where it stopped.
 */
function sent(client: Client, result: number): void {
  client.inFlight--;
  client.sending = false;
  if (client.closing) return finishClosing(client);
  if (result <= 0) {
    // EPIPE, ECONNRESET: the client is gone. 0: nothing could be sent, which would repeat forever.
    return closeClient(client, result < 0 ? describeError(new OSError('send', -result)) : 'send() sent nothing');
  }
  client.lastProgress = now;
  client.slotSent += result;
  if (client.slotSent < client.slotFilled) return sendFromSlot(client);
  afterCompletion(client);
}

// ---------------------------------------------------------------------------------------
// Ending connections
// ---------------------------------------------------------------------------------------

/**
 * End a connection. Operations may still be pending on it (an armed receive, a send to a
 * client that stopped reading), and the kernel holds the socket and our memory while they are.
 * So: shutdown(2), which makes every pending operation on the socket complete at once, then
 * close(2) (hard-linked, so it follows the shutdown whatever that returns). The Client stays
 * until its last completion has arrived. `why` is logged for every connection we end against
 * the client's wishes; a normal end is only a --verbose line.
 */
function closeClient(client: Client, why: string | null): void {
  if (client.closing) return;
  client.closing = true;
  if (why === null) debug(`client ${client.name} offline`);
  else log(`${client.name} closed: ${why}`);
  ring.reserve(2);
  ring.prepareShutdown(client.fd, SHUT_RDWR, userData(client.id, NO_MATTER), IOSQE_IO_HARDLINK);
  ring.prepareClose(client.fd, userData(client.id, CLOSED));
  client.inFlight++;
}

function closed(client: Client): void {
  client.inFlight--;
  finishClosing(client);
}

/** Once nothing is pending: the files, the slot and the connection's number are free again. */
function finishClosing(client: Client): void {
  if (client.inFlight > 0) return;
  client.outbox.discard(); // closes any file it was sending
  if (client.slot !== -1) slots.release(client.slot);
  client.slot = -1;
  clients[client.id] = undefined;
  freeIds.push(client.id);
}

/**
 * We decided to close (Connection: close, or an error such as 400) and every byte is sent.
 * closeClient() at once would be rude: closing a socket that has unread bytes makes the kernel
 * send a reset instead of a FIN, and a reset can destroy the response the client has not read
 * yet, our 413 for instance (RFC 9112 §9.6). So a shutdown(SHUT_WR) goes into the ring, which
 * sends our FIN after the last byte; the multishot receive is armed again, and what it brings
 * is thrown away (its buffers still go back to the ring) until the client's FIN, a 0-byte
 * receive. Then closeClient(). At most LINGER_LIMIT_BYTES, for at most LINGER_MS: the idle
 * sweep ends the wait.
 */
function closeGently(client: Client): void {
  ring.prepareShutdown(client.fd, SHUT_WR, userData(client.id, NO_MATTER));
  client.lingerUntil = now + LINGER_MS;
  updateReceiving(client);
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
    if (client === undefined || client.closing) continue;
    if (client.lingerUntil !== 0) {
      if (now >= client.lingerUntil) closeClient(client, null); // closing gently: it had its chance
    } else if (now - client.lastProgress >= options.idleTimeoutMs) {
      closeClient(client, `idle for ${Math.round((now - client.lastProgress) / 1000)} s`);
    } else if (client.reader.expire(now, options.requestTimeoutMs)) {
      answerRequests(client); // its reader now hands out the 408: answered, logged and closed like a 400
      afterCompletion(client);
    }
  }
}

// ---------------------------------------------------------------------------------------
// Start: the ring's line and the start line, the first accept, then the loop until Ctrl+C.
//
// main() is called here rather than written as a top-level `await serveForever()`: a copy of
// this file in a CommonJS package (what `npm init -y` makes) could not be compiled with one.
// ---------------------------------------------------------------------------------------
async function main(): Promise<void> {
  log(`io_uring ready: ring fd ${ring.fd} (${SUBMISSION_ENTRIES} submission, ${COMPLETION_ENTRIES} completion entries; setup flags ${ring.setupFlags})`);
  announce(options, server.getsockname());
  armAccept();
  await serveForever();
}

main().catch(exitOnCrash);
