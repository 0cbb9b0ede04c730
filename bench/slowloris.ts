/**
 * bench/slowloris.ts: the slowloris scenario, the lesson of issue 19 measured. K connections
 * send their request heads one byte a second and never finish them (bench/trickle.ts, which
 * opens a new one whenever the server closes one, as a real attacker would); beside them a
 * normal keep-alive load (wrk, a few connections) and a new client every half second ask for
 * a small page. The server runs with a short --request-timeout (nginx: client_header_timeout),
 * so one window shows both the starvation and its end at the deadline.
 *
 * K is past each model's capacity: past --max-clients for 01 and 02 (a process or a thread per
 * connection), past descriptor 1023 for 05 (select's FD_SETSIZE), thousands for the others.
 */
import { delay, spawnChild } from './children.ts';
import { askStatus, endChild, readEvent } from './holder.ts';
import { getOnNewConnection } from './http-probe.ts';
import { descriptorLimit } from './proc.ts';
import { NORMAL_LOAD_CONNECTIONS } from './report.ts';
import { withServer } from './session.ts';
import { REPO_ROOT, SMALL_PAGE } from './site.ts';
import type { LaunchOptions, RunContext, Scenario, ScenarioName, ServerSpec, Settings, SlowRow, Step } from './types.ts';

/** A new client this often, beside the load: how long a newcomer waits. */
const NEWCOMER_EVERY_MS = 500;
/** Servers with neither a process cap nor select's limit: thousands of trickling connections. */
const MANY = { full: 3000, quick: 1100 };
/** Past descriptor 1023: select() watches descriptors 0 to 1023 only. */
const PAST_SELECT = 1100;
/** Descriptors kept back from the limit for the server's own and the normal load's (the server and the trickler each hold one per trickling connection). */
const DESCRIPTORS_KEPT = 200;

/** The servers this lesson is about: the seven models (their pools are fixed counts) and nginx. */
function inScope(server: ServerSpec): boolean {
  return server.kind === 'model' || server.id === 'nginx';
}

/** How many trickle. */
function tricklersFor(server: ServerSpec, settings: Settings): number {
  // 01 and 02: half as many again as the bench's cap for them.
  if (server.cap !== null) return Math.ceil(server.cap.connections * 1.5);
  const many = server.crowdLimit?.descriptorsBelow !== undefined ? PAST_SELECT : settings.quick ? MANY.quick : MANY.full;
  return Math.min(many, descriptorLimit() - DESCRIPTORS_KEPT);
}

/** How the server is started for it: the short request deadline, and 01 and 02 at the bench's cap for them. */
function launchFor(server: ServerSpec, settings: Settings): LaunchOptions {
  const launch: LaunchOptions = { requestTimeoutSeconds: settings.slowRequestTimeout };
  return server.cap === null ? launch : { ...launch, maxClients: server.cap.connections };
}

function plan(server: ServerSpec, names: readonly ScenarioName[], settings: Settings): { steps: Step[]; skips: [] } {
  if (!names.includes('slowloris') || !inScope(server)) return { steps: [], skips: [] };
  return { steps: [{ server, scenario: 'slowloris', connections: tricklersFor(server, settings) }], skips: [] };
}

async function runServer(server: ServerSpec, steps: Step[], context: RunContext): Promise<void> {
  const step = steps[0]!;
  const tricklers = step.connections;
  const launch = launchFor(server, context.settings);
  const launching = { ...server, launch: (site: Parameters<ServerSpec['launch']>[0]) => server.launch(site, launch) };
  await withServer(launching, steps, context, async (running) => {
    const { settings } = context;
    context.progress(step, `opening ${tricklers.toLocaleString('en')} trickling connections`);
    const args = ['--import', 'tsx', 'bench/trickle.ts', '--port', String(running.port), '--count', String(tricklers)];
    const child = spawnChild(process.execPath, args, { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    try {
      const ready = await readEvent(child, 'ready', 120_000);
      context.progress(step, `a normal load for ${settings.slowSeconds} s (request deadline ${settings.slowRequestTimeout} s)`);
      const windowMs = settings.slowSeconds * 1000;
      const [load, newcomers] = await Promise.all([
        context.generator.run({ url: running.url + SMALL_PAGE.slice(1), connections: NORMAL_LOAD_CONNECTIONS, seconds: settings.slowSeconds, closeEachRequest: false, largeResponses: false }),
        newcomersDuring(running.port, windowMs),
      ]);
      const after = await askStatus(child).catch(() => null);
      const answered = load.requests - load.non2xx;
      const row: SlowRow = {
        server: server.id,
        tricklers,
        requestTimeout: settings.slowRequestTimeout,
        openAtStart: Number(ready.open),
        closes: (after?.closes ?? {}) as Record<string, number>,
        load,
        attempted: load.requests + load.errors - load.non2xx,
        answered,
        newcomers,
      };
      (context.results.slowloris ??= []).push(row);
    } finally {
      await endChild(child);
    }
  });
}

/** A new client (connect, GET, whole answer) every half second of the window; each may wait until the window ends. */
async function newcomersDuring(port: number, windowMs: number): Promise<SlowRow['newcomers']> {
  const started = performance.now();
  const tries: Promise<SlowRow['newcomers'][number]>[] = [];
  while (performance.now() - started < windowMs - NEWCOMER_EVERY_MS) {
    const sentAtMs = performance.now() - started;
    const waitMs = Math.max(1000, windowMs - sentAtMs);
    tries.push(
      getOnNewConnection('127.0.0.1', port, SMALL_PAGE, waitMs).then(
        (answer) => {
          answer.socket.destroy();
          return { sentAtMs, waitedMs: answer.status === 200 ? answer.ms : null, outcome: String(answer.status) };
        },
        (error: Error) => ({ sentAtMs, waitedMs: null, outcome: error.message }),
      ),
    );
    await delay(NEWCOMER_EVERY_MS);
  }
  return Promise.all(tries);
}

/** Slow clients trickling their heads, beside a normal load. */
export const slowlorisScenario: Scenario = { names: ['slowloris'], plan, runServer };
