/**
 * shared/libc.ts: the Linux system calls the models use, called straight from TypeScript.
 *
 * Node gives us sockets (node:net) but hides the calls underneath them: there is no
 * `accept()`, no `recv()`, no `select()` and no `epoll` in Node's API, because libuv
 * (Node's event loop) already runs epoll for us. The article's lessons are about exactly
 * those calls, so we load the C library with koffi (a foreign-function interface) and call
 * them ourselves.
 *
 * The shapes follow Python's `socket` and `select` modules, so each model reads like its
 * Python section:
 *
 *     const [conn, address] = server.accept();     // conn, addr = server.accept()
 *     const data = conn.recv(1024);                 // data = conn.recv(1024)
 *     const epoll = new Epoll();                    // epoll = select.epoll()
 *     for (const [fd, events] of epoll.poll(500))   // for fd, event in epoll.poll():
 *
 * Three rules hold everywhere below:
 *  - errno is read only right after a call returned -1, and becomes an `OSError` whose
 *    `code` is the C name ("EAGAIN", "EMFILE", ...), like Python's OSError.
 *  - Every descriptor we create is close-on-exec, so a child process (01-multiprocess)
 *    inherits only the one connection it is handed, never the whole server.
 *  - Sends use MSG_NOSIGNAL: writing to a peer that has gone away is an EPIPE error to
 *    handle, not a SIGPIPE that would kill the server.
 */
// First, before koffi is evaluated: on another system, stop with one clear sentence.
import './linux-only.ts';
import koffi from 'koffi';
import { constants as osConstants } from 'node:os';
import { isIPv4, isIPv6 } from 'node:net';

const libc = koffi.load('libc.so.6');

// ---------------------------------------------------------------------------------------
// Constants, with the values of Linux's headers (the same on x86-64 and arm64).
// ---------------------------------------------------------------------------------------
export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCK_STREAM = 1;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const SO_REUSEADDR = 2;
export const SO_RCVTIMEO = 20;
export const SO_SNDTIMEO = 21;
export const IPPROTO_TCP = 6;
export const TCP_NODELAY = 1;
export const IPPROTO_IPV6 = 41;
export const IPV6_V6ONLY = 26;
export const F_GETFL = 3;
export const F_SETFL = 4;
export const O_NONBLOCK = 0o4000;
export const MSG_NOSIGNAL = 0x4000;
export const SHUT_RD = 0;
export const SHUT_WR = 1;
export const SHUT_RDWR = 2;
export const FD_SETSIZE = 1024;
export const EPOLLIN = 0x001;
export const EPOLLPRI = 0x002;
export const EPOLLOUT = 0x004;
export const EPOLLERR = 0x008;
export const EPOLLHUP = 0x010;
export const EPOLLRDHUP = 0x2000;
export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;
export const EPOLL_CTL_MOD = 3;
export const EPOLL_CLOEXEC = 0o2000000;
const PR_SET_PDEATHSIG = 1;

// ---------------------------------------------------------------------------------------
// The C functions. Buffers passed as `void *` are handed to C without a copy.
// `long` is the C type of ssize_t on 64-bit Linux.
// ---------------------------------------------------------------------------------------
const c = {
  socket: libc.func('int socket(int domain, int type, int protocol)'),
  setsockopt: libc.func('int setsockopt(int fd, int level, int name, void *value, uint32_t length)'),
  bind: libc.func('int bind(int fd, void *address, uint32_t length)'),
  listen: libc.func('int listen(int fd, int backlog)'),
  accept4: libc.func('int accept4(int fd, void *address, _Inout_ uint32_t *length, int flags)'),
  getsockname: libc.func('int getsockname(int fd, void *address, _Inout_ uint32_t *length)'),
  getpeername: libc.func('int getpeername(int fd, void *address, _Inout_ uint32_t *length)'),
  recv: libc.func('long recv(int fd, void *buffer, size_t length, int flags)'),
  send: libc.func('long send(int fd, void *buffer, size_t length, int flags)'),
  sendfile: libc.func('long sendfile(int outFd, int inFd, _Inout_ int64_t *offset, size_t count)'),
  shutdown: libc.func('int shutdown(int fd, int how)'),
  close: libc.func('int close(int fd)'),
  // fcntl is variadic in C; F_GETFL/F_SETFL take one int, which the ABI passes like this.
  fcntl: libc.func('int fcntl(int fd, int command, int argument)'),
  select: libc.func('int select(int nfds, void *readfds, void *writefds, void *exceptfds, void *timeout)'),
  epoll_create1: libc.func('int epoll_create1(int flags)'),
  epoll_ctl: libc.func('int epoll_ctl(int epfd, int op, int fd, void *event)'),
  epoll_wait: libc.func('int epoll_wait(int epfd, void *events, int maxevents, int timeout)'),
  prctl: libc.func('int prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5)'),
  strerror: libc.func('const char *strerror(int errnum)'),
};

