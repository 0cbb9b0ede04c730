/*
 * bench/references/c-epoll-ceiling.c: the least a single-threaded epoll server can spend per
 * request on this kernel, as the bench's yardstick ("C ceiling") for 05, 06 and 07.
 *
 * It answers every request with one fixed response held in memory (the bytes of the file it
 * is given, under a minimal header): no parsing beyond finding where each request head ends
 * (so keep-alive and pipelining work) and whether it asks for `Connection: close`, no file
 * system, no timeouts, no logging. Whatever a model spends above this is the price of its
 * language, its FFI calls and its HTTP work.
 *
 * The bench builds it with the system's C compiler into bench/.build/ and runs it as:
 *
 *     c-epoll-ceiling PORT BODY_FILE       (PORT 0: any free port)
 *
 * It prints the start line the models print ("... serving ... on http://127.0.0.1:PORT/ (pid N)")
 * and stops on SIGINT or SIGTERM.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define MAX_FDS 65536

/* What one connection still owes its client: `owed` whole responses from offset `sent`. */
struct conn {
  unsigned matched;  /* how much of "\r\n\r\n" the bytes so far end with */
  unsigned owed;
  size_t sent;       /* bytes of the first owed response already sent */
  int close_after;   /* a request asked for Connection: close */
  int watching_out;  /* EPOLLOUT is on: epoll_ctl is called only when that changes */
  char tail[32];     /* the start of the current header line, to spot "connection: close" */
  unsigned tail_len;
};

static struct conn *conns[MAX_FDS];
static char *ok_response, *close_response;
static size_t ok_length, close_length;
static volatile sig_atomic_t stopping;

static void on_signal(int signal) { (void)signal; stopping = 1; }

static void die(const char *what) {
  perror(what);
  exit(1);
}

/* The response: the file's bytes under a head of the models' shape and size (fixed dates). */
static char *build_response(const char *body, size_t body_length, const char *connection, size_t *length) {
  char head[512];
  int head_length = snprintf(head, sizeof head,
                             "HTTP/1.1 200 OK\r\nServer: c-epoll-ceiling\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\n"
                             "Content-Type: text/html; charset=utf-8\r\nContent-Length: %zu\r\n"
                             "Accept-Ranges: bytes\r\nLast-Modified: Thu, 01 Jan 2026 00:00:00 GMT\r\nETag: \"%zx-19b771b5000\"\r\n"
                             "X-Content-Type-Options: nosniff\r\nConnection: %s\r\n\r\n",
                             body_length, body_length, connection);
  char *response = malloc(head_length + body_length);
  if (response == NULL) die("malloc");
  memcpy(response, head, head_length);
  memcpy(response + head_length, body, body_length);
  *length = head_length + body_length;
  return response;
}

static void load_body(const char *file) {
  FILE *input = fopen(file, "rb");
  if (input == NULL) die(file);
  static char body[1 << 20];
  size_t length = fread(body, 1, sizeof body, input);
  fclose(input);
  ok_response = build_response(body, length, "keep-alive", &ok_length);
  close_response = build_response(body, length, "close", &close_length);
}

static void drop(int epfd, int fd) {
  epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
  close(fd);
  free(conns[fd]);
  conns[fd] = NULL;
}

/* Look at each received byte once: count request heads, and notice "Connection: close". */
static void scan(struct conn *c, const char *bytes, ssize_t count) {
  static const char end[] = "\r\n\r\n";
  static const char close_header[] = "connection: close";
  for (ssize_t i = 0; i < count; i++) {
    char byte = bytes[i];
    c->matched = byte == end[c->matched] ? c->matched + 1 : byte == '\r' ? 1 : 0;
    if (byte == '\n') {
      if (c->tail_len >= sizeof close_header - 1 && strncasecmp(c->tail, close_header, sizeof close_header - 1) == 0) c->close_after = 1;
      c->tail_len = 0;
    } else if (c->tail_len < sizeof c->tail) {
      c->tail[c->tail_len++] = byte;
    }
    if (c->matched == 4) {
      c->owed += 1;
      c->matched = 0;
    }
  }
}

/* Send what is owed until done (1), the socket is full (0), or it failed (-1). */
static int flush(int fd, struct conn *c) {
  while (c->owed > 0) {
    int last = c->owed == 1 && c->close_after;
    const char *response = last ? close_response : ok_response;
    size_t length = last ? close_length : ok_length;
    ssize_t sent = send(fd, response + c->sent, length - c->sent, MSG_NOSIGNAL);
    if (sent < 0) return errno == EAGAIN ? 0 : -1;
    c->sent += sent;
    if (c->sent == length) {
      c->sent = 0;
      c->owed -= 1;
    }
  }
  return 1;
}

static void serve(int epfd, int fd, unsigned events) {
  struct conn *c = conns[fd];
  static char buffer[65536];
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
    ssize_t count = recv(fd, buffer, sizeof buffer, 0);
    if (count == 0 || (count < 0 && errno != EAGAIN)) return drop(epfd, fd);
    if (count > 0) scan(c, buffer, count);
  }
  int done = flush(fd, c);
  if (done < 0 || (done == 1 && c->close_after)) return drop(epfd, fd);
  if (c->watching_out == !done) return;
  c->watching_out = !done;
  struct epoll_event want = {.events = done ? EPOLLIN : EPOLLIN | EPOLLOUT, .data.fd = fd};
  epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &want);
}

static void accept_all(int epfd, int listener) {
  for (;;) {
    int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    if (fd >= MAX_FDS) {
      close(fd);
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    conns[fd] = calloc(1, sizeof(struct conn));
    struct epoll_event want = {.events = EPOLLIN, .data.fd = fd};
    if (conns[fd] == NULL || epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &want) < 0) drop(epfd, fd);
  }
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s PORT BODY_FILE\n", argv[0]);
    return 2;
  }
  load_body(argv[2]);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);

  int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listener < 0) die("socket");
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1])), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(listener, (struct sockaddr *)&address, sizeof address) < 0) die("bind");
  if (listen(listener, 511) < 0) die("listen");
  socklen_t length = sizeof address;
  getsockname(listener, (struct sockaddr *)&address, &length);

  int epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) die("epoll_create1");
  struct epoll_event want = {.events = EPOLLIN, .data.fd = listener};
  epoll_ctl(epfd, EPOLL_CTL_ADD, listener, &want);
  printf("c-epoll-ceiling: serving a fixed response on http://127.0.0.1:%d/ (pid %d)\n", ntohs(address.sin_port), getpid());
  fflush(stdout);

  struct epoll_event ready[MAX_EVENTS];
  while (!stopping) {
    int count = epoll_wait(epfd, ready, MAX_EVENTS, 500);
    for (int i = 0; i < count; i++) {
      int fd = ready[i].data.fd;
      if (fd == listener) accept_all(epfd, listener);
      else if (conns[fd] != NULL) serve(epfd, fd, ready[i].events);
    }
  }
  return 0;
}
