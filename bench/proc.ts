/**
 * bench/proc.ts: what a process tree costs, read from /proc the way `ps` and `top` do.
 *
 * A model is measured as its whole tree (01 forks a process per connection), and CPU is
 * counted as utime + stime + cutime + cstime of every live process in the tree: the last two
 * hold the time of children that already exited and were reaped, so a process that served one
 * request and ended still counts.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

function sysconf(name: string, fallback: number): number {
  try {
    return Number(execFileSync('getconf', [name], { encoding: 'utf8' }).trim()) || fallback;
  } catch {
    return fallback;
  }
}

export const CLOCK_TICKS_PER_SECOND = sysconf('CLK_TCK', 100);
const PAGE_KIB = sysconf('PAGESIZE', 4096) / 1024;

export interface ProcessStat {
  pid: number;
  /** R running, S sleeping, Z zombie (exited, not yet reaped)… */
  state: string;
  ppid: number;
  /** utime + stime + cutime + cstime, in clock ticks. */
  cpuTicks: number;
  threads: number;
  rssKiB: number;
}

/** Fields of /proc/PID/stat after the command name, which may itself hold spaces. */
export function parseStat(pid: number, text: string): ProcessStat {
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const field = (n: number) => Number(fields[n - 3]); // n counts from 1, as in proc(5)
  return {
    pid,
    state: fields[0]!,
    ppid: field(4),
    cpuTicks: field(14) + field(15) + field(16) + field(17),
    threads: field(20),
    rssKiB: field(24) * PAGE_KIB,
  };
}

function readStat(pid: number): ProcessStat | null {
  try {
    return parseStat(pid, readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return null; // it ended while we looked
  }
}

/** True while `pid` exists and has not exited (a zombie has). */
export function isRunning(pid: number): boolean {
  const stat = readStat(pid);
  return stat !== null && stat.state !== 'Z';
}

/** `pid` and all its descendants that /proc still lists. */
export function processTree(pid: number): ProcessStat[] {
  const byParent = new Map<number, ProcessStat[]>();
  let root: ProcessStat | null = null;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (stat === null) continue;
    if (stat.pid === pid) root = stat;
    byParent.set(stat.ppid, [...(byParent.get(stat.ppid) ?? []), stat]);
  }
  if (root === null) return [];
  const tree = [root];
  for (let i = 0; i < tree.length; i++) tree.push(...(byParent.get(tree[i]!.pid) ?? []));
  return tree;
}

export interface TreeUsage {
  processes: number;
  threads: number;
  rssKiB: number;
  cpuTicks: number;
}

export function treeUsage(pid: number): TreeUsage {
  const tree = processTree(pid);
  const sum = (pick: (stat: ProcessStat) => number) => tree.reduce((total, stat) => total + pick(stat), 0);
  return { processes: tree.length, threads: sum((s) => s.threads), rssKiB: sum((s) => s.rssKiB), cpuTicks: sum((s) => s.cpuTicks) };
}

/**
 * Proportional set size of the tree: shared pages (the node binary, libraries) divided among
 * the processes that map them. RSS counts them once per process, which overstates a forked
 * server's memory; PSS does not.
 */
