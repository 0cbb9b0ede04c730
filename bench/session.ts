/**
 * bench/session.ts: what every scenario does with a server: start it (and stop it, whatever
 * happens), warm it up, and measure it under a load, once more when other programs disturbed
 * the measurement.
 */
import type { LoadResult, LoadSpec } from './load.ts';
import { UsageWindow, waitUntilQuiet, type WindowUsage } from './proc.ts';
import { SMALL_PAGE } from './site.ts';
import type { Results, RunContext, RunningServer, ServerSpec, Step } from './types.ts';

/** A load, and what the server's process tree used while it ran. */
export interface Measured {
  load: LoadResult;
  usage: WindowUsage;
}

/** CPU that neither the server nor the generator used, in percent of a core. */
export function restOfMachine(row: Measured): number {
  return Math.max(0, row.usage.machineCpuPercent - row.usage.cpuPercent - row.load.generatorCpuPercent);
}

/** Above this, other programs may have skewed a measurement. */
export const DISTURBED_PERCENT = 50;

/** Longest wait for a server to finish what earlier steps left it (see waitUntilQuiet). */
export const QUIET_WAIT_MS = 60_000;

/** Start `server`, run `body`, stop it; a server that fails to start or stop is a skip with why. */
export async function withServer(server: ServerSpec, steps: Step[], context: RunContext, body: (running: RunningServer) => Promise<void>): Promise<void> {
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
    await stopServer(server, running, context.results);
  }
}

/** Stop `running`; one that had to be killed is a skip (a bug to report). */
export async function stopServer(server: ServerSpec, running: RunningServer, results: Results): Promise<void> {
  if ((await running.stop()) === 'killed') results.skips.push({ server: server.id, scenario: 'all', reason: 'did not stop within 5 s of SIGINT and was killed (a bug to report)' });
}

/**
 * The warm-up compiles the hot path, and grows the heap to its working size: without it, the
 * first measurement would pay for both. A server with a fresh worker per connection skips it.
 */
export async function warmUp(step: Step, running: RunningServer, context: RunContext): Promise<void> {
  if (step.server.freshWorkerPerConnection) return;
  context.progress(step, `warm-up ${context.settings.warmupSeconds} s`);
  const connections = Math.min(10, step.server.cap?.connections ?? 10);
  await context.generator.run({ url: running.url + SMALL_PAGE.slice(1), connections, seconds: context.settings.warmupSeconds, closeEachRequest: false, largeResponses: false });
}

/** One load on `running`, with the CPU its process tree used meanwhile. */
export async function measureUnder(running: RunningServer, context: RunContext, spec: Omit<LoadSpec, 'url'> & { path: string }): Promise<Measured> {
  const window = new UsageWindow(running.pid);
  const { path, ...rest } = spec;
  const load = await context.generator.run({ url: running.url + path.slice(1), ...rest });
  return { load, usage: window.stop() };
}

/**
 * `measure` once; when other programs were busy meanwhile, once more after they calm down
 * (a full run only, while the run's patience lasts), keeping the less disturbed of the two.
 */
export async function measureCalmly<Row extends Measured>(step: Step, running: RunningServer, context: RunContext, measure: () => Promise<Row>, quietWaitMs = QUIET_WAIT_MS): Promise<Row> {
  const first = await measure();
  if (context.settings.quick || restOfMachine(first) <= DISTURBED_PERCENT || !context.patience.left()) return first;
  context.progress(step, `again: other programs used ${Math.round(restOfMachine(first))}% of a core meanwhile`);
  await waitUntilQuiet(running.pid, quietWaitMs);
  await context.patience.waitForQuietMachine(30_000);
  const measuring = Date.now();
  const second = await measure();
  context.patience.spend(Date.now() - measuring);
  return restOfMachine(second) < restOfMachine(first) ? second : first;
}
