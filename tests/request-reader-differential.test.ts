// The request parser (shared/request-reader.ts) checked against the one every Node server trusts:
// llhttp, inside node:http. fast-check generates request streams (valid, near-valid and hostile:
// see tests/helpers/request-streams.ts); each is fed to a RequestReader and, over a real loopback
// connection, to a node:http server, and the two framings are compared request by request: how
// many requests, each one's method, target, version, headers and keep-alive decision, and whether
// the stream then ends cleanly, in the middle of a request, or in an error.
//
// Where they differ, the difference must be one of the deliberate rules listed below (each with
// its reason); any other difference fails the test with the stream that shows it.
//
// `npm test` runs a fixed number of streams from a fixed seed, so it is repeatable. For a longer
// hunt with a random seed:
//
//     PARSER_DIFF_RUNS=200000 PARSER_DIFF_SECONDS=1800 node --import tsx --test tests/request-reader-differential.test.ts
//
// PARSER_DIFF_SEED=n repeats a run (the seed is printed), PARSER_DIFF_SECONDS bounds it in time.
// With PARSER_DIFF_EXPLORE=1 a difference no rule explains does not fail the run: they are
// grouped and printed with an example each, which is how the rules below were found.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import fc from 'fast-check';
import { RequestReader, hasToken } from '../shared/request-reader.ts';
import type { HttpRequest, RequestError } from '../shared/request-reader.ts';
import { NodeHttpOracle } from './helpers/node-http-oracle.ts';
import type { OracleVerdict } from './helpers/node-http-oracle.ts';
import { requestStream } from './helpers/request-streams.ts';
import type { RequestStream } from './helpers/request-streams.ts';

const LONG_RUN = process.env.PARSER_DIFF_RUNS !== undefined;
const RUNS = Number(process.env.PARSER_DIFF_RUNS ?? 5000);
const SEED = Number(process.env.PARSER_DIFF_SEED ?? (LONG_RUN ? Math.floor(Math.random() * 2 ** 31) : 20261130));
const SECONDS = Number(process.env.PARSER_DIFF_SECONDS ?? (LONG_RUN ? 3600 : 60));
const EXPLORE = process.env.PARSER_DIFF_EXPLORE !== undefined;

// ---------------------------------------------------------------------------
// Both parsers' framing, in one shape

interface Framed {
  method: string;
  target: string;
  version: string;
  /** Lower-cased names; repeated fields joined with ", ", in order of first appearance. */
  headers: [string, string][];
  keepAlive: boolean;
}

/** How a stream ended after the last request: cleanly, in the middle of a request, or in an error. */
type Ending = { kind: 'clean' } | { kind: 'incomplete' } | { kind: 'error'; what: string };

interface Framing {
  requests: Framed[];
  ending: Ending;
}

interface OurFraming extends Framing {
  /** Offset in the stream just after each request (body included). */
  ends: number[];
  error: RequestError | null;
}

function framedFromOurs(request: HttpRequest): Framed {
  return { method: request.method, target: request.target, version: request.version, headers: [...request.headers], keepAlive: request.keepAlive };
}

function chunksOf(bytes: Buffer, splits: number[]): Buffer[] {
  const chunks: Buffer[] = [];
  let from = 0;
  for (const split of [...splits, bytes.length]) {
    chunks.push(bytes.subarray(from, split));
    from = split;
  }
  return chunks;
}

/** Everything a fresh reader makes of `chunks`, pushed one by one as a socket would deliver them. */
function readWithOurs(chunks: Buffer[]): OurFraming {
  const reader = new RequestReader();
  const requests: Framed[] = [];
  const ends: number[] = [];
  let pushed = 0;
  for (const chunk of chunks) {
    reader.push(chunk);
    pushed += chunk.length;
    for (let parsed = reader.next(); parsed !== null; parsed = reader.next()) {
      if (parsed.kind === 'error') return { requests, ends, error: parsed, ending: { kind: 'error', what: `${parsed.status} ${parsed.reason}` } };
      requests.push(framedFromOurs(parsed));
      ends.push(pushed - reader.bufferedBytes);
    }
  }
  return { requests, ends, error: null, ending: reader.midRequest ? { kind: 'incomplete' } : { kind: 'clean' } };
}

function framingFromNode(verdict: OracleVerdict): Framing {
  const requests: Framed[] = [];
  for (const request of verdict.requests) {
    if (!request.complete) break; // its body never arrived in full: the error says so
    const headers = new Map<string, string>();
    for (let index = 0; index < request.rawHeaders.length; index += 2) {
      const name = request.rawHeaders[index]!.toLowerCase();
      const value = request.rawHeaders[index + 1]!;
      const earlier = headers.get(name);
      headers.set(name, earlier === undefined ? value : `${earlier}, ${value}`);
    }
    requests.push({ method: request.method, target: request.url, version: request.version, headers: [...headers], keepAlive: request.keepAlive });
  }
  let ending: Ending;
  if (verdict.error === null) ending = { kind: 'clean' };
  else if (verdict.error === 'HPE_INVALID_EOF_STATE') ending = { kind: 'incomplete' };
  else ending = { kind: 'error', what: `${verdict.error} ${verdict.errorReason}` };
  return { requests, ending };
}

