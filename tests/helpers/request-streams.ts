/**
 * fast-check generators of HTTP/1.1 request streams for the differential test of the request
 * parser: mostly valid requests (so that pipelined bursts get far), plus the near-valid and hostile
 * variants that parsers disagree about: odd whitespace, obsolete line folding, bare LF and bare CR,
 * duplicate or conflicting Content-Length, Transfer-Encoding variants, absolute-form, asterisk and
 * authority targets, huge and empty fields, NUL and other control bytes, unknown methods and
 * versions, Upgrade and CONNECT, bodies that are too short or too long, and a few random bytes changed
 * anywhere.
 * Streams are latin1 strings: one character per byte.
 */
import fc from 'fast-check';

/** A generated stream, and where to cut it into the chunks a socket might deliver. */
export interface RequestStream {
  text: string;
  /** Increasing offsets inside text. */
  splits: number[];
}

// Mostly one thing, sometimes the odd ones: fc.oneof with weights, as [weight, arbitrary] pairs.
function weighted<T>(...choices: [number, fc.Arbitrary<T>][]): fc.Arbitrary<T> {
  return fc.oneof(...choices.map(([weight, arbitrary]) => ({ weight, arbitrary })));
}

const text = (characters: string, minLength: number, maxLength: number): fc.Arbitrary<string> =>
  fc.string({ unit: fc.constantFrom(...characters), minLength, maxLength });

const ALPHA = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
const TOKEN_CHARS = `${ALPHA}0123456789!#$%&'*+-.^_\`|~`;
const PATH_CHARS = `${ALPHA}0123456789-._~/%?=&;:@!$'()*+,`;
// Bytes that parsers treat differently: controls, DEL, obs-text, separators, quotes.
const ODD_BYTES = '\x00\x01\x07\x08\x0b\x0c\x1b\x7f\x80\x85\xa0\xff "<>\\^`{|}\t,;:=';
const VALUE_CHARS = `${ALPHA}0123456789 -_.,;:/=?"()*`;

const lineEnd = weighted([40, fc.constant('\r\n')], [2, fc.constant('\n')], [1, fc.constant('\r')], [1, fc.constant('\r\r\n')]);

const method = weighted(
  [12, fc.constantFrom('GET', 'HEAD')],
  [3, fc.constantFrom('POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE')],
  [2, fc.constantFrom('get', 'Get', 'FOO', 'M-SEARCH', 'PROPFIND', 'CONNECT', 'GE', 'GETS', 'G\x00T', 'GET\x7f', '')],
  [1, text(TOKEN_CHARS, 1, 8)],
);

const target = weighted(
  [12, text(PATH_CHARS, 0, 30).map((path) => `/${path}`)],
  [2, text(PATH_CHARS, 0, 12).map((path) => `http://example.com/${path}`)],
  [1, fc.constantFrom('*', 'example.com:80', 'example.com', 'HTTPS://h', 'http://', 'ftp://h/x', '//x', '', 'a/b')],
  [1, fc.tuple(text(PATH_CHARS, 0, 6), text(ODD_BYTES, 1, 2), text(PATH_CHARS, 0, 6)).map(([a, odd, b]) => `/${a}${odd}${b}`)],
  [1, fc.integer({ min: 4000, max: 9000 }).map((length) => `/${'a'.repeat(length)}`)],
);

const version = weighted(
  [24, fc.constant('HTTP/1.1')],
  [4, fc.constant('HTTP/1.0')],
  [2, fc.constantFrom('HTTP/1.2', 'HTTP/1.9', 'HTTP/2.0', 'HTTP/0.9', 'HTTP/3.0', 'HTTP/1.10', 'http/1.1', 'HTTP/1', 'HTTP/1.1 ', 'HTTP /1.1', 'HTTP/11', 'HTTP/1.1\x00')],
);

const separator = weighted([30, fc.constant(' ')], [1, fc.constantFrom('  ', '\t', ' \t')]);

// After the name: the colon and optional whitespace, or something odd before the colon.
const colon = weighted([20, fc.constant(': ')], [4, fc.constantFrom(':', ':  ', ':\t')], [1, fc.constantFrom(' :', '\t:', ' : ', '::')]);

const contentLengthValue = weighted(
  [6, fc.integer({ min: 0, max: 40 }).map(String)],
  [2, fc.constantFrom('5, 5', '5,5', '5, 6', ' 5', '05', '+5', '-1', '5.0', '0x5', '', '1 2', '99999999999999999999', '1048577', '5\x00')],
);

const transferEncodingValue = fc.constantFrom(
  'chunked', 'Chunked', 'gzip, chunked', 'chunked, gzip', 'gzip', 'identity', 'chunked, chunked', 'chunkedx', 'x, chunked', '',
);

