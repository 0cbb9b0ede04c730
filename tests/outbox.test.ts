// The per-connection send queue (shared/outbox.ts): partial writes, file
// bodies read in pieces or sent with sendfile, and file descriptor ownership.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { FILE_PIECE_BYTES, Outbox } from '../shared/outbox.ts';
import type { HttpResponse } from '../shared/handle-request.ts';
import { patternBytes, writeTempFile } from './helpers/fixtures.ts';

function memoryResponse(text: string, close = false): HttpResponse {
  return { status: 200, bytes: Buffer.from(text, 'latin1'), file: null, close };
}

// Temp files behind the file responses (removed when all tests are done), and
// which one each currently open fd belongs to.
const tempFiles: string[] = [];
const fileOfFd = new Map<number, string>();
after(() => {
  for (const file of tempFiles) fs.rmSync(path.dirname(file), { recursive: true, force: true });
});

/** A response with a head in memory and an open fd for `content` (or a slice of it). */
function fileResponse(content: Buffer, head = 'HEAD|', slice?: { offset: number; length: number }): HttpResponse {
  const file = writeTempFile(content);
  const fd = fs.openSync(file, 'r');
  tempFiles.push(file);
  fileOfFd.set(fd, file);
  const { offset, length } = slice ?? { offset: 0, length: content.length };
  return { status: 200, bytes: Buffer.from(head, 'latin1'), file: { fd, offset, length }, close: false };
}

function isOpen(fd: number): boolean {
  try {
    fs.fstatSync(fd);
    return true;
  } catch {
    return false;
  }
}

/** Send everything, letting the "kernel" accept at most `perWrite` bytes each time. */
function drain(outbox: Outbox, perWrite = Infinity): Buffer {
  const sent: Buffer[] = [];
  while (!outbox.isEmpty) {
    const piece = outbox.peek();
    assert.ok(piece.length > 0, 'peek() must not return an empty buffer while not empty');
    const accepted = Math.min(piece.length, perWrite);
    sent.push(Buffer.from(piece.subarray(0, accepted))); // copy: the piece is only valid until the next call
    outbox.consumed(accepted);
  }
  return Buffer.concat(sent);
}

test('a new outbox is empty', () => {
  const outbox = new Outbox();
  assert.equal(outbox.isEmpty, true);
  assert.equal(outbox.pendingBytes, 0);
  assert.equal(outbox.closeAfterDrain, false);
  assert.equal(outbox.peek().length, 0);
  assert.equal(outbox.peekFile(), null);
});

test('memory responses are sent in order, surviving partial writes', () => {
  const outbox = new Outbox();
  outbox.push(memoryResponse('first response|'));
  outbox.push(memoryResponse('second|'));
  outbox.push(memoryResponse('third'));
  assert.equal(outbox.pendingBytes, 'first response|second|third'.length);
  assert.equal(drain(outbox, 4).toString(), 'first response|second|third');
  assert.equal(outbox.pendingBytes, 0);
});

test('after a partial write, peek() offers exactly the rest', () => {
  const outbox = new Outbox();
  outbox.push(memoryResponse('hello world'));
  outbox.consumed(6);
  assert.equal(outbox.peek().toString(), 'world');
  assert.equal(outbox.pendingBytes, 5);
  outbox.consumed(0);
  assert.equal(outbox.peek().toString(), 'world');
  outbox.consumed(5);
  assert.equal(outbox.isEmpty, true);
});

test('consumed() more than offered, negative, or with nothing queued throws', () => {
  const outbox = new Outbox();
  assert.throws(() => outbox.consumed(1), RangeError);
  outbox.push(memoryResponse('abc'));
  assert.throws(() => outbox.consumed(4), RangeError);
  assert.throws(() => outbox.consumed(-1), RangeError);
  outbox.consumed(3);
  assert.equal(outbox.isEmpty, true);
});

test('a file body is read in pieces after the head, and its fd closed at the end', () => {
  const content = patternBytes(3 * FILE_PIECE_BYTES + 1234);
  const response = fileResponse(content);
  const outbox = new Outbox();
  outbox.push(response);
  assert.equal(outbox.pendingBytes, 5 + content.length);
  assert.equal(outbox.peek().toString(), 'HEAD|');
  outbox.consumed(5);
  assert.equal(outbox.peek().length, FILE_PIECE_BYTES, 'a piece is at most FILE_PIECE_BYTES');
  assert.ok(drain(outbox).equals(content));
  assert.equal(isOpen(response.file!.fd), false, 'fd must be closed once fully sent');
});

