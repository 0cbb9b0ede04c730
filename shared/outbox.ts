// What a connection still has to send.
//
// A socket write may accept fewer bytes than offered (the kernel's send
// buffer is full), and with pipelining several responses can be waiting at
// once. The Outbox is the queue that remembers exactly how far we got, so that
// every model, blocking or not, can use the same two-step loop:
//
//     while (!outbox.isEmpty) {
//       const written = send(socket, outbox.peek());   // may be partial
//       outbox.consumed(written);
//     }
//
// Large files are queued as open descriptors and read piece by piece (or sent
// with sendfile(2) via peekFile()), so a 1 GB download never sits in memory.
// The Outbox owns those descriptors: it closes each one once fully sent, or
// when the connection is discarded.

// Buffer is imported, not taken from the global object: there Node defines it as a getter,
// and every `Buffer.isBuffer` below (three per response) would call it.
import { Buffer } from 'node:buffer';
import fs from 'node:fs';
import type { FileBody, HttpResponse } from './handle-request.ts';

/** How much of a file is read per peek(). */
export const FILE_PIECE_BYTES = 64 * 1024;

// Our mutable copy of a FileBody: where we are in the file and what is left.
interface QueuedFile {
  fd: number;
  position: number;
  remaining: number;
}

type QueueItem = Buffer | QueuedFile;

export class Outbox {
  // Items in send order. The head item may be partly sent: `headOffset` bytes
  // of a Buffer item; a file item tracks its own position.
  private readonly queue: QueueItem[] = [];
  private headOffset = 0;
  private pending = 0;
  private closing = false;
  private discarded = false;

  // Reused buffer for file pieces, and which file bytes it currently holds,
  // so that after a partial write the rest of a piece is not read again.
  private pieceBuffer: Buffer | null = null;
  private pieceFd = -1;
  private pieceStart = 0; // file position of pieceBuffer[0]
  private pieceLength = 0;

  /**
   * Queue a response. After a response with close=true nothing more is sent
   * (RFC 9112 §9.6: no responses after the one announcing the close), so later
   * pushes are dropped, and their file descriptors closed.
   */
  push(response: HttpResponse): void {
    if (this.discarded || this.closing) {
      if (response.file !== null) closeQuietly(response.file.fd);
      return;
    }
    if (response.bytes.length > 0) {
      this.queue.push(response.bytes);
      this.pending += response.bytes.length;
    }
    const file = response.file;
    if (file !== null) {
      if (file.length > 0) {
        this.queue.push({ fd: file.fd, position: file.offset, remaining: file.length });
        this.pending += file.length;
      } else {
        closeQuietly(file.fd);
      }
    }
    if (response.close) this.closing = true;
  }

  get isEmpty(): boolean {
    return this.queue.length === 0;
  }

  /** Bytes still to send, from memory and from files. */
  get pendingBytes(): number {
    return this.pending;
  }

  /**
   * True once a response with close=true was queued: read no more requests,
   * and close the connection when isEmpty.
   */
  get closeAfterDrain(): boolean {
    return this.closing;
  }

  /**
   * The next bytes to send (never empty unless isEmpty). For a file, this is
   * the next piece, read into a reused buffer: valid only until the next
   * consumed() or peek(). Throws if a file turns out shorter than promised.
   */
  peek(): Buffer {
    const head = this.queue[0];
    if (head === undefined) return EMPTY;
    if (Buffer.isBuffer(head)) {
      return this.headOffset === 0 ? head : head.subarray(this.headOffset);
    }
    return this.filePiece(head);
  }

  /**
   * If the head item is a file: where to continue and how much is left, for
   * callers that send it with sendfile(2) instead of peek(). Otherwise null.
   */
  peekFile(): FileBody | null {
    const head = this.queue[0];
    if (head === undefined || Buffer.isBuffer(head)) return null;
    return { fd: head.fd, offset: head.position, length: head.remaining };
  }

  /** The kernel accepted `count` bytes of the head item (a partial write is normal). */
  consumed(count: number): void {
    if (count === 0) return;
    const head = this.queue[0];
    if (head === undefined || count < 0) throw new RangeError(`consumed(${count}) with nothing to send`);

    if (Buffer.isBuffer(head)) {
      const left = head.length - this.headOffset;
      if (count > left) throw new RangeError(`consumed(${count}) but only ${left} bytes were offered`);
      this.pending -= count;
      if (count === left) {
        this.queue.shift();
        this.headOffset = 0;
      } else {
        this.headOffset += count;
      }
      return;
    }

    if (count > head.remaining) throw new RangeError(`consumed(${count}) but only ${head.remaining} file bytes remain`);
    head.position += count;
    head.remaining -= count;
    this.pending -= count;
    if (head.remaining === 0) {
      this.queue.shift();
      this.forgetPiece();
      closeQuietly(head.fd);
      if (this.queue.length === 0) this.pieceBuffer = null; // idle connections hold no 64 KiB
    }
  }

  /** The connection is gone: close every file, drop everything. Idempotent. */
  discard(): void {
    for (const item of this.queue) {
      if (!Buffer.isBuffer(item)) closeQuietly(item.fd);
    }
    this.queue.length = 0;
    this.headOffset = 0;
    this.pending = 0;
    this.discarded = true;
    this.pieceBuffer = null;
    this.forgetPiece();
  }

  // The bytes at the file's current position: from the piece read earlier if
  // it still covers that position, else a fresh pread.
  private filePiece(file: QueuedFile): Buffer {
    const pieceEnd = this.pieceStart + this.pieceLength;
    if (this.pieceFd === file.fd && file.position >= this.pieceStart && file.position < pieceEnd) {
      return this.pieceBuffer!.subarray(file.position - this.pieceStart, this.pieceLength);
    }

    const buffer = this.pieceBuffer ?? (this.pieceBuffer = Buffer.allocUnsafe(FILE_PIECE_BYTES));
    const wanted = Math.min(file.remaining, buffer.length);
    // An explicit position (pread) leaves the fd's own offset alone and makes
    // a read after a partial write start at exactly the right byte.
    const count = fs.readSync(file.fd, buffer, 0, wanted, file.position);
    if (count === 0) {
      // The file shrank after its length went into Content-Length. We can
      // neither finish the promised body nor send anything else on this
      // connection; the caller must close it (not wait, not spin).
      throw new Error(`file ended ${file.remaining} bytes early (it shrank while being sent)`);
    }
    this.pieceFd = file.fd;
    this.pieceStart = file.position;
    this.pieceLength = count;
    return count === buffer.length ? buffer : buffer.subarray(0, count);
  }

  private forgetPiece(): void {
    this.pieceFd = -1;
    this.pieceLength = 0;
  }
}

const EMPTY = Buffer.alloc(0);

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // Already closed or never valid: nothing left to release.
  }
}
