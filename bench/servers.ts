/**
 * bench/servers.ts: which servers take part, how each is started and stopped.
 *
 * The models run as a reader runs them (`node --import tsx 06-epoll.ts --port 0 …`), and
 * the bench learns the port and pid from the start line every model prints. The references:
 * a plain node:http server (bench/references/node-http.ts); when installed, nginx with one
 * worker, the server every reader knows, as it comes and with `open_file_cache` (its usual
 * setting for static files); when a C compiler is at hand, the C ceiling
 * (bench/references/c-epoll-ceiling.c): the least one thread can spend per request; and the
 * same loop in TypeScript over koffi, the JS floor (bench/references/js-epoll-floor.ts).
 *
 * A new model takes one line in MODELS below.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { delay, exited, spawnChild, stopTree } from './children.ts';
import { waitUntilQuiet } from './proc.ts';
import { REPO_ROOT, SMALL_PAGE, type Site } from './site.ts';
import type { LaunchOptions, RunningServer, ServerSpec } from './types.ts';

export interface Skipped {
  id: string;
  reason: string;
}

export interface ServerChoices {
  poolSize: number;
  /** Caps for the models that spend a process or a thread on each connection. */
  processCap: number;
  threadCap: number;
}

const IDLE_TIMEOUT_SECONDS = 3600; // the C10K scenario holds connections idle on purpose
/** The line every server prints once it listens: its URL and pid. */
export const START_LINE = /serving .+ on (http:\/\/\S+\/) \(pid (\d+)/;

interface ModelEntry {
  number: string;
  name: string;
  cap?: keyof Omit<ServerChoices, 'poolSize'>;
  capWhy?: string;
  crowdLimit?: ServerSpec['crowdLimit'];
}

/** The crowd scenario's highest level for 04, the polling model (see its entry). */
const CROWD_LIMIT_04 = 10_000;

export const MODELS: ModelEntry[] = [
  { number: '01', name: '01-multiprocess', cap: 'processCap', capWhy: 'a process per connection' },
  { number: '02', name: '02-multithread', cap: 'threadCap', capWhy: 'a thread per connection' },
  { number: '03', name: '03-coroutine' },
  {
    number: '04',
    name: '04-nonblocking',
    crowdLimit: {
      connections: CROWD_LIMIT_04,
      why: `the bench's time: 04 calls recv() on every connection on every pass, so with ${CROWD_LIMIT_04.toLocaleString('en')} held a pass takes about a tenth of a second, opening the next 9,900 took a minute, and the slope is plain by then`,
    },
  },
  {
    number: '05',
    name: '05-select',
    crowdLimit: { descriptorsBelow: 1024, why: "select()'s limit: it watches descriptor numbers 0 to 1023 only (FD_SETSIZE 1024); 05 answers a connection whose descriptor is higher with a 503" },
  },
  { number: '06', name: '06-epoll' },
  { number: '07', name: '07-io_uring' },
];

/** What `--model` accepts besides the models' numbers and names (for --help and errors). */
export const REFERENCE_IDS = ['node-http', 'nginx', 'nginx-cache', 'c-ceiling', 'js-floor'] as const;

/** Every server this machine can run, in report order, and the ones it cannot (with why). */
export async function discoverServers(choices: ServerChoices, wanted: (id: string) => boolean): Promise<{ servers: ServerSpec[]; skipped: Skipped[] }> {
  const servers: ServerSpec[] = [];
  const skipped: Skipped[] = [];
  const files = readdirSync(REPO_ROOT);
  const models = MODELS.filter((model) => wanted(model.name) || wanted(`${model.number}-pool`));
  const helps = await Promise.all(
    models.map((model) => {
      const file = files.find((name) => name.startsWith(`${model.number}-`) && name.endsWith('.ts'));
      return file === undefined ? Promise.resolve(null) : readHelp(file).then((help) => ({ file, help }));
    }),
  );
  models.forEach((model, i) => {
    const found = helps[i];
    if (found == null) return skipped.push({ id: model.name, reason: `no ${model.number}-*.ts at the repository root yet` });
    const { file, help } = found;
    const id = file.replace(/\.ts$/, '');
    if (help.error !== null) return skipped.push({ id, reason: `\`${file} --help\` failed: ${help.error}` });
    const cap = model.cap === undefined ? null : { connections: choices[model.cap], why: `${model.capWhy} is costly to start` };
    servers.push({
      id,
      label: id,
      kind: 'model',
      cap,
      crowdLimit: model.crowdLimit ?? null,
      freshWorkerPerConnection: cap !== null,
      only: null,
      note: cap === null ? null : `${id}: capped at ${cap.connections.toLocaleString('en')} connections in every scenario (${model.capWhy}).`,
      launch: (site, options) => launchScript(file, [], site, options),
    });
    if (!/--pool\b/.test(help.text)) {
      if (model.cap !== undefined) skipped.push({ id: `${model.number}-pool`, reason: `${file} has no --pool flag yet` });
      return;
    }
    const poolArgs = ['--pool', String(choices.poolSize)];
    servers.push({
      id: `${model.number}-pool`,
      label: `${id} --pool ${choices.poolSize}`,
      kind: 'pool',
      crowdLimit: null,
      freshWorkerPerConnection: false,
      only: null,
      cap: { connections: choices.poolSize, why: `its ${choices.poolSize} workers serve ${choices.poolSize} connections at a time, and the others wait as long as those stay open` },
      note: `${id} --pool ${choices.poolSize}: ${choices.poolSize} workers started up front, each serving one connection at a time.`,
      launch: (site, options) => launchScript(file, poolArgs, site, options),
    });
  });
  servers.push(...referenceServers(wanted, skipped));
  return { servers, skipped };
}

/** node:http, nginx twice and the C ceiling: whichever this machine can run. */
function referenceServers(wanted: (id: string) => boolean, skipped: Skipped[]): ServerSpec[] {
  const servers: ServerSpec[] = [];
  const reference = (id: string, label: string, note: string, launch: ServerSpec['launch'], only: ServerSpec['only'] = null, crowdLimit: ServerSpec['crowdLimit'] = null): ServerSpec => ({
    id,
    label,
    kind: 'reference',
    cap: null,
    crowdLimit,
    freshWorkerPerConnection: false,
    only,
    note,
    launch,
  });
  servers.push(
    reference(
      'node-http',
      'node:http (reference)',
      'node:http (reference): bench/references/node-http.ts, node:http + fs.readFile on every request, as a tutorial writes it.',
      (site) => launchScript('bench/references/node-http.ts', [], site),
    ),
  );
  const nginx = findNginx();
  if (nginx === null) {
    const reason = 'nginx is not installed (Debian: apt-get install nginx); its rows and the targets against it are omitted';
    skipped.push({ id: 'nginx', reason }, { id: 'nginx-cache', reason });
  } else {
    const common = `${nginx.version}, worker_processes 1, sendfile on, access_log off, worker_connections ${NGINX_WORKER_CONNECTIONS} (preallocated at start)`;
    // Once fewer than 1/16 of its worker_connections are free, nginx closes idle keep-alive
    // connections to reuse them (nginx's "reusing connections in advance", 2020): asked to hold
    // 16,320, it kept 15,328 open here. The busy connections and the listener count too.
    const keeps = NGINX_WORKER_CONNECTIONS - NGINX_WORKER_CONNECTIONS / 16;
    const crowdLimit = {
      connections: keeps - 64,
      why: `nginx's worker_connections (${NGINX_WORKER_CONNECTIONS.toLocaleString('en')} in the bench's nginx.conf): once fewer than 1/16 of them are free, nginx closes idle keep-alive connections to reuse them, so it keeps at most ${keeps.toLocaleString('en')} open`,
    };
    servers.push(
      reference('nginx', 'nginx, 1 worker (reference)', `nginx (reference): ${common}; open_file_cache off (nginx's default).`, (site, options) => launchNginx(nginx.binary, site, false, options), null, crowdLimit),
      reference(
        'nginx-cache',
        'nginx, 1 worker, open_file_cache (reference)',
        `nginx-cache (reference): the same with open_file_cache on (${NGINX_OPEN_FILE_CACHE.join('; ')}): open descriptors and sizes are kept and checked again each second, as our small-file cache is. A large file and idle connections cost it what they cost nginx, so it skips bigfile and c10k.`,
        (site, options) => launchNginx(nginx.binary, site, true, options),
        { scenarios: ['keepalive', 'close', 'crowd'], why: 'a large file and idle connections cost it what they cost nginx (measured there)' },
        crowdLimit,
      ),
    );
  }
  servers.push(
    reference(
      'js-floor',
      'JS epoll floor (reference)',
      'JS epoll floor (reference): bench/references/js-epoll-floor.ts, the C ceiling\'s loop in TypeScript over shared/libc.ts (koffi): what epoll_wait, recv and send through the FFI cost before any HTTP work. Between it and the C ceiling: the price of JavaScript and the FFI; between it and 06-epoll: the shared HTTP core and the model\'s bookkeeping.',
      (site) => launchFloor(site),
      { scenarios: ['keepalive'], why: 'it serves one fixed page on keep-alive connections only, to set beside the C ceiling' },
    ),
  );
  if (wanted('c-ceiling')) {
    const ceiling = buildReference('c-epoll-ceiling');
    if ('reason' in ceiling) skipped.push({ id: 'c-ceiling', reason: `${ceiling.reason}; its row and the targets against it are omitted` });
    else {
      servers.push(
        reference(
          'c-ceiling',
          'C epoll ceiling (reference)',
          `C epoll ceiling (reference): bench/references/c-epoll-ceiling.c built with ${ceiling.compiler} -O2; one thread, one epoll loop, every request answered with one fixed response held in memory (the ${SMALL_PAGE.slice(1)} bytes), no parsing beyond finding the end of each request head, no file system: the least a single-threaded server spends per request on this kernel.`,
          (site) => launchCeiling(ceiling.binary, site),
          { scenarios: ['keepalive', 'close', 'crowd'], why: 'it serves one fixed page, no files, and holds idle connections in a few bytes each' },
        ),
      );
    }
  }
  return servers;
}

interface Help {
  text: string;
  error: string | null;
}

/** `FILE --help`: proves the file loads, and tells whether it has a --pool flag. */
async function readHelp(file: string): Promise<Help> {
  const child = spawnChild(process.execPath, ['--import', 'tsx', file, '--help'], { cwd: REPO_ROOT });
  const output = captureOutput(child);
  const timer = setTimeout(() => void stopTree(child, 0, 'SIGKILL'), 30_000);
  const code = await exited(child);
  clearTimeout(timer);
  const text = output.since(0).join('\n');
  const problem = output.since(0).find((line) => /error/i.test(line)) ?? output.since(0)[0] ?? 'no output';
  return { text, error: code === 0 ? null : `exit ${code}: ${problem.trim().slice(0, 200)}` };
}

interface CapturedOutput {
  mark(): number;
  since(mark: number): string[];
  /** Resolves with the first match of `pattern`; rejects if the child exits first or after `timeoutMs`. */
  waitFor(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray>;
}

const KEPT_LINES = 2000;

function captureOutput(child: ChildProcess): CapturedOutput {
  const lines: string[] = [];
  let dropped = 0;
  let partial = '';
  const waiters = new Set<() => void>();
  const take = (chunk: Buffer) => {
    const parts = (partial + chunk.toString()).split('\n');
    partial = parts.pop()!;
    lines.push(...parts);
    if (lines.length > KEPT_LINES) dropped += lines.splice(0, lines.length - KEPT_LINES).length;
    for (const notify of waiters) notify();
  };
  child.stdout?.on('data', take);
  child.stderr?.on('data', take);
  const done = exited(child);
  const since = (mark: number) => lines.slice(Math.max(0, mark - dropped));
  return {
    mark: () => dropped + lines.length,
    since,
    waitFor: (pattern, timeoutMs) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const match = lines.map((line) => pattern.exec(line)).find((found) => found !== null);
          if (match) finish(() => resolve(match));
        };
        const timer = setTimeout(() => finish(() => reject(new Error(`no start line within ${timeoutMs / 1000} s`))), timeoutMs);
        const finish = (settle: () => void) => {
          clearTimeout(timer);
          waiters.delete(check);
          settle();
        };
        void done.then(() => finish(() => reject(new Error(`exited at start: ${[...since(0), partial].join(' | ').slice(-400)}`))));
        waiters.add(check);
        check();
      }),
  };
}

