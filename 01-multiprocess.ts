/**
 * 01-multiprocess.ts: one OS process per connection
 *
 * Mirrors the article's section 「多进程」 (multiple processes, Python's multiprocessing).
 *
 *     npm install
 *     npx tsx 01-multiprocess.ts [--port 7890] [--root DIR] [--idle-timeout S] [--verbose]
 *     npx tsx 01-multiprocess.ts --pool 4      # the prefork variant at the end of this file
 *
 * The parent process only accepts. Every connection it accepts is handed to a brand-new
 * process, which serves that one client with plain blocking calls (recv, send, sendfile),
 * keep-alive included, until the client leaves; then the process exits. Python writes this
 * as `multiprocessing.Process(target=handle_request, args=(new_socket,))`. Node has no fork()
 * that keeps running the same program, so the child is this very file started again with a
 * hidden flag (`--connection-fd 3`) that says "you are the child: serve descriptor 3".
 *
 * The lesson of the section is one line of the parent: `new_socket.close()`. A started child
 * gets its own copy of the connection's descriptor. Both copies refer to the same socket in
 * the kernel, which counts them: close() drops one reference, and the FIN goes out when the
 * last one is closed, or earlier, on shutdown(SHUT_WR), whatever other copies exist (the
 * child's closeGently() below calls it). A parent that forgot its close would leak one
 * descriptor per client (`ls -l /proc/PID/fd` of the parent grows), every finished
 * connection would stay in the kernel (`ss -tn` lists them as CLOSE-WAIT), and a
 * connection the child ends with a plain close (the idle timeout) would never send its FIN:
 * that client would wait for an end that never comes.
 *
 * What to watch:
 *   - `ls -l /proc/PID/fd` of the parent: the listening socket and Node's own plumbing, never
 *     a client socket, however many clients came and went. In a child, fd 3 is its client.
 *   - `ps --forest -o pid,stat,rss,args -g PID` while a few clients are connected: one child
 *     per connection, gone (not left as zombies, state Z) once its client leaves.
 *   - `npx tsx 01-multiprocess.ts --trace`: the parent's accept4, the child started for the
 *     descriptor, the parent's close of its copy, then the child's own blocking calls, marked with
 *     its pid. The same from outside, with the clone and execve that start the child:
 *     `strace -f -e trace=accept4,clone,execve,recvfrom,sendto,sendfile,close -p PID`.
 *
 * The price. Up to Python 3.13, multiprocessing on Linux forks: the child shares its parent's
 * memory pages and is ready at once. The article's server then answers a new client's first
 * byte in ~3 ms, and each child adds ~12 MiB of RSS, nearly all of it pages still shared with
 * the parent (~1.5 MiB PSS; measured with Python 3.11). Python 3.14 made `forkserver` the
 * default start method on Linux: the child is forked from a server process started earlier,
 * and the socket reaches it over a Unix socket (SCM_RIGHTS). It is still a second descriptor
 * for the one socket, so the lesson stands; the ~3 ms and ~12 MiB are a fork's. Node cannot fork
 * a running program, so a Node child is a whole new runtime: the node binary, a JavaScript
 * engine, then this file and the shared core. Measured with Node 20 on the 2-core machine these
 * lessons were written on (busy with other work, so take the spread seriously):
 *   - a new client's first byte: ~60 ms (40 to 110 ms), most of it node's own start
 *     (`curl -so /dev/null -w '%{time_starttransfer}\n' http://127.0.0.1:7890/hello.txt`:
 *     connect to first byte, and the connect takes well under a millisecond);
 *   - memory: ~46 MiB of RSS per child while its client stays connected (`grep VmRSS
 *     /proc/CHILD/status`; `pgrep -f -- --connection-fd` lists the children), ~9 MiB of it
 *     the child's own (Pss in /proc/CHILD/smaps_rollup): the rest is the node binary's pages,
 *     which every child maps and the kernel keeps once. (Node 24: ~9 MiB more, a larger
 *     binary and engine.)
 *   Each child runs the plain JavaScript compiled from this file once, when the server
 *   started (shared/compiled-self.ts): started through tsx's loader instead, it took 0.3 to
 *   1 s and ~85 MiB. `npm run bench -- --model 01 --scenario c10k` measures both.
 * So a thousand idle keep-alive clients would cost a thousand processes and some 9 GB of
 * memory: the reason the article moves on to threads, coroutines and event loops.
 * Production servers that do use processes start a fixed number up front; see the end.
 *
 * Linux only (it calls the system calls through shared/libc.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { announce, exitOnCrash, exitOnListenError, onShutdown, parseCommandLine, type ExtraFlag } from './shared/cli.ts';
import { configureLog, debug, describeError, isVerbose, log } from './shared/log.ts';
import { SHUT_WR, Socket, dieWithParent, formatAddress, isOSError, type Address } from './shared/libc.ts';
import { handleRequest, serviceUnavailable } from './shared/handle-request.ts';
import { Outbox } from './shared/outbox.ts';
import { RequestReader } from './shared/request-reader.ts';
import { StaticSite } from './shared/static-site.ts';
import { childEnvironment, compiledCopyOf } from './shared/compiled-self.ts';
import { traceSystemCalls } from './shared/trace-calls.ts';

const MODEL = '01-multiprocess';
const FLAGS: ExtraFlag[] = [
  { name: 'max-clients', valueName: 'N', help: 'at most N connections (processes) at once; more wait to be accepted', default: 100, min: 1, max: 10000 },
  { name: 'pool', valueName: 'N', help: 'prefork N worker processes instead of one per connection', default: 0, min: 0, max: 64 },
  // How a parent tells the copy of this file it starts what to do. Not for people.
  { name: 'connection-fd', valueName: 'FD', help: 'serve this connected socket, then exit', default: 0, min: 3, max: 1023, hidden: true },
  { name: 'listener-fd', valueName: 'FD', help: 'accept and serve on this listening socket', default: 0, min: 3, max: 1023, hidden: true },
  { name: 'parent-pid', valueName: 'PID', help: 'the process that started this one', default: 0, min: 1, max: 4194304, hidden: true },
];
const options = parseCommandLine(MODEL, 'one OS process per connection (or a prefork pool with --pool N)', FLAGS);
// --trace: each call narrated on stderr; a child's lines carry its pid, and it writes them at once.
if (options.trace) traceSystemCalls(options.extra['parent-pid'] ? { prefix: `[pid ${process.pid}] `, blocking: true } : {});

/** The descriptor number a child finds its socket on: stdio slot 3, after stdin/out/err. */
const INHERITED_FD = 3;
/** Accepting again after running out of descriptors: wait this long, doubling up to the max. */
const FIRST_PAUSE_MS = 100;
const MAX_PAUSE_MS = 1000;
/** After our last response: how long and how much we keep reading before closing (see below). */
const LINGER_MS = 2000;
const LINGER_LIMIT_BYTES = 64 * 1024;