const connectionValue = fc.constantFrom('close', 'keep-alive', 'Close', 'KEEP-ALIVE', 'keep-alive, close', 'close, foo', 'foo', '', 'closed', 'upgrade-me', 'Upgrade', 'keep-alive, upgrade');

const hostValue = weighted(
  [8, fc.constantFrom('example.com', 'localhost:8080', '127.0.0.1', '[::1]:80')],
  [1, fc.constantFrom('', 'a b', 'a/b', 'a@b', 'h\x00', 'é.example', 'h:80, h:80')],
);

const plainValue = weighted(
  [10, text(VALUE_CHARS, 0, 20)],
  [2, fc.tuple(text(VALUE_CHARS, 0, 8), text(ODD_BYTES, 1, 2), text(VALUE_CHARS, 0, 8)).map(([a, odd, b]) => a + odd + b)],
  [1, fc.constantFrom(8100, 9000, 16500, 17000).map((length) => 'v'.repeat(length))],
);

interface FieldSpec {
  name: string;
  value: string;
}

const field: fc.Arbitrary<FieldSpec> = weighted<FieldSpec>(
  [6, fc.record({ name: fc.constantFrom('Accept', 'User-Agent', 'X-Custom', 'Range', 'If-None-Match', 'Cookie'), value: plainValue })],
  [2, fc.record({ name: fc.constantFrom('Content-Length', 'content-length', 'CONTENT-LENGTH'), value: contentLengthValue })],
  [2, fc.record({ name: fc.constantFrom('Transfer-Encoding', 'transfer-encoding'), value: transferEncodingValue })],
  [2, fc.record({ name: fc.constantFrom('Connection', 'connection'), value: connectionValue })],
  [1, fc.record({ name: fc.constant('Host'), value: hostValue })],
  [1, fc.record({ name: fc.constant('Expect'), value: fc.constantFrom('100-continue', 'nothing') })],
  [1, fc.record({ name: fc.constantFrom('Upgrade', 'upgrade'), value: fc.constantFrom('websocket', 'h2c', '') })],
  [1, fc.record({ name: text(TOKEN_CHARS, 1, 10), value: plainValue })],
  [1, fc.record({ name: fc.constantFrom('', 'Ho st', 'X\x00', 'X\x7f', 'é', '"q"', 'X(1)', ' X', '\tX'), value: plainValue })],
);

interface RequestSpec {
  leadingBlankLines: string;
  method: string;
  target: string;
  version: string;
  separators: [string, string];
  host: string | null;
  fields: FieldSpec[];
  colons: string[];
  lineEnds: string[];
  fold: number | null;
  bodySkew: number;
  chunkedBody: string;
}

// A plain, valid request: what most of a stream is made of, so that pipelines get far.
const validValue = text(VALUE_CHARS.replace('"', ''), 0, 20);
const validField: fc.Arbitrary<FieldSpec> = weighted<FieldSpec>(
  [6, fc.record({ name: fc.constantFrom('Accept', 'User-Agent', 'X-Custom', 'Range', 'If-None-Match', 'Cookie', 'accept-language'), value: validValue })],
  [2, fc.record({ name: fc.constant('Content-Length'), value: fc.integer({ min: 0, max: 40 }).map(String) })],
  [2, fc.record({ name: fc.constant('Connection'), value: fc.constantFrom('close', 'keep-alive', 'Keep-Alive') })],
);

const validRequest: fc.Arbitrary<RequestSpec> = fc.record({
  leadingBlankLines: fc.constant(''),
  method: fc.constantFrom('GET', 'GET', 'GET', 'HEAD', 'POST', 'OPTIONS', 'DELETE'),
  target: weighted([8, text(PATH_CHARS, 0, 30).map((path) => `/${path}`)], [1, text(PATH_CHARS, 0, 12).map((path) => `http://example.com/${path}`)]),
  version: weighted([6, fc.constant('HTTP/1.1')], [1, fc.constant('HTTP/1.0')]),
  separators: fc.constant<[string, string]>([' ', ' ']),
  host: fc.constantFrom('example.com', 'localhost:8080'),
  fields: fc.array(validField, { maxLength: 4 }),
  colons: fc.array(fc.constantFrom(': ', ':', ':\t'), { minLength: 7, maxLength: 7 }),
  lineEnds: fc.constant<string[]>(['\r\n']),
  fold: fc.constant(null),
  bodySkew: fc.constant(0),
  chunkedBody: fc.constant(''),
}).map((spec) => ({ ...spec, fields: withOneContentLength(spec.fields) }));

// Valid requests announce their body length once.
function withOneContentLength(fields: FieldSpec[]): FieldSpec[] {
  const first = fields.findIndex((item) => item.name === 'Content-Length');
  return fields.filter((item, index) => item.name !== 'Content-Length' || index === first);
}

