/**
 * bench/transcripts.ts: real `--trace` transcripts for the tour, written into both READMEs and
 * the site's model pages.
 *
 *     npm run transcripts
 *
 * Each model is started with --trace, and one client makes a keep-alive exchange: it connects,
 * sends a request, reads the answer, sends a second one on the same connection, reads it, and
 * closes. Between steps it waits until the server has been quiet for a moment, so that every
 * step's lines are written before the next step starts. What the server narrated from the
 * connect to the close is the transcript. For 05 a second one shows the lesson's moment: the
 * connection whose descriptor does not fit in an fd_set, answered 503.
 *
 * The transcripts go between markers (bench/readme.ts's), invisible when rendered:
 *
 *     <!-- bench:trace-05 --> … <!-- /bench:trace-05 -->
 *
 * in README.md, README.zh-CN.md, www/guide/05-select.html and www/zh/05-select.html (a fenced
 * block in the READMEs, a <pre> on the pages; the same text in both languages). The numbers in
 * them are one run's: descriptors, ports and pids differ from run to run and from one Node
 * version to the next. tests/trace.test.ts makes a fresh run and compares, after
 * `normalise()` has replaced those numbers in both, so a change to what --trace prints fails
 * it until this command has been run again.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { delay, spawnChild, stopTree } from './children.ts';
import { escapeXml, unescapeXml } from './figure-text.ts';
import { rewriteMarked } from './readme.ts';
import { START_LINE } from './servers.ts';
import { REPO_ROOT } from './site.ts';

export interface TracedModel {
  /** "05" */
  number: string;
  /** "05-select": the lesson file without .ts, and the name of its pages. */
  name: string;
}

export const TRACED_MODELS: TracedModel[] = [
  '01-multiprocess',
  '02-multithread',
  '03-coroutine',
  '04-nonblocking',
  '05-select',
  '06-epoll',
  '07-io_uring',
].map((name) => ({ number: name.slice(0, 2), name }));

/** The marker names: `trace-05`, and `trace-05-limit` for 05's 503. */
export const EXCHANGE = (model: TracedModel) => `trace-${model.number}`;
export const SELECT_LIMIT = 'trace-05-limit';

const REQUEST = 'GET /hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n';
/** The server counts as done with a step once it has written nothing for this long. */
const QUIET_MS = 200;

// ---------------------------------------------------------------------------------------
// A traced server, and a client that waits for it
// ---------------------------------------------------------------------------------------

interface TracedServer {
  port: number;
  /** Everything it wrote to stderr so far: the narration. */
  trace(): string;
  /**
   * What it narrated after the first `from` characters, less a first line that only counts
   * repeats of a line written before.
   */
  since(from: number): string;
  /**
   * Resolves once the narration has grown past `length` characters (the server has answered
   * the step) and then nothing new has been written for QUIET_MS.
   */
  quiet(length?: number): Promise<void>;
  stop(): Promise<void>;
}

async function startTraced(model: TracedModel, extraArgs: string[] = []): Promise<TracedServer> {
  const child = spawnChild(process.execPath, ['--import', 'tsx', `${model.name}.ts`, '--port', '0', '--trace', ...extraArgs], { cwd: REPO_ROOT });
  let stdout = '';
  let stderr = '';
  let lastOutput = Date.now();
  child.stdout!.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    lastOutput = Date.now();
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    lastOutput = Date.now();
  });
  const server: TracedServer = {
    port: 0,
    trace: () => stderr,
    since: (from) => stderr.slice(from).replace(/^.*\(the same (once|\d+ times) more\)\n/, ''),
    quiet: async (length = -1) => {
      for (let waited = 0; stderr.length <= length || Date.now() - lastOutput < QUIET_MS; waited += 25) {
        if (waited > 20_000) throw new Error(`${model.name} never went quiet; it wrote:\n${stderr}`);
        await delay(25);
      }
    },
    stop: async () => void (await stopTree(child)),
  };
  for (let waited = 0; ; waited += 25) {
    const started = START_LINE.exec(stdout);
    if (started) {
      server.port = Number(new URL(started[1]!).port);
      break;
    }
    if (waited > 30_000 || child.exitCode !== null) {
      await server.stop();
      throw new Error(`${model.name} did not start; it wrote:\n${stdout}${stderr}`);
    }
    await delay(25);
  }
  await server.quiet();
  return server;
}

/** A client socket whose received bytes we can wait for. */
async function connect(port: number): Promise<{ socket: net.Socket; received: () => string; closed: Promise<void> }> {
  const socket = net.connect(port, '127.0.0.1');
  let received = '';
  socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  socket.on('error', () => undefined); // a reset shows in the transcript; here it changes nothing
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  return { socket, received: () => received, closed };
}

