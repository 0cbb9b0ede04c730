/**
 * What the file system refuses: a --root the server may not read is one line and exit code 2
 * at start, not a 403 at every request; a file inside the root that it may not read is a 403
 * for that request, one log line says why, and everything else is still served on the same
 * connection. (As root these run without the capabilities that read every file: see
 * helpers/unprivileged.ts.)
 *
 * Both run from a copy of the project in a folder only its owner may enter (`mktemp -d` makes
 * it mode 700), as a learner's clone under /root or a fresh temporary folder is: a way of
 * refusing that also shut the program out of the project (running it as nobody did) fails here
 * on any machine where the tests run as root.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { $ } from 'zx';
import { GET, RawClient } from './helpers/http-client.ts';
import { REPO_ROOT, startModel } from './helpers/server.ts';
import { unprivilegedPrefix } from './helpers/unprivileged.ts';

const FIXTURE = 'tests/helpers/cli-fixture.ts';
const unprivileged = unprivilegedPrefix();
const skip = 'skip' in unprivileged ? unprivileged.skip : false;
const launcher = 'prefix' in unprivileged ? unprivileged.prefix : [];

/**
 * A copy of the project (node_modules linked, not copied) in a new folder that only its owner
 * may enter, and beside it a folder for the site to serve; removed afterwards.
 */
function privateCopyOfProject(t: TestContext): { project: string; site: string } {
  const folder = mkdtempSync(path.join(os.tmpdir(), 'private-clone-'));
  const site = path.join(folder, 'site');
  t.after(() => {
    if (existsSync(site)) chmodSync(site, 0o700); // a test may have locked it, and only root could remove it then
    rmSync(folder, { recursive: true, force: true });
  });
  assert.equal(statSync(folder).mode & 0o777, 0o700);
  const project = path.join(folder, 'project');
  const leftOut = new Set(['node_modules', '.git', 'coverage'].map((name) => path.join(REPO_ROOT, name)));
  cpSync(REPO_ROOT, project, { recursive: true, filter: (source) => !leftOut.has(path.resolve(source)) });
  symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(project, 'node_modules'), 'dir');
  mkdirSync(site);
  return { project, site };
}

const rootWithSetpriv = process.getuid?.() === 0 && spawnSync('setpriv', ['--version']).status === 0;

test('as root with setpriv, the tests below get a refusing process and run', { skip: !rootWithSetpriv && 'not root, or no setpriv' }, () => {
  assert.deepEqual(unprivileged, { prefix: ['setpriv', '--inh-caps=-dac_override,-dac_read_search', '--bounding-set=-dac_override,-dac_read_search', '--'] });
});

test('an unreadable --root is one line on stderr and exit code 2', { skip }, async (t) => {
  const { project, site } = privateCopyOfProject(t);
  writeFileSync(path.join(site, 'index.html'), 'hi\n');
  chmodSync(site, 0o000);

  // Node itself rather than npx, so that the timeout's signal reaches the program: were the
  // root let through, the fixture would go on serving.
  const node = [process.execPath, '--import', 'tsx'];
  const result = await $({ cwd: project, nothrow: true, quiet: true, timeout: '20s' })`${launcher} ${node} ${FIXTURE} --port 0 --root ${site}`;
  assert.equal(result.stderr, `cli-fixture: --root '${site}' cannot be read (check its permissions) (see --help)\n`);
  assert.equal(result.exitCode, 2);
  assert.equal(result.stdout, '');
});

test('an unreadable file is a 403 with one log line, and the same connection goes on', { skip }, async (t) => {
  const { project, site } = privateCopyOfProject(t);
  writeFileSync(path.join(site, 'index.html'), 'home\n');
  writeFileSync(path.join(site, 'locked.html'), 'secret\n');
  chmodSync(path.join(site, 'locked.html'), 0o000);

  const server = await startModel(t, '03-coroutine.ts', { cwd: project, args: ['--root', site], launcher });
  const client = await RawClient.connect(server.port);
  t.after(() => client.close());

  await client.send(GET('/locked.html'));
  const refused = await client.readResponse();
  assert.equal(refused.status, 403);
  assert.equal(refused.headers['connection'], 'keep-alive');
  assert.equal(refused.body.toString(), '403 Forbidden\n'); // the reason stays in the log
  await server.waitForOutput(/ 403 file system: EACCES\n/);

  await client.send(GET('/index.html'));
  const served = await client.readResponse();
  assert.equal(served.status, 200);
  assert.equal(served.body.toString(), 'home\n');
});