export function treePssKiB(pid: number): number {
  let total = 0;
  for (const { pid: member } of processTree(pid)) {
    try {
      const match = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${member}/smaps_rollup`, 'utf8'));
      total += Number(match?.[1] ?? 0);
    } catch {
      // ended while we looked
    }
  }
  return total;
}

/** Open descriptors of one process. */
export function openFdCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}

/** Open descriptors of `pid` and every process below it. */
export function treeFds(pid: number): number {
  return processTree(pid).reduce((total, { pid: member }) => total + openFdCount(member), 0);
}

/** The soft RLIMIT_NOFILE of this process, which the servers and the bench's children inherit (Node raises its soft limit to the hard one at start). */
export function descriptorLimit(): number {
  const line = readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((text) => text.startsWith('Max open files'));
  const soft = line?.split(/\s{2,}/)[1];
  return soft === undefined || soft === 'unlimited' ? Infinity : Number(soft);
}

export interface WindowUsage {
  peakRssKiB: number;
  /** CPU used during the window, in percent of one core (200 = both cores of a 2-core machine). */
  cpuPercent: number;
  /** The same as seconds of CPU time (user + system, the whole tree): divided by the requests served, the cost of one. */
  cpuSeconds: number;
  /** CPU the whole machine used meanwhile (every process, and kernel work), same unit. */
  machineCpuPercent: number;
  peakProcesses: number;
  peakThreads: number;
}

/**
 * Watch a tree for a while: peak RSS (sampled every `everyMs`) and the CPU it used from
 * `start()` to `stop()`.
 */
export class UsageWindow {
  readonly #pid: number;
  readonly #startTicks: number;
  readonly #startMachineTicks = machineBusyTicks();
  readonly #startedAt = performance.now();
  readonly #timer: NodeJS.Timeout;
  #peak: TreeUsage;

  constructor(pid: number, everyMs = 200) {
    this.#pid = pid;
    this.#peak = treeUsage(pid);
    this.#startTicks = this.#peak.cpuTicks;
    this.#timer = setInterval(() => this.#sample(), everyMs);
  }

  #sample(): TreeUsage {
    const now = treeUsage(this.#pid);
    this.#peak = {
      processes: Math.max(this.#peak.processes, now.processes),
      threads: Math.max(this.#peak.threads, now.threads),
      rssKiB: Math.max(this.#peak.rssKiB, now.rssKiB),
      cpuTicks: now.cpuTicks,
    };
    return now;
  }

  stop(): WindowUsage {
    clearInterval(this.#timer);
    const end = this.#sample();
    const seconds = (performance.now() - this.#startedAt) / 1000;
    return {
      peakRssKiB: this.#peak.rssKiB,
      cpuPercent: percentOfCore(end.cpuTicks - this.#startTicks, seconds),
      cpuSeconds: (end.cpuTicks - this.#startTicks) / CLOCK_TICKS_PER_SECOND,
      machineCpuPercent: percentOfCore(machineBusyTicks() - this.#startMachineTicks, seconds),
      peakProcesses: this.#peak.processes,
      peakThreads: this.#peak.threads,
    };
  }
}

/**
 * Wait until a tree is idle: under 10% of a core for 150 ms. A freshly started
 * pool is still starting its workers; a model with a process per connection may still be
 * starting processes for clients that already left.
 */
export async function waitUntilQuiet(pid: number, maxMs: number): Promise<void> {
  const windowMs = 150;
  const deadline = Date.now() + maxMs;
  for (let before = treeUsage(pid).cpuTicks; Date.now() < deadline; ) {
    await new Promise((resolve) => setTimeout(resolve, windowMs));
    const now = treeUsage(pid).cpuTicks;
    if (now - before <= (CLOCK_TICKS_PER_SECOND * windowMs * 0.1) / 1000) return;
    before = now;
  }
}

/**
 * Wait (at most `maxMs`) until the rest of the machine is quiet: under a third of a core busy
 * over half a second. On a laptop a browser or a build can steal the CPU a server needs; the
 * report marks rows measured while the machine was busy anyway.
 */
export async function waitForQuietMachine(maxMs: number): Promise<void> {
  const windowMs = 500;
  const deadline = Date.now() + maxMs;
  for (let before = machineBusyTicks(); Date.now() < deadline; ) {
    await new Promise((resolve) => setTimeout(resolve, windowMs));
    const now = machineBusyTicks();
    if (percentOfCore(now - before, windowMs / 1000) < 33) return;
    before = now;
  }
}

/**
 * At most this long, over a whole run, waiting for other programs to leave the CPU alone and
 * measuring disturbed steps again: it bounds a full run at about its quiet length plus this.
 */
export const PATIENCE_MS = 3 * 60_000;

/**
 * How long one run may spend on a busy machine waiting for quiet and measuring again: on a
 * machine that never calms down, every step would otherwise wait and repeat, and a full run
 * would take hours instead of minutes. Once it is spent, steps go ahead at once and their
 * rows are marked as disturbed (the report says how many).
 */
export class Patience {
  #leftMs: number;

  constructor(totalMs: number) {
    this.#leftMs = totalMs;
  }

  left(): boolean {
    return this.#leftMs > 0;
  }

  spend(ms: number): void {
    this.#leftMs -= ms;
  }

  /** waitForQuietMachine, for at most what is left of the patience. */
  async waitForQuietMachine(maxMs: number): Promise<void> {
    if (this.#leftMs <= 0) return;
    const started = Date.now();
    await waitForQuietMachine(Math.min(maxMs, this.#leftMs));
    this.spend(Date.now() - started);
  }
}

/** RSS of a tree as the median of a few samples: a garbage collection can move it by megabytes. */
export async function steadyRssKiB(pid: number, samples = 5, everyMs = 100): Promise<number> {
  const values: number[] = [];
  for (let i = 0; i < samples; i++) {
    if (i > 0) await new Promise((resolve) => setTimeout(resolve, everyMs));
    values.push(treeUsage(pid).rssKiB);
  }
  return values.sort((a, b) => a - b)[Math.floor(samples / 2)]!;
}

/** Busy time of all cores since boot, from the first line of /proc/stat (everything but idle and iowait). */
function machineBusyTicks(): number {
  const [, user, nice, system, , , irq, softirq, steal] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).map(Number);
  return user! + nice! + system! + irq! + softirq! + steal!;
}

export function percentOfCore(ticks: number, seconds: number): number {
  return seconds > 0 ? (100 * ticks) / CLOCK_TICKS_PER_SECOND / seconds : 0;
}
