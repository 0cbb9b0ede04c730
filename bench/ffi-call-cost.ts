/**
 * bench/ffi-call-cost.ts: what one call through koffi costs on top of the system call it makes.
 *
 *     npx tsx bench/ffi-call-cost.ts
 *
 * The call is recv(2) on a bad descriptor: a real trip into the kernel that fails at once
 * (EBADF), so the kernel's part is small and the same every time. It is made from C
 * (bench/references/syscall-cost.c, built with the system's compiler; skipped without one)
 * and through koffi with several declarations: return type long or int, the buffer declared
 * void * or uint8_t *, passed as a Buffer or a Uint8Array; and, for comparison, a koffi call that
 * makes no system call at all (labs). Each figure is CPU time per call, the best of a few
 * rounds (other programs only ever add to it). Nothing is asserted: run it and look.
 *
 * Two machines, two answers. On the one of the earlier reports every recv() shape cost the
 * same, about 130 ns more than C, which is why shared/libc.ts keeps the declarations that read
 * like the C ones. On the one of December 2026 (Linux 6.18.44-fc-v1272, "Mitigation: PTI" on a
 * CPU shown without PCID) the shapes still cost the same as each other, but 350–490 ns more
 * than C, while labs() through koffi costs 23 ns: koffi's own instructions are cheap; they run
 * slower after a system call. The last lines show why, from C: a system call there empties the
 * TLB, so reading one cache line in each of 256 pages costs about 600 ns more right after a
 * recv() than without it, and the same lines packed into 4 pages cost almost nothing more. Any
 * code that runs after a system call pays again for every page it touches, and a JavaScript
 * server touches many more pages between its calls than the C ceiling does.
 */
import koffi from 'koffi';
import { PACKED_PAGES, PAGES_PER_PASS, measureSystemCallCost, pageTableIsolation, signedNanos } from './syscall-cost.ts';

const CALLS = 500_000;
const ROUNDS = 5;

const libc = koffi.load('libc.so.6');
const buffer = Buffer.allocUnsafe(64 * 1024);
const bytes = new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.length);
const asDeclared = libc.func('long recv(int fd, void *buffer, size_t length, int flags)');
const returningInt = libc.func('int recv(int fd, void *buffer, size_t length, int flags)');
const withByteBuffer = libc.func('long recv(int fd, uint8_t *buffer, size_t length, int flags)');
const absolute = libc.func('long labs(long value)');

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

const c = measureSystemCallCost(CALLS, ROUNDS);
if ('reason' in c) process.stdout.write(`(no figures from C: ${c.reason})\n`);
const noCall: [string, number] = ['long labs(long): koffi alone, no system call', cpuNanosPerCall(() => absolute(-7))];
const rows: [string, number][] = SHAPES.map(([label, call]) => [label, cpuNanosPerCall(call)]);
const width = Math.max(...rows.map(([label]) => label.length), noCall[0].length);
const line = (label: string, nanos: number, note = '') => process.stdout.write(`${label.padEnd(width)}  ${nanos.toFixed(0).padStart(5)} ns${note}\n`);
line(...noCall);
if (!('reason' in c)) line('recv() from C', c.callNanos);
for (const [label, nanos] of rows) line(label, nanos, 'reason' in c ? '' : `   (+${(nanos - c.callNanos).toFixed(0)} ns for koffi)`);

// What the call costs the code after it: the same reads, alone and right after a recv().
if (!('reason' in c)) {
  const pass = (alone: number, after: number) => `${alone.toFixed(0).padStart(5)} ns alone, ${after.toFixed(0).padStart(5)} ns right after a recv() (${signedNanos(after - alone)})`;
  process.stdout.write(`\nReading ${PAGES_PER_PASS} cache lines, from C (the call's own cost taken off):\n`);
  process.stdout.write(`  one in each of ${PAGES_PER_PASS} pages:   ${pass(c.spreadAloneNanos, c.spreadAfterCallNanos)}\n`);
  process.stdout.write(`  packed into ${PACKED_PAGES} pages:       ${pass(c.packedAloneNanos, c.packedAfterCallNanos)}\n`);
  const isolation = pageTableIsolation();
  if (isolation !== null) process.stdout.write(`Meltdown mitigation: ${isolation.meltdown}; PCID: ${isolation.pcid ? 'yes' : 'no'}\n`);
}
