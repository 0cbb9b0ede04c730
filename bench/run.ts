/**
 * bench/run.ts: `npm run bench`. The article's claims as measured numbers: the models, their
 * pool variants and the references (node:http; nginx with one worker, as it comes and with
 * open_file_cache; a C epoll loop, the ceiling) side by side, in one run on one machine.
 *
 *   npm run bench                          everything (about 20 minutes on 2 cores; at most 3 more when busy)
 *   npm run bench -- --quick               nearly everything, briefly (about four minutes)
 *   npm run bench -- --model 06,05,03,nginx,c --scenario keepalive
 *   npm run bench -- --update-readme       copy the last results into both READMEs, redraw the figures
 *
 * Writes bench/results/latest.md (the report), latest.svg and zh/latest.svg (the chart, in
 * English and Chinese), crowd.svg and zh/crowd.svg (the crowd scenario's figure, likewise) and
 * latest.json (every number), and prints the tables; a full run also refreshes the summary in
 * README.md and README.zh-CN.md (bench/readme.ts) and the site's copies of the crowd figure
 * (www/images, www/images/zh). A partial run writes the same files into bench/results/partial/
 * instead (git ignores it). Progress goes to stderr.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { killEverything } from './children.ts';
import { CHART_FIGURE, renderCharts, writeInBothLanguages } from './chart.ts';
import { writeCrowdCharts } from './crowd-chart.ts';
import { chooseGenerator } from './load.ts';
import { FLOOR_FOR_SCALE, cpuTargets, describeMachine, toMarkdown, toTerminal, type BenchReport } from './report.ts';
import { PATIENCE_MS, Patience } from './proc.ts';
import { baseScenarios } from './scenarios.ts';
import { crowdScenario } from './crowd.ts';
import { slowlorisScenario } from './slowloris.ts';
import { measureInAlternation, pairedSteps } from './paired.ts';
import { measureSystemCallCost, pageTableIsolation } from './syscall-cost.ts';
import { updateReadmes } from './readme.ts';
import { MODELS, REFERENCE_IDS, discoverServers, type ServerChoices } from './servers.ts';
import { REPO_ROOT, prepareSite } from './site.ts';
import type { Results, Scenario, ScenarioName, ServerSpec, Settings, Skip, Step } from './types.ts';

/** Every scenario the bench knows, in the order a server meets them: a new one is a file and a line here. */
const SCENARIO_SETS: Scenario[] = [baseScenarios, crowdScenario, slowlorisScenario];
const SCENARIOS: ScenarioName[] = SCENARIO_SETS.flatMap((set) => [...set.names]);

const HELP = `npm run bench -- [options]

  --model NAME       only these servers (repeat, or a comma list): a number (${MODELS[0]!.number} … ${MODELS.at(-1)!.number}), a full
                     name such as 06-epoll, 01-pool / 02-pool (the --pool variants), or a reference:
                     ${REFERENCE_IDS.join(', ')}
                     (a name also picks those it prefixes: nginx is both nginx rows, c the C
                     ceiling, js the JS floor)
  --scenario NAME    only these scenarios: ${SCENARIOS.join(', ')}
  --quick            1 s measurements, keep-alive at 10 and 100 connections, 1,000 idle, no large file,
                     a crowd of 0 and 1,000, 01/02 capped at 10, c10k and the loads on one start,
                     slowloris with a 3 s request deadline and a 6 s window (about four minutes)
  --duration S       seconds per measurement, the crowd's two loads included (default 5, the crowd's
                     2 and 1; 1 with --quick); the slowloris window and the targets' turns keep theirs
  --pool N           workers for the --pool variants of 01 and 02 (default 16)
  --generator NAME   wrk or autocannon (default: wrk when on PATH)
  --out DIR          where latest.md, latest.svg, zh/latest.svg, crowd.svg, zh/crowd.svg and
                     latest.json go (default bench/results for a full run; bench/results/partial,
                     which git ignores, with --quick, --model, --scenario, --duration or --pool)
  --update-readme    measure nothing: copy the summary and targets of DIR/latest.json into
                     README.md and README.zh-CN.md, and redraw the chart and the crowd figures from
                     it; given alone, the crowd figures in www/images and www/images/zh as well
                     (a full run does all this by itself)
  --help             this text
`;

