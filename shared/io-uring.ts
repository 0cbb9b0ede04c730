/**
 * shared/io-uring.ts: io_uring, Linux's completion interface, driven from TypeScript.
 *
 * select and epoll (05, 06) answer "which sockets are ready?", and the program then makes the
 * calls itself: accept(), recv(), send(). io_uring takes the calls themselves. The program
 * writes requests ("receive on fd 7 into a buffer", "send these bytes to fd 9") into a
 * submission queue (SQ), makes one io_uring_enter(2) system call for any number of them, and
 * later reads the results ("fd 7: 73 bytes arrived", "fd 9: 4 KiB sent") from a completion
 * queue (CQ). Both queues are rings in memory that the program and the kernel share: they are
 * mmap(2)ed into this process, so neither side copies them, and most of the time the program
 * only reads and writes memory.
 *
 *     const ring = new IoUring(256, 4096);              // io_uring_setup + mmap
 *     ring.prepareSend(fd, address, length, userData);  // fill in a submission queue entry
 *     ring.submitAndWait(500);                          // io_uring_enter: hand them over, wait
 *     for (let i = 0; i < ring.completionsReady(); i++) // reap completion queue entries
 *       handle(ring.completionUserData(i), ring.completionResult(i), ring.completionFlags(i));
 *     ring.markCompletionsSeen(count);
 *
 * The same shape as shared/libc.ts: the kernel's calls through koffi, errors as OSError. There
 * is no liburing with FFI entry points to load (Debian packages liburing 2.3 without them, and
 * most of liburing is inline functions), so we make the three system calls through libc's
 * `syscall()`, declared once per call with a fixed prototype (a variadic declaration costs
 * koffi about twice as much per call), and fill in the rings exactly as liburing does.
 *
 * Memory the kernel reads or writes by address. A submission carries addresses: where to
 * put received bytes, where the bytes to send are. The kernel uses them later, when the
 * operation runs, not during io_uring_enter. So that memory must not move, must not be freed
 * and must not be rewritten until the operation's completion arrives. A JavaScript Buffer is
 * not a safe place (the collector frees it once unreferenced, and small typed arrays live in
 * the moving heap), so everything the kernel touches by address lives in memory we mmap
 * ourselves: the rings, the receive buffers (`ProvidedBuffers`), the outgoing bytes
 * (`PinnedSlots`) and the wait arguments. Ownership passes back and forth:
 *  - an SQE slot is ours from `nextSqe()` until io_uring_enter has consumed it (the kernel
 *    copies it then: IORING_FEAT_SUBMIT_STABLE);
 *  - a CQE slot is ours to read from the moment the tail passes it until `markCompletionsSeen`;
 *  - a provided receive buffer is the kernel's while it is in the buffer ring, ours from the
 *    completion that names it until `giveBack()`;
 *  - a send slot is ours to fill, the kernel's from the submission of a send (or read) that
 *    points into it until that operation's completion, then ours again.
 *
 * Needs Linux 6.0 or newer (multishot recv, buffer rings). Where io_uring is refused
 * (a container's seccomp profile, the sysctl kernel.io_uring_disabled, a kernel without it),
 * `explainRefusal()` turns the error into one sentence naming the cause and the fix.
 */
import './linux-only.ts';
import koffi from 'koffi';
import { constants as osConstants, release } from 'node:os';
import { readFileSync } from 'node:fs';
import { OSError } from './libc.ts';

const libc = koffi.load('libc.so.6');

// ---------------------------------------------------------------------------------------
// Constants, from <linux/io_uring.h> and <sys/mman.h> (the same on x86-64 and arm64).
// ---------------------------------------------------------------------------------------
// io_uring's system calls came after the architectures unified their numbering: 425-427 on all.
export const SYS_io_uring_setup = 425;
const SYS_io_uring_enter = 426;
const SYS_io_uring_register = 427;

// Operations (enum io_uring_op): the calls the kernel makes on our behalf.
const IORING_OP_NOP = 0;
export const IORING_OP_ACCEPT = 13;
const IORING_OP_ASYNC_CANCEL = 14;
const IORING_OP_CLOSE = 19;
const IORING_OP_READ = 22;
const IORING_OP_SEND = 26;
export const IORING_OP_RECV = 27;
const IORING_OP_SHUTDOWN = 34;

// sqe.flags
/** The next SQE starts only after this one succeeded in full (a short read cancels it). */
export const IOSQE_IO_LINK = 1 << 2;
/** Like IO_LINK, but the next SQE starts whatever this one's result. */
export const IOSQE_IO_HARDLINK = 1 << 3;
/** Let the kernel pick a receive buffer from the group in sqe.buf_group. */
const IOSQE_BUFFER_SELECT = 1 << 5;

