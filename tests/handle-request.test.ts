// Serving: from a parsed request to response bytes (shared/handle-request.ts,
// with shared/static-site.ts and shared/http-date.ts underneath).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { handleRequest, ifNoneMatchMatches, isNotModified, serviceUnavailable } from '../shared/handle-request.ts';
import type { HttpResponse } from '../shared/handle-request.ts';
import { currentHttpDate, formatHttpDate, parseHttpDate } from '../shared/http-date.ts';
import { Outbox } from '../shared/outbox.ts';
import { StaticSite, etagFor } from '../shared/static-site.ts';
import type { ParsedRequest } from '../shared/request-reader.ts';
import {
  BIG_FILE_SIZE,
  CHINESE_FILE_TEXT,
  DOCS_INDEX_HTML,
  INDEX_HTML,
  SECRET_TEXT,
  SPACE_FILE_TEXT,
  createSiteFixture,
  get,
  parseOne,
  requestText,
  splitResponse,
} from './helpers/fixtures.ts';
import type { SiteFixture } from './helpers/fixtures.ts';
import { openFdCount } from './helpers/proc.ts';

let fixture: SiteFixture;
let site: StaticSite;

before(() => {
  fixture = createSiteFixture();
  site = new StaticSite(fixture.root);
});
after(() => fixture.remove());

/** Parse request text and answer it. */
function answer(text: string, onSite: StaticSite = site): HttpResponse {
  return handleRequest(parseOne(text), onSite);
}

function head(method: string, target: string, ...headerLines: string[]): string {
  return requestText(`${method} ${target} HTTP/1.1`, 'Host: test.local', ...headerLines);
}

/** Everything the response would put on the wire, file body included. */
function wireBytes(response: HttpResponse): Buffer {
  const outbox = new Outbox();
  outbox.push(response);
  const pieces: Buffer[] = [];
  while (!outbox.isEmpty) {
    const piece = Buffer.from(outbox.peek());
    pieces.push(piece);
    outbox.consumed(piece.length);
  }
  return Buffer.concat(pieces);
}

/** The body as it would go out: from memory for a cached file, else from the file. */
function bodyOnWire(response: HttpResponse): Buffer {
  return wireBytes(response).subarray(response.bytes.indexOf('\r\n\r\n') + 4);
}

function statOf(relative: string): fs.Stats {
  return fs.statSync(fixture.file(relative));
}

// ---------------------------------------------------------------------------
// The shape of a response

test('GET / answers index.html with exactly the expected head and body', () => {
  const response = answer(get('/'));
  const stat = statOf('index.html');
  const expectedHead = 'HTTP/1.1 200 OK\r\n'
    + 'Server: concurrent-webserver-ts\r\n'
    + `Date: ${currentHttpDate()}\r\n`
    + 'Content-Type: text/html; charset=utf-8\r\n'
    + `Content-Length: ${Buffer.byteLength(INDEX_HTML)}\r\n`
    + 'Accept-Ranges: bytes\r\n'
    + `Last-Modified: ${formatHttpDate(stat.mtimeMs)}\r\n`
    + `ETag: "${stat.size.toString(16)}-${Math.trunc(stat.mtimeMs).toString(16)}"\r\n`
    + 'X-Content-Type-Options: nosniff\r\n'
    + 'Connection: keep-alive\r\n'
    + '\r\n';
  assert.equal(response.status, 200);
  assert.equal(response.close, false);
  assert.equal(response.file, null);
  assert.equal(response.bytes.toString('latin1'), expectedHead + INDEX_HTML);
});

test('the Date header is an IMF-fixdate of the current second', () => {
  const before = Math.floor(Date.now() / 1000) * 1000;
  const { headers } = splitResponse(answer(get('/')).bytes);
  const date = headers.get('date')!;
  assert.match(date, /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$/);
  const sent = parseHttpDate(date);
  assert.ok(sent >= before && sent <= Date.now(), `${date} is not now`);
});

test('HEAD has the same head as GET, including Content-Length, and no body', () => {
  const getResponse = answer(get('/style.css'));
  const headResponse = answer(head('HEAD', '/style.css'));
  const getParts = splitResponse(getResponse.bytes);
  assert.equal(headResponse.status, 200);
  assert.equal(headResponse.bytes.toString('latin1'), getResponse.bytes.subarray(0, getResponse.bytes.length - getParts.body.length).toString('latin1'));
  assert.equal(splitResponse(headResponse.bytes).headers.get('content-length'), String(getParts.body.length));
  assert.equal(splitResponse(headResponse.bytes).body.length, 0);
});

