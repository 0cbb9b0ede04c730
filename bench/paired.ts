/**
 * bench/paired.ts: the CPU targets, measured in alternation.
 *
 * A CPU target compares two servers (06-epoll against the C ceiling, say). Measured in their
 * own steps, minutes apart, the two numbers meet different neighbours on a shared machine,
 * and the ratio moves with them. So the servers the targets name run at the same time (an
 * idle server costs nothing) and take turns under the same keep-alive load, a short
 * measurement each, round after round. A target's ratio is the median, over the rounds, of
 * the ratio within a round.
 */
import { waitUntilQuiet } from './proc.ts';
import { measureUnder, stopServer } from './session.ts';
import { SMALL_PAGE } from './site.ts';
import type { PairedRow, RunContext, RunningServer, ServerSpec, Step } from './types.ts';

/** Keep-alive connections of every turn: the headline concurrency the targets name. */
const PAIRED_CONNECTIONS = 100;

/**
 * Median over the rounds where both answered of mine ÷ theirs, with each side's median and the
 * lowest and highest ratio of a single round (how far one round alone could mislead); null
 * when fewer than two such rounds.
 */
export function pairedRatio(
  mine: PairedRow,
  theirs: PairedRow,
): { ratio: number; mine: number; theirs: number; rounds: number; lowest: number; highest: number } | null {
  const ratios: number[] = [];
  const mineValues: number[] = [];
  const theirValues: number[] = [];
  mine.microsPerRequest.forEach((value, round) => {
    const other = theirs.microsPerRequest[round];
    if (value == null || other == null || other <= 0) return;
    ratios.push(value / other);
    mineValues.push(value);
    theirValues.push(other);
  });
  if (ratios.length < 2) return null;
  return {
    ratio: median(ratios),
    mine: median(mineValues),
    theirs: median(theirValues),
    rounds: ratios.length,
    lowest: Math.min(...ratios),
    highest: Math.max(...ratios),
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** The progress line's steps for these servers: one per server and round. */
export function pairedSteps(servers: ServerSpec[], rounds: number): Step[] {
  return Array.from({ length: rounds }, () => servers.map((server) => ({ server, scenario: 'keepalive' as const, connections: PAIRED_CONNECTIONS }))).flat();
}

/** Start every server, warm each up, then load them in turn for `rounds` rounds; stop them all. */
export async function measureInAlternation(steps: Step[], context: RunContext): Promise<PairedRow[]> {
  const { settings, generator, results } = context;
  const servers = [...new Set(steps.map((step) => step.server))];
  const running = new Map<ServerSpec, RunningServer>();
  const rows = new Map<ServerSpec, PairedRow>();
  try {
    for (const server of servers) {
      try {
        const started = await server.launch(context.site);
        running.set(server, started);
        rows.set(server, { server: server.id, microsPerRequest: [] });
        await generator.run({ url: started.url + SMALL_PAGE.slice(1), connections: PAIRED_CONNECTIONS, seconds: settings.warmupSeconds, closeEachRequest: false, largeResponses: false });
      } catch (error) {
        results.skips.push({ server: server.id, scenario: 'keepalive', reason: `targets in alternation: did not start: ${(error as Error).message}` });
      }
    }
    for (const step of steps) {
      const server = running.get(step.server);
      if (server === undefined) continue;
      context.progress(step, `targets in alternation, ${settings.pairedSeconds} s`);
      await waitUntilQuiet(server.pid, 10_000);
      const { load, usage } = await measureUnder(server, context, { path: SMALL_PAGE, connections: PAIRED_CONNECTIONS, seconds: settings.pairedSeconds, closeEachRequest: false, largeResponses: false });
      rows.get(step.server)!.microsPerRequest.push(load.requests > 0 ? (usage.cpuSeconds * 1e6) / load.requests : null);
    }
  } finally {
    for (const [server, started] of running) await stopServer(server, started, results);
  }
  return [...rows.values()];
}
