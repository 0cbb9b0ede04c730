// Incremental HTTP/1.1 request framing (RFC 9112).
//
// TCP delivers a byte stream, not messages: one recv() may hold half a request,
// or three pipelined requests and the start of a fourth. RequestReader turns
// that stream back into requests. Every server model feeds it whatever bytes
// arrived (push) and then drains complete requests (next) until it answers
// null, meaning "wait for more bytes".
//
// What it checks is the message *syntax* and *framing*: where a request ends,
// whether the head is well formed, whether a body follows. What a request
// *means* (which file, which method is allowed) is handle-request.ts's job,
// which is why an unknown method such as POST comes out of here as an ordinary
// request and only gets its 405 later.
//
// A framing error leaves the byte stream in an unknown state (where would the
// next request start?), so after a RequestError the reader is finished and the
// connection must be closed once the error response is sent. So does a request
// that is still incomplete when its deadline passes (expire(): a 408).

export interface HttpRequest {
  kind: 'request';
  /** e.g. "GET"; case-sensitive, exactly as sent (RFC 9110 §9.1). */
  method: string;
  /** request-target as sent, e.g. "/a%20b.html?x=1" or "http://host/path". */
  target: string;
  version: '1.0' | '1.1';
  /** Lower-cased field names; repeated fields joined with ", " (RFC 9110 §5.3). */
  headers: Map<string, string>;
  /** 1.1: unless Connection has token "close"; 1.0: only with token "keep-alive". */
  keepAlive: boolean;
}

export interface RequestError {
  kind: 'error';
  /** 400, 408, 411, 413, 414, 431, 501, 505 ... */
  status: number;
  /** Short human reason, used in the response body and in one log line. */
  reason: string;
}

export type ParsedRequest = HttpRequest | RequestError;

/** Request line + header lines, including the empty line that ends them. */
export const MAX_HEAD_BYTES = 8192;
/** Longest request-target we are willing to parse (RFC 9112 §3: answer 414). */
export const MAX_TARGET_LENGTH = 4096;
/** Largest request body we read (and throw away): 1 MiB. */
export const MAX_BODY_BYTES = 1024 * 1024;

const LF = 0x0a;
const CR = 0x0d;
const EMPTY = Buffer.alloc(0);

// Storage that grew this large for one odd request is dropped once it is
// empty again, so that an idle keep-alive connection stays cheap.
const STORAGE_KEEP_LIMIT = 64 * 1024;
const STORAGE_MIN_SIZE = 4 * 1024;

export class RequestReader {
  // The unparsed bytes are data[start .. end). `data` is either the caller's
  // own chunk (borrowed: no copy at all in the common case where a recv()
  // holds whole requests) or our private `storage`.
  private data: Buffer = EMPTY;
  private start = 0;
  private end = 0;
  private borrowed = false;
  private storage: Buffer | null = null;

  // How many bytes after `start` are already known to hold no end of head.
  // Without it, a head arriving byte by byte would be rescanned from its
  // beginning on every push: quadratic work for the slowest clients.
  private scanned = 0;

  // A request whose head is parsed but whose body is still arriving. We only
  // hand a request out once its body has been read in full, so that the
  // response (which may close the connection) never races the client's upload.
  private waitingRequest: HttpRequest | null = null;
  private bodyBytesToSkip = 0;

  private finished = false;

  // When the request now arriving was first seen incomplete (Date.now(), ms), or 0 when none
  // is: the start of its deadline (see expire()). The clock is read only then, not for the
  // requests that arrive whole in one recv(), which are nearly all of them.
  private arrivingSince = 0;
  // The 408 that expire() decided on, for next() to return once.
  private lateError: RequestError | null = null;

  /** Bytes received but not yet returned as part of a request. */
  get bufferedBytes(): number {
    return this.end - this.start;
  }

  /**
   * True while part of a request has arrived but not all of it (its head, or the rest of its
   * body): a connection that ends now ends in the middle of a request.
   */
  get midRequest(): boolean {
    return !this.finished && (this.waitingRequest !== null || this.end > this.start);
  }

