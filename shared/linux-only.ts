/**
 * shared/linux-only.ts: imported first by shared/libc.ts, so that on another system the model
 * stops with one clear sentence before koffi (or anything else) is even evaluated. The sentence
 * names the way in from where the reader is: WSL 2 on Windows, a Linux container or VM elsewhere
 * (README.md, "On Windows or macOS", gives the commands).
 */
if (process.platform !== 'linux') {
  process.stderr.write(`${linuxOnlyMessage(process.platform)}\n`);
  process.exit(1);
}

export function linuxOnlyMessage(platform: string): string {
  const wayIn =
    platform === 'win32'
      ? 'on Windows, run it inside WSL 2 (wsl --install)'
      : 'here, run it in a Linux container or virtual machine';
  return (
    `This model calls Linux system calls (socket, select, epoll, io_uring) through koffi, so it runs only on Linux ` +
    `(this is ${platform}): ${wayIn}, as README.md shows under "On Windows or macOS" ` +
    `(中文：README.zh-CN.md「在 Windows 或 macOS 上」); 03-coroutine.ts runs anywhere Node does.`
  );
}
