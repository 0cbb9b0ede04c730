/**
 * 02-multithread.ts: one thread per connection
 * =============================================
 *
 * Mirrors the article's section 「多线程」. Section 「多进程」 forked a whole process per client;
 * here the Python server swaps `multiprocessing.Process` for `threading.Thread` and every
 * accepted connection gets its own thread running the blocking `handle_request` loop. We do the
 * same with node:worker_threads: the main thread accepts, and each connection is served by a
 * brand-new OS thread that calls recv() and send() on the connection's descriptor itself.
 *
 * Run it:
 *     npm install
 *     npx tsx 02-multithread.ts                # the article's version: a new thread per client
 *     npx tsx 02-multithread.ts --verbose      # OnLine/OffLine lines, with each thread's start-up time
 *     npx tsx 02-multithread.ts --pool 4       # 4 threads started up front (see the last section)
 *     flags: --port N --host H --root DIR --idle-timeout S --request-timeout S --max-clients N
 *            --pool N --verbose --help
 *
 * Watch it (PID is printed in the start line):
 *     ps -T -p PID                  one line per thread: one more per open connection
 *     ls -l /proc/PID/fd            ONE descriptor table for all threads: each connection once
 *                                   (plus 4 epoll/eventfd/pipe descriptors per worker: each
 *                                   worker thread runs an event loop of its own)
 *     ls -l /proc/PID/task/TID/fd   ...and every thread (TID from ps -T) sees that same table
 *     grep -E 'Threads|VmRSS' /proc/PID/status
 *     npx tsx 02-multithread.ts --trace   accept4, the thread started, its calls on that same fd
 *     strace -f -e trace=accept4,recvfrom,sendto,shutdown,close -p PID      (the same, from outside)
 *
 * What a thread costs here (2-core machine, Node 20; Python 3 on the same machine for comparison):
 *                                              02-multithread        Python threading.Thread
 *     from accept to the thread's first byte   ~45 ms (30 to 110)    ~0.14 ms
 *     memory (RSS) per live connection         ~10 MiB               ~16 KB
 *     OS threads / descriptors per connection  1 / 5                 1 / 1
 * Measured with the server running in another terminal (PID from its start line):
 *     curl -s -o /dev/null -w '%{time_starttransfer}\n' http://127.0.0.1:7890/hello.txt
 *     grep VmRSS /proc/PID/status
 *     for i in $(seq 10); do (exec 3<>/dev/tcp/127.0.0.1/7890; sleep 30) & done
 *     sleep 10; grep -E 'VmRSS|Threads' /proc/PID/status; ls /proc/PID/fd | wc -l
 *     (differences divided by 10), or `npm run bench -- --model 02 --scenario c10k`. Each thread
 *     runs the plain JavaScript compiled from this file once, when the server started
 *     (shared/compiled-self.ts): started through tsx's loader instead, a thread took 0.2 to
 *     0.6 s and ~30 MiB, and needed a second thread for the loader.
 *
 * Why so much more than a Python thread? A Python thread is an OS thread inside the interpreter
 * that already exists: it shares every loaded module and object. JavaScript objects cannot be
 * shared between threads, so a Node worker thread is an OS thread plus a whole new JavaScript
 * engine instance (a V8 isolate) with its own heap, its own event loop and its own copy of every
 * module it imports: this file, shared/, koffi and the C library bindings. Threads are cheap in
 * C and in Python; isolates are not.
 */
import { Worker, isMainThread, parentPort, threadId, workerData } from 'node:worker_threads';
import { setTimeout as sleep } from 'node:timers/promises';
import { SHUT_RDWR, SHUT_WR, Socket, formatAddress, isOSError, type Address } from './shared/libc.ts';
import { announce, exitOnCrash, exitOnListenError, onShutdown, parseCommandLine, type ExtraFlag, type ServerOptions } from './shared/cli.ts';
import { configureLog, debug, describeError, log } from './shared/log.ts';
import { RequestReader } from './shared/request-reader.ts';
import { handleRequest, serviceUnavailable } from './shared/handle-request.ts';
import { StaticSite } from './shared/static-site.ts';
import { Outbox } from './shared/outbox.ts';
import { compiledCopyOf } from './shared/compiled-self.ts';
import { traceSystemCalls } from './shared/trace-calls.ts';

const MODEL = '02-multithread';
const SUMMARY = 'a static-file HTTP server that serves each connection on its own thread';