// io_uring_setup flags
const IORING_SETUP_CQSIZE = 1 << 3;
const IORING_SETUP_SINGLE_ISSUER = 1 << 12;
const IORING_SETUP_DEFER_TASKRUN = 1 << 13;

// io_uring_params.features we rely on
const IORING_FEAT_SINGLE_MMAP = 1 << 0;
const IORING_FEAT_NODROP = 1 << 1;
const IORING_FEAT_EXT_ARG = 1 << 8;

// io_uring_enter flags
const IORING_ENTER_GETEVENTS = 1 << 0;
const IORING_ENTER_EXT_ARG = 1 << 3;

// Flags that travel in sqe.ioprio for recv
const IORING_RECV_MULTISHOT = 1 << 1;


// cqe.flags
/** A receive buffer was used: its id is in the upper 16 bits of the flags. */
export const IORING_CQE_F_BUFFER = 1 << 0;
/** The operation stays armed (multishot): more completions will come for it. */
export const IORING_CQE_F_MORE = 1 << 1;
export const IORING_CQE_BUFFER_SHIFT = 16;

// io_uring_register opcodes
const IORING_REGISTER_PBUF_RING = 22;

// mmap offsets that select which part of the ring to map
const IORING_OFF_SQ_RING = 0;
const IORING_OFF_SQES = 0x10000000;

const PROT_READ = 0x1;
const PROT_WRITE = 0x2;
const MAP_SHARED = 0x01;
const MAP_PRIVATE = 0x02;
const MAP_ANONYMOUS = 0x20;
const MAP_POPULATE = 0x8000;
/** mmap() reports failure as (void *) -1, all bits set, never as NULL. */
const MAP_FAILED = 0xffffffffffffffffn;

const SOCK_CLOEXEC = 0o2000000;
const MSG_NOSIGNAL = 0x4000;

const SQE_BYTES = 64;
const CQE_BYTES = 16;
const PAGE_BYTES = 4096;

// ---------------------------------------------------------------------------------------
// The C functions. `syscall(long number, ...)` is variadic in C; each io_uring call gets its
// own fixed prototype, which passes the arguments the same way and costs koffi less per call.
// ---------------------------------------------------------------------------------------
const c = {
  io_uring_setup: libc.func('syscall', 'long', ['long', 'uint32_t', 'void *']),
  io_uring_enter: libc.func('syscall', 'long', ['long', 'int', 'uint32_t', 'uint32_t', 'uint32_t', 'void *', 'size_t']),
  io_uring_register: libc.func('syscall', 'long', ['long', 'int', 'uint32_t', 'void *', 'uint32_t']),
  mmap: libc.func('void *mmap(void *address, size_t length, int protection, int flags, int fd, int64_t offset)'),
  munmap: libc.func('int munmap(void *address, size_t length)'),
  close: libc.func('int close(int fd)'),
};

/** A pointer koffi handed us (from mmap). */
type Pointer = unknown;

/** mmap(2), throwing OSError on MAP_FAILED. */
function mmap(length: number, protection: number, flags: number, fd: number, offset: number): Pointer {
  const pointer: Pointer = c.mmap(null, length, protection, flags, fd, offset);
  if (pointer === null || koffi.address(pointer) === MAP_FAILED) throw new OSError('mmap', koffi.errno());
  return pointer;
}

