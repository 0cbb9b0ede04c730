/**
 * A smoke run of `npm run bench` with the tiniest settings: it must produce a well-formed
 * report (machine line, tables with numbers, CPU per request, the targets) and well-formed
 * SVG figures, each with its Chinese translation in zh/; the references whose prerequisites
 * this machine has (nginx, a C compiler) have their rows. And the README sections it
 * rewrites. It asserts no timing: CI machines differ, and the bench's job is to measure, not
 * to pass.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from './helpers/server.ts';
import { rewriteMarked, updateReadmes } from '../bench/readme.ts';
import { pairedRatio } from '../bench/paired.ts';
import { assertTranslation } from './helpers/translated-figure.ts';
import type { BenchReport } from '../bench/report.ts';

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

const hasCommand = (command: string, args: string[]) => spawnSync(command, args, { stdio: 'ignore' }).error === undefined;
const HAS_NGINX = ['/usr/sbin/nginx', '/usr/local/sbin/nginx', 'nginx'].some((binary) => hasCommand(binary, ['-v']));
const HAS_CC = ['cc', 'gcc', 'clang'].some((compiler) => hasCommand(compiler, ['--version']));
const NUMBER = /^\d[\d,]*(\.\d+)?$/;

/**
 * The first import cycle among the .ts files of `folder` (relative imports, `import type`
 * included), as the files along it ending where it started; null when there is none.
 */
function importCycle(folder: string): string[] | null {
  const files = readdirSync(folder).filter((name) => name.endsWith('.ts'));
  const imports = new Map(
    files.map((file) => {
      const source = readFileSync(path.join(folder, file), 'utf8');
      const targets = [...source.matchAll(/^(?:import|export)\b[^;]*?\bfrom '\.\/([\w.-]+\.ts)'/gm)].map((match) => match[1]!);
      return [file, targets.filter((target) => files.includes(target))];
    }),
  );
  const done = new Set<string>();
  const visit = (file: string, path: string[]): string[] | null => {
    if (path.includes(file)) return [...path.slice(path.indexOf(file)), file];
    if (done.has(file)) return null;
    for (const target of imports.get(file)!) {
      const cycle = visit(target, [...path, file]);
      if (cycle !== null) return cycle;
    }
    done.add(file);
    return null;
  };
  for (const file of files) {
    const cycle = visit(file, []);
    if (cycle !== null) return cycle;
  }
  return null;
}

