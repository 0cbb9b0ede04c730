/**
 * README.md and README.zh-CN.md tell the same tour in two languages, and bench/README.md and
 * bench/README.zh-CN.md the benchmark's notes. Prose is translated, but what a reader types or
 * opens is not: every command, file name, flag and linked file that appears in one README of a
 * pair must appear in the other. This test lists those "literal" things in each and fails on any
 * that only one of them has. Two literals are translated: a figure (the Chinese README shows
 * www/images/zh/X.svg where the English one shows www/images/X.svg, and bench/results/zh/X.svg
 * where it shows bench/results/X.svg) and a README itself (each links to the other language's,
 * and to the README of its own language elsewhere).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_PORT } from '../shared/cli.ts';
import { linuxOnlyMessage } from '../shared/linux-only.ts';
import { REPO_ROOT } from './helpers/server.ts';

const ENGLISH = 'README.md';
const CHINESE = 'README.zh-CN.md';
/**
 * Each pair: the English README and its Chinese twin, from the repository's root, and how few
 * literals its English README may yield before the picking looks broken (README.md has about
 * 200, bench/README.md about 30).
 */
const PAIRS = [
  { english: ENGLISH, chinese: CHINESE, minimumLiterals: 40 },
  { english: 'bench/README.md', chinese: 'bench/README.zh-CN.md', minimumLiterals: 15 },
];

const COMMAND_WORDS = /^(npx|npm|node|tsx|git|strace|ls|cat|ss|ps|top|curl|grep|sudo|apt-get|mkdir|cp|cd|exec|ulimit|sysctl|wrk|nginx|perf)\b/;
const FILE_NAME = /(^|\/)[\w.-]+\.(ts|js|cjs|mjs|json|md|html|css|svg|png|txt|c|lua|sh)$/;

/** Does this piece of code look like something typed or opened, rather than a word in prose? */
function isLiteral(code: string): boolean {
  return (
    COMMAND_WORDS.test(code) ||
    /(^|\s)--?[a-zA-Z][\w-]*/.test(code) || // a flag
    FILE_NAME.test(code) ||
    /^[\w.-]+\/$/.test(code) || // a folder such as shared/ or www/
    code.startsWith('/proc/')
  );
}

/** The literal things in one README: code spans, commands in code blocks, and linked local files. */
function literalsOf(markdown: string): Set<string> {
  const found = new Set<string>();
  const add = (text: string) => {
    const trimmed = text.trim();
    if (trimmed !== '') found.add(trimmed);
  };
  // Fenced blocks: each line up to its comment (comments are prose, and get translated).
  const withoutBlocks = markdown.replace(/^```[^\n]*\n([\s\S]*?)^```/gm, (_block, body: string) => {
    for (const line of body.split('\n')) add(line.replace(/\s+#\s.*$/, '').replace(/\s{2,}.*$/, ''));
    return '';
  });
  for (const [, code] of withoutBlocks.matchAll(/`([^`\n]+)`/g)) if (isLiteral(code!)) add(code!);
  for (const [, target] of withoutBlocks.matchAll(/\]\(([^)\s]+)\)/g)) {
    if (!/^(https?:|#|mailto:)/.test(target!)) add(target!);
  }
  return found;
}

/**
 * What a literal of a Chinese README stands for in its English twin: a figure's Chinese variant
 * stands for the figure, and a README of either language (the twin, or one elsewhere) for the
 * English README at that place.
 */
function englishCounterpart(literal: string): string {
  return literal.replace(/^(www\/images|bench\/results)\/zh\//, '$1/').replace(/(^|\/)README\.zh-CN\.md$/, '$1README.md');
}

function onlyIn(a: Set<string>, b: Set<string>): string[] {
  return [...a].filter((item) => !b.has(item)).sort();
}

test('the picking of literals: commands, flags, files and folders count; prose words do not', () => {
  const sample = [
    'Run `npx tsx 05-select.ts` with `--pool N`; see `shared/` and [the figure](www/images/05-select.svg).',
    'Words such as `select`, `EAGAIN`, `Content-Length` and [a site](https://koffi.dev/) are not literals.',
    '```sh',
    'npm run bench -- --quick      # a comment that gets translated',
    '```',
  ].join('\n');
  assert.deepEqual(
    [...literalsOf(sample)].sort(),
    ['--pool N', 'npm run bench -- --quick', 'npx tsx 05-select.ts', 'shared/', 'www/images/05-select.svg'],
  );
});

