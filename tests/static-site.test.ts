// The served root: path resolution, safety and the file cache
// (shared/static-site.ts). End-to-end path cases are in handle-request.test.ts;
// here we look at what lookup() returns and at the cache's behaviour over time.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  DEFAULT_CACHE_FILE_LIMIT,
  SiteFile,
  StaticSite,
  decodeUrlPath,
  etagFor,
  statusForFsError,
} from '../shared/static-site.ts';
import type { SiteLookup } from '../shared/static-site.ts';
import { BIG_FILE_SIZE, INDEX_HTML, createSiteFixture, get, parseRequest, splitResponse } from './helpers/fixtures.ts';
import { handleRequest } from '../shared/handle-request.ts';
import type { SiteFixture } from './helpers/fixtures.ts';

let fixture: SiteFixture;

before(() => {
  fixture = createSiteFixture();
});
after(() => fixture.remove());

/** A site whose clock only moves when the test says so. */
function siteWithClock(options: { cacheFileLimit?: number; cacheTotalLimit?: number } = {}) {
  const clock = { now: 1_000_000 };
  const site = new StaticSite(fixture.root, { ...options, revalidateAfterMs: 1000, now: () => clock.now });
  return { site, clock };
}

function asFile(found: SiteLookup): SiteFile {
  assert.ok(found instanceof SiteFile, `expected a file, got ${JSON.stringify(found)}`);
  return found;
}

/** A scratch file in the root, removed by the test's cleanup. */
function scratch(t: { after(fn: () => void): void }, name: string, content: string | Buffer): string {
  const file = fixture.file(name);
  fs.writeFileSync(file, content);
  t.after(() => fs.rmSync(file, { recursive: true, force: true }));
  return file;
}

// ---------------------------------------------------------------------------
// The root

test('root is the absolute real path, even when given through a symlink or relatively', () => {
  const link = path.join(fixture.parent, 'root-link');
  fs.symlinkSync('www', link);
  assert.equal(new StaticSite(link).root, fixture.root);
  assert.equal(new StaticSite(path.relative(process.cwd(), fixture.root)).root, fixture.root);
  assert.equal(new StaticSite(fixture.root + '/docs/..').root, fixture.root);
});

test('a root that is not a directory is refused at construction', () => {
  assert.throws(() => new StaticSite(fixture.file('index.html')), /not a directory/);
  assert.throws(() => new StaticSite(fixture.file('no-such-dir')), /ENOENT/);
});

// ---------------------------------------------------------------------------
// lookup()

test('a small file is found with its metadata and its content cached', () => {
  const site = new StaticSite(fixture.root);
  const file = asFile(site.lookup('/index.html'));
  const stat = fs.statSync(fixture.file('index.html'));
  assert.equal(file.realPath, fixture.file('index.html'));
  assert.equal(file.size, stat.size);
  assert.equal(file.ino, stat.ino);
  assert.equal(file.etag, etagFor(stat.size, stat.mtimeMs));
  assert.equal(file.contentType, 'text/html; charset=utf-8');
  assert.equal(file.body?.toString(), INDEX_HTML);
  assert.equal(site.cachedBytes, stat.size);
});

test('"/" and "/dir/" lead to index.html; "/dir" to a redirect', () => {
  const site = new StaticSite(fixture.root);
  assert.equal(asFile(site.lookup('/')).realPath, fixture.file('index.html'));
  assert.equal(asFile(site.lookup('/docs/')).realPath, fixture.file('docs/index.html'));
  assert.deepEqual(site.lookup('/docs'), { kind: 'redirect', location: '/docs/' });
  assert.deepEqual(site.lookup('/a%20dir'), { kind: 'refused', status: 404, reason: 'file system: ENOENT' });
});