// ---------------------------------------------------------------------------
// Comparing

/** The first place where the two framings part, with what each side made of it. */
interface Difference {
  /** Index of the request where they part. */
  index: number;
  /** The stream from where that request starts (as our reader saw it). */
  rest: string;
  /** The head of that request: `rest` up to its first empty line (or all of it). */
  head: string;
  /** The request before it, on which both agreed (null for the first). */
  previous: Framed | null;
  ours: Framed | Ending;
  theirs: Framed | Ending;
}

function sameRequest(a: Framed, b: Framed): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function sameEnding(a: Ending, b: Ending): boolean {
  // Both refusing counts as agreement whatever the reason: the status codes and llhttp's error
  // codes do not map one to one, and what matters here is where the stream stops.
  return a.kind === b.kind;
}

function compare(stream: string, ours: OurFraming, theirs: Framing): Difference | null {
  for (let index = 0; ; index++) {
    const a = ours.requests[index];
    const b = theirs.requests[index];
    if (a !== undefined && b !== undefined && sameRequest(a, b)) {
      // After a request that closes the connection nothing more is read: the models stop there
      // (Outbox drops later responses), and llhttp refuses more data ("Data after Connection: close").
      if (!a.keepAlive) return null;
      continue;
    }
    if (a === undefined && b === undefined && sameEnding(ours.ending, theirs.ending)) return null;
    const rest = stream.slice(index === 0 ? 0 : ours.ends[index - 1]);
    // Empty lines before the request line belong to it; its head ends at the first empty line after.
    const leading = /^[\r\n]*/.exec(rest)![0].length;
    const blank = /\r?\n\r?\n/.exec(rest.slice(leading));
    const head = blank === null ? rest : rest.slice(0, leading + blank.index + blank[0].length);
    return { index, rest, head, previous: ours.requests[index - 1] ?? null, ours: a ?? ours.ending, theirs: b ?? theirs.ending };
  }
}

// ---------------------------------------------------------------------------
// The deliberate differences
//
// Two kinds. Where our reader refuses what llhttp accepts, the connection ends there (after the
// error response), so the rule only has to name the refusal. Where our reader accepts what llhttp
// refuses, the rule also says how to rewrite that request's head without the leniency; the test
// then runs both parsers again on the rewritten stream, and they must agree (or differ only by
// another rule) — so a leniency cannot hide a second difference in the same head.

interface Rule {
  name: string;
  why: string;
  explains(difference: Difference): boolean;
  /** For a leniency of ours: the head without it. */
  normalize?(head: string, difference: Difference): string;
}

const isRequest = (side: Framed | Ending): side is Framed => 'method' in side;
const isError = (side: Framed | Ending, pattern: RegExp = /./): boolean =>
  !isRequest(side) && side.kind === 'error' && pattern.test(side.what);
// Our refusals carry "status reason".
const weRefuse = (difference: Difference, pattern: RegExp): boolean => isError(difference.ours, pattern);

// Upgrade with "upgrade" among the Connection options: llhttp hands the connection over to the new protocol.
function asksToUpgrade(request: Framed): boolean {
  const field = (wanted: string) => request.headers.find(([name]) => name === wanted)?.[1];
  const connection = field('connection');
  return field('upgrade') !== undefined && connection !== undefined && hasToken(connection, 'upgrade');
}

// A line feed without a carriage return before it.
const BARE_LF = /(?<!\r)\n/;

