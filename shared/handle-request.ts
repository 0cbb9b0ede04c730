// From a parsed request to the bytes of its response.
//
// This is the one function every server model calls; the six models differ
// only in *how* bytes are accepted, read and written, never in *what* is
// answered. It does no network I/O: the response comes back as a Buffer to
// send (plus, for a large file, an open file descriptor to stream after it),
// and the model's Outbox takes care of partial writes.
//
// Byte ranges (Range: bytes=...) are decided in byte-ranges.ts and answered
// here with 206 or 416: a part of a cached file is sliced from memory, a part
// of a large file is streamed from its offset like a whole one.
//
// Fast path: for a small cached file, the complete response (head and body in
// one Buffer) is built once per variant and reused for every request until
// the Date header's second changes or the file changes. Serving it then costs
// a Map lookup and a few comparisons: no string building, no copying.

import fs from 'node:fs';
import { contentRange, decideRange, unsatisfiedContentRange } from './byte-ranges.ts';
import type { ByteRange, Unsatisfiable } from './byte-ranges.ts';
import { currentHttpDate, parseHttpDate } from './http-date.ts';
import { originFormOf } from './request-reader.ts';
import type { HttpRequest, ParsedRequest } from './request-reader.ts';
import type { SiteFile, StaticSite } from './static-site.ts';

/** An open file descriptor to stream; owned by whoever sends it (the Outbox closes it). */
export interface FileBody {
  fd: number;
  offset: number;
  length: number;
}

/**
 * Treat a response as read-only: for a cached file the same frozen object
 * (and Buffer) is handed to every connection that asks within one second.
 */
export interface HttpResponse {
  status: number;
  /** What to send from memory: the head, plus the body when it is small/cached. */
  bytes: Buffer;
  /** A large body still to send after `bytes`, straight from the file; never of length 0. */
  file: FileBody | null;
  /** After sending this response, close the connection. */
  close: boolean;
  /** For status >= 400: a short reason for the log line. */
  reason?: string;
}

export const SERVER_NAME = 'concurrent-webserver-ts';

const STATUS_TEXT: Record<number, string> = {
  200: 'OK',
  206: 'Partial Content',
  301: 'Moved Permanently',
  304: 'Not Modified',
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  411: 'Length Required',
  413: 'Content Too Large', // RFC 9110 §15.5.14 (was "Payload Too Large")
  414: 'URI Too Long',
  416: 'Range Not Satisfiable',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  503: 'Service Unavailable',
  505: 'HTTP Version Not Supported',
};

export function statusText(status: number): string {
  return STATUS_TEXT[status] ?? 'Unknown';
}

const TEXT_PLAIN = 'text/plain; charset=utf-8';

/**
 * Answer one parsed request (or framing error). Never throws for client input.
 * `now` is the site clock's time; a model that has just read the clock for its
 * own use (once per pass of its loop) passes it, rather than have it read again
 * for every request.
 */
export function handleRequest(parsed: ParsedRequest, site: StaticSite, now: number = site.now()): HttpResponse {
  if (parsed.kind === 'error') {
    // After a framing error we no longer know where the next request would
    // start, so the connection always closes.
    return errorResponse(parsed.status, parsed.reason, { close: true, withBody: true, detailInBody: true });
  }

  const close = !parsed.keepAlive;
  const isHead = parsed.method === 'HEAD';
  if (!isHead && parsed.method !== 'GET') {
    // RFC 9110 §15.5.6: a 405 must list the methods we do allow.
    return errorResponse(405, `method ${parsed.method} not allowed`, {
      close,
      withBody: true,
      detailInBody: true,
      extraFields: 'Allow: GET, HEAD\r\n',
    });
  }

  // The query and a (stray) fragment do not select a file; only the path does.
  const target = originFormOf(parsed.target);
  const pathEnd = endOfPath(target);
  const urlPath = pathEnd === target.length ? target : target.slice(0, pathEnd);

  // One clock reading serves the cache check and the Date header: reading the
  // clock costs about as much as the rest of a cached answer's bookkeeping.
  const found = site.lookup(urlPath, now);
  switch (found.kind) {
    case 'file':
      return fileResponse(found, parsed, isHead, close, site, now);
    case 'redirect':
      return redirectResponse(found.location + queryOf(target, pathEnd), isHead, close);
    case 'refused':
      return errorResponse(found.status, found.reason, { close, withBody: !isHead });
  }
}

