/*
 * bench/references/syscall-cost.c: how long one recv(2) on a bad descriptor takes from C: a
 * real trip into the kernel and back (it fails with EBADF at once), with nothing around it.
 * bench/ffi-call-cost.ts makes the same call through koffi; the difference is koffi's share.
 *
 *     syscall-cost CALLS          prints the CPU nanoseconds per call
 *     syscall-cost pages PAGES    prints four CPU nanosecond figures per pass, see below
 *
 * The second form asks what a system call costs the code that runs after it. A pass reads
 * one byte from each of PAGES cache lines, the lines either spread over PAGES pages (one per
 * page) or packed into as few pages as they fill (64 lines of 64 bytes to a 4 KiB page).
 * It prints: spread alone, spread after a recv(), packed alone, packed after a recv(), each
 * less the cost of the call itself where there is one. Where a system call empties the TLB
 * (page-table isolation on a CPU without PCID), "spread after" costs more than "spread
 * alone", and "packed after" does not: the extra is per page, not per byte read.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>

#define PAGE_BYTES 4096
#define LINE_BYTES 64
#define LINES_PER_PAGE (PAGE_BYTES / LINE_BYTES)

static char recv_buffer[65536];
static volatile long sink; /* keeps the reads from being optimised away */

static double cpu_nanos(void) {
  struct timespec now;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
  return now.tv_sec * 1e9 + now.tv_nsec;
}

/* CPU ns per pass: read line `l` of `lines`, at `offset(l)`, after a recv() if `with_call`. */
static double pass_nanos(const char *memory, long lines, int spread, int with_call, long passes) {
  long sum = 0;
  double start = cpu_nanos();
  for (long pass = 0; pass < passes; pass++) {
    if (with_call) recv(-1, recv_buffer, sizeof recv_buffer, 0);
    for (long l = 0; l < lines; l++) {
      /* spread: line l in page l (at a different line of each page, so that caches are not the
         limit); packed: 64 consecutive lines to a page. */
      long offset = spread ? l * PAGE_BYTES + (l % LINES_PER_PAGE) * LINE_BYTES : l * LINE_BYTES;
      sum += memory[offset];
    }
  }
  sink = sum;
  return (cpu_nanos() - start) / passes;
}

static double best_of(int rounds, const char *memory, long lines, int spread, int with_call, long passes) {
  double best = 1e18;
  for (int round = 0; round < rounds; round++) {
    double nanos = pass_nanos(memory, lines, spread, with_call, passes);
    if (nanos < best) best = nanos;
  }
  return best;
}

static int pages_mode(long lines) {
  size_t bytes = (size_t)lines * PAGE_BYTES;
  char *memory = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) return perror("mmap"), 1;
  madvise(memory, bytes, MADV_NOHUGEPAGE); /* 4 KiB pages, as most of a program's are */
  memset(memory, 1, bytes);                 /* every page present before timing */
  long passes = 20000;
  double call = best_of(5, memory, 0, 0, 1, passes);
  double spread_alone = best_of(5, memory, lines, 1, 0, passes);
  double spread_after = best_of(5, memory, lines, 1, 1, passes) - call;
  double packed_alone = best_of(5, memory, lines, 0, 0, passes);
  double packed_after = best_of(5, memory, lines, 0, 1, passes) - call;
  printf("%.1f %.1f %.1f %.1f\n", spread_alone, spread_after, packed_alone, packed_after);
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 2 && strcmp(argv[1], "pages") == 0) return pages_mode(atol(argv[2]));
  long calls = argc > 1 ? atol(argv[1]) : 1000000;
  double start = cpu_nanos();
  for (long i = 0; i < calls; i++) recv(-1, recv_buffer, sizeof recv_buffer, 0);
  printf("%.1f\n", (cpu_nanos() - start) / calls);
  return 0;
}
