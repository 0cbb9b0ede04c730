/**
 * bench/chart.ts: bench/results/latest.svg, written by hand (no chart library): grouped bars
 * of requests/s by server and concurrency, server CPU time per request, and memory per idle
 * connection, the last two on log scales (from a few µs to a second of CPU per request for a
 * process started per connection; from about a kilobyte to tens of megabytes per connection).
 * The same drawing comes in Chinese (zh/latest.svg, for README.zh-CN.md), from the same numbers
 * and one table of labels, as the crowd figure does (bench/crowd-chart.ts).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { escapeXml, translationComment } from './figure-text.ts';
import type { BenchReport, Language } from './report.ts';
import { cpuMicrosPerRequest, machineLine, micros, requestsPerSecond } from './report.ts';
import type { IdleRow, LoadRow } from './types.ts';

/** The chart's file, in bench/results/ and (in Chinese) in bench/results/zh/. */
export const CHART_FIGURE = 'latest.svg';

/** Every word of the chart, in English and in Chinese: the drawing is the same. */
const LABELS = {
  en: {
    title: 'Concurrency models side by side',
    requestsPanel: (pageBytes: string) => `Requests per second, GET of a ${pageBytes}-byte page (higher is better)`,
    keepAlive: (connections: number) => `keep-alive, ${connections} conn.`,
    newConnection: (connections: number) => `new connection per request, ${connections} conn.`,
    cpuPanel: 'Server CPU time per request, µs, log scale (lower is better; unlike requests/s, not capped by the load generator)',
    memoryPanel: 'Server memory (RSS) per idle keep-alive connection, log scale (lower is better); under each bar: connections held',
    idle: (connections: string) => `${connections} idle conn.`,
    capped: 'capped (a process or thread each)',
    shortfall: (held: string, requested: string) => ` (${held} of ${requested} held)`,
    bar: (server: string, value: string) => `${server}: ${value}`,
    /** The servers' names under the groups, in px. */
    nameSize: 10,
  },
  zh: {
    title: '并发模型并排对比',
    requestsPanel: (pageBytes: string) => `请求/秒，GET 一个 ${pageBytes} 字节的页面（越高越好）`,
    keepAlive: (connections: number) => `长连接，${connections} 个连接`,
    newConnection: (connections: number) => `每个请求一个新连接，${connections} 个连接`,
    cpuPanel: '服务器每请求 CPU 时间，µs，对数坐标（越低越好；和请求/秒不同，不受压测工具限制）',
    memoryPanel: '服务器每个空闲长连接的内存（RSS），对数坐标（越低越好）；柱子下面：保持的连接数',
    idle: (connections: string) => `${connections} 个空闲连接`,
    capped: '有上限（每个连接一个进程或线程）',
    shortfall: (held: string, requested: string) => `（${requested} 个中保持了 ${held} 个）`,
    bar: (server: string, value: string) => `${server}：${value}`,
    // A Chinese character is a full em wide: one size smaller, "nginx，1 个 worker" fits its group.
    nameSize: 9,
  },
} satisfies Record<Language, unknown>;

type Labels = (typeof LABELS)[Language];

/** The references' names as README.zh-CN.md says them (the models keep their file names). */
const SERVERS_IN_CHINESE: Record<string, string> = {
  'c-ceiling': 'C 基准',
  'js-floor': 'JS 基准',
  nginx: 'nginx，1 个 worker',
  'nginx-cache': 'nginx，1 个 worker，open_file_cache',
  'node-http': 'node:http',
};

/** A server as the figures name it: without "(reference)"; in Chinese, the references in Chinese. */
export function serverName(server: { id: string; label: string }, language: Language): string {
  return (language === 'zh' ? SERVERS_IN_CHINESE[server.id] : undefined) ?? server.label.replace(/ \(reference\)$/, '');
}

