/**
 * shared/io-uring.ts on its own: a ring whose submissions come back as completions with their
 * user_data, the buffer ring and the pinned slots, and the refusal sentences.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { IoUring, KernelTooOld, PinnedSlots, ProvidedBuffers, explainRefusal, refusalOf } from '../shared/io-uring.ts';
import { OSError } from '../shared/libc.ts';
import { ioUringRefusal } from './helpers/io-uring-refusal.ts';

const refusal = ioUringRefusal() ?? false;

test('operations go in through the submission ring and come back through the completion ring, with their user_data', { skip: refusal }, () => {
  const ring = new IoUring(8, 32);
  try {
    assert.ok(ring.fd >= 0);
    // More than the 8 submission entries: the ring submits by itself when it is full.
    for (let i = 0; i < 20; i++) ring.prepareNop(1000 + i);
    ring.submitAndWait(1000);
    const seen: number[] = [];
    for (let pass = 0; pass < 3 && seen.length < 20; pass++) {
      const ready = ring.completionsReady();
      for (let i = 0; i < ready; i++) {
        assert.equal(ring.completionResult(i), 0);
        assert.equal(ring.completionFlags(i), 0);
        seen.push(ring.completionUserData(i));
      }
      ring.markCompletionsSeen(ready);
      if (seen.length < 20) ring.submitAndWait(100);
    }
    assert.deepEqual(seen.sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => 1000 + i));
    assert.equal(ring.pendingSubmissions, 0);
    assert.ok(ring.enterCalls >= 2, 'one io_uring_enter for the first 8, at least one more for the rest');
    // The kernel's own view of the rings agrees.
    const info = readFileSync(`/proc/self/fdinfo/${ring.fd}`, 'utf8');
    assert.match(info, /SqHead:\s+20\n/);
    assert.match(info, /CqTail:\s+20\n/);
  } finally {
    ring.close();
  }
  assert.equal(ring.fd, -1);
});

test('a wait with nothing to complete ends after its timeout', { skip: refusal }, () => {
  const ring = new IoUring(4, 8);
  try {
    ring.submitAndWait(20);
    assert.equal(ring.completionsReady(), 0);
  } finally {
    ring.close();
  }
});

test('provided buffers are registered, handed out by id, and given back', { skip: refusal }, () => {
  const ring = new IoUring(4, 8);
  try {
    const buffers = new ProvidedBuffers(ring, 7, 4, 1024);
    buffers.buffer(2).write('hello');
    assert.equal(buffers.buffer(2).toString('latin1', 0, 5), 'hello');
    assert.notEqual(buffers.buffer(3).toString('latin1', 0, 5), 'hello', 'each id has its own memory');
    assert.equal(buffers.buffer(3).length, 1024);
    buffers.giveBack(2);
    assert.throws(() => new ProvidedBuffers(ring, 8, 3, 1024), RangeError);
    // The same group twice: the kernel says EEXIST, as an OSError.
    assert.throws(() => new ProvidedBuffers(ring, 7, 4, 1024), (error) => error instanceof OSError && error.code === 'EEXIST');
  } finally {
    ring.close();
  }
});

test('pinned slots: taken, reused last-in first-out, and a new chunk mapped when all are taken', () => {
  const slots = new PinnedSlots(4096, 2);
  const first = slots.take();
  const second = slots.take();
  const third = slots.take(); // a second chunk
  assert.deepEqual(new Set([first, second, third]).size, 3);
  assert.equal(slots.view(first).length, 4096);
  assert.equal(slots.address(second) - slots.address(first), 4096);
  slots.release(second);
  assert.equal(slots.take(), second);
  slots.view(third).fill(0x61);
  assert.equal(slots.view(third)[4095], 0x61);
});

test('refusals get one sentence naming the cause and the fix; other errors are not refusals', () => {
  const { EPERM, ENOSYS, EINVAL } = osConstants.errno;
  assert.match(refusalOf(new OSError('io_uring_setup', EPERM)) ?? '', /EPERM/);
  assert.match(refusalOf(new OSError('io_uring_setup', ENOSYS)) ?? '', /ENOSYS.*gVisor/);
  assert.equal(refusalOf(new OSError('io_uring_setup', EINVAL)), null);
  assert.equal(refusalOf(new OSError('mmap', EPERM)), null);
  assert.equal(refusalOf(new Error('something else')), null);
  assert.equal(refusalOf(new KernelTooOld('too old')), 'too old');
  assert.match(explainRefusal(EPERM, '2'), /kernel\.io_uring_disabled is 2/);
});
