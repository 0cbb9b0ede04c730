// The directory tree we serve: mapping URL paths to files safely, and keeping
// small files in memory.
//
// Safety rules (a file server's whole job is to not serve the wrong file):
//  * Nothing outside the root, ever. The URL path is decoded, then checked
//    segment by segment *before* it touches the file system: no "..", no
//    encoded "/" or "\", no backslash, no NUL. The final path is then resolved
//    with realpath(3) and must still lie inside the (real) root, which catches
//    symlinks that point out of the tree.
//  * No hidden files: any segment starting with "." (".git", ".env",
//    ".htpasswd") is refused. Dot-files are almost always configuration or
//    secrets that ended up in the web root by accident. (The rule is about
//    the URL: a symlink inside the tree is trusted to lead where its owner
//    meant, as long as that is inside the root.)
//  * All refusals of this kind answer 404, never 403: a 403 would confirm that
//    something interesting exists at that path. (403 is kept for files that
//    exist inside the tree but that we are not permitted to read.)
//  * Only regular files are served. Opening a FIFO or a device could block the
//    whole server or read something endless.
//
// Caching: files up to `cacheFileLimit` bytes are kept in memory, up to
// `cacheTotalLimit` bytes in all. A cached entry is trusted for
// `revalidateAfterMs`; after that the next request re-resolves the path
// (realpath + one stat) and keeps the entry if the file is unchanged (same
// inode, size and mtime). So an unchanged popular file costs no system call at
// all on most requests, and an edited file is picked up within a second.
// Larger files are never read whole: handle-request.ts opens them per request
// (openFile) and the connection's Outbox streams them.

import fs from 'node:fs';
import path from 'node:path';
import mime from 'mime-types';
import { formatHttpDate } from './http-date.ts';
import type { PreparedResponses } from './handle-request.ts';

export interface StaticSiteOptions {
  /** How long a cached lookup is trusted before the file is checked again (ms). */
  revalidateAfterMs?: number;
  /** Files up to this size (bytes) are kept in memory. */
  cacheFileLimit?: number;
  /** Total bytes of file content kept in memory; beyond it, nothing more is cached. */
  cacheTotalLimit?: number;
  /** Clock for revalidation (tests inject a fake one). */
  now?: () => number;
}

export const DEFAULT_REVALIDATE_AFTER_MS = 1000;
export const DEFAULT_CACHE_FILE_LIMIT = 256 * 1024;
export const DEFAULT_CACHE_TOTAL_LIMIT = 32 * 1024 * 1024;

// Bounds the number of remembered URL paths. Many spellings reach one file
// ("/a.html", "/%61.html", "//a.html"), and each is a separate entry, so
// without a bound a client could grow the map forever.
const MAX_CACHED_PATHS = 10_000;

// How files are opened. Between lookup() and open() the path could be swapped
// for something else: O_NOFOLLOW refuses a symlink put in place of the file
// (ELOOP, so 404), and O_NONBLOCK keeps open() of a FIFO from waiting forever
// for a writer (for regular files it changes nothing). fstat then tells us
// what was really opened.
const OPEN_FOR_READING = fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOFOLLOW;

/** A regular file inside the root, as found by lookup(). */
export class SiteFile {
  readonly kind = 'file';
  /** When this entry was last checked against the file system (site clock). */
  checkedAt: number;
  /**
   * Complete responses built from this entry by handle-request.ts. They live
   * here so that they vanish together with the entry when the file changes.
   */
  prepared: PreparedResponses | null = null;
  /** Strong validator (RFC 9110 §8.8.3), e.g. "1f4-18c2a4b3e10". */
  readonly etag: string;
  /** IMF-fixdate of the modification time (RFC 9110 §8.8.2). */
  readonly lastModified: string;

  constructor(
    /** Absolute real path (no symlinks), inside the site's root. */
    readonly realPath: string,
    readonly size: number,
    readonly mtimeMs: number,
    readonly ino: number,
    readonly contentType: string,
    /** The whole file, when cached; null when it must be read per request. */
    readonly body: Buffer | null,
    checkedAt: number,
  ) {
    this.checkedAt = checkedAt;
    this.etag = etagFor(size, mtimeMs);
    this.lastModified = formatHttpDate(mtimeMs);
  }
}