  /**
   * Bytes just received: the first `length` bytes of `chunk` (all of it by
   * default; a server that recv()s into one big buffer passes the count, which
   * spares it a subarray per recv). The reader may keep a reference to `chunk`
   * only until the next() loop that follows returns null (or detach() is
   * called); then it copies what is left, so the caller may reuse the chunk's
   * memory for its next recv().
   */
  push(chunk: Buffer, length: number = chunk.length): void {
    if (this.finished || length === 0) return;
    const held = this.end - this.start;
    if (held === 0) {
      // The common case: nothing left over, so just look at the caller's bytes.
      this.data = chunk;
      this.start = 0;
      this.end = length;
      this.scanned = 0;
      this.borrowed = true;
      return;
    }
    this.copyIntoStorage(chunk, length);
  }

  /**
   * The next complete request, in arrival order; or a RequestError (after which
   * every call returns null); or null when more bytes are needed.
   */
  next(): ParsedRequest | null {
    if (this.finished) return this.takeLateError();

    if (this.waitingRequest !== null) {
      const request = this.skipBody();
      if (request === null) return this.pause();
      return this.deliver(request);
    }

    if (!this.skipLeadingEmptyLines()) return this.fail(400, 'bare CR in request');
    if (this.start === this.end) return this.pause();

    const headEnd = this.findHeadEnd();
    if (headEnd === -1) {
      if (this.end - this.start > MAX_HEAD_BYTES) return this.failTooLarge();
      return this.pause();
    }
    if (headEnd - this.start > MAX_HEAD_BYTES) return this.failTooLarge();

    const parsed = parseHead(this.data, this.start, headEnd);
    this.start = headEnd;
    this.scanned = 0;
    if (parsed.kind === 'error') return this.fail(parsed.status, parsed.reason);

    const bodyLength = bodyLengthOf(parsed.headers);
    if (typeof bodyLength !== 'number') return this.fail(bodyLength.status, bodyLength.reason);
    if (bodyLength === 0) return this.deliver(parsed);

    // A body must be consumed even though we ignore it (even on GET):
    // otherwise its bytes would be taken for the next request (RFC 9112 §6.3).
    this.waitingRequest = parsed;
    this.bodyBytesToSkip = bodyLength;
    const request = this.skipBody();
    return request === null ? this.pause() : this.deliver(request);
  }

  /**
   * How long the request now arriving (head, and body if it has one) still has before its
   * deadline, `timeoutMs` after its first byte: Infinity between requests. Bytes trickling in
   * do not extend it. A blocking server (01, 02) waits in recv() no longer than this.
   */
  timeLeft(now: number, timeoutMs: number): number {
    if (this.finished || this.arrivingSince === 0) return Infinity;
    return this.arrivingSince + timeoutMs - now;
  }

  /**
   * The request deadline (nginx's client_header_timeout, Node's headersTimeout): if the request
   * now arriving is not complete `timeoutMs` after its first byte, give up on it. next() then
   * returns a 408 error, once, and nothing more: like any framing error, the connection is to
   * close after the answer. Returns whether it gave up. Nothing of that request has been
   * answered yet: a request is handed out only once its body, if any, has arrived in full.
   */
  expire(now: number, timeoutMs: number): boolean {
    if (this.timeLeft(now, timeoutMs) > 0) return false;
    this.lateError = this.fail(408, `request not complete ${timeoutMs / 1000} s after its first byte`);
    return true;
  }

  /**
   * Stop borrowing the caller's chunk now: copy whatever is still unparsed into the reader's
   * own storage. A caller that stops calling next() before it returns null (to stop answering
   * a client that is not reading its responses) calls this before reusing its receive buffer.
   */
  detach(): void {
    if (this.borrowed && this.end - this.start > 0) this.copyIntoStorage(EMPTY, 0);
  }

  // -- framing --------------------------------------------------------------

  // RFC 9112 §2.2: a server SHOULD ignore at least one empty line (CRLF)
  // received before the request line; some old clients send an extra CRLF
  // after a POST body. Returns false on a bare CR.
  private skipLeadingEmptyLines(): boolean {
    const data = this.data;
    let position = this.start;
    while (position < this.end) {
      const byte = data[position];
      if (byte === LF) {
        position += 1;
      } else if (byte === CR) {
        if (position + 1 === this.end) break; // the LF may still come
        if (data[position + 1] !== LF) return false;
        position += 2;
      } else {
        break;
      }
    }
    if (position !== this.start) {
      this.start = position;
      this.scanned = 0;
    }
    return true;
  }

