// Framing: turning a byte stream into requests (shared/request-reader.ts).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  MAX_BODY_BYTES,
  MAX_HEAD_BYTES,
  MAX_TARGET_LENGTH,
  RequestReader,
  hasToken,
  originFormOf,
} from '../shared/request-reader.ts';
import type { HttpRequest, ParsedRequest } from '../shared/request-reader.ts';
import { get, parseAll, parseOne, parseRequest, requestText } from './helpers/fixtures.ts';

function assertError(parsed: ParsedRequest | null, status: number, reasonPart?: string): void {
  assert.ok(parsed !== null, 'expected an error, got null');
  assert.equal(parsed.kind, 'error', `expected error ${status}, got a request`);
  if (parsed.kind !== 'error') return;
  assert.equal(parsed.status, status, `reason: ${parsed.reason}`);
  if (reasonPart !== undefined) assert.match(parsed.reason, new RegExp(reasonPart));
}

function targets(results: ParsedRequest[]): string[] {
  return results.map((parsed) => (parsed.kind === 'request' ? parsed.target : `error ${parsed.status}`));
}

// ---------------------------------------------------------------------------
// Basic parsing

test('parses a simple request: method, target, version, lower-cased headers', () => {
  const request = parseRequest(requestText(
    'GET /a%20b.html?x=1 HTTP/1.1',
    'Host: example.com',
    'User-Agent: test/1.0',
    'X-Mixed-Case: Value Kept',
  ));
  assert.deepEqual(request, {
    kind: 'request',
    method: 'GET',
    target: '/a%20b.html?x=1',
    version: '1.1',
    headers: new Map([
      ['host', 'example.com'],
      ['user-agent', 'test/1.0'],
      ['x-mixed-case', 'Value Kept'],
    ]),
    keepAlive: true,
  });
});

test('header values are trimmed of spaces and tabs; obs-text bytes are kept', () => {
  const text = requestText('GET / HTTP/1.1', 'Host:example.com', 'X-Pad: \t padded \t ', 'X-Latin: caf\xe9 \xa0x\xa0');
  const request = parseRequest(Buffer.from(text, 'latin1'));
  assert.equal(request.headers.get('host'), 'example.com');
  assert.equal(request.headers.get('x-pad'), 'padded');
  // 0xA0 is obs-text here, not whitespace: it must survive trimming.
  assert.equal(request.headers.get('x-latin'), 'caf\xe9 \xa0x\xa0');
});

test('repeated header fields are joined with ", " in order', () => {
  const request = parseRequest(get('/', 'Accept: text/html', 'X-Other: 1', 'accept: */*'));
  assert.equal(request.headers.get('accept'), 'text/html, */*');
});

test('a method other than GET/HEAD is not a framing error', () => {
  for (const method of ['POST', 'DELETE', 'BREW', 'get']) {
    const request = parseRequest(requestText(`${method} / HTTP/1.1`, 'Host: h'));
    assert.equal(request.method, method, 'method is kept exactly as sent');
  }
});

// ---------------------------------------------------------------------------
// Assembling and splitting

test('a request arriving byte by byte is assembled, and only then returned', () => {
  const text = get('/slow.html', 'Accept: */*');
  const reader = new RequestReader();
  const bytes = Buffer.from(text, 'latin1');
  for (let index = 0; index < bytes.length - 1; index++) {
    reader.push(bytes.subarray(index, index + 1));
    assert.equal(reader.next(), null, `complete too early at byte ${index}`);
    assert.equal(reader.bufferedBytes, index + 1);
  }
  reader.push(bytes.subarray(bytes.length - 1));
  const parsed = reader.next();
  assert.equal(parsed?.kind, 'request');
  assert.equal((parsed as HttpRequest).target, '/slow.html');
  assert.equal(reader.next(), null);
  assert.equal(reader.bufferedBytes, 0);
});

test('a request split at any position gives the same result', () => {
  const text = get('/split', 'Accept: */*', 'Connection: close');
  const whole = parseRequest(text);
  for (let cut = 1; cut < text.length; cut++) {
    const results = parseAll(text.slice(0, cut), text.slice(cut));
    assert.deepEqual(results, [whole], `cut at ${cut}`);
  }
});

test('pipelined requests in one push all come out, in order', () => {
  const results = parseAll(get('/one') + get('/two') + requestText('HEAD /three HTTP/1.0'));
  assert.deepEqual(targets(results), ['/one', '/two', '/three']);
  assert.equal((results[2] as HttpRequest).method, 'HEAD');
});