// =======================================================================================
// The parent: accept, hand the connection to a new process, close our copy.
// =======================================================================================

/** socket(), setsockopt(SO_REUSEADDR), bind(), listen(): the article's first four lines. */
function listen(): Socket {
  try {
    return Socket.listenTCP(options.host, options.port);
  } catch (error) {
    exitOnListenError(options, error);
  }
}

async function serveWithProcessPerConnection(): Promise<void> {
  const server = listen();
  const thisFile = await thisFileAsJavaScript();
  announce(options, server.getsockname());

  const children = new Set<ChildProcess>();
  onShutdown(() => {
    // Ctrl+C in a terminal reaches the children too (one process group), but a `kill PID`
    // reaches only us: pass it on. A blocked child has no JavaScript signal handler, so
    // SIGTERM's default action ends it at once, even in the middle of a recv().
    for (const child of children) child.kill('SIGTERM');
    // Wake the accept() blocked on a worker thread (see below), or exit would wait for it.
    server.shutdown();
    server.close();
  });

  let pauseMs = FIRST_PAUSE_MS;
  for (;;) {
    await roomForAnotherProcess(children);

    // Why acceptAsync() and not accept(): a blocking accept() on this thread would freeze
    // Node's event loop until the next client arrives. While frozen, no JavaScript signal
    // handler runs (Ctrl+C would do nothing) and no child's exit is collected (every child
    // that finished would stay a zombie). acceptAsync() makes the same blocking accept4()
    // call on one of libuv's worker threads, so this thread keeps turning the event loop.
    let conn: Socket;
    let address: Address;
    try {
      [conn, address] = await server.acceptAsync(); // conn, addr = server.accept()
    } catch (error) {
      if (!isOSError(error)) throw error;
      if (isOSError(error, 'ECONNABORTED', 'EPROTO')) continue; // the client gave up while queued
      // Out of descriptors (EMFILE; ENFILE for the whole system) or memory. The waiting
      // clients stay in the kernel's queue. Retrying at once would fail again and spin, so
      // pause, longer each time, and keep the clients that are already being served.
      log(`accept failed: ${describeError(error)}; trying again in ${pauseMs} ms`);
      await sleep(pauseMs);
      pauseMs = Math.min(pauseMs * 2, MAX_PAUSE_MS);
      continue;
    }
    pauseMs = FIRST_PAUSE_MS;

    startConnectionProcess(thisFile, conn, address, children); // multiprocessing.Process(...).start()

    // THE line of this section. The child now holds its own copy of the descriptor; ours
    // must go, at once. If we kept it, the parent would run out of descriptors after a few
    // thousand clients, and, worse, the socket would outlive the child: a close() only drops
    // one reference, and the kernel sends the FIN on the last one (or on a shutdown()).
    conn.close(); // new_socket.close()
  }
}

