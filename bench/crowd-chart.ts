/**
 * bench/crowd-chart.ts: bench/results/crowd.svg, the figure the article never had: the server
 * CPU time per request, and the busy connections' p99 latency, against the idle connections
 * held beside them, one line per server. Both axes are logarithmic: N runs from none to
 * twenty thousand, the cost from a few µs to a tenth of a second. (The x axis is log(N + 10), so
 * that N = 0 has a place at its left end.) The same drawing comes in Chinese (zh/crowd.svg,
 * for README.zh-CN.md and www/zh/), from the same numbers and one table of labels.
 */
import path from 'node:path';
import { FONTS, LANG_ATTRIBUTE, WIDTH, machineAndGenerator, serverName, text, writeInBothLanguages } from './chart.ts';
import { escapeXml, translationComment } from './figure-text.ts';
import { CROWD_FIGURE, cpuMicrosPerRequest, crowdLoadsOf, crowdRows, micros, milliseconds, type BenchReport, type Language } from './report.ts';
import { REPO_ROOT } from './site.ts';
import type { CrowdRow } from './types.ts';

const PANEL_HEIGHT = 330;
const LEFT = 70;
const LEGEND_WIDTH = 290;
const PLOT_RIGHT = WIDTH - LEGEND_WIDTH - 20;
const PLOT_TOP = 30;
const PLOT_BOTTOM = 50;
const X_TICKS = [0, 100, 300, 1000, 3000, 10_000, 20_000];
const Y_TICKS = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000];

/** Models in strong colours and solid lines, references dashed. */
const COLORS: Record<string, string> = {
  '03': '#8c564b',
  '04': '#d62728',
  '05': '#ff7f0e',
  '06': '#1f77b4',
  '07': '#17becf',
  'c-ceiling': '#222222',
  nginx: '#2ca02c',
  'nginx-cache': '#98c98a',
  'node-http': '#9467bd',
};

/** Every word of the figure, in English and in Chinese: the drawing is the same. */
const LABELS = {
  en: {
    title: (active: number) => `What idle connections cost the busy ${active === 1 ? 'one' : 'ones'}: ${active} busy keep-alive connection${active === 1 ? '' : 's'} beside N idle ones`,
    cpuPanel: 'Server CPU time per request, µs (log scale; lower is better)',
    latencyPanel: (active: number) => (active === 1 ? 'p99 latency of the busy connection' : `p99 latency of the ${active} busy connections`) + ', ms (log scale; lower is better)',
    xAxis: 'idle keep-alive connections held (log scale)',
    legend: (label: string, most: string) => `${label} (to ${most})`,
    point: (label: string, held: string, value: string, unit: string) => `${label}, ${held} idle: ${value} ${unit}`,
    end: (label: string, first: string, firstHeld: string, last: string, lastHeld: string) => `${label} ${first} µs with ${firstHeld}, ${last} µs with ${lastHeld}`,
    desc: (ends: string[]) => `Server CPU time per request (top) and p99 latency (bottom) against the idle connections held, one line per server. ${ends.join('; ')}.`,
  },
  zh: {
    title: (active: number) => `空闲连接给忙碌连接带来多少开销：N 个空闲连接旁边的 ${active} 个忙碌长连接`,
    cpuPanel: '服务器每请求 CPU 时间，µs（对数坐标，越低越好）',
    latencyPanel: (active: number) => `${active} 个忙碌连接的 p99 延迟，ms（对数坐标，越低越好）`,
    xAxis: '保持的空闲长连接数（对数坐标）',
    legend: (label: string, most: string) => `${label}（至 ${most}）`,
    point: (label: string, held: string, value: string, unit: string) => `${label}，${held} 个空闲连接：${value} ${unit}`,
    end: (label: string, first: string, firstHeld: string, last: string, lastHeld: string) => `${label} 在 ${firstHeld} 个时 ${first} µs，${lastHeld} 个时 ${last} µs`,
    desc: (ends: string[]) => `服务器每请求 CPU 时间（上）和 p99 延迟（下）随所保持的空闲连接数的变化，每个服务器一条线。${ends.join('；')}。`,
  },
} satisfies Record<Language, unknown>;