async function launchScript(file: string, extraArgs: string[], site: Site, options: LaunchOptions = {}): Promise<RunningServer> {
  const args = ['--import', 'tsx', file, '--port', '0', '--idle-timeout', String(IDLE_TIMEOUT_SECONDS), '--root', site.root];
  if (options.requestTimeoutSeconds !== undefined) args.push('--request-timeout', String(options.requestTimeoutSeconds));
  if (options.maxClients !== undefined) args.push('--max-clients', String(options.maxClients));
  return fromStartLine(spawnChild(process.execPath, [...args, ...extraArgs], { cwd: REPO_ROOT }), 60_000);
}

/** A server that prints the models' start line: its URL comes from there. */
async function fromStartLine(child: ChildProcess, timeoutMs: number): Promise<RunningServer> {
  const output = captureOutput(child);
  try {
    const [, url] = await output.waitFor(START_LINE, timeoutMs);
    return await settled(child, output, url!, () => stopTree(child));
  } catch (error) {
    await stopTree(child, 1000);
    throw error;
  }
}

/** The server once its start has settled (a pool may still be starting its workers). */
async function settled(child: ChildProcess, output: CapturedOutput, url: string, stop: RunningServer['stop']): Promise<RunningServer> {
  const pid = child.pid!;
  await waitUntilQuiet(pid, 30_000);
  return { url, port: Number(new URL(url).port), pid, outputSince: output.since, outputMark: output.mark, stop };
}