// Waking the accept loop when it waits for a process to end (see roomForAnotherProcess).
let processEnded: (() => void) | null = null;

/**
 * At most --max-clients processes at once. Each costs memory for as long as its client stays
 * (see the header), and a crowd of clients that connect and say nothing would otherwise start
 * processes until the machine runs out. At the cap the parent simply stops calling accept():
 * new clients wait in the kernel's listen queue (their connect() has already succeeded) and
 * are accepted as processes end. Nobody is refused, and no process is started for them.
 */
async function roomForAnotherProcess(children: Set<ChildProcess>): Promise<void> {
  const cap = options.extra['max-clients']!;
  if (children.size < cap) return;
  log(`${children.size} connections, the --max-clients cap: new clients wait in the listen queue`);
  while (children.size >= cap) await new Promise<void>((resolve) => (processEnded = resolve));
  log('a connection ended: accepting again');
}

// The child is this very file, started again by the same node binary: not through tsx, whose
// loader would cost every child a few hundred milliseconds and tens of MiB, but as the plain
// JavaScript that tsx would make of it, compiled once when the server starts (see
// shared/compiled-self.ts, which also says why a child's environment lacks one variable).
// Nor with process.execArgv: under `npx tsx` it carries tsx's preflight script, which
// installs JavaScript signal handlers, and a child must have none (see serveOneConnection).
function thisFileAsJavaScript(): Promise<string> {
  return compiledCopyOf(import.meta.url);
}

function childArguments(thisFile: string, role: string[]): string[] {
  return [
    thisFile, ...role,
    '--parent-pid', String(process.pid),
    '--root', options.root,
    '--idle-timeout', String(options.idleTimeoutMs / 1000),
    '--request-timeout', String(options.requestTimeoutMs / 1000),
    ...(isVerbose() ? ['--verbose'] : []),
    ...(options.trace ? ['--trace'] : []),
  ];
}

/**
 * Start a process for one connection. spawn()'s stdio array is the list of descriptors the
 * child starts with: nothing on stdin, our stdout and stderr (so its log lines appear with
 * ours), and the connection as descriptor 3. Everything else we hold is close-on-exec, so
 * the child inherits its client and nothing more.
 */
