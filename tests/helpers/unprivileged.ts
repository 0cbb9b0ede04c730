/**
 * Permission tests need a user whom the file system can refuse. Tests often run as root (CI,
 * containers), and root reads every file whatever its mode. So, as root, the command under
 * test runs as nobody (uid and gid 65534) through setpriv(1), from util-linux; as anyone else
 * it runs as is. `prefix` goes before the command; `skip` says why no such user can be had.
 *
 * The unprivileged command runs without NODE_V8_COVERAGE (c8's coverage folder belongs to
 * root, and nobody could not write its report there), and with npm's update notice turned off
 * (npx, run as nobody, cannot read root's npm settings, and would print it on stderr).
 */
import { spawnSync } from 'node:child_process';

const NOBODY = 65534;

export function unprivilegedPrefix(): { prefix: string[] } | { skip: string } {
  if (process.getuid === undefined) return { skip: 'no user ids on this platform' };
  if (process.getuid() !== 0) return { prefix: [] };
  if (spawnSync('setpriv', ['--version']).status !== 0) return { skip: 'running as root, and setpriv(1) is not installed to run as nobody' };
  return { prefix: ['env', '-u', 'NODE_V8_COVERAGE', 'npm_config_update_notifier=false', 'setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--'] };
}
