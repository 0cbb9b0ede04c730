/**
 * Run a command where io_uring is refused, the way a container refuses it: a seccomp filter
 * makes io_uring_setup(2) fail with EPERM (Docker's default profile) or ENOSYS (a kernel or
 * sandbox without io_uring). No root needed: with no_new_privs set, any process may filter its
 * own system calls, and its children inherit the filter.
 *
 *     node --import tsx tests/helpers/without-io-uring.ts EPERM 07-io_uring.ts --port 0
 *
 * runs `node --import tsx 07-io_uring.ts --port 0` under the filter, with the same output and
 * exit code. Exit code 3 (with a line on stderr) if this kernel cannot install the filter.
 */
import koffi from 'koffi';
import { spawnSync } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { SYS_io_uring_setup } from '../../shared/io-uring.ts';

const PR_SET_SECCOMP = 22;
const PR_SET_NO_NEW_PRIVS = 38;
const SECCOMP_MODE_FILTER = 2;
const SECCOMP_RET_ERRNO = 0x00050000;
const SECCOMP_RET_ALLOW = 0x7fff0000;
// struct seccomp_data { int nr; u32 arch; ... }: the filter reads these two fields.
const AUDIT_ARCH: Record<string, number> = { x64: 0xc000003e, arm64: 0xc00000b7 };

// Classic BPF instructions (struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; }).
const BPF_LD_W_ABS = 0x20;
const BPF_JEQ_K = 0x15;
const BPF_RET_K = 0x06;

const [errnoName = '', ...command] = process.argv.slice(2);
const errno = osConstants.errno[errnoName as keyof typeof osConstants.errno];
const arch = AUDIT_ARCH[process.arch];
if (errno === undefined || command.length === 0 || arch === undefined) {
  process.stderr.write(`usage: without-io-uring.ts EPERM|ENOSYS FILE [ARGS...] (on x64 or arm64 Linux)\n`);
  process.exit(3);
}

// if (arch == ours && nr == io_uring_setup) fail with errno; else allow.
const program: Array<[number, number, number, number]> = [
  [BPF_LD_W_ABS, 0, 0, 4], // A = arch
  [BPF_JEQ_K, 0, 3, arch], // not ours: jump to "allow"
  [BPF_LD_W_ABS, 0, 0, 0], // A = system call number
  [BPF_JEQ_K, 0, 1, SYS_io_uring_setup],
  [BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | errno],
  [BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW],
];
const filter = Buffer.alloc(8 * program.length);
program.forEach(([code, jt, jf, k], i) => {
  filter.writeUInt16LE(code, i * 8);
  filter.writeUInt8(jt, i * 8 + 2);
  filter.writeUInt8(jf, i * 8 + 3);
  filter.writeUInt32LE(k >>> 0, i * 8 + 4);
});
// struct sock_fprog { u16 len; struct sock_filter *filter; }; the kernel copies both during prctl.
const fprog = Buffer.alloc(16);
fprog.writeUInt16LE(program.length, 0);
fprog.writeBigUInt64LE(koffi.address(filter), 8);

const libc = koffi.load('libc.so.6');
const prctl = libc.func('prctl', 'int', ['int', 'unsigned long', 'void *', 'unsigned long', 'unsigned long']);
const prctlFlag = libc.func('prctl', 'int', ['int', 'unsigned long', 'unsigned long', 'unsigned long', 'unsigned long']);
if (prctlFlag(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) !== 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, fprog, 0, 0) !== 0) {
  process.stderr.write(`without-io-uring: cannot install a seccomp filter here (errno ${koffi.errno()})\n`);
  process.exit(3);
}

// The filter holds for this thread and everything it starts from now on.
const child = spawnSync(process.execPath, ['--import', 'tsx', ...command], { stdio: 'inherit' });
process.exit(child.status ?? 1);