const POOL_FLAG: ExtraFlag = {
  name: 'pool',
  valueName: 'N',
  help: 'reuse N threads started up front (0: a new one per connection)',
  default: 0,
  min: 0,
  max: 64,
};

/**
 * At most this many connection threads at once. At ~10 MiB each, an unbounded number of them
 * would let a crowd of idle clients exhaust the machine's memory; at the cap we simply stop
 * calling accept(), and new clients wait in the kernel's listen queue until a thread ends.
 */
const MAX_CLIENTS_FLAG: ExtraFlag = {
  name: 'max-clients',
  valueName: 'N',
  help: 'at most N connections (threads) at once; more wait to be accepted',
  default: 100,
  min: 1,
  max: 10000,
};

/** How many bytes one recv() may return. The article reads 1024; bigger means fewer calls. */
const RECV_BYTES = 64 * 1024;

/** After our last response: how long and how much we keep reading before closing (see closeGently). */
const LINGER_MS = 2000;
const LINGER_LIMIT_BYTES = 64 * 1024;

/** What the main thread hands a worker: a descriptor NUMBER, valid in every thread of the process. */
interface ConnectionJob {
  fd: number;
  /** The client's address, for log lines. */
  who: string;
  /** When accept() returned, in ms since the epoch, comparable across threads. */
  acceptedAt: number;
}

/** workerData: the options, and in thread-per-connection mode the one connection to serve. */
interface WorkerStart {
  options: ServerOptions;
  job: ConnectionJob | null;
}

/** What a worker tells the main thread about a connection it was given. */
type WorkerReport =
  | { kind: 'ready' } // (pool) loaded, waiting for a connection
  | { kind: 'serving'; fd: number } // the descriptor is now the worker's to close
  | { kind: 'closed'; fd: number }; // done: the worker has closed it

/** Wall-clock milliseconds with sub-millisecond precision, comparable between isolates. */
const now = () => performance.timeOrigin + performance.now();

// =======================================================================================
// The worker thread: the article's handle_request(new_socket)
// =======================================================================================

/**
 * One client, served to the end with blocking calls, exactly like the article's
 * `handle_request`: recv, answer every complete request, recv again, until the client hangs up.
 * Blocking is fine here: while this thread waits in recv(), the kernel runs the other threads.
 */
function handleConnection(conn: Socket, who: string, site: StaticSite, options: ServerOptions): void {
  const reader = new RequestReader();
  const outbox = new Outbox();
  const received = Buffer.allocUnsafe(RECV_BYTES);
  try {
    for (;;) {
      // recv_msg = new_socket.recv(1024)
      const count = receiveBeforeDeadline(conn, reader, received, options);
      if (count === 0) {
        debug(`${who} OffLine`); // the article's "recv null": the client closed its side
        return;
      }
      // TCP is a byte stream: this may be half a request or several. The reader reassembles.
      // (No bytes but null: the request's deadline passed, and next() hands out its 408.)
      if (count !== null) reader.push(received, count);
      for (let parsed = reader.next(); parsed !== null; parsed = reader.next()) {
        const response = handleRequest(parsed, site);
        if (response.status >= 400) log(`${who} ${response.status} ${response.reason ?? ''}`);
        else if (parsed.kind === 'request') debug(`${who} ${parsed.method} ${parsed.target} ${response.status}`);
        // Send the whole answer before parsing the next pipelined request. send() may take only
        // part of what we offer (the article's single send() would silently drop the rest), so
        // the Outbox remembers how far we got. Finishing each answer first also means a client
        // that pipelines requests without reading answers can never make us buffer more than one.
        outbox.push(response);
        while (!outbox.isEmpty) outbox.consumed(conn.send(outbox.peek()));
        if (outbox.closeAfterDrain) {
          closeGently(conn, received);
          return;
        }
      }
    }
  } finally {
    outbox.discard(); // closes a file still being sent if the client vanished mid-download
  }
}

/**
 * A blocking recv() that keeps the request deadline. Between requests it waits as long as
 * --idle-timeout allows (SO_RCVTIMEO, set for the whole connection). But any byte restarts that
 * wait, so a client sending its request a byte at a time would hold this thread forever: while
 * a request is arriving, recv() may wait only for what is left of its --request-timeout, counted
 * from its first byte. Returns the byte count (0: the client closed), or null once the deadline
 * has passed and the reader has given up on the request (its next() then hands out a 408).
 */