/** A directory asked for without its trailing slash. */
export interface SiteRedirect {
  kind: 'redirect';
  /** Path to send in Location (still percent-encoded, without the query). */
  location: string;
}

/** The path cannot be served. */
export interface SiteRefusal {
  kind: 'refused';
  status: number;
  /** For the log line only: it may say more than we want to tell the client. */
  reason: string;
}

export type SiteLookup = SiteFile | SiteRedirect | SiteRefusal;

/** A file opened for sending: the metadata comes from fstat of this very fd. */
export interface OpenedFile {
  fd: number;
  size: number;
  mtimeMs: number;
  etag: string;
  lastModified: string;
}

/**
 * ETag from size and modification time. Both change whenever the content is
 * rewritten in the usual ways, and computing it costs no read of the file.
 */
export function etagFor(size: number, mtimeMs: number): string {
  return `"${size.toString(16)}-${Math.trunc(mtimeMs).toString(16)}"`;
}

/** HTTP status for a failed file-system call on a path inside the root. */
export function statusForFsError(error: unknown): number {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  switch (code) {
    case 'ENOENT':
    case 'ENOTDIR':
    case 'ELOOP':
    case 'ENAMETOOLONG':
      return 404;
    case 'EACCES':
    case 'EPERM':
      return 403;
    default:
      return 500; // EIO, EMFILE, ...: our problem, not the client's
  }
}

function refusal(status: number, reason: string): SiteRefusal {
  return { kind: 'refused', status, reason };
}

function refusalForFsError(error: unknown): SiteRefusal {
  const code = (error as NodeJS.ErrnoException | null)?.code ?? 'unknown error';
  return refusal(statusForFsError(error), `file system: ${code}`);
}

// The type follows the name the client asked for (what a browser would
// expect); a symlink without an extension falls back to its target's name.
function contentTypeFor(requestedName: string, realPath: string): string {
  // Give mime-types only the extension: a whole path containing "/" would be
  // mistaken for a media type. contentType() adds "; charset=utf-8" to text.
  return mime.contentType(path.extname(requestedName))
    || mime.contentType(path.extname(realPath))
    || 'application/octet-stream';
}

/** Where a URL path led on disk: a regular file, known by its stat. */
interface ResolvedFile {
  kind: 'resolved';
  realPath: string;
  /** The name the client asked for; its extension decides Content-Type. */
  requestedName: string;
  stat: fs.Stats;
}

export class StaticSite {
  /** Absolute real path of the served directory. */
  readonly root: string;
  private readonly rootPrefix: string;
  private readonly revalidateAfterMs: number;
  private readonly cacheFileLimit: number;
  private readonly cacheTotalLimit: number;
  /** The site's clock (Date.now unless a test injects one); handleRequest reads it once per request, unless its caller passes the time. */
  readonly now: () => number;

  /** Raw URL path (percent-encoded, without query) → entry. */
  private readonly entries = new Map<string, SiteFile>();
  private cachedBodyBytes = 0;

  constructor(root: string, options: StaticSiteOptions = {}) {
    this.root = fs.realpathSync.native(path.resolve(root));
    if (!fs.statSync(this.root).isDirectory()) throw new Error(`site root is not a directory: ${this.root}`);
    // Checking "inside" with startsWith needs the trailing separator: without
    // it, a root of /srv/www would also admit /srv/www-secret.
    this.rootPrefix = this.root.endsWith(path.sep) ? this.root : this.root + path.sep;
    this.revalidateAfterMs = options.revalidateAfterMs ?? DEFAULT_REVALIDATE_AFTER_MS;
    this.cacheFileLimit = options.cacheFileLimit ?? DEFAULT_CACHE_FILE_LIMIT;
    this.cacheTotalLimit = options.cacheTotalLimit ?? DEFAULT_CACHE_TOTAL_LIMIT;
    this.now = options.now ?? (() => Date.now()); // (not Date.now itself: a test may replace it)
  }

  /** Bytes of file content currently held in memory. */
  get cachedBytes(): number {
    return this.cachedBodyBytes;
  }

