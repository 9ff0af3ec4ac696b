/*
 * spop_server_fixture.h - the fixture of the SPOP server unit tests
 * (test_spop_server.c, test_spop_server_notify.c): the server end to end
 * over loopback TCP, test clients, frame builders and expectations.
 *
 * Everything runs on one thread: the server and the test clients share one
 * libev loop, and a client that waits for bytes runs the loop until they
 * arrive (or a deadline passes). A repeating tick timer makes each loop
 * iteration return, so deadlines are checked even when nothing happens.
 * No sleeps: every wait is for a condition.
 *
 * Each test file is its own program, so the state below is per program.
 * Functions are static inline so that a test file using only some of them
 * builds without -Wunused-function warnings.
 */
#ifndef SLUICE_TEST_SPOP_SERVER_FIXTURE_H
#define SLUICE_TEST_SPOP_SERVER_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "core/common.h"
#include "core/log.h"
#include "spop/spop_codec.h"
#include "spop/spop_server.h"

#include "spop_test_util.h"   /* golden frames */

#define DEADLINE_MS 10000
#define CLIENT_BUF (2 * SPOP_SERVER_MAX_FRAME)

/* ------------------------------------------------------------ fixture */

struct stub {
    int calls;
    bool route_null, query_null;
    char route[64], method[16], path[256], query[256];
    bool auth, range, plain;
};

static struct ev_loop *loop;
static struct spop_server *srv;
static ev_timer tick;
static struct stub stub;

static inline void copy_field(char *dst, size_t cap, const char *p, size_t len)
{
    size_t n = len < cap - 1 ? len : cap - 1;
    memcpy(dst, p, n);
    dst[n] = '\0';
}

/* Body of the inline answers: binary, NUL bytes included. */
static uint8_t inline_body[20000];
static const char inline_hdrs[] = "ETag: \"e1\"\r\nCache-Status: sluice; hit\r\n";

/* Verdict by path: "/busy" -> busy + retry 30, "/hit" -> hit, "/inline" ->
 * an inline answer of 1000 bytes, "/inline-big" -> one of 20000 bytes
 * (more than a 16380-byte frame holds), else fill. */
static inline void stub_verdict(void *ctx, const struct spop_lookup *in, struct spop_verdict *out)
{
    struct stub *s = ctx;
    s->calls++;
    s->route_null = in->route == NULL;
    s->query_null = in->query == NULL;
    if (in->route)
        copy_field(s->route, sizeof(s->route), in->route, in->route_len);
    copy_field(s->method, sizeof(s->method), in->method, in->method_len);
    copy_field(s->path, sizeof(s->path), in->path, in->path_len);
    if (in->query)
        copy_field(s->query, sizeof(s->query), in->query, in->query_len);
    s->auth = in->has_auth;
    s->range = in->has_range;
    s->plain = in->plain;
    out->retry_after = -1;
    if (in->path_len == 5 && memcmp(in->path, "/busy", 5) == 0) {
        out->verdict = "busy";
        out->retry_after = 30;
    } else if (in->path_len == 4 && memcmp(in->path, "/hit", 4) == 0) {
        out->verdict = "hit";
    } else if (in->path_len >= 7 && memcmp(in->path, "/inline", 7) == 0) {
        out->verdict = "inline";
        out->fallback = "hit";
        out->hdrs = inline_hdrs;
        out->hdrs_len = strlen(inline_hdrs);
        out->body = inline_body;
        out->body_len = in->path_len == 7 ? 1000 : sizeof(inline_body);
    } else {
        out->verdict = "fill";
    }
}

static inline void tick_cb(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)l;
    (void)w;
    (void)revents;
}