  // The head ends with an empty line. Lines end with CRLF, or with a bare LF,
  // which RFC 9112 §2.2 allows a recipient to accept; so the end is an LF
  // followed by either LF or CR LF. We jump from LF to LF with the native
  // Buffer#indexOf rather than looking at every byte in JavaScript: unlike the
  // walk in parseHead below, which must look at every byte anyway, this only
  // looks for line ends, and a byte-by-byte loop measured slower here.
  // Returns the offset just after the empty line, or -1 if it has not arrived.
  private findHeadEnd(): number {
    const { data, start, end } = this;
    // No need to look further than one byte past the limit: the caller turns
    // "not found yet, and more than MAX_HEAD_BYTES waiting" into an error.
    const searchLimit = start + MAX_HEAD_BYTES + 1;
    let lineFeed = this.lineFeedFrom(start + this.scanned);
    while (lineFeed !== -1 && lineFeed < searchLimit) {
      const after = lineFeed + 1;
      if (after === end) break; // cannot tell yet: rescan this LF later
      if (data[after] === LF) return after + 1;
      if (data[after] === CR) {
        if (after + 1 === end) break;
        if (data[after + 1] === LF) return after + 2;
        // A bare CR; parseHead rejects it once the head is complete.
      }
      lineFeed = this.lineFeedFrom(after);
    }
    this.scanned = (lineFeed === -1 ? end : lineFeed) - start;
    return -1;
  }

  // The offset of the first LF in data[position .. end), or -1. (Buffer#indexOf
  // has no end: in a borrowed receive buffer it may look on into bytes left over
  // from an earlier recv(), and what it finds there does not count.)
  private lineFeedFrom(position: number): number {
    const found = this.data.indexOf(LF, position);
    return found < this.end ? found : -1;
  }

  // The head outgrew MAX_HEAD_BYTES. If not even the request line ended within
  // the limit, the URI is the likely culprit (414, RFC 9110 §15.5.15);
  // otherwise the header fields are (431, RFC 6585 §5).
  private failTooLarge(): RequestError {
    const firstLineFeed = this.lineFeedFrom(this.start);
    if (firstLineFeed === -1 || firstLineFeed - this.start >= MAX_HEAD_BYTES) {
      return this.fail(414, 'request line too long');
    }
    return this.fail(431, 'request header fields too large');
  }

  // Throw away body bytes as they arrive; we never keep a body in memory.
  // Returns the waiting request once its body is complete.
  private skipBody(): HttpRequest | null {
    const available = this.end - this.start;
    const skip = Math.min(available, this.bodyBytesToSkip);
    this.start += skip;
    this.bodyBytesToSkip -= skip;
    if (this.bodyBytesToSkip > 0) return null;
    const request = this.waitingRequest;
    this.waitingRequest = null;
    return request;
  }

  // A request is complete: the next one's deadline starts with its own first byte.
  private deliver(request: HttpRequest): HttpRequest {
    this.arrivingSince = 0;
    return request;
  }

  private takeLateError(): RequestError | null {
    const error = this.lateError;
    this.lateError = null;
    return error;
  }

  private fail(status: number, reason: string): RequestError {
    this.finished = true;
    this.data = EMPTY;
    this.start = 0;
    this.end = 0;
    this.storage = null;
    this.waitingRequest = null;
    return { kind: 'error', status, reason };
  }

  // -- buffer management ----------------------------------------------------

  // next() is about to return null: the caller may now reuse the memory of the
  // chunk it pushed, so copy whatever we still need out of it.
  // Also the moment a request is first seen incomplete, which starts its deadline.
  private pause(): null {
    const held = this.end - this.start;
    if (this.arrivingSince === 0 && (held > 0 || this.waitingRequest !== null)) this.arrivingSince = Date.now();
    if (held === 0) {
      this.data = EMPTY;
      this.start = 0;
      this.end = 0;
      this.borrowed = false;
      if (this.storage !== null && this.storage.length > STORAGE_KEEP_LIMIT) this.storage = null;
    } else if (this.borrowed) {
      this.copyIntoStorage(EMPTY, 0);
    }
    return null;
  }