// Where the path ends: at the first "?" or "#", else at the end.
function endOfPath(target: string): number {
  for (let index = 0; index < target.length; index++) {
    const code = target.charCodeAt(index);
    if (code === 0x3f /* ? */ || code === 0x23 /* # */) return index;
  }
  return target.length;
}

// "?x=1" from "/dir?x=1#top" (the fragment never travels in a Location here).
function queryOf(target: string, pathEnd: number): string {
  if (target.charCodeAt(pathEnd) !== 0x3f /* ? */) return '';
  const fragment = target.indexOf('#', pathEnd);
  return fragment === -1 ? target.slice(pathEnd) : target.slice(pathEnd, fragment);
}

// ---------------------------------------------------------------------------
// Response heads

// Header order is fixed; fields every response carries come first. The
// "nosniff" header stops browsers from second-guessing our Content-Type
// (which could turn an uploaded .txt into executable HTML).
function responseHead(status: number, contentType: string, contentLength: number, close: boolean, extraFields: string, date = currentHttpDate()): string {
  return `HTTP/1.1 ${status} ${statusText(status)}\r\n`
    + `Server: ${SERVER_NAME}\r\n`
    + `Date: ${date}\r\n`
    + `Content-Type: ${contentType}\r\n`
    + `Content-Length: ${contentLength}\r\n`
    + extraFields
    + 'X-Content-Type-Options: nosniff\r\n'
    + `Connection: ${close ? 'close' : 'keep-alive'}\r\n`
    + '\r\n';
}

// Fields of every file response (200, 206, 304): the validators, and the
// news that ranges of it may be asked for (RFC 9110 §14.3).
function fileFields(lastModified: string, etag: string): string {
  return `Accept-Ranges: bytes\r\nLast-Modified: ${lastModified}\r\nETag: ${etag}\r\n`;
}

interface ErrorOptions {
  close: boolean;
  /** false for HEAD: same head, no body bytes. */
  withBody: boolean;
  /** Tell the client the reason (framing errors); else it is for the log only. */
  detailInBody?: boolean;
  extraFields?: string;
}

// Errors are small text/plain answers, e.g. "404 Not Found\n". The reason
// goes into the body only when it describes the client's own request; for
// refused paths it could reveal how the file system looks.
function errorResponse(status: number, reason: string, options: ErrorOptions): HttpResponse {
  const summary = `${status} ${statusText(status)}`;
  const body = Buffer.from(options.detailInBody ? `${summary}: ${reason}\n` : `${summary}\n`, 'utf8');
  const head = responseHead(status, TEXT_PLAIN, body.length, options.close, options.extraFields ?? '');
  return {
    status,
    bytes: options.withBody ? concatHeadAndBody(head, body) : Buffer.from(head, 'latin1'),
    file: null,
    close: options.close,
    reason,
  };
}

/**
 * 503 (RFC 9110 §15.6.4) for a connection the server cannot take on right now (no process or
 * thread could be started for it, or select() cannot watch its descriptor). It is not an
 * answer to any request, so the model sends it as soon as it accepts, then closes.
 * Retry-After tells a client it may simply try again.
 */
export function serviceUnavailable(reason: string): HttpResponse {
  return errorResponse(503, reason, { close: true, withBody: true, detailInBody: true, extraFields: 'Retry-After: 1\r\n' });
}

// 301 (RFC 9110 §15.4.2) with the directory's URL; the query goes along.
function redirectResponse(location: string, isHead: boolean, close: boolean): HttpResponse {
  const body = Buffer.from('301 Moved Permanently\n', 'latin1');
  const head = responseHead(301, TEXT_PLAIN, body.length, close, `Location: ${location}\r\n`);
  return {
    status: 301,
    bytes: isHead ? Buffer.from(head, 'latin1') : concatHeadAndBody(head, body),
    file: null,
    close,
  };
}

function concatHeadAndBody(head: string, body: Buffer): Buffer {
  const headLength = Buffer.byteLength(head, 'latin1');
  const bytes = Buffer.allocUnsafe(headLength + body.length);
  bytes.write(head, 0, 'latin1');
  body.copy(bytes, headLength);
  return bytes;
}

