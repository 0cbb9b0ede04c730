// Byte ranges (RFC 9110 §14): "send me bytes 1000-1999 of this file".
//
// A video player seeking, `curl -C -` resuming a download and download
// managers fetching a file in pieces all send a Range header:
//
//     Range: bytes=1000-1999     bytes 1000 to 1999 (both included)
//     Range: bytes=1000-         from byte 1000 to the end
//     Range: bytes=-500          the last 500 bytes
//
// and a server that understands it answers 206 Partial Content with exactly
// those bytes and a Content-Range header saying which they are
// ("bytes 1000-1999/24000000"), or 416 Range Not Satisfiable when the range
// starts past the end ("bytes */24000000"). This module only *decides*; it
// builds no response. handle-request.ts turns the decision into bytes: a slice
// of a cached file, or a file descriptor to stream from the right offset.
//
// Rules chosen here, each allowed by the RFC:
//  * A Range header we cannot parse is ignored (200 and the whole file), as
//    §14.2 says; so is a unit other than "bytes".
//  * Several ranges in one header ("bytes=0-99,200-299") get the whole file
//    with 200 (§14.2: a server MAY ignore Range). The alternative,
//    multipart/byteranges, needs one response body made of several file
//    pieces with boundaries between them; the clients above never ask for it,
//    and refusing it also closes the denial-of-service hole of thousands of
//    tiny overlapping ranges (§17.15). If none of them could be satisfied the
//    answer is still 416, as for one range.
//  * If-Range (§13.1.5) makes the range conditional: "only if the file is still
//    the one I have half of; otherwise send it all". It holds for our current
//    ETag (strong comparison: identical, and never a W/ tag) or for our
//    Last-Modified date, exactly, once that date is a strong validator.

import { parseHttpDate } from './http-date.ts';

/** Bytes [start, start + length) of the file: answer 206. */
export interface ByteRange {
  kind: 'part';
  start: number;
  length: number;
}

/** Ignore the Range header: 200 with the whole file. */
export interface WholeFile {
  kind: 'whole';
}

/** No byte of the range exists: answer 416. */
export interface Unsatisfiable {
  kind: 'unsatisfiable';
}

/** What to do with a request's Range header. */
export type RangeDecision = WholeFile | ByteRange | Unsatisfiable;

export const WHOLE: WholeFile = Object.freeze({ kind: 'whole' });
export const UNSATISFIABLE: Unsatisfiable = Object.freeze({ kind: 'unsatisfiable' });

/** The validators of the file as it will be sent. */
export interface RangeTarget {
  size: number;
  etag: string;
  mtimeMs: number;
}

/**
 * The decision for a GET or HEAD of a file, given its Range and If-Range field
 * values (undefined when absent). The caller has already ruled out a 304,
 * which takes precedence over ranges (RFC 9110 §13.2.2).
 */
export function decideRange(range: string | undefined, ifRange: string | undefined, file: RangeTarget, nowMs = Date.now()): RangeDecision {
  if (range === undefined) return WHOLE; // If-Range alone means nothing (§13.1.5)
  if (ifRange !== undefined && !ifRangeHolds(ifRange, file, nowMs)) return WHOLE;
  return evaluateRange(range, file.size);
}

/**
 * If-Range = entity-tag / HTTP-date (RFC 9110 §13.1.5). True when the client's
 * validator still names the current file, so its range may be sent.
 */
export function ifRangeHolds(ifRange: string, file: RangeTarget, nowMs = Date.now()): boolean {
  // An entity-tag: the strong comparison (§8.8.3.2) asks for two strong tags
  // that are identical character for character. Ours are always strong.
  if (ifRange.startsWith('"')) return ifRange === file.etag;
  if (ifRange.startsWith('W/')) return false; // a weak tag never matches strongly
  const date = parseHttpDate(ifRange);
  if (Number.isNaN(date)) return false; // neither a tag nor a date: not a match
  const modifiedSecond = Math.floor(file.mtimeMs / 1000) * 1000;
  // A date is a strong validator only if the file did not change in the
  // second it names after we handed it out (§8.8.2.2): once that second is
  // over, any further change gives a different Last-Modified. Within it, two
  // versions could share one date, so the range is not trusted.
  const nowSecond = Math.floor(nowMs / 1000) * 1000;
  return date === modifiedSecond && modifiedSecond < nowSecond;
}