  // Make data = (what is held) + the first extraLength bytes of extra, in our own storage.
  private copyIntoStorage(extra: Buffer, extraLength: number): void {
    const held = this.end - this.start;
    const needed = held + extraLength;
    const storageIsData = !this.borrowed && this.storage !== null;

    if (storageIsData && this.start === 0 && this.storage!.length >= needed) {
      // Already at the front of our storage and it has room: just append.
      extra.copy(this.storage!, held, 0, extraLength);
    } else {
      let storage = this.storage;
      if (storage === null || storage.length < needed) {
        storage = Buffer.allocUnsafe(Math.max(needed, STORAGE_MIN_SIZE, 2 * (storage?.length ?? 0)));
      }
      // Buffer#copy copes with overlap when moving within one buffer.
      this.data.copy(storage, 0, this.start, this.end);
      extra.copy(storage, held, 0, extraLength);
      this.storage = storage;
    }
    this.data = this.storage!;
    this.start = 0;
    this.end = needed;
    this.borrowed = false;
  }
}

// ---------------------------------------------------------------------------
// Parsing a complete head.
//
// The head is read twice over, in two forms. Its bytes are walked once, left to
// right, with small lookup tables: that finds where each line, name and value
// begins and ends, and checks every byte on the way. Its text (decoded once, as
// latin1: every byte is one character, so text offsets equal byte offsets and
// obs-text, bytes >= 0x80, survives) is only sliced at the places found. Why not
// search the text instead (indexOf, a regular expression)? Each such call costs
// more to start than a short line costs to walk, and a head is mostly short lines.

const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;
const SLASH = 0x2f;

/** One entry per byte value: 1 where `isMember` says so. */
function byteTable(isMember: (byte: number) => boolean): Uint8Array {
  const table = new Uint8Array(256);
  for (let byte = 0; byte < 256; byte++) table[byte] = isMember(byte) ? 1 : 0;
  return table;
}

// token = 1*tchar; tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-"
// / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA   (RFC 9110 §5.6.2)
const TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const IS_TCHAR = byteTable((byte) => TCHARS.includes(String.fromCharCode(byte)));

// What a field value, or the request line, may hold (RFC 9110 §5.5): HTAB,
// visible ASCII and SP, and obs-text. Not: NUL and the other control characters,
// DEL, nor CR or LF, which may only end a line, as CR LF or a bare LF. A bare CR
// is refused: some parsers take it for a line end and others do not, a way to
// smuggle requests (RFC 9112 §2.2 lets us reject it).
const IS_TEXT_BYTE = byteTable((byte) => byte === HTAB || (byte >= 0x20 && byte !== 0x7f));

/** The bytes of a line's text, from `at`: the offset of the CR LF or LF that ends it, or -1 at a forbidden byte. */
function endOfLine(bytes: Buffer, at: number): number {
  while (IS_TEXT_BYTE[bytes[at]!] === 1) at++;
  if (bytes[at] === LF) return at;
  if (bytes[at] === CR && bytes[at + 1] === LF) return at;
  return -1;
}

/** The offset just after the line end (CR LF or LF) at `lineEnd`. */
function nextLine(bytes: Buffer, lineEnd: number): number {
  return bytes[lineEnd] === CR ? lineEnd + 2 : lineEnd + 1;
}

function isToken(text: string): boolean {
  if (text.length === 0) return false;
  for (let index = 0; index < text.length; index++) {
    if (IS_TCHAR[text.charCodeAt(index)] !== 1) return false;
  }
  return true;
}

function requestError(status: number, reason: string): RequestError {
  return { kind: 'error', status, reason };
}

/**
 * Parse a complete head, bytes[from, to): request line, field lines and the empty
 * line that ends them (its last byte is that line's LF).
 */