async function waitFor(condition: () => boolean, what: string): Promise<void> {
  for (let waited = 0; !condition(); waited += 10) {
    if (waited > 10_000) throw new Error(`timed out waiting for ${what}`);
    await delay(10);
  }
}

/** How many complete responses `text` holds (each ends its head, then Content-Length bytes). */
function completeResponses(text: string): number {
  let count = 0;
  for (let at = 0; ; count++) {
    const headEnd = text.indexOf('\r\n\r\n', at);
    if (headEnd < 0) return count;
    const length = Number(/content-length: *(\d+)/i.exec(text.slice(at, headEnd))?.[1] ?? 0);
    if (text.length < headEnd + 4 + length) return count;
    at = headEnd + 4 + length;
  }
}

/**
 * The keep-alive exchange: connect, two requests one after the other on the same connection,
 * close. Returns what the server narrated from the connect until it had closed its side too.
 */
export async function traceExchange(model: TracedModel): Promise<string> {
  const server = await startTraced(model);
  try {
    const from = server.trace().length;
    const client = await connect(server.port);
    await server.quiet(from);
    for (let answers = 1; answers <= 2; answers++) {
      const before = server.trace().length;
      client.socket.write(REQUEST);
      await waitFor(() => completeResponses(client.received()) >= answers, `response ${answers} from ${model.name}`);
      await server.quiet(before);
    }
    const before = server.trace().length;
    client.socket.end();
    await client.closed;
    await server.quiet(before);
    return server.since(from);
  } finally {
    await server.stop();
  }
}

/**
 * 05's lesson: fill the descriptor numbers below FD_SETSIZE with idle connections, then connect
 * one more, whose descriptor select() cannot watch. Returns the narration of that last one.
 * (The crowd's own lines, several thousand, mostly go over --trace's 1000 a second and are
 * dropped: only the last connection, made once the server is quiet, is the transcript.)
 */
