/*
 * What-if shim for perf/run-gateway-bench.sh (PERF_WHATIF_NODELAY=1), never
 * for production: LD_PRELOADed into pecr-gateway and pecr-ledger-writer, it
 * sets TCP_NODELAY on every accepted socket. That is what the one-line fix
 * in libs/server/src/host.rs would do:
 *     TcpIncoming::from(self.grpc).with_nodelay(Some(true))
 * (tonic's Server::tcp_nodelay(true) default is ignored by
 * serve_with_incoming_shutdown, so today the servers' sockets keep Nagle on
 * and small HTTP/2 writes wait for the peer's delayed ACK, ~40 ms per hop).
 * setsockopt fails harmlessly on non-TCP sockets.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

static int nodelay(int fd) {
  int one = 1;
  if (fd >= 0) (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
  static int (*real)(int, struct sockaddr *, socklen_t *, int);
  if (!real) real = (int (*)(int, struct sockaddr *, socklen_t *, int))dlsym(RTLD_NEXT, "accept4");
  return nodelay(real(fd, addr, len, flags));
}

int accept(int fd, struct sockaddr *addr, socklen_t *len) {
  static int (*real)(int, struct sockaddr *, socklen_t *);
  if (!real) real = (int (*)(int, struct sockaddr *, socklen_t *))dlsym(RTLD_NEXT, "accept");
  return nodelay(real(fd, addr, len));
}