export function parseHead(bytes: Buffer, from: number, to: number): ParsedRequest {
  const head = bytes.toString('latin1', from, to); // head[i - from] is bytes[i]

  // Every refusal goes through refusal(), so that a forbidden byte anywhere in the
  // head is what the client hears about, wherever the walk happened to stop first.
  let requestLine: RequestLine | RequestError | null = commonRequestLine(bytes, from, head);
  let requestLineEnd: number;
  if (requestLine !== null) {
    // It was "method SP target SP HTTP/1.x", so its length is known.
    requestLineEnd = from + requestLine.method.length + 1 + requestLine.target.length + VERSION_PART_LENGTH;
  } else {
    requestLineEnd = endOfLine(bytes, from);
    if (requestLineEnd === -1) return refusal(bytes, from, to, 400, 'control character in request head');
    requestLine = parseRequestLine(head.slice(0, requestLineEnd - from));
    if (requestLine.kind === 'error') return refusal(bytes, from, to, requestLine.status, requestLine.reason);
  }

  const headers = new Map<string, string>();
  let hostLines = 0;
  let hostIsValid = true;
  for (let lineStart = nextLine(bytes, requestLineEnd); ; ) {
    if (bytes[lineStart] === LF || (bytes[lineStart] === CR && bytes[lineStart + 1] === LF)) break; // the empty line

    // field-line = field-name ":" OWS field-value OWS   (RFC 9112 §5)
    let at = lineStart;
    while (IS_TCHAR[bytes[at]!] === 1) at++;
    const nameEnd = at;
    if (nameEnd === lineStart || bytes[at] !== COLON) {
      const lineEnd = endOfLine(bytes, lineStart);
      if (lineEnd === -1) return refusal(bytes, from, to, 400, 'control character in request head');
      return refusal(bytes, from, to, 400, fieldLineProblem(head.slice(lineStart - from, lineEnd - from)));
    }
    at += 1;
    while (bytes[at] === SP || bytes[at] === HTAB) at++;
    const valueStart = at;
    const lineEnd = endOfLine(bytes, valueStart);
    if (lineEnd === -1) return refusal(bytes, from, to, 400, 'control character in request head');
    let valueEnd = lineEnd;
    while (valueEnd > valueStart && (bytes[valueEnd - 1] === SP || bytes[valueEnd - 1] === HTAB)) valueEnd--;

    const fieldName = knownFieldName(bytes, lineStart, nameEnd) ?? head.slice(lineStart - from, nameEnd - from).toLowerCase();
    const value = head.slice(valueStart - from, valueEnd - from);
    const earlier = headers.get(fieldName);
    headers.set(fieldName, earlier === undefined ? value : `${earlier}, ${value}`);
    if (fieldName === 'host') {
      hostLines += 1;
      // Checked in the bytes: the value string may be a slice of the head, and reading a
      // slice character by character costs several times more than reading bytes.
      hostIsValid = isHostBytes(bytes, valueStart, valueEnd);
    }
    lineStart = nextLine(bytes, lineEnd);
  }

  // RFC 9112 §3.2: a 1.1 request needs exactly one Host; no request may have two.
  if (hostLines > 1) return requestError(400, 'more than one Host header');
  if (requestLine.version === '1.1' && hostLines === 0) return requestError(400, 'missing Host header');
  if (hostLines === 1 && !hostIsValid) return requestError(400, 'invalid Host header');

  const connection = headers.get('connection');
  const keepAlive = requestLine.version === '1.1'
    ? connection === undefined || !hasToken(connection, 'close')
    : connection !== undefined && hasToken(connection, 'keep-alive');

  return {
    kind: 'request',
    method: requestLine.method,
    target: requestLine.target,
    version: requestLine.version,
    headers,
    keepAlive,
  };
}

/** The error to answer for the head bytes[from, to): a forbidden byte in it, else `reason`. */
function refusal(bytes: Buffer, from: number, to: number, status: number, reason: string): RequestError {
  if (hasForbiddenByte(bytes, from, to)) return requestError(400, 'control character in request head');
  return requestError(status, reason);
}

/** Whether bytes[from, to) hold a byte no head may contain (see IS_TEXT_BYTE), or a bare CR. */
function hasForbiddenByte(bytes: Buffer, from: number, to: number): boolean {
  for (let at = from; at < to; at++) {
    const byte = bytes[at]!;
    if (IS_TEXT_BYTE[byte] === 1 || byte === LF) continue;
    if (byte === CR && at + 1 < to && bytes[at + 1] === LF) continue;
    return true;
  }
  return false;
}