export async function traceSelectLimit(): Promise<string> {
  const server = await startTraced(TRACED_MODELS[4]!, ['--idle-timeout', '120']);
  const crowd: net.Socket[] = [];
  try {
    for (;;) {
      await server.quiet();
      const from = server.trace().length;
      const client = await connect(server.port);
      crowd.push(client.socket);
      await server.quiet(from);
      const said = server.since(from);
      if (/send\(\d+, \d+\) = \d+ .*"HTTP\/1\.1 503/.test(said)) return said;
      // Not there yet: the rest of the crowd, in batches, quietly.
      const highest = Math.max(...[...said.matchAll(/accept4\(\d+\) = (\d+)/g)].map((match) => Number(match[1])), 0);
      const batch = Math.max(0, Math.min(200, 1020 - highest));
      const opened = await Promise.all(Array.from({ length: batch }, () => connect(server.port)));
      crowd.push(...opened.map(({ socket }) => socket));
      if (batch > 0) await delay(1500); // past the second whose lines were dropped, and its count
      if (crowd.length > 1500) throw new Error('no connection was turned away after 1500');
    }
  } finally {
    for (const socket of crowd) socket.destroy();
    await server.stop();
  }
}

// ---------------------------------------------------------------------------------------
// Comparing: what changes from run to run
// ---------------------------------------------------------------------------------------

/**
 * A transcript with what differs between runs replaced: descriptor numbers (each becomes fdA,
 * fdB… in order of first appearance; a crowd of them in a select() set, as one), ports, pids,
 * thread ids, timeouts and repeat counts. Lines
 * that depend on when a wait happened to end are left out: a select(), epoll_wait() or
 * io_uring_enter() that timed out, and the count of repeats after it. 07's completions are
 * compared one by one, without which io_uring_enter they arrived with (two that complete
 * together may be reaped by one call or by two).
 */
const SYSTEM_CALL_FIRST_FD =
  /\b(setsockopt|bind|listen|getsockname|getpeername|accept4|recv|send|sendfile|shutdown|close|fcntl|epoll_ctl|epoll_wait|io_uring_enter)\((\d+)/g;

export function normalise(transcript: string): string {
  const names = new Map<string, string>();
  const fd = (number: string) => {
    if (!names.has(number)) names.set(number, `fd${String.fromCharCode(65 + names.size)}`);
    return names.get(number)!;
  };
  const kept: string[] = [];
  let droppedLast = false;
  for (const line of transcript.split('\n')) {
    if (line.trim() === '') continue;
    const isRepeat = /\(the same (once|\d+ times) more\)$/.test(line);
    if (/\(timed out\)$|= 0 completions$/.test(line) || (isRepeat && droppedLast)) {
      droppedLast = true;
      continue;
    }
    droppedLast = false;
    kept.push(
      line
        .replace(/\(the same (once|\d+ times) more\)/, '(the same N more)')
        .replace(/127\.0\.0\.1:\d+/g, '127.0.0.1:PORT')
        .replace(/\bpid \d+/g, 'pid P')
        .replace(/\bthread \d+/g, 'thread T')
        .replace(/timeout=\d+ ms/g, 'timeout=T')
        .replace(/nfds=\d+/g, 'nfds=N')
        // A crowd's set: which numbers come first depends on what the runtime holds.
        .replace(/\{[\d,]*…[\d,]*\} \(\d+ fds\)/g, '{a crowd} (N fds)')
        .replace(/\b(io_uring_enter\(\d+, submitted \d+.*?); timeout=T\) = \d+ completions?:?$/, '$1)')
        .replace(/\b(socket|accept4|epoll_create1)\(([^)]*)\) = (\d+)/g, (_all, call: string, args: string, result: string) => `${call}(${args}) = ${fd(result)}`)
        .replace(SYSTEM_CALL_FIRST_FD, (_all, call: string, number: string) => `${call}(${fd(number)}`)
        .replace(/\b(epoll_ctl\(\w+, (?:ADD|MOD|DEL), )(\d+)/g, (_all, head: string, number: string) => `${head}${fd(number)}`)
        .replace(/\b(sendfile\(\w+, )(\d+)/g, (_all, head: string, number: string) => `${head}${fd(number)}`)
        .replace(/\b(read|write)=\{([\d,…]*)\}/g, (_all, set: string, members: string) => `${set}={${members.split(',').map((m) => (/^\d+$/.test(m) ? fd(m) : m)).join(',')}}`)
        .replace(/\bfds? (\d+)/g, (_all, number: string) => `fd ${fd(number)}`)
        .replace(/= (\d+) \(a new connection\)/g, (_all, number: string) => `= ${fd(number)} (a new connection)`),
    );
  }
  // 07: an io_uring_enter that handed over nothing only says that completions were reaped.
  return kept.filter((line) => !/io_uring_enter\(\w+, submitted 0\)$/.test(line)).join('\n');
}

// ---------------------------------------------------------------------------------------
// Writing them into the READMEs and the pages
// ---------------------------------------------------------------------------------------

export interface Document {
  file: string;
  /** How a transcript looks in it. */
  render(transcript: string): string;
}

export const DOCUMENTS: Document[] = [
  ...['README.md', 'README.zh-CN.md'].map((file) => ({ file, render: (transcript: string) => `\`\`\`text\n${transcript.trimEnd()}\n\`\`\`` })),
  ...TRACED_MODELS.flatMap((model) =>
    ['www/guide', 'www/zh'].map((folder) => ({
      file: `${folder}/${model.name}.html`,
      render: (transcript: string) => `<pre class="trace">${escapeXml(transcript.trimEnd())}</pre>`,
    })),
  ),
];

/** The transcript between `<!-- bench:NAME -->` and its end marker in `text`, or null. */
export function markedTranscript(text: string, name: string): string | null {
  const start = `<!-- bench:${name} -->`;
  const from = text.indexOf(start);
  const to = text.indexOf(`<!-- /bench:${name} -->`, from);
  if (from < 0 || to < 0) return null;
  const body = text.slice(from + start.length, to);
  const inner = /```text\n([\s\S]*?)\n```/.exec(body)?.[1] ?? /<pre class="trace">([\s\S]*?)<\/pre>/.exec(body)?.[1];
  if (inner === undefined) return null;
  return unescapeXml(inner);
}

/** Write each transcript into every document that has its markers; one line per document. */
function writeTranscripts(transcripts: Record<string, string>, root = REPO_ROOT): string[] {
  return DOCUMENTS.map(({ file, render }) => {
    const where = path.join(root, file);
    if (!existsSync(where)) return `${file}: not found`;
    let text = readFileSync(where, 'utf8');
    const written: string[] = [];
    for (const [name, transcript] of Object.entries(transcripts)) {
      const rewritten = rewriteMarked(text, { [name]: render(transcript) });
      if (rewritten === null) continue;
      text = rewritten;
      written.push(name);
    }
    writeFileSync(where, text);
    return `${file}: ${written.length === 0 ? 'no transcript markers' : written.join(', ')}`;
  });
}

async function main(): Promise<void> {
  const transcripts: Record<string, string> = {};
  for (const model of TRACED_MODELS) {
    process.stdout.write(`${model.name}: one keep-alive exchange\n`);
    transcripts[EXCHANGE(model)] = await traceExchange(model);
  }
  process.stdout.write('05-select: a connection past FD_SETSIZE\n');
  transcripts[SELECT_LIMIT] = await traceSelectLimit();
  for (const line of writeTranscripts(transcripts)) process.stdout.write(`${line}\n`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(REPO_ROOT, 'bench/transcripts.ts')) {
  main().catch((error: unknown) => {
    process.stderr.write(`transcripts: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  });
}
