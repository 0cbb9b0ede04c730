/**
 * bench/http-probe.ts: one GET at a time over a raw socket, timed to the last byte of the
 * response, with the body counted rather than kept (it may be 64 MiB). Used to open the idle
 * connections of the C10K scenario, to time a new client, and by bench/node-client.ts.
 */
import net from 'node:net';

export interface Answer {
  status: number;
  /** Bytes of the whole response, head and body. */
  bytes: number;
  ms: number;
}

export interface Probe extends Answer {
  socket: net.Socket;
}

const HEAD_END = Buffer.from('\r\n\r\n');

/**
 * Connect, GET `path`, read the whole response; the socket is left open for the caller (to
 * hold, to reuse, or to close). Rejects with a short reason: 'ECONNRESET', 'timeout'…
 */
export async function getOnNewConnection(host: string, port: number, path: string, timeoutMs: number, extraHeaders = ''): Promise<Probe> {
  const started = performance.now();
  const socket = net.connect({ host, port });
  try {
    const answer = await exchange(socket, `GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\n${extraHeaders}\r\n`, timeoutMs);
    return { ...answer, ms: performance.now() - started, socket };
  } catch (error) {
    socket.destroy();
    throw error;
  }
}

/** Write one request on an open socket and read its whole response (Content-Length framed). */
export function exchange(socket: net.Socket, request: string, timeoutMs: number): Promise<Answer> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    let head = Buffer.alloc(0);
    let status = 0;
    let bodyLeft = -1; // unknown until the head is complete
    let bytes = 0;
    const finish = (settle: () => void) => {
      clearTimeout(timer);
      socket.off('data', onData).off('error', onError).off('close', onClose);
      settle();
    };
    const fail = (reason: string) => finish(() => reject(new Error(reason)));
    const timer = setTimeout(() => fail('timeout'), timeoutMs);
    const onData = (chunk: Buffer) => {
      bytes += chunk.length;
      if (bodyLeft < 0) {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf(HEAD_END);
        if (end < 0) return;
        const text = head.subarray(0, end).toString('latin1');
        status = Number(text.split(' ')[1]);
        bodyLeft = Number(/\r\ncontent-length:\s*(\d+)/i.exec(text)?.[1] ?? 0) - (head.length - end - HEAD_END.length);
      } else {
        bodyLeft -= chunk.length;
      }
      if (bodyLeft <= 0) finish(() => resolve({ status, bytes, ms: performance.now() - started }));
    };
    const onError = (error: NodeJS.ErrnoException) => fail(error.code ?? error.message);
    const onClose = () => fail('closed by the server');
    socket.on('data', onData).on('error', onError).on('close', onClose);
    socket.write(request);
  });
}
