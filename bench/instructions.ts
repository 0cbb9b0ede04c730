/**
 * bench/instructions.ts: how many instructions each server's own code runs per request,
 * counted by valgrind (callgrind) rather than timed.
 *
 *     npx tsx bench/instructions.ts                  # c, js, 07, 06, 05, 03
 *     npx tsx bench/instructions.ts 06 03 --requests 40000 --warmup 100000
 *
 * Why count. CPU time per request (`npm run bench`) is the figure that matters, but on a
 * shared machine it moves by ±5 % from one round to the next, more than most single changes
 * to the code save. An instruction count hardly moves: run twice, it agrees to within about
 * 2 % (V8 decides when to optimize what, and that varies a little). So this is the tool for
 * asking "did that change make the server do less work?", and for seeing where a model's
 * work goes next to the C ceiling and the JS floor.
 *
 * What is counted: the instructions of the server's main thread in user space (its own code,
 * V8, Node, libuv, koffi, libc) while it answers --requests keep-alive GETs of the small page
 * from 10 connections, after --warmup requests and with the counters zeroed in between.
 * Kernel work is not counted: it is the same for every server here (the same recv and send
 * per request), and CPU time already shows it. The count of all threads is printed beside
 * it: V8 also compiles and collects garbage on helper threads, and under valgrind's slow
 * clock their share moves from run to run, so the main thread's count is the steady one.
 * Each server takes about a minute under valgrind; nothing runs in parallel.
 *
 * Needs valgrind (Debian: apt-get install valgrind) and, for the C ceiling, a C compiler.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { delay, spawnChild, stopTree } from './children.ts';
import { exchange } from './http-probe.ts';
import { MODELS, accepts, buildReference, freePort, which } from './servers.ts';
import { REPO_ROOT, SMALL_PAGE, prepareSite, type Site } from './site.ts';

const CONNECTIONS = 10;
const DEFAULT_NAMES = ['c', 'js', '07', '06', '05', '03'];

interface Target {
  name: string;
  /** The command to run under valgrind, given the port and the site. */
  command(port: number, site: Site): string[] | { skip: string };
}

const NODE = [process.execPath, '--import', 'tsx'];

function target(name: string): Target | null {
  if (name === 'c') {
    return {
      name: 'C epoll ceiling',
      command: (port, site) => {
        const built = buildReference('c-epoll-ceiling');
        return 'reason' in built ? { skip: built.reason } : [built.binary, String(port), path.join(site.root, SMALL_PAGE)];
      },
    };
  }
  if (name === 'js') {
    return { name: 'JS epoll floor', command: (port, site) => [...NODE, 'bench/references/js-epoll-floor.ts', String(port), path.join(site.root, SMALL_PAGE)] };
  }
  const model = MODELS.find((candidate) => candidate.number === name || candidate.name === name);
  if (model === undefined) return null;
  return { name: model.name, command: (port, site) => [...NODE, `${model.name}.ts`, '--port', String(port), '--root', site.root] };
}

/** `count` keep-alive GETs of the small page, spread over CONNECTIONS connections. */
async function load(port: number, count: number): Promise<void> {
  const request = `GET ${SMALL_PAGE} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`;
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      const socket = net.connect({ host: '127.0.0.1', port });
      try {
        for (let i = 0; i < count / CONNECTIONS; i++) {
          const answer = await exchange(socket, request, 60_000);
          if (answer.status !== 200) throw new Error(`status ${answer.status}`);
        }
      } finally {
        socket.destroy();
      }
    }),
  );
}

/** Run callgrind_control with `flag` (-z: zero the counters, -d: write them out) for `pid`. */
async function control(flag: '-z' | '-d', pid: number): Promise<void> {
  const child = spawnChild('callgrind_control', [flag, String(pid)], { stdio: 'ignore' });
  await new Promise((resolve) => child.once('exit', resolve));
}

/** The event count on the "summary:" (or "totals:") line of a callgrind output file. */
function summaryOf(file: string): number {
  const match = /^(?:summary|totals): (\d+)/m.exec(readFileSync(file, 'utf8'));
  return match === null ? 0 : Number(match[1]);
}

/** Instructions per request of one server: its main thread, and all its threads together. */
async function measure(item: Target, site: Site, warmup: number, requests: number): Promise<{ main: number; all: number } | { skip: string }> {
  const port = await freePort();
  const command = item.command(port, site);
  if ('skip' in command) return command;
  const folder = mkdtempSync(path.join(os.tmpdir(), 'bench-callgrind-'));
  const child = spawnChild('valgrind', ['--tool=callgrind', '--separate-threads=yes', `--callgrind-out-file=${folder}/out.%p`, ...command], { cwd: REPO_ROOT, stdio: 'ignore' });
  try {
    const started = Date.now();
    while (!(await accepts(port))) {
      if (Date.now() - started > 180_000 || child.exitCode !== null) throw new Error('did not start under valgrind');
      await delay(500);
    }
    await load(port, warmup);
    await control('-z', child.pid!);
    await load(port, requests);
    await control('-d', child.pid!);
    // The dump is named out.PID.1-TT: the first dump, thread TT (01 is the main thread).
    const dumps = readdirSync(folder).filter((file) => /\.1-\d+$/.test(file));
    const main = dumps.find((file) => file.endsWith('.1-01'));
    if (main === undefined) throw new Error('callgrind wrote no dump');
    const all = dumps.reduce((sum, file) => sum + summaryOf(path.join(folder, file)), 0);
    return { main: summaryOf(path.join(folder, main)) / requests, all: all / requests };
  } finally {
    await stopTree(child, 10_000);
    rmSync(folder, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { requests: { type: 'string', default: '20000' }, warmup: { type: 'string', default: '100000' } } });
  const requests = Number(values.requests);
  const warmup = Number(values.warmup);
  if (which('valgrind') === null || which('callgrind_control') === null) {
    process.stderr.write('bench/instructions.ts needs valgrind (Debian: apt-get install valgrind)\n');
    process.exit(2);
  }
  const targets = (positionals.length > 0 ? positionals : DEFAULT_NAMES).map((name) => {
    const found = target(name);
    if (found === null) {
      process.stderr.write(`unknown server '${name}': c, js, or a model number such as 06\n`);
      process.exit(2);
    }
    return found;
  });
  const site = prepareSite();
  const rows: [string, string, string][] = [];
  let ceiling: number | null = null;
  try {
    for (const item of targets) {
      process.stderr.write(`${item.name}: ${warmup} requests to warm up, then ${requests} counted…\n`);
      const result = await measure(item, site, warmup, requests);
      if ('skip' in result) {
        rows.push([item.name, `skipped: ${result.skip}`, '']);
        continue;
      }
      if (item.name === 'C epoll ceiling') ceiling = result.main;
      const ratio = ceiling === null ? '' : `${(result.main / ceiling).toFixed(1)}× C`;
      rows.push([item.name, `${Math.round(result.main).toLocaleString('en')} (all threads ${Math.round(result.all).toLocaleString('en')})`, ratio]);
    }
  } finally {
    site.remove();
  }
  const width = Math.max(...rows.map(([name]) => name.length));
  process.stdout.write(`user-space instructions per keep-alive request, main thread (${requests} requests, ${CONNECTIONS} connections)\n`);
  for (const [name, count, ratio] of rows) process.stdout.write(`${name.padEnd(width)}  ${count.padEnd(32)} ${ratio}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench/instructions.ts: ${(error as Error).message}\n`);
  process.exit(1);
});
