/**
 * shared/compiled-self.ts: the one JavaScript file that 01's processes and 02's threads run.
 * Compiled from a fixture, it must behave as the TypeScript does (packages found, import.meta.url
 * and the paths made from it unchanged, mime-types' answers exactly the real ones), be compiled
 * once per server, and leave nothing behind in the temporary directory.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import mime from 'mime-types';
import { $ } from 'zx';
import { DEFAULT_ROOT } from '../shared/cli.ts';
import { childEnvironment, compiledCopyOf } from '../shared/compiled-self.ts';
import { REPO_ROOT } from './helpers/server.ts';

const FIXTURE_URL = pathToFileURL(path.join(REPO_ROOT, 'tests/helpers/compiled-self-fixture.ts')).href;

test('the compiled copy is plain JavaScript that node runs alone, with packages, import.meta.url and mime-types as in the source', async () => {
  const compiled = await compiledCopyOf(FIXTURE_URL);
  assert.match(path.basename(compiled), /^compiled-self-fixture\.cjs$/);
  assert.ok(!compiled.startsWith(REPO_ROOT), `${compiled} should be outside the repository (which may be read-only)`);

  // Every extension mime-types knows, plus questions it answers without the table.
  const questions = ['', '.html', '.HTML', '.no-such-extension', 'text/plain', 'html', ...Object.keys(mime.types).map((ext) => `.${ext}`)];
  // No tsx here: `node FILE.cjs`, as 01 starts its children.
  const run = await $({ cwd: path.dirname(compiled), quiet: true })`${process.execPath} ${compiled} ${JSON.stringify(questions)}`;
  const seen = JSON.parse(run.stdout);
  assert.equal(seen.url, FIXTURE_URL);
  assert.equal(seen.defaultRoot, DEFAULT_ROOT);
  assert.equal(seen.koffi, 'function');
  assert.deepEqual(seen.contentTypes, questions.map((question) => mime.contentType(question)));
  assert.equal(seen.lookup, mime.lookup('page.HTML'));
});

test('compiled once per server: asking again gives the same file', async () => {
  assert.equal(await compiledCopyOf(FIXTURE_URL), await compiledCopyOf(FIXTURE_URL));
});

test('the temporary folder goes when the server exits, and each server has its own', async () => {
  const script = `import('./shared/compiled-self.ts').then((m) => m.compiledCopyOf(${JSON.stringify(FIXTURE_URL)})).then((file) => console.log(file))`;
  const runs = await Promise.all([1, 2].map(() => $({ cwd: REPO_ROOT, quiet: true })`${process.execPath} --import tsx -e ${script}`));
  const [first, second] = runs.map((run) => run.stdout.trim());
  assert.notEqual(path.dirname(first!), path.dirname(second!));
  for (const file of [first!, second!]) assert.equal(existsSync(path.dirname(file)), false, `${path.dirname(file)} was left behind`);
});

test("a child's environment is ours without NODE_EXTRA_CA_CERTS (which Node 20 would parse at every start)", () => {
  const saved = process.env.NODE_EXTRA_CA_CERTS;
  process.env.NODE_EXTRA_CA_CERTS = '/etc/ssl/certs/ca-certificates.crt';
  try {
    const environment = childEnvironment();
    assert.equal(environment.NODE_EXTRA_CA_CERTS, undefined);
    assert.equal(environment.PATH, process.env.PATH);
  } finally {
    if (saved === undefined) delete process.env.NODE_EXTRA_CA_CERTS;
    else process.env.NODE_EXTRA_CA_CERTS = saved;
  }
});
