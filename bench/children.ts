/**
 * bench/children.ts: starting and stopping the processes the bench runs (servers, load
 * generators, the idle-connection holder), and stopping all of them on Ctrl+C or a crash.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { isRunning, processTree } from './proc.ts';

/** Spawn with stdout and stderr piped (stdin ignored unless `options` says otherwise). */
export function spawnChild(command: string, args: string[], options: SpawnOptions = {}): ChildProcess {
  return spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
}

/** Resolves with the exit code (or the signal's name) once the child has exited. */
export function exited(child: ChildProcess): Promise<number | string> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode ?? child.signalCode!);
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
    child.once('error', () => resolve('spawn failed'));
  });
}

/** Send `signal` to `pid` and every descendant, children first seen in the same /proc scan. */
export function signalTree(pid: number, signal: NodeJS.Signals): number[] {
  const pids = processTree(pid).map((stat) => stat.pid);
  for (const member of pids) {
    try {
      process.kill(member, signal);
    } catch {
      // already gone
    }
  }
  return pids;
}

/**
 * Stop a child the way Ctrl+C does (SIGINT to its whole tree); SIGKILL whatever is left after
 * `graceMs`. Resolves with how it ended.
 */
export async function stopTree(child: ChildProcess, graceMs = 5000, signal: NodeJS.Signals = 'SIGINT'): Promise<'stopped' | 'killed'> {
  if (child.pid === undefined) return 'stopped';
  const pids = signalTree(child.pid, signal);
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && pids.some(isRunning)) await delay(25);
  const left = pids.filter(isRunning);
  if (left.length > 0) {
    for (const pid of new Set([...left, ...signalTree(child.pid, 'SIGKILL')])) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  await exited(child);
  return left.length > 0 ? 'killed' : 'stopped';
}

/**
 * On Ctrl+C or a crash: kill every process the bench started, and theirs, synchronously (one
 * scan of /proc: a signal handler has little time under tsx, which kills a slow child).
 */
export function killEverything(): void {
  for (const { pid } of processTree(process.pid).slice(1)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
