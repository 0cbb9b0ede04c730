/**
 * shared/trace.ts: `--trace`, each model narrating the calls of its lesson as it makes them.
 *
 *     npx tsx 05-select.ts --trace
 *     select(nfds=8, read={3,7}, write={}, timeout=500 ms) = 1 ready: read={7}
 *     recv(7, 65536) = 78 (127.0.0.1:51234: "GET /hello.txt HTTP/1.1")
 *
 * `strace -p PID` shows every system call of a Node process: mostly the runtime's own (futex,
 * mmap, libuv's epoll_pwait, its helper threads), around the few that are the lesson. It needs
 * root where ptrace is restricted, and many containers lack it. The calls that ARE the lesson
 * all pass through our own code, so with --trace the program says them itself: the C functions
 * of shared/libc.ts (shared/trace-calls.ts), the ring of shared/io-uring.ts
 * (shared/trace-ring.ts), and 03's awaits (narrateCoroutines below).
 *
 * No cost without --trace. A model that sees the flag at start swaps those functions for
 * narrating ones, once; without it nothing is swapped, and the request path runs the very code
 * it runs without this file: no "are we tracing?" question on every call.
 *
 * For a few connections by hand, not for a load:
 *   - A line that repeats the one before (an idle select() timing out, twice a second) is
 *     counted, not written; "(the same 12 times more)" comes before the next different line.
 *   - At most 1000 lines a second are written by each process or thread; the rest are dropped,
 *     and one line says how many, once that second is over.
 *   - Where stderr goes decides how a write behaves. Node's process.stderr writes at once to a
 *     file or a terminal, and to a pipe asynchronously: what the reader has not taken yet waits
 *     in our memory ("A note on process I/O" in Node's docs). Past 64 KiB waiting, lines are
 *     dropped rather than queued, so a reader that stops cannot grow the server's memory.
 *   - A process or thread that serves with blocking calls (01's children, 02's threads) gives
 *     its event loop no turn while it serves, so process.stderr would hold its lines until the
 *     connection ends. It writes each line itself, with writeSync(2, ...): if the reader stops
 *     reading, only that connection waits.
 */
import { writeSync } from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import path from 'node:path';
import type net from 'node:net';
import { formatAddress } from './log.ts';

export interface TraceSetup {
  /** Put before every line: "[pid 4242] " in a child process, "[thread 3] " in a thread. */
  prefix?: string;
  /** This process or thread serves with blocking calls: write each line at once (see above). */
  blocking?: boolean;
}

const LINES_PER_SECOND = 1000;
const MOST_BYTES_WAITING = 64 * 1024;

let prefix = '';
let enabled = false;
let writeText: (text: string) => boolean = writeToStderrStream;

/** Turn narration on for this process or thread. Called once, at start, only with --trace. */
export function startTracing(setup: TraceSetup = {}): void {
  enabled = true;
  prefix = setup.prefix ?? '';
  writeText = setup.blocking ? writeAtOnce : writeToStderrStream;
}

export function isTracing(): boolean {
  return enabled;
}

// ---------------------------------------------------------------------------------------
// Lines
// ---------------------------------------------------------------------------------------
let lastKey: string | null = null;
let repeats = 0;
let windowStart = 0;
let writtenInWindow = 0;
let dropped = 0;

/**
 * One narrated call (or several lines that belong together: 04's pass). `key` is what makes
 * two lines "the same" for counting repeats: the text, less what changes on every call.
 */
export function trace(text: string, key: string = text): void {
  if (key === lastKey) {
    repeats += 1;
    return;
  }
  if (repeats > 0) emit(`  (the same ${repeats === 1 ? 'once' : `${repeats} times`} more)`);
  repeats = 0;
  lastKey = key;
  emit(text);
}

/** Write within the bounds: a whole block or nothing. */
function emit(text: string): void {
  if (Date.now() - windowStart >= 1000) startWindow();
  if (writtenInWindow >= LINES_PER_SECOND) {
    countDropped();
    return;
  }
  writtenInWindow += 1;
  if (!write(text)) countDropped();
}

/** A new second: say how many lines the last one dropped, if any. */
function startWindow(): void {
  windowStart = Date.now();
  writtenInWindow = 0;
  if (dropped === 0) return;
  const count = dropped;
  dropped = 0;
  write(`trace: ${count} lines dropped (over ${LINES_PER_SECOND} a second, or stderr not keeping up: --trace is for a few connections by hand)`);
}

/** The first drop of a second also sets a timer to report them, in case no line follows. */
function countDropped(): void {
  if (dropped === 0) setTimeout(startWindow, Math.max(0, windowStart + 1000 - Date.now())).unref();
  dropped += 1;
}

function write(text: string): boolean {
  const lines = prefix === '' ? text : text.replaceAll(/^/gm, prefix);
  return writeText(`${lines}\n`);
}

function writeToStderrStream(text: string): boolean {
  if (process.stderr.writableLength > MOST_BYTES_WAITING) return false;
  process.stderr.write(text);
  return true;
}

function writeAtOnce(text: string): boolean {
  try {
    writeSync(2, text);
    return true;
  } catch {
    return false; // EAGAIN (a non-blocking pipe that is full), EPIPE (nobody reads): dropped
  }
}

