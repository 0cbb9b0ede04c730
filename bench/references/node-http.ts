/**
 * bench/references/node-http.ts: the static server a Node tutorial writes (node:http and
 * fs.readFile, nothing cached), as the bench's yardstick for 03-coroutine.
 *
 *   npx tsx bench/references/node-http.ts [--port N] [--root DIR] [--idle-timeout S]
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import mime from 'mime-types';
import { announce, exitOnListenError, onShutdown, parseCommandLine } from '../../shared/cli.ts';

const options = parseCommandLine('node-http', 'reference static server: node:http + fs.readFile');
const root = path.resolve(options.root);

const server = http.createServer(async (request, response) => {
  try {
    const { pathname } = new URL(request.url ?? '/', 'http://localhost');
    const file = path.join(root, decodeURIComponent(pathname), pathname.endsWith('/') ? 'index.html' : '');
    if (!file.startsWith(root + path.sep)) return void response.writeHead(403).end();
    const body = await readFile(file);
    const type = mime.contentType(path.extname(file)) || 'application/octet-stream';
    response.writeHead(200, { 'Content-Type': type, 'Content-Length': body.length }).end(body);
  } catch {
    response.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
  }
});
server.keepAliveTimeout = options.idleTimeoutMs; // the same idle limit every model gets
server.on('error', (error) => exitOnListenError(options, error));
server.listen(options.port, options.host, () => {
  const { address, port } = server.address() as AddressInfo;
  announce(options, { host: address, port });
});
onShutdown(() => server.close());