test('pipelined requests split across pushes at odd places', () => {
  const stream = get('/a') + get('/b') + get('/c') + get('/d');
  const results = parseAll(stream.slice(0, 20), stream.slice(20, 61), stream.slice(61, 100), stream.slice(100));
  assert.deepEqual(targets(results), ['/a', '/b', '/c', '/d']);
});

test('the caller may reuse the pushed buffer once next() returned null', () => {
  // Models recv() into one reusable buffer. The reader must copy the unparsed
  // tail out of it before returning null, or the next recv() would corrupt it.
  const reader = new RequestReader();
  const receiveBuffer = Buffer.alloc(64);
  const stream = Buffer.from(get('/first') + get('/second-request'), 'latin1');
  const firstLength = get('/first').length + 10; // the whole first request and a bit of the second

  stream.copy(receiveBuffer, 0, 0, firstLength);
  reader.push(receiveBuffer.subarray(0, firstLength));
  const first = reader.next();
  assert.equal((first as HttpRequest).target, '/first');
  assert.equal(reader.next(), null);

  receiveBuffer.fill('X'); // the next recv() overwrites the memory
  const rest = stream.subarray(firstLength);
  rest.copy(receiveBuffer);
  reader.push(receiveBuffer.subarray(0, rest.length));
  const second = reader.next();
  assert.equal((second as HttpRequest).target, '/second-request');
  assert.equal(reader.next(), null);
});

test('held bytes survive a reused buffer across many small pushes', () => {
  const reader = new RequestReader();
  const receiveBuffer = Buffer.alloc(7);
  const stream = Buffer.from(get('/' + 'x'.repeat(3000)) + get('/after'), 'latin1');
  const results: ParsedRequest[] = [];
  for (let offset = 0; offset < stream.length; offset += receiveBuffer.length) {
    const count = stream.copy(receiveBuffer, 0, offset, offset + receiveBuffer.length);
    reader.push(receiveBuffer.subarray(0, count));
    for (let parsed = reader.next(); parsed !== null; parsed = reader.next()) results.push(parsed);
    receiveBuffer.fill(0);
  }
  assert.deepEqual(targets(results), ['/' + 'x'.repeat(3000), '/after']);
});

test('push(buffer, count) reads the first count bytes only, whatever the rest of the buffer holds', () => {
  // The models recv() into one large buffer and pass the count: the bytes after it are
  // left over from earlier recv()s, complete requests and empty lines among them.
  const reader = new RequestReader();
  const receiveBuffer = Buffer.alloc(256);
  const stale = Buffer.from(get('/stale') + '\r\n\r\n'.repeat(20), 'latin1');
  const fill = (text: string): number => {
    stale.copy(receiveBuffer); // yesterday's bytes everywhere...
    return receiveBuffer.write(text, 0, 'latin1'); // ...then today's at the front
  };

  reader.push(receiveBuffer, fill(get('/whole')));
  assert.equal((reader.next() as HttpRequest).target, '/whole');
  assert.equal(reader.next(), null);

  // A head cut short: the LFs of the stale bytes after it must not complete it.
  const split = get('/split');
  reader.push(receiveBuffer, fill(split.slice(0, 20)));
  assert.equal(reader.next(), null);
  assert.equal(reader.bufferedBytes, 20);
  reader.push(receiveBuffer, fill(split.slice(20) + get('/next').slice(0, 5)));
  assert.equal((reader.next() as HttpRequest).target, '/split');
  assert.equal(reader.next(), null);
  assert.equal(reader.bufferedBytes, 5);
  reader.push(receiveBuffer, fill(get('/next').slice(5)));
  assert.equal((reader.next() as HttpRequest).target, '/next');
  assert.equal(reader.next(), null);
  assert.equal(reader.midRequest, false);
});

test('field names are matched whatever their case, known ones and others alike', () => {
  const request = parseRequest(requestText(
    'GET / HTTP/1.1',
    'HOST: example.com',
    'CONNECTION: Close',
    'Content-LENGTH: 0',
    'Hast: not host', // the length of a known name, but another name
    'If-None-Match: "a"',
    'if-none-match: "b"',
  ));
  assert.deepEqual([...request.headers], [
    ['host', 'example.com'],
    ['connection', 'Close'],
    ['content-length', '0'],
    ['hast', 'not host'],
    ['if-none-match', '"a", "b"'],
  ]);
  assert.equal(request.keepAlive, false);
});

