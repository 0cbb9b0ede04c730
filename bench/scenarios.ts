/**
 * bench/scenarios.ts: what is measured, and how.
 *
 *   keepalive  GET /index.html over 1, 10 and 100 keep-alive connections
 *   close      a new connection for every request (`Connection: close`), 10 at a time:
 *              what a process or a thread per connection really costs
 *   bigfile    a 64 MiB file to 4 clients at once: MiB/s
 *   c10k       N idle keep-alive connections held open; server memory per connection, and
 *              how fast a new client is still answered
 *
 * Between two steps the bench waits until the server is idle again.
 */
import type { ChildProcess } from 'node:child_process';
import { delay, exited, spawnChild, stopTree } from './children.ts';
import { getOnNewConnection } from './http-probe.ts';
import type { LoadGenerator, LoadResult } from './load.ts';
import type { PairedRow } from './paired.ts';
import { UsageWindow, openFdCount, processTree, steadyRssKiB, treePssKiB, treeUsage, waitForQuietMachine, waitUntilQuiet, type WindowUsage } from './proc.ts';
import type { RunningServer, ServerSpec } from './servers.ts';
import { BIG_FILE, REPO_ROOT, SMALL_PAGE, type Site } from './site.ts';

export const SCENARIOS = ['keepalive', 'close', 'bigfile', 'c10k'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];
export type LoadScenario = Exclude<ScenarioName, 'c10k'>;

export interface Settings {
  quick: boolean;
  /** Length of each measured load, in seconds. */
  seconds: number;
  warmupSeconds: number;
  keepAliveConnections: number[];
  closeConnections: number;
  bigFileConnections: number;
  idleLevels: number[];
  /** The CPU targets in alternation (bench/paired.ts): rounds, and seconds per turn. */
  pairedRounds: number;
  pairedSeconds: number;
}

export interface Step {
  server: ServerSpec;
  scenario: ScenarioName;
  /** Concurrent connections, or for c10k the idle connections to hold. */
  connections: number;
}

export interface LoadRow {
  server: string;
  scenario: LoadScenario;
  connections: number;
  load: LoadResult;
  usage: WindowUsage;
}

export interface IdleRow {
  server: string;
  requested: number;
  /** Below what was asked for because of the server's cap (see ServerSpec.cap). */
  capped: boolean;
  held: number;
  failed: number;
  notTried: number;
  failures: string;
  /** Held connections the server closed while we measured. */
  dropped: number;
  rssBeforeKiB: number;
  rssHeldKiB: number;
  rssPerConnectionKiB: number | null;
  pssPerConnectionKiB: number | null;
  processes: number;
  threads: number;
  openFds: number;
  /** Median time for a new client (connect, GET, whole response) while the others are held. */
  newClientMs: number | null;
  newClientFailures: string;
  /** What the server logged while it held the connections (its own explanation of a limit). */
  serverSaid: string[];
}

export interface Skip {
  server: string;
  scenario: ScenarioName | 'all';
  reason: string;
}

export interface Results {
  load: LoadRow[];
  idle: IdleRow[];
  /** The servers the CPU targets name, measured in alternation (absent in older results). */
  paired?: PairedRow[];
  skips: Skip[];
}

export interface RunContext {
  site: Site;
  settings: Settings;
  /** Waiting for other programs to calm down, and measuring again after they did not. */
  patience: Patience;
  generator: LoadGenerator;
  /** Tells the reader what runs now (called as each step, or a phase of it, begins). */
  progress(step: Step, detail: string): void;
  results: Results;
}

/** The steps for these servers and scenarios, and the ones that cannot be run (with why). */
export function planSteps(servers: ServerSpec[], scenarios: readonly ScenarioName[], settings: Settings): { steps: Step[]; skips: Skip[] } {
  const steps: Step[] = [];
  const skips: Skip[] = [];
  for (const server of servers) {
    const limit = server.cap?.connections ?? Infinity;
    for (const scenario of scenarios.filter((name) => server.only !== null && !server.only.scenarios.includes(name))) {
      skips.push({ server: server.id, scenario, reason: `not measured: ${server.only!.why}` });
    }
    const add = (scenario: ScenarioName, connections: number) => {
      if (connections <= limit) return steps.push({ server, scenario, connections });
      skips.push({ server: server.id, scenario, reason: `c=${connections} not measured, over its cap of ${limit}: ${server.cap!.why}` });
    };
    for (const scenario of scenarios.filter((name) => server.only === null || server.only.scenarios.includes(name))) {
      if (scenario === 'keepalive') settings.keepAliveConnections.forEach((count) => add(scenario, count));
      if (scenario === 'close') add(scenario, settings.closeConnections);
      if (scenario === 'bigfile') add(scenario, settings.bigFileConnections);
      if (scenario !== 'c10k') continue;
      if (server.kind === 'pool') {
        skips.push({ server: server.id, scenario, reason: `not measured: ${server.cap!.why}, so idle connections would take every worker` });
        continue;
      }
      // A capped model is measured once, at its cap less one: the new client timed after them
      // (see runIdleStep) is then within the cap too. 02 runs at most 100 connection threads
      // (its MAX_LIVE_THREADS): with 100 held, a 101st client would only wait in the listen queue.
      const levels = settings.idleLevels.map((level) => Math.min(level, limit - 1));
      [...new Set(levels)].forEach((level) => steps.push({ server, scenario, connections: level }));
    }
  }
  return { steps, skips };
}