test('Connection: close is honoured; HTTP/1.0 closes unless it asks for keep-alive', () => {
  const closing = answer(get('/', 'Connection: close'));
  assert.equal(closing.close, true);
  assert.equal(splitResponse(closing.bytes).headers.get('connection'), 'close');

  const old = answer(requestText('GET / HTTP/1.0'));
  assert.equal(old.close, true);
  assert.equal(splitResponse(old.bytes).headers.get('connection'), 'close');

  const oldKeepAlive = answer(requestText('GET / HTTP/1.0', 'Connection: keep-alive'));
  assert.equal(oldKeepAlive.close, false);
  assert.equal(splitResponse(oldKeepAlive.bytes).headers.get('connection'), 'keep-alive');
});

test('Content-Type follows the extension; unknown is application/octet-stream', () => {
  const typeOf = (target: string) => splitResponse(answer(get(target)).bytes).headers.get('content-type');
  assert.equal(typeOf('/style.css'), 'text/css; charset=utf-8');
  assert.equal(typeOf('/image.png'), 'image/png');
  assert.equal(typeOf('/noext'), 'application/octet-stream');
  assert.equal(typeOf('/big.bin'), 'application/octet-stream');
});

test('every response carries the common headers, errors and redirects too', () => {
  for (const text of [get('/'), get('/missing'), get('/docs'), head('POST', '/'), get('/', 'Transfer-Encoding: gzip')]) {
    const { headers, body } = splitResponse(answer(text).bytes);
    for (const name of ['server', 'date', 'content-type', 'content-length', 'x-content-type-options', 'connection']) {
      assert.ok(headers.has(name), `${name} missing for ${JSON.stringify(text)}`);
    }
    assert.equal(headers.get('x-content-type-options'), 'nosniff');
    assert.equal(headers.get('content-length'), String(body.length));
  }
});

// ---------------------------------------------------------------------------
// Paths

test('query string and fragment do not change which file is served', () => {
  for (const target of ['/index.html?x=1', '/index.html#top', '/?a=b#c', 'http://test.local/index.html?q']) {
    const response = answer(get(target));
    assert.equal(response.status, 200, target);
    assert.equal(splitResponse(response.bytes).body.toString(), INDEX_HTML);
  }
});

test('/dir/ serves dir/index.html, also through a symlinked directory', () => {
  assert.equal(splitResponse(answer(get('/docs/')).bytes).body.toString(), DOCS_INDEX_HTML);
  assert.equal(splitResponse(answer(get('/link-docs/')).bytes).body.toString(), DOCS_INDEX_HTML);
});

test('/dir without slash is a 301 to /dir/, keeping the query, connection kept', () => {
  const response = answer(get('/docs?lang=en#part'));
  assert.equal(response.status, 301);
  assert.equal(response.close, false);
  const { statusLine, headers, body } = splitResponse(response.bytes);
  assert.equal(statusLine, 'HTTP/1.1 301 Moved Permanently');
  assert.equal(headers.get('location'), '/docs/?lang=en');
  assert.equal(body.toString(), '301 Moved Permanently\n');

  const headResponse = answer(head('HEAD', '/docs'));
  assert.equal(splitResponse(headResponse.bytes).body.length, 0);
  assert.equal(splitResponse(headResponse.bytes).headers.get('location'), '/docs/');
});

test('a redirect never points at another host ("//docs" is not //host)', () => {
  const { headers } = splitResponse(answer(get('//docs')).bytes);
  assert.equal(headers.get('location'), '/docs/');
});

test('a directory without index.html is 404; so is an index.html that is a directory', () => {
  assert.equal(answer(get('/empty-dir/')).status, 404);
  assert.equal(answer(get('/empty-dir')).status, 301);
  assert.equal(answer(get('/index-is-dir/')).status, 404);
});

test('missing files and a file asked for as a directory are 404 and keep the connection', () => {
  for (const target of ['/missing.html', '/docs/missing', '/index.html/', '/index.html/x']) {
    const response = answer(get(target));
    assert.equal(response.status, 404, target);
    assert.equal(response.close, false);
    const { statusLine, headers, body } = splitResponse(response.bytes);
    assert.equal(statusLine, 'HTTP/1.1 404 Not Found');
    assert.equal(headers.get('content-type'), 'text/plain; charset=utf-8');
    assert.equal(body.toString(), '404 Not Found\n');
    assert.ok(response.reason);
  }
});