test('a symlink is resolved to its real path; the type follows the requested name', () => {
  const site = new StaticSite(fixture.root);
  fs.symlinkSync('style.css', fixture.file('style-link'));
  try {
    const file = asFile(site.lookup('/style-link'));
    assert.equal(file.realPath, fixture.file('style.css'));
    // No extension on the link: fall back to the target's.
    assert.equal(file.contentType, 'text/css; charset=utf-8');
  } finally {
    fs.rmSync(fixture.file('style-link'));
  }
});

test('files above cacheFileLimit are not read: body null, nothing cached', () => {
  const site = new StaticSite(fixture.root);
  const big = asFile(site.lookup('/big.bin'));
  assert.equal(big.size, BIG_FILE_SIZE);
  assert.ok(BIG_FILE_SIZE > DEFAULT_CACHE_FILE_LIMIT);
  assert.equal(big.body, null);
  assert.equal(site.cachedBytes, 0);

  const tinyLimit = new StaticSite(fixture.root, { cacheFileLimit: 10 });
  assert.equal(asFile(tinyLimit.lookup('/index.html')).body, null);
});

test('past cacheTotalLimit nothing more is cached, but everything is still found', () => {
  const indexSize = fs.statSync(fixture.file('index.html')).size;
  const site = new StaticSite(fixture.root, { cacheTotalLimit: indexSize + 5 });
  assert.ok(asFile(site.lookup('/index.html')).body !== null);
  assert.equal(asFile(site.lookup('/style.css')).body, null);
  assert.equal(site.cachedBytes, indexSize);
});

// ---------------------------------------------------------------------------
// Revalidation

test('a cached file is not looked at again within revalidateAfterMs', (t) => {
  const { site, clock } = siteWithClock();
  scratch(t, 'fresh.txt', 'version 1');
  const first = asFile(site.lookup('/fresh.txt'));
  // Deleting the file proves the next lookups touch no file system at all.
  fs.rmSync(fixture.file('fresh.txt'));
  clock.now += 999;
  assert.equal(site.lookup('/fresh.txt'), first);
  clock.now += 1;
  assert.equal(site.lookup('/fresh.txt').kind, 'refused');
  assert.equal(site.cachedBytes, 0, 'the dropped entry no longer counts');
});

test('a changed file is noticed after revalidateAfterMs, even with the same size', (t) => {
  const { site, clock } = siteWithClock();
  const file = scratch(t, 'changing.txt', 'version 1');
  const first = asFile(site.lookup('/changing.txt'));
  fs.writeFileSync(file, 'version 2');
  fs.utimesSync(file, new Date(), new Date(Date.now() + 5000)); // make sure the mtime moves
  assert.equal(asFile(site.lookup('/changing.txt')).body?.toString(), 'version 1', 'still within the window');
  clock.now += 1000;
  const second = asFile(site.lookup('/changing.txt'));
  assert.notEqual(second, first);
  assert.equal(second.body?.toString(), 'version 2');
  assert.notEqual(second.etag, first.etag);
  assert.equal(site.cachedBytes, 'version 2'.length, 'the old body was released');
});

test('a file that shrinks while it is read into the cache is described by the bytes read, not by fstat', (t) => {
  const { site } = siteWithClock();
  scratch(t, 'shrinking.txt', 'x'.repeat(1000));
  // The race, made certain: the first read gets 600 bytes, and then the file has ended.
  const realRead = fs.readSync;
  let reads = 0;
  t.mock.method(fs, 'readSync', (fd: number, buffer: Buffer, offset: number, length: number, position: number) => {
    reads += 1;
    return reads === 1 ? realRead(fd, buffer, offset, Math.min(length, 600), position) : 0;
  });
  const found = asFile(site.lookup('/shrinking.txt'));
  t.mock.restoreAll();
  assert.equal(found.body?.length, 600);
  assert.equal(found.size, 600, 'Content-Length and byte ranges are cut by the bytes held');
  const response = splitResponse(handleRequest(parseRequest(get('/shrinking.txt')), site).bytes);
  assert.equal(response.headers.get('content-length'), '600');
  assert.equal(response.body.toString('latin1'), 'x'.repeat(600), 'and the body is those 600 bytes');
});