/** Fonts with Chinese glyphs first (macOS, Windows, Linux), as in the other figures of www/images/zh/. */
export const FONTS: Record<Language, string> = {
  en: 'sans-serif',
  zh: "'PingFang SC', 'Hiragino Sans GB', 'Microsoft YaHei', 'Noto Sans CJK SC', 'Source Han Sans SC', sans-serif",
};

/** The <svg> attribute that tells a screen reader (and a browser picking glyphs) the language. */
export const LANG_ATTRIBUTE: Record<Language, string> = { en: '', zh: ' lang="zh-CN"' };

/** The line under a figure's title: the machine and the load generator. */
export function machineAndGenerator(report: BenchReport, language: Language): string {
  return `${machineLine(report, language)}${language === 'zh' ? '；' : '; '}${report.generator.name}`;
}

interface Series {
  name: string;
  color: string;
}

interface Bar {
  value: number;
  /** Written above the bar. */
  label: string;
  series: number;
  /** Written under the bar, above the group's name. */
  under?: string;
}

interface Group {
  label: string;
  bars: Bar[];
}

interface Panel {
  title: string;
  series: Series[];
  groups: Group[];
  scale: 'linear' | 'log';
  /** For a log scale: the values that may get a grid line. */
  ticks?: number[];
  formatTick(value: number): string;
  /** The panel's language: a bar's tooltip, the size of the servers' names. */
  say: Labels;
}

export const WIDTH = 1040;
const PANEL_HEIGHT = 340;
const LEFT = 70;
const RIGHT = 20;
const PLOT_TOP = 48;
const PLOT_BOTTOM = 60; // room for group names under the plot
const PALETTE = ['#9ecae1', '#4292c6', '#08519c', '#f16913', '#74c476', '#238b45', '#fd8d3c'];

/**
 * Writes NAME and zh/NAME into each folder: a figure in English and its Chinese translation.
 */
export function writeInBothLanguages(folders: string[], name: string, figures: { en: string; zh: string }): void {
  for (const folder of folders) {
    mkdirSync(path.join(folder, 'zh'), { recursive: true });
    writeFileSync(path.join(folder, name), figures.en);
    writeFileSync(path.join(folder, 'zh', name), figures.zh);
  }
}

/**
 * The chart in English and in Chinese. The Chinese one records the fingerprint of the English
 * text it translates (tests/helpers/translated-figure.ts checks it, for tests/site.test.ts and
 * tests/bench.test.ts).
 */
export function renderCharts(report: BenchReport): { en: string; zh: string } {
  const en = renderChart(report, 'en');
  return { en, zh: renderChart(report, 'zh', translationComment(CHART_FIGURE, en)) };
}

function renderChart(report: BenchReport, language: Language, comment?: string): string {
  const say: Labels = LABELS[language];
  const panels = [requestsPanel(report, language), cpuPanel(report, language), memoryPanel(report, language)].filter((panel): panel is Panel => panel !== null);
  const height = 40 + panels.length * PANEL_HEIGHT + 10;
  const body = panels.map((panel, i) => `<g transform="translate(0 ${40 + i * PANEL_HEIGHT})">\n${drawPanel(panel)}\n</g>`);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}"${LANG_ATTRIBUTE[language]} font-family="${FONTS[language]}" font-size="11">`,
    ...(comment === undefined ? [] : [comment]),
    `<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`,
    text(WIDTH / 2, 18, say.title, { size: 16, anchor: 'middle', weight: 'bold' }),
    text(WIDTH / 2, 34, machineAndGenerator(report, language), { size: 11, anchor: 'middle', color: '#555' }),
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

/** A series of small-page measurements: one scenario at one number of connections. */
type LoadSeries = Series & { scenario: 'keepalive' | 'close'; connections: number };