test('percent-encoded names are decoded as UTF-8: spaces and Chinese', () => {
  assert.equal(splitResponse(answer(get('/a%20b.html')).bytes).body.toString(), SPACE_FILE_TEXT);
  const chinese = answer(get(`/${encodeURIComponent('中文')}.html`));
  assert.equal(chinese.status, 200);
  assert.equal(splitResponse(chinese.bytes).body.toString(), CHINESE_FILE_TEXT);
  assert.equal(answer(get('/%E4%B8%AD%E6%96%87.html')).status, 200);
});

test('invalid percent-encoding or invalid UTF-8 is a 400 (connection kept)', () => {
  for (const target of ['/%zz.html', '/a%2', '/%', '/%E4%B8.html', '/%C0%AF', '/%FF', '/%ED%A0%80']) {
    const response = answer(get(target));
    assert.equal(response.status, 400, target);
    assert.equal(response.close, false, target);
  }
});

test('nothing outside the root is reachable, however the path is spelled', () => {
  const attempts = [
    '/../outside/secret.txt',
    '/docs/../../outside/secret.txt',
    '/%2e%2e/outside/secret.txt',
    '/%2E%2e/outside/secret.txt',
    '/.%2e/outside/secret.txt',
    '/%2e./outside/secret.txt',
    '/..%2foutside%2fsecret.txt',
    '/..%2Foutside/secret.txt',
    '/%2f..%2f..%2fetc%2fpasswd',
    '/..%5coutside%5csecret.txt',
    '/..\\outside\\secret.txt',
    '/docs/..\\..\\outside/secret.txt',
    '/index.html%00.txt',
    '/%00',
    'http://test.local/../outside/secret.txt',
  ];
  for (const target of attempts) {
    const response = answer(get(target));
    // One answer for every trick: 404 (see the comment at the top of static-site.ts).
    assert.equal(response.status, 404, target);
    assert.ok(!response.bytes.includes(SECRET_TEXT), target);
  }
});

test('hidden files and directories (segments starting with ".") are 404', () => {
  for (const target of ['/.env', '/.hidden/secret.txt', '/docs/.secret', '/.hidden/', '/%2eenv', '/./index.html']) {
    assert.equal(answer(get(target)).status, 404, target);
  }
});

test('symlinks inside the root are served; symlinks leading out are 404', () => {
  const inside = answer(get('/link-inside.html'));
  assert.equal(inside.status, 200);
  assert.equal(splitResponse(inside.bytes).body.toString(), INDEX_HTML);
  assert.equal(splitResponse(inside.bytes).headers.get('content-type'), 'text/html; charset=utf-8');

  for (const target of ['/link-outside.txt', '/link-outside-dir/secret.txt', '/link-outside-dir/', '/link-sibling.txt']) {
    const response = answer(get(target));
    assert.equal(response.status, 404, target);
    assert.ok(!response.bytes.includes(SECRET_TEXT), target);
  }
});

test('special files such as a FIFO are not served (and do not block)', (t) => {
  const fifo = fixture.file('fifo');
  try {
    execFileSync('mkfifo', [fifo]);
  } catch {
    t.skip('mkfifo not available');
    return;
  }
  try {
    assert.equal(answer(get('/fifo')).status, 404);
  } finally {
    fs.rmSync(fifo);
  }
});

// ---------------------------------------------------------------------------
// Methods and framing errors

test('other methods get 405 with Allow: GET, HEAD and keep the connection', () => {
  for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS', 'get']) {
    const response = answer(head(method, '/'));
    assert.equal(response.status, 405, method);
    assert.equal(response.close, false);
    const { statusLine, headers, body } = splitResponse(response.bytes);
    assert.equal(statusLine, 'HTTP/1.1 405 Method Not Allowed');
    assert.equal(headers.get('allow'), 'GET, HEAD');
    assert.match(body.toString(), /^405 Method Not Allowed/);
    assert.match(response.reason!, new RegExp(method));
  }
});