interface Options {
  models: string[];
  scenarios: ScenarioName[];
  settings: Settings;
  choices: ServerChoices;
  generator: 'wrk' | 'autocannon' | undefined;
  out: string;
  /** Every server and scenario at full length, into bench/results: its numbers go into the READMEs. */
  full: boolean;
  updateReadmeOnly: boolean;
}

function parseOptions(argv: string[]): Options {
  const { values } = readFlags(argv);
  if (values.help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  const list = (given: string[] | undefined) => (given ?? []).flatMap((item) => item.split(',')).map((item) => item.trim()).filter(Boolean);
  const scenarios = list(values.scenario);
  for (const scenario of scenarios) {
    if (!(SCENARIOS as string[]).includes(scenario)) usageError(`unknown scenario '${scenario}' (one of ${SCENARIOS.join(', ')})`);
  }
  if (values.generator !== undefined && values.generator !== 'wrk' && values.generator !== 'autocannon') usageError(`--generator is wrk or autocannon`);
  const quick = values.quick === true;
  const full = !quick && values.model === undefined && values.scenario === undefined && values.duration === undefined && values.pool === undefined && values.out === undefined;
  return {
    models: list(values.model),
    // --quick leaves out the large file (the slowest scenario, and the least surprising).
    scenarios: scenarios.length > 0 ? (scenarios as ScenarioName[]) : SCENARIOS.filter((name) => !quick || name !== 'bigfile'),
    settings: {
      quick,
      seconds: wholeNumber('--duration', values.duration, quick ? 1 : 5, 1, 600),
      warmupSeconds: quick ? 1 : 2,
      keepAliveConnections: quick ? [10, 100] : [1, 10, 100],
      closeConnections: 10,
      bigFileConnections: 4,
      idleLevels: quick ? [1000] : [1000, 10_000],
      pairedRounds: quick ? 2 : 9,
      pairedSeconds: quick ? 1 : 2,
      // Up to 20,000: the most the descriptor limit allows on most machines (bench/crowd.ts).
      crowdLevels: quick ? [0, 1000] : [0, 100, 300, 1000, 10_000, 20_000],
      // One busy connection (each pass of a loop serves one request: the claims read this load),
      // then ten, which saturate the server (bench/crowd.ts). --duration sets both.
      crowdLoads: [
        { active: 1, seconds: wholeNumber('--duration', values.duration, quick ? 1 : 2, 1, 600) },
        { active: 10, seconds: wholeNumber('--duration', values.duration, 1, 1, 600) },
      ],
      // A request deadline short enough that one window shows the starvation and its end.
      slowRequestTimeout: quick ? 3 : 10,
      slowSeconds: quick ? 6 : 16,
    },
    choices: {
      poolSize: wholeNumber('--pool', values.pool, 16, 1, 256),
      processCap: quick ? 10 : 100,
      threadCap: quick ? 10 : 100,
    },
    generator: values.generator as Options['generator'],
    // Only a full run replaces the committed report (the one the READMEs quote); a partial run
    // writes beside it, into a folder git ignores, so that trying a part changes no tracked file.
    out: path.resolve(values.out ?? path.join(REPO_ROOT, 'bench', 'results', ...(full ? [] : ['partial']))),
    full,
    updateReadmeOnly: values['update-readme'] === true,
  };
}

function readFlags(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      options: {
        model: { type: 'string', multiple: true },
        scenario: { type: 'string', multiple: true },
        quick: { type: 'boolean' },
        duration: { type: 'string' },
        pool: { type: 'string' },
        generator: { type: 'string' },
        out: { type: 'string' },
        'update-readme': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    usageError((error as Error).message.split('. ')[0]!); // "Unknown option '--bogus'"
  }
}

function wholeNumber(flag: string, text: string | undefined, fallback: number, min: number, max: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < min || value > max) usageError(`${flag} wants a whole number from ${min} to ${max}`);
  return value;
}