static inline int setup(void **state)
{
    (void)state;
    char err[256];
    memset(&stub, 0, sizeof(stub));
    loop = ev_loop_new(EVFLAG_AUTO);
    srv = spop_server_start(loop, "127.0.0.1:0", stub_verdict, &stub, err, sizeof(err));
    if (!srv) {
        fprintf(stderr, "spop_server_start: %s\n", err);
        return -1;
    }
    ev_timer_init(&tick, tick_cb, 0.02, 0.02);
    ev_timer_start(loop, &tick);
    return 0;
}

static inline int teardown(void **state)
{
    (void)state;
    spop_server_stop(srv);
    srv = NULL;
    ev_timer_stop(loop, &tick);
    ev_loop_destroy(loop);
    return 0;
}

/* Called first by each test program: the error cases log warnings by
 * design, so only errors are logged unless SPOP_TEST_VERBOSE is set. */
static inline void quiet_logs(void)
{
    if (!getenv("SPOP_TEST_VERBOSE"))
        log_set_level(LOG_ERROR);
}

/* Runs the loop until cond(arg) holds; fails the test at the deadline. */
static inline void pump_until(bool (*cond)(const void *), const void *arg)
{
    int64_t deadline = sl_now_ms() + DEADLINE_MS;
    while (!cond(arg)) {
        assert_true(sl_now_ms() < deadline);
        ev_run(loop, EVRUN_ONCE);
    }
}

/* ------------------------------------------------------------- client */

struct client {
    int fd;
    ev_io io;
    uint8_t buf[CLIENT_BUF];
    size_t len;
    bool eof;
    uint8_t frame[CLIENT_BUF];   /* the last frame taken, for decoding */
};