test('framing errors are answered with their status, reason in the body, and close', () => {
  const cases: [string, number, string][] = [
    [requestText('GET / HTTP/1.1'), 400, 'HTTP/1.1 400 Bad Request'],
    [get('/', 'Transfer-Encoding: chunked'), 411, 'HTTP/1.1 411 Length Required'],
    [get('/', 'Content-Length: 99999999'), 413, 'HTTP/1.1 413 Content Too Large'],
    [get('/' + 'a'.repeat(5000)), 414, 'HTTP/1.1 414 URI Too Long'],
    [get('/', `X-Big: ${'a'.repeat(9000)}`), 431, 'HTTP/1.1 431 Request Header Fields Too Large'],
    [get('/', 'Transfer-Encoding: gzip'), 501, 'HTTP/1.1 501 Not Implemented'],
    [requestText('GET / HTTP/2.0', 'Host: h'), 505, 'HTTP/1.1 505 HTTP Version Not Supported'],
  ];
  for (const [text, status, statusLine] of cases) {
    const parsed = parseOne(text);
    assert.equal(parsed.kind, 'error');
    const response = handleRequest(parsed, site);
    assert.equal(response.status, status);
    assert.equal(response.close, true);
    assert.equal(response.file, null);
    assert.equal(response.reason, (parsed as { reason: string }).reason);
    const parts = splitResponse(response.bytes);
    assert.equal(parts.statusLine, statusLine);
    assert.equal(parts.headers.get('connection'), 'close');
    assert.equal(parts.body.toString(), `${statusLine.slice(9)}: ${response.reason}\n`);
  }
});

test('an unknown status still gets a status line', () => {
  const parsed: ParsedRequest = { kind: 'error', status: 418, reason: 'teapot' };
  assert.equal(splitResponse(handleRequest(parsed, site).bytes).statusLine, 'HTTP/1.1 418 Unknown');
});

// ---------------------------------------------------------------------------
// Conditional requests

test('If-None-Match with the current ETag (exact, weak, in a list, or *) gives 304', () => {
  const etag = etagFor(statOf('index.html').size, statOf('index.html').mtimeMs);
  for (const value of [etag, `W/${etag}`, `"other", ${etag}`, `"a,b" , W/${etag}`, '*']) {
    const response = answer(get('/', `If-None-Match: ${value}`));
    assert.equal(response.status, 304, value);
    assert.equal(response.close, false);
    const { statusLine, headers, body } = splitResponse(response.bytes);
    assert.equal(statusLine, 'HTTP/1.1 304 Not Modified');
    assert.equal(headers.get('etag'), etag);
    // RFC 9110 §8.6: a 304 may carry the length a 200 would have had.
    assert.equal(headers.get('content-length'), String(Buffer.byteLength(INDEX_HTML)));
    assert.equal(body.length, 0);
  }
});

test('If-None-Match with other tags, or malformed, gives the full 200', () => {
  for (const value of ['"nope"', 'W/"nope", "nada"', 'garbage', '"unterminated', '']) {
    assert.equal(answer(get('/', `If-None-Match: ${value}`)).status, 200, value);
  }
});

test('If-Modified-Since: 304 when the file is not newer, 200 when it is; bad dates ignored', () => {
  const lastModified = formatHttpDate(statOf('index.html').mtimeMs);
  const later = formatHttpDate(statOf('index.html').mtimeMs + 60_000);
  const earlier = formatHttpDate(statOf('index.html').mtimeMs - 60_000);
  assert.equal(answer(get('/', `If-Modified-Since: ${lastModified}`)).status, 304);
  assert.equal(answer(get('/', `If-Modified-Since: ${later}`)).status, 304);
  assert.equal(answer(get('/', `If-Modified-Since: ${earlier}`)).status, 200);
  assert.equal(answer(get('/', 'If-Modified-Since: yesterday')).status, 200);
  assert.equal(answer(head('HEAD', '/', `If-Modified-Since: ${lastModified}`)).status, 304);
});

test('If-None-Match takes precedence over If-Modified-Since', () => {
  const lastModified = formatHttpDate(statOf('index.html').mtimeMs);
  assert.equal(answer(get('/', 'If-None-Match: "other"', `If-Modified-Since: ${lastModified}`)).status, 200);
});

test('isNotModified compares whole seconds, as Last-Modified has no more', () => {
  const mtimeMs = Date.UTC(2024, 0, 2, 3, 4, 5, 678);
  const headers = new Map([['if-modified-since', 'Tue, 02 Jan 2024 03:04:05 GMT']]);
  assert.equal(isNotModified(headers, '"x"', mtimeMs), true);
  assert.equal(isNotModified(new Map([['if-modified-since', 'Tue, 02 Jan 2024 03:04:04 GMT']]), '"x"', mtimeMs), false);
  assert.equal(isNotModified(new Map(), '"x"', mtimeMs), false);
});