  /**
   * What to serve for a URL path: the part of the origin-form target before
   * "?" or "#", still percent-encoded, e.g. "/docs/a%20b.html". `now` is the
   * site clock's time, for a caller that has read it already.
   */
  lookup(urlPath: string, now: number = this.now()): SiteLookup {
    const known = this.entries.get(urlPath);
    // The hot path: a recently checked entry is served without any system call.
    if (known !== undefined && now - known.checkedAt < this.revalidateAfterMs) return known;

    const found = this.resolve(urlPath);
    if (found.kind !== 'resolved') {
      if (known !== undefined) this.forget(urlPath, known);
      return found;
    }
    if (known !== undefined) {
      if (isSameFile(known, found)) {
        known.checkedAt = now;
        return known;
      }
      this.forget(urlPath, known);
    }
    // Past the bound an entry is still built and served, just not remembered
    // (and so it must not hold a body that the byte count would never release).
    const remembered = this.entries.size < MAX_CACHED_PATHS;
    const entry = this.createEntry(found, now, remembered);
    if (entry.kind === 'file' && remembered) this.entries.set(urlPath, entry);
    return entry;
  }

  /**
   * Open a file that is not cached in memory, for streaming. The caller owns
   * the fd (the Outbox closes it). Size and validators are taken from fstat of
   * the opened fd, so Content-Length matches exactly what will be read even if
   * the file was replaced since lookup().
   */
  openFile(file: SiteFile): OpenedFile | SiteRefusal {
    let fd: number;
    try {
      fd = fs.openSync(file.realPath, OPEN_FOR_READING);
    } catch (error) {
      file.checkedAt = -Infinity; // look again on the next request
      return refusalForFsError(error);
    }
    try {
      const stat = fs.fstatSync(fd);
      if (!stat.isFile()) {
        fs.closeSync(fd);
        file.checkedAt = -Infinity;
        return refusal(404, 'not a regular file any more');
      }
      if (stat.size !== file.size || stat.mtimeMs !== file.mtimeMs || stat.ino !== file.ino) {
        file.checkedAt = -Infinity; // the entry is stale; refresh it next time
      }
      return {
        fd,
        size: stat.size,
        mtimeMs: stat.mtimeMs,
        etag: etagFor(stat.size, stat.mtimeMs),
        lastModified: formatHttpDate(stat.mtimeMs),
      };
    } catch (error) {
      fs.closeSync(fd);
      return refusalForFsError(error);
    }
  }

  // -- resolving a URL path -------------------------------------------------

  private resolve(urlPath: string): ResolvedFile | SiteRedirect | SiteRefusal {
    const decoded = decodeUrlPath(urlPath);
    if (typeof decoded !== 'string') return decoded;

    // Joining cannot climb out of the root: decodeUrlPath admitted no ".."
    // segment. path.join keeps a trailing "/", which makes realpath fail with
    // ENOTDIR for "/file.html/", as it should.
    const candidate = path.join(this.root, decoded);
    const found = this.realInsideRoot(candidate);
    if (found.kind === 'refused') return found;

    const { realPath, stat } = found;
    if (stat.isDirectory()) {
      if (!decoded.endsWith('/')) {
        // A relative link inside /dir/index.html only works when the URL ends
        // in "/", so send the client there (as every web server does).
        // Collapse leading slashes: Location "//evil.example/" would be read
        // as another host (a protocol-relative URL: an open redirect).
        return { kind: 'redirect', location: `/${urlPath.replace(/^\/+/, '')}/` };
      }
      const index = this.realInsideRoot(path.join(realPath, 'index.html'));
      if (index.kind === 'refused') return index;
      if (!index.stat.isFile()) return refusal(404, 'index.html is not a regular file');
      return { kind: 'resolved', realPath: index.realPath, requestedName: 'index.html', stat: index.stat };
    }
    if (!stat.isFile()) return refusal(404, 'not a regular file');
    return { kind: 'resolved', realPath, requestedName: candidate, stat };
  }

  // realpath(3) resolves every symlink; the result must still be the root or
  // lie below it. This is the check that keeps symlinks from leading out.
  private realInsideRoot(candidate: string): { kind: 'inside'; realPath: string; stat: fs.Stats } | SiteRefusal {
    try {
      const realPath = fs.realpathSync.native(candidate);
      if (realPath !== this.root && !realPath.startsWith(this.rootPrefix)) {
        return refusal(404, 'resolves outside the root');
      }
      return { kind: 'inside', realPath, stat: fs.statSync(realPath) };
    } catch (error) {
      return refusalForFsError(error);
    }
  }