function receiveBeforeDeadline(conn: Socket, reader: RequestReader, into: Buffer, options: ServerOptions): number | null {
  for (;;) {
    const left = reader.timeLeft(Date.now(), options.requestTimeoutMs);
    if (left >= options.idleTimeoutMs) return conn.recvInto(into); // Infinity between requests
    if (reader.expire(Date.now(), options.requestTimeoutMs)) return null;
    conn.settimeout(left);
    try {
      return conn.recvInto(into);
    } catch (error) {
      if (!isOSError(error, 'EAGAIN')) throw error; // EAGAIN: time is up; expire() says so next round
    } finally {
      conn.settimeout(options.idleTimeoutMs);
    }
  }
}

/**
 * We decided to close (Connection: close, a 400, a 431...). shutdown(SHUT_WR) sends our FIN after
 * the last byte; then we read and throw away what the client still sends, briefly, before the
 * caller closes. Closing a socket that has unread bytes makes the kernel send a reset instead,
 * and a reset can destroy the response the client has not read yet (RFC 9112 §9.6).
 */
function closeGently(conn: Socket, scratch: Buffer): void {
  conn.shutdown(SHUT_WR);
  conn.settimeout(LINGER_MS);
  try {
    for (let discarded = 0; discarded < LINGER_LIMIT_BYTES; ) {
      const count = conn.recvInto(scratch);
      if (count === 0) return; // the client's FIN: both sides are done
      discarded += count;
    }
  } catch {
    // Timed out or reset: the client had its chance. The caller closes.
  }
}

/** One log line saying why a connection ended badly. */
function whyDropped(error: unknown, idleTimeoutMs: number): string {
  // SO_RCVTIMEO / SO_SNDTIMEO expired: recv or send made no progress for the whole timeout.
  if (isOSError(error, 'EAGAIN')) return `idle for ${idleTimeoutMs / 1000} s: closing the connection`;
  if (isOSError(error, 'ECONNRESET')) return 'connection reset by the client (ECONNRESET)';
  if (isOSError(error, 'EPIPE')) return 'client went away mid-response (EPIPE)';
  return `closing the connection: ${describeError(error)}`;
}

/**
 * Serve one connection whose descriptor number the main thread gave us. `new Socket(fd)` does
 * not open or copy anything: this thread uses the very descriptor the main thread accepted,
 * because all threads of a process share one descriptor table.
 */
function serveJob(job: ConnectionJob, site: StaticSite, options: ServerOptions): void {
  const conn = new Socket(job.fd);
  report({ kind: 'serving', fd: job.fd });
  debug(`${job.who} OnLine: fd ${job.fd} on thread ${threadId}, ${Math.round(now() - job.acceptedAt)} ms after accept`);
  try {
    // A silent client must not hold a thread forever: recv/send give up with EAGAIN.
    conn.settimeout(options.idleTimeoutMs);
    handleConnection(conn, job.who, site, options);
  } catch (error) {
    // Whatever this one client did, only this connection ends: one line, then close.
    log(`${job.who} ${whyDropped(error, options.idleTimeoutMs)}`);
  } finally {
    // The thread that finishes with the descriptor closes it, exactly once. (In 01 every
    // process had its own copy to close; here there is one descriptor, and it is ours.)
    conn.close();
    report({ kind: 'closed', fd: job.fd });
  }
}

function report(message: WorkerReport): void {
  parentPort!.postMessage(message);
}

/** The entry point of every worker thread: this same file, loaded again in a new isolate. */
function runWorker({ options, job }: WorkerStart): void {
  // Each isolate has its own copy of every module, so shared/log.ts must learn our name again.
  configureLog(options.model, options.verbose);
  if (options.trace) traceSystemCalls({ prefix: `[thread ${threadId}] `, blocking: true }); // --trace
  // ...and its own file cache: a thread-per-connection worker starts with a cold one.
  const site = new StaticSite(options.root);
  if (job !== null) {
    // Thread per connection: serve the one client, then return; the thread ends with it.
    serveJob(job, site, options);
    return;
  }
  runPoolWorker(site, options);
}

// =======================================================================================
// The main thread: accept, and start a thread per connection
// =======================================================================================

/** Connections being served, by descriptor number, with the thread serving each. */
const liveConnections = new Map<number, Worker>();
let stopping = false;