test('partial writes inside a file piece resume at the right byte', () => {
  const content = patternBytes(FILE_PIECE_BYTES * 2 + 100);
  const response = fileResponse(content);
  const outbox = new Outbox();
  outbox.push(response);
  // Odd write sizes make pieces straddle in every possible way.
  const wire = drain(outbox, 10_007);
  assert.ok(wire.equals(Buffer.concat([Buffer.from('HEAD|'), content])));
  assert.equal(isOpen(response.file!.fd), false);
});

test('only the given range of the file is sent', () => {
  const content = patternBytes(10_000);
  const response = fileResponse(content, '', { offset: 1000, length: 5000 });
  const outbox = new Outbox();
  outbox.push(response);
  assert.equal(outbox.pendingBytes, 5000);
  assert.ok(drain(outbox, 777).equals(content.subarray(1000, 6000)));
});

test('peekFile() lets a caller use sendfile: offset and length follow consumed()', () => {
  const content = patternBytes(200_000);
  const response = fileResponse(content, 'H');
  const outbox = new Outbox();
  outbox.push(response);
  assert.equal(outbox.peekFile(), null, 'the head item is memory, not a file');
  outbox.consumed(1);
  const fd = response.file!.fd;
  assert.deepEqual(outbox.peekFile(), { fd, offset: 0, length: 200_000 });
  outbox.consumed(150_000); // sendfile may move more than a peek() piece
  assert.deepEqual(outbox.peekFile(), { fd, offset: 150_000, length: 50_000 });
  assert.ok(outbox.peek().equals(content.subarray(150_000, 200_000)));
  outbox.consumed(50_000);
  assert.equal(outbox.isEmpty, true);
  assert.equal(isOpen(fd), false);
});

test('a file that shrank while being sent makes peek() throw instead of hanging', () => {
  const content = patternBytes(FILE_PIECE_BYTES + 500);
  const response = fileResponse(content, '');
  const outbox = new Outbox();
  outbox.push(response);
  outbox.consumed(outbox.peek().length); // first piece sent
  fs.truncateSync(fileOfFd.get(response.file!.fd)!, FILE_PIECE_BYTES);
  assert.throws(() => outbox.peek(), /shrank/);
  outbox.discard();
  assert.equal(isOpen(response.file!.fd), false);
});

test('discard() closes every queued fd and empties the queue; it is idempotent', () => {
  const first = fileResponse(patternBytes(1000));
  const second = fileResponse(patternBytes(2000));
  const outbox = new Outbox();
  outbox.push(first);
  outbox.push(memoryResponse('between'));
  outbox.push(second);
  outbox.consumed(3);
  outbox.discard();
  assert.equal(outbox.isEmpty, true);
  assert.equal(outbox.pendingBytes, 0);
  assert.equal(isOpen(first.file!.fd), false);
  assert.equal(isOpen(second.file!.fd), false);
  outbox.discard();
  const late = fileResponse(patternBytes(10));
  outbox.push(late);
  assert.equal(outbox.isEmpty, true, 'nothing is queued on a discarded outbox');
  assert.equal(isOpen(late.file!.fd), false, 'and the fd is not leaked');
});

test('closeAfterDrain turns on with a close=true response; later responses are dropped', () => {
  const outbox = new Outbox();
  outbox.push(memoryResponse('keep|'));
  assert.equal(outbox.closeAfterDrain, false);
  outbox.push(memoryResponse('last', true));
  assert.equal(outbox.closeAfterDrain, true);
  const ignored = fileResponse(patternBytes(10));
  outbox.push(ignored);
  outbox.push(memoryResponse('ignored too'));
  assert.equal(drain(outbox).toString(), 'keep|last');
  assert.equal(isOpen(ignored.file!.fd), false);
  assert.equal(outbox.closeAfterDrain, true);
});

test('a zero-length file body is closed at once and adds nothing', () => {
  const outbox = new Outbox();
  const response = fileResponse(Buffer.alloc(0), 'head-only');
  outbox.push(response);
  assert.equal(isOpen(response.file!.fd), false);
  assert.equal(drain(outbox).toString(), 'head-only');
});

test('a response with empty bytes and a file starts directly with the file', () => {
  const content = patternBytes(100);
  const outbox = new Outbox();
  outbox.push(fileResponse(content, ''));
  assert.ok(outbox.peekFile() !== null);
  assert.ok(drain(outbox).equals(content));
});