test('bench/ has no import cycle: a new scenario is a file that bench/run.ts lists', () => {
  const cycle = importCycle(path.join(REPO_ROOT, 'bench'));
  assert.equal(cycle, null, `bench/ imports in a circle: ${cycle?.join(' → ')}`);
  // The check itself finds one: a.ts → b.ts → a.ts (type imports count too).
  const folder = mkdtempSync(path.join(os.tmpdir(), 'bench-cycle-'));
  try {
    writeFileSync(path.join(folder, 'a.ts'), "import type { B } from './b.ts';\nexport type A = B;\n");
    writeFileSync(path.join(folder, 'b.ts'), "import {\n  type A,\n} from './a.ts';\nexport type B = A | 1;\n");
    assert.deepEqual(importCycle(folder), ['a.ts', 'b.ts', 'a.ts']);
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
});

test('a paired target is the median of the rounds\' ratios, with the lowest and highest round beside it', () => {
  // Round 3: 06 answered nothing, so that round counts for neither side.
  const epoll = { server: '06-epoll', microsPerRequest: [8, 9, null, 7.5, 12] };
  const ceiling = { server: 'c-ceiling', microsPerRequest: [6.4, 6, 6.5, 7.5, 8] };
  const paired = pairedRatio(epoll, ceiling);
  assert.ok(paired !== null);
  assert.equal(paired.rounds, 4);
  assert.equal(paired.ratio, (1.25 + 1.5) / 2, 'ratios 1.25, 1.5, 1, 1.5: their median');
  assert.equal(paired.lowest, 1);
  assert.equal(paired.highest, 1.5);
  assert.equal(paired.mine, (8 + 9) / 2, 'each side\'s median over the same rounds');
  assert.equal(pairedRatio({ server: '06-epoll', microsPerRequest: [8, null] }, ceiling), null, 'one round is not enough');
});

test('a tiny bench run writes a well-formed Markdown report and its figures, each with its Chinese twin', { timeout: 150_000 }, async () => {
  const out = mkdtempSync(path.join(os.tmpdir(), 'bench-smoke-'));
  try {
    const models = ['03-coroutine', 'node-http', 'nginx-cache', 'c-ceiling', 'js-floor'].join(',');
    const args = ['--import', 'tsx', 'bench/run.ts', '--quick', '--model', models, '--scenario', 'keepalive,c10k,crowd,slowloris', '--duration', '1', '--out', out];
    const { stdout, stderr } = await run(process.execPath, args, { cwd: REPO_ROOT, timeout: 140_000 });
    assert.match(stdout, /^Machine: .+ cores, .+ Node v\d+/m, 'the terminal output names the machine');

    const markdown = readFileSync(path.join(out, 'latest.md'), 'utf8');
    assert.match(markdown, /^# Benchmark/m);
    assert.match(markdown, /^- \*\*Machine:\*\* .+, \d+ cores, .+Node v\d+/m, 'the report names the machine');
    assert.match(markdown, /^- \*\*Load generator:\*\* (wrk|autocannon)/m, 'the report names the load generator');
    assert.match(markdown, /^- \*\*Command:\*\* `.*--scenario keepalive,c10k,crowd,slowloris.*`$/m, 'the report says how it was made');
    assert.match(markdown, /!\[[^\]]*\]\(latest\.svg\)/, 'the report shows the chart');

    // The keep-alive table: a header, an alignment row, then rows with a number of requests/s
    // and, beside it, the server's CPU time per request.
    const keepAlive = table(markdown, 'Keep-alive');
    const column = keepAlive.header.indexOf('requests/s');
    assert.ok(column > 0, 'a requests/s column');
    assert.equal(keepAlive.header[column + 1], 'server CPU µs/req', 'CPU per request beside requests/s');
    assert.ok(keepAlive.header.includes('generator CPU'), 'the load generator\'s CPU is shown too');
    for (const cells of keepAlive.rows) {
      assert.match(cells[column]!, NUMBER, `requests/s is a number: ${cells.join(' | ')}`);
      assert.match(cells[column + 1]!, NUMBER, `CPU µs per request is a number: ${cells.join(' | ')}`);
    }
    const servers = keepAlive.rows.map((cells) => cells[0]);
    assert.ok(servers.includes('node:http (reference)'), 'the node:http reference has a row');
    if (HAS_NGINX) assert.ok(servers.includes('nginx, 1 worker, open_file_cache (reference)'), 'nginx with open_file_cache has a row');
    assert.ok(servers.includes('JS epoll floor (reference)'), 'the JS floor has a row');
    if (HAS_CC) assert.ok(servers.includes('C epoll ceiling (reference)'), 'the C ceiling has a row');
    else assert.match(stderr, /skipping c-ceiling: no C compiler/, 'without a compiler the bench says why the C ceiling is missing');
    assert.match(markdown, /CPU µs\/req is that tree's CPU time .* the figure to compare, because the load generator runs on the same cores/, 'the report says why CPU per request is the figure to compare');

    // The targets: CPU per request against the references, each met, not met or not measured.
    const targets = table(markdown, 'Targets');
    const coroutine = targets.rows.find((cells) => cells[0]!.startsWith('03-coroutine CPU/request ≤ 1× nginx with open_file_cache'));
    assert.ok(coroutine, `a target for 03 against nginx with open_file_cache:\n${targets.rows.join('\n')}`);
    // The two took turns under the same load (bench/paired.ts): the median of the rounds' ratios.
    if (HAS_NGINX) assert.match(coroutine[1]!, /^\d+\.\d\d× \([\d.,]+ vs [\d.,]+ µs; median of 2 alternating rounds, each \d+\.\d\d–\d+\.\d\d×\)$/, `measured as a ratio of µs: ${coroutine.join(' | ')}`);
    for (const cells of targets.rows) assert.match(cells[2]!, /^[✓✗–]$/, `met, not met or not measured: ${cells.join(' | ')}`);
    assert.ok(targets.rows.some((cells) => cells[0]!.startsWith('06-epoll CPU/request ≤ 1.2× C ceiling')), 'a target for 06 against the C ceiling');
    // Beside them, for scale, the JS floor against the C ceiling from the same rounds, and what a
    // system call costs here: the two figures that bound how close 05 and 06 can get.
    if (HAS_CC) {
      const floor = targets.rows.find((cells) => cells[0]!.startsWith('(for scale, not a target) JS floor CPU/request vs C ceiling'));
      assert.ok(floor, `the JS floor beside the targets:\n${targets.rows.join('\n')}`);
      assert.match(floor[1]!, /^\d+\.\d\d× \([\d.,]+ vs [\d.,]+ µs; median of 2 alternating rounds/, `measured in the alternation: ${floor.join(' | ')}`);
      assert.equal(floor[2], '–', 'not a target: neither met nor missed');
      assert.match(markdown, /^- \*\*System calls:\*\* one `recv\(\)` from C costs [\d,]+ ns of CPU; right after one, reading a line in each of 256 pages costs [+-]\d+ ns/m, 'the report says what a system call costs here');
    }

    // The C10K table: how many idle connections were held, and memory per connection.
    const idle = table(markdown, 'C10K');
    const held = idle.header.indexOf('held');
    const perConnection = idle.header.indexOf('KiB/conn (RSS)');
    for (const cells of idle.rows) {
      assert.match(cells[held]!, /^[\d,]+ of 1,000$/, `held N of 1,000: ${cells.join(' | ')}`);
      assert.match(cells[perConnection]!, /^(≈0|[\d,]+(\.\d)?)$/, `memory per connection is a number: ${cells.join(' | ')}`);
    }

    // The crowd: a light load (one busy connection) and a busy one (ten) beside 0 and then 1,000
    // idle connections, all still open after it; CPU per request at each level, and how high
    // each server got and why it stopped.
    const crowd = table(markdown, 'Crowd: a small load');
    const [busyColumn, heldColumn, openColumn, costColumn] = ['busy', 'idle held', 'still open', 'server CPU µs/req'].map((title) => crowd.header.indexOf(title));
    for (const busy of ['1', '10']) {
      const climb = crowd.rows.filter((cells) => cells[0] === '03-coroutine' && cells[busyColumn!] === busy).map((cells) => cells[heldColumn!]);
      assert.deepEqual(climb, ['0', '1,000', '0, again'], `with ${busy} busy, N climbs from 0 to 1,000, and 0 once more when they are closed`);
    }
    for (const cells of crowd.rows) {
      assert.equal(cells[openColumn], cells[heldColumn]!.replace(', again', ''), `every idle connection still open after the measurement: ${cells.join(' | ')}`);
      assert.match(cells[costColumn!]!, NUMBER, `CPU µs per request is a number: ${cells.join(' | ')}`);
    }
    assert.ok(!crowd.rows.some((cells) => cells[0] === 'JS epoll floor (reference)'), 'the JS floor serves keep-alive only');
    const reach = table(markdown, 'Crowd: how high');
    for (const cells of reach.rows) assert.match(cells[2]!, /highest level|descriptor limit|worker_connections/, `what stopped it: ${cells.join(' | ')}`);
    assert.match(markdown, /!\[[^\]]+\]\(crowd\.svg\)/, 'the report shows the crowd figure');
    assert.ok(targets.rows.some((cells) => cells[0]!.startsWith('06-epoll CPU/request with 10,000 or more idle connections ≤ 1.2× with none (crowd, 1 busy connection)')), 'the crowd claim for 06 is a target, read on the light load');
    const crowdSvg = readFileSync(path.join(out, 'crowd.svg'), 'utf8');
    assertBalancedXml(crowdSvg);
    assert.match(crowdSvg, /<polyline [^>]*stroke="#[0-9a-f]{6}"/, 'the crowd figure has lines');
    assertChineseTwin(out, 'crowd.svg', crowdSvg);

    // Slowloris: 1,100 connections trickle their heads beside a normal load; 03 serves the load
    // and every newcomer, and closes the tricklers with a 408 at the short deadline the bench set.
    const slow = table(markdown, 'Slowloris');
    assert.deepEqual(slow.rows.map((cells) => cells[0]), ['03-coroutine'], 'the models and nginx only (not the references that serve one page)');
    const slowRow = slow.rows[0]!;
    const cell = (title: string) => slowRow[slow.header.indexOf(title)]!;
    assert.equal(cell('trickling (K)'), '1,100');
    assert.match(cell('normal load served'), /^[\d,]+ of [\d,]+ \(100%\)$/, `the normal load served: ${slowRow.join(' | ')}`);
    assert.match(cell('newcomers served'), /^(\d+) of \1$/, `every newcomer served: ${slowRow.join(' | ')}`);
    assert.match(cell('closed tricklers'), /[\d,]+ × 408/, `the deadline closed the tricklers with a 408: ${slowRow.join(' | ')}`);

    const svg = readFileSync(path.join(out, 'latest.svg'), 'utf8');
    assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    assert.match(svg, /<\/svg>\s*$/);
    assertBalancedXml(svg);
    assert.match(svg, /<rect [^>]*fill="#[0-9a-f]{6}"><title>/, 'the chart has bars');
    assertChineseTwin(out, 'latest.svg', svg);

    const numbers = JSON.parse(readFileSync(path.join(out, 'latest.json'), 'utf8')) as BenchReport;
    assert.ok(numbers.results.load.length >= 3, 'latest.json holds the measurements');
    if (HAS_NGINX) {
      const turns = numbers.results.paired?.find((row) => row.server === '03-coroutine')?.microsPerRequest;
      assert.equal(turns?.length, 2, 'latest.json holds each turn of the alternation');
    }
    assertReadmesRewritten(numbers, out);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

/** The same figure in Chinese (zh/`figure` in `folder`), translating this very English text. */
function assertChineseTwin(folder: string, figure: string, english: string): void {
  const chinese = readFileSync(path.join(folder, 'zh', figure), 'utf8');
  assertBalancedXml(chinese);
  assertTranslation(figure, english, chinese);
}

/** The READMEs get the run's summary and targets between their markers, in their language. */
function assertReadmesRewritten(report: BenchReport, folder: string): void {
  const marked = (heading: string) =>
    `# ${heading}\n\nbefore\n<!-- bench:summary -->\nold summary\n<!-- /bench:summary -->\nbetween\n<!-- bench:targets -->\nold targets\n<!-- /bench:targets -->\nafter\n`;
  writeFileSync(path.join(folder, 'README.md'), marked('Readme'));
  // No README.zh-CN.md in this folder: reported, nothing written.
  const lines = updateReadmes(report, folder);
  assert.match(lines[1]!, /^README\.zh-CN\.md: not found/);
  const english = readFileSync(path.join(folder, 'README.md'), 'utf8');
  assert.doesNotMatch(english, /old summary|old targets/);
  assert.match(english, /^before\n<!-- bench:summary -->\nFrom one `npx tsx bench\/run\.ts .*`/m, 'the command that made the numbers');
  assert.match(english, /\| server \| keep-alive c=10 req\/s \|/, 'the summary table');
  assert.match(english, /<!-- \/bench:summary -->\nbetween\n<!-- bench:targets -->\n\| target \| measured \| met \|/, 'the targets table, text around left alone');
  assert.match(english, /<!-- \/bench:targets -->\nafter\n$/);

  writeFileSync(path.join(folder, 'README.zh-CN.md'), marked('中文'));
  updateReadmes(report, folder);
  const chinese = readFileSync(path.join(folder, 'README.zh-CN.md'), 'utf8');
  assert.match(chinese, /\| 服务器 \| 长连接 c=10 请求\/秒 \|/, 'Chinese headings in the Chinese README');
  assert.match(chinese, /\| 目标 \| 实测 \| 达成 \|/);
  assert.equal(rewriteMarked('no markers here', { summary: 'x' }), null, 'a README without markers is left alone');
}

test('bench/ffi-call-cost.ts prints the cost of one recv() through koffi, and from C when a compiler is at hand', { timeout: 60_000 }, async () => {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', 'bench/ffi-call-cost.ts'], { cwd: REPO_ROOT, timeout: 50_000 });
  assert.match(stdout, /^long recv\(int, void \*, size_t, int\), a Buffer \(as shared\/libc\.ts\) +\d+ ns/m, 'the declaration shared/libc.ts uses');
  if (HAS_CC) assert.match(stdout, /^recv\(\) from C +\d+ ns$/m, 'the same call from C');
  else assert.match(stdout, /no figure from C: no C compiler/);
});

const HAS_VALGRIND = hasCommand('valgrind', ['--version']);

test('bench/instructions.ts counts the instructions a server runs per request (the C ceiling, briefly)', {
  timeout: 120_000,
  skip: !HAS_VALGRIND ? 'valgrind is not installed' : !HAS_CC ? 'no C compiler for the C ceiling' : false,
}, async () => {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', 'bench/instructions.ts', 'c', '--warmup', '2000', '--requests', '2000'], { cwd: REPO_ROOT, timeout: 110_000 });
  const row = /^C epoll ceiling +([\d,]+) \(all threads ([\d,]+)\) +1\.0× C$/m.exec(stdout);
  assert.ok(row !== null, `no row for the C ceiling in:\n${stdout}`);
  // A request's recv, header search and send cannot take fewer than a few hundred instructions.
  assert.ok(Number(row[1]!.replaceAll(',', '')) > 200, `implausibly few instructions: ${row[1]}`);
});