// The field names this server reads, matched in the bytes without making a new
// string: the Map then gets a key whose hash V8 computed once, at start. Any
// other name becomes a lower-cased copy.
const KNOWN_FIELD_NAMES: (string[] | undefined)[] = [];
for (const name of ['host', 'connection', 'content-length', 'transfer-encoding', 'range', 'if-range', 'if-none-match', 'if-modified-since']) {
  (KNOWN_FIELD_NAMES[name.length] ??= []).push(name);
}
const TO_LOWER = new Uint8Array(256).map((_, byte) => (byte >= 0x41 && byte <= 0x5a ? byte + 0x20 : byte));

function knownFieldName(bytes: Buffer, from: number, to: number): string | undefined {
  const candidates = KNOWN_FIELD_NAMES[to - from];
  if (candidates === undefined) return undefined;
  for (const name of candidates) {
    let index = 0;
    while (index < name.length && TO_LOWER[bytes[from + index]!] === name.charCodeAt(index)) index++;
    if (index === name.length) return name;
  }
  return undefined;
}

// Why a field line without "name:" is refused, checked in the order that names the
// likeliest mistake.
function fieldLineProblem(line: string): string {
  // obs-fold: a line starting with whitespace continues the previous field.
  // RFC 9112 §5.2 lets a server reject it with 400, which is the safe choice.
  if (line.startsWith(' ') || line.startsWith('\t')) return 'obsolete line folding in header';
  const colon = line.indexOf(':');
  if (colon === -1) return 'header line without colon';
  if (colon === 0) return 'header line without name';
  // RFC 9112 §5.1: whitespace between name and colon MUST be rejected with 400;
  // it has been used to smuggle requests past lenient proxies.
  const name = line.slice(0, colon);
  const nameBeforeSpace = name.replace(/[ \t]+$/, '');
  if (nameBeforeSpace !== name && isToken(nameBeforeSpace)) return 'whitespace before colon in header';
  return 'invalid header name';
}

interface RequestLine {
  kind: 'line';
  method: string;
  target: string;
  version: '1.0' | '1.1';
}

/** " HTTP/1.1": what follows the target in the common request line. */
const VERSION_PART_LENGTH = ' HTTP/1.1'.length;

// What commonRequestLine compares bytes with, as arrays of byte values: an array's elements
// are cheaper to read in a loop than a string's characters (about 200 instructions less per
// request, counted with bench/instructions.ts).
const asciiCodes = (text: string): readonly number[] => Array.from(text, (character) => character.charCodeAt(0));
const VERSION_PREFIX = asciiCodes(' HTTP/1.'); // then the minor version's digit
const GET = asciiCodes('GET');
const HEAD = asciiCodes('HEAD');

/**
 * The request line as nearly every client writes it, read straight from the bytes
 * at `from`: a method, one space, an origin-form target ("/path?query") of visible
 * ASCII, one space, "HTTP/1.1" or "HTTP/1.0", and the line's end. Anything else (an
 * error, an absolute-form target, HTTP/1.2) returns null, and parseRequestLine,
 * which knows the whole grammar and every error, reads the line instead. What this
 * accepts, parseRequestLine would accept too, with the same result.
 */
function commonRequestLine(bytes: Buffer, from: number, head: string): RequestLine | null {
  let at = from;
  while (IS_TCHAR[bytes[at]!] === 1) at++;
  const methodEnd = at;
  if (methodEnd === from || bytes[at] !== SP || bytes[at + 1] !== SLASH) return null;
  const targetStart = at + 1;
  at = targetStart;
  while (bytes[at]! > SP && bytes[at]! < 0x7f) at++; // visible ASCII
  const targetEnd = at;
  if (targetEnd - targetStart > MAX_TARGET_LENGTH) return null;
  let version: '1.0' | '1.1';
  if (!bytesEqual(bytes, targetEnd, VERSION_PREFIX)) return null;
  const minor = bytes[targetEnd + VERSION_PREFIX.length];
  if (minor === 0x31) version = '1.1';
  else if (minor === 0x30) version = '1.0';
  else return null;
  // (The head ends with LF, so having matched the version we are still inside it.)
  const lineEnd = targetEnd + VERSION_PART_LENGTH;
  if (bytes[lineEnd] !== LF && !(bytes[lineEnd] === CR && bytes[lineEnd + 1] === LF)) return null;
  // The two methods a file server answers come as shared strings; others are copied out.
  const methodLength = methodEnd - from;
  const method = methodLength === GET.length && bytesEqual(bytes, from, GET) ? 'GET'
    : methodLength === HEAD.length && bytesEqual(bytes, from, HEAD) ? 'HEAD'
    : head.slice(0, methodLength);
  return { kind: 'line', method, target: head.slice(targetStart - from, targetEnd - from), version };
}