function startConnectionProcess(thisFile: string, conn: Socket, address: Address, children: Set<ChildProcess>): void {
  const client = formatAddress(address);
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, childArguments(thisFile, ['--connection-fd', String(INHERITED_FD)]), {
      stdio: ['ignore', 'inherit', 'inherit', conn.fd],
      env: childEnvironment(),
    });
  } catch (error) {
    refuse(conn);
    log(`${client} 503: cannot start a process for it (${describeError(error)})`);
    return;
  }
  if (child.pid === undefined) {
    // Out of descriptors or processes (EMFILE, EAGAIN): Node reports it as an 'error' event
    // a moment later. This client gets a short answer instead of a silent close.
    refuse(conn);
    child.once('error', (error) => log(`${client} 503: cannot start a process for it (${describeError(error)})`));
    return;
  }

  children.add(child);
  debug(`${client} OnLine: process ${child.pid}`);
  child.on('error', (error) => log(`process ${child.pid}: ${describeError(error)}`));
  // Node collects every child that ends (waitpid), so none stays a zombie; we only forget it.
  child.on('exit', (code, signal) => {
    children.delete(child);
    processEnded?.();
    // SIGINT is Ctrl+C, which reached the whole process group: no news.
    if (code !== 0 && signal !== 'SIGINT') log(`process ${child.pid} for ${client} ended by ${signal ?? `exit code ${code}`}`);
    else debug(`${client} OffLine: process ${child.pid} exited`);
  });
}

/** Tell a client we cannot serve it now. Never blocks the parent: one non-blocking send. */
function refuse(conn: Socket): void {
  try {
    conn.setblocking(false);
    // A fresh connection's send buffer has room for this short answer.
    conn.send(serviceUnavailable('no process could be started for this connection').bytes);
    conn.shutdown(SHUT_WR);
  } catch {
    // The client is already gone; the caller closes our descriptor either way.
  }
}

// =======================================================================================
// The child: serve one connection with blocking calls, then exit.
// =======================================================================================

/**
 * Set up a child process. It installs NO JavaScript signal handlers: while it is blocked in
 * recv() its event loop never turns, so such a handler would never run, and its presence
 * would stop the signal from ending the process. Without one, SIGINT and SIGTERM end the
 * child wherever it is (Node's own C-level handler only resets the terminal and re-raises).
 */
function becomeChild(): void {
  configureLog(`${MODEL}[${process.pid}]`, options.verbose);
  // If the parent dies (even by SIGKILL), the kernel sends us SIGTERM: no orphan keeps
  // serving for a server that no longer exists.
  dieWithParent('SIGTERM');
  // The parent may have died before that call: then our parent is no longer the one that
  // started us, and the kernel will never send the signal. Leave now.
  if (process.ppid !== options.extra['parent-pid']) {
    log('the parent process is gone; exiting');
    process.exit(1);
  }
}

function serveOneConnection(fd: number): never {
  becomeChild();
  const conn = new Socket(fd);
  let address: Address;
  try {
    address = conn.getpeername();
  } catch (error) {
    // The client reset the connection while this process was starting.
    log(`the client left before this process started (${describeError(error)})`);
    process.exit(0);
  }
  serveConnection(conn, address, new StaticSite(options.root));
  process.exit(0);
}

// One receive buffer per process, reused for every recv(). The RequestReader copies out
// whatever it still needs before we receive into the buffer again.
const receiveBuffer = Buffer.allocUnsafe(64 * 1024);

/** The article's handle_request(new_socket): requests, answers, until the client leaves. */
function serveConnection(conn: Socket, address: Address, site: StaticSite): void {
  const client = formatAddress(address);
  const outbox = new Outbox();
  debug(`${client} OnLine`);
  try {
    // A blocking recv() or send() that waits longer than this fails with EAGAIN. Without
    // it, a client that connects and says nothing would hold this process forever.
    conn.settimeout(options.idleTimeoutMs);
    if (serveRequests(conn, client, outbox, site) === 'we close') closeGently(conn);
    debug(`${client} OffLine`);
  } catch (error) {
    log(`${client} dropped: ${describeDrop(error)}`);
  } finally {
    outbox.discard(); // closes a file still being sent if the client left halfway
    conn.close();
  }
}