test('an unchanged file keeps its entry (and its prepared responses) after revalidation', (t) => {
  const { site, clock } = siteWithClock();
  scratch(t, 'stable.txt', 'same');
  const first = asFile(site.lookup('/stable.txt'));
  clock.now += 5000;
  assert.equal(site.lookup('/stable.txt'), first);
  assert.equal(first.checkedAt, clock.now);
});

test('a file replaced by another with the same size and mtime is noticed by its inode', (t) => {
  const { site, clock } = siteWithClock();
  const file = scratch(t, 'swapped.txt', 'AAAA');
  const first = asFile(site.lookup('/swapped.txt'));
  const stat = fs.statSync(file);
  const replacement = fixture.file('swapped.tmp');
  fs.writeFileSync(replacement, 'BBBB');
  fs.utimesSync(replacement, stat.atime, stat.mtime);
  fs.renameSync(replacement, file);
  clock.now += 1000;
  assert.equal(asFile(site.lookup('/swapped.txt')).body?.toString(), 'BBBB');
  assert.notEqual(site.lookup('/swapped.txt'), first);
});

test('a symlink retargeted outside the root is refused after revalidation', (t) => {
  const { site, clock } = siteWithClock();
  const link = fixture.file('moving-link.html');
  fs.symlinkSync('index.html', link);
  t.after(() => fs.rmSync(link, { force: true }));
  assert.equal(asFile(site.lookup('/moving-link.html')).body?.toString(), INDEX_HTML);
  fs.rmSync(link);
  fs.symlinkSync('../outside/secret.txt', link);
  clock.now += 1000;
  assert.deepEqual(site.lookup('/moving-link.html'), { kind: 'refused', status: 404, reason: 'resolves outside the root' });
});

// ---------------------------------------------------------------------------
// openFile()

test('openFile takes size and validators from fstat of the opened fd', (t) => {
  const { site } = siteWithClock({ cacheFileLimit: 4 });
  const file = scratch(t, 'growing.txt', 'short');
  const entry = asFile(site.lookup('/growing.txt'));
  assert.equal(entry.body, null);
  fs.writeFileSync(file, 'much longer now');
  const opened = site.openFile(entry);
  assert.ok(!('kind' in opened));
  try {
    assert.equal(opened.size, 'much longer now'.length);
    const stat = fs.fstatSync(opened.fd);
    assert.equal(opened.etag, etagFor(stat.size, stat.mtimeMs));
    // The entry was stale: the next lookup refreshes it at once.
    assert.equal(asFile(site.lookup('/growing.txt')).size, 'much longer now'.length);
  } finally {
    fs.closeSync(opened.fd);
  }
});

test('openFile of a file that disappeared is a 404 refusal', (t) => {
  const { site } = siteWithClock({ cacheFileLimit: 0 });
  scratch(t, 'vanishing.txt', 'here');
  const entry = asFile(site.lookup('/vanishing.txt'));
  fs.rmSync(fixture.file('vanishing.txt'));
  assert.deepEqual(site.openFile(entry), { kind: 'refused', status: 404, reason: 'file system: ENOENT' });
});

test('openFile of a path that became a directory is a 404 refusal', (t) => {
  const { site } = siteWithClock({ cacheFileLimit: 0 });
  scratch(t, 'shape-shifter', 'file');
  const entry = asFile(site.lookup('/shape-shifter'));
  fs.rmSync(fixture.file('shape-shifter'));
  fs.mkdirSync(fixture.file('shape-shifter'));
  t.after(() => fs.rmSync(fixture.file('shape-shifter'), { recursive: true, force: true }));
  assert.deepEqual(site.openFile(entry), { kind: 'refused', status: 404, reason: 'not a regular file any more' });
});

