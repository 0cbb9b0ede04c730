/**
 * What a test can read about a running server from /proc: descriptors, threads, memory, CPU.
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

/** Open descriptors of a process. */
export function openFdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** The lowest descriptor number a process does not use: the one its next open() would get. */
export function lowestFreeFd(pid: number): number {
  const used = new Set(readdirSync(`/proc/${pid}/fd`).map(Number));
  let fd = 0;
  while (used.has(fd)) fd++;
  return fd;
}

/**
 * What each of a process's descriptors numbered `from` or more refers to ("socket:[123]", a path...).
 * `pid` may be a thread's id too: /proc/TID/fd is that thread's view of the table.
 */
export function descriptorsFrom(pid: number, from = 0): Map<number, string> {
  const found = new Map<number, string>();
  for (const entry of readdirSync(`/proc/${pid}/fd`)) {
    const fd = Number(entry);
    if (fd < from) continue;
    try {
      found.set(fd, readlinkSync(`/proc/${pid}/fd/${entry}`));
    } catch {
      // closed while we looked
    }
  }
  return found;
}

/** CPU time (user + system) a process has used so far, in clock ticks. */
export function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/** A numeric field of /proc/PID/status, such as Threads or VmRSS (in kB). */
export function statusField(pid: number, name: string): number {
  const match = readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`^${name}:\\s+(\\d+)`, 'm'));
  if (!match) throw new Error(`no ${name} in /proc/${pid}/status`);
  return Number(match[1]);
}

export const threadCount = (pid: number): number => statusField(pid, 'Threads');

/** Resident memory in bytes. */
export const residentBytes = (pid: number): number => statusField(pid, 'VmRSS') * 1024;