/** Whether bytes[at, at + expected.length) are `expected`. */
function bytesEqual(bytes: Buffer, at: number, expected: readonly number[]): boolean {
  for (let index = 0; index < expected.length; index++) {
    if (bytes[at + index] !== expected[index]) return false;
  }
  return true;
}

// request-line = method SP request-target SP HTTP-version   (RFC 9112 §3)
// Exactly one space between the three parts: being strict here is allowed and
// keeps us from guessing where a malformed target ends.
function parseRequestLine(line: string): RequestLine | RequestError {
  const firstSpace = line.indexOf(' ');
  const secondSpace = line.indexOf(' ', firstSpace + 1);
  if (firstSpace <= 0 || secondSpace === -1 || line.indexOf(' ', secondSpace + 1) !== -1) {
    return requestError(400, 'malformed request line');
  }
  const method = line.slice(0, firstSpace);
  const target = line.slice(firstSpace + 1, secondSpace);
  const versionText = line.slice(secondSpace + 1);

  if (!isToken(method)) return requestError(400, 'invalid method');

  const version = parseVersion(versionText);
  if (typeof version !== 'string') return version;

  if (target.length > MAX_TARGET_LENGTH) return requestError(414, 'request-target too long');
  const targetProblem = checkTarget(target);
  if (targetProblem !== null) return requestError(400, targetProblem);

  return { kind: 'line', method, target, version };
}

const VERSION_PATTERN = /^HTTP\/(\d)\.(\d)$/;

// HTTP-version = "HTTP/" DIGIT "." DIGIT   (RFC 9112 §2.3)
function parseVersion(text: string): '1.0' | '1.1' | RequestError {
  if (text === 'HTTP/1.1') return '1.1';
  if (text === 'HTTP/1.0') return '1.0';
  const match = VERSION_PATTERN.exec(text);
  if (match === null) return requestError(400, 'malformed HTTP version');
  // A later 1.x minor version is compatible by design (RFC 9110 §2.5): we
  // answer it as the highest 1.x we implement.
  if (match[1] === '1') return '1.1';
  return requestError(505, `HTTP/${match[1]}.${match[2]} not supported`);
}

/**
 * Returns null if the request-target is acceptable, or the reason it is not.
 * We take origin-form ("/path?query") and absolute-form ("http://host/path",
 * which RFC 9112 §3.2.2 obliges servers to accept). authority-form is for
 * CONNECT and asterisk-form for OPTIONS *, neither of which a file server does.
 */
function checkTarget(target: string): string | null {
  for (let index = 0; index < target.length; index++) {
    const code = target.charCodeAt(index);
    // Only visible ASCII may appear in a URI; everything else arrives
    // percent-encoded (RFC 3986 §2).
    if (code < 0x21 || code > 0x7e) return 'invalid character in request-target';
  }
  if (target.charCodeAt(0) === 0x2f /* / */) return null;
  const absolute = ABSOLUTE_FORM.exec(target);
  if (absolute === null) return 'unsupported request-target form';
  // The authority must be a host and port: no userinfo ("user@", which RFC
  // 9110 §4.2.4 says to treat as an error) and nothing a host cannot hold
  // (llhttp refuses those too; found by the differential test).
  return isValidHost(absolute[1]!) ? null : 'invalid authority in request-target';
}