// ---------------------------------------------------------------------------------------
// New processes and threads (01, 02): Node starts them, not our libc layer, so the functions
// that do it are swapped here: child_process.spawn and worker_threads.Worker.
// syncBuiltinESMExports() makes a module that imported them by name see the new ones too.
// ---------------------------------------------------------------------------------------

/** Narrate every spawn() and new Worker() from now on, and what each is given. */
export function narrateNewProcessesAndThreads(onNewProcess: (pid: number, fds: number[]) => void = () => undefined): void {
  const require = createRequire(import.meta.url);
  const childProcess = require('node:child_process') as Record<string, unknown>;
  const workerThreads = require('node:worker_threads') as typeof import('node:worker_threads');

  const spawn = childProcess.spawn as (command: string, args: string[], options?: { stdio?: unknown }) => { pid?: number };
  childProcess.spawn = function narratedSpawn(command: string, args: string[], options?: { stdio?: unknown }) {
    const child = spawn(command, args, options);
    if (command !== process.execPath) return child; // not one of ours (esbuild's service, say)
    const stdio = Array.isArray(options?.stdio) ? options.stdio : [];
    const handedOver = stdio.flatMap((entry, slot) => (slot > 2 && typeof entry === 'number' ? [[entry, slot]] : []));
    const given = handedOver.map(([ours, theirs]) => `our fd ${ours} is its fd ${theirs}`).join(', ');
    const shown = [path.basename(command), path.basename(args[0] ?? ''), ...args.slice(1, 3)].join(' ');
    trace(`spawn(${shown} …) = ${child.pid === undefined ? 'failed' : `pid ${child.pid}`}${given === '' ? '' : ` (${given})`}`);
    if (child.pid !== undefined) onNewProcess(child.pid, handedOver.map(([ours]) => ours!));
    return child;
  };

  const Worker = workerThreads.Worker;
  (workerThreads as { Worker: unknown }).Worker = class NarratedWorker extends Worker {
    constructor(file: string | URL, options?: import('node:worker_threads').WorkerOptions) {
      super(file, options);
      trace(`new Worker(${path.basename(String(file))}) = thread ${this.threadId} (same process, same descriptor table)`);
    }
  };
  syncBuiltinESMExports();
}

// ---------------------------------------------------------------------------------------
// 03-coroutine: libuv makes the system calls, not us. What is ours to narrate is where each
// coroutine parks (an await) and what it resumes with.
// ---------------------------------------------------------------------------------------

/** The socket methods a coroutine of 03 awaits. */
export interface CoroutineSocketMethods {
  readonly socket: net.Socket;
  recv(): Promise<Buffer | null>;
  sendall(data: Buffer): Promise<void>;
  close(): Promise<void>;
}

/**
 * Narrate every coroutine: its start (server 'connection'), each await on its socket, and what
 * the await resumes with. `prototype` is the socket class's: its methods are swapped once.
 */
export function narrateCoroutines(server: net.Server, prototype: CoroutineSocketMethods): void {
  server.prependListener('connection', (socket: net.Socket) => {
    peers.set(socket, formatAddress({ host: socket.remoteAddress ?? '?', port: socket.remotePort ?? 0 }));
    trace(`[${peerOf(socket)}] accepted (libuv's accept4, fd ${fdOf(socket)}): serveClient() starts a coroutine`);
  });
  const { recv, sendall, close } = prototype;
  prototype.recv = function narratedRecv(this: CoroutineSocketMethods) {
    return narrateAwait(this, 'recv()', () => recv.call(this), (data) => (data === null ? 'null: the client closed its side' : `${data.length} bytes`));
  };
  prototype.sendall = function narratedSendall(this: CoroutineSocketMethods, data: Buffer) {
    let parked = false;
    const sending = () => {
      const pending = sendall.call(this, data);
      parked = this.socket.writableNeedDrain; // write() said "full": the coroutine waits for 'drain'
      return pending;
    };
    return narrateAwait(this, `sendall(${data.length} bytes)`, sending, () => (parked ? "after 'drain': the client read enough" : 'write() took them all'));
  };
  prototype.close = function narratedClose(this: CoroutineSocketMethods) {
    return narrateAwait(this, "close(): end() sends our FIN, then recv() until the client's", () => close.call(this), () => 'closed');
  };
}

/** Say the await, start it, and say what it resumes with once it does. */
function narrateAwait<T>(conn: CoroutineSocketMethods, what: string, start: () => Promise<T>, describe: (value: T) => string): Promise<T> {
  const who = peerOf(conn.socket);
  trace(`[${who}] await ${what} …`);
  const pending = start();
  pending.then(
    (value) => trace(`[${who}] … resumed: ${describe(value)}`),
    (error: unknown) => trace(`[${who}] … resumed by an error: ${error instanceof Error ? error.message : String(error)}`),
  );
  return pending;
}

/** Each client's address, noted when it connects (a socket forgets it once destroyed). */
const peers = new WeakMap<net.Socket, string>();

function peerOf(socket: net.Socket): string {
  return peers.get(socket) ?? '?';
}

/** The descriptor libuv holds for a socket (Node does not document it, but has it on Linux). */
function fdOf(socket: net.Socket): string {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? String(fd) : '?';
}