async function main(): Promise<void> {
  const options = parseCommandLine(MODEL, SUMMARY, [MAX_CLIENTS_FLAG, POOL_FLAG]);
  if (options.trace) traceSystemCalls(); // --trace: each call narrated on stderr, the threads' too

  // socket(), setsockopt(SO_REUSEADDR), bind(), listen(128): as in the article.
  let server: Socket;
  try {
    server = Socket.listenTCP(options.host, options.port, 128);
  } catch (error) {
    exitOnListenError(options, error);
  }

  // Ctrl+C. process.exit() cannot end a thread that is blocked inside recv(): it waits for it,
  // forever. shutdown(SHUT_RDWR) on the connection wakes that recv() (it returns 0, "client
  // closed") in whichever thread is blocked on it. Then the listener, which wakes accept().
  onShutdown(() => {
    stopping = true;
    for (const fd of liveConnections.keys()) shutdownQuietly(new Socket(fd));
    shutdownQuietly(server);
  });

  // Compile this file to JavaScript once, for every thread to run (see startThreadRunningThisFile).
  thisFileAsJavaScript = await compiledCopyOf(import.meta.url);
  const poolSize = options.extra.pool ?? 0;
  const pool = poolSize > 0 ? await WorkerPool.start(poolSize, options) : null;
  announce(options, server.getsockname());

  // The article's `while True: new_socket, client_addr = tcp_server_socket.accept()`.
  //
  // Python's main thread blocks in accept() and only notices Ctrl+C between calls. Ours must not
  // block at all: a Node signal handler runs only when the event loop gets a turn. acceptAsync()
  // makes the same blocking accept(2) call on one of libuv's helper threads and resolves when a
  // client arrives, so this thread keeps its event loop free to hear Ctrl+C and the 'exit' of
  // finished workers.
  for (let pauseMs = 0; ; ) {
    if (pool) await pool.roomForMore();
    else await roomForMoreThreads(options.extra['max-clients']!);

    let accepted: [Socket, Address];
    try {
      accepted = await server.acceptAsync();
    } catch (error) {
      if (stopping) return;
      if (isOSError(error, 'ECONNABORTED')) continue; // that client left before we took it
      // Out of descriptors (EMFILE) or memory: retrying at once would spin. Wait, longer each
      // time; the clients wait in the listen queue and are served once a descriptor is free.
      pauseMs = Math.min(Math.max(pauseMs * 2, 100), 1000);
      log(`accept() failed: ${describeError(error)}; pausing ${pauseMs} ms`);
      await sleep(pauseMs);
      continue;
    }
    pauseMs = 0;

    const [conn, address] = accepted;
    const job: ConnectionJob = { fd: conn.fd, who: formatAddress(address), acceptedAt: now() };
    if (pool) pool.serve(conn, job);
    // Starting a thread keeps a core busy for tens of milliseconds (see the header), so
    // we start one at a time: the next clients wait in the kernel's listen queue meanwhile.
    // That costs nothing in throughput on a machine with few cores, and it keeps Ctrl+C quick:
    // Node can end a thread only once it has started, and would wait for every half-started one.
    else await startConnectionThread(conn, job, options);

    // The article's 多进程 version closes new_socket here, because the child has its own copy.
    // We must NOT: threads share one descriptor table, so there is only one descriptor, and the
    // worker is using it. Closing it here gives the article's traceback in the thread, "OSError:
    // [Errno 9] Bad file descriptor", or worse: the next accept() reuses the lowest free number,
    // and the worker would then read and answer a different client's connection.
  }
}

/** Where main() put the JavaScript compiled from this file. */
let thisFileAsJavaScript = '';

/**
 * A new thread running this same file, with `start` as its workerData.
 *
 * Not the .ts file itself: a new thread is a new JavaScript engine that knows no TypeScript, and
 * teaching it with tsx's loader would cost every thread 0.2 to 0.6 s and ~20 MiB more (see the
 * header). It runs the plain JavaScript that main() compiled from this file once
 * (shared/compiled-self.ts), with no Node options of ours (execArgv: []): under `npx tsx`
 * they would load tsx into it after all.
 */
function startThreadRunningThisFile(start: WorkerStart): Worker {
  return new Worker(thisFileAsJavaScript, { workerData: start, execArgv: [] });
}

