// A self-check, not a test: how many requests per second the shared core
// manages in-process (framing + handleRequest + Outbox) for pipelined GETs of
// a small cached file. No network, no server model: this is the ceiling that
// the models' own I/O then eats into. Nothing is asserted (timing depends on
// the machine); run it and look:
//
//     npx tsx bench/hot-path-speed.ts
//
// The interesting comparison is between runs before and after a change to
// shared/*.ts: a slower number means the hot path picked up work.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RequestReader } from '../shared/request-reader.ts';
import { handleRequest } from '../shared/handle-request.ts';
import { Outbox } from '../shared/outbox.ts';
import { StaticSite } from '../shared/static-site.ts';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'hot-path-'));
fs.writeFileSync(path.join(root, 'index.html'), `<!doctype html><title>hi</title>${'x'.repeat(1000)}\n`);
const site = new StaticSite(root);

// What load generators send: wrk/autocannon style, and a browser-like one.
const SHORT_REQUEST = 'GET / HTTP/1.1\r\nHost: localhost:8080\r\n\r\n';
const BROWSER_REQUEST = 'GET /index.html?v=1 HTTP/1.1\r\n'
  + 'Host: localhost:8080\r\n'
  + 'User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n'
  + 'Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n'
  + 'Accept-Language: en-US,en;q=0.5\r\n'
  + 'Accept-Encoding: gzip, deflate, br\r\n'
  + 'Connection: keep-alive\r\n'
  + 'Upgrade-Insecure-Requests: 1\r\n'
  + '\r\n';

function measure(label: string, request: string, pipelined: number, seconds: number): void {
  const chunk = Buffer.from(request.repeat(pipelined), 'latin1');
  const reader = new RequestReader();
  const outbox = new Outbox();
  let requests = 0;
  let sentBytes = 0;
  const deadline = performance.now() + seconds * 1000;
  const started = performance.now();
  while (performance.now() < deadline) {
    for (let round = 0; round < 100; round++) {
      reader.push(chunk);
      for (let parsed = reader.next(); parsed !== null; parsed = reader.next()) {
        const response = handleRequest(parsed, site);
        if (response.status !== 200) throw new Error(`unexpected status ${response.status}`);
        outbox.push(response);
        requests += 1;
      }
      while (!outbox.isEmpty) {
        const piece = outbox.peek();
        sentBytes += piece.length; // pretend the kernel took all of it
        outbox.consumed(piece.length);
      }
    }
  }
  const elapsed = (performance.now() - started) / 1000;
  const perSecond = Math.round(requests / elapsed).toLocaleString('en');
  console.log(`${label.padEnd(34)} ${perSecond.padStart(12)} requests/s  (${Math.round(sentBytes / requests)} bytes each)`);
}

measure('short GET, 1 per push', SHORT_REQUEST, 1, 1.5);
measure('short GET, 16 pipelined per push', SHORT_REQUEST, 16, 1.5);
measure('browser-like GET, 1 per push', BROWSER_REQUEST, 1, 1.5);
measure('browser-like GET, 16 pipelined', BROWSER_REQUEST, 16, 1.5);

fs.rmSync(root, { recursive: true, force: true });
