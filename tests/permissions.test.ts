/**
 * What the file system refuses: a --root the server may not read is one line and exit code 2
 * at start, not a 403 at every request; a file inside the root that it may not read is a 403
 * for that request, one log line says why, and everything else is still served on the same
 * connection. (As root these run as nobody: see helpers/unprivileged.ts.)
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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

/** A folder that the unprivileged user may enter (mkdtemp makes it 0700), removed afterwards. */
function openFolder(t: TestContext): string {
  const folder = mkdtempSync(path.join(os.tmpdir(), 'permissions-'));
  chmodSync(folder, 0o755);
  t.after(() => rmSync(folder, { recursive: true, force: true }));
  return folder;
}

test('an unreadable --root is one line on stderr and exit code 2', { skip }, async (t) => {
  const root = path.join(openFolder(t), 'site');
  mkdirSync(root);
  writeFileSync(path.join(root, 'index.html'), 'hi\n');
  chmodSync(root, 0o000);

  // Node itself rather than npx, so that the timeout's signal reaches the program: were the
  // root let through, the fixture would go on serving.
  const node = [process.execPath, '--import', 'tsx'];
  const result = await $({ cwd: REPO_ROOT, nothrow: true, quiet: true, timeout: '20s' })`${launcher} ${node} ${FIXTURE} --port 0 --root ${root}`;
  assert.equal(result.exitCode, 2);
  assert.equal(result.stderr, `cli-fixture: --root '${root}' cannot be read (check its permissions) (see --help)\n`);
  assert.equal(result.stdout, '');
});

test('an unreadable file is a 403 with one log line, and the same connection goes on', { skip }, async (t) => {
  const root = openFolder(t);
  writeFileSync(path.join(root, 'index.html'), 'home\n');
  writeFileSync(path.join(root, 'locked.html'), 'secret\n');
  chmodSync(path.join(root, 'locked.html'), 0o000);

  const server = await startModel(t, '03-coroutine.ts', { args: ['--root', root], launcher });
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