const RULES: Rule[] = [
  {
    name: 'our head limit: 8 KiB (4 KiB target), llhttp allows 16 KiB',
    why: 'memory per connection stays small and bounded; 414/431 say why (RFC 9110 §15.5.15, RFC 6585 §5)',
    explains: (difference) => weRefuse(difference, /^(414|431) /),
  },
  {
    name: 'Host missing (HTTP/1.1), repeated or invalid: 400',
    why: 'RFC 9112 §3.2 says a server MUST answer 400 (node:http checks a missing Host above llhttp; the oracle turns that off)',
    explains: (difference) => weRefuse(difference, /^400 .*Host header/),
  },
  {
    name: 'request bodies in Transfer-Encoding (chunked: 411, others: 501), or with Content-Length too: refused',
    why: 'a file server needs no request body; refusing instead of decoding keeps the framing simple, and TE with CL is the classic smuggling setup (RFC 9112 §6.1)',
    explains: (difference) => weRefuse(difference, /^(411|501) |^400 (both Transfer-Encoding|chunked is not)/),
  },
  {
    name: 'request body over 1 MiB: 413',
    why: 'a body is read only to be thrown away; a limit bounds what a client can make us read',
    explains: (difference) => weRefuse(difference, /^413 /),
  },
  {
    name: 'request-target neither origin-form nor http(s) absolute-form with a plain host[:port], or not visible ASCII: 400',
    why: 'asterisk-form (OPTIONS *) and authority-form (CONNECT) mean nothing to a file server; userinfo in an http URI is to be treated as an error (RFC 9110 §4.2.4); a URI holds only visible ASCII (RFC 3986 §2), so a raw byte there is an error, not a guess',
    explains: (difference) => weRefuse(difference, /^400 .*request-target/),
  },
  {
    name: 'HTTP major version other than 1 (505), or none at all (400)',
    why: 'we speak HTTP/1.x only; llhttp parses HTTP/0.9 and HTTP/2.0 request lines as well, and takes a request line without a version ("GET /path") for HTTP/0.9, whose header fields it then reads anyway',
    explains: (difference) => weRefuse(difference, /^505 /)
      || (weRefuse(difference, /^400 malformed request line/) && isRequest(difference.theirs) && difference.theirs.version === '0.9'),
  },
  {
    name: 'request line parts separated by anything but one space: 400',
    why: 'RFC 9112 §3 defines exactly one SP; being strict keeps us from guessing where a target ends (llhttp takes several spaces)',
    explains: (difference) => weRefuse(difference, /^400 malformed request line/) && /^[\r\n]*[^\r\n]*(  |\t| \r?\n)/.test(difference.head),
  },
  {
    name: 'a bare CR anywhere in a head: 400',
    why: 'RFC 9112 §2.2 lets a recipient reject a bare CR; parsers that take it for a line end and parsers that do not can be played against each other (llhttp skips one before the request line)',
    explains: (difference) => weRefuse(difference, /^400 (bare CR|control character)/) && /\r(?!\n)/.test(difference.head),
  },
  {
    name: 'after a request asking to Upgrade, or a CONNECT, llhttp reads no more HTTP; we go on',
    why: 'we never switch protocols or open tunnels: Upgrade is ignored (RFC 9110 §7.8) and CONNECT gets 405, so the next bytes are still HTTP requests',
    // Whatever we then make of the next bytes (a request, or an error), llhttp has stopped.
    explains: (difference) => !isRequest(difference.theirs) && difference.theirs.kind === 'clean'
      && ((isRequest(difference.ours) && difference.ours.method === 'CONNECT') || (difference.previous !== null && asksToUpgrade(difference.previous))),
  },
  {
    name: 'an unfinished head is judged when complete; llhttp refuses at its first bad byte',
    why: 'either way no request comes of it; ours answers 400 once the head ends or outgrows 8 KiB (or the idle timeout closes it)',
    explains: (difference) => !isRequest(difference.ours) && difference.ours.kind === 'incomplete' && !isRequest(difference.theirs),
  },
  {
    name: 'any token is a method (405 later); llhttp knows only registered methods',
    why: 'RFC 9110 §9.1: method = token; handleRequest answers an unknown method with 405 and Allow: GET, HEAD',
    explains: (difference) => isRequest(difference.ours) && !http.METHODS.includes(difference.ours.method) && isError(difference.theirs),
    normalize: (head, difference) => {
      const method = (difference.ours as Framed).method;
      const at = head.indexOf(method);
      return `${head.slice(0, at)}GET${head.slice(at + method.length)}`;
    },
  },
  {
    name: 'a bare LF ends a line; llhttp insists on CRLF',
    why: 'RFC 9112 §2.2 lets a recipient take a single LF as a line end (nginx and Go do too), and `printf`/netcat users send them; smuggling with it needs a proxy that forwards a raw LF inside a field value, which RFC 9110 §5.5 forbids. A bare CR, the ambiguous one, is refused',
    explains: (difference) => isRequest(difference.ours) && isError(difference.theirs) && BARE_LF.test(difference.head),
    normalize: (head) => head.replace(new RegExp(BARE_LF, 'g'), '\r\n'),
  },
  {
    name: 'HTTP/1.x with x > 1 is answered as 1.1; llhttp refuses it',
    why: 'RFC 9110 §2.5: a later minor version is compatible by design, and the recipient answers with the highest it implements',
    explains: (difference) => isRequest(difference.ours) && isError(difference.theirs, /HPE_INVALID_VERSION/) && /^[\r\n]*[^\r\n]* HTTP\/1\.[2-9]\r?\n/.test(difference.head),
    normalize: (head) => head.replace(/ HTTP\/1\.[2-9](\r?\n)/, ' HTTP/1.1$1'),
  },
  {
    name: 'identical Content-Length values (repeated, or as a list) are accepted; llhttp refuses any repeat',
    why: 'RFC 9110 §8.6 allows a recipient to accept identical values: they frame the body the same way for everyone; different values are refused (400)',
    explains: (difference) => isRequest(difference.ours) && isError(difference.theirs, /CONTENT_LENGTH/) && difference.ours.headers.some(([name, value]) => name === 'content-length' && value.includes(',')),
    normalize: (head, difference) => {
      const value = (difference.ours as Framed).headers.find(([name]) => name === 'content-length')![1].split(',')[0]!.trim();
      let first = true;
      return head.replace(/^content-length:[^\r\n]*(\r?\n)/gim, (_line, end: string) => {
        if (!first) return '';
        first = false;
        return `Content-Length: ${value}${end}`;
      });
    },
  },
];