test('empty pushes are harmless', () => {
  const reader = new RequestReader();
  reader.push(Buffer.alloc(0));
  assert.equal(reader.next(), null);
  reader.push(Buffer.from(get('/'), 'latin1'));
  reader.push(Buffer.alloc(0));
  assert.equal((reader.next() as HttpRequest).target, '/');
});

// ---------------------------------------------------------------------------
// Line endings and control characters (RFC 9112 §2.2)

test('bare LF line endings are accepted, also mixed with CRLF', () => {
  const lfOnly = parseRequest('GET /lf HTTP/1.1\nHost: h\nAccept: */*\n\n');
  assert.equal(lfOnly.target, '/lf');
  assert.equal(lfOnly.headers.get('accept'), '*/*');
  const mixed = parseAll('GET /m1 HTTP/1.1\r\nHost: h\n\r\nGET /m2 HTTP/1.1\nHost: h\r\n\n');
  assert.deepEqual(targets(mixed), ['/m1', '/m2']);
});

test('empty lines before a request line are ignored', () => {
  const results = parseAll('\r\n\n\r\n' + get('/after-blank-lines') + '\r\n' + get('/next'));
  assert.deepEqual(targets(results), ['/after-blank-lines', '/next']);
});

test('an empty line split between CR and LF is still skipped', () => {
  assert.deepEqual(targets(parseAll('\r', '\n' + get('/x'))), ['/x']);
});

test('a bare CR anywhere in the head is a 400', () => {
  assertError(parseOne('GET / HTTP/1.1\rHost: h\r\n\r\n'), 400);
  assertError(parseOne('GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n'), 400);
  assertError(parseOne('\rGET / HTTP/1.1\r\nHost: h\r\n\r\n'), 400);
  assertError(parseOne('GET / HTTP/1.1\r\nHost: h\r\n\r\r\n\r\n'), 400);
});

test('NUL, DEL and other control bytes in the head are a 400; HTAB in a value is fine', () => {
  for (const bad of ['\0', '\x01', '\x1b', '\x7f', '\x0b', '\x0c']) {
    assertError(parseOne(get('/', `X-Bad: a${bad}b`)), 400, 'control');
    assertError(parseOne(`GET /${bad} HTTP/1.1\r\nHost: h\r\n\r\n`), 400);
  }
  assert.equal(parseRequest(get('/', 'X-Tab: a\tb')).headers.get('x-tab'), 'a\tb');
});

// ---------------------------------------------------------------------------
// Size limits

test('a head of exactly MAX_HEAD_BYTES is fine, one byte more is 431', () => {
  const base = get('/', 'X-Fill: ');
  const fitting = get('/', `X-Fill: ${'a'.repeat(MAX_HEAD_BYTES - base.length)}`);
  assert.equal(fitting.length, MAX_HEAD_BYTES);
  assert.equal(parseOne(fitting).kind, 'request');
  const tooBig = get('/', `X-Fill: ${'a'.repeat(MAX_HEAD_BYTES - base.length + 1)}`);
  assertError(parseOne(tooBig), 431);
});

test('an endless stream of headers is cut off with 431 before the head ends', () => {
  const reader = new RequestReader();
  reader.push(Buffer.from('GET / HTTP/1.1\r\nHost: h\r\n', 'latin1'));
  assert.equal(reader.next(), null);
  let result: ParsedRequest | null = null;
  for (let line = 0; line < 1000 && result === null; line++) {
    reader.push(Buffer.from(`X-Header-${line}: ${'v'.repeat(50)}\r\n`, 'latin1'));
    result = reader.next();
  }
  assertError(result, 431);
  assert.ok(reader.bufferedBytes === 0);
});

test('no line end at all within the limit is 414 "request line too long"', () => {
  const reader = new RequestReader();
  reader.push(Buffer.from(`GET /${'a'.repeat(MAX_HEAD_BYTES)}`, 'latin1'));
  assertError(reader.next(), 414, 'request line too long');
});

test('a request-target longer than MAX_TARGET_LENGTH is 414; at the limit it is fine', () => {
  const atLimit = '/' + 'a'.repeat(MAX_TARGET_LENGTH - 1);
  assert.equal(parseRequest(get(atLimit)).target, atLimit);
  assertError(parseOne(get(atLimit + 'b')), 414);
});

