// Deciding byte ranges (shared/byte-ranges.ts): which bytes a Range header
// asks for, and whether If-Range lets it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  UNSATISFIABLE,
  WHOLE,
  contentRange,
  decideRange,
  evaluateRange,
  ifRangeHolds,
  unsatisfiedContentRange,
} from '../shared/byte-ranges.ts';
import { formatHttpDate } from '../shared/http-date.ts';

const part = (start: number, length: number) => ({ kind: 'part', start, length });

test('the three forms of one range: a-b, a- and -n', () => {
  assert.deepEqual(evaluateRange('bytes=0-0', 100), part(0, 1));
  assert.deepEqual(evaluateRange('bytes=10-19', 100), part(10, 10));
  assert.deepEqual(evaluateRange('bytes=90-', 100), part(90, 10));
  assert.deepEqual(evaluateRange('bytes=0-', 100), part(0, 100));
  assert.deepEqual(evaluateRange('bytes=-10', 100), part(90, 10));
  assert.deepEqual(evaluateRange('bytes=-1', 100), part(99, 1));
});

test('a range reaching past the end is cut at the end; a suffix longer than the file is all of it', () => {
  assert.deepEqual(evaluateRange('bytes=90-1000', 100), part(90, 10));
  assert.deepEqual(evaluateRange('bytes=99-99999999999999999999999999', 100), part(99, 1));
  assert.deepEqual(evaluateRange('bytes=-1000', 100), part(0, 100));
  assert.deepEqual(evaluateRange('bytes=-99999999999999999999999999', 100), part(0, 100));
});

test('a range starting at or past the end, or the last 0 bytes, is unsatisfiable', () => {
  for (const value of ['bytes=100-', 'bytes=100-200', 'bytes=1000-1000', 'bytes=-0', 'bytes=99999999999999999999-']) {
    assert.equal(evaluateRange(value, 100), UNSATISFIABLE, value);
  }
  assert.equal(evaluateRange('bytes=0-', 0), UNSATISFIABLE, 'no byte 0 in an empty file');
});

test('a suffix of an empty file is the whole (empty) file, answered with 200', () => {
  assert.equal(evaluateRange('bytes=-5', 0), WHOLE);
});

test('the unit is case-insensitive; whitespace around a spec and empty list elements are allowed', () => {
  assert.deepEqual(evaluateRange('BYTES=1-2', 100), part(1, 2));
  assert.deepEqual(evaluateRange('Bytes=1-2', 100), part(1, 2));
  assert.deepEqual(evaluateRange('bytes= 1-2 ', 100), part(1, 2));
  assert.deepEqual(evaluateRange('bytes=\t1-2', 100), part(1, 2));
  assert.deepEqual(evaluateRange('bytes=1-2, ,', 100), part(1, 2));
  assert.deepEqual(evaluateRange('bytes=,1-2', 100), part(1, 2));
});

test('malformed Range headers are ignored: the whole file', () => {
  const malformed = [
    '', 'bytes', 'bytes=', 'bytes= ', 'bytes=,', 'bytes=-', 'bytes=a-b', 'bytes=1-a', 'bytes=5-3', 'bytes=1--2',
    'bytes=--1', 'bytes=1-2-3', 'bytes =1-2', 'bytes= =1-2', 'bytes=1 -2', 'bytes=+1-2', 'bytes=0x10-20',
    'bytes=1.5-2', 'bytes=１-2', 'items=1-2', 'byte=1-2', 'bytesx=1-2', '1-2', 'bytes=1-2\xa0', 'bytes=1-2,bytes=3-4',
    'bytes=0-1,5-3', 'bytes=0-1,x',
  ];
  for (const value of malformed) assert.equal(evaluateRange(value, 100), WHOLE, JSON.stringify(value));
});

test('several ranges get the whole file, unless none of them can be satisfied', () => {
  assert.equal(evaluateRange('bytes=0-1,5-6', 100), WHOLE);
  assert.equal(evaluateRange('bytes=0-1,200-300', 100), WHOLE);
  assert.equal(evaluateRange('bytes=-1,0-0', 100), WHOLE);
  assert.equal(evaluateRange('bytes=200-300,400-', 100), UNSATISFIABLE);
  assert.equal(evaluateRange('bytes=-0,100-', 100), UNSATISFIABLE);
});

test('Content-Range values for 206 and 416', () => {
  assert.equal(contentRange({ kind: 'part', start: 0, length: 1 }, 100), 'bytes 0-0/100');
  assert.equal(contentRange({ kind: 'part', start: 90, length: 10 }, 100), 'bytes 90-99/100');
  assert.equal(unsatisfiedContentRange(100), 'bytes */100');
});

// A file last changed at 12:00:00.250, asked about a minute later.
const mtimeMs = Date.UTC(2030, 0, 1, 12, 0, 0, 250);
const file = { size: 100, etag: '"64-abc"', mtimeMs };
const lastModified = formatHttpDate(mtimeMs);
const aMinuteLater = mtimeMs + 60_000;

test('If-Range with an entity-tag: the strong comparison', () => {
  assert.equal(ifRangeHolds('"64-abc"', file, aMinuteLater), true);
  assert.equal(ifRangeHolds('W/"64-abc"', file, aMinuteLater), false, 'a weak tag never matches strongly');
  assert.equal(ifRangeHolds('"64-abd"', file, aMinuteLater), false);
  assert.equal(ifRangeHolds('"64-abc", "x"', file, aMinuteLater), false, 'If-Range holds one tag, not a list');
  assert.equal(ifRangeHolds('64-abc', file, aMinuteLater), false);
});

test('If-Range with a date: only exactly our Last-Modified, and only once it is a strong validator', () => {
  assert.equal(ifRangeHolds(lastModified, file, aMinuteLater), true);
  assert.equal(ifRangeHolds(formatHttpDate(mtimeMs + 1000), file, aMinuteLater), false, 'a later date is no match');
  assert.equal(ifRangeHolds(formatHttpDate(mtimeMs - 1000), file, aMinuteLater), false);
  assert.equal(ifRangeHolds('Tuesday, 01-Jan-30 12:00:00 GMT', file, aMinuteLater), true, 'obsolete date formats are read too');
  assert.equal(ifRangeHolds('yesterday', file, aMinuteLater), false);
  // Still in the second the file changed in: it may change again within it.
  assert.equal(ifRangeHolds(lastModified, file, mtimeMs + 500), false);
  assert.equal(ifRangeHolds(lastModified, file, mtimeMs + 750), true);
});

test('decideRange: no Range means the whole file; If-Range decides whether the Range counts', () => {
  assert.equal(decideRange(undefined, undefined, file, aMinuteLater), WHOLE);
  assert.equal(decideRange(undefined, '"64-abc"', file, aMinuteLater), WHOLE);
  assert.deepEqual(decideRange('bytes=0-9', undefined, file, aMinuteLater), part(0, 10));
  assert.deepEqual(decideRange('bytes=0-9', '"64-abc"', file, aMinuteLater), part(0, 10));
  assert.equal(decideRange('bytes=0-9', '"old"', file, aMinuteLater), WHOLE);
  // A failed If-Range means "send it all", even where the range could not be served.
  assert.equal(decideRange('bytes=500-', '"old"', file, aMinuteLater), WHOLE);
  assert.equal(decideRange('bytes=500-', '"64-abc"', file, aMinuteLater), UNSATISFIABLE);
});