/** Answer requests until the client closes (recv gives 0) or a response says close. */
function serveRequests(conn: Socket, client: string, outbox: Outbox, site: StaticSite): 'client closed' | 'we close' {
  const reader = new RequestReader();
  for (;;) {
    const count = receiveBeforeDeadline(conn, reader); // recv_msg = new_socket.recv(1024): blocks
    if (count === 0) return 'client closed';

    // One recv() may hold part of a request or several pipelined ones; the reader
    // reassembles them and we answer each complete request in order. (No bytes but null: the
    // request's deadline passed, and the reader's next() hands out its 408.)
    if (count !== null) reader.push(receiveBuffer, count);
    for (let parsed = reader.next(); parsed !== null; parsed = reader.next()) {
      const response = handleRequest(parsed, site);
      if (response.status >= 400) log(`${client} ${response.status} ${response.reason}`);
      else if (parsed.kind === 'request') debug(`${client} ${parsed.method} ${parsed.target} ${response.status}`);
      // Send each response completely before looking at the next request: a client that
      // pipelines without reading then blocks only us, and we hold one response at a time.
      outbox.push(response);
      sendEverything(conn, outbox);
      if (response.close) return 'we close';
    }
  }
}

/**
 * A blocking recv() that keeps the request deadline. Between requests it waits as long as
 * --idle-timeout allows (SO_RCVTIMEO, set for the whole connection). But any byte restarts that
 * wait, so a client sending its request a byte at a time would hold this process forever: while
 * a request is arriving, recv() may wait only for what is left of its --request-timeout, counted
 * from its first byte. Returns the byte count (0: the client closed), or null once the deadline
 * has passed and the reader has given up on the request (its next() then hands out a 408).
 */
function receiveBeforeDeadline(conn: Socket, reader: RequestReader): number | null {
  for (;;) {
    const left = reader.timeLeft(Date.now(), options.requestTimeoutMs);
    if (left >= options.idleTimeoutMs) return conn.recvInto(receiveBuffer); // Infinity between requests
    if (reader.expire(Date.now(), options.requestTimeoutMs)) return null;
    conn.settimeout(left);
    try {
      return conn.recvInto(receiveBuffer);
    } catch (error) {
      if (!isOSError(error, 'EAGAIN')) throw error; // EAGAIN: time is up; expire() says so next round
    } finally {
      conn.settimeout(options.idleTimeoutMs);
    }
  }
}

/**
 * Blocking sends until the Outbox is empty. send() may take only part of what we offer
 * (the rest waits in the Outbox); a file body goes out with sendfile(2), copied by the
 * kernel from the file to the socket without passing through this process.
 */
function sendEverything(conn: Socket, outbox: Outbox): void {
  while (!outbox.isEmpty) {
    const file = outbox.peekFile();
    if (file === null) {
      outbox.consumed(conn.send(outbox.peek()));
      continue;
    }
    const sent = conn.sendfile(file.fd, file.offset, file.length);
    // 0 means the file ended early (it shrank after Content-Length was sent). Looping would
    // spin forever; dropping the connection at least tells the client something is wrong.
    if (sent === 0) throw new Error(`file ended ${file.length} bytes early (it shrank while being sent)`);
    outbox.consumed(sent);
  }
}

/**
 * We decided to close (Connection: close, or a 400). shutdown(SHUT_WR) sends our FIN after
 * the last byte; then we read and discard what the client still sends, briefly, before
 * closing. Closing a socket that has unread bytes makes the kernel send a reset instead,
 * and a reset can destroy the response the client has not read yet (its 400, say).
 */
function closeGently(conn: Socket): void {
  conn.shutdown(SHUT_WR);
  conn.settimeout(LINGER_MS);
  try {
    for (let discarded = 0; discarded < LINGER_LIMIT_BYTES; ) {
      const count = conn.recvInto(receiveBuffer);
      if (count === 0) return;
      discarded += count;
    }
  } catch {
    // Timed out or reset: the client had its chance. The caller closes.
  }
}

/** Why a connection ended early, in a few words. */
function describeDrop(error: unknown): string {
  // SO_RCVTIMEO / SO_SNDTIMEO ran out: nothing received and nothing sent for that long.
  if (isOSError(error, 'EAGAIN')) return `idle for ${options.idleTimeoutMs / 1000} s: closed`;
  if (isOSError(error, 'ECONNRESET')) return 'connection reset by the client (ECONNRESET)';
  if (isOSError(error, 'EPIPE')) return 'the client went away mid-response (EPIPE)';
  return describeError(error);
}