test('after an error the reader is finished: next() is null and push() is ignored', () => {
  const reader = new RequestReader();
  reader.push(Buffer.from('GET / HTTP/1.1\r\nHost: h\r\nBad Header: x\r\n\r\n' + get('/next'), 'latin1'));
  assertError(reader.next(), 400);
  assert.equal(reader.next(), null);
  assert.equal(reader.bufferedBytes, 0);
  reader.push(Buffer.from(get('/more'), 'latin1'));
  assert.equal(reader.next(), null);
  assert.equal(reader.bufferedBytes, 0);
});

// ---------------------------------------------------------------------------
// Request line (RFC 9112 §3)

test('a malformed request line is a 400', () => {
  for (const line of [
    'GET /',                    // no version
    'GET  / HTTP/1.1',          // two spaces
    'GET / HTTP/1.1 extra',     // four parts
    'GET / HTTP/1.1 ',          // trailing space
    ' GET / HTTP/1.1',          // leading space
    'GET\t/ HTTP/1.1',          // tab instead of space
    'G@T / HTTP/1.1',           // method is not a token
    'GET',
  ]) {
    assertError(parseOne(requestText(line, 'Host: h')), 400);
  }
});

test('HTTP/1.0 and HTTP/1.1 are accepted; a later 1.x minor is treated as 1.1', () => {
  assert.equal(parseRequest(requestText('GET / HTTP/1.0')).version, '1.0');
  assert.equal(parseRequest(requestText('GET / HTTP/1.1', 'Host: h')).version, '1.1');
  assert.equal(parseRequest(requestText('GET / HTTP/1.9', 'Host: h')).version, '1.1');
});

test('a well-formed version with another major is 505; garbage is 400', () => {
  assertError(parseOne(requestText('GET / HTTP/2.0', 'Host: h')), 505);
  assertError(parseOne(requestText('GET / HTTP/3.0', 'Host: h')), 505);
  assertError(parseOne(requestText('GET / HTTP/0.9', 'Host: h')), 505);
  for (const version of ['HTTP/1.1x', 'http/1.1', 'HTTP/11', 'HTTP/1', 'HTTP/1.10', 'HTTPS/1.1', 'HTTP/a.b']) {
    assertError(parseOne(requestText(`GET / ${version}`, 'Host: h')), 400);
  }
});

test('origin-form and absolute-form targets are accepted', () => {
  assert.equal(parseRequest(get('/path?q=1')).target, '/path?q=1');
  assert.equal(parseRequest(get('http://example.com/path?q=1')).target, 'http://example.com/path?q=1');
  assert.equal(parseRequest(get('HTTPS://example.com:8443')).target, 'HTTPS://example.com:8443');
});

test('asterisk-form, authority-form and relative targets are a 400', () => {
  for (const target of ['*', 'example.com:443', 'index.html', 'http://', 'http:///path', 'ftp://host/file']) {
    assertError(parseOne(requestText(`OPTIONS ${target} HTTP/1.1`, 'Host: h')), 400);
  }
});

test('an absolute-form target whose authority is no host[:port] is a 400 (userinfo, quotes, brackets of other kinds)', () => {
  for (const target of ['http://"example.com/', 'http://user@example.com/', 'http://user:pw@h/', 'http://a<b>/', 'http://h{}/', 'http://h\\x/', 'http://h`/']) {
    assertError(parseOne(get(target)), 400, 'authority in request-target');
  }
  for (const target of ['http://[::1]:8080/', 'http://127.0.0.1/x', 'http://xn--fiq228c.example/', 'http://h%41/']) {
    assert.equal(parseRequest(get(target)).target, target);
  }
});

test('bytes outside printable ASCII in the target are a 400', () => {
  assertError(parseOne(Buffer.from(get('/caf\xe9.html'), 'latin1')), 400, 'request-target');
  assertError(parseOne(Buffer.from(get('/中文.html'), 'utf8')), 400, 'request-target');
});

test('originFormOf takes the path of an absolute-form target', () => {
  assert.equal(originFormOf('/a/b?c'), '/a/b?c');
  assert.equal(originFormOf('http://host/a/b?c'), '/a/b?c');
  assert.equal(originFormOf('http://host:80'), '/');
  assert.equal(originFormOf('http://host?q=1'), '/?q=1');
  assert.equal(originFormOf('https://user@host/x#f'), '/x#f');
});

