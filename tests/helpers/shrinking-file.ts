/**
 * A file that shrinks while it is being sent (after its length went into Content-Length): the
 * model can neither finish the body nor send anything else on that connection, so it must
 * close it with a log line saying the file shrank, and go on serving everybody else.
 */
import assert from 'node:assert/strict';
import { rmSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { GET, RawClient, rawExchange } from './http-client.ts';
import type { RunningServer } from './server.ts';

export async function assertShrinkingFileEndsOnlyItsDownload(server: RunningServer, root: string): Promise<void> {
  const file = path.join(root, 'shrinking.bin');
  const size = 32 * 1024 * 1024;
  writeFileSync(file, Buffer.alloc(size, 0x61));
  const client = await RawClient.connect(server.port);
  try {
    client.socket.pause();
    await client.send(GET('/shrinking.bin'));
    await new Promise((resolve) => setTimeout(resolve, 300)); // socket buffers fill up
    truncateSync(file, 1024 * 1024);
    client.socket.resume();
    assert.equal(await client.closedByServer(10_000), true, 'the server closes the download');
    const received = client.pending.length;
    assert.ok(received < size, `only part of the file can have arrived (got ${received} bytes)`);
    await server.waitForOutput(/shrank/, 5000);
    assert.equal((await rawExchange(server.port, GET('/hello.txt'))).status, 200);
  } finally {
    client.close();
    rmSync(file, { force: true });
  }
}