/** One group per server with small-page rows: a bar for each series whose row gives a value. */
function smallPageGroups(report: BenchReport, language: Language, series: LoadSeries[], valueOf: (row: LoadRow) => number | null, format: (value: number) => string): Group[] {
  const { load } = report.results;
  return serversWith(report, language, (id) => load.some((row) => row.server === id && row.scenario !== 'bigfile')).map(({ id, label }) => ({
    label,
    bars: series.flatMap((each, index) => {
      const row = load.find((r) => r.server === id && r.scenario === each.scenario && r.connections === each.connections);
      const value = row === undefined ? null : valueOf(row);
      return value === null ? [] : [{ value, label: format(value), series: index }];
    }),
  }));
}

function requestsPanel(report: BenchReport, language: Language): Panel | null {
  const say = LABELS[language];
  const { settings } = report;
  const series: LoadSeries[] = [
    ...settings.keepAliveConnections.map((connections, i) => ({ name: say.keepAlive(connections), color: PALETTE[i % 3]!, scenario: 'keepalive' as const, connections })),
    { name: say.newConnection(settings.closeConnections), color: PALETTE[3]!, scenario: 'close', connections: settings.closeConnections },
  ];
  const groups = smallPageGroups(report, language, series, (row) => row.load.requestsPerSecond, compact);
  if (groups.length === 0) return null;
  return { title: say.requestsPanel(report.smallPageBytes.toLocaleString('en')), series, groups, scale: 'linear', formatTick: compact, say };
}

/** Server CPU µs per request at keep-alive c=100 and with a new connection per request. */
function cpuPanel(report: BenchReport, language: Language): Panel | null {
  const say = LABELS[language];
  const { settings } = report;
  const series: LoadSeries[] = [
    { name: say.keepAlive(100), color: PALETTE[2]!, scenario: 'keepalive', connections: 100 },
    { name: say.newConnection(settings.closeConnections), color: PALETTE[3]!, scenario: 'close', connections: settings.closeConnections },
  ];
  // A log scale has no place for 0.
  const positiveMicros = (row: LoadRow) => {
    const value = cpuMicrosPerRequest(row);
    return value === null || value <= 0 ? null : value;
  };
  const groups = smallPageGroups(report, language, series, positiveMicros, micros);
  if (groups.every((group) => group.bars.length === 0)) return null;
  return {
    title: say.cpuPanel,
    series,
    groups,
    scale: 'log',
    ticks: DECADES,
    formatTick: (value) => compact(value),
    say,
  };
}

function memoryPanel(report: BenchReport, language: Language): Panel | null {
  const say = LABELS[language];
  const levels = [...new Set(report.results.idle.filter((row) => !row.capped).map((row) => row.requested))].sort((a, b) => a - b);
  const series: Series[] = [
    ...levels.map((level, i) => ({ name: say.idle(level.toLocaleString('en')), color: PALETTE[4 + (i % 2)]! })),
    { name: say.capped, color: PALETTE[6]! },
  ];
  const seriesOf = (row: IdleRow) => (row.capped ? series.length - 1 : levels.indexOf(row.requested));
  const groups = serversWith(report, language, (id) => report.results.idle.some((row) => row.server === id && row.held > 0)).map(({ id, label }) => ({
    label,
    bars: report.results.idle
      .filter((row) => row.server === id && row.held > 0 && row.rssPerConnectionKiB !== null)
      .map((row) => ({
        value: Math.max(row.rssPerConnectionKiB!, 0.1),
        label: `${row.rssPerConnectionKiB! < 0.05 ? '≈0' : formatKiB(row.rssPerConnectionKiB!)}${shortfall(row, say)}`,
        series: seriesOf(row),
        under: count(row.held),
      })),
  }));
  if (groups.length === 0) return null;
  return { title: say.memoryPanel, series, groups, scale: 'log', ticks: MEMORY_TICKS_KIB, formatTick: formatKiB, say };
}

function count(value: number): string {
  return value >= 1000 ? compact(value) : String(value);
}

/** When the server could not take them all (select stops at 1,024): " (999 of 10k held)". */
function shortfall(row: IdleRow, say: Labels): string {
  return row.held < 0.99 * row.requested ? say.shortfall(count(row.held), count(row.requested)) : '';
}

