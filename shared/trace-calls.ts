/**
 * shared/trace-calls.ts: `--trace` for the models that call the C library themselves (01, 02,
 * 04 to 07): each call shared/libc.ts makes, narrated on stderr in strace's form, with the
 * client it concerns:
 *
 *     accept4(3) = 7 (127.0.0.1:51234)
 *     recv(7, 65536) = 78 (127.0.0.1:51234: "GET /hello.txt HTTP/1.1")
 *     send(7, 3566) = 3566 (127.0.0.1:51234: "HTTP/1.1 200 OK")
 *     recv(7, 65536) = -1 EAGAIN (127.0.0.1:51234: nothing yet)
 *
 * How: libc.ts keeps its C functions in one table (cFunctions). traceSystemCalls() replaces each
 * entry, once, with a function that calls the real one and then says what it was asked and what
 * it answered. errno is read only after a failed call and set back before returning, so libc.ts
 * sees exactly what it would have seen. Called only when --trace is given (see shared/trace.ts).
 */
import koffi from 'koffi';
import { constants as osConstants } from 'node:os';
import { EVENT_DATA_OFFSET, EVENT_SIZE, cFunctions, decodeAddress, errnoName, formatAddress } from './libc.ts';
import { narrateNewProcessesAndThreads, startTracing, trace, type TraceSetup } from './trace.ts';

export interface CallTraceSetup extends TraceSetup {
  /**
   * 04: the loop sleeps this long after each pass. A pass's lines then come together, closed by
   * a line that sums the pass up, and a pass like the one before is counted, not written again.
   */
  passPauseMs?: number;
}

/** Which client each connected descriptor belongs to, for the glosses. */
const peers = new Map<number, string>();
/** 01: descriptors handed to a child process, by the child's pid. */
const handedTo = new Map<number, number>();

type Call = (...args: any[]) => any;
/** Runs before the call (to see what the call will overwrite); returns what to say after it. */
type Narration = (args: any[]) => (value: number, errno: number) => { text: string; key?: string };

export function traceSystemCalls(setup: CallTraceSetup = {}): void {
  startTracing(setup);
  const say = setup.passPauseMs === undefined ? trace : sayByPass(setup.passPauseMs);
  const table = cFunctions as unknown as Record<string, Call & { async?: Call }>;

  for (const [name, narration] of Object.entries(NARRATIONS)) {
    const original = table[name]!;
    const narrated: Call & { async?: Call } = (...args) => {
      const after = narration(args);
      const value = Number(original(...args));
      const errno = value < 0 ? koffi.errno() : 0;
      const { text, key } = after(value, errno);
      say(text, key);
      if (errno !== 0) koffi.errno(errno);
      return value;
    };
    // 01 and 02 accept on one of libuv's threads (Socket.acceptAsync): the same narration, said
    // when the call returns. The callback's error is koffi's own, not the call's.
    narrated.async = (...args) => {
      const done = args.pop() as (error: unknown, value: number) => void;
      const after = narration(args);
      original.async!(...args, (error: unknown, value: number) => {
        if (!error) say(after(value, value < 0 ? koffi.errno() : 0).text);
        done(error, value);
      });
    };
    table[name] = narrated;
  }
  if (!setup.blocking) {
    narrateNewProcessesAndThreads((pid, fds) => {
      for (const fd of fds) handedTo.set(fd, pid);
    });
  }
}

// ---------------------------------------------------------------------------------------
// What each call says
// ---------------------------------------------------------------------------------------
const signalNames = new Map(Object.entries(osConstants.signals).map(([name, value]) => [value, name]));

/** "= 7", or "= -1 EAGAIN" as strace writes a failure. */
function returned(value: number, errno: number): string {
  return value >= 0 ? `= ${value}` : `= -1 ${errnoName(errno)}`;
}

/**
 * The client on a descriptor this process or thread did not accept itself (02's threads are
 * handed a number): asked of the kernel once, with the real getpeername, and remembered.
 */
function peerOf(fd: number): string {
  let peer = peers.get(fd);
  if (peer === undefined) {
    const address = Buffer.alloc(128);
    peer = realGetpeername(fd, address, [address.length]) === 0 ? formatAddress(decodeAddress(address)) : '';
    peers.set(fd, peer);
  }
  return peer;
}
const realGetpeername = cFunctions.getpeername;

/** The gloss: the client, and what else helps. */
function about(fd: number, note = ''): string {
  const peer = peerOf(fd) || undefined;
  if (peer === undefined) return note === '' ? '' : ` (${note})`;
  return ` (${peer}${note === '' ? '' : `: ${note}`})`;
}

/** The first line of some bytes, if it looks like an HTTP request or status line. */
function firstLine(bytes: Buffer, length: number): string {
  const head = bytes.toString('latin1', 0, Math.min(length, 80));
  const line = head.split('\r\n')[0]!;
  return /^[A-Z]+ \S+ HTTP\/|^HTTP\/1\.\d \d{3}/.test(line) ? `"${line}"` : '';
}

