/**
 * A smoke run of `npm run bench` with the tiniest settings: it must produce a well-formed
 * report (machine line, tables with numbers) and a well-formed SVG chart. It asserts no timing:
 * CI machines differ, and the bench's job is to measure, not to pass.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from './helpers/server.ts';

const run = promisify(execFile);

/** Every tag closed in order; self-closing tags and the XML declaration stand alone. */
function assertBalancedXml(xml: string): void {
  const open: string[] = [];
  for (const [tag, closing, name, selfClosing] of xml.matchAll(/<(\/?)([a-zA-Z][\w:-]*)[^>]*?(\/?)>/g)) {
    if (selfClosing === '/') continue;
    if (closing === '') open.push(name!);
    else assert.equal(open.pop(), name, `unbalanced ${tag}`);
  }
  assert.deepEqual(open, [], 'tags left open');
}

/** A Markdown table under the heading that starts with `title`: its header and its rows, as cells. */
function table(markdown: string, title: string): { header: string[]; rows: string[][] } {
  const section = markdown.split(`\n## ${title}`)[1]?.split('\n## ')[0] ?? '';
  const lines = section.split('\n').filter((line) => line.startsWith('|'));
  assert.ok(lines.length >= 3, `the ${title} table has a header, an alignment row and rows:\n${section}`);
  assert.match(lines[1]!, /^\|(\s*-+:?\s*\|)+$/, 'an alignment row follows the header');
  const cells = (line: string) => line.slice(1, -1).split(' | ').map((cell) => cell.trim());
  const header = cells(lines[0]!);
  const rows = lines.slice(2).map(cells);
  for (const row of rows) assert.equal(row.length, header.length, `a row as wide as the header: ${row.join(' | ')}`);
  return { header, rows };
}

test('a tiny bench run writes a well-formed Markdown report and SVG chart', { timeout: 120_000 }, async () => {
  const out = mkdtempSync(path.join(os.tmpdir(), 'bench-smoke-'));
  try {
    const args = ['--import', 'tsx', 'bench/run.ts', '--quick', '--model', '03-coroutine,node-http', '--scenario', 'keepalive,c10k', '--duration', '1', '--out', out];
    const { stdout } = await run(process.execPath, args, { cwd: REPO_ROOT, timeout: 110_000 });
    assert.match(stdout, /^Machine: .+ cores, .+ Node v\d+/m, 'the terminal output names the machine');

    const markdown = readFileSync(path.join(out, 'latest.md'), 'utf8');
    assert.match(markdown, /^# Benchmark/m);
    assert.match(markdown, /^- \*\*Machine:\*\* .+, \d+ cores, .+Node v\d+/m, 'the report names the machine');
    assert.match(markdown, /^- \*\*Load generator:\*\* (wrk|autocannon)/m, 'the report names the load generator');
    assert.match(markdown, /^- \*\*Command:\*\* `.*--scenario keepalive,c10k.*`$/m, 'the report says how it was made');
    assert.match(markdown, /!\[[^\]]*\]\(latest\.svg\)/, 'the report shows the chart');

    // The keep-alive table: a header, an alignment row, then rows with a number of requests/s.
    const keepAlive = table(markdown, 'Keep-alive');
    const column = keepAlive.header.indexOf('requests/s');
    assert.ok(column > 0, 'a requests/s column');
    for (const cells of keepAlive.rows) assert.match(cells[column]!, /^\d[\d,]*(\.\d+)?$/, `requests/s is a number: ${cells.join(' | ')}`);
    assert.ok(keepAlive.rows.some((cells) => cells[0] === 'node:http (reference)'), 'the node:http reference has a row');

    // The C10K table: how many idle connections were held, and memory per connection.
    const idle = table(markdown, 'C10K');
    const held = idle.header.indexOf('held');
    const perConnection = idle.header.indexOf('KiB/conn (RSS)');
    for (const cells of idle.rows) {
      assert.match(cells[held]!, /^[\d,]+ of 1,000$/, `held N of 1,000: ${cells.join(' | ')}`);
      assert.match(cells[perConnection]!, /^(≈0|[\d,]+(\.\d)?)$/, `memory per connection is a number: ${cells.join(' | ')}`);
    }

    const svg = readFileSync(path.join(out, 'latest.svg'), 'utf8');
    assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    assert.match(svg, /<\/svg>\s*$/);
    assertBalancedXml(svg);
    assert.match(svg, /<rect [^>]*fill="#[0-9a-f]{6}"><title>/, 'the chart has bars');

    const numbers = JSON.parse(readFileSync(path.join(out, 'latest.json'), 'utf8')) as { results: { load: unknown[] } };
    assert.ok(numbers.results.load.length >= 3, 'latest.json holds the measurements');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