// ---- nginx ----------------------------------------------------------------------------

const NGINX_WORKER_CONNECTIONS = 16384;

function findNginx(): { binary: string; version: string } | null {
  const binary = ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/bin/nginx'].find(existsSync) ?? which('nginx');
  if (binary === null) return null;
  const { stdout, stderr, status } = spawnSync(binary, ['-v'], { encoding: 'utf8' }); // it answers on stderr
  const version = /nginx version: (\S+)/.exec(`${stdout}${stderr}`)?.[1];
  return status === 0 && version !== undefined ? { binary, version } : null;
}

export function which(command: string): string | null {
  for (const folder of (process.env.PATH ?? '').split(':')) {
    if (folder !== '' && existsSync(path.join(folder, command))) return path.join(folder, command);
  }
  return null;
}

/**
 * open_file_cache: nginx keeps the descriptor, size and modification time of files it served,
 * and checks them again at most once a second (our StaticSite revalidates its small-file
 * cache on the same clock). Off by default: then each request opens, fstats and closes the file.
 */
const NGINX_OPEN_FILE_CACHE = ['open_file_cache max=1000 inactive=60s', 'open_file_cache_valid 1s', 'open_file_cache_min_uses 1', 'open_file_cache_errors on'];

function nginxConfig(prefix: string, port: number, root: string, openFileCache: boolean, options: LaunchOptions): string {
  const mimeTypes = existsSync('/etc/nginx/mime.types') ? 'include /etc/nginx/mime.types;' : 'types { text/html html; }';
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((kind) => `${kind}_temp_path ${prefix}/${kind};`);
  const cache = openFileCache ? NGINX_OPEN_FILE_CACHE.map((line) => `${line};`) : [];
  // The request deadline: nginx answers 408 when a head is not complete this long after it began.
  const deadline = options.requestTimeoutSeconds === undefined ? [] : [`client_header_timeout ${options.requestTimeoutSeconds}s;`];
  return `# written by bench/servers.ts for one benchmark run
daemon off;
worker_processes 1;
worker_rlimit_nofile ${NGINX_WORKER_CONNECTIONS + 1024};
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections ${NGINX_WORKER_CONNECTIONS}; }
http {
  ${mimeTypes}
  default_type application/octet-stream;
  access_log off;
  sendfile on;
  keepalive_timeout ${IDLE_TIMEOUT_SECONDS}s;
  keepalive_requests 1000000;
  ${[...temp, ...cache, ...deadline].join('\n  ')}
  server {
    listen 127.0.0.1:${port};
    root ${root};
    index index.html;
  }
}
`;
}