/**
 * threading.Thread(target=handle_request, args=(new_socket,)).start(): a new worker thread
 * running this same file, told which descriptor to serve. Resolves once the new thread serves
 * the connection, or has failed to start.
 */
function startConnectionThread(conn: Socket, job: ConnectionJob, options: ServerOptions): Promise<void> {
  let worker: Worker;
  try {
    worker = startThreadRunningThisFile({ options, job });
  } catch (error) {
    refuse(conn, job.who, `no thread could start: ${describeError(error)}`);
    return Promise.resolve();
  }
  liveConnections.set(job.fd, worker);
  connectionThreads += 1;

  return new Promise((started) => {
    // Who closes the descriptor? The worker, once it has said 'serving'. If it dies before that
    // (it failed to start: out of memory, out of descriptors), the connection is still ours.
    let serving = false;
    let closed = false;
    let failure: unknown = null;
    worker.on('message', (message: WorkerReport) => {
      if (message.kind === 'serving') {
        serving = true;
        started();
      }
      if (message.kind === 'closed') closed = true;
    });
    worker.on('error', (error) => (failure = error));
    // The thread has ended and its isolate's memory is returned. (Reports sent before the end
    // are always delivered before 'exit'.)
    worker.on('exit', () => {
      // The number may already belong to a newer connection if the worker closed it a moment ago.
      if (liveConnections.get(job.fd) === worker) liveConnections.delete(job.fd);
      connectionThreads -= 1;
      threadEnded();
      if (!serving) refuse(conn, job.who, `its thread failed to start: ${describeError(failure)}`);
      else if (!closed) {
        log(`${job.who} its thread died (${describeError(failure)}): closing the connection`);
        conn.close();
      }
      started();
    });
  });
}

// Waiting for a thread to end when --max-clients are running (see MAX_CLIENTS_FLAG). Nobody is
// refused and no thread is started for the waiting clients: their connect() has succeeded, and
// the kernel holds them in the listen queue until we accept again. One line each way.
// (Threads are counted until their 'exit', not by liveConnections: a thread that has closed
// its descriptor is still running for a moment, and the number may already serve a new client.)
let connectionThreads = 0;
let threadEndedSignal: (() => void) | null = null;

async function roomForMoreThreads(cap: number): Promise<void> {
  if (connectionThreads < cap) return;
  log(`${connectionThreads} connections, the --max-clients cap: new clients wait in the listen queue`);
  while (connectionThreads >= cap) {
    await new Promise<void>((resolve) => (threadEndedSignal = resolve));
  }
  log('a connection ended: accepting again');
}

function threadEnded(): void {
  threadEndedSignal?.();
  threadEndedSignal = null;
}

/**
 * We could not serve this client (no thread could start for it: out of descriptors or memory).
 * Say so with a complete 503, close, log one line.
 */
function refuse(conn: Socket, who: string, why: string): void {
  log(`${who} 503 ${why}`);
  try {
    conn.settimeout(1000); // a fresh socket takes 200 bytes at once; never wait long regardless
    conn.sendall(serviceUnavailable(why).bytes);
  } catch {
    // The client is gone too; closing is all that is left.
  } finally {
    conn.close();
  }
}

function shutdownQuietly(socket: Socket): void {
  try {
    socket.shutdown(SHUT_RDWR);
  } catch {
    // Already closed by its thread: nothing to wake.
  }
}

// =======================================================================================
// What production does: a pool of threads started up front (--pool N)
// =======================================================================================
//
// Everything above is the article's design, and its cost is visible: every client pays for a
// new thread (here ~45 ms, and ~10 MiB while it lives), and a crowd of clients means a
// crowd of threads. Real thread-based servers (Apache's worker MPM, Tomcat, Java's
// ExecutorService, Python's ThreadPoolExecutor) start a fixed number of threads once and reuse
// them:
//
//  - N workers are started before the server says it is ready; each loads the site once and
//    keeps its file cache warm for every connection it serves afterwards.
//  - The main thread still accepts. It hands each new connection's descriptor number to an idle
//    worker with postMessage(); when none is idle, the connection waits in a queue.
//  - A worker serves one connection at a time, blocking exactly as above, then reports 'closed'
//    and is idle again.
//
// The price: at most N clients are served at once. With keep-alive, an idle client occupies a
// worker until it leaves or the idle timeout closes it, which is why such servers keep that
// timeout short, and why the event-driven designs of 04–06 exist.

