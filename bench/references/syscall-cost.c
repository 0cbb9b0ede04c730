/*
 * bench/references/syscall-cost.c: how long one recv(2) on a bad descriptor takes from C: a
 * real trip into the kernel and back (it fails with EBADF at once), with nothing around it.
 * bench/ffi-call-cost.ts makes the same call through koffi; the difference is koffi's share.
 *
 *     syscall-cost CALLS      prints the CPU nanoseconds per call
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

int main(int argc, char **argv) {
  long calls = argc > 1 ? atol(argv[1]) : 1000000;
  static char buffer[65536];
  struct timespec start, end;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &start);
  for (long i = 0; i < calls; i++) recv(-1, buffer, sizeof buffer, 0);
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &end);
  printf("%.1f\n", ((end.tv_sec - start.tv_sec) * 1e9 + (end.tv_nsec - start.tv_nsec)) / calls);
  return 0;
}
