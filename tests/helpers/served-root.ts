/**
 * A throwaway copy of www/ for model tests, plus a large file whose bytes the test knows, so a
 * download can be checked byte for byte without keeping a big file in the repository.
 */
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from './server.ts';

export interface ServedRoot {
  root: string;
  /** Name (under root) and SHA-256 of the large file. */
  bigFile: { urlPath: string; size: number; sha256: string };
  remove(): void;
}

export const BIG_FILE_SIZE = 24 * 1024 * 1024 + 123; // not a multiple of any buffer size

export function makeServedRoot(): ServedRoot {
  const root = mkdtempSync(path.join(os.tmpdir(), 'webserver-root-'));
  cpSync(path.join(REPO_ROOT, 'www'), root, { recursive: true });
  const big = randomBytes(BIG_FILE_SIZE);
  writeFileSync(path.join(root, 'big.bin'), big);
  return {
    root,
    bigFile: { urlPath: '/big.bin', size: big.length, sha256: createHash('sha256').update(big).digest('hex') },
    remove: () => rmSync(root, { recursive: true, force: true }),
  };
}