function explain(difference: Difference): Rule | null {
  return RULES.find((rule) => rule.explains(difference)) ?? null;
}

// A short description of one side, to group differences while exploring.
function signature(side: Framed | Ending): string {
  if (isRequest(side)) return 'request';
  return side.kind === 'error' ? `error ${side.what}` : side.kind;
}

const clip = (text: string): string => (text.length > 240 ? `${text.slice(0, 240)}…(${text.length} chars)` : text);

function describeDifference(difference: Difference): string {
  return `request #${difference.index}: ours ${clip(JSON.stringify(difference.ours))}\n  llhttp ${clip(JSON.stringify(difference.theirs))}\n  head ${clip(JSON.stringify(difference.head))}`;
}

// ---------------------------------------------------------------------------

let oracle: NodeHttpOracle;
before(async () => {
  oracle = await NodeHttpOracle.start();
});
after(async () => {
  await oracle?.stop();
});

test(`request framing agrees with llhttp (node:http) on generated streams, but for the deliberate rules`, async (t) => {
  const tally = new Map<string, { count: number; example: string }>();
  let connections = 0;
  const startedAt = Date.now();
  const count = (name: string, difference: Difference): void => {
    const entry = tally.get(name) ?? { count: 0, example: describeDifference(difference) };
    entry.count += 1;
    tally.set(name, entry);
  };
  const property = fc.asyncProperty(requestStream, async (generated: RequestStream) => {
    let text = generated.text;
    let chunks = chunksOf(Buffer.from(text, 'latin1'), generated.splits);
    // Each round explains the first difference; a leniency's rule rewrites that head, and the
    // rewritten stream is compared again from the start.
    for (let round = 0; round < 8; round++) {
      const ours = readWithOurs([Buffer.concat(chunks)]);
      // However the bytes are cut up, our reader must frame them the same way.
      assert.deepEqual(readWithOurs(chunks), ours, 'framing depends on how the stream was split');
      const theirs = framingFromNode(await oracle.judge(chunks));
      connections += 1;
      const difference = compare(text, ours, theirs);
      if (difference === null) return;
      const rule = explain(difference);
      if (rule === null) {
        count(EXPLORE ? `? ${signature(difference.ours)} / ${signature(difference.theirs)}` : 'UNEXPLAINED', difference);
        if (EXPLORE) return;
        assert.fail(`our framing differs from llhttp's, and no rule explains it:\n  ${describeDifference(difference)}`);
      }
      count(rule.name, difference);
      if (rule.normalize === undefined) return; // we refused: nothing after this is read
      const start = text.length - difference.rest.length;
      const head = rule.normalize(difference.head, difference);
      assert.notEqual(head, difference.head, `rule "${rule.name}" changed nothing`);
      text = text.slice(0, start) + head + text.slice(start + difference.head.length);
      chunks = [Buffer.from(text, 'latin1')];
    }
    assert.fail(`still differing after 8 rewrites: ${JSON.stringify(clip(text))}`);
  });
  const details = await fc.check(property, {
    seed: SEED,
    numRuns: RUNS,
    interruptAfterTimeLimit: SECONDS * 1000,
    markInterruptAsFailure: false,
  });
  const stopped = details.interrupted ? ' (stopped by PARSER_DIFF_SECONDS)' : '';
  const seconds = ((Date.now() - startedAt) / 1000).toFixed(1);
  t.diagnostic(`seed ${SEED}: ${details.numRuns} streams${stopped}, ${connections} connections to node:http, ${seconds} s, llhttp ${process.versions.llhttp}`);
  for (const [name, { count, example }] of [...tally].sort((a, b) => b[1].count - a[1].count)) {
    t.diagnostic(`${String(count).padStart(7)}  ${name}`);
    if (EXPLORE) for (const line of example.split('\n')) t.diagnostic(`           ${line}`);
  }
  if (details.failed) assert.fail(`${fc.defaultReportMessage(details)}\n${String(details.errorInstance)}`);
});
