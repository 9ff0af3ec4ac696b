/*
 * net.h - listening sockets, shared by every listener of the agent.
 *
 * Addresses are "host:port", "[v6]:port", "*:port" or ":port" (any
 * address); the host is numeric or a name getaddrinfo resolves. Or
 * "unix:PATH", a UNIX stream socket (a relative PATH is taken from the
 * working directory; callers that hand the address on, such as
 * --print-haproxy, make it absolute): for an agent beside its
 * HAProxy the cheaper transport (no TCP stack on either side; see
 * docs/performance.md) and one only local processes with rights on the
 * file can reach. A stale socket file is replaced, a live one is an error,
 * and the file is removed on stop if it is still ours. Accepted sockets are
 * non-blocking, close-on-exec and, over TCP, TCP_NODELAY. When accept
 * fails for lack of descriptors or memory, the listener pauses briefly
 * instead of spinning on a readable socket.
 */
#ifndef SLUICE_NET_H
#define SLUICE_NET_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#define NET_UNIX_PREFIX "unix:"

typedef void (*net_conn_fn)(void *ctx, int fd, const struct sockaddr *peer, socklen_t peerlen);

struct net_listener {
    struct ev_loop *loop;
    const char *name;        /* for logs: "spop", "http", "admin" */
    int fd;
    int port;                /* the bound port (useful with port 0); 0 for UNIX */
    bool tcp;                /* false for a UNIX socket */
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];  /* UNIX: the file, else "" */
    dev_t path_dev;          /* ... and its identity, to unlink only our own */
    ino_t path_ino;
    ev_io io;
    ev_timer backoff;
    net_conn_fn on_conn;
    void *ctx;
};

/* Bind, listen and start accepting. 0, or -1 with a message in err. */
int net_listener_start(struct net_listener *l, struct ev_loop *loop, const char *name,
                       const char *addr, net_conn_fn on_conn, void *ctx, char *err, size_t errlen);
void net_listener_stop(struct net_listener *l);

#endif