// For shared/trace-calls.ts alone: given --trace, it swaps these for functions that narrate each
// call. Without the flag nothing touches them.
export { c as cFunctions };

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------
// Several names can share a number (EAGAIN and EWOULDBLOCK are both 11): the first listed wins.
const errnoNames = new Map<number, string>();
for (const [name, value] of Object.entries(osConstants.errno)) {
  if (!errnoNames.has(value)) errnoNames.set(value, name);
}

/** The C name of an errno value: "EAGAIN" for 11. */
export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? `errno ${errno}`;
}

/** A failed system call, like Python's OSError: `code` is the errno name, e.g. "EAGAIN". */
export class OSError extends Error {
  readonly errno: number;
  readonly code: string;
  readonly syscall: string;

  constructor(syscall: string, errno: number) {
    const code = errnoName(errno);
    super(`${syscall}() failed: ${code} (${c.strerror(errno) as string})`);
    this.name = 'OSError';
    this.errno = errno;
    this.code = code;
    this.syscall = syscall;
  }
}

/** True when `error` is an OSError with one of the given codes. */
export function isOSError(error: unknown, ...codes: string[]): error is OSError {
  return error instanceof OSError && (codes.length === 0 || codes.includes(error.code));
}

/** C calls return -1 and set errno on failure; turn that into a thrown OSError. */
function check(syscall: string, result: number): number {
  if (result < 0) throw new OSError(syscall, koffi.errno());
  return result;
}

/**
 * After a call returned -1: throw its OSError, unless a signal merely interrupted it (EINTR),
 * in which case the caller makes the same call again. (A plain loop at each call site rather
 * than a helper taking a callback: recv and send are on every request's path.)
 */
function throwUnlessInterrupted(syscall: string): void {
  const errno = koffi.errno();
  if (errno !== osConstants.errno.EINTR) throw new OSError(syscall, errno);
}

/**
 * struct timeval { long tv_sec; long tv_usec; } for a duration in milliseconds, written into
 * `into` (a new 16-byte buffer unless the caller reuses one).
 */
function timeval(ms: number, into: Buffer = Buffer.alloc(16)): Buffer {
  into.writeBigInt64LE(BigInt(Math.floor(ms / 1000)), 0);
  into.writeBigInt64LE(BigInt((ms % 1000) * 1000), 8);
  return into;
}

// ---------------------------------------------------------------------------------------
// Socket addresses (struct sockaddr_in / sockaddr_in6), built and read byte by byte.
// ---------------------------------------------------------------------------------------
export interface Address {
  host: string;
  port: number;
}

// formatAddress() lives in log.ts (03-coroutine uses it without loading koffi); the models
// import it from here, beside the Address it formats.
export { formatAddress } from './log.ts';

const SOCKADDR_STORAGE_SIZE = 128;

function familyOf(host: string): number {
  if (isIPv4(host)) return AF_INET;
  if (isIPv6(host)) return AF_INET6;
  throw new Error(`not an IP address: ${host}`);
}

function encodeAddress(host: string, port: number): Buffer {
  if (familyOf(host) === AF_INET) {
    const address = Buffer.alloc(16); // sockaddr_in: family, port, 4-byte address, padding
    address.writeUInt16LE(AF_INET, 0);
    address.writeUInt16BE(port, 2); // network byte order
    host.split('.').forEach((part, i) => address.writeUInt8(Number(part), 4 + i));
    return address;
  }
  const address = Buffer.alloc(28); // sockaddr_in6: family, port, flowinfo, 16-byte address, scope
  address.writeUInt16LE(AF_INET6, 0);
  address.writeUInt16BE(port, 2);
  ipv6ToBytes(host).copy(address, 8);
  return address;
}

function ipv6ToBytes(host: string): Buffer {
  const [head, tail = ''] = host.split('::');
  const groups = (text: string) => (text === '' ? [] : text.split(':'));
  const left = groups(head ?? '');
  const right = groups(tail);
  const all = host.includes('::')
    ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right]
    : left;
  const bytes = Buffer.alloc(16);
  all.forEach((group, i) => bytes.writeUInt16BE(parseInt(group, 16), i * 2));
  return bytes;
}

