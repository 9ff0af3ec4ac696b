/*
 * net.h - listening sockets, shared by every listener of the agent.
 *
 * Addresses are "host:port", "[v6]:port", "*:port" or ":port" (any
 * address); the host is numeric or a name getaddrinfo resolves. Accepted
 * sockets are non-blocking, close-on-exec and TCP_NODELAY. When accept
 * fails for lack of descriptors or memory, the listener pauses briefly
 * instead of spinning on a readable socket.
 */
#ifndef SLUICE_NET_H
#define SLUICE_NET_H

#include <ev.h>
#include <stddef.h>
#include <sys/socket.h>

typedef void (*net_conn_fn)(void *ctx, int fd, const struct sockaddr *peer, socklen_t peerlen);

struct net_listener {
    struct ev_loop *loop;
    const char *name;        /* for logs: "spop", "http", "admin" */
    int fd;
    int port;                /* the bound port (useful with port 0) */
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