// ---------------------------------------------------------------------------
// Files

// The variants of a cached file's response. Index = kind + (close ? 1 : 0).
const FULL = 0; //         200 with body (GET)
const HEAD_ONLY = 2; //    200 without body (HEAD)
const NOT_MODIFIED = 4; // 304 (GET or HEAD: never a body)
const VARIANT_COUNT = 6;

/**
 * Ready-made responses for one cached file, valid for one Date value. Stored
 * on the SiteFile entry, so a changed file drops them along with its entry.
 * The HttpResponse objects are frozen: they are shared by every connection.
 */
export class PreparedResponses {
  date = '';
  readonly variants: (HttpResponse | undefined)[] = new Array<HttpResponse | undefined>(VARIANT_COUNT);
}

function fileResponse(file: SiteFile, request: HttpRequest, isHead: boolean, close: boolean, site: StaticSite, now: number): HttpResponse {
  const notModified = isNotModified(request.headers, file.etag, file.mtimeMs);
  // A Range only shapes what would otherwise be a 200: a 304 takes precedence
  // (RFC 9110 §13.2.2). A request without one (nearly every request) pays this
  // one Map lookup and then goes the way it always went.
  const range = notModified ? undefined : request.headers.get('range');
  const kind = notModified ? NOT_MODIFIED : isHead ? HEAD_ONLY : FULL;
  if (file.body !== null) {
    if (range !== undefined) {
      // Cached: the part is sliced from memory (HEAD: just its head, §9.3.2).
      const decision = decideRange(range, request.headers.get('if-range'), file, now);
      if (decision.kind !== 'whole') return rangeResponse(decision, range, file, file.contentType, file.body, isHead, close, now);
    }
    return preparedResponse(file, file.body, kind + (close ? 1 : 0), close, now);
  }

  // Not cached (large, or the cache is full): the metadata from lookup()
  // decides 304 and HEAD, and nothing is opened for them.
  if (kind !== FULL) {
    if (range !== undefined) {
      const decision = decideRange(range, request.headers.get('if-range'), file, now);
      if (decision.kind !== 'whole') return rangeResponse(decision, range, file, file.contentType, null, isHead, close, now);
    }
    const status = notModified ? 304 : 200;
    const fields = fileFields(file.lastModified, file.etag);
    return { status, bytes: Buffer.from(responseHead(status, file.contentType, file.size, close, fields, currentHttpDate(now)), 'latin1'), file: null, close };
  }

  const opened = site.openFile(file);
  if ('kind' in opened) return errorResponse(opened.status, opened.reason, { close, withBody: true });
  if (range !== undefined) {
    // Decided on what was really opened (fstat), so the part and its
    // Content-Range match the bytes the Outbox will read from `offset`.
    const decision = decideRange(range, request.headers.get('if-range'), opened, now);
    if (decision.kind === 'part') {
      const head = rangeResponse(decision, range, opened, file.contentType, null, false, close, now);
      return { ...head, file: { fd: opened.fd, offset: decision.start, length: decision.length } };
    }
    if (decision.kind === 'unsatisfiable') {
      closeQuietly(opened.fd);
      return rangeResponse(decision, range, opened, file.contentType, null, false, close, now);
    }
  }
  const head = Buffer.from(
    responseHead(200, file.contentType, opened.size, close, fileFields(opened.lastModified, opened.etag), currentHttpDate(now)),
    'latin1',
  );
  if (opened.size === 0) {
    // Nothing to stream; spare the Outbox a zero-length file.
    closeQuietly(opened.fd);
    return { status: 200, bytes: head, file: null, close };
  }
  return { status: 200, bytes: head, file: { fd: opened.fd, offset: 0, length: opened.size }, close };
}

/** What a 206 or 416 needs to know about the file. */
interface RangedFile {
  size: number;
  etag: string;
  lastModified: string;
}