function timevalMs(value: Buffer | null): string {
  if (value === null) return 'none';
  return `${Number(value.readBigInt64LE(0)) * 1000 + Math.floor(Number(value.readBigInt64LE(8)) / 1000)} ms`;
}

function fdSetMembers(bits: Buffer | null, nfds: number): number[] {
  const members: number[] = [];
  if (bits === null) return members;
  for (let fd = 0; fd < nfds; fd++) if ((bits[fd >> 3]! & (1 << (fd & 7))) !== 0) members.push(fd);
  return members;
}

/** "{3,7,8}", or for a crowd "{3,7,8,…,1022,1023} (996 fds)". */
function shortSet(members: number[]): string {
  if (members.length <= 8) return `{${members.join(',')}}`;
  return `{${members.slice(0, 3).join(',')},…,${members.slice(-2).join(',')}} (${members.length} fds)`;
}

function epollEvents(mask: number): string {
  const names: [number, string][] = [[0x001, 'IN'], [0x004, 'OUT'], [0x008, 'ERR'], [0x010, 'HUP'], [0x2000, 'RDHUP']];
  const named = names.filter(([bit]) => (mask & bit) !== 0).map(([, name]) => name);
  return named.length === 0 ? '0' : named.join('|');
}

const OPTION_NAMES: Record<string, string> = {
  '1/2': 'SOL_SOCKET, SO_REUSEADDR',
  '1/20': 'SOL_SOCKET, SO_RCVTIMEO',
  '1/21': 'SOL_SOCKET, SO_SNDTIMEO',
  '6/1': 'IPPROTO_TCP, TCP_NODELAY',
  '41/26': 'IPPROTO_IPV6, IPV6_V6ONLY',
};
const EPOLL_OPERATIONS = ['', 'ADD', 'DEL', 'MOD'];
const O_NONBLOCK = 0o4000;
const openFlags = (flags: number) => `${['O_RDONLY', 'O_WRONLY', 'O_RDWR'][flags & 3] ?? flags & 3}${flags & O_NONBLOCK ? '|O_NONBLOCK' : ''}`;

