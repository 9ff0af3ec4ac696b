/*
 * fuzz_http.c - arbitrary bytes into the agent's HTTP/1.1 server.
 *
 * The input is written into one end of a socketpair whose other end the
 * server adopts; the loop then runs until the server has nothing left to do.
 * The handler answers simple responses and, for paths under /stream, a
 * streamed chunked response, so request parsing, keep-alive, pipelining,
 * error answers and response framing all see hostile input. Any crash,
 * sanitizer report or leak is a finding.
 */
#include <ev.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/http_server.h"

struct stream_resp {
    struct http_response base;
    int sent;
};

static enum http_head_result s_head(struct http_response *r, struct http_head *out)
{
    (void)r;
    http_head_printf(out, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    out->mode = HTTP_BODY_CHUNKED;
    return HTTP_HEAD_READY;
}

static enum http_body_result s_body(struct http_response *r, struct http_piece *out)
{
    struct stream_resp *s = (struct stream_resp *)r;
    if (s->sent >= 3)
        return HTTP_PIECE_END;
    out->data = (const uint8_t *)"hello";
    out->len = 5;
    return HTTP_PIECE_DATA;
}

static void s_consumed(struct http_response *r, size_t n)
{
    struct stream_resp *s = (struct stream_resp *)r;
    if (n == 5)
        s->sent++;
    else
        s->sent = 3;
}

static void s_finish(struct http_response *r, bool completed)
{
    (void)completed;
    free(r);
}

static void handler(void *ctx, struct http_conn *c, const struct http_request *req)
{
    (void)ctx;
    if (req->path_len >= 7 && memcmp(req->path, "/stream", 7) == 0) {
        struct stream_resp *s = calloc(1, sizeof(*s));
        s->base = (struct http_response){ s_head, s_body, s_consumed, s_finish };
        http_respond_with(c, &s->base);
        return;
    }
    http_respond_simple(c, 200, "text/plain", "", req->path, req->path_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        return 0;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct http_server *srv = http_server_new(loop, handler, NULL, 1000);
    http_server_adopt(srv, sv[0]);
    size_t off = 0;
    char sink[65536];
    for (int i = 0; i < 200; i++) {
        if (off < size) {
            ssize_t w = write(sv[1], data + off, size - off);
            if (w > 0)
                off += (size_t)w;
        } else if (off == size) {
            shutdown(sv[1], SHUT_WR);
            off++;
        }
        while (read(sv[1], sink, sizeof(sink)) > 0)
            ;
        if (!ev_run(loop, EVRUN_NOWAIT) && off > size)
            break;
    }
    http_server_stop(srv);
    ev_loop_destroy(loop);
    close(sv[1]);
    return 0;
}