// =======================================================================================
// What production does: a prefork pool (--pool N).
//
// A process per connection pays a process start per client: far too slow in Node (see the
// header), and even with a cheap fork() it is work done on the critical path. Apache's
// prefork MPM and nginx's workers start a fixed number of processes up front instead, and
// give each one the LISTENING socket. Every worker loops: blocking accept(), serve that
// client until it leaves, accept again. The kernel hands each new connection to exactly
// one of the workers waiting in accept(); no parent is involved per connection at all.
//
// The parent's only jobs are to start the workers, start a new one when a worker dies
// unexpectedly, and stop them all on Ctrl+C. The cost of the model shows up as capacity: N
// workers serve N clients at a time; an (N+1)th waits in the listen queue until a worker is
// free, and an idle keep-alive client occupies a worker until --idle-timeout. That is why
// such servers keep keep-alive timeouts short, and why nginx's workers are event loops
// (06-epoll.ts) rather than one-client-at-a-time loops like these.
// =======================================================================================

async function serveWithPreforkPool(size: number): Promise<void> {
  const listener = listen();
  const thisFile = await thisFileAsJavaScript();
  announce(options, listener.getsockname());

  const workers = new Set<ChildProcess>();
  let stopping = false;
  onShutdown(() => {
    stopping = true;
    for (const worker of workers) worker.kill('SIGTERM');
    listener.close();
  });

  const startWorker = (): void => {
    if (stopping) return;
    const startedAt = Date.now();
    const worker = spawn(process.execPath, childArguments(thisFile, ['--listener-fd', String(INHERITED_FD)]), {
      stdio: ['ignore', 'inherit', 'inherit', listener.fd],
      env: childEnvironment(),
    });
    // A worker that dies at once (a bug, no memory) must not be restarted in a tight loop.
    const restartSoon = () => {
      if (!stopping) setTimeout(startWorker, Date.now() - startedAt < 1000 ? 1000 : 0);
    };
    worker.on('error', (error) => {
      log(`cannot start a worker: ${describeError(error)}`);
      if (worker.pid === undefined) restartSoon(); // it never started, so no 'exit' follows
    });
    if (worker.pid === undefined) return;
    workers.add(worker);
    debug(`worker ${worker.pid} started`);
    worker.on('exit', (code, signal) => {
      workers.delete(worker);
      // SIGINT is Ctrl+C, which reached the whole process group: we are stopping too.
      if (stopping || signal === 'SIGINT') return;
      log(`worker ${worker.pid} ended by ${signal ?? `exit code ${code}`}; starting another`);
      restartSoon();
    });
  };
  for (let i = 0; i < size; i++) startWorker();
}

/** A pool worker: accept, serve until the client leaves, accept again; forever. */
function runPoolWorker(fd: number): never {
  becomeChild();
  const listener = new Socket(fd);
  const site = new StaticSite(options.root);
  let pauseMs = FIRST_PAUSE_MS;
  for (;;) {
    let conn: Socket;
    let address: Address;
    try {
      [conn, address] = listener.accept(); // blocks this worker only
    } catch (error) {
      if (isOSError(error, 'ECONNABORTED', 'EPROTO')) continue;
      if (!isOSError(error, 'EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM')) throw error;
      log(`accept failed: ${describeError(error)}; trying again in ${pauseMs} ms`);
      sleepBlocking(pauseMs);
      pauseMs = Math.min(pauseMs * 2, MAX_PAUSE_MS);
      continue;
    }
    pauseMs = FIRST_PAUSE_MS;
    serveConnection(conn, address, site);
  }
}

/** A pause that blocks this process, as Python's time.sleep() would; signals still end it. */
function sleepBlocking(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

// =======================================================================================
// Which role this process plays. main() is called here rather than written as top-level
// `await`s: a copy of this file in a CommonJS package (what `npm init -y` makes) could not be
// compiled with them.
// =======================================================================================
async function main(): Promise<void> {
  if (options.extra['connection-fd']) serveOneConnection(options.extra['connection-fd']);
  else if (options.extra['listener-fd']) runPoolWorker(options.extra['listener-fd']);
  else if (options.extra.pool) await serveWithPreforkPool(options.extra.pool);
  else await serveWithProcessPerConnection();
}

main().catch(exitOnCrash);