const NARRATIONS: Record<string, Narration> = {
  socket: ([family]) => (value, errno) => ({
    text: `socket(${family === 10 ? 'AF_INET6' : 'AF_INET'}, SOCK_STREAM|SOCK_CLOEXEC, 0) ${returned(value, errno)}`,
  }),
  setsockopt: ([fd, level, option, data, length]) => (value, errno) => {
    const shown = length === 16 ? timevalMs(data as Buffer) : String((data as Buffer).readInt32LE(0));
    return { text: `setsockopt(${fd}, ${OPTION_NAMES[`${level}/${option}`] ?? `${level}, ${option}`}, ${shown}) ${returned(value, errno)}` };
  },
  bind: ([fd, address]) => (value, errno) => ({ text: `bind(${fd}, ${formatAddress(decodeAddress(address as Buffer))}) ${returned(value, errno)}` }),
  listen: ([fd, backlog]) => (value, errno) => ({ text: `listen(${fd}, ${backlog}) ${returned(value, errno)}` }),
  getsockname: ([fd, address]) => (value, errno) => ({
    text: `getsockname(${fd}) ${returned(value, errno)}${value === 0 ? ` (${formatAddress(decodeAddress(address as Buffer))})` : ''}`,
  }),
  getpeername: ([fd, address]) => (value, errno) => {
    if (value === 0) peers.set(fd as number, formatAddress(decodeAddress(address as Buffer)));
    return { text: `getpeername(${fd}) ${returned(value, errno)}${about(fd as number)}` };
  },
  accept4: ([fd, address]) => (value, errno) => {
    if (value >= 0) peers.set(value, formatAddress(decodeAddress(address as Buffer)));
    const note = value >= 0 ? ` (${peers.get(value)})` : errnoName(errno) === 'EAGAIN' ? ' (nobody waiting)' : '';
    return { text: `accept4(${fd}) ${returned(value, errno)}${note}` };
  },
  recv: ([fd, buffer, length]) => (value, errno) => {
    let note = '';
    if (value > 0) note = firstLine(buffer as Buffer, value);
    else if (value === 0) note = 'the client closed its side';
    else if (errnoName(errno) === 'EAGAIN') note = 'nothing yet';
    return { text: `recv(${fd}, ${length}) ${returned(value, errno)}${about(fd as number, note)}` };
  },
  send: ([fd, data, length]) => (value, errno) => ({
    text: `send(${fd}, ${length}) ${returned(value, errno)}${about(fd as number, value > 0 ? firstLine(data as Buffer, value) : '')}`,
  }),
  sendfile: ([out, file, position, count]) => {
    const offset = (position as number[])[0];
    return (value, errno) => ({ text: `sendfile(${out}, ${file}, offset ${offset}, ${count}) ${returned(value, errno)}${about(out as number)}` });
  },
  shutdown: ([fd, how]) => (value, errno) => ({
    text: `shutdown(${fd}, ${['SHUT_RD', 'SHUT_WR', 'SHUT_RDWR'][how as number]}) ${returned(value, errno)}${about(fd as number, how === 1 ? 'our FIN' : '')}`,
  }),
  close: ([fd]) => (value, errno) => {
    const child = handedTo.get(fd as number);
    const text = `close(${fd}) ${returned(value, errno)}${about(fd as number, child === undefined ? '' : `pid ${child} has its own copy`)}`;
    peers.delete(fd as number);
    handedTo.delete(fd as number);
    return { text };
  },
  fcntl: ([fd, command, argument]) => (value, errno) => ({
    text: command === 3
      ? `fcntl(${fd}, F_GETFL) ${value >= 0 ? `= ${openFlags(value)}` : returned(value, errno)}`
      : `fcntl(${fd}, F_SETFL, ${openFlags(argument as number)}) ${returned(value, errno)}`,
  }),
  select: ([nfds, readable, writable, , timeout]) => {
    const asked = (bits: unknown) => shortSet(fdSetMembers(bits as Buffer | null, nfds as number));
    const question = `select(nfds=${nfds}, read=${asked(readable)}, write=${asked(writable)}, timeout=`;
    const wait = timevalMs(timeout as Buffer | null);
    return (value, errno) => {
      const answer = value > 0
        ? `= ${value} ready: read=${asked(readable)}, write=${asked(writable)}`
        : value === 0 ? '= 0 (timed out)' : returned(value, errno);
      return { text: `${question}${wait}) ${answer}`, key: `${question}) ${answer}` };
    };
  },
  epoll_create1: () => (value, errno) => ({ text: `epoll_create1(EPOLL_CLOEXEC) ${returned(value, errno)}` }),
  epoll_ctl: ([epfd, operation, fd, event]) => {
    const events = epollEvents((event as Buffer).readUInt32LE(0));
    return (value, errno) => ({
      text: `epoll_ctl(${epfd}, ${EPOLL_OPERATIONS[operation as number]}, ${fd}${operation === 2 ? '' : `, ${events}`}) ${returned(value, errno)}${about(fd as number)}`,
    });
  },
  epoll_wait: ([epfd, events, maxEvents, timeout]) => (value, errno) => {
    const question = `epoll_wait(${epfd}, max ${maxEvents}, timeout=`;
    let answer = value === 0 ? '= 0 (timed out)' : returned(value, errno);
    if (value > 0) {
      const ready: string[] = [];
      for (let i = 0; i < value; i++) {
        const at = i * EVENT_SIZE;
        const fd = (events as Buffer).readInt32LE(at + EVENT_DATA_OFFSET);
        ready.push(`fd ${fd} ${epollEvents((events as Buffer).readUInt32LE(at))}${about(fd)}`);
      }
      answer = `= ${value}: ${ready.join(', ')}`;
    }
    return { text: `${question}${timeout} ms) ${answer}`, key: `${question}) ${answer}` };
  },
  prctl: ([, signal]) => (value, errno) => ({
    text: `prctl(PR_SET_PDEATHSIG, ${signalNames.get(Number(signal)) ?? signal}) ${returned(value, errno)} (the kernel sends it when our parent dies)`,
  }),
};

// ---------------------------------------------------------------------------------------
// 04: one pass at a time
// ---------------------------------------------------------------------------------------

/**
 * A pass of 04's loop runs without a pause from its first call to its `await sleep()`, so a
 * microtask queued at its first call runs just after its last one: there the pass's lines are
 * said together, closed by a summary. Calls before the first pass (socket, bind, listen) and
 * after (Ctrl+C) go out one by one.
 */
function sayByPass(pauseMs: number): (text: string) => void {
  let lines: string[] = [];
  const asked = new Set<string>();
  let eagains = 0;
  const endPass = () => {
    const sockets = `${asked.size} socket${asked.size === 1 ? '' : 's'}`;
    trace([...lines, `pass: asked ${sockets}, ${eagains} said EAGAIN; sleeping ${pauseMs} ms`].join('\n'));
    lines = [];
    asked.clear();
    eagains = 0;
  };
  return (text) => {
    const asking = /^(accept4|recv)\((\d+)/.exec(text);
    if (lines.length === 0 && asking === null) return trace(text);
    if (lines.length === 0) queueMicrotask(endPass);
    lines.push(text);
    if (asking !== null) asked.add(asking[2]!);
    if (text.includes('= -1 EAGAIN')) eagains += 1;
  };
}
