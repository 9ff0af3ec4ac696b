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
 * file can reach. The file gets the mode and group of net_set_unix_perm
 * (0600 and the agent's group until it is called) before the socket
 * listens, so no connection ever sees other rights. Its directory is made
 * (0750) when missing, and refused when it is not the agent's user's (or
 * root's) or anyone may write to it: there someone else could put a socket
 * of theirs in the agent's place. A stale socket file is replaced, a live
 * one is an error, and the file is removed on stop if it is still ours. Accepted sockets are
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

/* Rights of the UNIX socket files the listeners make. */
struct net_unix_perm {
    unsigned mode;   /* permission bits, at most 0777 */
    long gid;        /* group, or -1: the agent's own */
};

/* "0660" and "haproxy" (a group name or number; "" for the agent's own)
 * into *out. 0, or -1 with the reason in err. */
int net_unix_perm_parse(const char *mode, const char *group, struct net_unix_perm *out, char *err, size_t errlen);

/* The rights of every UNIX socket listener started from now on (a process
 * policy, like the umask, set from the configuration before the listeners
 * start). */
void net_set_unix_perm(const struct net_unix_perm *perm);

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
