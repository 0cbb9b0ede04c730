/**
 * bench/report.ts: the results as tables, for the terminal and for bench/results/latest.md,
 * and the issue's targets checked against them (ratios measured in the same run, never
 * absolute times).
 */
import os from 'node:os';
import { pairedRatio } from './paired.ts';
import { PATIENCE_MS } from './proc.ts';
import { MODELS, type Skipped } from './servers.ts';
import { DISTURBED_PERCENT, restOfMachine, type Measured } from './session.ts';
import { BIG_FILE_MIB } from './site.ts';
import { PACKED_PAGES, PAGES_PER_PASS, signedNanos, type SystemCallCost } from './syscall-cost.ts';
import type { CrowdLoad, CrowdRow, IdleRow, LoadRow, LoadScenario, Results, ScenarioName, Settings, SlowRow } from './types.ts';

export interface MachineInfo {
  cpu: string;
  cores: number;
  memoryGiB: number;
  system: string;
  node: string;
  /**
   * What one system call costs here, and what it costs the code after it (bench/syscall-cost.ts);
   * absent from reports written before it was measured.
   */
  systemCalls?: SystemCallCost & { meltdown: string | null; pcid: boolean | null };
}

export interface ServerSummary {
  id: string;
  label: string;
  kind: 'model' | 'pool' | 'reference';
  note: string | null;
}

export interface BenchReport {
  command: string;
  startedAt: string;
  seconds: number;
  machine: MachineInfo;
  generator: { name: string; version: string };
  settings: Settings;
  scenarios: ScenarioName[];
  smallPageBytes: number;
  servers: ServerSummary[];
  skipped: Skipped[];
  results: Results;
}

export function describeMachine(): MachineInfo {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown CPU',
    cores: os.availableParallelism(),
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    system: `${os.type()} ${os.release()}`,
    node: process.version,
  };
}

// ---- numbers as text ------------------------------------------------------------------

const whole = (value: number) => Math.round(value).toLocaleString('en');
/** Memory per connection; below zero the server shrank meanwhile (a garbage collection freed more). */
const kib = (value: number) => (value < 0.05 ? '≈0' : value >= 100 ? whole(value) : value.toFixed(1));
const mib = (valueKiB: number) => `${valueKiB < 10 * 1024 ? (valueKiB / 1024).toFixed(1) : whole(valueKiB / 1024)} MiB`;
const percent = (value: number) => `${Math.round(value)}%`;

export function milliseconds(value: number | null): string {
  if (value === null) return '—';
  return value >= 100 ? whole(value) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
}

export function requestsPerSecond(value: number): string {
  return value >= 100 ? whole(value) : value.toFixed(1);
}

/**
 * Server CPU time (user + system, the whole process tree) per request served, in µs. The
 * load generator shares the machine's cores: when it is the limit, requests/s says more about
 * it than about the server, while this stays the server's own cost.
 */
export function cpuMicrosPerRequest(row: Measured): number | null {
  // (Numbers from before this column existed have no cpuSeconds.)
  return row.load.requests > 0 && Number.isFinite(row.usage.cpuSeconds) ? (row.usage.cpuSeconds * 1e6) / row.load.requests : null;
}

/** For the large file: server CPU µs per MiB sent. */
function cpuMicrosPerMiB(row: LoadRow, seconds: number): number | null {
  const mibSent = row.load.mibPerSecond * seconds;
  return mibSent > 0 ? (row.usage.cpuSeconds * 1e6) / mibSent : null;
}

export function micros(value: number | null): string {
  if (value === null) return '—';
  return value >= 100 ? whole(value) : value.toFixed(1);
}

// ---- the tables -----------------------------------------------------------------------

export interface Table {
  title: string;
  intro: string;
  /** A Markdown image shown between the intro and the table. */
  figure?: string;
  header: string[];
  rows: string[][];
}

const SCENARIO_TITLES: Record<LoadScenario, string> = {
  keepalive: 'Keep-alive: GET /index.html',
  close: 'A new connection for every request (Connection: close)',
  bigfile: `A ${BIG_FILE_MIB} MiB file`,
};

function labelOf(report: BenchReport, id: string): string {
  return report.servers.find((server) => server.id === id)?.label ?? id;
}

function loadTable(report: BenchReport, scenario: LoadScenario): Table | null {
  const rows = report.results.load.filter((row) => row.scenario === scenario);
  if (rows.length === 0) return null;
  const throughput = scenario === 'bigfile';
  const intros: Record<LoadScenario, string> = {
    keepalive: `${report.smallPageBytes.toLocaleString('en')}-byte page, connections reused.`,
    close: 'Each request opens and closes its own TCP connection: the server pays for accept, and a model with a process or thread per connection pays for one of those per request.',
    bigfile: `${report.settings.bigFileConnections} clients download the file over and over.`,
  };
  return {
    title: SCENARIO_TITLES[scenario],
    intro: intros[scenario],
    header: ['server', 'conns', throughput ? 'MiB/s' : 'requests/s', throughput ? 'server CPU µs/MiB' : 'server CPU µs/req', 'p50 ms', 'p99 ms', 'errors', 'server peak RSS', 'server CPU', 'generator CPU', 'rest of machine'],
    rows: rows.map((row) => [
      labelOf(report, row.server),
      String(row.connections),
      throughput ? whole(row.load.mibPerSecond) : requestsPerSecond(row.load.requestsPerSecond),
      micros(throughput ? cpuMicrosPerMiB(row, report.settings.seconds) : cpuMicrosPerRequest(row)),
      milliseconds(row.load.requests > 0 ? row.load.p50Ms : null),
      milliseconds(row.load.requests > 0 ? row.load.p99Ms : null),
      row.load.requests === 0 ? `no answer in ${report.settings.seconds} s` : row.load.errors === 0 ? '0' : row.load.errorSummary,
      mib(row.usage.peakRssKiB),
      percent(row.usage.cpuPercent),
      percent(row.load.generatorCpuPercent),
      disturbance(row),
    ]),
  };
}

