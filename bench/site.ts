/**
 * bench/site.ts: the folder every server serves during a run: a copy of www/ plus one large
 * generated file, in a temporary folder that any user can read (nginx's worker drops root).
 */
import { chmodSync, cpSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url));
export const SMALL_PAGE = '/index.html';
export const BIG_FILE_MIB = 64;
export const BIG_FILE = `/big-${BIG_FILE_MIB}MiB.bin`;

export interface Site {
  root: string;
  smallPageBytes: number;
  remove(): void;
}

export function prepareSite(): Site {
  const root = mkdtempSync(path.join(os.tmpdir(), 'bench-www-'));
  chmodSync(root, 0o755);
  cpSync(path.join(REPO_ROOT, 'www'), root, { recursive: true });
  // Not zeros, so nothing along the way can shortcut it; 1 MiB written 64 times.
  const pattern = Buffer.alloc(1024 * 1024, 'concurrent webserver benchmark\n');
  const big = path.join(root, BIG_FILE);
  writeFileSync(big, '');
  for (let i = 0; i < BIG_FILE_MIB; i++) writeFileSync(big, pattern, { flag: 'a' });
  return {
    root,
    smallPageBytes: statSync(path.join(root, SMALL_PAGE)).size,
    remove: () => rmSync(root, { recursive: true, force: true }),
  };
}