/** A struct sockaddr_in or sockaddr_in6 as written by the kernel (07 gets them from io_uring). */
export function decodeAddress(address: Buffer): Address {
  const family = address.readUInt16LE(0);
  const port = address.readUInt16BE(2);
  if (family === AF_INET) return { host: [...address.subarray(4, 8)].join('.'), port };
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) groups.push(address.readUInt16BE(8 + i * 2).toString(16));
  // Not the shortest form, but a valid and readable one ("0:0:0:0:0:0:0:1" is ::1).
  return { host: groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::'), port };
}

// ---------------------------------------------------------------------------------------
// Socket: a thin object around one descriptor, named after Python's socket methods.
// ---------------------------------------------------------------------------------------
export class Socket {
  /** The descriptor number; -1 once closed. */
  fd: number;

  constructor(fd: number) {
    this.fd = fd;
  }

  /** socket(2): a new TCP socket for IPv4 or IPv6. */
  static create(family: number = AF_INET): Socket {
    return new Socket(check('socket', c.socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0)));
  }

  /**
   * The four steps every section of the article starts with: socket(), setsockopt(SO_REUSEADDR)
   * so a restarted server can bind again at once, bind() to the address, listen() with a backlog.
   */
  static listenTCP(host: string, port: number, backlog = 511): Socket {
    const family = familyOf(host);
    const server = Socket.create(family);
    try {
      server.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1);
      if (family === AF_INET6) server.setsockopt(IPPROTO_IPV6, IPV6_V6ONLY, 0);
      server.bind(host, port);
      server.listen(backlog);
      return server;
    } catch (error) {
      server.close();
      throw error;
    }
  }

  fileno(): number {
    return this.fd;
  }

  setsockopt(level: number, option: number, value: number): void {
    const integer = Buffer.alloc(4);
    integer.writeInt32LE(value);
    check('setsockopt', c.setsockopt(this.fd, level, option, integer, 4));
  }

  bind(host: string, port: number): void {
    const address = encodeAddress(host, port);
    check('bind', c.bind(this.fd, address, address.length));
  }

  listen(backlog: number): void {
    check('listen', c.listen(this.fd, backlog));
  }

  getsockname(): Address {
    const address = Buffer.alloc(SOCKADDR_STORAGE_SIZE);
    const length = [SOCKADDR_STORAGE_SIZE];
    check('getsockname', c.getsockname(this.fd, address, length));
    return decodeAddress(address);
  }

  /** getpeername(2): the address of the other end (a child handed only a descriptor asks this). */
  getpeername(): Address {
    const address = Buffer.alloc(SOCKADDR_STORAGE_SIZE);
    const length = [SOCKADDR_STORAGE_SIZE];
    check('getpeername', c.getpeername(this.fd, address, length));
    return decodeAddress(address);
  }

  /**
   * accept(2): take the next connection from the listening queue. Returns the new socket and
   * the client's address. On a non-blocking listener with nobody waiting this throws EAGAIN.
   * The new socket is blocking (as in Python) and close-on-exec.
   */
  accept(): [Socket, Address] {
    const address = Buffer.alloc(SOCKADDR_STORAGE_SIZE);
    const length = [SOCKADDR_STORAGE_SIZE];
    for (;;) {
      const fd = c.accept4(this.fd, address, length, SOCK_CLOEXEC);
      if (fd >= 0) return [new Socket(fd), decodeAddress(address)];
      throwUnlessInterrupted('accept4');
    }
  }

  /**
   * The same blocking accept(2), run on one of libuv's worker threads, so the calling thread's
   * event loop stays free (to hear Ctrl+C, to reap children) while it waits for a client.
   * Interrupt it by calling shutdown() on the listening socket.
   */
  acceptAsync(): Promise<[Socket, Address]> {
    const address = Buffer.alloc(SOCKADDR_STORAGE_SIZE);
    const length = [SOCKADDR_STORAGE_SIZE];
    return new Promise((resolve, reject) => {
      c.accept4.async(this.fd, address, length, SOCK_CLOEXEC, (error: unknown, fd: number) => {
        if (error) reject(error);
        else if (fd < 0) reject(new OSError('accept4', koffi.errno()));
        else resolve([new Socket(fd), decodeAddress(address)]);
      });
    });
  }

  /** recv(2) into `buffer`; returns the byte count, 0 when the peer has closed. */
  recvInto(buffer: Buffer, length = buffer.length): number {
    for (;;) {
      const count = Number(c.recv(this.fd, buffer, length, 0));
      if (count >= 0) return count;
      throwUnlessInterrupted('recv');
    }
  }

  /** recv(2) up to `size` bytes; an empty Buffer means the peer closed (Python's b''). */
  recv(size: number): Buffer {
    const buffer = Buffer.allocUnsafe(size);
    return buffer.subarray(0, this.recvInto(buffer));
  }

  /**
   * send(2): returns how many bytes the kernel took, which may be fewer than offered (a
   * partial write): the caller keeps the rest. Never raises SIGPIPE (MSG_NOSIGNAL).
   */
  send(data: Buffer): number {
    if (data.length === 0) return 0;
    for (;;) {
      const sent = Number(c.send(this.fd, data, data.length, MSG_NOSIGNAL));
      if (sent >= 0) return sent;
      throwUnlessInterrupted('send');
    }
  }

  /** Python's sendall(): on a blocking socket, send until every byte is taken. */
  sendall(data: Buffer): void {
    for (let sent = 0; sent < data.length; ) sent += this.send(data.subarray(sent));
  }

  /**
   * sendfile(2): the kernel copies up to `count` bytes of the file at `offset` straight into
   * this socket, without passing through our memory. Returns the bytes sent (maybe fewer).
   */
  sendfile(fileFd: number, offset: number, count: number): number {
    const position = [offset];
    for (;;) {
      const sent = Number(c.sendfile(this.fd, fileFd, position, count));
      if (sent >= 0) return sent;
      throwUnlessInterrupted('sendfile');
    }
  }

  /** Python's setblocking(): flip O_NONBLOCK with fcntl(2). */
  setblocking(blocking: boolean): void {
    const flags = check('fcntl', c.fcntl(this.fd, F_GETFL, 0));
    const wanted = blocking ? flags & ~O_NONBLOCK : flags | O_NONBLOCK;
    if (wanted !== flags) check('fcntl', c.fcntl(this.fd, F_SETFL, wanted));
  }

  /**
   * SO_RCVTIMEO and SO_SNDTIMEO: a blocking recv or send that waits longer than `ms` fails with
   * EAGAIN, so a silent client cannot hold a process or thread forever.
   */
  settimeout(ms: number): void {
    const limit = timeval(ms);
    check('setsockopt', c.setsockopt(this.fd, SOL_SOCKET, SO_RCVTIMEO, limit, limit.length));
    check('setsockopt', c.setsockopt(this.fd, SOL_SOCKET, SO_SNDTIMEO, limit, limit.length));
  }

  /**
   * shutdown(2): end the connection in one or both directions for every holder of it. Unlike
   * close(), it also wakes a thread blocked in recv/send/accept on this socket.
   */
  shutdown(how: number = SHUT_RDWR): void {
    // ENOTCONN: the peer is already gone, which is what we wanted anyway.
    if (c.shutdown(this.fd, how) < 0 && koffi.errno() !== osConstants.errno.ENOTCONN) {
      throw new OSError('shutdown', koffi.errno());
    }
  }

  /** close(2); safe to call twice. */
  close(): void {
    if (this.fd < 0) return;
    const fd = this.fd;
    this.fd = -1;
    // Linux releases the descriptor even when close() reports an error, so never retry it.
    c.close(fd);
  }
}

