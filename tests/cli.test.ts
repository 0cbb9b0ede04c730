/**
 * The shared command line: defaults, validation with one-line errors and exit code 2, help,
 * the start line with the real port, a busy port, and a clean stop on SIGINT.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { $ } from 'zx';
import { DEFAULT_ROOT, UsageError, parseArguments, usage, type ExtraFlag, type ServerOptions } from '../shared/cli.ts';
import { describeError, isVerbose, configureLog, debug } from '../shared/log.ts';
import { REPO_ROOT, startModel } from './helpers/server.ts';

const interval: ExtraFlag = { name: 'interval', valueName: 'MS', help: 'pause between passes', default: 10, min: 0, max: 5000 };
const hidden: ExtraFlag = { name: 'connection-fd', valueName: 'FD', help: 'internal', default: -1, min: 0, max: 65535, hidden: true };
const FIXTURE = 'tests/helpers/cli-fixture.ts';

test('defaults: 127.0.0.1, port 7890, the repository www/, 30 s idle timeout, 60 s request timeout', () => {
  const options = parseArguments('06-epoll', []);
  assert.notEqual(options, 'help');
  if (options === 'help') return;
  assert.equal(options.host, '127.0.0.1');
  assert.equal(options.port, 7890);
  assert.equal(options.root, DEFAULT_ROOT);
  assert.equal(path.relative(REPO_ROOT, options.root), 'www');
  assert.equal(options.idleTimeoutMs, 30_000);
  assert.equal(options.requestTimeoutMs, 60_000);
  assert.equal(options.verbose, false);
  assert.equal(options.trace, false);
  assert.deepEqual(options.extra, {});
});

test('flags are read and model flags get their defaults', () => {
  const options = parseArguments('04-nonblocking', ['--port', '0', '--host', 'localhost', '--root', 'tests', '--idle-timeout', '5', '--request-timeout', '7', '--verbose', '--trace'], [interval]);
  assert.deepEqual(options, {
    model: '04-nonblocking',
    host: '127.0.0.1',
    port: 0,
    root: path.resolve('tests'),
    idleTimeoutMs: 5000,
    requestTimeoutMs: 7000,
    verbose: true,
    trace: true,
    extra: { interval: 10 },
  });
  const withInterval = parseArguments('04-nonblocking', ['--interval', '500', '--host', '::1'], [interval]) as ServerOptions;
  assert.equal(withInterval.extra.interval, 500);
  assert.equal(withInterval.host, '::1');
  assert.equal(parseArguments('06-epoll', ['--help']), 'help');
  assert.equal(parseArguments('06-epoll', ['-h']), 'help');
});

test('no www/ to serve by default (a homework copy) is a UsageError naming --root DIR', () => {
  for (const missing of [path.join(REPO_ROOT, 'no-such-www/'), path.join(REPO_ROOT, 'package.json')]) {
    assert.throws(
      () => parseArguments('05-select', [], [], missing),
      (error: unknown) =>
        error instanceof UsageError &&
        error.message === `there is no www/ folder to serve at ${missing}; serve a folder of your own with --root DIR`,
    );
  }
  // --root wins over a missing default.
  assert.equal((parseArguments('05-select', ['--root', 'tests'], [], path.join(REPO_ROOT, 'no-such-www/')) as ServerOptions).root, path.resolve('tests'));
});

test('mistakes are UsageErrors with one clear sentence', () => {
  const cases: Array<[string[], RegExp]> = [
    [['--port', '70000'], /--port wants a whole number from 0 to 65535, not '70000'/],
    [['--port', 'abc'], /--port wants a whole number/],
    [['--port', '-1'], /--port/],
    [['--interval', '1.5'], /--interval wants a whole number from 0 to 5000/],
    [['--host', 'example.com'], /--host wants an IP address/],
    [['--root', 'no/such/folder'], /--root 'no\/such\/folder' is not a directory/],
    [['--root', 'package.json'], /is not a directory/],
    [['--prot', '1'], /Unknown option '--prot'/],
    [['extra'], /Unexpected argument 'extra'/],
    [['--idle-timeout', '0'], /--idle-timeout wants a whole number from 1/],
    [['--request-timeout', '0'], /--request-timeout wants a whole number from 1/],
  ];
  for (const [argv, message] of cases) {
    assert.throws(() => parseArguments('04-nonblocking', argv, [interval]), (error: unknown) => {
      assert.ok(error instanceof UsageError, `${argv.join(' ')} threw ${String(error)}`);
      assert.match(error.message, message);
      assert.doesNotMatch(error.message, /\n/);
      return true;
    });
  }
});

test('usage lists the model flags but not the hidden ones', () => {
  const text = usage('04-nonblocking', 'polls every socket', [interval, hidden]);
  assert.match(text, /^04-nonblocking: polls every socket/);
  assert.match(text, /usage: npx tsx 04-nonblocking\.ts \[options\]/);
  assert.match(text, /--interval MS\s+pause between passes \(default 10\)/);
  assert.match(text, /--request-timeout S\s+408 and close .* \(default 60\)/);
  assert.doesNotMatch(text, /connection-fd/);
  // --trace says what it is for: a few connections by hand, not a load.
  assert.match(text, /--trace\s+narrate each system call .*for a few\s+connections by hand/);
});

test('the log helpers: verbose lines only when asked, errors without stack traces', () => {
  configureLog('unit', false);
  assert.equal(isVerbose(), false);
  debug('not shown');
  configureLog('unit', true);
  assert.equal(isVerbose(), true);
  assert.equal(describeError(new Error('boom')), 'boom');
  assert.equal(describeError('plain'), 'plain');
  configureLog('server', false);
});

test('a bad flag prints one line to stderr and exits with code 2', async () => {
  const result = await $({ cwd: REPO_ROOT, nothrow: true, quiet: true })`npx tsx ${FIXTURE} --port nope`;
  assert.equal(result.exitCode, 2);
  assert.equal(result.stderr, "cli-fixture: --port wants a whole number from 0 to 65535, not 'nope' (see --help)\n");
  assert.equal(result.stdout, '');
});

test('--help prints usage and exits with code 0', async () => {
  const result = await $({ cwd: REPO_ROOT, nothrow: true, quiet: true })`npx tsx ${FIXTURE} --help`;
  assert.equal(result.exitCode, 0);
  assert.match(result.stdout, /--pool N\s+processes to start/);
});

test('the start line names the real port and pid; a busy port is one line and exit code 2; SIGINT stops', async (t) => {
  const first = await startModel(t, FIXTURE, { args: ['--pool', '3'] });
  assert.match(first.output(), /^cli-fixture: serving www\/ on http:\/\/127\.0\.0\.1:\d+\/ \(pid \d+; Ctrl\+C stops\)\n/);
  assert.notEqual(first.port, 0);
  await first.waitForOutput(/pool=3/);
  const busy = await $({ cwd: REPO_ROOT, nothrow: true, quiet: true })`npx tsx ${FIXTURE} --port ${first.port}`;
  assert.equal(busy.exitCode, 2);
  assert.equal(busy.stderr, `cli-fixture: cannot listen: 127.0.0.1 port ${first.port} is already in use (is another model still running? try --port 0)\n`);
  const foreign = await $({ cwd: REPO_ROOT, nothrow: true, quiet: true })`npx tsx ${FIXTURE} --port 0 --host 192.0.2.1`;
  assert.equal(foreign.exitCode, 2);
  assert.match(foreign.stderr, /^cli-fixture: cannot listen: 192\.0\.2\.1 is not an address of this machine\n$/);
  await first.stop('SIGINT');
  assert.match(first.output(), /SIGINT: stopping/);
});
