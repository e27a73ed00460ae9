/* sockutil.h - socket set-up: non-blocking connect, listening sockets, keepalive and NODELAY. */
#ifndef SL_SOCKUTIL_H
#define SL_SOCKUTIL_H

#include <stdbool.h>
#include <sys/socket.h>

#include "config/config.h"

int sl_sock_connect(const struct sockaddr *sa, socklen_t len);
/* TCP listening socket on addr:port (reuseport for one per worker). -1 on error (errno set). */
int sl_sock_listen_tcp(const char *addr, int port, int backlog, bool reuseport);
int sl_sock_listen_unix(const char *dir, int port, int mode, int backlog);
void sl_sock_tune(int fd, const sl_config *cfg, bool is_tcp);
/* The address a connected socket's peer has (to reach the same server again). */
bool sl_sock_peer_addr(int fd, struct sockaddr_storage *ss, socklen_t *len);
void sl_sock_addr_str(const struct sockaddr_storage *ss, char *out, size_t len);

#endif