function disturbance(row: Measured): string {
  const rest = restOfMachine(row);
  return rest > DISTURBED_PERCENT ? `${percent(rest)} ⚠` : percent(rest);
}

function idleTable(report: BenchReport): Table | null {
  const rows = report.results.idle;
  if (rows.length === 0) return null;
  return {
    title: 'C10K: idle keep-alive connections',
    intro:
      'Each connection sends one GET and reads the answer, then stays open and idle. Memory per connection = (server RSS with them held − RSS before) ÷ held. ' +
      'PSS shares pages mapped by several processes among them (it matters for 01, whose processes share the node binary). ' +
      '≈0: the server did not grow measurably (a garbage collection freed about as much as the connections took). ' +
      `A new client then connects and GETs /index.html (median of ${report.settings.quick ? 3 : 5}).` +
      (report.settings.quick ? ' (--quick: on the same start as the load scenarios, so "before" is after them.)' : ' Each level on a fresh start of the server.'),
    header: ['server', 'held', 'RSS before', 'RSS held', 'KiB/conn (RSS)', 'KiB/conn (PSS)', 'processes / threads', 'fds', 'new client ms', 'notes'],
    rows: rows.map((row) => [
      labelOf(report, row.server),
      `${whole(row.held)} of ${whole(row.requested)}`,
      mib(row.rssBeforeKiB),
      mib(row.rssHeldKiB),
      row.rssPerConnectionKiB === null ? '—' : kib(row.rssPerConnectionKiB),
      row.pssPerConnectionKiB === null ? '—' : kib(row.pssPerConnectionKiB),
      `${whole(row.processes)} / ${whole(row.threads)}`,
      whole(row.openFds),
      milliseconds(row.newClientMs),
      idleNotes(row),
    ]),
  };
}

function idleNotes(row: IdleRow): string {
  const notes: string[] = [];
  if (row.capped) notes.push('capped');
  if (row.failed > 0) notes.push(`failed: ${row.failures}`);
  if (row.notTried > 0) notes.push(`${whole(row.notTried)} not tried after that`);
  if (row.dropped > 0) notes.push(`${whole(row.dropped)} closed by the server while held`);
  if (row.newClientFailures !== '') notes.push(`new client: ${row.newClientFailures}`);
  if (row.held < row.requested && row.serverSaid.length > 0) notes.push(`server said: “${row.serverSaid[0]}”`);
  return notes.join('; ');
}

/**
 * The crowd scenario's loads, lightest first: the claims and the figure read the lightest.
 * (Results written before there were two loads name one: crowdActive, crowdSeconds.)
 */
export function crowdLoadsOf(report: BenchReport): CrowdLoad[] {
  const older = report.settings as Partial<{ crowdActive: number; crowdSeconds: number }>;
  const loads = report.settings.crowdLoads ?? [{ active: older.crowdActive ?? 10, seconds: older.crowdSeconds ?? 2 }];
  return [...loads].sort((a, b) => a.active - b.active);
}

/**
 * A server's crowd curve under one load (`active` busy connections), fewest idle connections
 * first. N = 0 is measured twice, first and once more at the end (CrowdRow.again); the curve
 * keeps the one other programs disturbed less.
 */
export function crowdRows(report: BenchReport, server: string, active: number): CrowdRow[] {
  const rows = (report.results.crowd ?? []).filter((row) => row.server === server && row.active === active);
  const baseline = crowdBaseline(rows);
  return rows.filter((row) => row.held > 0 || row === baseline).sort((a, b) => a.held - b.held);
}

function crowdBaseline(rows: CrowdRow[]): CrowdRow | undefined {
  return rows.filter((row) => row.held === 0 && row.load.requests > 0).sort((a, b) => restOfMachine(a) - restOfMachine(b))[0];
}

/** A server's CPU per request with the most idle connections held, against its own with none, under one load. */
function crowdGrowth(report: BenchReport, server: string, active: number): { base: CrowdRow; top: CrowdRow; ratio: number } | null {
  const rows = crowdRows(report, server, active);
  const base = rows[0]?.held === 0 ? rows[0] : undefined;
  const top = rows.at(-1);
  const baseCost = base && cpuMicrosPerRequest(base);
  const topCost = top && cpuMicrosPerRequest(top);
  if (base === undefined || top === undefined || top === base || !baseCost || topCost == null) return null;
  return { base, top, ratio: topCost / baseCost };
}

/** "1 busy connection", "10 busy connections" ("10 个忙碌连接"). */
export function busyConnections(active: number, language: Language = 'en'): string {
  return language === 'zh' ? `${active} 个忙碌连接` : `${active} busy connection${active === 1 ? '' : 's'}`;
}