test('a Chinese figure stands for its English figure, a Chinese README for the English one; nothing else is translated', () => {
  assert.equal(englishCounterpart('www/images/zh/05-select.svg'), 'www/images/05-select.svg');
  assert.equal(englishCounterpart('www/images/zh/'), 'www/images/');
  assert.equal(englishCounterpart('bench/results/zh/crowd.svg'), 'bench/results/crowd.svg');
  assert.equal(englishCounterpart('bench/results/zh/latest.svg'), 'bench/results/latest.svg');
  assert.equal(englishCounterpart('bench/README.zh-CN.md'), 'bench/README.md');
  assert.equal(englishCounterpart('../README.zh-CN.md'), '../README.md');
  for (const literal of ['www/images/05-select.svg', 'www/zh/05-select.html', 'npx tsx 05-select.ts', 'bench/results/latest.svg', 'bench/README.md']) {
    assert.equal(englishCounterpart(literal), literal);
  }
});

for (const { english, chinese, minimumLiterals } of PAIRS) {
  test(`${english} and ${chinese} link to each other in their first lines`, () => {
    const firstLines = (file: string) => readFileSync(path.join(REPO_ROOT, file), 'utf8').split('\n').slice(0, 5).join('\n');
    assert.match(firstLines(english), /\]\(README\.zh-CN\.md\)/);
    assert.match(firstLines(chinese), /\]\(README\.md\)/);
  });

  test(`${english} and ${chinese} name the same commands, flags and files`, () => {
    const inEnglish = new Set([...literalsOf(readFileSync(path.join(REPO_ROOT, english), 'utf8'))].map(englishCounterpart));
    const inChinese = new Set([...literalsOf(readFileSync(path.join(REPO_ROOT, chinese), 'utf8'))].map(englishCounterpart));
    assert.ok(inEnglish.size > minimumLiterals, `only ${inEnglish.size} literals found in ${english}: is the picking broken?`);
    assert.deepEqual(
      { onlyInEnglish: onlyIn(inEnglish, inChinese), onlyInChinese: onlyIn(inChinese, inEnglish) },
      { onlyInEnglish: [], onlyInChinese: [] },
      `add what is missing to the other README (in its language), or remove it from both`,
    );
  });
}

test('the top-level READMEs leave the benchmark lab notes to bench/ and link there', () => {
  for (const [file, notes] of [[ENGLISH, 'bench/README.md'], [CHINESE, 'bench/README.zh-CN.md']] as const) {
    const text = readFileSync(path.join(REPO_ROOT, file), 'utf8');
    assert.ok(text.includes(`](${notes})`), `${file} links to ${notes}`);
    // The engineer's notes (instruction counts, the parser's history) live in bench/ only.
    assert.doesNotMatch(text, /bench\/instructions\.ts|bench\/hot-path-speed\.ts|bench\/ffi-call-cost\.ts/, `${file} keeps the lab notes`);
  }
});

/** The lines of every fenced block in a README, block by block. */
function fencedBlocks(markdown: string): string[][] {
  return [...markdown.matchAll(/^```[^\n]*\n([\s\S]*?)^```/gm)].map(([, body]) => body!.trim().split('\n'));
}

for (const readme of [ENGLISH, CHINESE]) {
  test(`${readme}: the container way in types the quick start's own commands, and so does the dev container`, () => {
    const blocks = fencedBlocks(readFileSync(path.join(REPO_ROOT, readme), 'utf8'));
    const quickStart = blocks[0]!;
    assert.deepEqual(quickStart, ['npm install', 'npx tsx 05-select.ts', 'npm test']);

    const container = blocks.find((lines) => lines[0]!.startsWith('docker run'));
    assert.ok(container, 'a fenced block that starts with docker run');
    assert.match(container[0]!, new RegExp(`-p 127\\.0\\.0\\.1:${DEFAULT_PORT}:${DEFAULT_PORT} `));
    // In the container: the quick start's lines, the server with --host 0.0.0.0 added.
    assert.deepEqual(container.slice(1), ['npm install', 'npx tsx 05-select.ts --host 0.0.0.0']);

    const jsonc = readFileSync(path.join(REPO_ROOT, '.devcontainer/devcontainer.json'), 'utf8');
    const devcontainer = JSON.parse(jsonc.replace(/^\s*\/\/.*$/gm, '')) as { postCreateCommand: string; forwardPorts: number[] };
    assert.ok(quickStart.includes(devcontainer.postCreateCommand), `postCreateCommand '${devcontainer.postCreateCommand}'`);
    assert.deepEqual(devcontainer.forwardPorts, [DEFAULT_PORT]);
  });
}

test('the one-line refusal on another system names headings that both READMEs have', () => {
  const message = linuxOnlyMessage('darwin');
  const english = message.match(/README\.md shows under "([^"]+)"/)?.[1];
  const chinese = message.match(/README\.zh-CN\.md「([^」]+)」/)?.[1];
  assert.ok(english && chinese, message);
  assert.match(readFileSync(path.join(REPO_ROOT, ENGLISH), 'utf8'), new RegExp(`^#+ ${english}$`, 'm'));
  assert.match(readFileSync(path.join(REPO_ROOT, CHINESE), 'utf8'), new RegExp(`^#+ ${chinese}$`, 'm'));
});
