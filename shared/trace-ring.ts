/**
 * shared/trace-ring.ts: `--trace` for 07-io_uring. Its one system call per pass is
 * io_uring_enter, and what matters is what went in (the submissions since the last call) and
 * what came out (the completions the kernel posted), so that is what one narrated call says:
 *
 *     io_uring_enter(5, submitted 2: recv fd 7 multishot, send fd 8 3566 B; timeout=500 ms) = 3 completions:
 *       recv fd 7 = 78 (in buffer 0; still armed)
 *       send fd 8 = 3566 (all of it)
 *       accept fd 3 = 9 (a new connection)
 *
 * The IoUring methods that prepare submissions, enter the kernel and give completion slots back
 * are swapped once for narrating ones (the libc calls of the listening socket are narrated by
 * shared/trace-calls.ts). Called only when --trace is given (see shared/trace.ts).
 */
import { IORING_CQE_BUFFER_SHIFT, IORING_CQE_F_BUFFER, IORING_CQE_F_MORE, IOSQE_IO_HARDLINK, IOSQE_IO_LINK, IoUring } from './io-uring.ts';
import { errnoName } from './libc.ts';
import { traceSystemCalls, type CallTraceSetup } from './trace-calls.ts';
import { trace } from './trace.ts';

interface Operation {
  /** "recv fd 7": what a completion for it is about. */
  name: string;
  /** Bytes asked for (send, read), to tell a partial result from a whole one. */
  bytes: number;
}

/** Narrate the libc calls, then every ring's submissions and completions. */
export function traceSystemCallsAndRing(setup: CallTraceSetup = {}): void {
  traceSystemCalls(setup);
  const ring = IoUring.prototype;
  const submitted: string[] = []; // prepared since the last io_uring_enter
  const operations = new Map<number, Operation>(); // by user_data
  let narratedCompletions = 0; // completions already said, not yet given back

  const link = (flags: number) => (flags & IOSQE_IO_HARDLINK ? ' (hardlinked to the next)' : flags & IOSQE_IO_LINK ? ' (linked to the next)' : '');
  const prepared = (userData: number, name: string, detail: string, bytes = 0) => {
    operations.set(userData, { name, bytes });
    submitted.push(`${name}${detail}`);
  };

  const { prepareAccept, prepareMultishotRecv, prepareSend, prepareRead, prepareShutdown, prepareClose, prepareCancel } = ring;
  ring.prepareAccept = function (listenFd, addressAt, lengthAt, userData) {
    prepared(userData, `accept fd ${listenFd}`, '');
    prepareAccept.call(this, listenFd, addressAt, lengthAt, userData);
  };
  ring.prepareMultishotRecv = function (fd, group, userData) {
    prepared(userData, `recv fd ${fd}`, ' multishot');
    prepareMultishotRecv.call(this, fd, group, userData);
  };
  ring.prepareSend = function (fd, address, length, userData, flags = 0) {
    prepared(userData, `send fd ${fd}`, ` ${length} B${link(flags)}`, length);
    prepareSend.call(this, fd, address, length, userData, flags);
  };
  ring.prepareRead = function (fd, address, length, offset, userData, flags = 0) {
    prepared(userData, `read fd ${fd}`, ` ${length} B at ${offset}${link(flags)}`, length);
    prepareRead.call(this, fd, address, length, offset, userData, flags);
  };
  ring.prepareShutdown = function (fd, how, userData, flags = 0) {
    prepared(userData, `shutdown fd ${fd}`, ` ${['SHUT_RD', 'SHUT_WR', 'SHUT_RDWR'][how]}${link(flags)}`);
    prepareShutdown.call(this, fd, how, userData, flags);
  };
  ring.prepareClose = function (fd, userData, flags = 0) {
    prepared(userData, `close fd ${fd}`, link(flags));
    prepareClose.call(this, fd, userData, flags);
  };
  ring.prepareCancel = function (targetUserData, userData) {
    prepared(userData, `cancel (${operations.get(targetUserData)?.name ?? targetUserData})`, '');
    prepareCancel.call(this, targetUserData, userData);
  };

  /** One line per completion not yet said: which operation, and what it carried. */
  const newCompletions = (uring: IoUring): string[] => {
    const lines: string[] = [];
    const ready = uring.completionsReady();
    for (let i = narratedCompletions; i < ready; i++) {
      const userData = uring.completionUserData(i);
      const result = uring.completionResult(i);
      const flags = uring.completionFlags(i);
      const operation = operations.get(userData) ?? { name: `user_data ${userData}`, bytes: 0 };
      const more = (flags & IORING_CQE_F_MORE) !== 0;
      if (!more) operations.delete(userData);
      lines.push(`  ${operation.name} = ${describeResult(operation, result, flags, more)}`);
    }
    narratedCompletions = ready;
    return lines;
  };

  const { submit, submitAndWait, markCompletionsSeen } = ring;
  const enter = (uring: IoUring, wait: string, call: () => void) => {
    const handed = submitted.splice(0);
    call();
    const completions = newCompletions(uring);
    const question = `io_uring_enter(${uring.fd}, submitted ${handed.length}${handed.length === 0 ? '' : `: ${handed.join(', ')}`}; `;
    const answer = `) = ${completions.length} completion${completions.length === 1 ? '' : 's'}${completions.length === 0 ? '' : ':'}`;
    trace([`${question}${wait}${answer}`, ...completions].join('\n'), [question, answer, ...completions].join('\n'));
  };
  ring.submit = function () {
    if (this.pendingSubmissions === 0) return submit.call(this);
    enter(this, 'no wait', () => submit.call(this));
  };
  ring.submitAndWait = function (timeoutMs) {
    enter(this, `timeout=${timeoutMs} ms`, () => submitAndWait.call(this, timeoutMs));
  };
  ring.markCompletionsSeen = function (count) {
    narratedCompletions = Math.max(0, narratedCompletions - count);
    markCompletionsSeen.call(this, count);
  };
}

function describeResult(operation: Operation, result: number, flags: number, more: boolean): string {
  if (result < 0) return `-${errnoName(-result)}${more ? ' (still armed)' : ''}`;
  if (operation.name.startsWith('accept')) return `${result} (a new connection)`;
  if (operation.name.startsWith('recv')) {
    if ((flags & IORING_CQE_F_BUFFER) === 0) return result === 0 ? '0 (the client closed its side; the recv ends)' : String(result);
    return `${result} (in buffer ${flags >>> IORING_CQE_BUFFER_SHIFT}; ${more ? 'still armed' : 'the recv ends'})`;
  }
  if (operation.bytes > 0) return `${result} (${result === operation.bytes ? 'all of it' : `of ${operation.bytes}: the rest goes again`})`;
  return String(result);
}