/**
 * Run every step of one server. The load scenarios share one start (after a warm-up); each
 * c10k level gets a fresh start, so that its "before" is a clean baseline. --quick saves the
 * restarts: c10k comes first, and the load scenarios follow on the same start.
 */
export async function runServerSteps(server: ServerSpec, steps: Step[], context: RunContext): Promise<void> {
  const loadSteps = steps.filter((step) => step.scenario !== 'c10k');
  const idleSteps = steps.filter((step) => step.scenario === 'c10k');
  const sessions = context.settings.quick ? [[...idleSteps, ...loadSteps]] : [loadSteps, ...idleSteps.map((step) => [step])];
  for (const session of sessions.filter((each) => each.length > 0)) {
    await withServer(server, session, context, (running) => runSession(session, running, context));
  }
}

async function runSession(steps: Step[], running: RunningServer, context: RunContext): Promise<void> {
  const { settings, generator, results } = context;
  const first = steps[0]!;
  // The warm-up compiles the hot path, and grows the heap to its working size: without it,
  // the c10k "before" would be too small and every connection would look more expensive.
  if (!first.server.freshWorkerPerConnection) {
    context.progress(first, `warm-up ${settings.warmupSeconds} s`);
    await generator.run({ url: running.url + SMALL_PAGE.slice(1), connections: Math.min(10, first.server.cap?.connections ?? 10), seconds: settings.warmupSeconds, closeEachRequest: false, largeResponses: false });
  }
  for (const step of steps) {
    // A model with a process or thread per connection may still be starting them for
    // clients that already left: each step starts once the server has caught up, and
    // (for a while at most) once other programs leave the CPU alone.
    await waitUntilQuiet(running.pid, QUIET_WAIT_MS);
    if (!settings.quick) await context.patience.waitForQuietMachine(5000);
    if (step.scenario === 'c10k') {
      context.progress(step, `opening ${step.connections.toLocaleString('en')} connections`);
      results.idle.push(await runIdleStep(step, running, context));
    } else {
      context.progress(step, `${settings.seconds} s`);
      results.load.push(await measureLoad(step, running, context));
    }
  }
}

/** CPU that neither the server nor the generator used, in percent of a core. */
export function restOfMachine(row: LoadRow): number {
  return Math.max(0, row.usage.machineCpuPercent - row.usage.cpuPercent - row.load.generatorCpuPercent);
}

/** Above this, other programs may have skewed a measurement. */
export const DISTURBED_PERCENT = 50;

/**
 * A load step; when other programs were busy meanwhile, once more after they calm down
 * (a full run only), keeping the less disturbed of the two.
 */