function usageError(message: string): never {
  process.stderr.write(`bench: ${message} (see --help)\n`);
  process.exit(2);
}

/** For each server, each scenario set's steps (and skips) among the scenarios asked for. */
function planEverything(servers: ServerSpec[], names: readonly ScenarioName[], settings: Settings): { server: ServerSpec; set: Scenario; steps: Step[]; skips: Skip[] }[] {
  return servers.flatMap((server) =>
    SCENARIO_SETS.map((set) => ({ server, set, ...set.plan(server, names.filter((name) => set.names.includes(name)), settings) })),
  );
}

/** `--model 01` picks 01-multiprocess and 01-pool; `--model 06-epoll` just that one. */
function selected(id: string, selectors: string[]): boolean {
  return selectors.length === 0 || selectors.some((selector) => id === selector || id.startsWith(`${selector}-`));
}

/** One line on stderr per step (rewritten in place on a terminal). */
function progressReporter(total: number): (step: Step, detail: string) => void {
  const started = Date.now();
  let done = 0;
  let last: Step | null = null;
  return (step, detail) => {
    if (last !== null && step !== last) done += 1;
    last = step;
    const elapsed = Math.round((Date.now() - started) / 1000);
    const clock = `${Math.floor(elapsed / 60)}:${String(elapsed % 60).padStart(2, '0')}`;
    const what = step.scenario === 'c10k' || step.scenario === 'crowd' ? `${step.scenario} ${step.connections.toLocaleString('en')} idle` : step.scenario === 'slowloris' ? `slowloris ${step.connections.toLocaleString('en')} trickling` : `${step.scenario} c=${step.connections}`;
    const line = `[${String(done + 1).padStart(String(total).length)}/${total} ${clock}] ${step.server.label} · ${what} · ${detail}`;
    process.stderr.write(process.stderr.isTTY ? `\r\x1b[K${line}` : `${line}\n`);
  };
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const options = parseOptions(argv);
  if (options.updateReadmeOnly) return updateReadmesFrom(options.out, options.full);
  const generator = chooseGenerator(options.generator);
  const wanted = (id: string) => selected(id, options.models);
  const { servers: found, skipped: notFound } = await discoverServers(options.choices, wanted);
  const servers = found.filter((server) => wanted(server.id));
  const skipped = notFound.filter((skip) => wanted(skip.id));
  if (servers.length === 0 && skipped.length === 0) usageError(`no server matches --model ${options.models.join(',')} (names: ${MODELS.map((model) => model.number).join(', ')}, 01-pool, 02-pool, ${REFERENCE_IDS.join(', ')})`);
  for (const skip of skipped) process.stderr.write(`bench: skipping ${skip.id}: ${skip.reason}\n`);

  const plans = planEverything(servers, options.scenarios, options.settings);
  const steps = plans.flatMap((plan) => plan.steps);
  const results: Results = { load: [], idle: [], paired: [], skips: plans.flatMap((plan) => plan.skips) };
  // The servers the CPU targets name, once more, taking turns (bench/paired.ts).
  const present = new Set(servers.map((server) => server.id));
  const pairs = cpuTargets(servers).filter((target) => present.has(target.server) && present.has(target.reference));
  const targetIds = new Set(pairs.flatMap((target) => [target.server, target.reference]));
  // The JS floor takes its turns too, when it is in the run: the ratio no model can beat (report.ts).
  if (present.has(FLOOR_FOR_SCALE.reference) && present.has(FLOOR_FOR_SCALE.server)) {
    targetIds.add(FLOOR_FOR_SCALE.server).add(FLOOR_FOR_SCALE.reference);
  }
  const targetServers = servers.filter((server) => targetIds.has(server.id));
  const paired = options.scenarios.includes('keepalive') && targetServers.length >= 2 ? pairedSteps(targetServers, options.settings.pairedRounds) : [];
  const total = steps.length + paired.length;
  process.stderr.write(`bench: ${servers.length} servers, ${total} measurements, load generator ${generator.version}\n`);

  const site = prepareSite();
  const stopEverything = () => {
    killEverything();
    site.remove();
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      process.stderr.write(`\nbench: ${signal}: stopping every server and client it started\n`);
      stopEverything();
      process.exit(130);
    });
  }
  const startedAt = new Date();
  try {
    const patience = new Patience(PATIENCE_MS);
    const context = { site, settings: options.settings, patience, generator, progress: progressReporter(total), results };
    for (const server of servers) {
      for (const plan of plans.filter((each) => each.server === server && each.steps.length > 0)) await plan.set.runServer(server, plan.steps, context);
    }
    if (paired.length > 0) results.paired = await measureInAlternation(paired, context);
  } finally {
    stopEverything();
  }
  if (process.stderr.isTTY) process.stderr.write('\n');

  const report: BenchReport = {
    command: commandLine(argv),
    startedAt: startedAt.toISOString().replace(/\.\d+Z$/, 'Z'),
    seconds: (Date.now() - startedAt.getTime()) / 1000,
    machine: { ...describeMachine(), ...systemCallsHere() },
    generator: { name: generator.name, version: generator.version },
    settings: options.settings,
    scenarios: options.scenarios,
    smallPageBytes: site.smallPageBytes,
    servers: servers.map(({ id, label, kind, note }) => ({ id, label, kind, note })),
    skipped,
    results,
  };
  mkdirSync(options.out, { recursive: true });
  writeFileSync(path.join(options.out, 'latest.md'), toMarkdown(report, CHART_FIGURE));
  writeFileSync(path.join(options.out, 'latest.json'), `${JSON.stringify(report, null, 2)}\n`);
  writeFigures(report, options.out, options.full);
  process.stdout.write(`\n${toTerminal(report)}`);
  process.stdout.write(`Report: ${path.relative(process.cwd(), path.join(options.out, 'latest.md')) || 'latest.md'} (chart: latest.svg, numbers: latest.json)\n`);
  if (options.full) for (const line of updateReadmes(report)) process.stdout.write(`${line}\n`);
}