/** The crowd figure (bench/crowd-chart.ts), beside latest.md, and what it shows in words. */
export const CROWD_FIGURE = 'crowd.svg';
const CROWD_FIGURE_ALT = 'Server CPU time per request and p99 latency against the idle connections held, one line per server: 04 and 05 climb, 06, 07 and the references stay flat';

function crowdTable(report: BenchReport): Table | null {
  const rows = report.results.crowd ?? [];
  if (rows.length === 0) return null;
  const loads = crowdLoadsOf(report);
  const [light, busy] = [loads[0]!, loads.at(-1)!];
  return {
    title: 'Crowd: a small load beside idle connections',
    figure: `![${CROWD_FIGURE_ALT}](${CROWD_FIGURE})`,
    intro:
      `N keep-alive connections each made one request and then sit idle; beside them busy keep-alive connections make requests (GET /index.html): ${loads.map((load) => `${busyConnections(load.active)} for ${load.seconds} s`).join(', then ')}, at each level. ` +
      'CPU µs/req is the server\'s CPU time divided by the requests served: what the busy connections pay for the idle ones. ' +
      `With ${busyConnections(light.active)} each pass of the server's loop serves one request, so the cost per request is the cost of a pass, which is what the article's claim is about: the claims and the figure read that load. ` +
      (busy.active > light.active ? `With ${busy.active} the server is saturated and each pass serves up to ${busy.active} requests, which share its cost: the same growth per pass shows less per request. ` : '') +
      'With none held is measured twice per load, first and last (once the idle connections are closed); "× N=0" sets each row against the one of the two that other programs disturbed less (column "rest of machine"), as do the figure and the targets. ' +
      '"still open" counts the idle connections after the measurement (a server that closed some would look cheaper than it is). One start per server; N climbs on it.',
    header: ['server', 'busy', 'idle held', 'still open', 'requests/s', 'server CPU µs/req', '× N=0', 'p50 ms', 'p99 ms', 'errors', 'server CPU', 'generator CPU', 'rest of machine'],
    rows: report.servers.flatMap((server) =>
      loads.flatMap(({ active, seconds }) => {
        const own = rows.filter((row) => row.server === server.id && row.active === active);
        const base = crowdBaseline(own);
        const baseCost = base === undefined ? null : cpuMicrosPerRequest(base);
        return own.map((row) => {
          const cost = cpuMicrosPerRequest(row);
          return [
            labelOf(report, row.server),
            whole(active),
            row.again ? '0, again' : whole(row.held),
            whole(row.stillOpen),
            requestsPerSecond(row.load.requestsPerSecond),
            micros(cost),
            cost === null || !baseCost ? '—' : `${(cost / baseCost).toFixed(2)}×`,
            milliseconds(row.load.requests > 0 ? row.load.p50Ms : null),
            milliseconds(row.load.requests > 0 ? row.load.p99Ms : null),
            row.load.requests === 0 ? `no answer in ${seconds} s` : row.load.errors === 0 ? '0' : row.load.errorSummary,
            percent(row.usage.cpuPercent),
            percent(row.load.generatorCpuPercent),
            disturbance(row),
          ];
        });
      }),
    ),
  };
}

function crowdReachTable(report: BenchReport): Table | null {
  const reach = report.results.crowdReach ?? [];
  if (reach.length === 0) return null;
  return {
    title: 'Crowd: how high each server got, and what stopped it',
    intro: 'The most idle connections each server held while the busy ones were measured.',
    header: ['server', 'most idle held', 'stopped by'],
    rows: reach.map((row) => [labelOf(report, row.server), whole(row.highest), row.stoppedBy]),
  };
}

/** The slowloris scenario's newcomers: how many were answered, and the longest any of those waited. */
function newcomersServed(row: SlowRow): { served: number; tried: number; longestMs: number | null } {
  const waits = row.newcomers.flatMap((newcomer) => (newcomer.waitedMs === null ? [] : [newcomer.waitedMs]));
  return { served: waits.length, tried: row.newcomers.length, longestMs: waits.length === 0 ? null : Math.max(...waits) };
}

function slowlorisTable(report: BenchReport): Table | null {
  const rows = report.results.slowloris ?? [];
  if (rows.length === 0) return null;
  const { slowSeconds, slowRequestTimeout } = report.settings;
  return {
    title: 'Slowloris: a normal load beside clients that trickle their request heads',
    intro:
      `K connections send a request head one byte a second and never finish it (bench/trickle.ts); whenever the server closes one, a new one takes its place 0.1 s later, as an attacker's would. ` +
      `The servers run with --request-timeout ${slowRequestTimeout} (nginx: client_header_timeout ${slowRequestTimeout}s): a head not complete ${slowRequestTimeout} s after its first byte gets a 408 and a close (nginx closes it without an answer). ` +
      `Once the K are open, ${NORMAL_LOAD_CONNECTIONS} keep-alive connections (the normal load) ask for GET /index.html for ${slowSeconds} s, and a new client connects every half second ("newcomers"), each waiting at most until the window ends. ` +
      'served = answered with a 2xx of attempted (wrk\'s timeouts and connection errors count as attempted); "closed tricklers" says what the server answered the trickling connections it closed.',
    header: ['server', 'trickling (K)', 'normal load served', 'requests/s', 'p99 ms', 'errors', 'newcomers served', 'longest newcomer wait ms', 'closed tricklers'],
    rows: rows.map((row) => {
      const newcomers = newcomersServed(row);
      const closes = Object.entries(row.closes).map(([what, count]) => `${whole(count)} × ${what}`).join(', ');
      return [
        labelOf(report, row.server),
        whole(row.tricklers),
        // wrk counts no request still waiting when its window ends: with none answered and none failed, each connection's first request waited the whole window.
        row.attempted === 0 ? `none answered in ${slowSeconds} s (0%)` : `${whole(row.answered)} of ${whole(row.attempted)} (${percent((100 * row.answered) / row.attempted)})`,
        requestsPerSecond(row.load.requestsPerSecond),
        milliseconds(row.answered > 0 ? row.load.p99Ms : null),
        row.load.errors === 0 ? '0' : row.load.errorSummary,
        `${newcomers.served} of ${newcomers.tried}`,
        milliseconds(newcomers.longestMs),
        closes === '' ? 'none' : closes,
      ];
    }),
  };
}

