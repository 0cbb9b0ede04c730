// Fixture helpers for the unit tests of shared/: a throw-away site tree on
// disk, request builders, and a small parser for the responses we produce.
// (Helpers that start real server processes live in other files here.)

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RequestReader } from '../../shared/request-reader.ts';
import type { HttpRequest, ParsedRequest } from '../../shared/request-reader.ts';

/** Bytes above the default 256 KiB cache limit: a file that must be streamed. */
export const BIG_FILE_SIZE = 256 * 1024 + 300 * 1024;

export const INDEX_HTML = '<!doctype html><title>home</title><h1>home</h1>\n';
export const DOCS_INDEX_HTML = '<h1>docs</h1>\n';
export const SPACE_FILE_TEXT = 'a file with a space in its name\n';
export const CHINESE_FILE_TEXT = '<p>中文页面</p>\n';
export const SECRET_TEXT = 'TOP SECRET: outside the root\n';

export interface SiteFixture {
  /** Temp directory holding the root and its neighbours. */
  parent: string;
  /** The directory to serve (as created; it is already a real path). */
  root: string;
  /** Content of root/big.bin, BIG_FILE_SIZE bytes of a recognisable pattern. */
  bigFile: Buffer;
  /** Absolute path of a file inside the root. */
  file(relative: string): string;
  remove(): void;
}

/**
 * Build a site tree in a fresh temp directory:
 *
 *   parent/
 *     www/                          <- root
 *       index.html  style.css  image.png  noext  big.bin
 *       a b.html                    (space in the name)
 *       中文.html                    (UTF-8 name)
 *       docs/index.html  docs/.secret
 *       empty-dir/                  (no index.html)
 *       index-is-dir/index.html/    (index.html is a directory)
 *       .env  .hidden/secret.txt    (hidden: never served)
 *       link-inside.html  -> index.html
 *       link-docs         -> docs
 *       link-outside.txt  -> ../outside/secret.txt
 *       link-outside-dir  -> ../outside
 *       link-sibling.txt  -> ../www-secret/secret.txt   (a prefix of the root's name)
 *       fifo                        (named pipe, when mkfifo is available)
 *     outside/secret.txt
 *     www-secret/secret.txt
 */
export function createSiteFixture(): SiteFixture {
  const parent = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'site-fixture-')));
  const root = path.join(parent, 'www');
  const write = (relative: string, content: string | Buffer): void => {
    const target = path.join(parent, relative);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, content);
  };

  write('www/index.html', INDEX_HTML);
  write('www/style.css', 'body { color: black }\n');
  write('www/image.png', Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  write('www/noext', 'no extension\n');
  write('www/a b.html', SPACE_FILE_TEXT);
  write('www/中文.html', CHINESE_FILE_TEXT);
  write('www/docs/index.html', DOCS_INDEX_HTML);
  write('www/docs/.secret', SECRET_TEXT);
  write('www/index-is-dir/index.html/placeholder.txt', 'x');
  write('www/.env', SECRET_TEXT);
  write('www/.hidden/secret.txt', SECRET_TEXT);
  write('outside/secret.txt', SECRET_TEXT);
  write('www-secret/secret.txt', SECRET_TEXT);
  fs.mkdirSync(path.join(root, 'empty-dir'));

  const bigFile = patternBytes(BIG_FILE_SIZE);
  write('www/big.bin', bigFile);

  fs.symlinkSync('index.html', path.join(root, 'link-inside.html'));
  fs.symlinkSync('docs', path.join(root, 'link-docs'));
  fs.symlinkSync('../outside/secret.txt', path.join(root, 'link-outside.txt'));
  fs.symlinkSync('../outside', path.join(root, 'link-outside-dir'));
  fs.symlinkSync('../www-secret/secret.txt', path.join(root, 'link-sibling.txt'));

  return {
    parent,
    root,
    bigFile,
    file: (relative) => path.join(root, relative),
    remove: () => fs.rmSync(parent, { recursive: true, force: true }),
  };
}

/** Bytes whose every 4-byte word encodes its own offset: misplaced pieces show. */
export function patternBytes(size: number): Buffer {
  const bytes = Buffer.alloc(size);
  for (let offset = 0; offset + 4 <= size; offset += 4) bytes.writeUInt32BE(offset, offset);
  return bytes;
}

/** A temp file with the given content; returns its path. */
export function writeTempFile(content: Buffer | string): string {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'temp-file-'));
  const file = path.join(directory, 'content.bin');
  fs.writeFileSync(file, content);
  return file;
}

// ---------------------------------------------------------------------------
// Requests

/**
 * Request text with CRLF line ends: the request line, then header lines, then
 * the empty line. `get('/x', 'Connection: close')`.
 */
export function requestText(requestLine: string, ...headerLines: string[]): string {
  return [requestLine, ...headerLines, '', ''].join('\r\n');
}

/** A GET (or other method) with a Host header, as an HTTP/1.1 client sends it. */
export function get(target: string, ...headerLines: string[]): string {
  return requestText(`GET ${target} HTTP/1.1`, 'Host: test.local', ...headerLines);
}

/** Everything a fresh reader returns for the given bytes, in order. */
export function parseAll(...chunks: (string | Buffer)[]): ParsedRequest[] {
  const reader = new RequestReader();
  const results: ParsedRequest[] = [];
  for (const chunk of chunks) {
    reader.push(typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk);
    for (let parsed = reader.next(); parsed !== null; parsed = reader.next()) results.push(parsed);
  }
  return results;
}

/** The single result of parsing `text` with a fresh reader (fails if not exactly one). */
export function parseOne(text: string | Buffer): ParsedRequest {
  const results = parseAll(text);
  if (results.length !== 1) throw new Error(`expected one result, got ${results.length}`);
  return results[0]!;
}

/** Like parseOne, but it must be a request (not an error). */
export function parseRequest(text: string | Buffer): HttpRequest {
  const parsed = parseOne(text);
  if (parsed.kind !== 'request') throw new Error(`expected a request, got ${parsed.status} ${parsed.reason}`);
  return parsed;
}

// ---------------------------------------------------------------------------
// Responses

export interface ResponseParts {
  statusLine: string;
  /** Header names as sent (case kept), in order. */
  headerNames: string[];
  /** Lower-cased name → value. */
  headers: Map<string, string>;
  body: Buffer;
}

/** Split response bytes into status line, headers and body. */
export function splitResponse(bytes: Buffer): ResponseParts {
  const headEnd = bytes.indexOf('\r\n\r\n');
  if (headEnd === -1) throw new Error('response has no end of head');
  const lines = bytes.toString('latin1', 0, headEnd).split('\r\n');
  const headers = new Map<string, string>();
  const headerNames: string[] = [];
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(': ');
    const name = line.slice(0, colon);
    headerNames.push(name);
    if (headers.has(name.toLowerCase())) throw new Error(`header ${name} sent twice`);
    headers.set(name.toLowerCase(), line.slice(colon + 2));
  }
  return { statusLine: lines[0]!, headerNames, headers, body: bytes.subarray(headEnd + 4) };
}