  // -- the cache ------------------------------------------------------------

  private createEntry(found: ResolvedFile, now: number, remembered: boolean): SiteFile | SiteRefusal {
    const contentType = contentTypeFor(found.requestedName, found.realPath);
    const { stat } = found;
    const cacheable = remembered
      && stat.size <= this.cacheFileLimit
      && this.cachedBodyBytes + stat.size <= this.cacheTotalLimit;
    if (!cacheable) {
      // Not read now: handle-request opens it per request. But if it is not
      // readable at all, say so now, so that HEAD and GET answer alike.
      try {
        fs.accessSync(found.realPath, fs.constants.R_OK);
      } catch (error) {
        return refusalForFsError(error);
      }
      return new SiteFile(found.realPath, stat.size, stat.mtimeMs, stat.ino, contentType, null, now);
    }
    const loaded = readWholeFile(found.realPath);
    if ('kind' in loaded) return loaded;
    const { body, stat: opened } = loaded;
    this.cachedBodyBytes += body.length;
    // body.length, not opened.size: if the file shrank while we read it, the size (which
    // Content-Length, Content-Range and byte ranges are cut by) must describe the bytes we hold.
    return new SiteFile(found.realPath, body.length, opened.mtimeMs, opened.ino, contentType, body, now);
  }

  private forget(urlPath: string, entry: SiteFile): void {
    this.entries.delete(urlPath);
    if (entry.body !== null) this.cachedBodyBytes -= entry.body.length;
  }
}

function isSameFile(entry: SiteFile, found: ResolvedFile): boolean {
  return entry.realPath === found.realPath
    && entry.ino === found.stat.ino
    && entry.size === found.stat.size
    && entry.mtimeMs === found.stat.mtimeMs;
}

// Read a small file completely. Size and times come from fstat of the same fd,
// so they describe the bytes we read, not some earlier version of the file.
function readWholeFile(realPath: string): { body: Buffer; stat: fs.Stats } | SiteRefusal {
  let fd: number;
  try {
    fd = fs.openSync(realPath, OPEN_FOR_READING);
  } catch (error) {
    return refusalForFsError(error);
  }
  try {
    const stat = fs.fstatSync(fd);
    const body = Buffer.allocUnsafe(stat.size);
    let filled = 0;
    while (filled < body.length) {
      const count = fs.readSync(fd, body, filled, body.length - filled, filled);
      if (count === 0) break; // it shrank meanwhile: keep what is there
      filled += count;
    }
    return { body: filled === body.length ? body : body.subarray(0, filled), stat };
  } catch (error) {
    return refusalForFsError(error);
  } finally {
    fs.closeSync(fd);
  }
}

// Percent-encoded "/" or "\": decoding them would create path separators the
// client did not write as separators, the oldest trick for escaping a root.
const ENCODED_SEPARATOR = /%(?:2f|5c)/i;

/**
 * Percent-decode a URL path as UTF-8 (RFC 3986 §2.1) and check every segment.
 * Returns the decoded path, or why it is refused (400 for broken encoding,
 * 404 for anything that tries to leave the tree or reach a hidden file).
 */
export function decodeUrlPath(urlPath: string): string | SiteRefusal {
  let decoded = urlPath;
  if (urlPath.includes('%')) {
    if (ENCODED_SEPARATOR.test(urlPath)) return refusal(404, 'encoded path separator');
    try {
      // Throws URIError on "%zz", a lone "%", and byte sequences that are not
      // valid UTF-8 (overlong forms, surrogates, truncated characters).
      decoded = decodeURIComponent(urlPath);
    } catch {
      return refusal(400, 'invalid percent-encoding');
    }
  }
  if (decoded.charCodeAt(0) !== 0x2f) return refusal(400, 'path does not start with /');
  if (decoded.includes('\\')) return refusal(404, 'backslash in path');
  if (decoded.includes('\0')) return refusal(404, 'NUL in path');
  // A segment starting with "." is ".", "..", or a hidden name: all refused.
  // Looking for "/." covers every segment, the first included.
  if (decoded.includes('/.')) return refusal(404, 'dot segment or hidden file');
  return decoded;
}
