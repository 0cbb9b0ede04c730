/**
 * bench/load.ts: the load generator, behind one small interface.
 *
 * wrk (C, one epoll loop per thread) when it is on PATH: it needs the least CPU to keep a
 * server busy, which matters when client and server share a 2-core laptop. Otherwise
 * autocannon from node_modules, which runs everywhere Node does, helped by bench/node-client.ts
 * where autocannon 8 falls short (a new connection per request; 64 MiB bodies). Either way the
 * generator runs as a child process whose own CPU time is measured, so the report can show
 * when the client, not the server, was the limit.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { exited, spawnChild, stopTree } from './children.ts';
import { CLOCK_TICKS_PER_SECOND, parseStat, percentOfCore } from './proc.ts';

export interface LoadSpec {
  url: string;
  connections: number;
  seconds: number;
  /** Send `Connection: close`: every request pays for a new connection. */
  closeEachRequest: boolean;
  /** Responses of many megabytes (the generator must not keep them). */
  largeResponses: boolean;
}

export interface LoadResult {
  requests: number;
  requestsPerSecond: number;
  mibPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Failed requests of any kind (connect/read/write errors, timeouts, non-2xx). */
  errors: number;
  /** What the errors were, e.g. "12 timeouts, 3 non-2xx"; empty when none. */
  errorSummary: string;
  /** Of the errors, responses that came with a status other than 2xx (answered, but not served). */
  non2xx: number;
  /** CPU the generator itself used, in percent of one core. */
  generatorCpuPercent: number;
  /** The same as CPU seconds (user + system), to set beside the server's per request. */
  generatorCpuSeconds: number;
}

export interface LoadGenerator {
  name: string;
  version: string;
  run(spec: LoadSpec): Promise<LoadResult>;
}

/** Seconds a request may take before the generator counts it as timed out. */
const REQUEST_TIMEOUT_SECONDS = 5;
const MIB = 1024 * 1024;

/** Pick wrk when installed (unless `preferred` says otherwise), else autocannon. */
export function chooseGenerator(preferred?: 'wrk' | 'autocannon'): LoadGenerator {
  const wrkVersion = preferred === 'autocannon' ? null : commandVersion('wrk', ['--version']);
  if (wrkVersion !== null) return wrk(wrkVersion);
  if (preferred === 'wrk') throw new Error('wrk is not on PATH (Debian: apt-get install wrk)');
  return autocannon();
}

/** First line a command prints about itself, or null when it is not installed. */
function commandVersion(command: string, args: string[]): string | null {
  try {
    // wrk prints its banner and exits 1: take the output either way.
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0]!.trim();
  } catch (error) {
    const output = `${(error as { stdout?: string }).stdout ?? ''}${(error as { stderr?: string }).stderr ?? ''}`;
    return (error as { code?: string }).code === 'ENOENT' || output.trim() === '' ? null : output.split('\n')[0]!.trim();
  }
}

function wrk(banner: string): LoadGenerator {
  const script = fileURLToPath(new URL('./wrk-report.lua', import.meta.url));
  return {
    name: 'wrk',
    version: banner.replace(/\s*Copyright.*$/, ''),
    async run(spec) {
      // One thread: the other core is left to the server. wrk reconnects by itself when a
      // response says `Connection: close`.
      const args = ['-t1', `-c${spec.connections}`, `-d${spec.seconds}s`, `--timeout`, `${REQUEST_TIMEOUT_SECONDS}s`, '-s', script];
      if (spec.closeEachRequest) args.push('-H', 'Connection: close');
      const run = await runMeasured('wrk', [...args, spec.url], spec.seconds);
      const summary = JSON.parse(lastJsonLine(run.stdout, run)) as Record<string, number>;
      const seconds = summary.durationUs! / 1e6;
      const counts: [number, string][] = [
        [summary.connect!, 'connect errors'],
        [summary.read!, 'read errors'],
        [summary.write!, 'write errors'],
        [summary.timeout!, 'timeouts'],
        [summary.status!, 'non-2xx'],
      ];
      return {
        requests: summary.requests!,
        requestsPerSecond: summary.requests! / seconds,
        mibPerSecond: summary.bytes! / MIB / seconds,
        p50Ms: summary.p50Us! / 1000,
        p99Ms: summary.p99Us! / 1000,
        ...errorsOf(counts),
        generatorCpuPercent: run.cpuPercent,
        generatorCpuSeconds: run.cpuSeconds,
      };
    },
  };
}