async function launchNginx(binary: string, site: Site, openFileCache: boolean, options: LaunchOptions = {}): Promise<RunningServer> {
  const prefix = mkdtempSync(path.join(os.tmpdir(), 'bench-nginx-'));
  const port = await freePort();
  const config = path.join(prefix, 'nginx.conf');
  writeFileSync(config, nginxConfig(prefix, port, site.root, openFileCache, options));
  const child = spawnChild(binary, ['-p', prefix, '-c', config, '-e', path.join(prefix, 'error.log')]);
  const output = captureOutput(child);
  const stop = async () => {
    const how = await stopTree(child);
    rmSync(prefix, { recursive: true, force: true });
    return how;
  };
  const url = `http://127.0.0.1:${port}/`;
  const deadline = Date.now() + 10_000;
  while (!(await accepts(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      const log = readFileSync(path.join(prefix, 'error.log'), { encoding: 'utf8', flag: 'a+' });
      await stop();
      throw new Error(`nginx did not start: ${log.trim().split('\n').pop() ?? 'no error log'}`);
    }
    await delay(50);
  }
  return settled(child, output, url, stop);
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer().once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

export function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.setTimeout(500, () => socket.destroy());
    socket.once('connect', () => {
      resolve(true);
      socket.end();
    });
    socket.on('error', () => undefined);
    socket.once('close', () => resolve(false)); // after 'connect' this changes nothing
  });
}