// ---------------------------------------------------------------------------
// Header lines (RFC 9112 §5)

test('whitespace between field name and colon is a 400', () => {
  assertError(parseOne(get('/', 'X-Name : value')), 400, 'whitespace before colon');
  assertError(parseOne(requestText('GET / HTTP/1.1', 'Host\t: h')), 400, 'whitespace before colon');
});

test('obs-fold (a line starting with SP or HTAB) is a 400', () => {
  assertError(parseOne(get('/', 'X-Long: part one', ' part two')), 400, 'folding');
  assertError(parseOne(get('/', 'X-Long: part one', '\tpart two')), 400, 'folding');
});

test('a header line without colon, with an empty or invalid name is a 400', () => {
  assertError(parseOne(get('/', 'NoColonHere')), 400);
  assertError(parseOne(get('/', ': no name')), 400);
  assertError(parseOne(get('/', 'Bad(Name): x')), 400, 'invalid header name');
  assertError(parseOne(get('/', 'Bad Name: x')), 400, 'invalid header name');
  assertError(parseOne(Buffer.from(get('/', 'Caf\xe9: x'), 'latin1')), 400);
});

test('HTTP/1.1 needs exactly one Host; HTTP/1.0 may omit it', () => {
  assertError(parseOne(requestText('GET / HTTP/1.1')), 400, 'missing Host');
  assertError(parseOne(requestText('GET / HTTP/1.1', 'Host: a', 'Host: a')), 400, 'more than one Host');
  assertError(parseOne(requestText('GET / HTTP/1.0', 'Host: a', 'Host: b')), 400, 'more than one Host');
  assert.equal(parseRequest(requestText('GET / HTTP/1.0')).headers.has('host'), false);
  assert.equal(parseRequest(requestText('GET / HTTP/1.1', 'Host: [::1]:8080')).headers.get('host'), '[::1]:8080');
  assert.equal(parseRequest(requestText('GET / HTTP/1.1', 'Host:')).headers.get('host'), '');
});

test('a Host value with characters no host name can hold is a 400', () => {
  for (const host of ['a b', 'a/b', 'user@host', 'h\xe9', 'a-long-host-name.example:8080/', 'a-long-host-name.exampl\xe9']) {
    assertError(parseOne(Buffer.from(requestText('GET / HTTP/1.1', `Host: ${host}`), 'latin1')), 400, 'invalid Host');
  }
  // The whitespace around a value is not part of it (and each case is checked on its own line).
  for (const host of ['a-long-host-name.example:8080', '[2001:db8::1]:80', 'h']) {
    const request = parseRequest(requestText('GET / HTTP/1.1', `Host: \t${host} \t`, 'X-After: a b/@'));
    assert.equal(request.headers.get('host'), host);
  }
});

// ---------------------------------------------------------------------------
// Persistence (RFC 9112 §9.3)

test('keepAlive: 1.1 unless "close"; 1.0 only with "keep-alive"', () => {
  const cases: [string, string[], boolean][] = [
    ['HTTP/1.1', [], true],
    ['HTTP/1.1', ['Connection: close'], false],
    ['HTTP/1.1', ['Connection: Close'], false],
    ['HTTP/1.1', ['Connection: keep-alive, close'], false],
    ['HTTP/1.1', ['Connection: keep-alive'], true],
    ['HTTP/1.1', ['Connection: closed'], true],
    ['HTTP/1.0', [], false],
    ['HTTP/1.0', ['Connection: keep-alive'], true],
    ['HTTP/1.0', ['Connection: Keep-Alive'], true],
    ['HTTP/1.0', ['Connection: Upgrade , keep-alive'], true],
    ['HTTP/1.0', ['Connection: close'], false],
  ];
  for (const [version, headers, expected] of cases) {
    const request = parseRequest(requestText(`GET / ${version}`, 'Host: h', ...headers));
    assert.equal(request.keepAlive, expected, `${version} ${headers.join()}`);
  }
});

test('hasToken matches comma-separated tokens case-insensitively', () => {
  assert.equal(hasToken('close', 'close'), true);
  assert.equal(hasToken(' Close ', 'close'), true);
  assert.equal(hasToken('TE, close', 'close'), true);
  assert.equal(hasToken('TE,close', 'close'), true);
  assert.equal(hasToken('closed, keep-alive', 'close'), false);
  assert.equal(hasToken('', 'close'), false);
});