function autocannon(): LoadGenerator {
  const require = createRequire(import.meta.url);
  const packageFile = require.resolve('autocannon/package.json');
  const version = (JSON.parse(readFileSync(packageFile, 'utf8')) as { version: string }).version;
  const cli = fileURLToPath(new URL('autocannon.js', `file://${packageFile}`));
  return {
    name: 'autocannon',
    version: `autocannon ${version} on Node ${process.version} (bench/node-client.ts for a new connection per request and for the large file); latencies in whole milliseconds`,
    async run(spec) {
      if (spec.closeEachRequest || spec.largeResponses) return nodeClient(spec);
      const args = [cli, '--json', '--no-progress', '-c', `${spec.connections}`, '-d', `${spec.seconds}`, '-t', `${REQUEST_TIMEOUT_SECONDS}`];
      const run = await runMeasured(process.execPath, [...args, spec.url], spec.seconds);
      const summary = JSON.parse(lastJsonLine(run.stdout, run)) as AutocannonSummary;
      const counts: [number, string][] = [
        [summary.errors - summary.timeouts, 'errors'],
        [summary.timeouts, 'timeouts'],
        [summary.non2xx, 'non-2xx'],
      ];
      return {
        requests: summary.requests.total,
        requestsPerSecond: summary.requests.total / summary.duration,
        mibPerSecond: summary.throughput.total / MIB / summary.duration,
        p50Ms: summary.latency.p50,
        p99Ms: summary.latency.p99,
        ...errorsOf(counts),
        generatorCpuPercent: run.cpuPercent,
        generatorCpuSeconds: run.cpuSeconds,
      };
    },
  };
}

async function nodeClient(spec: LoadSpec): Promise<LoadResult> {
  const script = fileURLToPath(new URL('./node-client.ts', import.meta.url));
  const args = ['--import', 'tsx', script, '--url', spec.url, '--connections', `${spec.connections}`, '--seconds', `${spec.seconds}`];
  if (spec.closeEachRequest) args.push('--close');
  args.push('--timeout-ms', `${REQUEST_TIMEOUT_SECONDS * 1000}`);
  const run = await runMeasured(process.execPath, args, spec.seconds);
  const summary = JSON.parse(lastJsonLine(run.stdout, run)) as { requests: number; bytes: number; seconds: number; p50Ms: number; p99Ms: number; errors: Record<string, number> };
  return {
    requests: summary.requests,
    requestsPerSecond: summary.requests / summary.seconds,
    mibPerSecond: summary.bytes / MIB / summary.seconds,
    p50Ms: summary.p50Ms,
    p99Ms: summary.p99Ms,
    ...errorsOf(Object.entries(summary.errors).map(([what, count]) => [count, what])),
    generatorCpuPercent: run.cpuPercent,
    generatorCpuSeconds: run.cpuSeconds,
  };
}

interface AutocannonSummary {
  duration: number;
  requests: { total: number };
  throughput: { total: number };
  latency: { p50: number; p99: number };
  errors: number;
  timeouts: number;
  non2xx: number;
}

function errorsOf(counts: [number, string][]): Pick<LoadResult, 'errors' | 'errorSummary' | 'non2xx'> {
  const nonZero = counts.filter(([count]) => count > 0);
  return {
    non2xx: counts.filter(([, what]) => what === 'non-2xx').reduce((total, [count]) => total + count, 0),
    errors: nonZero.reduce((total, [count]) => total + count, 0),
    errorSummary: nonZero.map(([count, what]) => `${count} ${what}`).join(', '),
  };
}

interface MeasuredRun {
  stdout: string;
  stderr: string;
  cpuPercent: number;
  cpuSeconds: number;
}

/**
 * Run a command under `sh` and read the shell's own /proc stat after the command ends: its
 * cutime/cstime are then exactly the CPU time of the command it waited for.
 */
async function runMeasured(command: string, args: string[], seconds: number): Promise<MeasuredRun> {
  const script = '"$@"; status=$?; echo >&2; cat /proc/$$/stat >&2; exit $status';
  const started = performance.now();
  const child = spawnChild('sh', ['-c', script, 'sh', command, ...args]);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  // A generator that hangs (it should not) is stopped well after its planned end.
  const watchdog = setTimeout(() => void stopTree(child, 1000, 'SIGTERM'), (seconds + 30) * 1000);
  await exited(child);
  clearTimeout(watchdog);
  const elapsed = (performance.now() - started) / 1000;
  const statLine = stderr.trimEnd().split('\n').pop() ?? '';
  const shellStat = /^\d+ \(/.test(statLine) ? parseStat(0, statLine) : null;
  const childTicks = shellStat === null ? 0 : shellStat.cpuTicks;
  return { stdout, stderr: stderr.slice(0, stderr.lastIndexOf(statLine)), cpuPercent: percentOfCore(childTicks, elapsed), cpuSeconds: childTicks / CLOCK_TICKS_PER_SECOND };
}

function lastJsonLine(stdout: string, run: MeasuredRun): string {
  const line = stdout
    .split('\n')
    .reverse()
    .find((text) => text.startsWith('{'));
  if (line === undefined) throw new Error(`the load generator printed no summary: ${(run.stderr || stdout).trim().slice(0, 500)}`);
  return line;
}