type Labels = (typeof LABELS)[Language];

interface Line {
  label: string;
  color: string;
  dashed: boolean;
  rows: CrowdRow[];
}

interface CrowdPanel {
  title: string;
  unit: string;
  valueOf(row: CrowdRow): number | null;
  format(value: number): string;
}

/**
 * Writes crowd.svg and zh/crowd.svg into `folder`, and with `site` into www/images/ and
 * www/images/zh/ too, where the 04, 05 and 06 pages of both languages show them.
 */
export function writeCrowdCharts(report: BenchReport, folder: string, site: boolean): void {
  const charts = renderCrowdCharts(report);
  if (charts === null) return;
  writeInBothLanguages(site ? [folder, path.join(REPO_ROOT, 'www', 'images')] : [folder], CROWD_FIGURE, charts);
}

/**
 * The figure in English and in Chinese, or null when the run has no crowd rows. The Chinese one
 * records the fingerprint of the English text it translates (tests/helpers/translated-figure.ts
 * checks it, for tests/site.test.ts and tests/bench.test.ts).
 */
function renderCrowdCharts(report: BenchReport): { en: string; zh: string } | null {
  const en = renderCrowdChart(report, 'en');
  if (en === null) return null;
  return { en, zh: renderCrowdChart(report, 'zh', translationComment(CROWD_FIGURE, en))! };
}

