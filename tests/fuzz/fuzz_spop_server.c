/*
 * fuzz_spop_server.c - arbitrary bytes into the agent's SPOP server
 * (spop/spop_server.c), as HAProxy's side of a connection.
 *
 * fuzz_spop reaches the codec alone; this target reaches what the server
 * does with what the codec decodes: the HELLO negotiation (versions,
 * max-frame-size, capabilities, health checks), DISCONNECT, NOTIFY with
 * its "lookup" message, whose typed arguments become a struct spop_lookup
 * (strings, binaries, booleans and integers taken as truthy), and the ACK
 * built from the verdict, including an inline answer too large for the
 * negotiated frame, which falls back.
 *
 * The server listens on a UNIX socket; each input is written on a new
 * connection, the write side is shut, and the loop runs until the server
 * has closed it (what it answers is read and dropped). The verdict
 * callback touches every byte of the lookup and answers, by a hash of the
 * path, each kind of verdict the agent gives. Any crash, sanitizer report,
 * leak or assertion is a finding.
 */
#include <errno.h>
#include <ev.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/log.h"
#include "spop/spop_server.h"

static char body[SPOP_SERVER_MAX_FRAME + 4096];
static char location[1024];

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_spop_server: invariant failed: %s\n", what);
        abort();
    }
}

static unsigned touch(const char *p, size_t len)
{
    unsigned h = 2166136261u;
    check(p != NULL || len == 0, "a string with a length has bytes");
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)p[i]) * 16777619u;
    return h;
}

static void verdict(void *ctx, const struct spop_lookup *in, struct spop_verdict *out)
{
    (void)ctx;
    check(in->method != NULL && in->path != NULL, "method and path are never NULL");
    unsigned h = touch(in->path, in->path_len) ^ touch(in->method, in->method_len);
    touch(in->route, in->route_len);
    touch(in->query, in->query_len);
    touch(in->accept, in->accept_len);
    check(!in->plain || !in->has_range, "a plain request has no Range");
    switch (h % 6) {
    case 0:
        out->verdict = "hit";
        break;
    case 1:   /* inline, up to larger than any frame: the fallback is sent */
        out->verdict = "inline";
        out->fallback = "fill";
        out->hdrs = "content-type: text/plain\r\n";
        out->hdrs_len = strlen(out->hdrs);
        out->body = (const uint8_t *)body;
        out->body_len = (h >> 3) % sizeof(body);
        break;
    case 2:
        out->verdict = "redirect";
        snprintf(location, sizeof(location), "/x/%.*s", (int)(in->path_len < 900 ? in->path_len : 900), in->path);
        out->location = location;
        break;
    case 3:
        out->verdict = "reject";
        out->status = 400 + (int)(h >> 3) % 100;
        out->reason = (h & 8) ? NULL : "bad request";
        break;
    case 4:
        out->verdict = "busy";
        out->retry_after = (h & 8) ? INT64_MAX : 1;
        break;
    default:
        out->verdict = NULL;   /* the server answers "pass" */
        break;
    }
}

static struct ev_loop *loop;
static char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];

static char sock_dir[] = "/tmp/sluice-fuzz-spop-XXXXXX";

static void remove_socket(void)
{
    unlink(sock_path);
    rmdir(sock_dir);
}

static void setup(void)
{
    char err[256], addr[sizeof(sock_path) + 8];
    if (loop)
        return;
    log_set_level(LOG_ERROR);   /* a warning per refused frame only slows it down */
    loop = ev_loop_new(EVFLAG_AUTO);
    /* A directory of its own: the server refuses one anyone may write to. */
    check(mkdtemp(sock_dir) != NULL, "mkdtemp");
    snprintf(sock_path, sizeof(sock_path), "%s/spop.sock", sock_dir);
    atexit(remove_socket);
    unlink(sock_path);
    snprintf(addr, sizeof(addr), "unix:%s", sock_path);
    struct spop_server *srv = spop_server_start(loop, addr, verdict, NULL, err, sizeof(err));
    check(srv != NULL, err);
    memset(body, 'b', sizeof(body));
}

static int connect_server(void)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    check(fd >= 0, "socket");
    memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
    check(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect");
    return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    int fd = connect_server();
    size_t off = 0;
    char sink[65536];
    bool closed = false;
    for (int i = 0; i < 1000 && !closed; i++) {
        if (off < size) {
            ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL);
            if (w > 0)
                off += (size_t)w;
            else if (w < 0 && errno != EAGAIN)
                off = size;   /* the server closed on us */
        } else if (off == size) {
            shutdown(fd, SHUT_WR);
            off++;
        }
        ssize_t r;
        while ((r = read(fd, sink, sizeof(sink))) > 0)
            ;
        closed = r == 0;
        ev_run(loop, EVRUN_NOWAIT);
    }
    close(fd);
    /* Let the server see the close of a connection it still held. */
    for (int i = 0; i < 4; i++)
        ev_run(loop, EVRUN_NOWAIT);
    return 0;
}
