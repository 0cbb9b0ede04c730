/**
 * Permission tests need a process that the file system can refuse. Tests often run as root (CI,
 * containers), and root reads every file whatever its mode: not because its uid is 0, but because
 * it holds two capabilities, CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (capabilities(7)).
 *
 * So, as root, the command under test runs through setpriv(1) (util-linux) with those two dropped
 * from its inheritable and bounding sets: after the exec it is still root, so it can enter the
 * project and npm's cache wherever they lie (a clone under /root or a mode-700 `mktemp -d` folder),
 * yet a mode-000 file is refused as it would be for anyone. As another user the command runs as is.
 *
 * Whatever the user, the prefix is tried once on a mode-000 file before it is handed out: where
 * the file can still be read (a user holding CAP_DAC_OVERRIDE, setpriv missing or not allowed to
 * drop capabilities), the answer is `skip`, with the reason.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const READ_ANY_FILE = '-dac_override,-dac_read_search';

export function unprivilegedPrefix(): { prefix: string[] } | { skip: string } {
  if (process.getuid === undefined) return { skip: 'no user ids on this platform' };
  let prefix: string[] = [];
  if (process.getuid() === 0) {
    if (spawnSync('setpriv', ['--version']).status !== 0) return { skip: 'running as root, and setpriv(1) is not installed to drop the capabilities that read every file' };
    prefix = ['setpriv', `--inh-caps=${READ_ANY_FILE}`, `--bounding-set=${READ_ANY_FILE}`, '--'];
  }
  const readable = canReadModeZeroFile(prefix);
  if (readable !== false) return { skip: readable };
  return { prefix };
}

/** false when `prefix cat FILE` is refused on a mode-000 file; otherwise why it was not. */
function canReadModeZeroFile(prefix: string[]): string | false {
  const folder = mkdtempSync(path.join(os.tmpdir(), 'unprivileged-'));
  try {
    const file = path.join(folder, 'locked');
    writeFileSync(file, 'locked\n');
    chmodSync(file, 0o000);
    const [command, ...args] = [...prefix, 'cat', file];
    const result = spawnSync(command!, args, { encoding: 'utf8' });
    if (result.status === 0) return `this user reads a mode-000 file even through ${prefix.length > 0 ? prefix.join(' ') : 'no prefix'}`;
    if (!/Permission denied/.test(result.stderr)) return `the mode-000 check failed for another reason: ${(result.error?.message ?? result.stderr).trim()}`;
    return false;
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}