test('openFile refuses a symlink or a FIFO swapped in after lookup, without blocking', (t) => {
  const { site } = siteWithClock({ cacheFileLimit: 0 });
  scratch(t, 'swapped-in', 'original');
  const entry = asFile(site.lookup('/swapped-in'));
  fs.rmSync(fixture.file('swapped-in'));
  fs.symlinkSync('../outside/secret.txt', fixture.file('swapped-in'));
  assert.deepEqual(site.openFile(entry), { kind: 'refused', status: 404, reason: 'file system: ELOOP' });

  fs.rmSync(fixture.file('swapped-in'));
  try {
    execFileSync('mkfifo', [fixture.file('swapped-in')]);
  } catch {
    return; // no mkfifo here: the symlink half was still checked
  }
  assert.deepEqual(site.openFile(entry), { kind: 'refused', status: 404, reason: 'not a regular file any more' });
});

// ---------------------------------------------------------------------------
// Helpers

test('decodeUrlPath decodes UTF-8 and refuses what could escape or hide', () => {
  assert.equal(decodeUrlPath('/a%20b/%E4%B8%AD.html'), '/a b/中.html');
  assert.equal(decodeUrlPath('/plain/path/'), '/plain/path/');
  assert.equal(decodeUrlPath('/a+b'), '/a+b', '"+" is not a space in a path');
  const refusals: [string, number][] = [
    ['/%zz', 400],
    ['/%E4%B8', 400],
    ['/%C0%AE%C0%AE/', 400], // overlong "..": invalid UTF-8
    ['/a%2fb', 404],
    ['/a%2Fb', 404],
    ['/a%5cb', 404],
    ['/a\\b', 404],
    ['/a%00b', 404],
    ['/..', 404],
    ['/a/./b', 404],
    ['/%2e%2e/x', 404],
    ['/.well-known/x', 404],
    ['/x/.git/config', 404],
    ['%2fetc', 404],
    ['relative', 400],
  ];
  for (const [urlPath, status] of refusals) {
    const result = decodeUrlPath(urlPath);
    assert.equal(typeof result, 'object', urlPath);
    assert.equal((result as { status: number }).status, status, urlPath);
  }
});

test('statusForFsError: missing is 404, forbidden 403, anything else 500', () => {
  // (The tests run as root, so EACCES cannot be provoked on disk; the mapping
  // is what handleRequest relies on.)
  const withCode = (code: string) => Object.assign(new Error(code), { code });
  assert.equal(statusForFsError(withCode('ENOENT')), 404);
  assert.equal(statusForFsError(withCode('ENOTDIR')), 404);
  assert.equal(statusForFsError(withCode('ELOOP')), 404);
  assert.equal(statusForFsError(withCode('ENAMETOOLONG')), 404);
  assert.equal(statusForFsError(withCode('EACCES')), 403);
  assert.equal(statusForFsError(withCode('EPERM')), 403);
  assert.equal(statusForFsError(withCode('EIO')), 500);
  assert.equal(statusForFsError(withCode('EMFILE')), 500);
  assert.equal(statusForFsError(new Error('no code')), 500);
  assert.equal(statusForFsError(null), 500);
});

test('a symlink loop and an over-long name are 404', (t) => {
  const site = new StaticSite(fixture.root);
  fs.symlinkSync('loop-b', fixture.file('loop-a'));
  fs.symlinkSync('loop-a', fixture.file('loop-b'));
  t.after(() => {
    fs.rmSync(fixture.file('loop-a'));
    fs.rmSync(fixture.file('loop-b'));
  });
  assert.equal((site.lookup('/loop-a') as { status: number }).status, 404);
  assert.equal((site.lookup('/' + 'n'.repeat(300)) as { status: number }).status, 404);
});

test('etagFor is a strong tag of size and whole-millisecond mtime in hex', () => {
  assert.equal(etagFor(500, 1_700_000_000_123.456), '"1f4-18bcfe5687b"');
});