// 206 Partial Content (RFC 9110 §15.3.7) with Content-Range and the same
// validators a 200 carries; its body is the part sliced from `cachedBody`, or
// nothing (HEAD, or a large file whose part the caller streams). Or 416 Range
// Not Satisfiable (§15.5.17), whose Content-Range names the current size so a
// client can ask again; it has a short text body unless this is a HEAD.
function rangeResponse(
  decision: ByteRange | Unsatisfiable,
  range: string,
  file: RangedFile,
  contentType: string,
  cachedBody: Buffer | null,
  isHead: boolean,
  close: boolean,
  now: number,
): HttpResponse {
  if (decision.kind !== 'part') {
    return errorResponse(416, `range not satisfiable: ${range.slice(0, 100)}`, {
      close,
      withBody: !isHead,
      extraFields: `Content-Range: ${unsatisfiedContentRange(file.size)}\r\n`,
    });
  }
  const fields = `Content-Range: ${contentRange(decision, file.size)}\r\n${fileFields(file.lastModified, file.etag)}`;
  const head = responseHead(206, contentType, decision.length, close, fields, currentHttpDate(now));
  const bytes = cachedBody === null || isHead
    ? Buffer.from(head, 'latin1')
    : concatHeadAndBody(head, cachedBody.subarray(decision.start, decision.start + decision.length));
  return { status: 206, bytes, file: null, close };
}

function preparedResponse(file: SiteFile, body: Buffer, variant: number, close: boolean, now: number): HttpResponse {
  const date = currentHttpDate(now);
  const prepared = file.prepared ?? (file.prepared = new PreparedResponses());
  if (prepared.date !== date) {
    // A new second: every prepared head carries the old Date. Buffers already
    // handed out are never modified (an Outbox may still be sending one).
    prepared.date = date;
    prepared.variants.fill(undefined);
  }
  const ready = prepared.variants[variant];
  if (ready !== undefined) return ready;

  const kind = variant - (close ? 1 : 0);
  const status = kind === NOT_MODIFIED ? 304 : 200;
  // 304 and HEAD carry the same Content-Length a 200 would (RFC 9110 §8.6, §9.3.2).
  const head = responseHead(status, file.contentType, body.length, close, fileFields(file.lastModified, file.etag), date);
  const response: HttpResponse = Object.freeze({
    status,
    bytes: kind === FULL ? concatHeadAndBody(head, body) : Buffer.from(head, 'latin1'),
    file: null,
    close,
  });
  prepared.variants[variant] = response;
  return response;
}

// ---------------------------------------------------------------------------
// Conditional requests (RFC 9110 §13)

/**
 * Whether the client's cached copy is current, so 304 answers.
 * If-None-Match wins; If-Modified-Since counts only without it (§13.2.2).
 */
export function isNotModified(headers: Map<string, string>, etag: string, mtimeMs: number): boolean {
  const ifNoneMatch = headers.get('if-none-match');
  if (ifNoneMatch !== undefined) return ifNoneMatchMatches(ifNoneMatch, etag);
  const ifModifiedSince = headers.get('if-modified-since');
  if (ifModifiedSince === undefined) return false;
  const since = parseHttpDate(ifModifiedSince);
  if (Number.isNaN(since)) return false; // §13.1.3: ignore an invalid date
  // Last-Modified has whole seconds; compare at that resolution, or a file
  // changed at .500 would never count as unmodified.
  return Math.floor(mtimeMs / 1000) * 1000 <= since;
}

/**
 * If-None-Match = "*" / #entity-tag (RFC 9110 §13.1.2). It uses the weak
 * comparison: W/"x" matches "x". A malformed list matches nothing.
 */
export function ifNoneMatchMatches(list: string, etag: string): boolean {
  if (list === etag) return true; // the usual case: a browser echoing our ETag
  if (list.trim() === '*') return true; // "any current representation"
  const wanted = opaqueTag(etag);
  let position = 0;
  while (position < list.length) {
    const character = list[position];
    if (character === ' ' || character === '\t' || character === ',') {
      position += 1;
      continue;
    }
    if (list.startsWith('W/', position)) position += 2;
    if (list[position] !== '"') return false;
    // A tag may contain commas, so find the closing quote rather than splitting.
    const closingQuote = list.indexOf('"', position + 1);
    if (closingQuote === -1) return false;
    if (list.slice(position, closingQuote + 1) === wanted) return true;
    position = closingQuote + 1;
  }
  return false;
}

function opaqueTag(etag: string): string {
  return etag.startsWith('W/') ? etag.slice(2) : etag;
}

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // Nothing useful to do: the descriptor is gone either way.
  }
}