// ---------------------------------------------------------------------------
// Bodies (RFC 9112 §6)

test('a body with Content-Length is consumed, even on GET, so the next request frames right', () => {
  const results = parseAll(get('/with-body', 'Content-Length: 12') + 'GET /fake...' + get('/next'));
  assert.deepEqual(targets(results), ['/with-body', '/next']);
});

test('a request is returned only once its body has fully arrived', () => {
  const reader = new RequestReader();
  reader.push(Buffer.from(requestText('POST /upload HTTP/1.1', 'Host: h', 'Content-Length: 10') + 'abc', 'latin1'));
  assert.equal(reader.next(), null);
  assert.equal(reader.bufferedBytes, 0, 'body bytes are thrown away, not kept');
  for (const piece of ['de', 'fgh', 'i']) {
    reader.push(Buffer.from(piece, 'latin1'));
    assert.equal(reader.next(), null);
  }
  reader.push(Buffer.from('j' + get('/after'), 'latin1'));
  const upload = reader.next() as HttpRequest;
  assert.equal(upload.method, 'POST');
  assert.equal(upload.target, '/upload');
  assert.equal((reader.next() as HttpRequest).target, '/after');
  assert.equal(reader.next(), null);
});

test('identical repeated Content-Length values are fine, different ones are a 400', () => {
  assert.deepEqual(targets(parseAll(get('/a', 'Content-Length: 3', 'Content-Length: 3') + 'xyz' + get('/b'))), ['/a', '/b']);
  assert.deepEqual(targets(parseAll(get('/a', 'Content-Length: 3, 3') + 'xyz' + get('/b'))), ['/a', '/b']);
  assertError(parseOne(get('/', 'Content-Length: 3', 'Content-Length: 4')), 400, 'conflicting');
  assertError(parseOne(get('/', 'Content-Length: 3, 4')), 400, 'conflicting');
});

test('Content-Length must be digits only', () => {
  for (const value of ['+5', '-1', '5a', '0x10', '', '1 2', '5,', '1e3']) {
    assertError(parseOne(get('/', `Content-Length: ${value}`)), 400, 'Content-Length');
  }
  assert.equal(parseAll(get('/', 'Content-Length: 007') + '1234567').length, 1);
});

test('a body over 1 MiB is 413 at once; exactly 1 MiB is read and discarded', () => {
  assertError(parseOne(get('/', `Content-Length: ${MAX_BODY_BYTES + 1}`)), 413);
  assertError(parseOne(get('/', 'Content-Length: 99999999999999999999999999')), 413);
  const results = parseAll(get('/big', `Content-Length: ${MAX_BODY_BYTES}`), Buffer.alloc(MAX_BODY_BYTES, 'z'), get('/next'));
  assert.deepEqual(targets(results), ['/big', '/next']);
});

test('Transfer-Encoding: chunked is 411; other codings 501; with Content-Length 400', () => {
  assertError(parseOne(get('/', 'Transfer-Encoding: chunked')), 411);
  assertError(parseOne(get('/', 'Transfer-Encoding: gzip, Chunked')), 411);
  assertError(parseOne(get('/', 'Transfer-Encoding: gzip')), 501);
  assertError(parseOne(get('/', 'Transfer-Encoding: chunked, gzip')), 400, 'final');
  assertError(parseOne(get('/', 'Transfer-Encoding: chunked', 'Content-Length: 5')), 400, 'both');
});

test('every framing error finishes the reader, even with more requests queued', () => {
  for (const bad of [
    get('/', 'Transfer-Encoding: chunked'),
    get('/', 'Transfer-Encoding: gzip'),
    get('/', `Content-Length: ${MAX_BODY_BYTES + 1}`),
    requestText('GET / HTTP/2.0', 'Host: h'),
  ]) {
    const results = parseAll(bad + get('/never'));
    assert.equal(results.length, 1);
    assert.equal(results[0]!.kind, 'error');
  }
});

// ---------------------------------------------------------------------------
// Borrowed bytes

