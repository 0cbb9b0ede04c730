/**
 * Node's own HTTP parser (llhttp) as an oracle for the differential test of shared/request-reader.ts:
 * one node:http server on 127.0.0.1 that answers nothing and only writes down, for each connection,
 * the requests llhttp framed and the error it stopped at. One stream of bytes = one connection: the
 * client writes the chunks, ends its side, and the verdict is complete when the server's socket has
 * closed (after an error, or after the end of the stream).
 */
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';

export interface OracleRequest {
  method: string;
  url: string;
  /** e.g. "1.1" */
  version: string;
  /** As received: [name, value, name, value, ...]. */
  rawHeaders: string[];
  /** Whether llhttp would keep the connection open after this request. */
  keepAlive: boolean;
  /** The whole message, body included, arrived. */
  complete: boolean;
}

export interface OracleVerdict {
  requests: OracleRequest[];
  /** llhttp's error code (e.g. "HPE_INVALID_METHOD"), or null when the stream ended cleanly. */
  error: string | null;
  /** The error's reason, for messages. */
  errorReason: string | null;
}

/** What the server learns about one connection. */
interface Connection {
  verdict: OracleVerdict;
  /** The messages behind verdict.requests, to read `complete` from once the connection is over. */
  messages: http.IncomingMessage[];
  closed: Promise<void>;
}

/** How long one stream may take before the test gives up on it (it takes milliseconds). */
const JUDGE_TIMEOUT_MS = 10_000;

export class NodeHttpOracle {
  private readonly server: http.Server;
  /** Server-side connections by the client's port. */
  private readonly connections = new Map<number, Connection>();
  /** judge() calls waiting for the server to see their connection, by client port. */
  private readonly arrivals = new Map<number, (connection: Connection) => void>();

  private constructor(server: http.Server) {
    this.server = server;
  }

  static async start(): Promise<NodeHttpOracle> {
    // requireHostHeader: false, so that llhttp's framing is what we see (the Host rule is checked
    // above the parser in node:http, and the test knows our reader's own rule).
    const server = http.createServer({ requireHostHeader: false, keepAlive: true });
    const oracle = new NodeHttpOracle(server);
    const record = (request: http.IncomingMessage, response: http.ServerResponse): void => {
      const connection = oracle.connections.get(request.socket.remotePort!);
      if (connection === undefined) return;
      const entry: OracleRequest = {
        method: request.method!,
        url: request.url!,
        version: request.httpVersion,
        rawHeaders: request.rawHeaders,
        keepAlive: response.shouldKeepAlive,
        complete: false,
      };
      connection.verdict.requests.push(entry);
      connection.messages.push(request);
      request.resume(); // read (and drop) any body, so the parser moves on to the next request
    };
    server.on('request', record);
    // Without these, node:http would answer an Expect header itself and never emit 'request'.
    server.on('checkContinue', record);
    server.on('checkExpectation', record);
    server.on('connection', (socket: net.Socket) => {
      const port = socket.remotePort!;
      const verdict: OracleVerdict = { requests: [], error: null, errorReason: null };
      const closed = new Promise<void>((resolve) => {
        // One more turn of the event loop, so that node:http's own 'close' handlers run first.
        socket.on('close', () => setImmediate(resolve));
      });
      const connection: Connection = { verdict, messages: [], closed };
      oracle.connections.set(port, connection);
      oracle.arrivals.get(port)?.(connection);
    });
    server.on('clientError', (error: NodeJS.ErrnoException & { reason?: string }, socket: net.Socket) => {
      const connection = oracle.connections.get(socket.remotePort!);
      if (connection !== undefined && connection.verdict.error === null) {
        connection.verdict.error = error.code ?? 'unknown';
        connection.verdict.errorReason = error.reason ?? error.message;
      }
      socket.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return oracle;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Send `chunks` on a fresh connection, end it, and return what llhttp made of them. */
  async judge(chunks: Buffer[]): Promise<OracleVerdict> {
    const socket = net.connect({ port: this.port, host: '127.0.0.1', noDelay: true });
    const clientClosed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.on('error', () => undefined); // a reset after the server's destroy() is expected
    const port = socket.localPort!;
    const connection = this.connections.get(port)
      ?? await new Promise<Connection>((resolve) => this.arrivals.set(port, resolve));
    this.arrivals.delete(port);
    for (const chunk of chunks) socket.write(chunk);
    socket.end();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`node:http did not close the connection within ${JUDGE_TIMEOUT_MS} ms`)), JUDGE_TIMEOUT_MS);
    });
    try {
      await Promise.race([connection.closed, timedOut]);
    } finally {
      clearTimeout(timer);
      this.connections.delete(port);
      socket.destroy();
    }
    await clientClosed;
    // llhttp sets `complete` when it has seen the end of the message, body included.
    connection.messages.forEach((message, index) => {
      connection.verdict.requests[index]!.complete = message.complete;
    });
    return connection.verdict;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