/** close(2) on a bare descriptor number (one received from a parent process, say). */
export function closeFd(fd: number): void {
  c.close(fd);
}

// ---------------------------------------------------------------------------------------
// select(2)
// ---------------------------------------------------------------------------------------

/**
 * An fd_set as glibc defines it: a fixed 1024 bits (FD_SETSIZE), one per descriptor number,
 * which is why a descriptor of 1024 or more cannot be watched with one. The limit is this
 * type's: the kernel's select takes any nfds. Bit n lives in byte n/8 on little-endian Linux.
 */
export class FdSet {
  readonly bits = Buffer.alloc(FD_SETSIZE / 8);

  /** FD_SET */
  add(fd: number): void {
    if (fd < 0 || fd >= FD_SETSIZE) throw new RangeError(`select() cannot watch fd ${fd}: fd_set holds 0..${FD_SETSIZE - 1}`);
    this.bits[fd >> 3]! |= 1 << (fd & 7);
  }

  /** FD_ISSET */
  has(fd: number): boolean {
    return fd >= 0 && fd < FD_SETSIZE && (this.bits[fd >> 3]! & (1 << (fd & 7))) !== 0;
  }

  /** FD_ZERO */
  clear(): void {
    this.bits.fill(0);
  }
}

const selectTimeout = Buffer.alloc(16);

/**
 * select(2): block until a descriptor in one of the sets is ready, or `timeoutMs` passes
 * (null waits forever). The kernel rewrites the sets in place to hold only the ready ones;
 * the return value is how many are ready. `nfds` is the highest descriptor watched plus one.
 * A signal (Ctrl+C) interrupts it with EINTR: we return 0, "nothing ready", and let the caller
 * go round its loop, where the signal's JavaScript handler gets its turn.
 */