/** The normal load's connections in the slowloris scenario (bench/slowloris.ts uses the same). */
export const NORMAL_LOAD_CONNECTIONS = 10;

/** The README is bilingual: the summary and the targets come in English and in Chinese. */
export type Language = 'en' | 'zh';

/** The headline rate at this concurrency: the same keep-alive c=100 the targets compare. */
const HEADLINE_CONNECTIONS = 100;

/** One row per server: the headline number of each scenario. */
export function summaryTable(report: BenchReport, language: Language = 'en'): Table {
  const say = (en: string, zh: string) => (language === 'zh' ? zh : en);
  const { load, idle } = report.results;
  const find = (server: string, scenario: LoadScenario, connections: number) =>
    load.find((row) => row.server === server && row.scenario === scenario && row.connections === connections);
  const settings = report.settings;
  const rate = (scenario: LoadScenario, connections: number) => (server: string) => {
    const row = find(server, scenario, connections);
    return row ? requestsPerSecond(row.load.requestsPerSecond) : '—';
  };
  const cost = (scenario: LoadScenario, connections: number) => (server: string) => {
    const row = find(server, scenario, connections);
    return row ? micros(cpuMicrosPerRequest(row)) : '—';
  };
  const columns: { title: string; value: (server: string) => string }[] = [
    ...settings.keepAliveConnections.map((connections) => ({ title: say(`keep-alive c=${connections} req/s`, `长连接 c=${connections} 请求/秒`), value: rate('keepalive', connections) })),
    { title: say(`keep-alive c=${HEADLINE_CONNECTIONS} CPU µs/req`, `长连接 c=${HEADLINE_CONNECTIONS} 每请求 CPU µs`), value: cost('keepalive', HEADLINE_CONNECTIONS) },
    { title: say(`close c=${settings.closeConnections} req/s`, `短连接 c=${settings.closeConnections} 请求/秒`), value: rate('close', settings.closeConnections) },
    { title: say(`close c=${settings.closeConnections} CPU µs/req`, `短连接 c=${settings.closeConnections} 每请求 CPU µs`), value: cost('close', settings.closeConnections) },
    {
      title: say(`${BIG_FILE_MIB} MiB file MiB/s`, `${BIG_FILE_MIB} MiB 文件 MiB/s`),
      value: (server) => {
        const row = find(server, 'bigfile', settings.bigFileConnections);
        return row ? whole(row.load.mibPerSecond) : '—';
      },
    },
    {
      title: say('idle KiB/conn (held)', '空闲连接 KiB/个（保持数）'),
      value: (server) => {
        const row = largestIdle(idle, server);
        return row?.rssPerConnectionKiB == null ? '—' : `${kib(row.rssPerConnectionKiB)} (${whole(row.held)})`;
      },
    },
    { title: say('new client ms', '新客户端 ms'), value: (server) => milliseconds(largestIdle(idle, server)?.newClientMs ?? null) },
  ];
  const measured = report.servers.filter((server) => load.some((row) => row.server === server.id) || idle.some((row) => row.server === server.id));
  return {
    title: say('Summary', '摘要'),
    intro: say(
      'Headline numbers; the tables below have latency, memory and CPU for each. CPU µs/req is the server\'s CPU time per request: the figure to compare (see the note under the tables).',
      '各场景的主要数字；下面的表格有每项的延迟、内存和 CPU。每请求 CPU µs 是服务器处理一个请求所用的 CPU 时间，是该拿来比较的数字。',
    ),
    header: [say('server', '服务器'), ...columns.map((column) => column.title)],
    rows: measured.map((server) => [server.label, ...columns.map((column) => column.value(server.id))]),
  };
}

function largestIdle(rows: IdleRow[], server: string): IdleRow | undefined {
  return rows.filter((row) => row.server === server).sort((a, b) => b.requested - a.requested)[0];
}

// ---- the targets ----------------------------------------------------------------------

/** A ratio: two decimals, whole from 100 on. */
const times = (value: number) => (value >= 100 ? whole(value) : value.toFixed(2));

export interface TargetCheck {
  target: string;
  measured: string;
  /** null: could not be measured in this run (a server or scenario missing). */
  met: boolean | null;
}

/** One CPU target: `server`'s CPU per request at most `maximum` × `reference`'s. */
export interface CpuTarget {
  server: string;
  reference: string;
  maximum: number;
  referenceName: { en: string; zh: string };
}