// scheme "://" authority, then nothing or a path/query/fragment.
const ABSOLUTE_FORM = /^https?:\/\/([^/?#]+)(?:[/?#]|$)/i;

/**
 * The origin-form ("/path?query") of an accepted request-target: unchanged for
 * origin-form, the part after the authority for absolute-form.
 */
export function originFormOf(target: string): string {
  if (target.charCodeAt(0) === 0x2f) return target;
  const afterScheme = target.indexOf('://') + 3;
  const pathStart = target.slice(afterScheme).search(/[/?#]/);
  if (pathStart === -1) return '/';
  const rest = target.slice(afterScheme + pathStart);
  return rest.charCodeAt(0) === 0x2f ? rest : `/${rest}`;
}

// Host = uri-host [ ":" port ]   (RFC 9110 §7.2). We only make sure it holds
// nothing that cannot be part of a host name or IP literal (no spaces, "/",
// "@", ...); an empty Host is valid for a target without authority.
// The same rule twice: over the bytes of a Host field (parseHead), and over the
// text of an absolute-form target's authority (checkTarget).
const HOST_CHARACTERS = "-._~%!$&'()*+,;=:[]0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const IS_HOST_BYTE = byteTable((byte) => HOST_CHARACTERS.includes(String.fromCharCode(byte)));

function isHostBytes(bytes: Buffer, from: number, to: number): boolean {
  for (let at = from; at < to; at++) {
    if (IS_HOST_BYTE[bytes[at]!] !== 1) return false;
  }
  return true;
}

function isValidHost(host: string): boolean {
  for (let index = 0; index < host.length; index++) {
    // A latin1 string's characters are bytes (0-255), so the byte table serves.
    if (IS_HOST_BYTE[host.charCodeAt(index)] !== 1) return false;
  }
  return true;
}

// Strip optional whitespace (SP / HTAB, RFC 9110 §5.6.3) around a field value
// in line[from, to). String#trim would also eat U+00A0, which here is an
// obs-text byte (0xA0), not whitespace.
function trimOWS(line: string, from: number, to: number = line.length): string {
  while (from < to && isOWS(line.charCodeAt(from))) from++;
  while (to > from && isOWS(line.charCodeAt(to - 1))) to--;
  return line.slice(from, to);
}

function isOWS(code: number): boolean {
  return code === 0x20 || code === 0x09;
}

/** Whether a comma-separated field value (e.g. Connection) holds `token`, case-insensitively. */
export function hasToken(value: string, token: string): boolean {
  // Usually there is just one token ("keep-alive", "close"): no split needed.
  if (!value.includes(',')) return trimOWS(value, 0).toLowerCase() === token;
  for (const item of value.split(',')) {
    if (trimOWS(item, 0).toLowerCase() === token) return true;
  }
  return false;
}

const DIGITS_ONLY = /^\d+$/;

/**
 * How many body bytes follow the head (RFC 9112 §6.3), or the error that ends
 * the connection. Requests without Content-Length or Transfer-Encoding have no
 * body.
 */
function bodyLengthOf(headers: Map<string, string>): number | RequestError {
  const transferEncoding = headers.get('transfer-encoding');
  const contentLength = headers.get('content-length');

  if (transferEncoding !== undefined) {
    // Both at once is the classic request-smuggling setup (RFC 9112 §6.1).
    if (contentLength !== undefined) return requestError(400, 'both Transfer-Encoding and Content-Length');
    const codings = transferEncoding.split(',').map((coding) => trimOWS(coding, 0).toLowerCase());
    if (codings[codings.length - 1] === 'chunked') {
      // We could decode chunked bodies, but a file server never needs a body,
      // so we ask for a plain Content-Length instead (RFC 9110 §15.5.12).
      return requestError(411, 'chunked request bodies not supported');
    }
    // chunked must be the final coding of a request (RFC 9112 §6.3).
    if (codings.includes('chunked')) return requestError(400, 'chunked is not the final transfer coding');
    return requestError(501, 'unsupported transfer coding');
  }

  if (contentLength === undefined) return 0;
  // Repeated lines were joined with ", ". Identical copies are harmless (a
  // recipient may accept them, RFC 9110 §8.6); different ones are an attack or
  // a bug, and we cannot know which is right.
  let text = contentLength;
  if (!DIGITS_ONLY.test(text)) {
    const values = text.split(',').map((value) => trimOWS(value, 0));
    if (!values.every((value) => DIGITS_ONLY.test(value))) return requestError(400, 'invalid Content-Length');
    if (!values.every((value) => value === values[0])) return requestError(400, 'conflicting Content-Length values');
    text = values[0]!;
  }
  // Compare as text first, so that a 40-digit number never becomes an
  // imprecise float.
  const withoutLeadingZeros = text.replace(/^0+(?=\d)/, '');
  if (withoutLeadingZeros.length > 10 || Number(withoutLeadingZeros) > MAX_BODY_BYTES) {
    return requestError(413, 'request body too large');
  }
  return Number(withoutLeadingZeros);
}
