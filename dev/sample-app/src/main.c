/*
 * sample-app: the application fleetship builds and deploys in the local stack and the tests.
 * A tiny HTTP/1.1 server with no dependencies beyond libc:
 *   GET /         200 {"app","version","greeting","build_id","commit_sha","pid","uptime_s"}
 *   GET /healthz  200 {"status":"ok"}
 * Port: --port N, else $PORT, else 8080. SIGTERM or SIGINT stops it with exit status 0.
 * One connection at a time, each with a 5 s socket timeout, so a stuck client cannot wedge it.
 */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "build-info.h" /* written by build.sh: SAMPLE_APP_BUILD_ID, SAMPLE_APP_COMMIT_SHA */
#include "version.h"    /* SAMPLE_APP_VERSION, SAMPLE_APP_GREETING */

static volatile sig_atomic_t stopping = 0;

static void on_stop(int sig) {
  (void)sig;
  stopping = 1;
}

static int parse_port(const char *s) {
  char *end = NULL;
  long n = strtol(s, &end, 10);
  if (end == s || *end != '\0' || n < 1 || n > 65535) return -1;
  return (int)n;
}

static void send_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    buf += n;
    len -= (size_t)n;
  }
}

static void respond(int fd, int status, const char *reason, const char *body) {
  char head[256];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                   "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                   status, reason, strlen(body));
  send_all(fd, head, (size_t)n);
  send_all(fd, body, strlen(body));
}

static void serve(int fd, time_t started) {
  char req[4096];
  size_t used = 0;
  /* Read until the end of the request head (or the buffer is full): only the line matters. */
  while (used < sizeof req - 1) {
    ssize_t n = recv(fd, req + used, sizeof req - 1 - used, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    used += (size_t)n;
    req[used] = '\0';
    if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n")) break;
  }
  req[used] = '\0';
  char method[8] = "", path[256] = "";
  if (sscanf(req, "%7s %255s", method, path) != 2) {
    respond(fd, 400, "Bad Request", "{\"error\":\"bad request\"}\n");
    return;
  }
  char *query = strchr(path, '?');
  if (query) *query = '\0';
  if (strcmp(method, "GET") != 0) {
    respond(fd, 405, "Method Not Allowed", "{\"error\":\"only GET\"}\n");
  } else if (strcmp(path, "/healthz") == 0) {
    respond(fd, 200, "OK", "{\"status\":\"ok\"}\n");
  } else if (strcmp(path, "/") == 0) {
    char body[1024];
    snprintf(body, sizeof body,
             "{\"app\":\"sample-app\",\"version\":%d,\"greeting\":\"%s\",\"build_id\":\"%s\","
             "\"commit_sha\":\"%s\",\"pid\":%ld,\"uptime_s\":%ld}\n",
             SAMPLE_APP_VERSION, SAMPLE_APP_GREETING, SAMPLE_APP_BUILD_ID, SAMPLE_APP_COMMIT_SHA,
             (long)getpid(), (long)(time(NULL) - started));
    respond(fd, 200, "OK", body);
  } else {
    respond(fd, 404, "Not Found", "{\"error\":\"not found\"}\n");
  }
}

int main(int argc, char **argv) {
  int port = 8080;
  const char *env_port = getenv("PORT");
  if (env_port && *env_port) port = parse_port(env_port);
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      port = parse_port(argv[++i]);
    } else if (strncmp(argv[i], "--port=", 7) == 0) {
      port = parse_port(argv[i] + 7);
    } else {
      fprintf(stderr, "usage: %s [--port N]   (or PORT=N)\n", argv[0]);
      return 2;
    }
  }
  if (port < 0) {
    fprintf(stderr, "sample-app: the port must be a number in 1-65535\n");
    return 2;
  }

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop; /* no SA_RESTART: accept() returns EINTR so the loop sees `stopping` */
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  int srv = socket(AF_INET, SOCK_STREAM, 0);
  if (srv < 0) {
    perror("sample-app: socket");
    return 1;
  }
  int one = 1;
  setsockopt(srv, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = htons((unsigned short)port);
  if (bind(srv, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(srv, 64) < 0) {
    fprintf(stderr, "sample-app: cannot listen on port %d: %s\n", port, strerror(errno));
    return 1;
  }
  time_t started = time(NULL);
  printf("{\"event\":\"sample-app:listening\",\"port\":%d,\"version\":%d,\"build_id\":\"%s\","
         "\"commit_sha\":\"%s\"}\n",
         port, SAMPLE_APP_VERSION, SAMPLE_APP_BUILD_ID, SAMPLE_APP_COMMIT_SHA);
  fflush(stdout);

  struct timeval timeout = {.tv_sec = 5, .tv_usec = 0};
  while (!stopping) {
    int fd = accept(srv, NULL, NULL);
    if (fd < 0) {
      if (errno == EINTR) continue;
      perror("sample-app: accept");
      usleep(100 * 1000); /* e.g. out of file descriptors: do not spin */
      continue;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    serve(fd, started);
    close(fd);
  }
  close(srv);
  printf("{\"event\":\"sample-app:stopped\"}\n");
  return 0;
}
