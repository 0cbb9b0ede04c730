/**
 * shared/ts-worker.ts: start a worker thread (node:worker_threads) that runs a TypeScript file.
 *
 * `npx tsx FILE.ts` teaches the main thread to load TypeScript, but a worker thread is a fresh
 * JavaScript engine (a V8 isolate) that knows nothing of that: `new Worker('x.ts')` fails with
 * ERR_UNKNOWN_FILE_EXTENSION. So the worker first runs a one-line bootstrap that registers tsx's
 * loader in itself and then imports the file. That registration is not free: Node 20 runs
 * module loaders on a thread of their own, so each such worker is really two new threads and
 * two isolates (02-multithread.ts measures what that costs).
 */
import { Worker } from 'node:worker_threads';

// Resolved here, once, so the bootstrap works whatever the current directory is.
const TSX_API_URL = import.meta.resolve('tsx/esm/api');

/** A Worker running the module at `url` (a .ts file works too), with `workerData`. */
export function startTsWorker(url: string | URL, workerData: unknown): Worker {
  const href = url.toString();
  if (!href.endsWith('.ts')) return new Worker(new URL(href), { workerData });
  const bootstrap =
    `import(${JSON.stringify(TSX_API_URL)})` +
    `.then((tsx) => { tsx.register(); return import(${JSON.stringify(href)}); })`;
  return new Worker(bootstrap, { eval: true, workerData });
}