export function select(nfds: number, readfds: FdSet | null, writefds: FdSet | null, exceptfds: FdSet | null, timeoutMs: number | null): number {
  // Linux rewrites the timeout with the time left, so it is filled afresh for every call (in
  // one buffer kept for the purpose: select() runs once per pass of a loop).
  const timeout = timeoutMs === null ? null : timeval(timeoutMs, selectTimeout);
  const ready = c.select(nfds, readfds?.bits ?? null, writefds?.bits ?? null, exceptfds?.bits ?? null, timeout);
  if (ready < 0) {
    const errno = koffi.errno();
    if (errno === osConstants.errno.EINTR) {
      // The sets' contents are unspecified after an error: report nothing ready.
      readfds?.clear();
      writefds?.clear();
      exceptfds?.clear();
      return 0;
    }
    throw new OSError('select', errno);
  }
  return ready;
}

// ---------------------------------------------------------------------------------------
// epoll(7)
// ---------------------------------------------------------------------------------------

// struct epoll_event { uint32_t events; epoll_data_t data; } is packed on x86-64 (12 bytes)
// and naturally aligned elsewhere (16 bytes). We keep the fd in the data field.
export const EVENT_SIZE = process.arch === 'x64' ? 12 : 16;
export const EVENT_DATA_OFFSET = process.arch === 'x64' ? 4 : 8;

/**
 * An epoll instance, shaped like Python's select.epoll: the set of watched descriptors (the
 * "interest list") lives inside the kernel, and poll() returns only those that are ready.
 */
export class Epoll {
  readonly fd: number;
  private readonly events: Buffer;
  // The same memory as 32-bit words, to read the events out of (both fields are 4-aligned).
  private readonly eventWords: Int32Array;
  private readonly maxEvents: number;
  private readonly request = Buffer.alloc(EVENT_SIZE);

  constructor(maxEvents = 1024) {
    this.fd = check('epoll_create1', c.epoll_create1(EPOLL_CLOEXEC));
    this.maxEvents = maxEvents;
    this.events = Buffer.alloc(EVENT_SIZE * maxEvents);
    this.eventWords = new Int32Array(this.events.buffer, this.events.byteOffset, this.events.length / 4);
  }

  private control(operation: number, name: string, fd: number, events: number): void {
    this.request.writeUInt32LE(events >>> 0, 0);
    this.request.writeInt32LE(fd, EVENT_DATA_OFFSET);
    check(name, c.epoll_ctl(this.fd, operation, fd, this.request));
  }

  /** EPOLL_CTL_ADD: start watching `fd` for `events` (EPOLLIN by default). */
  register(fd: number, events: number = EPOLLIN): void {
    this.control(EPOLL_CTL_ADD, 'epoll_ctl(ADD)', fd, events);
  }

  /** EPOLL_CTL_MOD: change which events `fd` is watched for. */
  modify(fd: number, events: number): void {
    this.control(EPOLL_CTL_MOD, 'epoll_ctl(MOD)', fd, events);
  }

  /** EPOLL_CTL_DEL: stop watching `fd` (do it before closing the fd). */
  unregister(fd: number): void {
    this.control(EPOLL_CTL_DEL, 'epoll_ctl(DEL)', fd, 0);
  }

  /**
   * epoll_wait(2): block until something is ready or `timeoutMs` passes (-1: forever), and
   * return [fd, events] pairs. Interrupted by a signal (EINTR), it returns no events.
   */
  poll(timeoutMs = -1): Array<[number, number]> {
    const count = c.epoll_wait(this.fd, this.events, this.maxEvents, timeoutMs);
    if (count < 0) {
      const errno = koffi.errno();
      if (errno === osConstants.errno.EINTR) return [];
      throw new OSError('epoll_wait', errno);
    }
    const ready = new Array<[number, number]>(count);
    const words = this.eventWords;
    for (let i = 0; i < count; i++) {
      const at = (i * EVENT_SIZE) / 4;
      ready[i] = [words[at + EVENT_DATA_OFFSET / 4]!, words[at]! >>> 0];
    }
    return ready;
  }

  close(): void {
    c.close(this.fd);
  }
}

// ---------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------

/**
 * prctl(PR_SET_PDEATHSIG): ask the kernel to send this process `signal` when its parent dies,
 * so a child serving one connection never outlives a server that was killed outright.
 */
export function dieWithParent(signal: NodeJS.Signals = 'SIGTERM'): void {
  check('prctl', c.prctl(PR_SET_PDEATHSIG, osConstants.signals[signal], 0, 0, 0));
}