/** The model whose file starts with `number`, or its name in MODELS when it is not in the run. */
function modelIdIn(servers: { id: string; kind: string }[], number: string): string {
  return servers.find((server) => server.id.startsWith(`${number}-`) && server.kind === 'model')?.id ?? MODELS.find((model) => model.number === number)?.name ?? number;
}

/** The C ceiling's name in a target's words. */
const C_CEILING = { en: 'C ceiling', zh: 'C 基准' };

/** The CPU targets (issue 10), against the C ceiling and nginx with open_file_cache; 07's once it takes part. */
export function cpuTargets(servers: { id: string; kind: string }[]): CpuTarget[] {
  const epoll = modelIdIn(servers, '06');
  const targets: CpuTarget[] = [
    { server: epoll, reference: 'c-ceiling', maximum: 1.2, referenceName: C_CEILING },
    { server: modelIdIn(servers, '05'), reference: 'c-ceiling', maximum: 1.25, referenceName: C_CEILING },
    { server: modelIdIn(servers, '03'), reference: 'nginx-cache', maximum: 1.0, referenceName: { en: 'nginx with open_file_cache', zh: '开启 open_file_cache 的 nginx' } },
  ];
  if (servers.some((server) => server.id.startsWith('07-') && server.kind === 'model')) {
    const uring = modelIdIn(servers, '07');
    targets.push({ server: uring, reference: epoll, maximum: 0.9, referenceName: { en: epoll, zh: epoll } }, { server: uring, reference: 'c-ceiling', maximum: 1.1, referenceName: C_CEILING });
  }
  return targets;
}

/**
 * Not a target, a measure of the others: the JS floor (the C ceiling's loop in TypeScript over
 * koffi, no HTTP work) against the C ceiling, from the same alternating rounds. 05 and 06 make
 * the floor's calls and more work besides, so they cannot come closer to the C ceiling than the
 * floor does: where the floor's ratio is above their target's line (on a machine where system
 * calls are dear, say), that target cannot be met. (07 can: one io_uring_enter serves many
 * requests.)
 */
export const FLOOR_FOR_SCALE = { server: 'js-floor', reference: 'c-ceiling' } as const;

function floorForScale(cheaperThan: (target: CpuTarget) => TargetCheck, report: BenchReport, language: Language): TargetCheck[] {
  const paired = (id: string) => report.results.paired?.some((row) => row.server === id) ?? false;
  if (!paired(FLOOR_FOR_SCALE.server) || !paired(FLOOR_FOR_SCALE.reference)) return [];
  const { measured } = cheaperThan({ ...FLOOR_FOR_SCALE, maximum: Infinity, referenceName: C_CEILING });
  const target = language === 'zh'
    ? '（不是目标，作为尺度）JS 基准每请求 CPU 对 C 基准，长连接 c=100：C 基准的循环经 koffi 执行，不做 HTTP 的工作；05 和 06 每个请求同样调用 recv 和 send，另外还有别的工作，所以都不可能比它更接近 C 基准'
    : '(for scale, not a target) JS floor CPU/request vs C ceiling, keep-alive c=100: the C ceiling\'s loop through koffi, with no HTTP work; 05 and 06 make the same recv() and send() per request, and more work besides, so neither can come closer to the C ceiling than this';
  return [{ target, measured, met: null }];
}

