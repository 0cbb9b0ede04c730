/**
 * Client-side helpers for tests: a raw TCP client that reads responses exactly as framed by
 * Content-Length (so a test can see pipelining, keep-alive and close), and a node-fetch agent
 * that counts the sockets it opens (so a test can prove a connection was reused).
 */
import net from 'node:net';
import http from 'node:http';
import fetch from 'node-fetch';

/** The text of a minimal HTTP/1.1 GET, with optional extra header lines (each ending in CRLF). */
export function GET(target: string, extraHeaderLines = ''): string {
  return `GET ${target} HTTP/1.1\r\nHost: test\r\n${extraHeaderLines}\r\n`;
}

export interface RawResponse {
  status: number;
  statusLine: string;
  /** Lower-cased names. */
  headers: Record<string, string>;
  body: Buffer;
}

export class RawClient {
  private buffered = Buffer.alloc(0);
  private ended = false;
  private wake: (() => void) | null = null;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      this.wake?.();
    });
    const onEnd = () => {
      this.ended = true;
      this.wake?.();
    };
    socket.on('end', onEnd);
    socket.on('close', onEnd);
    socket.on('error', onEnd);
  }

  static connect(port: number, host = '127.0.0.1'): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, host, () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  send(data: string | Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(data, (error) => (error ? reject(error) : resolve())));
  }

  /** Bytes received and not yet consumed by readResponse(). */
  get pending(): Buffer {
    return this.buffered;
  }

  private async waitFor<T>(attempt: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const result = attempt();
      if (result !== undefined) return result;
      if (this.ended) throw new Error(`connection closed while waiting for ${what}; had: ${JSON.stringify(this.buffered.toString('latin1').slice(0, 200))}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = null;
    }
  }

  /** Read one complete response; `forHead` means no body follows whatever Content-Length says. */
  readResponse(options: { forHead?: boolean; timeoutMs?: number } = {}): Promise<RawResponse> {
    return this.waitFor(() => this.takeResponse(options.forHead ?? false), options.timeoutMs ?? 10_000, 'a response');
  }

  private takeResponse(forHead: boolean): RawResponse | undefined {
    const headEnd = this.buffered.indexOf('\r\n\r\n');
    if (headEnd < 0) return undefined;
    const [statusLine = '', ...fieldLines] = this.buffered.subarray(0, headEnd).toString('latin1').split('\r\n');
    const headers: Record<string, string> = {};
    for (const line of fieldLines) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
    }
    const status = Number(statusLine.split(' ')[1]);
    const bodyLength = forHead || status === 304 ? 0 : Number(headers['content-length'] ?? 0);
    const total = headEnd + 4 + bodyLength;
    if (this.buffered.length < total) return undefined;
    const body = Buffer.from(this.buffered.subarray(headEnd + 4, total));
    this.buffered = this.buffered.subarray(total);
    return { status, statusLine, headers, body };
  }

  /** True if the server closes the connection within `timeoutMs`, false if it stays open. */
  async closedByServer(timeoutMs = 3000): Promise<boolean> {
    try {
      await this.waitFor(() => (this.ended ? true : undefined), timeoutMs, 'the server to close');
      return true;
    } catch (error) {
      if (this.ended) return true;
      if (/timed out/.test((error as Error).message)) return false;
      throw error;
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Send `request` on a fresh connection and read one response. */
export async function rawExchange(port: number, request: string | Buffer, options: { forHead?: boolean } = {}): Promise<RawResponse> {
  const client = await RawClient.connect(port);
  try {
    await client.send(request);
    return await client.readResponse(options);
  } finally {
    client.close();
  }
}

/** A keep-alive agent for node-fetch that counts the TCP connections it had to open. */
class CountingAgent extends http.Agent {
  connectionsOpened = 0;

  constructor() {
    super({ keepAlive: true, maxSockets: 1 });
  }

  override createConnection(...args: Parameters<http.Agent['createConnection']>): ReturnType<http.Agent['createConnection']> {
    this.connectionsOpened++;
    return super.createConnection(...args);
  }
}

/** Open `count` connections, `batch` at a time, and send nothing on them. */
export async function openIdleConnections(port: number, count: number, batch = 100): Promise<RawClient[]> {
  const clients: RawClient[] = [];
  while (clients.length < count) {
    const size = Math.min(batch, count - clients.length);
    clients.push(...(await Promise.all(Array.from({ length: size }, () => RawClient.connect(port)))));
  }
  return clients;
}

export interface KeepAliveResult {
  /** TCP connections node-fetch had to open for all the requests (1 when keep-alive works). */
  connectionsOpened: number;
  statuses: number[];
  /** The Connection header of each response. */
  connectionHeaders: (string | null)[];
}

/** GET each target in turn with node-fetch over one keep-alive agent, reading every body. */
export async function fetchWithKeepAlive(baseUrl: string, targets: string[]): Promise<KeepAliveResult> {
  const agent = new CountingAgent();
  const result: KeepAliveResult = { connectionsOpened: 0, statuses: [], connectionHeaders: [] };
  try {
    for (const target of targets) {
      const response = await fetch(new URL(target, baseUrl), { agent });
      result.statuses.push(response.status);
      result.connectionHeaders.push(response.headers.get('connection'));
      await response.arrayBuffer();
    }
    result.connectionsOpened = agent.connectionsOpened;
    return result;
  } finally {
    agent.destroy();
  }
}
