/**
 * bench/hold-connections.ts: the C10K client. Opens N keep-alive connections to a server,
 * sends one GET on each and reads the whole response (so the server really accepted and served
 * it), then holds them all open and idle while the bench measures the server.
 *
 *   node --import tsx bench/hold-connections.ts --port 7890 --count 10000
 *
 * It runs as its own process so that its sockets and memory are not the bench's. It prints
 * one JSON line when every connection is held or has failed; then each line "status" on stdin
 * prints how many are still open, and "grow N" opens more until N are held in all (another
 * such line follows). It exits when stdin closes (the bench ended or died).
 */
import { parseArgs } from 'node:util';
import type net from 'node:net';
import { getOnNewConnection } from './http-probe.ts';

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    count: { type: 'string' },
    path: { type: 'string', default: '/hello.txt' },
    // Connections being opened at once: enough to be quick, few enough not to overflow the
    // server's listen backlog (an overflowing SYN is retried only after a second).
    parallel: { type: 'string', default: '100' },
    'timeout-ms': { type: 'string', default: '20000' },
    // Stop trying once this many have failed: a server at its limit says so quickly enough.
    'give-up-after': { type: 'string', default: '200' },
  },
});
const port = Number(values.port);
let count = Number(values.count);
const parallel = Number(values.parallel);
const timeoutMs = Number(values['timeout-ms']);
const giveUpAfter = Number(values['give-up-after']);

const held = new Set<net.Socket>();
const failures = new Map<string, number>();
let failed = 0;
let dropped = 0;
let started = 0;

async function openOne(): Promise<void> {
  try {
    const { socket, status } = await getOnNewConnection(values.host!, port, values.path!, timeoutMs);
    if (status !== 200) throw new Error(`status ${status}`);
    held.add(socket);
    socket.on('error', () => undefined);
    socket.once('close', () => {
      held.delete(socket);
      dropped += 1;
    });
  } catch (error) {
    failed += 1;
    const reason = (error as Error).message;
    failures.set(reason, (failures.get(reason) ?? 0) + 1);
  }
}

async function opener(): Promise<void> {
  while (started < count && failed < giveUpAfter) {
    started += 1;
    await openOne();
  }
}

/** Open connections until `count` were tried (or too many failed), then say how it went. */
async function openAll(): Promise<void> {
  await Promise.all(Array.from({ length: Math.max(1, Math.min(parallel, count - started)) }, opener));
  const reasons = Object.fromEntries(failures);
  process.stdout.write(`${JSON.stringify({ event: 'ready', held: held.size, failed, notTried: count - started, dropped, reasons })}\n`);
}

await openAll();

process.stdin.setEncoding('utf8');
process.stdin.on('data', (text: string) => {
  for (const line of text.split('\n')) {
    if (line.trim() === 'status') process.stdout.write(`${JSON.stringify({ event: 'status', held: held.size, dropped })}\n`);
    const grow = /^grow (\d+)$/.exec(line.trim());
    if (grow !== null) {
      // The ones held now, plus the ones still missing; those that failed before are not retried.
      count = started + Math.max(0, Number(grow[1]) - held.size);
      void openAll();
    }
  }
});
process.stdin.on('end', () => {
  for (const socket of held) socket.destroy();
  process.exit(0);
});