function renderCrowdChart(report: BenchReport, language: Language, comment?: string): string | null {
  const say: Labels = LABELS[language];
  // The light load, as the claims: each pass of the loop serves one request (bench/report.ts).
  const active = crowdLoadsOf(report)[0]!.active;
  const lines: Line[] = report.servers
    .map((server) => ({
      label: serverName(server, language),
      color: COLORS[server.id] ?? COLORS[server.id.slice(0, 2)] ?? '#999999',
      dashed: server.kind === 'reference',
      rows: crowdRows(report, server.id, active).filter((row) => row.load.requests > 0),
    }))
    .filter((line) => line.rows.length > 0);
  if (lines.length === 0) return null;
  const panels: CrowdPanel[] = [
    { title: say.cpuPanel, unit: 'µs', valueOf: (row) => cpuMicrosPerRequest(row), format: (value) => micros(value) },
    { title: say.latencyPanel(active), unit: 'ms', valueOf: (row) => row.load.p99Ms, format: (value) => milliseconds(value) },
  ];
  const height = 56 + panels.length * PANEL_HEIGHT;
  const body = panels.map((panel, i) => `<g transform="translate(0 ${56 + i * PANEL_HEIGHT})">\n${drawPanel(panel, lines, say)}\n</g>`);
  const title = say.title(active);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" role="img"${LANG_ATTRIBUTE[language]} aria-labelledby="title desc" font-family="${FONTS[language]}" font-size="11">`,
    ...(comment === undefined ? [] : [comment]),
    `<title id="title">${escapeXml(title)}</title>`,
    `<desc id="desc">${escapeXml(describe(lines, say))}</desc>`,
    `<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`,
    text(WIDTH / 2, 18, title, { size: 16, anchor: 'middle', weight: 'bold' }),
    text(WIDTH / 2, 34, machineAndGenerator(report, language), { size: 11, anchor: 'middle', color: '#555' }),
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

function drawPanel(panel: CrowdPanel, lines: Line[], say: Labels): string {
  const plotHeight = PANEL_HEIGHT - PLOT_TOP - PLOT_BOTTOM;
  const values = lines.flatMap((line) => line.rows.map(panel.valueOf)).filter((value): value is number => value !== null && value > 0);
  // At least a decade and a half in view: a flat line must look flat, not blown up.
  const low = Math.log10(Math.min(...values)) - 0.3;
  const high = Math.max(Math.log10(Math.max(...values)) + 0.3, low + 1.5);
  const y = (value: number) => PLOT_TOP + plotHeight * (1 - (Math.log10(value) - low) / (high - low));
  const maxN = Math.max(X_TICKS.at(-1)!, ...lines.flatMap((line) => line.rows.map((row) => row.held)));
  const out: string[] = [text(LEFT, 16, panel.title, { size: 13, weight: 'bold' })];
  for (const tick of Y_TICKS.filter((value) => Math.log10(value) >= low && Math.log10(value) <= high)) {
    out.push(`<line x1="${LEFT}" x2="${PLOT_RIGHT}" y1="${y(tick).toFixed(1)}" y2="${y(tick).toFixed(1)}" stroke="#e0e0e0"/>`);
    out.push(text(LEFT - 6, y(tick) + 4, tick.toLocaleString('en'), { anchor: 'end', color: '#555' }));
  }
  const bottom = PLOT_TOP + plotHeight;
  out.push(`<line x1="${LEFT}" x2="${PLOT_RIGHT}" y1="${bottom}" y2="${bottom}" stroke="#333"/>`);
  for (const tick of X_TICKS) {
    out.push(`<line x1="${xOf(tick, maxN).toFixed(1)}" x2="${xOf(tick, maxN).toFixed(1)}" y1="${PLOT_TOP}" y2="${bottom + 4}" stroke="#eeeeee"/>`);
    out.push(text(xOf(tick, maxN), bottom + 16, tick.toLocaleString('en'), { anchor: 'middle', color: '#555' }));
  }
  out.push(text((LEFT + PLOT_RIGHT) / 2, bottom + 34, say.xAxis, { anchor: 'middle' }));
  lines.forEach((line, i) => {
    const points = line.rows.flatMap((row) => {
      const value = panel.valueOf(row);
      return value === null || value <= 0 ? [] : [{ row, value, px: xOf(row.held, maxN), py: y(value) }];
    });
    const dash = line.dashed ? ' stroke-dasharray="6 3"' : '';
    out.push(`<polyline fill="none" stroke="${line.color}" stroke-width="2"${dash} points="${points.map((p) => `${p.px.toFixed(1)},${p.py.toFixed(1)}`).join(' ')}"/>`);
    for (const point of points) {
      const tip = say.point(line.label, point.row.held.toLocaleString('en'), panel.format(point.value), panel.unit);
      out.push(`<circle cx="${point.px.toFixed(1)}" cy="${point.py.toFixed(1)}" r="3" fill="${line.color}"><title>${escapeXml(tip)}</title></circle>`);
    }
    const legendY = PLOT_TOP + 8 + i * 18;
    const legendX = PLOT_RIGHT + 20;
    out.push(`<line x1="${legendX}" x2="${legendX + 24}" y1="${legendY}" y2="${legendY}" stroke="${line.color}" stroke-width="2"${dash}/>`);
    const most = Math.max(...line.rows.map((row) => row.held));
    out.push(text(legendX + 30, legendY + 4, say.legend(line.label, most.toLocaleString('en')), { size: 10 }));
  });
  return out.join('\n');
}

/** The figure in words, for a reader who cannot see it: each server's cost with none and with the most idle connections. */
function describe(lines: Line[], say: Labels): string {
  const ends = lines.map((line) => {
    const first = line.rows[0]!;
    const last = line.rows.at(-1)!;
    return say.end(line.label, micros(cpuMicrosPerRequest(first)), first.held.toLocaleString('en'), micros(cpuMicrosPerRequest(last)), last.held.toLocaleString('en'));
  });
  return say.desc(ends);
}

/** log(N + 10), so that N = 0 sits at the left end. */
function xOf(n: number, maxN: number): number {
  const start = Math.log10(10);
  return LEFT + ((PLOT_RIGHT - LEFT) * (Math.log10(n + 10) - start)) / (Math.log10(maxN + 10) - start);
}