// ---- the C ceiling --------------------------------------------------------------------

/** Built programs live here (git ignores it), rebuilt when their source is newer. */
const BUILD_DIR = path.join(REPO_ROOT, 'bench', '.build');

/**
 * Compile bench/references/NAME.c with the system's C compiler into bench/.build/NAME (unless
 * that is newer than the source), or say why it cannot be.
 */
export function buildReference(name: string): { binary: string; compiler: string } | { reason: string } {
  const source = path.join(REPO_ROOT, 'bench', 'references', `${name}.c`);
  const compiler = ['cc', 'gcc', 'clang'].find((command) => which(command) !== null);
  if (compiler === undefined) return { reason: `no C compiler (cc, gcc or clang) on PATH to build bench/references/${name}.c (Debian: apt-get install gcc)` };
  const binary = path.join(BUILD_DIR, name);
  if (existsSync(binary) && statSync(binary).mtimeMs >= statSync(source).mtimeMs) return { binary, compiler };
  mkdirSync(BUILD_DIR, { recursive: true });
  const built = spawnSync(compiler, ['-O2', '-o', binary, source], { encoding: 'utf8' });
  if (built.status !== 0) return { reason: `${compiler} could not build bench/references/${name}.c: ${`${built.stderr}${built.error?.message ?? ''}`.trim().split('\n')[0]}` };
  return { binary, compiler };
}

function launchFloor(site: Site): Promise<RunningServer> {
  const args = ['--import', 'tsx', 'bench/references/js-epoll-floor.ts', '0', path.join(site.root, SMALL_PAGE)];
  return fromStartLine(spawnChild(process.execPath, args, { cwd: REPO_ROOT }), 60_000);
}

function launchCeiling(binary: string, site: Site): Promise<RunningServer> {
  return fromStartLine(spawnChild(binary, ['0', path.join(site.root, SMALL_PAGE)]), 10_000);
}