test('ifNoneMatchMatches: weak comparison, quoted commas, malformed lists', () => {
  assert.equal(ifNoneMatchMatches('"a"', '"a"'), true);
  assert.equal(ifNoneMatchMatches('W/"a"', '"a"'), true);
  assert.equal(ifNoneMatchMatches('"x,y", "a"', '"a"'), true);
  assert.equal(ifNoneMatchMatches('"a"', 'W/"a"'), true);
  assert.equal(ifNoneMatchMatches(' * ', '"a"'), true);
  assert.equal(ifNoneMatchMatches('"b"', '"a"'), false);
  assert.equal(ifNoneMatchMatches('a', '"a"'), false);
  assert.equal(ifNoneMatchMatches('"b", a', '"a"'), false);
});

test('parseHttpDate reads the three HTTP-date formats and rejects others', () => {
  const expected = Date.UTC(1994, 10, 6, 8, 49, 37);
  assert.equal(parseHttpDate('Sun, 06 Nov 1994 08:49:37 GMT'), expected);
  assert.equal(parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT'), expected);
  assert.equal(parseHttpDate('Sun Nov  6 08:49:37 1994'), expected);
  for (const bad of ['', 'Sun, 06 Nov 1994 08:49:37 UTC', 'sun, 06 nov 1994 08:49:37 GMT', 'Sun, 31 Feb 1994 08:49:37 GMT',
    'Sun, 06 Nov 1994 25:49:37 GMT', '1994-11-06T08:49:37Z', 'Sun, 06 Nov 1994 08:61:37 GMT']) {
    assert.ok(Number.isNaN(parseHttpDate(bad)), bad);
  }
  // A two-digit year more than 50 years ahead belongs to the last century.
  const nextYear = (new Date().getUTCFullYear() + 1) % 100;
  const twoDigits = String(nextYear).padStart(2, '0');
  assert.equal(new Date(parseHttpDate(`Friday, 01-Jan-${twoDigits} 00:00:00 GMT`)).getUTCFullYear(), new Date().getUTCFullYear() + 1);
  const farAhead = String((nextYear + 60) % 100).padStart(2, '0');
  assert.ok(new Date(parseHttpDate(`Friday, 01-Jan-${farAhead} 00:00:00 GMT`)).getUTCFullYear() <= new Date().getUTCFullYear());
});

// ---------------------------------------------------------------------------
// Large files

test('a large file is streamed from an open fd: bytes are the head only', () => {
  const response = answer(get('/big.bin'));
  assert.equal(response.status, 200);
  assert.ok(response.file !== null);
  assert.deepEqual({ offset: response.file.offset, length: response.file.length }, { offset: 0, length: BIG_FILE_SIZE });
  const { headers, body } = splitResponse(response.bytes);
  assert.equal(body.length, 0, 'bytes must hold only the head');
  assert.equal(headers.get('content-length'), String(BIG_FILE_SIZE));
  const stat = statOf('big.bin');
  assert.equal(headers.get('etag'), etagFor(stat.size, stat.mtimeMs));
  assert.equal(headers.get('last-modified'), formatHttpDate(stat.mtimeMs));
  const wire = wireBytes(response); // the Outbox closes the fd at the end
  assert.ok(wire.subarray(response.bytes.length).equals(fixture.bigFile));
});

test('HEAD and 304 of a large file open nothing (no fd leak)', () => {
  answer(head('HEAD', '/big.bin')); // warm the lookup cache
  const fdsBefore = openFdCount(process.pid);
  const headResponse = answer(head('HEAD', '/big.bin'));
  assert.equal(headResponse.file, null);
  assert.equal(splitResponse(headResponse.bytes).headers.get('content-length'), String(BIG_FILE_SIZE));
  const stat = statOf('big.bin');
  const notModified = answer(get('/big.bin', `If-None-Match: ${etagFor(stat.size, stat.mtimeMs)}`));
  assert.equal(notModified.status, 304);
  assert.equal(notModified.file, null);
  assert.equal(splitResponse(notModified.bytes).body.length, 0);
  assert.equal(openFdCount(process.pid), fdsBefore);
});

test('every GET of a large file opens its own fd, closed by the Outbox when sent', () => {
  const fdsBefore = openFdCount(process.pid);
  const first = answer(get('/big.bin'));
  const second = answer(get('/big.bin'));
  assert.notEqual(first.file!.fd, second.file!.fd);
  assert.equal(openFdCount(process.pid), fdsBefore + 2);
  wireBytes(first);
  wireBytes(second);
  assert.equal(openFdCount(process.pid), fdsBefore);
});

/**
 * A large (uncached) file, looked up while large and then truncated to nothing: `check` runs
 * against the stale metadata and must leave no descriptor open. The file is removed afterwards.
 */
function withLargeFileEmptiedAfterLookup(name: string, check: (urlPath: string) => void): void {
  fs.copyFileSync(fixture.file('big.bin'), fixture.file(name));
  try {
    assert.equal(answer(head('HEAD', `/${name}`)).status, 200); // looked up while large
    fs.truncateSync(fixture.file(name), 0);
    const fdsBefore = openFdCount(process.pid);
    check(`/${name}`);
    assert.equal(openFdCount(process.pid), fdsBefore);
  } finally {
    fs.rmSync(fixture.file(name));
  }
}

test('a large file emptied after lookup is answered with Content-Length 0 and no file body', () => {
  withLargeFileEmptiedAfterLookup('emptied.bin', (urlPath) => {
    const response = answer(get(urlPath));
    assert.equal(response.status, 200);
    assert.equal(response.file, null, 'no zero-length file body for the Outbox');
    assert.equal(splitResponse(response.bytes).headers.get('content-length'), '0');
  });
});

test('a large file deleted after lookup answers 404 on GET', () => {
  fs.copyFileSync(fixture.file('big.bin'), fixture.file('doomed.bin'));
  assert.equal(answer(head('HEAD', '/doomed.bin')).status, 200);
  fs.rmSync(fixture.file('doomed.bin'));
  assert.equal(answer(get('/doomed.bin')).status, 404);
});

test('a caller that has read the clock passes the time, and the clock is not read again', (t) => {
  const passed = Date.UTC(2031, 5, 2, 8, 30, 0);
  const clock = t.mock.method(Date, 'now', () => Date.UTC(2040, 0, 1));
  const response = handleRequest(parseOne(get('/style.css')), site, passed);
  assert.equal(clock.mock.callCount(), 0);
  assert.equal(splitResponse(response.bytes).headers.get('date'), formatHttpDate(passed));
});

// ---------------------------------------------------------------------------
// The prepared-response fast path

test('a cached file answers with the same prepared response object each time', (t) => {
  const fixedNow = Date.UTC(2030, 0, 1, 12, 0, 0, 250);
  t.mock.method(Date, 'now', () => fixedNow);
  const first = answer(get('/style.css'));
  const second = answer(get('/style.css'));
  assert.equal(second, first, 'expected the very same object: nothing rebuilt per request');
  assert.ok(Object.isFrozen(first));
  assert.equal(answer(get('/style.css', 'Connection: close')).close, true, 'close is its own variant');
  assert.notEqual(answer(head('HEAD', '/style.css')), first, 'HEAD is its own variant');
});

test('prepared responses are rebuilt when the Date second changes', (t) => {
  let now = Date.UTC(2030, 0, 1, 12, 0, 0, 100);
  t.mock.method(Date, 'now', () => now);
  const first = answer(get('/style.css'));
  now += 500; // same second
  assert.equal(answer(get('/style.css')), first);
  now += 1000;
  const later = answer(get('/style.css'));
  assert.notEqual(later, first);
  assert.equal(splitResponse(later.bytes).headers.get('date'), 'Tue, 01 Jan 2030 12:00:01 GMT');
  assert.equal(splitResponse(first.bytes).headers.get('date'), 'Tue, 01 Jan 2030 12:00:00 GMT', 'old buffers are never modified');
});

// ---------------------------------------------------------------------------
// Byte ranges (the decisions themselves are tested in byte-ranges.test.ts)

const STYLE_CSS = 'body { color: black }\n';

test('a range of a cached file: 206 with Content-Range, the validators and exactly those bytes', () => {
  const response = answer(get('/style.css', 'Range: bytes=5-9'));
  const stat = statOf('style.css');
  assert.equal(response.status, 206);
  assert.equal(response.file, null);
  assert.equal(response.close, false);
  const { statusLine, headers, body } = splitResponse(response.bytes);
  assert.equal(statusLine, 'HTTP/1.1 206 Partial Content');
  assert.equal(headers.get('content-range'), `bytes 5-9/${STYLE_CSS.length}`);
  assert.equal(headers.get('content-length'), '5');
  assert.equal(headers.get('content-type'), 'text/css; charset=utf-8');
  assert.equal(headers.get('accept-ranges'), 'bytes');
  assert.equal(headers.get('etag'), etagFor(stat.size, stat.mtimeMs));
  assert.equal(headers.get('last-modified'), formatHttpDate(stat.mtimeMs));
  assert.equal(body.toString('latin1'), STYLE_CSS.slice(5, 10));
});

test('every form of a single range, on a cached file', () => {
  const size = STYLE_CSS.length;
  const cases: [string, number, number][] = [['bytes=0-0', 0, 1], ['bytes=3-', 3, size], ['bytes=-4', size - 4, size], ['bytes=0-9999', 0, size]];
  for (const [range, from, to] of cases) {
    const { headers, body } = splitResponse(answer(get('/style.css', `Range: ${range}`)).bytes);
    assert.equal(body.toString('latin1'), STYLE_CSS.slice(from, to), range);
    assert.equal(headers.get('content-range'), `bytes ${from}-${to - 1}/${size}`, range);
  }
});

test('a range past the end is 416 with Content-Range bytes */size; the connection stays', () => {
  for (const target of ['/style.css', '/big.bin']) {
    const size = statOf(target.slice(1)).size;
    const fdsBefore = openFdCount(process.pid);
    const response = answer(get(target, `Range: bytes=${size}-`));
    assert.equal(response.status, 416, target);
    assert.equal(response.close, false);
    assert.equal(response.file, null);
    assert.equal(openFdCount(process.pid), fdsBefore, 'the large file opened for it is closed again');
    const { statusLine, headers, body } = splitResponse(response.bytes);
    assert.equal(statusLine, 'HTTP/1.1 416 Range Not Satisfiable');
    assert.equal(headers.get('content-range'), `bytes */${size}`);
    assert.equal(body.toString(), '416 Range Not Satisfiable\n');
    assert.match(response.reason!, /bytes=/);
  }
});

test('a range of a large file is streamed from its offset, never read whole', () => {
  const cases: [string, number, number][] = [
    ['bytes=1000-1999', 1000, 2000],
    ['bytes=300000-', 300000, BIG_FILE_SIZE],
    ['bytes=-4096', BIG_FILE_SIZE - 4096, BIG_FILE_SIZE],
  ];
  for (const [range, from, to] of cases) {
    const fdsBefore = openFdCount(process.pid);
    const response = answer(get('/big.bin', `Range: ${range}`));
    assert.equal(response.status, 206, range);
    assert.deepEqual({ offset: response.file!.offset, length: response.file!.length }, { offset: from, length: to - from });
    const { headers, body } = splitResponse(response.bytes);
    assert.equal(body.length, 0, 'bytes must hold only the head');
    assert.equal(headers.get('content-range'), `bytes ${from}-${to - 1}/${BIG_FILE_SIZE}`);
    assert.equal(headers.get('content-length'), String(to - from));
    assert.ok(bodyOnWire(response).equals(fixture.bigFile.subarray(from, to)), range);
    assert.equal(openFdCount(process.pid), fdsBefore);
  }
});

test('HEAD with a Range gives the 206 (or 416) head without a body, and opens nothing', () => {
  const cached = answer(head('HEAD', '/style.css', 'Range: bytes=5-9'));
  assert.equal(cached.status, 206);
  const getResponse = answer(get('/style.css', 'Range: bytes=5-9'));
  assert.equal(cached.bytes.toString('latin1'), getResponse.bytes.subarray(0, getResponse.bytes.length - 5).toString('latin1'), 'the GET head');
  assert.equal(splitResponse(cached.bytes).body.length, 0);
  assert.equal(splitResponse(cached.bytes).headers.get('content-length'), '5');

  answer(head('HEAD', '/big.bin')); // warm the lookup cache
  const fdsBefore = openFdCount(process.pid);
  const large = answer(head('HEAD', '/big.bin', 'Range: bytes=-10'));
  assert.equal(large.status, 206);
  assert.equal(large.file, null);
  assert.equal(splitResponse(large.bytes).headers.get('content-range'), `bytes ${BIG_FILE_SIZE - 10}-${BIG_FILE_SIZE - 1}/${BIG_FILE_SIZE}`);
  assert.equal(openFdCount(process.pid), fdsBefore);

  for (const target of ['/style.css', '/big.bin']) {
    const unsatisfiable = answer(head('HEAD', target, 'Range: bytes=99999999-'));
    assert.equal(unsatisfiable.status, 416);
    assert.equal(splitResponse(unsatisfiable.bytes).body.length, 0);
    assert.notEqual(splitResponse(unsatisfiable.bytes).headers.get('content-length'), '0');
  }
});

test('If-Range: the current ETag or Last-Modified gives the range, anything else the whole file', (t) => {
  for (const [target, size] of [['/style.css', STYLE_CSS.length], ['/big.bin', BIG_FILE_SIZE]] as const) {
    const stat = statOf(target.slice(1));
    t.mock.method(Date, 'now', () => stat.mtimeMs + 5000); // Last-Modified is a strong validator by now
    const etag = etagFor(stat.size, stat.mtimeMs);
    const lastModified = formatHttpDate(stat.mtimeMs);
    for (const ifRange of [etag, lastModified]) {
      const response = answer(get(target, 'Range: bytes=0-1', `If-Range: ${ifRange}`));
      assert.equal(response.status, 206, `${target} ${ifRange}`);
      wireBytes(response);
    }
    for (const ifRange of ['"stale"', `W/${etag}`, formatHttpDate(stat.mtimeMs - 60_000), 'garbage']) {
      const response = answer(get(target, 'Range: bytes=0-1', `If-Range: ${ifRange}`));
      assert.equal(response.status, 200, `${target} ${ifRange}`);
      assert.equal(splitResponse(response.bytes).headers.get('content-length'), String(size));
      assert.equal(bodyOnWire(response).length, size);
    }
    t.mock.restoreAll();
  }
});

test('a 304 takes precedence over a Range; malformed or multiple ranges get the whole file', () => {
  const stat = statOf('style.css');
  const notModified = answer(get('/style.css', `If-None-Match: ${etagFor(stat.size, stat.mtimeMs)}`, 'Range: bytes=0-1'));
  assert.equal(notModified.status, 304);
  for (const range of ['bytes=5-3', 'lines=1-2', 'bytes=0-1,4-5', 'bytes=x']) {
    const response = answer(get('/style.css', `Range: ${range}`));
    assert.equal(response.status, 200, range);
    assert.equal(splitResponse(response.bytes).body.toString(), STYLE_CSS);
  }
});

test('Range is ignored where there is no file: 404, 301, 405', () => {
  assert.equal(answer(get('/missing.css', 'Range: bytes=0-1')).status, 404);
  assert.equal(answer(get('/docs', 'Range: bytes=0-1')).status, 301);
  assert.equal(answer(head('POST', '/style.css', 'Range: bytes=0-1')).status, 405);
  assert.equal(splitResponse(answer(get('/missing.css')).bytes).headers.has('accept-ranges'), false);
});

test('ranged requests leave the prepared fast path alone', (t) => {
  const fixedNow = Date.UTC(2030, 0, 1, 12, 0, 0, 250);
  t.mock.method(Date, 'now', () => fixedNow);
  const first = answer(get('/style.css'));
  assert.equal(answer(get('/style.css', 'Range: bytes=0-1')).status, 206);
  assert.equal(answer(get('/style.css')), first);
  assert.equal(splitResponse(first.bytes).headers.get('accept-ranges'), 'bytes');
});

test('a large file emptied after lookup: a range of it is 416, a suffix range the empty 200', () => {
  withLargeFileEmptiedAfterLookup('shrunk.bin', (urlPath) => {
    const fromStart = answer(get(urlPath, 'Range: bytes=0-'));
    assert.equal(fromStart.status, 416);
    assert.equal(splitResponse(fromStart.bytes).headers.get('content-range'), 'bytes */0');
    const suffix = answer(get(urlPath, 'Range: bytes=-5'));
    assert.equal(suffix.status, 200);
    assert.equal(suffix.file, null);
  });
});

test('serviceUnavailable: a complete 503 that closes, with Retry-After and the reason', () => {
  const response = serviceUnavailable('too many connections for select()');
  assert.equal(response.status, 503);
  assert.equal(response.close, true);
  assert.equal(response.file, null);
  const text = response.bytes.toString('latin1');
  const [headText = '', body = ''] = text.split('\r\n\r\n');
  assert.match(headText, /^HTTP\/1\.1 503 Service Unavailable\r\n/);
  assert.match(headText, /\r\nRetry-After: 1\r\n/);
  assert.match(headText, /\r\nConnection: close(\r\n|$)/);
  assert.match(headText, new RegExp(`\\r\\nContent-Length: ${Buffer.byteLength(body)}(\\r\\n|$)`));
  assert.equal(body, '503 Service Unavailable: too many connections for select()\n');
});
