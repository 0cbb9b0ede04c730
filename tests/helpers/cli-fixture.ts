/**
 * The smallest program that starts the way every model does: read the command line, listen,
 * announce, and stop on a signal. tests/cli.test.ts runs it to see exit codes and output.
 */
import { parseCommandLine, exitOnListenError, announce, onShutdown } from '../../shared/cli.ts';
import { Socket } from '../../shared/libc.ts';
import { log } from '../../shared/log.ts';

const options = parseCommandLine('cli-fixture', 'a test program', [
  { name: 'pool', valueName: 'N', help: 'processes to start', default: 0, min: 0, max: 64 },
  { name: 'connection-fd', valueName: 'FD', help: 'internal', default: -1, min: 0, max: 65535, hidden: true },
]);
let server: Socket;
try {
  server = Socket.listenTCP(options.host, options.port);
} catch (error) {
  exitOnListenError(options, error);
}
announce(options, server.getsockname());
log(`pool=${options.extra.pool}`);
onShutdown(() => server.close());
setInterval(() => undefined, 1000);