export function checkTargets(report: BenchReport, language: Language = 'en'): TargetCheck[] {
  const say = (en: string, zh: string) => (language === 'zh' ? zh : en);
  const { load, idle } = report.results;
  const find = (server: string, scenario: LoadScenario, connections: number) =>
    load.find((row) => row.server === server && row.scenario === scenario && row.connections === connections);
  const modelId = (number: string) => modelIdIn(report.servers, number);
  const notMeasured = (target: string, missing: string): TargetCheck => ({ target, measured: say(`not measured (${missing} has no row)`, `未测（${missing} 没有数据）`), met: null });
  const nothingServed = (target: string, server: string): TargetCheck => ({ target, measured: say(`not measured (${server} answered no request)`, `未测（${server} 没有回答任何请求）`), met: null });
  /** Requests/s of `server` at least `minimum` × those of `reference`. */
  const fasterThan = (target: string, server: string, reference: string, scenario: LoadScenario, connections: number, minimum: number): TargetCheck => {
    const mine = find(server, scenario, connections)?.load.requestsPerSecond;
    const theirs = find(reference, scenario, connections)?.load.requestsPerSecond;
    if (mine === undefined || theirs === undefined) return notMeasured(target, mine === undefined ? server : reference);
    if (theirs === 0) return nothingServed(target, reference);
    const ratio = mine / theirs;
    return { target, measured: `${times(ratio)}× (${requestsPerSecond(mine)} ${say('vs', '对')} ${requestsPerSecond(theirs)} ${say('req/s', '请求/秒')})`, met: ratio >= minimum };
  };
  /** Server CPU per request of `server` at most `maximum` × that of `reference`, keep-alive c=100. */
  const cheaperThan = ({ server, reference, maximum, referenceName }: CpuTarget): TargetCheck => {
    const target = say(
      `${server} CPU/request ≤ ${maximum}× ${referenceName.en}, keep-alive c=${HEADLINE_CONNECTIONS}`,
      `${server} 每请求 CPU ≤ ${maximum}× ${referenceName.zh}，长连接 c=${HEADLINE_CONNECTIONS}`,
    );
    // Preferably from the turns the two servers took in alternation (bench/paired.ts).
    const pairedRow = (id: string) => report.results.paired?.find((row) => row.server === id);
    const mineTurns = pairedRow(server);
    const theirTurns = pairedRow(reference);
    const paired = mineTurns && theirTurns ? pairedRatio(mineTurns, theirTurns) : null;
    if (paired !== null) {
      const spread = `${times(paired.lowest)}–${times(paired.highest)}×`;
      const how = say(`median of ${paired.rounds} alternating rounds, each ${spread}`, `交替测量 ${paired.rounds} 轮的中位数，各轮 ${spread}`);
      return { target, measured: `${times(paired.ratio)}× (${micros(paired.mine)} ${say('vs', '对')} ${micros(paired.theirs)} µs; ${how})`, met: paired.ratio <= maximum };
    }
    const mineRow = find(server, 'keepalive', HEADLINE_CONNECTIONS);
    const theirsRow = find(reference, 'keepalive', HEADLINE_CONNECTIONS);
    const mine = mineRow && cpuMicrosPerRequest(mineRow);
    const theirs = theirsRow && cpuMicrosPerRequest(theirsRow);
    if (mineRow === undefined || theirsRow === undefined) return notMeasured(target, mineRow === undefined ? server : reference);
    if (mine == null || theirs == null || theirs === 0) return nothingServed(target, mine == null ? server : reference);
    const ratio = mine / theirs;
    return { target, measured: `${times(ratio)}× (${micros(mine)} ${say('vs', '对')} ${micros(theirs)} µs)`, met: ratio <= maximum };
  };
  const epoll = modelId('06');
  const checks = cpuTargets(report.servers).map(cheaperThan);
  checks.push(...floorForScale(cheaperThan, report, language));
  checks.push(
    fasterThan(say('03-coroutine ≥ 1.5× node:http, keep-alive c=100 req/s', '03-coroutine ≥ 1.5× node:http，长连接 c=100 请求/秒'), modelId('03'), 'node-http', 'keepalive', HEADLINE_CONNECTIONS, 1.5),
  );
  const c10k = idle.find((row) => row.server === epoll && row.requested === 10_000);
  const holdTarget = say('06-epoll holds 10,000 idle connections at < 2 KiB RSS each', '06-epoll 保持 10,000 个空闲连接，每个 < 2 KiB RSS');
  const answerTarget = say('06-epoll answers a new client in < 50 ms while holding 10,000', '06-epoll 保持 10,000 个连接时，新客户端 < 50 ms 得到回答');
  if (c10k === undefined) {
    checks.push({ target: holdTarget, measured: say('not measured (no 10,000 run of 06)', '未测（06 没有 10,000 的数据）'), met: null });
    checks.push({ target: answerTarget, measured: say('not measured', '未测'), met: null });
  } else {
    const perConnection = c10k.rssPerConnectionKiB;
    checks.push({
      target: holdTarget,
      measured: say(`${whole(c10k.held)} held, ${perConnection === null ? '—' : kib(perConnection)} KiB each`, `保持 ${whole(c10k.held)} 个，每个 ${perConnection === null ? '—' : kib(perConnection)} KiB`),
      met: c10k.held === 10_000 && c10k.dropped === 0 && perConnection !== null && perConnection < 2,
    });
    checks.push({
      target: answerTarget,
      measured: c10k.newClientMs === null ? say(`no answer (${c10k.newClientFailures})`, `没有回答（${c10k.newClientFailures}）`) : `${milliseconds(c10k.newClientMs)} ms`,
      met: c10k.newClientMs !== null && c10k.newClientFailures === '' && c10k.newClientMs < 50,
    });
  }
  checks.push(...crowdChecks(report, language));
  for (const number of ['01', '02']) {
    const closeConnections = report.settings.closeConnections;
    const target = say(`${number} --pool ≥ 5× ${modelId(number)}, new connection per request`, `${number} --pool ≥ 5× ${modelId(number)}，每个请求一个新连接`);
    checks.push(fasterThan(target, `${number}-pool`, modelId(number), 'close', closeConnections, 5));
  }
  // A process or a thread per connection without the loader tax (shared/compiled-self.ts): from
  // the model's largest c10k row, a new client's time and the RSS each held connection costs.
  for (const { number, ms, mib } of [{ number: '01', ms: 120, mib: 50 }, { number: '02', ms: 60, mib: 15 }]) {
    const server = modelId(number);
    const row = largestIdle(idle, server);
    const target = say(`${server}: a new client in ≤ ${ms} ms, ≤ ${mib} MiB RSS per held connection`, `${server}：新客户端 ≤ ${ms} ms，每个保持的连接 ≤ ${mib} MiB RSS`);
    if (row === undefined) {
      checks.push({ target, measured: say(`not measured (no c10k run of ${server})`, `未测（${server} 没有 c10k 数据）`), met: null });
      continue;
    }
    const perConnection = row.rssPerConnectionKiB === null ? null : row.rssPerConnectionKiB / 1024;
    checks.push({
      target,
      measured: say(
        `${milliseconds(row.newClientMs)} ms, ${perConnection === null ? '—' : perConnection.toFixed(1)} MiB (${whole(row.held)} held)`,
        `${milliseconds(row.newClientMs)} ms，${perConnection === null ? '—' : perConnection.toFixed(1)} MiB（保持 ${whole(row.held)} 个）`,
      ),
      met: row.newClientMs !== null && row.newClientFailures === '' && row.newClientMs <= ms && perConnection !== null && perConnection <= mib,
    });
  }
  return checks;
}

