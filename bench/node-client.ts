/**
 * bench/node-client.ts: a small load generator for the two jobs autocannon 8 does badly, used
 * only when wrk is not installed:
 *   - a new connection for every request: autocannon writes its next request on the socket
 *     the server is closing, then times the reply against the wrong request;
 *   - large files: autocannon appends every body to a string, so the client is the limit.
 *
 *   node --import tsx bench/node-client.ts --url URL --connections 10 --seconds 5 [--close]
 *
 * Prints one JSON line: requests, bytes, seconds, p50Ms, p99Ms and errors by kind.
 */
import { parseArgs } from 'node:util';
import type net from 'node:net';
import { exchange, getOnNewConnection, type Answer } from './http-probe.ts';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    connections: { type: 'string', default: '10' },
    seconds: { type: 'string', default: '5' },
    close: { type: 'boolean', default: false },
    'timeout-ms': { type: 'string', default: '5000' },
  },
});
const url = new URL(values.url!);
const host = url.hostname;
const port = Number(url.port);
const path = url.pathname;
const timeoutMs = Number(values['timeout-ms']);
const closeHeader = values.close ? 'Connection: close\r\n' : '';
const request = `GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\n${closeHeader}\r\n`;

const latencies: number[] = [];
const errors: Record<string, number> = {};
let bytes = 0;

function record(answer: Answer): void {
  latencies.push(answer.ms);
  bytes += answer.bytes;
  if (answer.status < 200 || answer.status > 299) errors['non-2xx'] = (errors['non-2xx'] ?? 0) + 1;
}

/** One simulated client: GET after GET until the time is up, reconnecting when asked to or needed. */
async function client(deadline: number): Promise<void> {
  let socket: net.Socket | null = null;
  while (performance.now() < deadline) {
    try {
      if (socket === null) {
        const probe = await getOnNewConnection(host, port, path, timeoutMs, closeHeader);
        record(probe);
        socket = probe.socket;
      } else {
        record(await exchange(socket, request, timeoutMs));
      }
      if (values.close) {
        socket.destroy();
        socket = null;
      }
    } catch (error) {
      const reason = (error as Error).message;
      errors[reason] = (errors[reason] ?? 0) + 1;
      socket?.destroy();
      socket = null;
    }
  }
  socket?.destroy();
}

const started = performance.now();
const deadline = started + Number(values.seconds) * 1000;
await Promise.all(Array.from({ length: Number(values.connections) }, () => client(deadline)));
const seconds = (performance.now() - started) / 1000;
latencies.sort((a, b) => a - b);
const percentile = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? 0;
process.stdout.write(`${JSON.stringify({ requests: latencies.length, bytes, seconds, p50Ms: percentile(50), p99Ms: percentile(99), errors })}\n`);
