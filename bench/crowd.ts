/**
 * bench/crowd.ts: the crowd scenario, the article's central claim measured. N keep-alive
 * connections have each made one request and now sit idle; beside them busy ones (wrk,
 * keep-alive) make requests, and the server's CPU time per request served tells what each idle
 * connection costs the busy ones. select() and polling look at every connection on every pass,
 * so their cost grows with N; epoll and io_uring hand back only the ready ones, so theirs
 * should not. Each level is measured under two loads (Settings.crowdLoads): one busy
 * connection, so that each pass serves one request and the cost per request is the cost of a
 * pass, and ten, which saturate the server and share each pass's cost among its requests.
 *
 * One start per server: a warm-up, then N climbs (the holder opens the ones missing at each
 * level) from 0 to the most the server can hold here: the descriptor limit (each held
 * connection takes a descriptor in the server and one in the holder), or its own limit below
 * that (ServerSpec.crowdLimit: select's descriptor 1024, nginx's worker_connections, and for
 * 04 the bench's time: 10,000, where one pass of its loop takes a tenth of a second). After
 * each measurement the holder says how many are still open: a server that dropped some would
 * look cheaper than it is, so the climb stops there, and the report says what stopped it.
 */
import { delay } from './children.ts';
import { startHolder, describeCounts, type Holder, type HolderReady } from './holder.ts';
import { descriptorLimit, treeFds, waitUntilQuiet } from './proc.ts';
import { busyConnections } from './report.ts';
import { measureCalmly, measureUnder, warmUp, withServer } from './session.ts';
import { SMALL_PAGE } from './site.ts';
import type { CrowdLoad, CrowdRow, RunContext, RunningServer, Scenario, ScenarioName, ServerSpec, Settings, Skip, Step } from './types.ts';

/**
 * Descriptors kept back from the limit: the server's own (Node holds about 30, nginx fewer),
 * the busy connections, and the holder's own (a Node process too).
 */
const DESCRIPTOR_RESERVE = 100;
/** A polling model (04) never goes quiet while it holds connections: wait at most this long. */
const POLLING_QUIET_WAIT_MS = 3000;
/** One held connection's GET may take this long before it counts as failed. */
const OPEN_TIMEOUT_MS = 20_000;

/** The most idle connections the scenario asks of a server, and what sets that number. */
interface Top {
  connections: number;
  why: string;
}

function topOf(server: ServerSpec, settings: Settings): Top {
  const highest = Math.max(...settings.crowdLevels);
  const limit = descriptorLimit();
  let top = { connections: highest, why: `the scenario's highest level (${highest.toLocaleString('en')})` };
  if (limit - DESCRIPTOR_RESERVE < top.connections) {
    top = {
      connections: limit - DESCRIPTOR_RESERVE,
      why: `the descriptor limit: RLIMIT_NOFILE ${limit.toLocaleString('en')} here, and each held connection takes a descriptor in the server and one in the client holding it (${DESCRIPTOR_RESERVE} kept back for the server's own and the busy connections)`,
    };
  }
  const own = server.crowdLimit;
  if (own?.connections !== undefined && own.connections < top.connections) top = { connections: own.connections, why: own.why };
  // A descriptor-number limit (select's) is applied at the start, from the descriptors the server then holds.
  if (own?.descriptorsBelow !== undefined && own.descriptorsBelow < top.connections) top = { connections: own.descriptorsBelow, why: own.why };
  return top;
}

function plan(server: ServerSpec, names: readonly ScenarioName[], settings: Settings): { steps: Step[]; skips: Skip[] } {
  if (!names.includes('crowd')) return { steps: [], skips: [] };
  const skip = (reason: string) => ({ steps: [], skips: [{ server: server.id, scenario: 'crowd' as const, reason: `not measured: ${reason}` }] });
  if (server.only !== null && !server.only.scenarios.includes('crowd')) return skip(server.only.why);
  if (server.cap !== null) return skip(`${server.cap.why}: it is capped at ${server.cap.connections} connections, so it cannot hold a crowd`);
  const top = topOf(server, settings);
  const levels = [...new Set(settings.crowdLevels.map((level) => Math.min(level, top.connections)))].sort((a, b) => a - b);
  // The last step measures N = 0 again, once the idle connections are closed (see climb).
  const steps: Step[] = [...levels, 0].map((connections) => ({ server, scenario: 'crowd', connections }));
  return { steps, skips: [] };
}

async function runServer(server: ServerSpec, steps: Step[], context: RunContext): Promise<void> {
  const results = context.results;
  results.crowd ??= [];
  results.crowdReach ??= [];
  let stoppedBy: string | null = null;
  await withServer(server, steps, context, async (running) => {
    stoppedBy = await climb(steps, running, context);
  });
  const rows = results.crowd.filter((row) => row.server === server.id);
  const highest = Math.max(0, ...rows.map((row) => row.held));
  const failed = results.skips.find((skip) => skip.server === server.id && skip.scenario === 'crowd');
  results.crowdReach.push({ server: server.id, highest, stoppedBy: stoppedBy ?? failed?.reason ?? 'no measurement' });
}

