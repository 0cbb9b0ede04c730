/**
 * bench/servers.ts: which servers take part, how each is started and stopped.
 *
 * The six models run as a reader runs them (`node --import tsx 06-epoll.ts --port 0 …`), and
 * the bench learns the port and pid from the start line every model prints. The references:
 * a plain node:http server (bench/references/node-http.ts) and, when installed, nginx with
 * one worker, the server every reader knows.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { delay, exited, spawnChild, stopTree } from './children.ts';
import { waitUntilQuiet } from './proc.ts';
import { REPO_ROOT, type Site } from './site.ts';

export interface RunningServer {
  url: string;
  port: number;
  /** Root of the server's process tree (the model's own node process; nginx's master). */
  pid: number;
  /** Lines the server printed, from `mark` on (see `outputMark`). */
  outputSince(mark: number): string[];
  outputMark(): number;
  stop(): Promise<'stopped' | 'killed'>;
}

export interface ServerSpec {
  /** What `--model` matches: '06-epoll', '01-pool', 'node-http', 'nginx'. */
  id: string;
  /** As shown in the report: '01-multiprocess --pool 16'. */
  label: string;
  kind: 'model' | 'pool' | 'reference';
  /**
   * Most connections this server is given at once, in any scenario, and why: a pool serves
   * only as many as it has workers; a model that starts a process or a thread for each
   * connection is held to what the machine survives in the time the bench has.
   */
  cap: { connections: number; why: string } | null;
  /**
   * Serves each connection with a process or thread of its own that ends with it: nothing of
   * a warm-up carries over to the next connection, so the bench skips it.
   */
  freshWorkerPerConnection: boolean;
  /** Said in the report under the tables. */
  note: string | null;
  launch(site: Site): Promise<RunningServer>;
}

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
const START_LINE = /serving .+ on (http:\/\/\S+\/) \(pid (\d+)/;

interface ModelEntry {
  number: string;
  name: string;
  cap?: keyof Omit<ServerChoices, 'poolSize'>;
  capWhy?: string;
}

const MODELS: ModelEntry[] = [
  { number: '01', name: '01-multiprocess', cap: 'processCap', capWhy: 'a process per connection' },
  { number: '02', name: '02-multithread', cap: 'threadCap', capWhy: 'a thread per connection' },
  { number: '03', name: '03-coroutine' },
  { number: '04', name: '04-nonblocking' },
  { number: '05', name: '05-select' },
  { number: '06', name: '06-epoll' },
];

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
      freshWorkerPerConnection: cap !== null,
      note: cap === null ? null : `${id}: capped at ${cap.connections.toLocaleString('en')} connections in every scenario (${model.capWhy}).`,
      launch: (site) => launchScript(file, [], site),
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
      freshWorkerPerConnection: false,
      cap: { connections: choices.poolSize, why: `its ${choices.poolSize} workers serve ${choices.poolSize} connections at a time, and the others wait as long as those stay open` },
      note: `${id} --pool ${choices.poolSize}: ${choices.poolSize} workers started up front, each serving one connection at a time.`,
      launch: (site) => launchScript(file, poolArgs, site),
    });
  });
  servers.push({
    id: 'node-http',
    label: 'node:http (reference)',
    kind: 'reference',
    cap: null,
    freshWorkerPerConnection: false,
    note: 'node:http (reference): bench/references/node-http.ts, node:http + fs.readFile on every request, as a tutorial writes it.',
    launch: (site) => launchScript('bench/references/node-http.ts', [], site),
  });
  const nginx = findNginx();
  if (nginx === null) {
    skipped.push({ id: 'nginx', reason: 'nginx is not installed (Debian: apt-get install nginx); its rows and the targets against it are omitted' });
  } else {
    servers.push({
      id: 'nginx',
      label: 'nginx, 1 worker (reference)',
      kind: 'reference',
      cap: null,
      freshWorkerPerConnection: false,
      note: `nginx (reference): ${nginx.version}, worker_processes 1, sendfile on, access_log off, worker_connections ${NGINX_WORKER_CONNECTIONS} (preallocated at start).`,
      launch: (site) => launchNginx(nginx.binary, site),
    });
  }
  return { servers, skipped };
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

async function launchScript(file: string, extraArgs: string[], site: Site): Promise<RunningServer> {
  const args = ['--import', 'tsx', file, '--port', '0', '--idle-timeout', String(IDLE_TIMEOUT_SECONDS), '--root', site.root];
  const child = spawnChild(process.execPath, [...args, ...extraArgs], { cwd: REPO_ROOT });
  const output = captureOutput(child);
  try {
    const [, url] = await output.waitFor(START_LINE, 60_000);
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

function which(command: string): string | null {
  for (const folder of (process.env.PATH ?? '').split(':')) {
    if (folder !== '' && existsSync(path.join(folder, command))) return path.join(folder, command);
  }
  return null;
}

function nginxConfig(prefix: string, port: number, root: string): string {
  const mimeTypes = existsSync('/etc/nginx/mime.types') ? 'include /etc/nginx/mime.types;' : 'types { text/html html; }';
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((kind) => `${kind}_temp_path ${prefix}/${kind};`);
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
  ${temp.join('\n  ')}
  server {
    listen 127.0.0.1:${port};
    root ${root};
    index index.html;
  }
}
`;
}

async function launchNginx(binary: string, site: Site): Promise<RunningServer> {
  const prefix = mkdtempSync(path.join(os.tmpdir(), 'bench-nginx-'));
  const port = await freePort();
  const config = path.join(prefix, 'nginx.conf');
  writeFileSync(config, nginxConfig(prefix, port, site.root));
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

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer().once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

function accepts(port: number): Promise<boolean> {
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
