/**
 * bench/holder.ts: driving bench/hold-connections.ts, the child process that opens idle
 * keep-alive connections to a server and holds them (the c10k and crowd scenarios): start it,
 * ask it for more connections or for how many are still open, and read its answers.
 */
import type { ChildProcess } from 'node:child_process';
import { delay, exited, spawnChild, stopTree } from './children.ts';
import { REPO_ROOT } from './site.ts';

/** What the holder says once every connection asked for is held or has failed. */
export interface HolderReady {
  held: number;
  failed: number;
  notTried: number;
  /** Held connections the server closed so far. */
  dropped: number;
  reasons: Record<string, number>;
}

export interface Holder {
  /** Hold `total` connections in all (opening the ones still missing); resolves when done. */
  growTo(total: number): Promise<HolderReady>;
  /** Connections still open, and how many the server closed so far. */
  status(): Promise<{ held: number; dropped: number }>;
  /** Close every connection and end the holder. */
  stop(): Promise<void>;
}

/**
 * Start a holder for `port` with `count` connections. `timeoutMs` bounds one connection's
 * GET: long enough for a model that starts a process for each (capped at 100 or so).
 */
export function startHolder(port: number, count: number, timeoutMs: number): { holder: Holder; ready: Promise<HolderReady> } {
  const args = ['--import', 'tsx', 'bench/hold-connections.ts', '--port', String(port), '--count', String(count), '--timeout-ms', String(timeoutMs)];
  const child = spawnChild(process.execPath, args, { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  const ready = readEvent(child, 'ready', 300_000) as Promise<unknown> as Promise<HolderReady>;
  const holder: Holder = {
    growTo(total) {
      const answer = readEvent(child, 'ready', 300_000);
      child.stdin!.write(`grow ${total}\n`);
      return answer as Promise<unknown> as Promise<HolderReady>;
    },
    async status() {
      const { held, dropped } = await askStatus(child);
      return { held: Number(held), dropped: Number(dropped) };
    },
    stop: () => endChild(child),
  };
  return { holder, ready };
}

/** Ask a child of the bench (the holder, the trickler) for its status line. */
export function askStatus(child: ChildProcess): Promise<Record<string, unknown>> {
  const answer = readEvent(child, 'status', 10_000);
  child.stdin!.write('status\n');
  return answer;
}

/** End a child of the bench: its stdin closed, it has 5 s to close its connections and exit, then it is killed. */
export async function endChild(child: ChildProcess): Promise<void> {
  child.stdin!.end();
  await Promise.race([exited(child), delay(5000)]);
  await stopTree(child, 0, 'SIGKILL');
}

/** The next JSON line with this `event` a child of the bench (the holder, the trickler) prints. */
export function readEvent(child: ChildProcess, event: string, timeoutMs: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    let errors = '';
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        const message = parseJson(line);
        if (message?.event === event) return finish(() => resolve(message));
      }
    };
    const onError = (chunk: Buffer) => (errors += chunk.toString());
    const onExit = () => finish(() => reject(new Error(`the bench's child exited: ${errors.trim().slice(0, 300)}`)));
    const timer = setTimeout(() => finish(() => reject(new Error(`the bench's child sent no '${event}' in ${timeoutMs / 1000} s`))), timeoutMs);
    const finish = (settle: () => void) => {
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      child.stderr!.off('data', onError);
      child.off('exit', onExit);
      settle();
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onError);
    child.once('exit', onExit);
  });
}

function parseJson(line: string): Record<string, unknown> | null {
  try {
    return line.startsWith('{') ? (JSON.parse(line) as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** "12 ECONNRESET, 3 status 503": what went wrong, and how often. */
export function describeCounts(counts: Record<string, number>): string {
  return Object.entries(counts)
    .map(([what, count]) => `${count} ${what}`)
    .join(', ');
}