/** Connections accepted but waiting for a free worker; beyond this the listen queue holds them. */
const MAX_WAITING_CONNECTIONS = 64;

class WorkerPool {
  private readonly idle: Worker[] = [];
  private readonly waiting: Array<{ conn: Socket; job: ConnectionJob }> = [];
  /** Which connection each busy worker is serving. */
  private readonly assigned = new Map<Worker, { conn: Socket; job: ConnectionJob }>();
  private roomSignal: (() => void) | null = null;
  private started = false;

  private constructor(private readonly options: ServerOptions) {}

  /** Start `size` workers and wait until every one has loaded; exit if one cannot start. */
  static async start(size: number, options: ServerOptions): Promise<WorkerPool> {
    const pool = new WorkerPool(options);
    await Promise.all(Array.from({ length: size }, () => pool.addWorker()));
    pool.started = true;
    return pool;
  }

  /** Give the connection to an idle worker, or queue it until one is free. */
  serve(conn: Socket, job: ConnectionJob): void {
    this.waiting.push({ conn, job });
    this.dispatch();
  }

  /** Resolves once the queue has room for another connection. */
  async roomForMore(): Promise<void> {
    while (this.waiting.length >= MAX_WAITING_CONNECTIONS) {
      await new Promise<void>((resolve) => (this.roomSignal = resolve));
    }
  }

  private dispatch(): void {
    while (this.idle.length > 0 && this.waiting.length > 0) {
      const worker = this.idle.pop()!;
      const { conn, job } = this.waiting.shift()!;
      this.assigned.set(worker, { conn, job });
      liveConnections.set(job.fd, worker);
      worker.postMessage(job); // just a number and two strings: the descriptor itself stays put
      this.roomSignal?.();
      this.roomSignal = null;
    }
  }

  private addWorker(): Promise<void> {
    return new Promise((resolve) => {
      const worker = startThreadRunningThisFile({ options: this.options, job: null });
      let ready = false;
      let failure: unknown = null;
      worker.on('message', (message: WorkerReport) => {
        if (message.kind === 'serving') return;
        if (message.kind === 'ready') {
          ready = true;
          resolve();
        } else {
          this.finished(worker); // 'closed': it is done with its connection
        }
        this.idle.push(worker); // either way, it now waits for work
        this.dispatch();
      });
      worker.on('error', (error) => (failure = error));
      worker.on('exit', () => this.lost(worker, ready, failure));
    });
  }

  private finished(worker: Worker): void {
    const assignment = this.assigned.get(worker);
    if (assignment === undefined) return;
    this.assigned.delete(worker);
    if (liveConnections.get(assignment.job.fd) === worker) liveConnections.delete(assignment.job.fd);
  }

  // A pool worker never ends on its own (every client error is caught inside it). If one does,
  // close what it was serving and, after a pause (so a failure that repeats cannot spin), put a
  // new worker in its place. Only a pool that cannot start at all is fatal.
  private lost(worker: Worker, wasReady: boolean, failure: unknown): void {
    if (stopping) return;
    if (!this.started) {
      log(`a pool thread failed to start: ${describeError(failure)}`);
      process.exit(1);
    }
    log(`a pool thread ${wasReady ? 'died' : 'failed to start'} (${describeError(failure)}); starting another in 1 s`);
    const index = this.idle.indexOf(worker);
    if (index >= 0) this.idle.splice(index, 1);
    const assignment = this.assigned.get(worker);
    if (assignment !== undefined) {
      this.finished(worker);
      assignment.conn.close();
    }
    setTimeout(() => void this.addWorker(), 1000);
  }
}

/** A pool worker: wait for a connection, serve it to the end, report, repeat. */
function runPoolWorker(site: StaticSite, options: ServerOptions): void {
  parentPort!.on('message', (job: ConnectionJob) => serveJob(job, site, options));
  report({ kind: 'ready' });
}

// =======================================================================================
// One file, two roles: Python's Thread(target=handle_request) names a function; a Node worker
// names a module, so the worker loads this same file and takes the other branch.
// =======================================================================================
// main() is called here rather than awaited at the top level: a copy of this file in a CommonJS
// package (what `npm init -y` makes) could not be compiled with a top-level await.
if (isMainThread) main().catch(exitOnCrash);
else runWorker(workerData as WorkerStart);