/**
 * ranges-specifier = range-unit "=" range-set (RFC 9110 §14.1.1), evaluated
 * against a file of `size` bytes. Pure; exported for the unit tests.
 */
export function evaluateRange(value: string, size: number): RangeDecision {
  // The unit is case-insensitive; no whitespace is allowed around "=".
  if (value.length < 7 || value.charCodeAt(5) !== 0x3d /* = */ || value.slice(0, 5).toLowerCase() !== 'bytes') {
    return WHOLE;
  }
  let satisfiable: ByteRange | null = null; // the last one seen
  let specs = 0;
  for (const element of value.slice(6).split(',')) {
    const spec = element.replace(OWS_AROUND, '');
    if (spec === '') continue; // a list may hold empty elements: "0-1, ,"
    const range = parseRangeSpec(spec, size);
    if (range === null) return WHOLE; // one malformed spec spoils the header
    specs += 1;
    if (range.kind === 'part') satisfiable = range;
  }
  if (specs === 0) return WHOLE;
  if (satisfiable === null) return UNSATISFIABLE;
  if (specs > 1) return WHOLE; // several ranges: see the note at the top
  // A suffix of an empty file is "all of it", zero bytes, which no
  // Content-Range can express ("bytes 0--1/0"): the 200 says the same.
  return satisfiable.length === 0 ? WHOLE : satisfiable;
}

// Optional whitespace is SP / HTAB only (§5.6.3); String#trim would also take
// 0xA0, which in a latin1-decoded header is an obs-text byte.
const OWS_AROUND = /^[ \t]+|[ \t]+$/g;

// int-range = first-pos "-" [ last-pos ]; suffix-range = "-" suffix-length.
// DIGIT in the grammar is 0-9 only, which is what \d means without the u flag.
const INT_RANGE = /^(\d+)-(\d*)$/;
const SUFFIX_RANGE = /^-(\d+)$/;

// One range-spec: the bytes it selects, UNSATISFIABLE, or null if malformed.
// Numbers too long for a double stay huge (or Infinity), which still compares
// correctly with any real file size.
function parseRangeSpec(spec: string, size: number): ByteRange | Unsatisfiable | null {
  const intRange = INT_RANGE.exec(spec);
  if (intRange !== null) {
    const first = Number(intRange[1]);
    const last = intRange[2] === '' ? Infinity : Number(intRange[2]);
    if (last < first) return null; // "5-3" is invalid, not empty (§14.1.1)
    if (first >= size) return UNSATISFIABLE; // starts past the end
    return { kind: 'part', start: first, length: Math.min(last, size - 1) - first + 1 };
  }
  const suffix = SUFFIX_RANGE.exec(spec);
  if (suffix !== null) {
    const wanted = Number(suffix[1]);
    if (wanted === 0) return UNSATISFIABLE; // "the last 0 bytes" selects nothing
    const start = Math.max(0, size - wanted); // asking for more than there is gets all of it
    return { kind: 'part', start, length: size - start };
  }
  return null;
}

/** Content-Range of a 206: "bytes 1000-1999/24000000" (last byte included). */
export function contentRange(range: ByteRange, size: number): string {
  return `bytes ${range.start}-${range.start + range.length - 1}/${size}`;
}

// Content-Range of a 416: "bytes */24000000", the current size (§14.4).
export function unsatisfiedContentRange(size: number): string {
  return `bytes */${size}`;
}