static inline void client_read_cb(struct ev_loop *l, ev_io *w, int revents)
{
    struct client *c = w->data;
    (void)revents;
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
    if (n > 0) {
        c->len += (size_t)n;
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    c->eof = true;   /* FIN, or a reset */
    ev_io_stop(l, w);
}

static inline struct client *client_open_on(int port, bool watch, int rcvbuf)
{
    struct client *c = sl_calloc(1, sizeof(*c));
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(c->fd >= 0);
    if (rcvbuf > 0)
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    /* Loopback connect completes in the kernel backlog, before accept. */
    assert_int_equal(connect(c->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    ev_io_init(&c->io, client_read_cb, c->fd, EV_READ);
    c->io.data = c;
    if (watch)
        ev_io_start(loop, &c->io);
    return c;
}

static inline struct client *client_open(void)
{
    return client_open_on(spop_server_port(srv), true, 0);
}

static inline void client_close(struct client *c)
{
    ev_io_stop(loop, &c->io);
    close(c->fd);
    free(c);
}

/* Sends everything, running the loop while the socket is full. */
static inline void client_send(struct client *c, const void *p, size_t n)
{
    const uint8_t *b = p;
    int64_t deadline = sl_now_ms() + DEADLINE_MS;
    while (n > 0) {
        ssize_t k = send(c->fd, b, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (k > 0) {
            b += k;
            n -= (size_t)k;
            continue;
        }
        assert_true(k < 0 && errno == EAGAIN);
        assert_true(sl_now_ms() < deadline);
        ev_run(loop, EVRUN_ONCE);   /* let the server read */
    }
}

static inline bool client_has_frame(const void *arg)
{
    const struct client *c = arg;
    uint32_t len;
    return c->eof ||
           (spop_frame_peek_length(c->buf, c->len, &len) && c->len >= (size_t)len + 4);
}

/* Waits for one whole frame, moves it to c->frame and decodes it. */
static inline void client_expect_frame(struct client *c, struct spop_frame *f)
{
    size_t wire = 0;
    pump_until(client_has_frame, c);
    assert_int_equal(spop_frame_decode(c->buf, c->len, CLIENT_BUF, f, &wire), SPOP_DECODE_OK);
    memcpy(c->frame, c->buf, wire);
    memmove(c->buf, c->buf + wire, c->len - wire);
    c->len -= wire;
    assert_int_equal(spop_frame_parse(c->frame + 4, wire - 4, f), true);
    assert_int_equal(f->flags, SPOP_FLAG_FIN);   /* agent frames always carry FIN */
}

static inline bool client_at_eof(const void *arg)
{
    return ((const struct client *)arg)->eof;
}

static inline void client_expect_eof(struct client *c)
{
    pump_until(client_at_eof, c);
    assert_int_equal(c->len, 0);
}

/* --------------------------------------------------- frame builders */

struct hello_opts {
    const char *versions;        /* NULL: key left out */
    int64_t max_frame_size;      /* < 0: key left out */
    const char *capabilities;    /* NULL: key left out */
    bool healthcheck;
    uint32_t flags;
};

static inline size_t build_hello(uint8_t *buf, size_t cap, const struct hello_opts *o)
{
    struct spop_writer w;
    spop_writer_init(&w, buf, cap);
    spop_frame_begin(&w, SPOP_FRAME_HAPROXY_HELLO, o->flags, 0, 0);
    if (o->versions) {
        struct spop_data v = spop_data_cstr(o->versions);
        spop_put_kv(&w, "supported-versions", &v);
    }
    if (o->max_frame_size >= 0) {
        struct spop_data v = spop_data_uint32((uint32_t)o->max_frame_size);
        spop_put_kv(&w, "max-frame-size", &v);
    }
    if (o->capabilities) {
        struct spop_data v = spop_data_cstr(o->capabilities);
        spop_put_kv(&w, "capabilities", &v);
    }
    if (o->healthcheck) {
        struct spop_data v = spop_data_bool(true);
        spop_put_kv(&w, "healthcheck", &v);
    } else {
        struct spop_data v = spop_data_cstr(FAKE_ENGINE_ID);
        spop_put_kv(&w, "engine-id", &v);
    }
    size_t n = spop_frame_end(&w);
    assert_true(n > 0);
    return n;
}

static const struct hello_opts std_hello = { "2.0", 16380, "pipelining,async", false, SPOP_FLAG_FIN };

struct lookup_args {
    const char *route;   /* NULL: sent as NULL */
    const char *method;
    const char *path;
    const char *query;   /* NULL: sent as NULL */
    bool auth, range;
    bool inm, ims;
    bool omit_cond;      /* send neither inm nor ims (an older spoe.conf) */
};

static inline void put_str_or_null(struct spop_writer *w, const char *name, const char *v)
{
    struct spop_data d = v ? spop_data_cstr(v) : spop_data_null();
    spop_put_raw_string(w, name, strlen(name));
    spop_put_data(w, &d);
}

static inline size_t build_notify(uint8_t *buf, size_t cap, uint64_t sid, uint64_t fid,
                                  const struct lookup_args *a)
{
    struct spop_writer w;
    struct spop_data auth = spop_data_bool(a->auth);
    struct spop_data range = spop_data_bool(a->range);
    spop_writer_init(&w, buf, cap);
    spop_frame_begin(&w, SPOP_FRAME_NOTIFY, SPOP_FLAG_FIN, sid, fid);
    spop_put_raw_string(&w, "lookup", 6);
    spop_put_u8(&w, a->omit_cond ? 6 : 8);
    put_str_or_null(&w, "route", a->route);
    put_str_or_null(&w, "method", a->method);
    put_str_or_null(&w, "path", a->path);
    put_str_or_null(&w, "query", a->query);
    spop_put_raw_string(&w, "auth", 4);
    spop_put_data(&w, &auth);
    spop_put_raw_string(&w, "range", 5);
    spop_put_data(&w, &range);
    if (!a->omit_cond) {
        struct spop_data inm = spop_data_bool(a->inm), ims = spop_data_bool(a->ims);
        spop_put_raw_string(&w, "inm", 3);
        spop_put_data(&w, &inm);
        spop_put_raw_string(&w, "ims", 3);
        spop_put_data(&w, &ims);
    }
    size_t n = spop_frame_end(&w);
    assert_true(n > 0);
    return n;
}

static const struct lookup_args hit_args = { "npm", "GET", "/hit", NULL, false, false, false, false, false };

/* ---------------------------------------------------- expectations */

static inline void expect_agent_hello(struct client *c, uint32_t max_frame, const char *caps)
{
    struct spop_frame f;
    struct spop_kv_iter it;
    struct spop_kv kv;
    client_expect_frame(c, &f);
    assert_int_equal(f.type, SPOP_FRAME_AGENT_HELLO);
    assert_true(f.stream_id == 0 && f.frame_id == 0);
    spop_kv_iter_init(&it, f.payload, f.payload_len);
    assert_int_equal(spop_kv_next(&it, &kv), 1);
    assert_true(sl_bytes_eq(kv.key, kv.key_len, "version"));
    assert_int_equal(kv.value.type, SPOP_DATA_STRING);
    assert_true(sl_bytes_eq(kv.value.u.str.ptr, kv.value.u.str.len, "2.0"));
    assert_int_equal(spop_kv_next(&it, &kv), 1);
    assert_true(sl_bytes_eq(kv.key, kv.key_len, "max-frame-size"));
    assert_int_equal(kv.value.type, SPOP_DATA_UINT32);
    assert_int_equal(kv.value.u.uint32, max_frame);
    assert_int_equal(spop_kv_next(&it, &kv), 1);
    assert_true(sl_bytes_eq(kv.key, kv.key_len, "capabilities"));
    assert_int_equal(kv.value.type, SPOP_DATA_STRING);
    assert_true(sl_bytes_eq(kv.value.u.str.ptr, kv.value.u.str.len, caps));
    assert_int_equal(spop_kv_next(&it, &kv), 0);
}

static inline void expect_ack(struct client *c, uint64_t sid, uint64_t fid, const char *verdict,
                              int retry_after)
{
    struct spop_frame f;
    struct spop_action_iter it;
    struct spop_action act;
    client_expect_frame(c, &f);
    assert_int_equal(f.type, SPOP_FRAME_ACK);
    assert_true(f.stream_id == sid);
    assert_true(f.frame_id == fid);
    spop_action_iter_init(&it, f.payload, f.payload_len);
    assert_int_equal(spop_action_next(&it, &act), 1);
    assert_int_equal(act.type, SPOP_ACTION_SET_VAR);
    assert_int_equal(act.scope, SPOP_SCOPE_TXN);
    assert_true(sl_bytes_eq(act.name, act.name_len, "verdict"));
    assert_int_equal(act.value.type, SPOP_DATA_STRING);
    assert_true(sl_bytes_eq(act.value.u.str.ptr, act.value.u.str.len, verdict));
    if (retry_after >= 0) {
        assert_int_equal(spop_action_next(&it, &act), 1);
        assert_true(sl_bytes_eq(act.name, act.name_len, "retry_after"));
        assert_int_equal(act.value.type, SPOP_DATA_INT32);
        assert_int_equal(act.value.u.int32, retry_after);
    }
    assert_int_equal(spop_action_next(&it, &act), 0);
}

static inline void expect_disconnect(struct client *c, uint32_t status)
{
    struct spop_frame f;
    struct spop_disconnect d;
    client_expect_frame(c, &f);
    assert_int_equal(f.type, SPOP_FRAME_AGENT_DISCONNECT);
    assert_true(spop_disconnect_decode(f.payload, f.payload_len, &d));
    assert_true(d.has_status);
    assert_int_equal(d.status, status);
    assert_non_null(d.message);
    assert_true(d.message_len > 0);
}

/* A client that has done the standard HELLO. */
static inline struct client *client_ready(void)
{
    uint8_t buf[512];
    struct client *c = client_open();
    client_send(c, buf, build_hello(buf, sizeof(buf), &std_hello));
    expect_agent_hello(c, 16380, "pipelining");
    return c;
}

#endif