/**
 * The article's claim, from the crowd scenario: select's and polling's cost per request grows
 * with the idle connections held (at least 2.5× from none to their most), epoll's and
 * io_uring's does not (within 1.2× from none to 10,000 or more). Read under the light load,
 * where a request is a pass of the loop; the busy load's ratio is shown beside it.
 */
function crowdChecks(report: BenchReport, language: Language): TargetCheck[] {
  const say = (en: string, zh: string) => (language === 'zh' ? zh : en);
  const loads = crowdLoadsOf(report);
  const [light, busy] = [loads[0]!.active, loads.at(-1)!.active];
  const claims = [
    { number: '04', grows: true },
    { number: '05', grows: true },
    { number: '06', grows: false },
    { number: '07', grows: false },
  ];
  return claims.map(({ number, grows }) => {
    const server = modelIdIn(report.servers, number);
    const target = grows
      ? say(`${server} CPU/request with the most idle connections it holds ≥ 2.5× with none (crowd, ${busyConnections(light)})`, `${server} 保持最多空闲连接时的每请求 CPU ≥ 2.5× 没有空闲连接时（crowd，${busyConnections(light, 'zh')}）`)
      : say(`${server} CPU/request with 10,000 or more idle connections ≤ 1.2× with none (crowd, ${busyConnections(light)})`, `${server} 保持 10,000 个以上空闲连接时的每请求 CPU ≤ 1.2× 没有空闲连接时（crowd，${busyConnections(light, 'zh')}）`);
    const growth = crowdGrowth(report, server, light);
    if (growth === null) return { target, measured: say(`not measured (no crowd rows of ${server} with ${busyConnections(light)})`, `未测（${server} 没有 ${busyConnections(light, 'zh')}的 crowd 数据）`), met: null };
    const { base, top, ratio } = growth;
    const underBusy = busy === light ? null : crowdGrowth(report, server, busy);
    const beside = underBusy === null ? '' : say(`; with ${busy} busy: ${times(underBusy.ratio)}× at ${whole(underBusy.top.held)}`, `；${busy} 个忙碌连接时 ${times(underBusy.ratio)}×（${whole(underBusy.top.held)} 个）`);
    const measured = say(
      `${times(ratio)}× (${micros(cpuMicrosPerRequest(top))} µs with ${whole(top.held)} idle vs ${micros(cpuMicrosPerRequest(base))} µs with none)${beside}`,
      `${times(ratio)}×（${whole(top.held)} 个空闲连接时 ${micros(cpuMicrosPerRequest(top))} µs，对没有时 ${micros(cpuMicrosPerRequest(base))} µs）${beside}`,
    );
    const intact = top.stillOpen === top.held;
    return { target, measured, met: intact && (grows ? ratio >= 2.5 : top.held >= 10_000 && ratio <= 1.2) };
  });
}

export function targetTable(report: BenchReport, language: Language = 'en'): Table {
  const say = (en: string, zh: string) => (language === 'zh' ? zh : en);
  const mark = (met: boolean | null) => (met === null ? '–' : met ? '✓' : '✗');
  return {
    title: say('Targets', '目标'),
    intro: say(
      'Ratios between servers measured in this same run on this machine. CPU/request is server CPU time (the whole process tree) per request served; for these targets the servers named ran at the same time and took turns under the same keep-alive load, and the ratio is the median of the rounds\' ratios (bench/paired.ts), so that a busy neighbour weighs on both sides alike.',
      '同一次运行、同一台机器上测得的服务器之间的比值。每请求 CPU 是服务器（整个进程树）的 CPU 时间除以完成的请求数；这些目标涉及的服务器同时运行，在同样的长连接负载下轮流测量，比值取各轮比值的中位数（bench/paired.ts），这样旁边程序的干扰对两边一样。',
    ),
    header: [say('target', '目标'), say('measured', '实测'), say('met', '达成')],
    rows: checkTargets(report, language).map((check) => [check.target, check.measured, mark(check.met)]),
  };
}

// ---- output ---------------------------------------------------------------------------

function tables(report: BenchReport): Table[] {
  const perScenario = (['keepalive', 'close', 'bigfile'] as const).map((scenario) => loadTable(report, scenario));
  return [summaryTable(report), targetTable(report), ...perScenario, idleTable(report), crowdTable(report), crowdReachTable(report), slowlorisTable(report)].filter((table): table is Table => table !== null);
}

export function machineLine(report: BenchReport, language: Language = 'en'): string {
  const { cpu, cores, memoryGiB, system, node } = report.machine;
  return language === 'zh' ? `${cpu}，${cores} 核，${memoryGiB} GiB，${system}，Node ${node}` : `${cpu}, ${cores} cores, ${memoryGiB} GiB, ${system}, Node ${node}`;
}

function settingsLine(report: BenchReport): string {
  const { settings } = report;
  const warmUp = settings.warmupSeconds > 0 ? `after a ${settings.warmupSeconds} s warm-up` : 'no warm-up';
  return `${settings.quick ? 'quick run, ' : ''}${settings.seconds} s per measurement, ${warmUp}; scenarios: ${report.scenarios.join(', ')}`;
}

