/**
 * bench/ffi-call-cost.ts: what one call through koffi costs on top of the system call it makes.
 *
 *     npx tsx bench/ffi-call-cost.ts
 *
 * The call is recv(2) on a bad descriptor: a real trip into the kernel that fails at once
 * (EBADF), so the kernel's part is small and the same every time. It is made from C
 * (bench/references/syscall-cost.c, built with the system's compiler; skipped without one)
 * and through koffi with several declarations: return type long or int, the buffer declared
 * void * or uint8_t *, passed as a Buffer or a Uint8Array. Each figure is CPU time per call,
 * the best of a few rounds (other programs only ever add to it). Nothing is asserted: run it
 * and look. On the machine of bench/results/latest.md every shape cost the same, about 130 ns
 * more than C, which is why shared/libc.ts keeps the declarations that read like the C ones.
 */
import { spawnSync } from 'node:child_process';
import koffi from 'koffi';
import { buildReference } from './servers.ts';

const CALLS = 500_000;
const ROUNDS = 5;

const libc = koffi.load('libc.so.6');
const buffer = Buffer.allocUnsafe(64 * 1024);
const bytes = new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.length);
const asDeclared = libc.func('long recv(int fd, void *buffer, size_t length, int flags)');
const returningInt = libc.func('int recv(int fd, void *buffer, size_t length, int flags)');
const withByteBuffer = libc.func('long recv(int fd, uint8_t *buffer, size_t length, int flags)');

const SHAPES: [string, () => unknown][] = [
  ['long recv(int, void *, size_t, int), a Buffer (as shared/libc.ts)', () => asDeclared(-1, buffer, buffer.length, 0)],
  ['the same, a Uint8Array', () => asDeclared(-1, bytes, bytes.length, 0)],
  ['int recv(...): an int result', () => returningInt(-1, buffer, buffer.length, 0)],
  ['long recv(int, uint8_t *, ...)', () => withByteBuffer(-1, buffer, buffer.length, 0)],
];

/** CPU nanoseconds per call of `call`, best of ROUNDS rounds after a warm-up. */
function cpuNanosPerCall(call: () => unknown): number {
  for (let i = 0; i < CALLS / 10; i++) call();
  let best = Infinity;
  for (let round = 0; round < ROUNDS; round++) {
    const before = process.cpuUsage();
    for (let i = 0; i < CALLS; i++) call();
    const used = process.cpuUsage(before);
    best = Math.min(best, ((used.user + used.system) * 1000) / CALLS);
  }
  return best;
}

/** The same recv() from C, best of ROUNDS runs; null without a compiler. */
function fromC(): number | null {
  const built = buildReference('syscall-cost');
  if ('reason' in built) {
    process.stdout.write(`(no figure from C: ${built.reason})\n`);
    return null;
  }
  let best = Infinity;
  for (let round = 0; round < ROUNDS; round++) {
    const run = spawnSync(built.binary, [String(CALLS)], { encoding: 'utf8' });
    best = Math.min(best, Number(run.stdout.trim()));
  }
  return best;
}

const c = fromC();
const rows: [string, number][] = SHAPES.map(([label, call]) => [label, cpuNanosPerCall(call)]);
const width = Math.max(...rows.map(([label]) => label.length), 'recv() from C'.length);
if (c !== null) process.stdout.write(`${'recv() from C'.padEnd(width)}  ${c.toFixed(0).padStart(5)} ns\n`);
for (const [label, nanos] of rows) {
  const extra = c === null ? '' : `   (+${(nanos - c).toFixed(0)} ns for koffi)`;
  process.stdout.write(`${label.padEnd(width)}  ${nanos.toFixed(0).padStart(5)} ns${extra}\n`);
}