/** What a system call costs here (bench/syscall-cost.ts), measured once the servers are gone; nothing without a compiler. */
function systemCallsHere(): Pick<BenchReport['machine'], 'systemCalls'> {
  const cost = measureSystemCallCost(200_000, 3);
  if ('reason' in cost) {
    process.stderr.write(`bench: system call cost not measured: ${cost.reason}\n`);
    return {};
  }
  const isolation = pageTableIsolation();
  return { systemCalls: { ...cost, meltdown: isolation?.meltdown ?? null, pcid: isolation?.pcid ?? null } };
}

/**
 * The chart and the crowd figure, each in English and Chinese (latest.svg, zh/latest.svg, crowd.svg,
 * zh/crowd.svg), into `folder`; with `site`, the crowd figures into www/images too.
 */
function writeFigures(report: BenchReport, folder: string, site: boolean): void {
  writeInBothLanguages([folder], CHART_FIGURE, renderCharts(report));
  writeCrowdCharts(report, folder, site);
}

/** --update-readme: the READMEs and the figures from the numbers of the last run, measuring nothing. */
function updateReadmesFrom(folder: string, site: boolean): void {
  const file = path.join(folder, 'latest.json');
  if (!existsSync(file)) usageError(`${path.relative(process.cwd(), file)} does not exist yet: run the bench first`);
  const report = JSON.parse(readFileSync(file, 'utf8')) as BenchReport;
  writeFigures(report, folder, site);
  for (const line of updateReadmes(report)) process.stdout.write(`${line}\n`);
}

function commandLine(argv: string[]): string {
  const quoted = argv.map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`)).join(' ');
  if (process.env.npm_lifecycle_event === 'bench') return `npm run bench${quoted ? ` -- ${quoted}` : ''}`;
  return `npx tsx bench/run.ts${quoted ? ` ${quoted}` : ''}`;
}

await main();