/** What each server is (caps, pool sizes, nginx's settings). */
function serverNotes(report: BenchReport): string[] {
  return report.servers.flatMap((server) => (server.note === null ? [] : [server.note]));
}

/** What was not measured, and why. */
function skipNotes(report: BenchReport): string[] {
  const lines = report.skipped.map((skip) => `${skip.id}: skipped — ${skip.reason}.`);
  for (const skip of report.results.skips) lines.push(`${skip.server}${skip.scenario === 'all' ? '' : ` (${skip.scenario})`}: ${skip.reason}.`);
  return [...new Set(lines)];
}

/**
 * What a system call costs on this machine, and what it costs the code after it: the two
 * figures that decide how far any server of ours can get from the C ceiling (bench/README.md).
 */
function systemCallLine(report: BenchReport): string[] {
  const calls = report.machine.systemCalls;
  if (calls === undefined) return [];
  const extra = (after: number, alone: number) => signedNanos(after - alone);
  const isolation = calls.meltdown === null ? '' : `; Meltdown: ${calls.meltdown}, PCID ${calls.pcid ? 'yes' : 'no'}`;
  return [
    `- **System calls:** one \`recv()\` from C costs ${whole(calls.callNanos)} ns of CPU; right after one, reading a line in each of ${PAGES_PER_PASS} pages costs ${extra(calls.spreadAfterCallNanos, calls.spreadAloneNanos)}, the same lines packed into ${PACKED_PAGES} pages ${extra(calls.packedAfterCallNanos, calls.packedAloneNanos)} (\`npx tsx bench/ffi-call-cost.ts\`)${isolation}`,
  ];
}

export function toMarkdown(report: BenchReport, chartFile: string): string {
  const lines = [
    '# Benchmark: the concurrency models side by side',
    '',
    `- **Machine:** ${machineLine(report)}`,
    `- **Load generator:** ${report.generator.version} (its own CPU use is in each table: near 100% of a core means the client, not the server, was the limit)`,
    `- **Run:** ${settingsLine(report)}; started ${report.startedAt}, took ${Math.round(report.seconds)} s`,
    `- **Command:** \`${report.command}\``,
    ...systemCallLine(report),
    ...disturbedWarning(report),
    '',
    `![requests/s by model and concurrency; memory per idle connection](${chartFile})`,
    '',
  ];
  for (const table of tables(report)) {
    lines.push(`## ${table.title}`, '', table.intro, '', ...(table.figure === undefined ? [] : [table.figure, '']), markdownTable(table), '');
  }
  lines.push('## Notes', '', ...[...serverNotes(report), ...skipNotes(report)].map((note) => `- ${note}`), '');
  lines.push(
    'CPU is in percent of one core (the tree of every process of the server, including children that already ended). ' +
      'Server CPU µs/req is that tree\'s CPU time (user + system) divided by the requests served: the figure to compare, because the load generator runs on the same cores, ' +
      'so when it is the limit (generator CPU near 100%) every fast server shows about the same requests/s, while each still spends its own CPU time on a request. ' +
      '"Rest of machine" is the CPU everything else used meanwhile: other programs, and kernel work charged to no process; when it is high, the numbers of that row are disturbed. ' +
      'RSS counts every page a process has in memory; for a tree it is the sum over its processes.',
    '',
  );
  return lines.join('\n');
}

/** Columns of words, aligned left; all others hold numbers and align right. */
const TEXT_COLUMNS = new Set(['measured', 'met', 'errors', 'notes', 'stopped by', '实测', '达成']);

function disturbedWarning(report: BenchReport): string[] {
  const disturbed = report.results.load.filter((row) => restOfMachine(row) > DISTURBED_PERCENT).length;
  if (disturbed === 0) return [];
  return [`- **⚠ ${disturbed} of ${report.results.load.length} measurements** ran while other programs used more than half a core (column "rest of machine"), even after measuring again once (while the run's ${PATIENCE_MS / 60_000} minutes of patience for a busy machine lasted): compare those with care, or run again on a quieter machine.`];
}

export function markdownTable(table: Table): string {
  const escape = (cell: string) => cell.replace(/\|/g, '\\|');
  const row = (cells: string[]) => `| ${cells.map(escape).join(' | ')} |`;
  const align = table.header.map((title, i) => (i === 0 || TEXT_COLUMNS.has(title) ? '---' : '---:'));
  return [row(table.header), `|${align.join('|')}|`, ...table.rows.map(row)].join('\n');
}

export function toTerminal(report: BenchReport): string {
  const out = [`Machine: ${machineLine(report)}`, `Load generator: ${report.generator.version}`, ''];
  for (const table of tables(report)) out.push(table.title, textTable(table), '');
  const skipped = skipNotes(report);
  if (skipped.length > 0) out.push('Not measured, or trouble:', ...skipped.map((note) => `  ${note}`), '');
  return out.join('\n');
}

function textTable(table: Table): string {
  const all = [table.header, ...table.rows];
  const widths = table.header.map((_, column) => Math.max(...all.map((row) => [...row[column]!].length)));
  const line = (cells: string[]) =>
    cells.map((cell, column) => (column === 0 || TEXT_COLUMNS.has(table.header[column]!) ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  ').trimEnd();
  return [line(table.header), widths.map((width) => '-'.repeat(width)).join('  '), ...table.rows.map(line)].join('\n');
}
