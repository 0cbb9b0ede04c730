/**
 * Start a model the way a reader does (`npx tsx FILE --port 0`), wait for its start line, and
 * stop its whole process tree afterwards, the way Ctrl+C in a terminal does: SIGINT to every
 * process of the group. A test that fails still stops the server (use `startModel` with `t`).
 */
import { $, type ProcessPromise } from 'zx';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const START_LINE = /serving (.+) on (http:\/\/\S+\/) \(pid (\d+)/;

export interface RunningServer {
  url: string;
  port: number;
  /** The pid of the node process running the model itself (not npx's, not tsx's). */
  pid: number;
  /** Everything the model printed so far, stdout and stderr. */
  output(): string;
  /** Wait until the output matches `pattern` (resolves with the match) or `timeoutMs` passes. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** SIGINT to the whole tree; resolves once every process is gone. Throws if it took SIGKILL. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface StartOptions {
  args?: string[];
  env?: Record<string, string>;
  /** How long to wait for the start line. */
  startTimeoutMs?: number;
  /** Where to run `npx tsx FILE` (default: the repository; the homework test uses a copy). */
  cwd?: string;
  /** Words before `npx tsx FILE`: a command that runs it as another user (see unprivileged.ts). */
  launcher?: string[];
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return existsSync(`/proc/${pid}`) && !isZombie(pid);
  } catch {
    return false;
  }
}

/** A zombie has exited but not been reaped by its parent: it counts as gone, but is a bug. */
export function isZombie(pid: number): boolean {
  try {
    return /\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

export async function waitUntil(condition: () => boolean, timeoutMs: number, stepMs = 25): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (condition()) return true;
    await new Promise((resolve) => setTimeout(resolve, stepMs));
  }
  return condition();
}

/** Every process's children, by parent pid, from /proc. */
function childrenByParent(): Map<number, number[]> {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(parent, [...(children.get(parent) ?? []), Number(entry)]);
    } catch {
      // the process ended while we looked
    }
  }
  return children;
}

/** The direct children of `pid` (tsx may add an esbuild helper of its own: callers tell theirs apart). */
export const childrenOf = (pid: number): number[] => childrenByParent().get(pid) ?? [];

/** The pids of `pid` and all its descendants, from /proc. */
export function processTree(pid: number): number[] {
  const children = childrenByParent();
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) tree.push(...(children.get(tree[i]!) ?? []));
  return tree;
}

export async function startModel(t: TestContext | null, file: string, options: StartOptions = {}): Promise<RunningServer> {
  let output = '';
  const watchers = new Set<() => void>();
  const child: ProcessPromise = $({
    cwd: options.cwd ?? REPO_ROOT,
    detached: true,
    nothrow: true,
    quiet: true,
    env: { ...process.env, ...options.env },
  })`${options.launcher ?? []} npx tsx ${file} --port 0 ${options.args ?? []}`;
  const record = (chunk: Buffer) => {
    output += chunk.toString();
    for (const notify of watchers) notify();
  };
  child.stdout.on('data', record);
  child.stderr.on('data', record);
  let exited = false;
  const exit = child.then(() => {
    exited = true;
    for (const notify of watchers) notify();
  });
  const topPid = child.pid!;

  const waitForOutput = (pattern: RegExp, timeoutMs = 10_000) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const check = () => {
        const match = output.match(pattern);
        if (match) return finish(() => resolve(match));
        if (exited) finish(() => reject(new Error(`server exited before printing ${pattern}; output:\n${output}`)));
      };
      const timer = setTimeout(() => finish(() => reject(new Error(`no ${pattern} within ${timeoutMs} ms; output:\n${output}`))), timeoutMs);
      const finish = (settle: () => void) => {
        clearTimeout(timer);
        watchers.delete(check);
        settle();
      };
      watchers.add(check);
      check();
    });

  let stopped = false;
  const stop = async (signal: NodeJS.Signals = 'SIGINT') => {
    if (stopped) return;
    stopped = true;
    const tree = processTree(topPid);
    for (const pid of tree) {
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
    }
    const allGone = () => exited && tree.every((pid) => !isAlive(pid));
    if (!(await waitUntil(allGone, 5_000))) {
      for (const pid of processTree(topPid).concat(tree)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await exit;
      throw new Error(`the server did not stop within 5 s of ${signal}; output:\n${output}`);
    }
  };

  t?.after(() => stop().catch(() => undefined));
  const match = await waitForOutput(START_LINE, options.startTimeoutMs ?? 20_000).catch(async (error) => {
    await stop().catch(() => undefined);
    throw error;
  });
  const url = match[2]!;
  return { url, port: Number(new URL(url).port), pid: Number(match[3]), output: () => output, waitForOutput, stop };
}
