/**
 * bench/crowd-chart.ts: bench/results/crowd.svg, the figure the article never had: the server
 * CPU time per request, and the busy connections' p99 latency, against the idle connections
 * held beside them, one line per server. Both axes are logarithmic: N runs from none to
 * twenty thousand, the cost from a few µs to a millisecond. (The x axis is log(N + 10), so
 * that N = 0 has a place at its left end.)
 */
import { WIDTH, escapeXml, text } from './chart.ts';
import { cpuMicrosPerRequest, crowdRows, machineLine, micros, milliseconds, type BenchReport } from './report.ts';
import type { CrowdRow } from './types.ts';

const PANEL_HEIGHT = 330;
const LEFT = 70;
const LEGEND_WIDTH = 290;
const PLOT_RIGHT = WIDTH - LEGEND_WIDTH - 20;
const PLOT_TOP = 30;
const PLOT_BOTTOM = 50;
const X_TICKS = [0, 100, 300, 1000, 3000, 10_000, 20_000];
const Y_TICKS = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000];

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

/** The figure, or null when the run has no crowd rows. */
export function renderCrowdChart(report: BenchReport): string | null {
  const lines: Line[] = report.servers
    .map((server) => ({
      label: server.label.replace(/ \(reference\)$/, ''),
      color: COLORS[server.id] ?? COLORS[server.id.slice(0, 2)] ?? '#999999',
      dashed: server.kind === 'reference',
      rows: crowdRows(report, server.id).filter((row) => row.load.requests > 0),
    }))
    .filter((line) => line.rows.length > 0);
  if (lines.length === 0) return null;
  const panels: CrowdPanel[] = [
    {
      title: 'Server CPU time per request, µs (log scale; lower is better)',
      unit: 'µs',
      valueOf: (row) => cpuMicrosPerRequest(row),
      format: (value) => micros(value),
    },
    {
      title: `p99 latency of the ${report.settings.crowdActive} busy connections, ms (log scale; lower is better)`,
      unit: 'ms',
      valueOf: (row) => row.load.p99Ms,
      format: (value) => milliseconds(value),
    },
  ];
  const height = 56 + panels.length * PANEL_HEIGHT;
  const body = panels.map((panel, i) => `<g transform="translate(0 ${56 + i * PANEL_HEIGHT})">\n${drawPanel(panel, lines)}\n</g>`);
  const title = `What idle connections cost the busy ones: ${report.settings.crowdActive} busy keep-alive connections beside N idle ones`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" role="img" aria-labelledby="title desc" font-family="sans-serif" font-size="11">`,
    `<title id="title">${escapeXml(title)}</title>`,
    `<desc id="desc">${escapeXml(describe(lines))}</desc>`,
    `<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`,
    text(WIDTH / 2, 18, title, { size: 16, anchor: 'middle', weight: 'bold' }),
    text(WIDTH / 2, 34, `${machineLine(report)}; ${report.generator.name}`, { size: 11, anchor: 'middle', color: '#555' }),
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

function drawPanel(panel: CrowdPanel, lines: Line[]): string {
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
  out.push(text((LEFT + PLOT_RIGHT) / 2, bottom + 34, 'idle keep-alive connections held (log scale)', { anchor: 'middle' }));
  lines.forEach((line, i) => {
    const points = line.rows.flatMap((row) => {
      const value = panel.valueOf(row);
      return value === null || value <= 0 ? [] : [{ row, value, px: xOf(row.held, maxN), py: y(value) }];
    });
    const dash = line.dashed ? ' stroke-dasharray="6 3"' : '';
    out.push(`<polyline fill="none" stroke="${line.color}" stroke-width="2"${dash} points="${points.map((p) => `${p.px.toFixed(1)},${p.py.toFixed(1)}`).join(' ')}"/>`);
    for (const point of points) {
      const tip = `${line.label}, ${point.row.held.toLocaleString('en')} idle: ${panel.format(point.value)} ${panel.unit}`;
      out.push(`<circle cx="${point.px.toFixed(1)}" cy="${point.py.toFixed(1)}" r="3" fill="${line.color}"><title>${escapeXml(tip)}</title></circle>`);
    }
    const legendY = PLOT_TOP + 8 + i * 18;
    const legendX = PLOT_RIGHT + 20;
    out.push(`<line x1="${legendX}" x2="${legendX + 24}" y1="${legendY}" y2="${legendY}" stroke="${line.color}" stroke-width="2"${dash}/>`);
    const most = Math.max(...line.rows.map((row) => row.held));
    out.push(text(legendX + 30, legendY + 4, `${line.label} (to ${most.toLocaleString('en')})`, { size: 10 }));
  });
  return out.join('\n');
}

/** The figure in words, for a reader who cannot see it: each server's cost with none and with the most idle connections. */
function describe(lines: Line[]): string {
  const ends = lines.map((line) => {
    const first = line.rows[0]!;
    const last = line.rows.at(-1)!;
    return `${line.label} ${micros(cpuMicrosPerRequest(first))} µs with ${first.held.toLocaleString('en')}, ${micros(cpuMicrosPerRequest(last))} µs with ${last.held.toLocaleString('en')}`;
  });
  return `Server CPU time per request (top) and p99 latency (bottom) against the idle connections held, one line per server. ${ends.join('; ')}.`;
}

/** log(N + 10), so that N = 0 sits at the left end. */
function xOf(n: number, maxN: number): number {
  const start = Math.log10(10);
  return LEFT + ((PLOT_RIGHT - LEFT) * (Math.log10(n + 10) - start)) / (Math.log10(maxN + 10) - start);
}
