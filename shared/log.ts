/**
 * shared/log.ts: one line per event, prefixed with the model's name.
 *
 * By default a model logs what a reader should notice: its start, every error response and
 * every connection it had to drop, each with the reason. `--verbose` adds the article's
 * "客户端 OnLine / OffLine" lines and every request, which is fun to watch but slows a benchmark.
 * Writes to a file or a terminal are synchronous. Writes to a pipe (a test or the benchmark
 * reading the output) are asynchronous on Linux (Node's docs, "A note on process I/O"): libuv
 * writes at once what the pipe takes and queues the rest, so a line can be lost at exit only
 * when the reader has stopped reading and the pipe is full.
 */
let prefix = 'server';
let verboseEnabled = false;

export function configureLog(modelName: string, verbose: boolean): void {
  prefix = modelName;
  verboseEnabled = verbose;
}

/** A line the reader should always see. */
export function log(message: string): void {
  process.stdout.write(`${prefix}: ${message}\n`);
}

/** A line only `--verbose` shows. */
export function debug(message: string): void {
  if (verboseEnabled) log(message);
}

export function isVerbose(): boolean {
  return verboseEnabled;
}

/** A peer for a log line: "127.0.0.1:5000", or "[::1]:5000" for IPv6. */
export function formatAddress({ host, port }: { host: string; port: number }): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The message of anything thrown, without a stack trace. */
export function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
