/**
 * bench/scenarios.ts: the base scenarios, what they measure, and how (the crowd scenario is
 * bench/crowd.ts's, slowloris bench/slowloris.ts's).
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
import { delay } from './children.ts';
import { getOnNewConnection } from './http-probe.ts';
import { describeCounts, startHolder } from './holder.ts';
import { steadyRssKiB, treeFds, treePssKiB, treeUsage, waitUntilQuiet } from './proc.ts';
import { QUIET_WAIT_MS, measureCalmly, measureUnder, warmUp, withServer } from './session.ts';
import { BIG_FILE, SMALL_PAGE } from './site.ts';
import type { IdleRow, LoadRow, LoadScenario, RunContext, RunningServer, Scenario, ScenarioName, ServerSpec, Settings, Skip, Step } from './types.ts';

/** The steps for this server and these scenarios, and the ones that cannot be run (with why). */
function plan(server: ServerSpec, scenarios: readonly ScenarioName[], settings: Settings): { steps: Step[]; skips: Skip[] } {
  const steps: Step[] = [];
  const skips: Skip[] = [];
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
  return { steps, skips };
}

/**
 * Run every step of one server. The load scenarios share one start (after a warm-up); each
 * c10k level gets a fresh start, so that its "before" is a clean baseline. --quick saves the
 * restarts: c10k comes first, and the load scenarios follow on the same start.
 */
async function runServer(server: ServerSpec, steps: Step[], context: RunContext): Promise<void> {
  const loadSteps = steps.filter((step) => step.scenario !== 'c10k');
  const idleSteps = steps.filter((step) => step.scenario === 'c10k');
  const sessions = context.settings.quick ? [[...idleSteps, ...loadSteps]] : [loadSteps, ...idleSteps.map((step) => [step])];
  for (const session of sessions.filter((each) => each.length > 0)) {
    await withServer(server, session, context, (running) => runSession(session, running, context));
  }
}

async function runSession(steps: Step[], running: RunningServer, context: RunContext): Promise<void> {
  const { settings, results } = context;
  // Without the warm-up the c10k "before" would be too small, and every connection would
  // look more expensive.
  await warmUp(steps[0]!, running, context);
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
      results.load.push(await measureCalmly(step, running, context, () => runLoadStep(step, running, context)));
    }
  }
}

async function runLoadStep(step: Step, running: RunningServer, context: RunContext): Promise<LoadRow> {
  const scenario = step.scenario as LoadScenario;
  const measured = await measureUnder(running, context, {
    path: scenario === 'bigfile' ? BIG_FILE : SMALL_PAGE,
    connections: step.connections,
    seconds: context.settings.seconds,
    closeEachRequest: scenario === 'close',
    largeResponses: scenario === 'bigfile',
  });
  return { server: step.server.id, scenario, connections: step.connections, ...measured };
}

async function runIdleStep(step: Step, running: RunningServer, context: RunContext): Promise<IdleRow> {
  const { port, pid } = running;
  const rssBefore = await steadyRssKiB(pid);
  const pssBefore = treePssKiB(pid);
  const mark = running.outputMark();

  // Long enough for a model that starts a process for each of them (capped at 100 or so).
  const { holder, ready: holding } = startHolder(port, step.connections, context.settings.quick ? 30_000 : 60_000);
  try {
    const ready = await holding;
    // Every connection has had its answer, so the server did its work for them; a model that
    // polls (04) keeps using CPU while they are open, so do not wait for it to be idle.
    await delay(500);
    const rssHeld = await steadyRssKiB(pid);
    const pssHeld = treePssKiB(pid);
    const held = treeUsage(pid);
    const openFds = treeFds(pid);
    const newClient = await timeNewClients(port, context.settings.quick ? 3 : 5);
    const status = await holder.status();
    const count = ready.held;
    const perConnection = (after: number, base: number) => (count > 0 ? (after - base) / count : null);
    return {
      server: step.server.id,
      requested: step.connections,
      capped: step.connections === (step.server.cap?.connections ?? 0) - 1,
      held: count,
      failed: ready.failed,
      notTried: ready.notTried,
      failures: describeCounts(ready.reasons),
      dropped: status.dropped,
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
    await holder.stop();
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

/** keepalive, close and bigfile share a server start; each c10k level gets one of its own. */
export const baseScenarios: Scenario = { names: ['keepalive', 'close', 'bigfile', 'c10k'], plan, runServer };
