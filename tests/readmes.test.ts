/**
 * README.md and README.zh-CN.md tell the same tour in two languages. Prose is translated, but
 * what a reader types or opens is not: every command, file name, flag and linked file that
 * appears in one must appear in the other. This test lists those "literal" things in each and
 * fails on any that only one of them has. The one literal that is translated is a figure: the
 * Chinese README shows www/images/zh/X.svg where the English one shows www/images/X.svg (and
 * bench/results/zh/crowd.svg, the benchmark's Chinese crowd figure, for bench/results/crowd.svg).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_PORT } from '../shared/cli.ts';
import { REPO_ROOT } from './helpers/server.ts';

const ENGLISH = 'README.md';
const CHINESE = 'README.zh-CN.md';

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
export function literalsOf(markdown: string): Set<string> {
  const found = new Set<string>();
  const add = (text: string) => {
    const trimmed = text.trim();
    if (trimmed !== '' && trimmed !== ENGLISH && trimmed !== CHINESE) found.add(trimmed);
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

/** What a literal of README.zh-CN.md stands for in README.md: a figure's Chinese variant stands for the figure. */
export function englishCounterpart(literal: string): string {
  return literal.replace(/^(www\/images|bench\/results)\/zh\//, '$1/');
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

test('a Chinese figure stands for its English figure; nothing else is translated', () => {
  assert.equal(englishCounterpart('www/images/zh/05-select.svg'), 'www/images/05-select.svg');
  assert.equal(englishCounterpart('www/images/zh/'), 'www/images/');
  assert.equal(englishCounterpart('bench/results/zh/crowd.svg'), 'bench/results/crowd.svg');
  for (const literal of ['www/images/05-select.svg', 'www/zh/05-select.html', 'npx tsx 05-select.ts', 'bench/results/latest.svg']) {
    assert.equal(englishCounterpart(literal), literal);
  }
});

test('each README links to the other in its first lines', () => {
  const english = readFileSync(path.join(REPO_ROOT, ENGLISH), 'utf8').split('\n').slice(0, 5).join('\n');
  const chinese = readFileSync(path.join(REPO_ROOT, CHINESE), 'utf8').split('\n').slice(0, 5).join('\n');
  assert.match(english, /\]\(README\.zh-CN\.md\)/);
  assert.match(chinese, /\]\(README\.md\)/);
});

test('README.md and README.zh-CN.md name the same commands, flags and files', () => {
  const english = literalsOf(readFileSync(path.join(REPO_ROOT, ENGLISH), 'utf8'));
  const chinese = new Set([...literalsOf(readFileSync(path.join(REPO_ROOT, CHINESE), 'utf8'))].map(englishCounterpart));
  assert.ok(english.size > 40, `only ${english.size} literals found in ${ENGLISH}: is the picking broken?`);
  assert.deepEqual(
    { onlyInEnglish: onlyIn(english, chinese), onlyInChinese: onlyIn(chinese, english) },
    { onlyInEnglish: [], onlyInChinese: [] },
    `add what is missing to the other README (in its language), or remove it from both`,
  );
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