async function measureLoad(step: Step, running: RunningServer, context: RunContext): Promise<LoadRow> {
  const first = await runLoadStep(step, running, context);
  if (context.settings.quick || restOfMachine(first) <= DISTURBED_PERCENT || !context.patience.left()) return first;
  context.progress(step, `again: other programs used ${Math.round(restOfMachine(first))}% of a core meanwhile`);
  await waitUntilQuiet(running.pid, QUIET_WAIT_MS);
  await context.patience.waitForQuietMachine(30_000);
  const measuring = Date.now();
  const second = await runLoadStep(step, running, context);
  context.patience.spend(Date.now() - measuring);
  return restOfMachine(second) < restOfMachine(first) ? second : first;
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

  /** proc.ts's waitForQuietMachine, for at most what is left of the patience. */
  async waitForQuietMachine(maxMs: number): Promise<void> {
    if (this.#leftMs <= 0) return;
    const started = Date.now();
    await waitForQuietMachine(Math.min(maxMs, this.#leftMs));
    this.spend(Date.now() - started);
  }
}

const QUIET_WAIT_MS = 60_000;

async function withServer(server: ServerSpec, steps: Step[], context: RunContext, body: (running: RunningServer) => Promise<void>): Promise<void> {
  let running: RunningServer;
  try {
    running = await server.launch(context.site);
  } catch (error) {
    const reason = `did not start: ${(error as Error).message}`;
    for (const scenario of new Set(steps.map((step) => step.scenario))) context.results.skips.push({ server: server.id, scenario, reason });
    return;
  }
  try {
    await body(running);
  } catch (error) {
    context.results.skips.push({ server: server.id, scenario: steps[0]!.scenario, reason: `failed: ${(error as Error).message}` });
  } finally {
    if ((await running.stop()) === 'killed') {
      context.results.skips.push({ server: server.id, scenario: 'all', reason: 'did not stop within 5 s of SIGINT and was killed (a bug to report)' });
    }
  }
}

async function runLoadStep(step: Step, running: RunningServer, context: RunContext): Promise<LoadRow> {
  const scenario = step.scenario as LoadScenario;
  const path = scenario === 'bigfile' ? BIG_FILE : SMALL_PAGE;
  const window = new UsageWindow(running.pid);
  const load = await context.generator.run({
    url: running.url + path.slice(1),
    connections: step.connections,
    seconds: context.settings.seconds,
    closeEachRequest: scenario === 'close',
    largeResponses: scenario === 'bigfile',
  });
  return { server: step.server.id, scenario, connections: step.connections, load, usage: window.stop() };
}

async function runIdleStep(step: Step, running: RunningServer, context: RunContext): Promise<IdleRow> {
  const { port, pid } = running;
  const rssBefore = await steadyRssKiB(pid);
  const pssBefore = treePssKiB(pid);
  const mark = running.outputMark();

  const holder = startHolder(port, step.connections, context.settings.quick);
  try {
    const ready = await readEvent(holder, 'ready', 300_000);
    // Every connection has had its answer, so the server did its work for them; a model that
    // polls (04) keeps using CPU while they are open, so do not wait for it to be idle.
    await delay(500);
    const rssHeld = await steadyRssKiB(pid);
    const pssHeld = treePssKiB(pid);
    const held = treeUsage(pid);
    const openFds = processTree(pid).reduce((total, { pid: member }) => total + openFdCount(member), 0);
    const newClient = await timeNewClients(port, context.settings.quick ? 3 : 5);
    holder.stdin!.write('status\n');
    const status = await readEvent(holder, 'status', 10_000);
    const count = Number(ready.held);
    const perConnection = (after: number, base: number) => (count > 0 ? (after - base) / count : null);
    return {
      server: step.server.id,
      requested: step.connections,
      capped: step.connections === (step.server.cap?.connections ?? 0) - 1,
      held: count,
      failed: Number(ready.failed),
      notTried: Number(ready.notTried),
      failures: describeCounts(ready.reasons as Record<string, number>),
      dropped: Number(status.dropped),
      rssBeforeKiB: rssBefore,
      rssHeldKiB: rssHeld,
      rssPerConnectionKiB: perConnection(rssHeld, rssBefore),
      pssPerConnectionKiB: perConnection(pssHeld, pssBefore),
      processes: held.processes,
      threads: held.threads,
      openFds,
      newClientMs: newClient.medianMs,
      newClientFailures: newClient.failures,
      serverSaid: [...new Set(running.outputSince(mark).map((line) => line.trim()).filter(Boolean))].slice(0, 3),
    };
  } finally {
    holder.stdin!.end();
    await Promise.race([exited(holder), delay(5000)]);
    await stopTree(holder, 0, 'SIGKILL');
  }
}

function startHolder(port: number, count: number, quick: boolean): ChildProcess {
  const args = ['--import', 'tsx', 'bench/hold-connections.ts', '--port', String(port), '--count', String(count)];
  // Long enough for a model that starts a process for each of them (capped at 100 or so).
  args.push('--timeout-ms', quick ? '30000' : '60000');
  return spawnChild(process.execPath, args, { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
}

/** The next JSON line with this `event` the holder prints. */
function readEvent(holder: ChildProcess, event: string, timeoutMs: number): Promise<Record<string, unknown>> {
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
    const onExit = () => finish(() => reject(new Error(`the connection holder exited: ${errors.trim().slice(0, 300)}`)));
    const timer = setTimeout(() => finish(() => reject(new Error(`the connection holder sent no '${event}' in ${timeoutMs / 1000} s`))), timeoutMs);
    const finish = (settle: () => void) => {
      clearTimeout(timer);
      holder.stdout!.off('data', onData);
      holder.stderr!.off('data', onError);
      holder.off('exit', onExit);
      settle();
    };
    holder.stdout!.on('data', onData);
    holder.stderr!.on('data', onError);
    holder.once('exit', onExit);
  });
}

function parseJson(line: string): Record<string, unknown> | null {
  try {
    return line.startsWith('{') ? (JSON.parse(line) as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

async function timeNewClients(port: number, tries: number): Promise<{ medianMs: number | null; failures: string }> {
  const times: number[] = [];
  const failures = new Map<string, number>();
  for (let i = 0; i < tries; i++) {
    try {
      const probe = await getOnNewConnection('127.0.0.1', port, SMALL_PAGE, 5000);
      probe.socket.destroy();
      times.push(probe.ms);
    } catch (error) {
      const reason = (error as Error).message;
      failures.set(reason, (failures.get(reason) ?? 0) + 1);
    }
  }
  times.sort((a, b) => a - b);
  return { medianMs: times.length > 0 ? times[Math.floor(times.length / 2)]! : null, failures: describeCounts(Object.fromEntries(failures)) };
}

function describeCounts(counts: Record<string, number>): string {
  return Object.entries(counts)
    .map(([what, count]) => `${count} ${what}`)
    .join(', ');
}
