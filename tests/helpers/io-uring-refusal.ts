/**
 * Whether io_uring can be used here, asked the way 07-io_uring.ts asks it: the line 07 would
 * print and exit with (its tests skip with that line as the reason), or null when io_uring works.
 * Run as a script, it prints that line (or "io_uring works"), so a test can check it under the
 * same seccomp filter as 07 itself.
 */
import { pathToFileURL } from 'node:url';
import { IoUring, refusalOf } from '../../shared/io-uring.ts';

export function ioUringRefusal(): string | null {
  try {
    new IoUring(4, 8).close();
    return null;
  } catch (error) {
    const refusal = refusalOf(error);
    if (refusal === null) throw error; // not an environment that refuses io_uring: a bug
    return `07-io_uring: ${refusal}`;
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.stdout.write(`${ioUringRefusal() ?? 'io_uring works'}\n`);
}
