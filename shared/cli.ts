/**
 * shared/cli.ts: the command line every model shares, and the start and stop of a server.
 *
 *   npx tsx 05-select.ts [--port N] [--host H] [--root DIR] [--idle-timeout S] [--request-timeout S] [--verbose] [--trace]
 *
 * The article binds to all interfaces on port 7890 (or 8080). We keep 7890 for every model but
 * listen on 127.0.0.1 unless asked otherwise: a teaching server should not be reachable from
 * the whole network by accident. `--host 0.0.0.0` is the article's behaviour, on request.
 */
import { parseArgs } from 'node:util';
import { accessSync, constants, statSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { configureLog, log } from './log.ts';

export const DEFAULT_PORT = 7890;
export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_ROOT = fileURLToPath(new URL('../www/', import.meta.url));
export const DEFAULT_IDLE_TIMEOUT_SECONDS = 30;
/**
 * How long a request may take to arrive, from its first byte: nginx's client_header_timeout and
 * Node's headersTimeout are 60 s too. Long enough for a person typing a request into `nc` by
 * hand; a client trickling a byte at a time holds a connection no longer than this.
 */
export const DEFAULT_REQUEST_TIMEOUT_SECONDS = 60;

/** A whole-number flag that only some models have, such as `--interval MS` or `--pool N`. */
export interface ExtraFlag {
  name: string;
  valueName: string;
  help: string;
  default: number;
  min: number;
  max: number;
  /** Internal flags (a parent telling its child which fd to serve) stay out of --help. */
  hidden?: boolean;
}

export interface ServerOptions {
  model: string;
  host: string;
  port: number;
  root: string;
  idleTimeoutMs: number;
  /** A request (head and body) must arrive within this of its first byte, or it gets a 408. */
  requestTimeoutMs: number;
  verbose: boolean;
  /** Narrate the lesson's system calls on stderr (shared/trace.ts); decided once, at start. */
  trace: boolean;
  /** Values of the model's own ExtraFlags, by name. */
  extra: Record<string, number>;
}

/** A mistake on the command line: reported as one line, exit code 2. */
export class UsageError extends Error {}

/**
 * Parse `argv` without side effects: returns the options, 'help', or throws a UsageError.
 * `defaultRoot` is the folder served without --root (a test can point it elsewhere).
 */
export function parseArguments(
  model: string,
  argv: string[],
  extraFlags: ExtraFlag[] = [],
  defaultRoot = DEFAULT_ROOT,
): ServerOptions | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        port: { type: 'string' },
        host: { type: 'string' },
        root: { type: 'string' },
        'idle-timeout': { type: 'string' },
        'request-timeout': { type: 'string' },
        verbose: { type: 'boolean' },
        trace: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        ...Object.fromEntries(extraFlags.map((flag) => [flag.name, { type: 'string' as const }])),
      },
    });
  } catch (error) {
    // parseArgs explains itself well ("Unknown option '--prot'"); keep its first sentence.
    const firstSentence = (error as Error).message.split('\n')[0]!.split('. ')[0]!;
    throw new UsageError(firstSentence.replace(/\.$/, ''));
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  if (values.help) return 'help';

  const extra: Record<string, number> = {};
  for (const flag of extraFlags) {
    extra[flag.name] = parseWholeNumber(`--${flag.name}`, values[flag.name] as string | undefined, flag.default, flag.min, flag.max);
  }
  return {
    model,
    host: parseHost(values.host as string | undefined),
    port: parseWholeNumber('--port', values.port as string | undefined, DEFAULT_PORT, 0, 65535),
    root: parseRoot(values.root as string | undefined, defaultRoot),
    idleTimeoutMs:
      1000 * parseWholeNumber('--idle-timeout', values['idle-timeout'] as string | undefined, DEFAULT_IDLE_TIMEOUT_SECONDS, 1, 86400),
    requestTimeoutMs:
      1000 * parseWholeNumber('--request-timeout', values['request-timeout'] as string | undefined, DEFAULT_REQUEST_TIMEOUT_SECONDS, 1, 86400),
    verbose: values.verbose === true,
    trace: values.trace === true,
    extra,
  };
}

function parseWholeNumber(flag: string, text: string | undefined, fallback: number, min: number, max: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < min || value > max) {
    throw new UsageError(`${flag} wants a whole number from ${min} to ${max}, not '${text}'`);
  }
  return value;
}

function parseHost(text: string | undefined): string {
  if (text === undefined) return DEFAULT_HOST;
  if (text === 'localhost') return '127.0.0.1';
  if (isIP(text) === 0) throw new UsageError(`--host wants an IP address such as 127.0.0.1, 0.0.0.0 or ::1, not '${text}'`);
  return text;
}

/**
 * The folder to serve must exist and be readable now, not at the first request: a copy of one
 * numbered file and shared/ (homework) has no www/ next to it, and the way out is one flag.
 */
