/**
 * The crowd test of the event-loop lessons (06, 07): a model holds thousands of idle
 * connections, one descriptor each, while fresh clients and members of the crowd still get
 * exact bytes; every descriptor is released once the crowd leaves.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { openFdCount } from './proc.ts';
import { GET, openIdleConnections, rawExchange } from './http-client.ts';
import { REPO_ROOT, waitUntil, type RunningServer } from './server.ts';

const WWW = path.join(REPO_ROOT, 'www');

/**
 * Open `count` idle connections to `model` (give it a long --idle-timeout). Once all are
 * accepted, `whileHeld` checks what the model's own mechanism shows of them (an epoll interest
 * list, armed receives in a ring...); then the server must go on serving everybody.
 */
export async function holdIdleCrowd(model: RunningServer, count: number, whileHeld: () => Promise<void> | void): Promise<void> {
  const before = openFdCount(model.pid);
  const idle = await openIdleConnections(model.port, count);
  try {
    const allAccepted = await waitUntil(() => openFdCount(model.pid) >= before + count, 15_000);
    assert.ok(allAccepted, `the server holds ${openFdCount(model.pid) - before} more descriptors, not ${count}`);
    await whileHeld();

    const index = readFileSync(path.join(WWW, 'index.html'));
    for (let i = 0; i < 20; i++) {
      const response = await rawExchange(model.port, GET('/'));
      assert.equal(response.status, 200);
      assert.deepEqual(response.body, index);
    }
    // And the crowd is still connected and can be served too.
    for (const client of [idle[0]!, idle[Math.floor(count / 2)]!, idle[count - 1]!]) {
      await client.send(GET('/hello.txt'));
      assert.deepEqual((await client.readResponse()).body, readFileSync(path.join(WWW, 'hello.txt')));
    }
  } finally {
    for (const client of idle) client.close();
  }
  const released = await waitUntil(() => openFdCount(model.pid) <= before + 5, 15_000);
  assert.ok(released, `still ${openFdCount(model.pid) - before} descriptors more than before the crowd`);
}