// Anything goes: every part may be odd (each still mostly ordinary, so one oddity at a time is common).
const oddRequest: fc.Arbitrary<RequestSpec> = fc.record({
  leadingBlankLines: weighted([12, fc.constant('')], [1, fc.constantFrom('\r\n', '\n', '\r\n\r\n', '\r', ' \r\n')]),
  method,
  target,
  version,
  separators: fc.tuple(separator, separator),
  // Usually a proper Host as the first field.
  host: weighted([10, fc.constantFrom('example.com', 'localhost:8080')], [1, fc.constant(null)]),
  fields: fc.array(field, { maxLength: 5 }),
  colons: fc.array(colon, { minLength: 7, maxLength: 7 }),
  lineEnds: fc.array(lineEnd, { minLength: 8, maxLength: 8 }),
  // Obsolete line folding: a line starting with whitespace after field number `fold`.
  fold: weighted([15, fc.constant(null)], [1, fc.integer({ min: 0, max: 5 })]),
  // Bytes more (or fewer) than Content-Length announces.
  bodySkew: weighted([12, fc.constant(0)], [1, fc.constantFrom(-1, 1, 3)]),
  chunkedBody: fc.constantFrom('3\r\nabc\r\n0\r\n\r\n', '0\r\n\r\n', '5\r\nab', 'zz\r\n'),
});

const request = weighted([3, validRequest], [1, oddRequest]);

function renderRequest(spec: RequestSpec): string {
  const lines: string[] = [];
  lines.push(`${spec.method}${spec.separators[0]}${spec.target}${spec.separators[1]}${spec.version}`);
  const fields = spec.host === null ? spec.fields : [{ name: 'Host', value: spec.host }, ...spec.fields];
  fields.forEach((item, index) => {
    lines.push(`${item.name}${spec.colons[index % spec.colons.length]}${item.value}`);
    if (spec.fold === index) lines.push(' folded');
  });
  let head = spec.leadingBlankLines;
  lines.forEach((line, index) => {
    head += line + spec.lineEnds[index % spec.lineEnds.length];
  });
  head += spec.lineEnds[lines.length % spec.lineEnds.length];

  // A body as the fields announce it (to the best of a simple reading), give or take a few bytes.
  const contentLength = fields.find((item) => item.name.toLowerCase() === 'content-length');
  const chunked = fields.some((item) => item.name.toLowerCase() === 'transfer-encoding' && /chunked$/i.test(item.value));
  if (chunked) return head + spec.chunkedBody;
  const announced = contentLength === undefined ? 0 : Number.parseInt(contentLength.value.trim(), 10);
  const length = Number.isFinite(announced) && announced >= 0 && announced <= 64 ? Math.max(0, announced + spec.bodySkew) : 0;
  return head + 'b'.repeat(length);
}

// A byte changed, inserted or deleted at some position (given as a fraction of the length).
interface Mutation {
  at: number;
  kind: 'replace' | 'insert' | 'delete';
  byte: string;
}

const mutation: fc.Arbitrary<Mutation> = fc.record({
  // Anywhere, evenly: fast-check's usual bias towards small numbers would put most at byte 0.
  at: fc.noBias(fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true })),
  kind: fc.constantFrom('replace', 'insert', 'delete'),
  byte: fc.constantFrom(...'\r\n \t\x00:,"\x7f\x80\xffa0'),
});

function applyMutation(stream: string, change: Mutation): string {
  if (stream.length === 0) return stream;
  const at = Math.floor(change.at * stream.length);
  switch (change.kind) {
    case 'replace':
      return stream.slice(0, at) + change.byte + stream.slice(at + 1);
    case 'insert':
      return stream.slice(0, at) + change.byte + stream.slice(at);
    case 'delete':
      return stream.slice(0, at) + stream.slice(at + 1);
  }
}

/** One connection's worth of bytes: 1-5 pipelined requests, maybe mutated, maybe cut short. */
export const requestStream: fc.Arbitrary<RequestStream> = fc
  .record({
    requests: fc.array(request, { minLength: 1, maxLength: 5 }),
    mutations: weighted<Mutation[]>([5, fc.constant([])], [1, fc.array(mutation, { minLength: 1, maxLength: 2 })]),
    // Keep only the first `cut` fraction of the stream (a client that stopped sending).
    cut: weighted([8, fc.constant(1)], [1, fc.double({ min: 0, max: 1, noNaN: true })]),
    splitFractions: fc.array(fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }), { maxLength: 6 }),
  })
  .map(({ requests, mutations, cut, splitFractions }) => {
    let stream = requests.map(renderRequest).join('');
    for (const change of mutations) stream = applyMutation(stream, change);
    stream = stream.slice(0, Math.ceil(stream.length * cut));
    const splits = [...new Set(splitFractions.map((fraction) => Math.floor(fraction * stream.length)))]
      .filter((offset) => offset > 0)
      .sort((a, b) => a - b);
    return { text: stream, splits };
  });
