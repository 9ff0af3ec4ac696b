/*
 * net.c - the one listener implementation shared by the SPOP, HTTP and
 * admin servers (see net.h).
 */
#include "core/net.h"

#include <errno.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/common.h"
#include "core/log.h"

#define ACCEPT_BATCH 64
#define ACCEPT_BACKOFF_S 0.1

static struct net_unix_perm unix_perm = { 0600, -1 };

void net_set_unix_perm(const struct net_unix_perm *perm)
{
    SL_ASSERT(perm && perm->mode <= 0777);
    unix_perm = *perm;
}

static int parse_mode(const char *mode, unsigned *out)
{
    size_t n = strlen(mode);
    if (n < 3 || n > 4 || strspn(mode, "01234567") != n)
        return -1;
    unsigned long v = strtoul(mode, NULL, 8);
    if (v > 0777)
        return -1;
    *out = (unsigned)v;
    return 0;
}

static int parse_group(const char *group, long *gid)
{
    if (group[0] == '\0') {
        *gid = -1;
        return 0;
    }
    if (strspn(group, "0123456789") == strlen(group) && strlen(group) < 10) {
        *gid = atol(group);
        return 0;
    }
    struct group *g = getgrnam(group);
    if (!g)
        return -1;
    *gid = (long)g->gr_gid;
    return 0;
}

int net_unix_perm_parse(const char *mode, const char *group, struct net_unix_perm *out, char *err, size_t errlen)
{
    if (parse_mode(mode, &out->mode) != 0) {
        sl_set_err(err, errlen, "want permission bits in octal, 0000 to 0777 (e.g. 0600, 0660)");
        return -1;
    }
    if (parse_group(group, &out->gid) != 0) {
        sl_set_err(err, errlen, "no such group");
        return -1;
    }
    return 0;
}

/* Splits "host:port" or "[v6]:port"; an empty host or "*" means any. */
static bool split_addr(const char *addr, char *host, size_t hostlen, char *port,
                       size_t portlen, bool *bracketed)
{
    const char *colon;
    size_t hlen;
    *bracketed = addr[0] == '[';
    if (*bracketed) {
        const char *close = strchr(addr, ']');
        if (!close || close[1] != ':')
            return false;
        hlen = (size_t)(close - addr - 1);
        addr++;
        colon = close + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon || memchr(addr, ':', (size_t)(colon - addr)))
            return false;   /* no port, or an IPv6 address without brackets */
        hlen = (size_t)(colon - addr);
    }
    if (hlen >= hostlen || strlen(colon + 1) >= portlen || colon[1] == '\0')
        return false;
    memcpy(host, addr, hlen);
    host[hlen] = '\0';
    strcpy(port, colon + 1);
    for (const char *p = port; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    if (atoi(port) > 65535)
        return false;
    if (!*bracketed && (host[0] == '\0' || strcmp(host, "*") == 0))
        strcpy(host, "0.0.0.0");
    return true;
}

static int listen_on(const struct addrinfo *ai, int *port, char *err, size_t errlen)
{
    int one = 1;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, SOMAXCONN) < 0) {
        snprintf(err, errlen, "bind/listen: %s", strerror(errno));
        close(fd);
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &len);
    *port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                           : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

/* A socket file left at path by an agent that is gone is removed; one a
 * live process still accepts on is not (two agents on one path would
 * split HAProxy's connections between them), nor is any other file. */
