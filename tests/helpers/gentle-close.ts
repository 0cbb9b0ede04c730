/**
 * A server that decides to close while the client is still sending must close gently
 * (RFC 9112 §9.6): send its FIN, read and throw away what still comes, and close once the
 * client has closed too. A plain close() with unread bytes makes the kernel answer with a
 * reset, and a reset can destroy a response the client has not read yet.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** A head over 8 KiB (431, then the server closes), and then more bytes from the client. */
export async function assertClosesGentlyAfterA431(port: number): Promise<void> {
  // allowHalfOpen: our side stays open after the server's FIN, as a client still sending is.
  const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  let received = Buffer.alloc(0);
  let failure: string | null = null;
  socket.on('data', (chunk) => (received = Buffer.concat([received, chunk])));
  socket.on('error', (error: NodeJS.ErrnoException) => (failure ??= error.code ?? error.message));
  const serverEnded = new Promise<void>((resolve) => socket.once('end', resolve));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  try {
    socket.write(`GET / HTTP/1.1\r\nHost: test\r\nX-Long: ${'a'.repeat(10_000)}\r\n\r\n`);
    await Promise.race([serverEnded, closed]);
    const response = received.toString('latin1');
    assert.match(response, /^HTTP\/1\.1 431 /, `no 431: ${JSON.stringify(response.slice(0, 100))} (${failure})`);
    // The rest of the client's request arrives after the server has decided to close. A
    // server that has closed its socket answers these bytes with a reset.
    socket.write(Buffer.alloc(20_000, 'b'));
    await sleep(300); // time for a reset to come back over loopback, if one is coming
    // One more byte shows what the server did: after a reset, this write fails (EPIPE).
    await new Promise<void>((resolve) =>
      socket.write('b', (error?: NodeJS.ErrnoException | null) => {
        if (error) failure ??= error.code ?? error.message;
        resolve();
      }),
    );
    socket.end();
    await closed;
    assert.equal(failure, null, 'the server reset the connection instead of closing it gently');
    const [head = '', body = ''] = response.split('\r\n\r\n');
    assert.equal(Buffer.byteLength(body, 'latin1'), Number(/content-length: (\d+)/i.exec(head)?.[1]), 'the 431 arrived whole');
  } finally {
    socket.destroy();
  }
}