function parseRoot(text: string | undefined, defaultRoot: string): string {
  if (text === undefined) {
    if (!isReadableFolder(defaultRoot)) {
      throw new UsageError(`there is no www/ folder to serve at ${defaultRoot}; serve a folder of your own with --root DIR`);
    }
    return defaultRoot;
  }
  const root = path.resolve(text);
  if (!statSync(root, { throwIfNoEntry: false })?.isDirectory()) throw new UsageError(`--root '${text}' is not a directory`);
  if (!isReadableFolder(root)) throw new UsageError(`--root '${text}' cannot be read (check its permissions)`);
  return root;
}

function isReadableFolder(folder: string): boolean {
  try {
    if (!statSync(folder).isDirectory()) return false;
    accessSync(folder, constants.R_OK | constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function usage(model: string, summary: string, extraFlags: ExtraFlag[] = []): string {
  const flags: [string, string][] = [
    ['--port N', `port to listen on (default ${DEFAULT_PORT}; 0 picks any free port)`],
    ['--host H', `address to listen on (default ${DEFAULT_HOST}; 0.0.0.0 for every interface)`],
    ['--root DIR', 'folder to serve (default www/ of this repository)'],
    ['--idle-timeout S', `close a connection that sends nothing for S seconds (default ${DEFAULT_IDLE_TIMEOUT_SECONDS})`],
    ['--request-timeout S', `408 and close if a request is not all there S seconds after its first byte (default ${DEFAULT_REQUEST_TIMEOUT_SECONDS})`],
  ];
  for (const flag of extraFlags) {
    if (!flag.hidden) flags.push([`--${flag.name} ${flag.valueName}`, `${flag.help} (default ${flag.default})`]);
  }
  flags.push(
    ['--verbose', 'log every connection and request'],
    ['--trace', 'narrate each system call of the lesson on stderr, strace-like: for a few'],
    ['', 'connections by hand (it slows the server; past 1000 lines a second it drops lines)'],
    ['--help', 'show this help'],
  );
  const lines = [`${model}: ${summary}`, '', `usage: npx tsx ${model}.ts [options]`, ''];
  for (const [flag, meaning] of flags) lines.push(`  ${flag.padEnd(21)}${meaning}`);
  lines.push('');
  return lines.join('\n');
}

/**
 * Read the command line, or exit: --help prints usage (exit 0); a mistake prints one line
 * (exit 2), never a stack trace.
 */
export function parseCommandLine(model: string, summary: string, extraFlags: ExtraFlag[] = []): ServerOptions {
  try {
    const options = parseArguments(model, process.argv.slice(2), extraFlags);
    if (options === 'help') {
      process.stdout.write(usage(model, summary, extraFlags));
      process.exit(0);
    }
    configureLog(model, options.verbose);
    return options;
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`${model}: ${error.message} (see --help)\n`);
    process.exit(2);
  }
}

/** Turn a failed bind/listen into one line a person can act on, and exit with code 2. */
export function exitOnListenError(options: ServerOptions, error: unknown): never {
  const code = (error as { code?: string }).code;
  const where = `${options.host} port ${options.port}`;
  const reasons: Record<string, string> = {
    EADDRINUSE: `${where} is already in use (is another model still running? try --port 0)`,
    EACCES: `not allowed to listen on ${where} (ports below 1024 need root)`,
    EADDRNOTAVAIL: `${options.host} is not an address of this machine`,
  };
  process.stderr.write(`${options.model}: cannot listen: ${reasons[code ?? ''] ?? (error as Error).message}\n`);
  process.exit(2);
}

/**
 * A model's main() failed: that is a bug in this program, not the reader's mistake, so say so
 * with the stack and exit 1, as an uncaught error would.
 */
export function exitOnCrash(error: unknown): never {
  log(`crashed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exit(1);
}

/** The one start line: which folder, which real URL (port 0 becomes the chosen port), which pid. */
export function announce(options: ServerOptions, address: { host: string; port: number }): void {
  const relative = path.relative(process.cwd(), options.root);
  const shownRoot = relative === '' ? './' : relative.startsWith('..') || path.isAbsolute(relative) ? options.root : `${relative}/`;
  const host = address.host.includes(':') ? `[${address.host}]` : address.host;
  log(`serving ${shownRoot} on http://${host}:${address.port}/ (pid ${process.pid}; Ctrl+C stops)`);
}

/**
 * Run `cleanup` once on Ctrl+C (SIGINT), SIGTERM or a closed terminal (SIGHUP), then exit.
 * A JavaScript signal handler runs only when Node's event loop gets a turn, so a model whose
 * loop blocks in a system call must return to the event loop now and then (see 04–06).
 */
export function onShutdown(cleanup: () => void): void {
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: stopping`);
    try {
      cleanup();
    } finally {
      process.exit(0);
    }
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, stop);
}
