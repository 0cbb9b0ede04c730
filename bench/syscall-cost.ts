/**
 * bench/syscall-cost.ts: what one system call costs on this machine, measured from C
 * (bench/references/syscall-cost.c), and what it costs the code that runs after it.
 *
 * Both figures explain the others: every server but 07 makes at least a recv() and a send()
 * per keep-alive request (07 hands many to one io_uring_enter), and where each system call
 * also empties the TLB (the kernel's page-table isolation on a CPU without PCID), a server
 * pays again, after every call, for each page of code and data it touches. A JavaScript server touches far more pages per
 * request than the C ceiling does, so such a machine widens the gap between them.
 */
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { buildReference } from './servers.ts';

/** Pages touched per pass in the after-a-call measurement: enough to see, few enough for the caches. */
export const PAGES_PER_PASS = 256;
/** The pages the same number of cache lines fill when packed (64 lines of 64 bytes to a 4 KiB page). */
export const PACKED_PAGES = PAGES_PER_PASS / 64;

export interface SystemCallCost {
  /** CPU ns of one recv() on a bad descriptor, from C: the round trip into the kernel. */
  callNanos: number;
  /** CPU ns to read one cache line in each of PAGES_PER_PASS pages, alone and right after a recv(). */
  spreadAloneNanos: number;
  spreadAfterCallNanos: number;
  /** The same number of lines packed into PACKED_PAGES pages, alone and after a recv(). */
  packedAloneNanos: number;
  packedAfterCallNanos: number;
}

/** "+612 ns", "-3 ns": what reading the pages cost more after a call, rounded, signed. */
export function signedNanos(nanos: number): string {
  return `${nanos >= 0 ? '+' : ''}${Math.round(nanos)} ns`;
}

/** Best of `rounds` runs of the C program with `args`: each line of output as numbers. */
function bestRun(binary: string, args: string[], rounds: number): number[] | null {
  let best: number[] | null = null;
  for (let round = 0; round < rounds; round++) {
    const run = spawnSync(binary, args, { encoding: 'utf8' });
    const figures = run.stdout.trim().split(/\s+/).map(Number);
    if (run.status !== 0 || figures.some((figure) => !Number.isFinite(figure))) return null;
    if (best === null || figures[0]! < best[0]!) best = figures;
  }
  return best;
}

/** Both measurements, best of `rounds` runs each (other programs only ever add to them); why not, without a compiler. */
export function measureSystemCallCost(calls: number, rounds: number): SystemCallCost | { reason: string } {
  const built = buildReference('syscall-cost');
  if ('reason' in built) return built;
  const call = bestRun(built.binary, [String(calls)], rounds);
  const pages = bestRun(built.binary, ['pages', String(PAGES_PER_PASS)], rounds);
  if (call === null || pages === null || pages.length !== 4) return { reason: `${built.binary} printed no figures` };
  const [spreadAloneNanos, spreadAfterCallNanos, packedAloneNanos, packedAfterCallNanos] = pages as [number, number, number, number];
  return { callNanos: call[0]!, spreadAloneNanos, spreadAfterCallNanos, packedAloneNanos, packedAfterCallNanos };
}

/**
 * The kernel's Meltdown mitigation as it reports it ("Mitigation: PTI", "Not affected"...), and
 * whether the CPU, as this system sees it, has PCID, which lets page-table isolation keep the
 * TLB across system calls. null where Linux does not say.
 */
export function pageTableIsolation(): { meltdown: string; pcid: boolean } | null {
  try {
    const meltdown = readFileSync('/sys/devices/system/cpu/vulnerabilities/meltdown', 'utf8').trim();
    const flags = /^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '';
    return { meltdown, pcid: flags.split(/\s+/).includes('pcid') };
  } catch {
    return null;
  }
}