static int clear_stale_socket(const char *path, const struct sockaddr_un *sun, char *err,
                              size_t errlen)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : (snprintf(err, errlen, "%s: %s", path, strerror(errno)), -1);
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "%s exists and is not a socket", path);
        return -1;
    }
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    int live = connect(probe, (const struct sockaddr *)sun, sizeof(*sun)) == 0;
    close(probe);
    if (live) {
        snprintf(err, errlen, "%s is in use by another process", path);
        return -1;
    }
    if (unlink(path) != 0 && errno != ENOENT) {
        snprintf(err, errlen, "unlink %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* The directory of the socket at path: made when missing, and only the
 * agent's user (or root) may own it or write to it. */
static int check_socket_dir(const char *path, char *err, size_t errlen)
{
    char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
    sl_strlcpy(dir, path, sizeof(dir));
    char *slash = strrchr(dir, '/');
    if (!slash)
        strcpy(dir, ".");
    else
        slash[slash == dir] = '\0';   /* "/x.sock": "/" */
    struct stat st;
    if (sl_mkdir_p(dir, 0750) != 0 || stat(dir, &st) != 0) {
        snprintf(err, errlen, "socket directory %s: %s", dir, strerror(errno));
        return -1;
    }
    if (st.st_uid != geteuid() && st.st_uid != 0) {
        snprintf(err, errlen, "socket directory %s belongs to uid %u, not to the agent's user", dir,
                 (unsigned)st.st_uid);
        return -1;
    }
    if (st.st_mode & S_IWOTH) {
        snprintf(err, errlen, "socket directory %s is writable by every user: use a directory of the agent's own",
                 dir);
        return -1;
    }
    return 0;
}

/* The rights of a bound, not yet listening socket file. */
static int set_socket_perm(const char *path, char *err, size_t errlen)
{
    if (chmod(path, unix_perm.mode) != 0 ||
        (unix_perm.gid >= 0 && chown(path, (uid_t)-1, (gid_t)unix_perm.gid) != 0)) {
        snprintf(err, errlen, "socket %s: setting mode %04o%s: %s", path, unix_perm.mode,
                 unix_perm.gid >= 0 ? " and group" : "", strerror(errno));
        return -1;
    }
    return 0;
}

static int open_unix_listener(struct net_listener *l, const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (path[0] == '\0' || strlen(path) >= sizeof(sun.sun_path)) {
        snprintf(err, errlen, "bad listen address \"unix:%s\" (want a path of 1..%zu bytes)", path,
                 sizeof(sun.sun_path) - 1);
        return -1;
    }
    strcpy(sun.sun_path, path);
    if (check_socket_dir(path, err, errlen) != 0 || clear_stale_socket(path, &sun, err, errlen) != 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    struct stat st;
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        snprintf(err, errlen, "bind %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    /* Rights first: until listen(), a connect is refused whatever they are. */
    int rc = set_socket_perm(path, err, errlen);
    if (rc == 0 && (listen(fd, SOMAXCONN) < 0 || stat(path, &st) < 0)) {
        snprintf(err, errlen, "listen %s: %s", path, strerror(errno));
        rc = -1;
    }
    if (rc != 0) {
        unlink(path);
        close(fd);
        return -1;
    }
    snprintf(l->path, sizeof(l->path), "%s", path);
    l->path_dev = st.st_dev;
    l->path_ino = st.st_ino;
    return fd;
}

static int open_listener(struct net_listener *l, const char *addr, char *err, size_t errlen)
{
    if (strncmp(addr, NET_UNIX_PREFIX, strlen(NET_UNIX_PREFIX)) == 0)
        return open_unix_listener(l, addr + strlen(NET_UNIX_PREFIX), err, errlen);
    int *port = &l->port;
    l->tcp = true;
    char host[256], portstr[8];
    bool bracketed;
    if (!split_addr(addr, host, sizeof(host), portstr, sizeof(portstr), &bracketed)) {
        snprintf(err, errlen, "bad listen address \"%s\" (want host:port, [v6]:port or unix:PATH)",
                 addr);
        return -1;
    }
    struct addrinfo hints, *res;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = bracketed ? AF_INET6 : AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV | (bracketed ? AI_NUMERICHOST : 0);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "bad listen address \"%s\": %s", addr, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next)
        fd = listen_on(ai, port, err, errlen);
    freeaddrinfo(res);
    return fd;
}


static void accept_backoff_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct net_listener *l = w->data;
    SL_UNUSED(revents);
    ev_io_start(loop, &l->io);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct net_listener *l = w->data;
    SL_UNUSED(revents);
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            int one = 1;
            /* Small frames and heads: never let Nagle hold them back. */
            if (l->tcp)
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            l->on_conn(l->ctx, fd, (struct sockaddr *)&ss, len);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        /* Out of descriptors or memory: the listener stays readable, so
         * stop watching it for a moment instead of spinning. */
        log_warn("%s: accept: %s", l->name, strerror(errno));
        ev_io_stop(loop, &l->io);
        ev_timer_start(loop, &l->backoff);
        return;
    }
}

int net_listener_start(struct net_listener *l, struct ev_loop *loop, const char *name,
                       const char *addr, net_conn_fn on_conn, void *ctx, char *err, size_t errlen)
{
    memset(l, 0, sizeof(*l));
    l->fd = open_listener(l, addr, err, errlen);
    if (l->fd < 0)
        return -1;
    l->loop = loop;
    l->name = name;
    l->on_conn = on_conn;
    l->ctx = ctx;
    ev_io_init(&l->io, accept_cb, l->fd, EV_READ);
    ev_timer_init(&l->backoff, accept_backoff_cb, ACCEPT_BACKOFF_S, 0.0);
    l->io.data = l;
    l->backoff.data = l;
    ev_io_start(loop, &l->io);
    return 0;
}

void net_listener_stop(struct net_listener *l)
{
    if (l->fd < 0 || !l->loop)
        return;
    ev_io_stop(l->loop, &l->io);
    ev_timer_stop(l->loop, &l->backoff);
    close(l->fd);
    l->fd = -1;
    /* Remove the socket file only if it is still ours: a successor that
     * bound the same path meanwhile (a reload) keeps its own. */
    struct stat st;
    if (l->path[0] && stat(l->path, &st) == 0 && st.st_dev == l->path_dev &&
        st.st_ino == l->path_ino)
        unlink(l->path);
}