/** Fresh zeroed memory of our own, page-aligned, that never moves (anonymous mmap). */
function mapAnonymous(length: number): Pointer {
  return mmap(length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}

/** The address of mapped memory as a JavaScript number (user-space addresses fit in 53 bits). */
function addressOf(pointer: Pointer): number {
  return Number(koffi.address(pointer));
}

// ---------------------------------------------------------------------------------------
// Refusal: where io_uring is not allowed or not there.
// ---------------------------------------------------------------------------------------

/** What io_uring_setup failing with `errno` means here, and what to do about it: one sentence. */
export function explainRefusal(errno: number, disabledSysctl = readIoUringDisabled()): string {
  const { EPERM, ENOSYS } = osConstants.errno;
  if (errno === EPERM) {
    if (disabledSysctl !== null && disabledSysctl !== '0') {
      // 1: only members of the group named in kernel.io_uring_group may use it; 2: nobody.
      const who = disabledSysctl === '1' ? ' (only the group kernel.io_uring_group may use it)' : '';
      return `io_uring is refused here (EPERM): the sysctl kernel.io_uring_disabled is ${disabledSysctl}${who}; ` +
        'allow it with `sudo sysctl kernel.io_uring_disabled=0`, or run 06-epoll.ts instead';
    }
    return 'io_uring is refused here (EPERM): a seccomp profile blocks it, as Docker\'s and Podman\'s default ' +
      'profiles do; run the container with `--security-opt seccomp=unconfined` (or a profile that allows ' +
      'io_uring_setup, io_uring_enter and io_uring_register), or run 06-epoll.ts instead';
  }
  if (errno === ENOSYS) {
    return 'io_uring is not available here (ENOSYS): this kernel was built without it, or a sandbox such as ' +
      'gVisor does not implement it; run on Linux 6.0 or newer, or run 06-epoll.ts instead';
  }
  return `io_uring could not be set up: ${new OSError('io_uring_setup', errno).message}`;
}

/** /proc/sys/kernel/io_uring_disabled: "0" allowed, "1" only for a group, "2" never; null if absent. */
function readIoUringDisabled(): string | null {
  try {
    return readFileSync('/proc/sys/kernel/io_uring_disabled', 'utf8').trim();
  } catch {
    return null;
  }
}

/** Thrown when the kernel has io_uring but lacks what this program needs (older than 6.0). */
export class KernelTooOld extends Error {}

/**
 * The sentence for an error from `new IoUring()` (or the first registration) when it means
 * "io_uring cannot be used here": refused (EPERM), absent (ENOSYS), or too old. null for any
 * other error, which is a bug to report rather than an environment to explain.
 */
export function refusalOf(error: unknown): string | null {
  if (error instanceof KernelTooOld) return error.message;
  if (error instanceof OSError && error.syscall === 'io_uring_setup') {
    if (error.code === 'EPERM' || error.code === 'ENOSYS') return explainRefusal(error.errno);
  }
  return null;
}

/** Linux 6.0 brought multishot recv; 5.19 buffer rings. */
function checkKernelVersion(): void {
  const major = parseInt(release(), 10);
  if (!(major >= 6)) throw new KernelTooOld(`this kernel (${release()}) is too old for this lesson: it needs Linux 6.0 or newer`);
}

// ---------------------------------------------------------------------------------------
// The ring
// ---------------------------------------------------------------------------------------

/**
 * One io_uring instance: its descriptor, the two rings and the SQE array mapped into our memory,
 * and helpers to fill in SQEs and read CQEs. Single-threaded: only the thread that created it
 * may submit (IORING_SETUP_SINGLE_ISSUER).
 *
 * user_data, the 64-bit value the kernel hands back with each completion, is a 32-bit number
 * here (we use only its lower half): the caller packs what it needs to know into it.
 */
export class IoUring {
  /** The ring's descriptor (ls -l /proc/PID/fd shows it as anon_inode:[io_uring]); -1 once closed. */
  fd: number;
  /** The setup flags the kernel accepted (the fast pair, or none on an older kernel). */
  readonly setupFlags: string;
  /** How many io_uring_enter calls this ring has made: the lesson's counter. */
  enterCalls = 0;

  // The submission ring: head (the kernel's: what it has consumed), tail (ours: what we have
  // published), a mask to turn a counter into an index, and the SQE array.
  private readonly sqHead: number; // word index into ringWords
  private readonly sqTail: number;
  private readonly sqMask: number;
  private readonly sqEntries: number;
  private readonly sqes: Uint32Array; // 16 words per SQE
  private readonly sqeHalves: Uint16Array;
  /** Our copy of the tail: SQEs prepared but not yet published to the kernel. */
  private sqeTail = 0;
  /**
   * The head as of our last io_uring_enter. Without a kernel polling thread (SQPOLL) the kernel
   * takes SQEs only inside io_uring_enter, so reading the head once after each call is enough.
   */
  private sqeHead = 0;

  // The completion ring: head (ours: what we have read), tail (the kernel's: what it has
  // posted), a mask, and the CQE array (4 words each: user_data low, high, res, flags).
  private readonly cqHead: number;
  private readonly cqTail: number;
  private readonly cqMask: number;
  private readonly cqesAt: number; // word index of the first CQE
  private readonly ringWords: Uint32Array;
  private readonly ringInts: Int32Array;
  /** Our copy of the CQ head and the tail as read at the last completionsReady(). */
  private cqeHead = 0;

  // The wait argument (struct io_uring_getevents_arg) and its timeout (__kernel_timespec): the
  // kernel reads them by address during io_uring_enter, so they live in mapped memory too.
  private readonly waitArg: Pointer;
  private readonly waitWords: Uint32Array;

  private readonly mappings: Array<{ pointer: Pointer; length: number }> = [];

  /**
   * io_uring_setup(2) with room for `sqEntries` submissions and `cqEntries` completions (more
   * completions than submissions: one multishot SQE produces many CQEs), then mmap the rings.
   * Throws OSError (EPERM, ENOSYS: see explainRefusal) or KernelTooOld.
   */
  constructor(sqEntries: number, cqEntries: number) {
    // struct io_uring_params, 120 bytes: we fill in sizes and flags, the kernel fills in the
    // features it has and where each field of the rings lies (sq_off at 40, cq_off at 80).
    const params = Buffer.alloc(120);
    const setup = (flags: number): number => {
      params.fill(0);
      params.writeUInt32LE(cqEntries, 4);
      params.writeUInt32LE(flags | IORING_SETUP_CQSIZE, 8);
      return Number(c.io_uring_setup(SYS_io_uring_setup, sqEntries, params));
    };
    // SINGLE_ISSUER | DEFER_TASKRUN: completions are processed only when we ask for them (in
    // io_uring_enter with GETEVENTS), in our own thread, instead of interrupting us whenever
    // one is ready. About 30 % less CPU per request here. Kernels before 6.1 reject them.
    let fd = setup(IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
    this.setupFlags = 'SINGLE_ISSUER|DEFER_TASKRUN';
    if (fd < 0 && koffi.errno() === osConstants.errno.EINVAL) {
      fd = setup(0);
      this.setupFlags = 'none';
    }
    if (fd < 0) throw new OSError('io_uring_setup', koffi.errno());
    this.fd = fd;

    try {
      // Checked only now: a sandbox without io_uring (gVisor) may report an old version number,
      // and its ENOSYS is the better explanation.
      checkKernelVersion();
      const features = params.readUInt32LE(20);
      const needed = IORING_FEAT_SINGLE_MMAP | IORING_FEAT_NODROP | IORING_FEAT_EXT_ARG;
      if ((features & needed) !== needed) throw new KernelTooOld(`this kernel's io_uring lacks features this lesson needs (it needs Linux 6.0 or newer)`);
      const sqOff = (field: number) => params.readUInt32LE(40 + 4 * field); // io_sqring_offsets
      const cqOff = (field: number) => params.readUInt32LE(80 + 4 * field); // io_cqring_offsets
      this.sqEntries = params.readUInt32LE(0);
      const cqEntriesGiven = params.readUInt32LE(4);

      // One mapping holds both rings (IORING_FEAT_SINGLE_MMAP, every kernel since 5.4): the
      // submission ring's fields and index array, then the completion ring's fields and CQEs.
      // Offsets come from the kernel, never from our assumptions.
      const sqRingBytes = sqOff(6) /* array */ + this.sqEntries * 4;
      const cqRingBytes = cqOff(5) /* cqes */ + cqEntriesGiven * CQE_BYTES;
      const ringBytes = Math.max(sqRingBytes, cqRingBytes);
      const ring = this.map(ringBytes, IORING_OFF_SQ_RING);
      const sqes = this.map(this.sqEntries * SQE_BYTES, IORING_OFF_SQES);

      // Typed arrays over the mapped memory: reading ringWords[i] reads what the kernel wrote.
      const ringBuffer = koffi.view(ring, ringBytes);
      this.ringWords = new Uint32Array(ringBuffer);
      this.ringInts = new Int32Array(ringBuffer);
      this.sqHead = sqOff(0) / 4;
      this.sqTail = sqOff(1) / 4;
      this.sqMask = this.ringWords[sqOff(2) / 4]!;
      this.cqHead = cqOff(0) / 4;
      this.cqTail = cqOff(1) / 4;
      this.cqMask = this.ringWords[cqOff(2) / 4]!;
      this.cqesAt = cqOff(5) / 4;
      const sqeBuffer = koffi.view(sqes, this.sqEntries * SQE_BYTES);
      this.sqes = new Uint32Array(sqeBuffer);
      this.sqeHalves = new Uint16Array(sqeBuffer);

      // The SQ ring holds indexes into the SQE array, not SQEs. We always use SQE i for ring
      // position i, so the index array is written once: array[i] = i (as liburing does).
      const arrayAt = sqOff(6) / 4;
      for (let i = 0; i < this.sqEntries; i++) this.ringWords[arrayAt + i] = i;
      this.sqeTail = this.ringWords[this.sqTail]!;
      this.sqeHead = this.ringWords[this.sqHead]!;
      this.cqeHead = this.ringWords[this.cqHead]!;

      this.waitArg = mapAnonymous(PAGE_BYTES);
      this.mappings.push({ pointer: this.waitArg, length: PAGE_BYTES });
      this.waitWords = new Uint32Array(koffi.view(this.waitArg, PAGE_BYTES));
      // io_uring_getevents_arg { u64 sigmask = 0 (keep ours); u32 sigmask_sz = 8; u32 pad;
      // u64 ts = &timespec }, and the timespec right after it, at byte 32.
      this.waitWords[2] = 8;
      const timespecAddress = addressOf(this.waitArg) + 32;
      this.waitWords[4] = timespecAddress % 2 ** 32;
      this.waitWords[5] = Math.floor(timespecAddress / 2 ** 32);
    } catch (error) {
      this.close();
      throw error;
    }
  }

  private map(length: number, offset: number): Pointer {
    const pointer = mmap(length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, this.fd, offset);
    this.mappings.push({ pointer, length });
    return pointer;
  }

  // -------------------------------------------------------------------------------------
  // Submissions
  // -------------------------------------------------------------------------------------

  /** SQEs prepared and not yet handed to the kernel. */
  get pendingSubmissions(): number {
    return (this.sqeTail - this.sqeHead) >>> 0;
  }

  /**
   * Make sure `count` SQEs can be prepared in a row (linked SQEs must reach the kernel in one
   * io_uring_enter): if the ring lacks room, submit what is there first.
   */
  reserve(count: number): void {
    if (this.pendingSubmissions + count > this.sqEntries) this.submit();
  }

  /**
   * The next free SQE, zeroed (unused fields must be 0), as the index of its first 32-bit
   * word. It is ours to fill in until the next io_uring_enter.
   */
  private nextSqe(opcode: number, fd: number, userData: number, flags: number): number {
    if (this.pendingSubmissions === this.sqEntries) this.submit(); // full: hand over what we have
    const at = (this.sqeTail & this.sqMask) * 16;
    this.sqeTail = (this.sqeTail + 1) >>> 0;
    const w = this.sqes;
    // word 0: opcode (byte 0), flags (byte 1), ioprio (bytes 2-3); word 1: fd
    w[at] = opcode | (flags << 8);
    w[at + 1] = fd;
    w[at + 2] = 0; // off / addr2 (64 bits)
    w[at + 3] = 0;
    w[at + 4] = 0; // addr (64 bits)
    w[at + 5] = 0;
    w[at + 6] = 0; // len
    w[at + 7] = 0; // op flags (msg_flags, accept_flags, cancel_flags, ...)
    w[at + 8] = userData; // user_data, low half
    w[at + 9] = 0; // user_data, high half
    w[at + 10] = 0; // buf_index / buf_group (16 bits), personality (16 bits)
    w[at + 11] = 0; // file_index / splice_fd_in
    w[at + 12] = 0; // addr3
    w[at + 13] = 0;
    w[at + 14] = 0;
    w[at + 15] = 0;
    return at;
  }

  /** sqe.addr (or sqe.off with `word` = 2): a 64-bit value written as two halves. */
  private set64(at: number, word: number, value: number): void {
    this.sqes[at + word] = value % 2 ** 32;
    this.sqes[at + word + 1] = Math.floor(value / 2 ** 32);
  }

  /**
   * accept(2) on a listening socket: completes when a connection arrives, with the new
   * descriptor (close-on-exec) as its result. The kernel writes the client's address at
   * `addressAt` and its length at `lengthAt` (a u32 that must hold the room available):
   * pinned memory, the kernel's until the completion.
   */
  prepareAccept(listenFd: number, addressAt: number, lengthAt: number, userData: number): void {
    const at = this.nextSqe(IORING_OP_ACCEPT, listenFd, userData, 0);
    this.set64(at, 2, lengthAt); // addr2: socklen_t *
    this.set64(at, 4, addressAt); // addr: struct sockaddr *
    this.sqes[at + 7] = SOCK_CLOEXEC; // accept_flags
  }

  /**
   * recv(2), multishot, into buffers the kernel picks from a registered group (see
   * ProvidedBuffers): one SQE delivers every chunk the socket receives, each in a buffer of
   * its own, until the peer closes (res 0), an error, or the group runs dry (-ENOBUFS).
   */
  prepareMultishotRecv(fd: number, bufferGroup: number, userData: number): void {
    const at = this.nextSqe(IORING_OP_RECV, fd, userData, IOSQE_BUFFER_SELECT);
    this.sqeHalves[at * 2 + 1] = IORING_RECV_MULTISHOT; // ioprio
    this.sqeHalves[(at + 10) * 2] = bufferGroup; // buf_group
  }

  /**
   * send(2) of `length` bytes at `address` (pinned memory: it must stay untouched until the
   * completion). May complete with fewer bytes than asked (a partial send): send the rest.
   * MSG_NOSIGNAL: a vanished peer is an -EPIPE result, not a SIGPIPE.
   */
  prepareSend(fd: number, address: number, length: number, userData: number, flags = 0): void {
    const at = this.nextSqe(IORING_OP_SEND, fd, userData, flags);
    this.set64(at, 4, address);
    this.sqes[at + 6] = length;
    this.sqes[at + 7] = MSG_NOSIGNAL; // msg_flags
  }

  /**
   * pread(2): `length` bytes of a file at `offset` into `address` (pinned memory). epoll cannot
   * wait for a file (epoll_ctl refuses a regular file with EPERM; select and poll report it
   * always ready, even when the read will wait for the disk); io_uring
   * runs the read itself, without our thread waiting for it (through the page cache's
   * asynchronous path as a rule, on an io-wq worker thread as a fallback). `flags` = IOSQE_IO_LINK makes
   * the next SQE (a send of those bytes) start only after the read succeeded in full.
   */
  prepareRead(fd: number, address: number, length: number, offset: number, userData: number, flags = 0): void {
    const at = this.nextSqe(IORING_OP_READ, fd, userData, flags);
    this.set64(at, 2, offset);
    this.set64(at, 4, address);
    this.sqes[at + 6] = length;
  }

  /**
   * shutdown(2). SHUT_RDWR ends both directions: every pending recv or send on the socket
   * completes. SHUT_WR sends our FIN after what is queued, and receiving goes on.
   */
  prepareShutdown(fd: number, how: number, userData: number, flags = 0): void {
    const at = this.nextSqe(IORING_OP_SHUTDOWN, fd, userData, flags);
    this.sqes[at + 6] = how; // len holds `how`
  }

  /** close(2) of a descriptor, by the kernel, in submission order. */
  prepareClose(fd: number, userData: number, flags = 0): void {
    this.nextSqe(IORING_OP_CLOSE, fd, userData, flags);
  }

  /**
   * Cancel the pending operation(s) submitted with `targetUserData` (a multishot recv, say).
   * The cancelled operation completes with -ECANCELED; this SQE completes too.
   */
  prepareCancel(targetUserData: number, userData: number): void {
    const at = this.nextSqe(IORING_OP_ASYNC_CANCEL, -1, userData, 0);
    this.sqes[at + 4] = targetUserData; // addr: the user_data to look for
  }

  /** An operation that does nothing and completes at once, with result 0 (to try the rings). */
  prepareNop(userData: number): void {
    this.nextSqe(IORING_OP_NOP, -1, userData, 0);
  }

  /** Publish the prepared SQEs: the kernel reads the tail only during io_uring_enter. */
  private publish(): number {
    // A store with release semantics: the SQEs' contents are visible before the new tail.
    Atomics.store(this.ringWords, this.sqTail, this.sqeTail);
    return this.pendingSubmissions;
  }

  /** io_uring_enter without waiting: hand over the prepared SQEs (used when the SQ is full). */
  submit(): void {
    const count = this.publish();
    if (count === 0) return;
    this.enter(count, 0, 0, null, 0);
  }

  /**
   * The one system call of a pass: hand over every prepared SQE and wait until at least one
   * completion is ready or `timeoutMs` passes (a signal such as Ctrl+C also ends the wait).
   * With DEFER_TASKRUN this is also when the kernel finishes the work it completed for us.
   */
  submitAndWait(timeoutMs: number): void {
    const count = this.publish();
    // struct __kernel_timespec { i64 tv_sec; i64 tv_nsec; } at byte 32 of the wait page.
    this.waitWords[8] = Math.floor(timeoutMs / 1000);
    this.waitWords[9] = 0;
    this.waitWords[10] = (timeoutMs % 1000) * 1_000_000;
    this.waitWords[11] = 0;
    this.enter(count, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, this.waitArg, 24);
  }

  private enter(toSubmit: number, minComplete: number, flags: number, arg: Pointer, argBytes: number): void {
    this.enterCalls++;
    const result = Number(c.io_uring_enter(SYS_io_uring_enter, this.fd, toSubmit, minComplete, flags, arg, argBytes));
    this.sqeHead = Atomics.load(this.ringWords, this.sqHead);
    if (result >= 0) return;
    const errno = koffi.errno();
    const { EINTR, ETIME, EAGAIN, EBUSY } = osConstants.errno;
    // EINTR: a signal (its JavaScript handler runs once we return to Node). ETIME: the wait's
    // timeout passed with nothing complete. EAGAIN/EBUSY: the kernel asks us to reap
    // completions first. In each case: go on, reap what is there, come back.
    if (errno === EINTR || errno === ETIME || errno === EAGAIN || errno === EBUSY) return;
    throw new OSError('io_uring_enter', errno);
  }

  // -------------------------------------------------------------------------------------
  // Completions
  // -------------------------------------------------------------------------------------

  /**
   * How many CQEs the kernel has posted that we have not read yet. Index them 0..count-1 with
   * the completion* getters, then give their slots back with markCompletionsSeen(count).
   */
  completionsReady(): number {
    // A load with acquire semantics: the CQEs are read only after the tail that covers them.
    return (Atomics.load(this.ringWords, this.cqTail) - this.cqeHead) >>> 0;
  }

  private cqeAt(i: number): number {
    return this.cqesAt + ((this.cqeHead + i) & this.cqMask) * 4;
  }

  /** The user_data of the SQE this completion belongs to. */
  completionUserData(i: number): number {
    return this.ringWords[this.cqeAt(i)]!;
  }

  /** The operation's result, like a system call's return value; an error is -errno. */
  completionResult(i: number): number {
    return this.ringInts[this.cqeAt(i) + 2]!;
  }

  /** IORING_CQE_F_MORE, IORING_CQE_F_BUFFER (and the buffer id in the upper 16 bits). */
  completionFlags(i: number): number {
    return this.ringWords[this.cqeAt(i) + 3]!;
  }

  /** Advance the CQ head: those CQE slots belong to the kernel again. */
  markCompletionsSeen(count: number): void {
    this.cqeHead = (this.cqeHead + count) >>> 0;
    Atomics.store(this.ringWords, this.cqHead, this.cqeHead);
  }

  // -------------------------------------------------------------------------------------
  // Registration and teardown
  // -------------------------------------------------------------------------------------

  /** io_uring_register(2): `argument` is read during the call only. */
  register(opcode: number, argument: Buffer, count: number, name: string): void {
    if (Number(c.io_uring_register(SYS_io_uring_register, this.fd, opcode, argument, count)) < 0) {
      throw new OSError(`io_uring_register(${name})`, koffi.errno());
    }
  }

  /**
   * Close the ring: the kernel cancels whatever is still pending (and only then stops using
   * the memory those operations point to). Unmap our views of it.
   */
  close(): void {
    for (const { pointer, length } of this.mappings.splice(0)) c.munmap(pointer, length);
    if (this.fd >= 0) c.close(this.fd);
    this.fd = -1;
  }
}

// ---------------------------------------------------------------------------------------
// Receive buffers the kernel picks from: a provided buffer ring
// ---------------------------------------------------------------------------------------

/**
 * A group of equal receive buffers, registered with the ring (IORING_REGISTER_PBUF_RING). A
 * multishot recv takes a buffer from the group only when bytes actually arrive, so a thousand
 * idle connections hold no receive memory at all: only the connections being served do, and
 * only until we give the buffer back.
 *
 * The buffer ring is a third ring shared with the kernel, going the other way: we add buffers
 * at its tail, the kernel takes them from its head. Entries are struct io_uring_buf
 * { u64 addr; u32 len; u16 bid; u16 resv }, and the ring's tail overlays the resv field of
 * entry 0.
 */
export class ProvidedBuffers {
  readonly group: number;
  readonly bufferBytes: number;
  private readonly count: number;
  private readonly ringWords: Uint32Array;
  private readonly ringHalves: Uint16Array;
  private readonly memoryAddress: number;
  // Buffer `id` as a Buffer, made once at start: a view per completion would cost an
  // allocation on every receive.
  private readonly views: Buffer[] = [];
  private tail = 0;

  constructor(ring: IoUring, group: number, count: number, bufferBytes: number) {
    if ((count & (count - 1)) !== 0) throw new RangeError('the buffer count must be a power of two');
    this.group = group;
    this.count = count;
    this.bufferBytes = bufferBytes;
    const ringBytes = count * 16;
    const ringPointer = mapAnonymous(ringBytes);
    const memoryPointer = mapAnonymous(count * bufferBytes);
    const ringBuffer = koffi.view(ringPointer, ringBytes);
    this.ringWords = new Uint32Array(ringBuffer);
    this.ringHalves = new Uint16Array(ringBuffer);
    const memory = Buffer.from(koffi.view(memoryPointer, count * bufferBytes)); // every buffer, back to back
    for (let id = 0; id < count; id++) this.views.push(memory.subarray(id * bufferBytes, (id + 1) * bufferBytes));
    this.memoryAddress = addressOf(memoryPointer);

    // struct io_uring_buf_reg { u64 ring_addr; u32 ring_entries; u16 bgid; u16 flags; u64 resv[3] }
    const registration = Buffer.alloc(40);
    registration.writeBigUInt64LE(koffi.address(ringPointer), 0);
    registration.writeUInt32LE(count, 8);
    registration.writeUInt16LE(group, 12);
    ring.register(IORING_REGISTER_PBUF_RING, registration, 1, 'PBUF_RING');
    // Every buffer starts out as the kernel's.
    for (let id = 0; id < count; id++) this.giveBack(id);
  }

  /**
   * Buffer `id`, whole. A receive completion that used it put its bytes at the start (as
   * many as the completion's result says); they are ours to read until giveBack(id).
   */
  buffer(id: number): Buffer {
    return this.views[id]!;
  }

  /** Return buffer `id` to the kernel: add it at the tail, then publish the new tail. */
  giveBack(id: number): void {
    const entry = (this.tail & (this.count - 1)) * 4; // 4 words per io_uring_buf
    const address = this.memoryAddress + id * this.bufferBytes;
    this.ringWords[entry] = address % 2 ** 32;
    this.ringWords[entry + 1] = Math.floor(address / 2 ** 32);
    this.ringWords[entry + 2] = this.bufferBytes;
    this.ringHalves[(entry + 3) * 2] = id; // bid (its neighbour, resv, is the tail in entry 0)
    this.tail = (this.tail + 1) & 0xffff;
    Atomics.store(this.ringHalves, 7, this.tail); // the tail: byte 14 of the ring
  }
}

// ---------------------------------------------------------------------------------------
// Outgoing bytes: pinned slots
// ---------------------------------------------------------------------------------------

/**
 * Fixed-size pieces of mapped memory to send from. A connection takes a slot when it has
 * something to send, copies its responses into it (several pipelined answers go out in one
 * send), and hands it to the kernel with a send; it gets the slot back with the send's
 * completion, and returns it to the pool once it has nothing left to send. So memory per
 * connection is paid only while bytes are on their way, and a response Buffer that
 * handleRequest shares between connections is never handed to the kernel itself.
 *
 * Slots are mapped in chunks as needed and reused last-in first-out, so the pages that are
 * touched stay few.
 */
export class PinnedSlots {
  readonly slotBytes: number;
  private readonly slotsPerChunk: number;
  private readonly views: Buffer[] = [];
  private readonly addresses: number[] = [];
  private readonly free: number[] = [];

  constructor(slotBytes: number, slotsPerChunk: number) {
    this.slotBytes = slotBytes;
    this.slotsPerChunk = slotsPerChunk;
  }

  /** A free slot's number (mapping another chunk if none is free). */
  take(): number {
    if (this.free.length === 0) this.grow();
    return this.free.pop()!;
  }

  /** The slot is ours again (its last send completed) and nobody uses it. */
  release(slot: number): void {
    this.free.push(slot);
  }

  /** The slot's memory, to copy bytes into (only while no operation uses it). */
  view(slot: number): Buffer {
    return this.views[slot]!;
  }

  /** The slot's address, for an SQE. */
  address(slot: number): number {
    return this.addresses[slot]!;
  }

  private grow(): void {
    const chunkBytes = this.slotBytes * this.slotsPerChunk;
    const pointer = mapAnonymous(chunkBytes);
    const memory = Buffer.from(koffi.view(pointer, chunkBytes));
    const base = addressOf(pointer);
    const first = this.views.length;
    for (let i = 0; i < this.slotsPerChunk; i++) {
      this.views.push(memory.subarray(i * this.slotBytes, (i + 1) * this.slotBytes));
      this.addresses.push(base + i * this.slotBytes);
    }
    // Lowest numbers on top of the stack, so that they are the ones reused.
    for (let slot = first + this.slotsPerChunk - 1; slot >= first; slot--) this.free.push(slot);
  }
}
