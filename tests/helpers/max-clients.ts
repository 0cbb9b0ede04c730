/**
 * The cap of 01 and 02 (--max-clients): a model started with `--max-clients 2` serves two held
 * connections, each with its own process or thread; a third client connects (the kernel completes
 * the handshake and queues it) but is not served until one of the two leaves, and no third
 * process or thread is started meanwhile. `serving` counts the model's processes or threads that
 * serve connections; it is sampled throughout.
 */
import assert from 'node:assert/strict';
import { GET, RawClient } from './http-client.ts';
import type { RunningServer } from './server.ts';

export async function assertCapOfTwo(capped: RunningServer, serving: () => number, units: 'processes' | 'threads'): Promise<void> {
  let most = serving();
  const sampler = setInterval(() => (most = Math.max(most, serving())), 20);
  const clients: RawClient[] = [];
  try {
    while (clients.length < 2) clients.push(await RawClient.connect(capped.port));
    for (const client of clients) {
      await client.send(GET('/hello.txt'));
      assert.equal((await client.readResponse({ timeoutMs: 15_000 })).status, 200);
    }
    assert.equal(serving(), 2, `${units} serving the two clients`);
    await capped.waitForOutput(/2 connections, the --max-clients cap: new clients wait in the listen queue/);
    const third = await RawClient.connect(capped.port);
    clients.push(third);
    await third.send(GET('/hello.txt'));
    await assert.rejects(third.readResponse({ timeoutMs: 1000 }), /timed out/, `served while two ${units} were busy`);
    clients[0]!.close();
    assert.equal((await third.readResponse({ timeoutMs: 15_000 })).status, 200);
    await capped.waitForOutput(/a connection ended: accepting again/);
  } finally {
    clearInterval(sampler);
    for (const client of clients) client.close();
  }
  assert.ok(most <= 2, `${most} ${units} served connections at one moment, with the cap at 2`);
}