function serversWith(report: BenchReport, language: Language, has: (id: string) => boolean): { id: string; label: string }[] {
  return report.servers.filter((server) => has(server.id)).map((server) => ({ id: server.id, label: serverName(server, language) }));
}

function drawPanel(panel: Panel): string {
  const plotHeight = PANEL_HEIGHT - PLOT_TOP - PLOT_BOTTOM;
  const plotWidth = WIDTH - LEFT - RIGHT;
  const values = panel.groups.flatMap((group) => group.bars.map((bar) => bar.value));
  const axis = panel.scale === 'linear' ? linearAxis(Math.max(...values)) : logAxis(Math.min(...values), Math.max(...values), panel.ticks ?? DECADES);
  const y = (value: number) => PLOT_TOP + plotHeight * (1 - axis.position(value));
  const out: string[] = [text(LEFT, 16, panel.title, { size: 13, weight: 'bold' })];

  panel.series.forEach((series, i) => {
    const x = LEFT + i * 230;
    out.push(`<rect x="${x}" y="24" width="12" height="12" fill="${series.color}"/>`, text(x + 16, 34, series.name, {}));
  });
  for (const tick of axis.ticks) {
    out.push(`<line x1="${LEFT}" x2="${LEFT + plotWidth}" y1="${y(tick).toFixed(1)}" y2="${y(tick).toFixed(1)}" stroke="#e0e0e0"/>`);
    out.push(text(LEFT - 6, y(tick) + 4, panel.formatTick(tick), { anchor: 'end', color: '#555' }));
  }
  out.push(`<line x1="${LEFT}" x2="${LEFT + plotWidth}" y1="${PLOT_TOP + plotHeight}" y2="${PLOT_TOP + plotHeight}" stroke="#333"/>`);

  const groupWidth = plotWidth / panel.groups.length;
  panel.groups.forEach((group, g) => {
    const barWidth = Math.min(28, (groupWidth - 12) / Math.max(1, group.bars.length));
    const start = LEFT + g * groupWidth + (groupWidth - barWidth * group.bars.length) / 2;
    group.bars.forEach((bar, b) => {
      const x = start + b * barWidth;
      const top = y(Math.max(bar.value, axis.floor));
      const color = panel.series[bar.series]?.color ?? '#999';
      out.push(`<rect x="${x.toFixed(1)}" y="${top.toFixed(1)}" width="${(barWidth - 2).toFixed(1)}" height="${(PLOT_TOP + plotHeight - top).toFixed(1)}" fill="${color}"><title>${escapeXml(panel.say.bar(group.label, bar.label))}</title></rect>`);
      const labelX = x + barWidth / 2;
      out.push(text(labelX, top - 4, bar.label, { size: 9, anchor: 'start', rotate: true }));
      if (bar.under !== undefined) out.push(text(labelX, PLOT_TOP + plotHeight + 12, bar.under, { size: 9, anchor: 'middle', color: '#555' }));
    });
    const nameY = PLOT_TOP + plotHeight + (group.bars.some((bar) => bar.under !== undefined) ? 28 : 16);
    wrapLabel(nameUnder(group.label, panel.groups[g - 1]?.label)).forEach((line, i) => out.push(text(LEFT + (g + 0.5) * groupWidth, nameY + i * 12, line, { size: panel.say.nameSize, anchor: 'middle' })));
  });
  return out.join('\n');
}

interface Axis {
  ticks: number[];
  floor: number;
  /** 0 at the bottom of the plot, 1 at the top. */
  position(value: number): number;
}

function linearAxis(max: number): Axis {
  const step = niceStep(max / 5);
  const top = Math.max(step, Math.ceil((max * 1.15) / step) * step); // headroom for the labels
  const ticks = Array.from({ length: Math.round(top / step) + 1 }, (_, i) => i * step);
  return { ticks, floor: 0, position: (value) => value / top };
}