test('detach() copies what the reader still holds, so the caller may reuse its buffer', () => {
  const reader = new RequestReader();
  const receiveBuffer = Buffer.from(get('/a') + get('/b'));
  reader.push(receiveBuffer);
  const first = reader.next();
  assert.equal(first?.kind === 'request' && first.target, '/a');
  reader.detach(); // we stop before next() returned null: /b is still borrowed
  receiveBuffer.fill(0x58); // the next recv() overwrites the buffer
  const second = reader.next();
  assert.equal(second?.kind === 'request' && second.target, '/b');
  assert.equal(reader.next(), null);
  reader.detach(); // nothing held: nothing to do
  assert.equal(reader.bufferedBytes, 0);
});

test('midRequest: true while part of a request (head or body) has arrived, false between requests and after an error', () => {
  const reader = new RequestReader();
  assert.equal(reader.midRequest, false);
  reader.push(Buffer.from('GET / HTTP/1.1\r\nHo'));
  assert.equal(reader.next(), null);
  assert.equal(reader.midRequest, true, 'half a head');
  reader.push(Buffer.from('st: h\r\nContent-Length: 3\r\n\r\nab'));
  assert.equal(reader.next(), null);
  assert.equal(reader.bufferedBytes, 0, 'the body bytes so far are consumed...');
  assert.equal(reader.midRequest, true, '...but one is still owed');
  reader.push(Buffer.from('c\r\n'));
  assert.equal(reader.next()?.kind, 'request');
  assert.equal(reader.next(), null);
  assert.equal(reader.midRequest, false, 'an empty line between requests is no request');
  reader.push(Buffer.from('\x00\r\n\r\n'));
  assert.equal(reader.next()?.kind, 'error');
  assert.equal(reader.midRequest, false);
});

test('the request deadline: counted from the first byte, not moved by later bytes, a 408 once it passes', async () => {
  const reader = new RequestReader();
  const start = Date.now();
  assert.equal(reader.timeLeft(start, 2000), Infinity, 'between requests there is no deadline');
  assert.equal(reader.expire(start + 60_000, 2000), false, 'an idle connection is the idle timeout\'s business');

  const beforePush = Date.now();
  reader.push(Buffer.from('GET / HTTP/1.1\r\nHo'));
  assert.equal(reader.next(), null);
  const firstSeen = Date.now();
  assert.ok(reader.timeLeft(beforePush, 2000) >= 2000, 'the deadline started before the first byte');
  assert.ok(reader.timeLeft(firstSeen, 2000) <= 2000, 'the deadline started after the first byte');
  // A byte a moment later changes nothing: the deadline still counts from the first one.
  await new Promise((resolve) => setTimeout(resolve, 30));
  reader.push(Buffer.from('s'));
  assert.equal(reader.next(), null);
  assert.ok(reader.timeLeft(firstSeen, 2000) <= 2000, 'a later byte moved the deadline');
  assert.equal(reader.expire(firstSeen + 1000, 2000), false);

  assert.equal(reader.expire(firstSeen + 2000, 2000), true);
  const late = reader.next();
  assertError(late, 408, 'not complete 2 s after its first byte');
  assert.equal(reader.next(), null, 'the 408 comes once; then the reader is finished');
  reader.push(Buffer.from('t: h\r\n\r\n'));
  assert.equal(reader.next(), null, 'and the rest of the request no longer counts');
  assert.equal(reader.expire(firstSeen + 9000, 2000), false);
});

test('the request deadline: a body counts, and each request starts its own deadline', async () => {
  const reader = new RequestReader();
  reader.push(Buffer.from('GET /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nab'));
  assert.equal(reader.next(), null);
  assert.ok(reader.timeLeft(Date.now(), 2000) <= 2000, 'a body still owed is part of the request');
  // The body completes together with the start of a second request, a moment later: the second
  // one's deadline is its own, not the first one's.
  await new Promise((resolve) => setTimeout(resolve, 20));
  const secondStart = Date.now();
  reader.push(Buffer.from('cGET /b HT'));
  assert.equal((reader.next() as HttpRequest).target, '/a');
  assert.equal(reader.timeLeft(secondStart + 5000, 2000), Infinity, 'no deadline while requests are handed out');
  assert.equal(reader.next(), null);
  assert.ok(reader.timeLeft(secondStart, 2000) >= 2000, 'the second request inherited the first one\'s deadline');
  reader.push(Buffer.from('TP/1.1\r\nHost: h\r\n\r\n'));
  assert.equal((reader.next() as HttpRequest).target, '/b');
  assert.equal(reader.next(), null);
  assert.equal(reader.timeLeft(Date.now() + 60_000, 2000), Infinity, 'complete: nothing left to time');
});