/** Every level in turn, on one start of the server; returns what stopped the climb. */
async function climb(steps: Step[], running: RunningServer, context: RunContext): Promise<string> {
  const { settings } = context;
  const { server } = steps[0]!;
  const top = topOf(server, settings); // as plan() worked it out (once per server, not per step)
  await warmUp(steps[0]!, running, context);
  const fdsAtStart = treeFds(running.pid);
  // select() watches descriptor numbers below 1024, and the kernel gives each new connection
  // the lowest free number: what the server holds at start, and the busy connections, come first.
  const below = server.crowdLimit?.descriptorsBelow;
  const most = below === undefined ? top.connections : below - fdsAtStart - busiest(settings) - 2;
  const crowd: { holder: Holder | null } = { holder: null };
  let stoppedBy: string;
  try {
    stoppedBy = await climbLevels(steps.slice(0, -1), running, context, crowd, most);
  } finally {
    await crowd.holder?.stop();
  }
  // Once more with none, now that the idle connections are closed: a second baseline, taken
  // minutes after the first. The claims use the less disturbed of the two (other programs on
  // a shared machine can make one measurement cheaper or dearer than it is).
  if (crowd.holder !== null) {
    const deadline = Date.now() + 10_000;
    while (treeFds(running.pid) > fdsAtStart + 2 && Date.now() < deadline) await delay(100);
    await waitUntilQuiet(running.pid, POLLING_QUIET_WAIT_MS);
    if (!settings.quick) await context.patience.waitForQuietMachine(5000);
    const again = steps.at(-1)!;
    for (const load of settings.crowdLoads) {
      context.progress(again, `none again, the idle connections closed; ${describeLoad(load)}`);
      const row = await measureCalmly(again, running, context, () => measureLevel(again, load, running, null, context), POLLING_QUIET_WAIT_MS);
      context.results.crowd!.push({ ...row, again: true });
    }
  }
  if (stoppedBy !== '') return stoppedBy;
  if (below === undefined || most >= top.connections) return top.why;
  return `${server.crowdLimit!.why}: ${most.toLocaleString('en')} idle beside the ${fdsAtStart} descriptors it held at start and the ${busiest(settings)} busy connections`;
}

/** The most busy connections of any load: they take descriptors beside the idle ones. */
function busiest(settings: Settings): number {
  return Math.max(...settings.crowdLoads.map((load) => load.active));
}

function describeLoad(load: CrowdLoad): string {
  return `${busyConnections(load.active)}, ${load.seconds} s`;
}

/** The levels in turn, opening the idle connections each needs; returns what stopped the climb ('' when nothing did). */
async function climbLevels(steps: Step[], running: RunningServer, context: RunContext, crowd: { holder: Holder | null }, most: number): Promise<string> {
  const { settings } = context;
  let measuredAt = -1;
  for (const step of steps) {
    const wanted = Math.min(step.connections, most);
    if (wanted === measuredAt) continue; // two levels above select's limit: both are its limit
    measuredAt = wanted;
    const planned = wanted === step.connections ? step : { ...step, connections: wanted };
    const mark = running.outputMark();
    if (wanted > 0) {
      context.progress(planned, `opening up to ${wanted.toLocaleString('en')} idle connections`);
      let ready: HolderReady;
      if (crowd.holder === null) {
        const started = startHolder(running.port, wanted, OPEN_TIMEOUT_MS);
        crowd.holder = started.holder;
        ready = await started.ready;
      } else {
        ready = await crowd.holder.growTo(wanted);
      }
      if (ready.held < wanted) {
        const said = running.outputSince(mark).map((line) => line.trim()).filter(Boolean).at(-1);
        const why = [describeCounts(ready.reasons), ready.dropped > 0 ? `${ready.dropped.toLocaleString('en')} closed by the server` : ''].filter(Boolean).join('; ');
        return `only ${ready.held.toLocaleString('en')} of ${wanted.toLocaleString('en')} held (${why})${said === undefined ? '' : `; the server said “${said}”`}`;
      }
    }
    await waitUntilQuiet(running.pid, POLLING_QUIET_WAIT_MS);
    if (!settings.quick) await context.patience.waitForQuietMachine(5000);
    for (const load of settings.crowdLoads) {
      context.progress(planned, describeLoad(load));
      const row = await measureCalmly(planned, running, context, () => measureLevel(planned, load, running, crowd.holder, context), POLLING_QUIET_WAIT_MS);
      context.results.crowd!.push(row);
      if (row.stillOpen < row.held) return `the server closed ${(row.held - row.stillOpen).toLocaleString('en')} of the ${row.held.toLocaleString('en')} idle connections during the measurement`;
    }
  }
  return '';
}

async function measureLevel(step: Step, { active, seconds }: CrowdLoad, running: RunningServer, holder: Holder | null, context: RunContext): Promise<CrowdRow> {
  const before = holder === null ? 0 : (await holder.status()).held;
  const measured = await measureUnder(running, context, { path: SMALL_PAGE, connections: active, seconds, closeEachRequest: false, largeResponses: false });
  const after = holder === null ? 0 : (await holder.status()).held;
  return { server: step.server.id, requested: step.connections, held: before, stillOpen: after, active, ...measured };
}

/** Idle connections held, and keep-alive loads beside them. */
export const crowdScenario: Scenario = { names: ['crowd'], plan, runServer };