/** Decades of KiB, with the steps above 1 MiB in binary units (1 MiB, 10 MiB…) so labels stay round. */
const MEMORY_TICKS_KIB = [0.1, 1, 10, 100, 1024, 10 * 1024, 100 * 1024, 1024 * 1024, 10 * 1024 * 1024];
const DECADES = [0.1, 1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8];

function logAxis(min: number, max: number, allTicks: number[]): Axis {
  const low = Math.log10([...allTicks].reverse().find((tick) => tick <= min) ?? allTicks[0]!);
  const high = Math.log10(max) + 0.25 * (Math.log10(max) - low) + 0.1; // headroom for the labels
  const ticks = allTicks.filter((tick) => Math.log10(tick) >= low - 1e-9 && Math.log10(tick) <= high);
  return { ticks, floor: 10 ** low, position: (value) => (Math.log10(value) - low) / (high - low) };
}

function niceStep(rough: number): number {
  const power = 10 ** Math.floor(Math.log10(Math.max(rough, 1e-9)));
  return ([1, 2, 2.5, 5, 10].find((multiple) => multiple * power >= rough) ?? 10) * power;
}

function compact(value: number): string {
  if (value >= 1e6) return `${(value / 1e6).toFixed(1)}M`;
  if (value >= 1e4) return `${Math.round(value / 1e3)}k`;
  if (value >= 1e3) return `${(value / 1e3).toFixed(1)}k`;
  return requestsPerSecond(value);
}

function formatKiB(kib: number): string {
  const round = (value: number) => (value >= 10 || Number.isInteger(value) ? String(Math.round(value)) : value.toFixed(1));
  if (kib >= 1024 * 1024) return `${round(kib / 1024 / 1024)} GiB`;
  if (kib >= 1024) return `${round(kib / 1024)} MiB`;
  return `${Math.abs(kib) >= 1 ? round(kib) : kib.toFixed(2)} KiB`;
}

/**
 * The name under a group: a variant of the group before it ("01-multiprocess --pool 16" after
 * "01-multiprocess") shows only what differs ("--pool 16"), so that two long names do not run
 * into each other; the bar's own tooltip keeps the full name.
 */
function nameUnder(label: string, previous: string | undefined): string {
  return previous !== undefined && label.startsWith(`${previous} `) ? label.slice(previous.length + 1) : label;
}

/** Long server names on two lines ("nginx," / "1 worker, open_file_cache"; "nginx，" / "1 个 worker，open_file_cache"). */
function wrapLabel(label: string): string[] {
  const at = label.search(/[ ，]/);
  if (label.length <= 16 || at <= 0) return [label];
  // A space goes; a Chinese comma stays at the end of the first line.
  return [label.slice(0, label[at] === ' ' ? at : at + 1), label.slice(at + 1)];
}

interface TextStyle {
  size?: number;
  anchor?: 'start' | 'middle' | 'end';
  weight?: 'bold';
  color?: string;
  /** Vertical text reading upwards from (x, y), for labels above narrow bars. */
  rotate?: boolean;
}

export function text(x: number, y: number, content: string, style: TextStyle): string {
  const attributes = [`x="${x.toFixed(1)}"`, `y="${y.toFixed(1)}"`];
  if (style.size !== undefined) attributes.push(`font-size="${style.size}"`);
  if (style.anchor !== undefined && style.anchor !== 'start') attributes.push(`text-anchor="${style.anchor}"`);
  if (style.weight !== undefined) attributes.push(`font-weight="${style.weight}"`);
  if (style.color !== undefined) attributes.push(`fill="${style.color}"`);
  if (style.rotate) attributes.push(`transform="rotate(-90 ${x.toFixed(1)} ${y.toFixed(1)})"`, 'dominant-baseline="middle"');
  return `<text ${attributes.join(' ')}>${escapeXml(content)}</text>`;
}
