/*
 * net.h - socket helpers shared by every listener.
 */
#ifndef SLUICE_NET_H
#define SLUICE_NET_H

#include <stddef.h>
#include <sys/socket.h>

/*
 * Parse "host:port" or "[v6]:port" (numeric host, or "localhost") into a
 * sockaddr. Returns 0 or -1 with a message in err.
 */
int net_parse_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *len,
                   char *err, size_t errlen);

/* Non-blocking, close-on-exec, SO_REUSEADDR listening socket. fd or -1. */
int net_listen(const char *addr, char *err, size_t errlen);

/* accept4 with SOCK_NONBLOCK|SOCK_CLOEXEC and TCP_NODELAY. fd or -1. */
int net_accept(int listen_fd);

#endif
