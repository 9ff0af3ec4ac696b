/*
 * test_http_server.c - the HTTP/1.1 server over a socketpair: keep-alive,
 * HEAD, limits and error answers, chunked and length framing, and the rule
 * that a body error after the head is an aborted transfer, never a clean end;
 * a head marked head_alone leaves in a loop pass of its own.
 * Over TCP: a large file body is sent corked and the socket is uncorked once
 * the body is done or has to wait, so no byte is ever held back by the cork.
 * Over a UNIX socket: a bulk (hit) body raises the send buffer, any other
 * response restores it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ev.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/common.h"
#include "http/http_server.h"

/* A streamed response: `pieces` pieces of "abc", then end or error. */
struct test_resp {
    struct http_response base;
    enum http_body_mode mode;
    int pieces;
    int sent;
    bool fail;
    bool head_alone;
    bool *finished_ok;
};

static enum http_head_result t_head(struct http_response *r, struct http_head *out)
{
    struct test_resp *t = (struct test_resp *)r;
    if (t->mode == HTTP_BODY_CHUNKED) {
        http_head_printf(out, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    } else {
        http_head_printf(out, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", t->pieces * 3);
        out->length = (uint64_t)t->pieces * 3;
    }
    out->mode = t->mode;
    out->head_alone = t->head_alone;
    return HTTP_HEAD_READY;
}

static enum http_body_result t_body(struct http_response *r, struct http_piece *out)
{
    struct test_resp *t = (struct test_resp *)r;
    if (t->sent == t->pieces / 2 && t->fail)
        return HTTP_PIECE_ERROR;
    if (t->sent == t->pieces)
        return HTTP_PIECE_END;
    out->data = (const uint8_t *)"abc";
    out->len = 3;
    return HTTP_PIECE_DATA;
}

static void t_consumed(struct http_response *r, size_t n)
{
    struct test_resp *t = (struct test_resp *)r;
    assert_int_equal(n, 3);
    t->sent++;
}

static void t_finish(struct http_response *r, bool completed)
{
    struct test_resp *t = (struct test_resp *)r;
    *t->finished_ok = completed;
    free(t);
}

struct fixture {
    struct ev_loop *loop;
    struct http_server *srv;
    int peer;
    bool finished_ok;
    bool fail;
    bool head_alone;    /* /stream asks for its head in a pass of its own */
    enum http_body_mode mode;
    int server_fd;
    int file_fd;        /* /file: FILE_LEN bytes, served from this fd */
    size_t file_stop;   /* /file stops with WAIT after this many bytes */
    bool waiting;       /* /file's body has reported WAIT */
};

#define FILE_LEN (1024 * 1024)

/* A file-backed response (as a cache hit sends): Content-Length FILE_LEN,
 * body as one file piece, WAIT after file_stop bytes (as a fill's reader
 * that caught up with the origin). */
struct file_resp {
    struct http_response base;
    struct fixture *fx;
    size_t sent;
};

static enum http_head_result f_head(struct http_response *r, struct http_head *out)
{
    SL_UNUSED(r);
    http_head_printf(out, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", FILE_LEN);
    out->length = FILE_LEN;
    out->mode = HTTP_BODY_LENGTH;
    out->body_ready = true;
    out->bulk = true;
    return HTTP_HEAD_READY;
}

static enum http_body_result f_body(struct http_response *r, struct http_piece *out)
{
    struct file_resp *t = (struct file_resp *)r;
    if (t->sent == FILE_LEN)
        return HTTP_PIECE_END;
    if (t->sent == t->fx->file_stop) {
        t->fx->waiting = true;
        return HTTP_PIECE_WAIT;
    }
    out->data = NULL;
    out->fd = t->fx->file_fd;
    out->file_off = t->sent;
    out->len = t->fx->file_stop - t->sent;
    return HTTP_PIECE_DATA;
}

static void f_consumed(struct http_response *r, size_t n)
{
    ((struct file_resp *)r)->sent += n;
}

static void f_finish(struct http_response *r, bool completed)
{
    struct file_resp *t = (struct file_resp *)r;
    t->fx->finished_ok = completed;
    free(t);
}

static void handler(void *ctx, struct http_conn *c, const struct http_request *req)
{
    struct fixture *fx = ctx;
    if (req->path_len == 7 && memcmp(req->path, "/stream", 7) == 0) {
        struct test_resp *t = sl_calloc(1, sizeof(*t));
        t->base = (struct http_response){ t_head, t_body, t_consumed, t_finish };
        t->mode = fx->mode;
        t->pieces = 4;
        t->fail = fx->fail;
        t->head_alone = fx->head_alone;
        t->finished_ok = &fx->finished_ok;
        http_respond_with(c, &t->base);
        return;
    }
    if (req->path_len == 5 && memcmp(req->path, "/file", 5) == 0) {
        struct file_resp *t = sl_calloc(1, sizeof(*t));
        t->base = (struct http_response){ f_head, f_body, f_consumed, f_finish };
        t->fx = fx;
        http_respond_with(c, &t->base);
        return;
    }
    char body[64];
    int n = snprintf(body, sizeof(body), "%.*s|%s|%s", (int)req->path_len, req->path,
                     req->query ? req->query : "-", req->range ? req->range : "-");
    http_respond_simple(c, 200, "text/plain", "", body, (size_t)n);
}

static int setup(void **state)
{
    struct fixture *fx = sl_calloc(1, sizeof(*fx));
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    fx->loop = ev_loop_new(EVFLAG_AUTO);
    fx->srv = http_server_new(fx->loop, handler, fx, 1000);
    fx->mode = HTTP_BODY_CHUNKED;
    http_server_adopt(fx->srv, sv[0]);
    fx->server_fd = sv[0];
    fx->peer = sv[1];
    fx->file_fd = -1;
    *state = fx;
    return 0;
}

/* A FILE_LEN file of the pattern read_file_response checks, for /file. */
static int pattern_file(void)
{
    FILE *tf = tmpfile();
    assert_non_null(tf);
    for (int i = 0; i < FILE_LEN; i++)
        fputc('a' + i % 26, tf);
    assert_int_equal(fflush(tf), 0);
    int fd = dup(fileno(tf));
    fclose(tf);
    return fd;
}

/* The socketpair of setup (a UNIX socket, as the shipped configs use) and a
 * 1 MiB file. */
static int setup_unix_file(void **state)
{
    setup(state);
    struct fixture *fx = *state;
    fx->file_fd = pattern_file();
    fx->file_stop = FILE_LEN;
    return 0;
}

/* Loopback TCP (TCP_CORK means nothing on a socketpair) and a 1 MiB file. */
static int setup_tcp(void **state)
{
    struct fixture *fx = sl_calloc(1, sizeof(*fx));
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(lfd >= 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(lfd, 1), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
    fx->peer = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    assert_true(connect(fx->peer, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno == EINPROGRESS);
    fx->server_fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
    assert_true(fx->server_fd >= 0);
    close(lfd);
    fx->file_fd = pattern_file();
    fx->file_stop = FILE_LEN;
    fx->loop = ev_loop_new(EVFLAG_AUTO);
    fx->srv = http_server_new(fx->loop, handler, fx, 1000);
    http_server_adopt(fx->srv, fx->server_fd);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    http_server_stop(fx->srv);
    ev_loop_destroy(fx->loop);
    close(fx->peer);
    if (fx->file_fd >= 0)
        close(fx->file_fd);
    free(fx);
    return 0;
}

static int corked(struct fixture *fx)
{
    int v = -1;
    socklen_t len = sizeof(v);
    assert_int_equal(getsockopt(fx->server_fd, IPPROTO_TCP, TCP_CORK, &v, &len), 0);
    return v;
}

/* Read until `want` bytes came (head + body), checking the body pattern. */
static size_t read_file_response(struct fixture *fx, size_t want_body)
{
    static char buf[FILE_LEN + 4096];
    size_t len = 0;
    const char *body = NULL;
    int64_t deadline = sl_now_ms() + 5000;
    while (sl_now_ms() < deadline) {
        ev_run(fx->loop, EVRUN_NOWAIT);
        ssize_t n = read(fx->peer, buf + len, sizeof(buf) - 1 - len);
        if (n > 0) {
            len += (size_t)n;
            buf[len] = '\0';
            body = body ? body : strstr(buf, "\r\n\r\n");
            if (body && (size_t)(buf + len - (body + 4)) >= want_body)
                break;
        } else {
            assert_true(n < 0 && errno == EAGAIN);
            struct pollfd p = { .fd = fx->peer, .events = POLLIN };
            poll(&p, 1, 5);
        }
    }
    assert_non_null(body);
    size_t got = (size_t)(buf + len - (body + 4));
    for (size_t i = 0; i < got; i++)
        assert_int_equal(body[4 + i], 'a' + (int)(i % 26));
    return got;
}

static void send_all(struct fixture *fx, const char *s)
{
    assert_int_equal(write(fx->peer, s, strlen(s)), (ssize_t)strlen(s));
}

/* Run the loop and collect what the server sends until `want` appears, the
 * server closes (returns with *closed set), or 2 s pass. */
static size_t exchange(struct fixture *fx, char *buf, size_t cap, const char *want, bool *closed)
{
    size_t len = 0;
    *closed = false;
    int64_t deadline = sl_now_ms() + 2000;
    while (sl_now_ms() < deadline) {
        ev_run(fx->loop, EVRUN_NOWAIT);
        ssize_t n = read(fx->peer, buf + len, cap - 1 - len);
        if (n > 0) {
            len += (size_t)n;
            buf[len] = '\0';
            if (want && strstr(buf, want))
                return len;
        } else if (n == 0) {
            *closed = true;
            return len;
        } else if (errno != EAGAIN) {
            *closed = true;
            return len;
        } else {
            struct pollfd p = { .fd = fx->peer, .events = POLLIN };
            poll(&p, 1, 5);
        }
    }
    buf[len] = '\0';
    return len;
}

static void test_keep_alive_two_requests(void **state)
{
    struct fixture *fx = *state;
    char buf[4096];
    bool closed;
    send_all(fx, "GET /a?x=1 HTTP/1.1\r\nRange: bytes=0-1\r\n\r\n");
    exchange(fx, buf, sizeof(buf), "/a|x=1|bytes=0-1", &closed);
    assert_false(closed);
    assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(buf, "Content-Length: 16\r\n"));
    send_all(fx, "GET /b HTTP/1.1\r\n\r\n");
    exchange(fx, buf, sizeof(buf), "/b|-|-", &closed);
    assert_false(closed);
}

static void test_pipelined_requests_answered_in_order(void **state)
{
    struct fixture *fx = *state;
    char buf[4096];
    bool closed;
    send_all(fx, "GET /one HTTP/1.1\r\n\r\nGET /two HTTP/1.1\r\nConnection: close\r\n\r\n");
    exchange(fx, buf, sizeof(buf), NULL, &closed);
    assert_true(closed);
    char *one = strstr(buf, "/one|"), *two = strstr(buf, "/two|");
    assert_non_null(one);
    assert_non_null(two);
    assert_true(one < two);
    assert_non_null(strstr(buf, "Connection: close"));
}

static void test_head_has_no_body(void **state)
{
    struct fixture *fx = *state;
    char buf[4096];
    bool closed;
    send_all(fx, "HEAD /h HTTP/1.1\r\nConnection: close\r\n\r\n");
    exchange(fx, buf, sizeof(buf), NULL, &closed);
    assert_true(closed);
    assert_non_null(strstr(buf, "Content-Length: 6\r\n"));
    assert_null(strstr(buf, "/h|"));
}

static void expect_error(struct fixture *fx, const char *request, const char *status)
{
    char buf[8192];
    bool closed;
    send_all(fx, request);
    exchange(fx, buf, sizeof(buf), NULL, &closed);
    assert_true(closed);
    assert_non_null(strstr(buf, status));
}

static void test_post_is_405(void **state)
{
    expect_error(*state, "POST /p HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", "HTTP/1.1 405 ");
}

static void test_bad_target_is_400(void **state)
{
    expect_error(*state, "GET *a HTTP/1.1\r\n\r\n", "HTTP/1.1 400 ");
}

static void test_garbage_is_400(void **state)
{
    expect_error(*state, "\x01\x02\x03 nonsense\r\n\r\n", "HTTP/1.1 400 ");
}

static void test_long_url_is_414(void **state)
{
    struct fixture *fx = *state;
    char *req = sl_malloc(HTTP_URL_MAX + 64);
    strcpy(req, "GET /");
    memset(req + 5, 'a', HTTP_URL_MAX + 10);
    strcpy(req + 5 + HTTP_URL_MAX + 10, " HTTP/1.1\r\n\r\n");
    expect_error(fx, req, "HTTP/1.1 414 ");
    free(req);
}

static void test_huge_headers_are_431(void **state)
{
    struct fixture *fx = *state;
    size_t n = HTTP_HEADERS_MAX + 100;
    char *req = sl_malloc(n + 64);
    strcpy(req, "GET / HTTP/1.1\r\nX: ");
    size_t off = strlen(req);
    memset(req + off, 'v', n);
    strcpy(req + off + n, "\r\n\r\n");
    /* The socketpair buffer may not take it all at once: write in steps. */
    char buf[4096] = "";
    bool closed = false;
    size_t len = strlen(req), sent = 0;
    while (sent < len && !closed) {
        ssize_t w = write(fx->peer, req + sent, len - sent);
        if (w > 0)
            sent += (size_t)w;
        ev_run(fx->loop, EVRUN_NOWAIT);
        if (strstr(buf, "431"))
            break;
        if (w <= 0)
            exchange(fx, buf, sizeof(buf), "431", &closed);
    }
    exchange(fx, buf, sizeof(buf), "431", &closed);
    assert_non_null(strstr(buf, "HTTP/1.1 431 "));
    free(req);
}

static void test_chunked_stream_ends_cleanly(void **state)
{
    struct fixture *fx = *state;
    char buf[4096];
    bool closed;
    send_all(fx, "GET /stream HTTP/1.1\r\n\r\n");
    exchange(fx, buf, sizeof(buf), "0\r\n\r\n", &closed);
    assert_false(closed);
    assert_non_null(strstr(buf, "\r\n\r\n3\r\nabc\r\n3\r\nabc\r\n3\r\nabc\r\n3\r\nabc\r\n0\r\n\r\n"));
    ev_run(fx->loop, EVRUN_NOWAIT);
    assert_true(fx->finished_ok);
}

static void test_chunked_body_error_is_an_abort(void **state)
{
    struct fixture *fx = *state;
    fx->fail = true;
    char buf[4096];
    bool closed;
    send_all(fx, "GET /stream HTTP/1.1\r\n\r\n");
    exchange(fx, buf, sizeof(buf), NULL, &closed);
    assert_true(closed);
    assert_non_null(strstr(buf, "3\r\nabc\r\n3\r\nabc\r\n"));
    assert_null(strstr(buf, "0\r\n\r\n"));
    assert_false(fx->finished_ok);
}

static void test_length_body_error_is_short_and_closed(void **state)
{
    struct fixture *fx = *state;
    fx->fail = true;
    fx->mode = HTTP_BODY_LENGTH;
    char buf[4096];
    bool closed;
    send_all(fx, "GET /stream HTTP/1.1\r\n\r\n");
    exchange(fx, buf, sizeof(buf), NULL, &closed);
    assert_true(closed);
    assert_non_null(strstr(buf, "Content-Length: 12\r\n\r\nabcabc"));
    assert_null(strstr(buf, "abcabcabc"));
}

static void test_client_gone_mid_response_finishes_incomplete(void **state)
{
    struct fixture *fx = *state;
    send_all(fx, "GET /stream HTTP/1.1\r\n\r\n");
    shutdown(fx->peer, SHUT_RDWR);
    for (int i = 0; i < 50; i++)
        ev_run(fx->loop, EVRUN_NOWAIT);
    assert_int_equal(http_server_stats(fx->srv)->connections_open, 0);
}

static void test_large_file_body_leaves_the_socket_uncorked(void **state)
{
    struct fixture *fx = *state;
    send_all(fx, "GET /file HTTP/1.1\r\n\r\n");
    assert_int_equal(read_file_response(fx, FILE_LEN), FILE_LEN);
    assert_true(fx->finished_ok);
    assert_int_equal(corked(fx), 0);
}

static void test_body_that_waits_is_uncorked_while_it_waits(void **state)
{
    struct fixture *fx = *state;
    fx->file_stop = 300 * 1024;   /* past CORK_MIN: sent corked */
    send_all(fx, "GET /file HTTP/1.1\r\n\r\n");
    /* Every byte before the wait reaches the client, none held by a cork. */
    assert_int_equal(read_file_response(fx, fx->file_stop), fx->file_stop);
    assert_true(fx->waiting);
    assert_int_equal(corked(fx), 0);
}

/* Another client connection on the fixture's server; returns its end. */
static int adopt_peer(struct fixture *fx)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    http_server_adopt(fx->srv, sv[0]);
    return sv[1];
}

/* Drain (SIGTERM): the idle keep-alive connection is closed at once; the
 * one sending a body stays and is the one counted busy; one holding half a
 * request is answered when the rest comes, with Connection: close. */
static void test_drain_closes_idle_and_lets_responses_finish(void **state)
{
    struct fixture *fx = *state;
    char buf[4096];
    bool closed;
    send_all(fx, "GET /a HTTP/1.1\r\n\r\n");
    exchange(fx, buf, sizeof(buf), "/a|-|-", &closed);
    assert_false(closed);
    fx->file_stop = 1000;
    int sending = adopt_peer(fx), half = adopt_peer(fx);
    static const char file_req[] = "GET /file HTTP/1.1\r\n\r\n", half_req[] = "GET /b HTTP/1.1\r\n";
    assert_int_equal(write(sending, file_req, strlen(file_req)), (ssize_t)strlen(file_req));
    assert_int_equal(write(half, half_req, strlen(half_req)), (ssize_t)strlen(half_req));
    for (int i = 0; i < 100 && !fx->waiting; i++)
        ev_run(fx->loop, EVRUN_NOWAIT);
    assert_true(fx->waiting);
    for (int i = 0; i < 10; i++)   /* the half request is read too (its socket was readable) */
        ev_run(fx->loop, EVRUN_NOWAIT);
    assert_int_equal(http_server_busy(fx->srv), 1);
    http_server_drain(fx->srv);
    assert_int_equal(http_server_busy(fx->srv), 1);
    assert_int_equal(http_server_stats(fx->srv)->connections_open, 2);
    exchange(fx, buf, sizeof(buf), NULL, &closed);
    assert_true(closed);                       /* the idle one */
    close(fx->peer);
    fx->peer = half;
    send_all(fx, "\r\n");
    exchange(fx, buf, sizeof(buf), NULL, &closed);
    assert_true(closed);
    assert_non_null(strstr(buf, "Connection: close\r\n"));
    assert_non_null(strstr(buf, "/b|-|-"));
    assert_int_equal(http_server_busy(fx->srv), 1);
    close(sending);
}

static int sndbuf(struct fixture *fx)
{
    int v = -1;
    socklen_t len = sizeof(v);
    assert_int_equal(getsockopt(fx->server_fd, SOL_SOCKET, SO_SNDBUF, &v, &len), 0);
    return v;
}

/* Over a UNIX socket a bulk body (a hit's file) is sent with a raised send
 * buffer; any other response, as a fill's followers get, brings it back to
 * the default. */
static void test_unix_send_buffer_grows_for_files_only(void **state)
{
    struct fixture *fx = *state;
    int initial = sndbuf(fx);
    send_all(fx, "GET /file HTTP/1.1\r\n\r\n");
    assert_int_equal(read_file_response(fx, FILE_LEN), FILE_LEN);
    /* The last bytes can reach the peer a loop pass before the server
     * finishes the response. */
    for (int64_t deadline = sl_now_ms() + 2000; !fx->finished_ok && sl_now_ms() < deadline;)
        ev_run(fx->loop, EVRUN_NOWAIT);
    assert_true(fx->finished_ok);
    FILE *f = fopen("/proc/sys/net/core/wmem_max", "r");
    int wmem_max = 0;
    if (f) {
        assert_int_equal(fscanf(f, "%d", &wmem_max), 1);
        fclose(f);
    }
    if (wmem_max > initial / 2)   /* else the kernel allows nothing larger */
        assert_true(sndbuf(fx) > initial);
    fx->mode = HTTP_BODY_LENGTH;
    send_all(fx, "GET /stream HTTP/1.1\r\n\r\n");
    char buf[1024];
    bool closed;
    exchange(fx, buf, sizeof(buf), "abcabcabcabc", &closed);
    assert_false(closed);
    assert_int_equal(sndbuf(fx), initial);
}

/* A head sent alone leaves in one loop pass and its body only from the next:
 * when a fill wakes hundreds of followers in one pass, every head goes out
 * before any body. Without head_alone the first pass carries both. */
static void test_head_alone_leaves_in_a_pass_of_its_own(void **state)
{
    struct fixture *fx = *state;
    fx->mode = HTTP_BODY_LENGTH;
    fx->head_alone = true;
    send_all(fx, "GET /stream HTTP/1.1\r\n\r\n");
    char first[512];
    ssize_t n = -1;
    int64_t deadline = sl_now_ms() + 2000;
    while (n <= 0 && sl_now_ms() < deadline) {
        ev_run(fx->loop, EVRUN_NOWAIT);
        n = recv(fx->peer, first, sizeof(first) - 1, MSG_PEEK | MSG_DONTWAIT);
        if (n <= 0) {
            struct pollfd p = { .fd = fx->peer, .events = POLLIN };
            poll(&p, 1, 5);
        }
    }
    assert_true(n > 0);
    first[n] = '\0';
    const char *end = strstr(first, "\r\n\r\n");
    assert_non_null(end);
    assert_int_equal(end + 4 - first, n);   /* the head and nothing else */
    char buf[1024];
    bool closed;
    exchange(fx, buf, sizeof(buf), "abcabcabcabc", &closed);
    assert_false(closed);
    assert_non_null(strstr(buf, "Content-Length: 12\r\n\r\nabcabcabcabc"));
    assert_true(fx->finished_ok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_keep_alive_two_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_requests_answered_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_has_no_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_is_405, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_target_is_400, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_is_400, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_url_is_414, setup, teardown),
        cmocka_unit_test_setup_teardown(test_huge_headers_are_431, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunked_stream_ends_cleanly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunked_body_error_is_an_abort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_length_body_error_is_short_and_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_gone_mid_response_finishes_incomplete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_alone_leaves_in_a_pass_of_its_own, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_file_body_leaves_the_socket_uncorked, setup_tcp, teardown),
        cmocka_unit_test_setup_teardown(test_body_that_waits_is_uncorked_while_it_waits, setup_tcp, teardown),
        cmocka_unit_test_setup_teardown(test_unix_send_buffer_grows_for_files_only, setup_unix_file, teardown),
        cmocka_unit_test_setup_teardown(test_drain_closes_idle_and_lets_responses_finish, setup_unix_file, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
