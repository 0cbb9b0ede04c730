/**
 * shared/linux-only.ts: imported first by shared/libc.ts, so that on another system the model
 * stops with one clear sentence before koffi (or anything else) is even evaluated.
 */
if (process.platform !== 'linux') {
  process.stderr.write(
    `This model calls Linux system calls (socket, select, epoll) through koffi, so it runs only on Linux ` +
      `(this is ${process.platform}); 03-coroutine.ts runs anywhere Node does.\n`,
  );
  process.exit(1);
}
