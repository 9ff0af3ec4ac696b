/*
 * test_spop_server.c - the SPOP server end to end over loopback TCP.
 *
 * Everything runs on one thread: the server and the test clients share one
 * libev loop, and a client that waits for bytes runs the loop until they
 * arrive (or a deadline passes). A repeating tick timer makes each loop
 * iteration return, so deadlines are checked even when nothing happens.
 * No sleeps: every wait is for a condition.
 */
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

static void copy_field(char *dst, size_t cap, const char *p, size_t len)
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
static void stub_verdict(void *ctx, const struct spop_lookup *in, struct spop_verdict *out)
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

static void tick_cb(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)l;
    (void)w;
    (void)revents;
}

static int setup(void **state)
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

static int teardown(void **state)
{
    (void)state;
    spop_server_stop(srv);
    srv = NULL;
    ev_timer_stop(loop, &tick);
    ev_loop_destroy(loop);
    return 0;
}

/* Runs the loop until cond(arg) holds; fails the test at the deadline. */
static void pump_until(bool (*cond)(const void *), const void *arg)
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

static void client_read_cb(struct ev_loop *l, ev_io *w, int revents)
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

static struct client *client_open_on(int port, bool watch, int rcvbuf)
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

static struct client *client_open(void)
{
    return client_open_on(spop_server_port(srv), true, 0);
}

static void client_close(struct client *c)
{
    ev_io_stop(loop, &c->io);
    close(c->fd);
    free(c);
}

/* Sends everything, running the loop while the socket is full. */
static void client_send(struct client *c, const void *p, size_t n)
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

static bool client_has_frame(const void *arg)
{
    const struct client *c = arg;
    uint32_t len;
    return c->eof ||
           (spop_frame_peek_length(c->buf, c->len, &len) && c->len >= (size_t)len + 4);
}

/* Waits for one whole frame, moves it to c->frame and decodes it. */
static void client_expect_frame(struct client *c, struct spop_frame *f)
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

static bool client_at_eof(const void *arg)
{
    return ((const struct client *)arg)->eof;
}

static void client_expect_eof(struct client *c)
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

static size_t build_hello(uint8_t *buf, size_t cap, const struct hello_opts *o)
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
        struct spop_data v = spop_data_cstr("0123abcd-4567-89ef-0123-456789abcdef");
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

static void put_str_or_null(struct spop_writer *w, const char *name, const char *v)
{
    struct spop_data d = v ? spop_data_cstr(v) : spop_data_null();
    spop_put_raw_string(w, name, strlen(name));
    spop_put_data(w, &d);
}

static size_t build_notify(uint8_t *buf, size_t cap, uint64_t sid, uint64_t fid,
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

static bool str_is(const char *p, size_t len, const char *want)
{
    return len == strlen(want) && memcmp(p, want, len) == 0;
}

static void expect_agent_hello(struct client *c, uint32_t max_frame, const char *caps)
{
    struct spop_frame f;
    struct spop_kv_iter it;
    struct spop_kv kv;
    client_expect_frame(c, &f);
    assert_int_equal(f.type, SPOP_FRAME_AGENT_HELLO);
    assert_true(f.stream_id == 0 && f.frame_id == 0);
    spop_kv_iter_init(&it, f.payload, f.payload_len);
    assert_int_equal(spop_kv_next(&it, &kv), 1);
    assert_true(str_is(kv.key, kv.key_len, "version"));
    assert_int_equal(kv.value.type, SPOP_DATA_STRING);
    assert_true(str_is(kv.value.u.str.ptr, kv.value.u.str.len, "2.0"));
    assert_int_equal(spop_kv_next(&it, &kv), 1);
    assert_true(str_is(kv.key, kv.key_len, "max-frame-size"));
    assert_int_equal(kv.value.type, SPOP_DATA_UINT32);
    assert_int_equal(kv.value.u.uint32, max_frame);
    assert_int_equal(spop_kv_next(&it, &kv), 1);
    assert_true(str_is(kv.key, kv.key_len, "capabilities"));
    assert_int_equal(kv.value.type, SPOP_DATA_STRING);
    assert_true(str_is(kv.value.u.str.ptr, kv.value.u.str.len, caps));
    assert_int_equal(spop_kv_next(&it, &kv), 0);
}

static void expect_ack(struct client *c, uint64_t sid, uint64_t fid, const char *verdict,
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
    assert_true(str_is(act.name, act.name_len, "verdict"));
    assert_int_equal(act.value.type, SPOP_DATA_STRING);
    assert_true(str_is(act.value.u.str.ptr, act.value.u.str.len, verdict));
    if (retry_after >= 0) {
        assert_int_equal(spop_action_next(&it, &act), 1);
        assert_true(str_is(act.name, act.name_len, "retry_after"));
        assert_int_equal(act.value.type, SPOP_DATA_INT32);
        assert_int_equal(act.value.u.int32, retry_after);
    }
    assert_int_equal(spop_action_next(&it, &act), 0);
}

static void expect_disconnect(struct client *c, uint32_t status)
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
static struct client *client_ready(void)
{
    uint8_t buf[512];
    struct client *c = client_open();
    client_send(c, buf, build_hello(buf, sizeof(buf), &std_hello));
    expect_agent_hello(c, 16380, "pipelining");
    return c;
}

/* -------------------------------------------------------------- tests */

static void test_hello_reply(void **state)
{
    (void)state;
    struct client *c = client_ready();
    assert_int_equal(spop_server_stats(srv)->hellos, 1);
    assert_int_equal(spop_server_stats(srv)->healthchecks, 0);
    assert_int_equal(spop_server_stats(srv)->connections_open, 1);
    client_close(c);
}

static void test_hello_caps_and_size(void **state)
{
    (void)state;
    uint8_t buf[512];
    /* No pipelining offered: none announced. Size above ours: ours wins.
     * A version list that includes 2.0 is fine. */
    struct hello_opts o = { "1.0, 2.0", 1000000, "async", false, SPOP_FLAG_FIN };
    struct client *c = client_open();
    client_send(c, buf, build_hello(buf, sizeof(buf), &o));
    expect_agent_hello(c, SPOP_SERVER_MAX_FRAME, "");
    client_close(c);
    /* Capabilities absent altogether; smallest legal size. */
    struct hello_opts o2 = { "2.0", 256, NULL, false, SPOP_FLAG_FIN };
    c = client_open();
    client_send(c, buf, build_hello(buf, sizeof(buf), &o2));
    expect_agent_hello(c, 256, "");
    client_close(c);
}

/* The 82 bytes HAProxy 2.6.12 sends for `option spop-check` (§1.12a). */
static const char hc_hello[] =
    "\x00\x00\x00\x4e" "\x01" "\x00\x00\x00\x01" "\x00\x00"
    "\x12" "supported-versions" "\x08\x03" "2.0"
    "\x0e" "max-frame-size" "\x03\xfc\xf0\x06"
    "\x0c" "capabilities" "\x08\x00"
    "\x0b" "healthcheck" "\x11";

static void test_healthcheck(void **state)
{
    (void)state;
    struct client *c = client_open();
    client_send(c, hc_hello, sizeof(hc_hello) - 1);
    expect_agent_hello(c, 16380, "");
    client_expect_eof(c);
    client_close(c);
    assert_int_equal(spop_server_stats(srv)->healthchecks, 1);
    assert_int_equal(spop_server_stats(srv)->hellos, 1);
    assert_int_equal(spop_server_stats(srv)->protocol_errors, 0);
}

static void test_notify_lookup(void **state)
{
    (void)state;
    uint8_t buf[512];
    struct client *c = client_ready();
    struct lookup_args busy = { "npm", "GET", "/busy", "a=1&b", true, false, false, false, false };
    client_send(c, buf, build_notify(buf, sizeof(buf), 0, 1, &busy));
    expect_ack(c, 0, 1, "busy", 30);
    assert_int_equal(stub.calls, 1);
    assert_false(stub.route_null);
    assert_string_equal(stub.route, "npm");
    assert_string_equal(stub.method, "GET");
    assert_string_equal(stub.path, "/busy");
    assert_false(stub.query_null);
    assert_string_equal(stub.query, "a=1&b");
    assert_true(stub.auth);
    assert_false(stub.range);

    /* NULL route and query; large ids echoed exactly. */
    struct lookup_args hit = { NULL, "HEAD", "/hit", NULL, false, true, false, false, false };
    client_send(c, buf, build_notify(buf, sizeof(buf), 300000, 4294967295u, &hit));
    expect_ack(c, 300000, 4294967295u, "hit", -1);
    assert_true(stub.route_null);
    assert_true(stub.query_null);
    assert_string_equal(stub.method, "HEAD");
    assert_true(stub.range);
    assert_int_equal(spop_server_stats(srv)->notifies, 2);
    assert_int_equal(spop_server_stats(srv)->acks, 2);
    client_close(c);
}

/* "plain" needs range, inm and ims all sent and all false. */
static void test_notify_plain(void **state)
{
    (void)state;
    uint8_t buf[512];
    struct client *c = client_ready();
    const struct lookup_args cases[] = {
        { "npm", "GET", "/x", NULL, false, false, false, false, false },
        { "npm", "GET", "/x", NULL, false, true, false, false, false },
        { "npm", "GET", "/x", NULL, false, false, true, false, false },
        { "npm", "GET", "/x", NULL, false, false, false, true, false },
        { "npm", "GET", "/x", NULL, false, false, false, false, true },
    };
    const bool want[] = { true, false, false, false, false };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        client_send(c, buf, build_notify(buf, sizeof(buf), 1, i + 1, &cases[i]));
        expect_ack(c, 1, i + 1, "fill", -1);
        assert_int_equal(stub.plain, want[i]);
    }
    client_close(c);
}

/* An inline answer: verdict, header lines and the binary body as sent. */
static void expect_inline_ack(struct client *c, uint64_t sid, uint64_t fid, size_t body_len)
{
    struct spop_frame f;
    struct spop_action_iter it;
    struct spop_action act;
    client_expect_frame(c, &f);
    assert_int_equal(f.type, SPOP_FRAME_ACK);
    assert_true(f.stream_id == sid && f.frame_id == fid);
    spop_action_iter_init(&it, f.payload, f.payload_len);
    assert_int_equal(spop_action_next(&it, &act), 1);
    assert_true(str_is(act.name, act.name_len, "verdict"));
    assert_true(str_is(act.value.u.str.ptr, act.value.u.str.len, "inline"));
    assert_int_equal(spop_action_next(&it, &act), 1);
    assert_true(str_is(act.name, act.name_len, "hdrs"));
    assert_int_equal(act.value.type, SPOP_DATA_STRING);
    assert_true(str_is(act.value.u.str.ptr, act.value.u.str.len, inline_hdrs));
    assert_int_equal(spop_action_next(&it, &act), 1);
    assert_true(str_is(act.name, act.name_len, "body"));
    assert_int_equal(act.value.type, SPOP_DATA_BINARY);
    assert_int_equal(act.value.u.str.len, body_len);
    assert_memory_equal(act.value.u.str.ptr, inline_body, body_len);
    assert_int_equal(spop_action_next(&it, &act), 0);
}

/* A body that does not fit the negotiated frame goes out as the fallback
 * verdict, on the same connection, with nothing else lost. */
static void test_inline_answer(void **state)
{
    (void)state;
    uint8_t buf[512];
    for (size_t i = 0; i < sizeof(inline_body); i++)
        inline_body[i] = (uint8_t)(i * 7);   /* NUL every 256 bytes */
    struct client *c = client_ready();
    struct lookup_args small = { "npm", "GET", "/inline", NULL, false, false, false, false, false };
    struct lookup_args big = { "npm", "GET", "/inline-big", NULL, false, false, false, false, false };
    client_send(c, buf, build_notify(buf, sizeof(buf), 1, 1, &small));
    expect_inline_ack(c, 1, 1, 1000);
    client_send(c, buf, build_notify(buf, sizeof(buf), 1, 2, &big));
    expect_ack(c, 1, 2, "hit", -1);
    client_send(c, buf, build_notify(buf, sizeof(buf), 1, 3, &small));
    expect_inline_ack(c, 1, 3, 1000);
    assert_int_equal(spop_server_stats(srv)->inline_too_large, 1);
    assert_int_equal(spop_server_stats(srv)->protocol_errors, 0);
    client_close(c);
}

static void test_notify_missing_args(void **state)
{
    (void)state;
    uint8_t buf[256];
    struct spop_writer w;
    struct spop_data path = spop_data_cstr("/hit");
    struct spop_data extra = spop_data_int64(7);
    struct client *c = client_ready();
    /* Only path, plus an unknown arg: method is empty, route/query NULL. */
    spop_writer_init(&w, buf, sizeof(buf));
    spop_frame_begin(&w, SPOP_FRAME_NOTIFY, SPOP_FLAG_FIN, 9, 2);
    spop_put_raw_string(&w, "lookup", 6);
    spop_put_u8(&w, 2);
    spop_put_raw_string(&w, "whatever", 8);
    spop_put_data(&w, &extra);
    spop_put_raw_string(&w, "path", 4);
    spop_put_data(&w, &path);
    client_send(c, buf, spop_frame_end(&w));
    expect_ack(c, 9, 2, "hit", -1);
    assert_true(stub.route_null);
    assert_true(stub.query_null);
    assert_string_equal(stub.method, "");
    assert_false(stub.auth);
    client_close(c);
}

static void test_pipelined_notifies(void **state)
{
    (void)state;
    uint8_t buf[2048];
    size_t n = 0;
    struct lookup_args busy = { "npm", "GET", "/busy", NULL, false, false, false, false, false };
    struct lookup_args fill = { "npm", "GET", "/other", NULL, false, false, false, false, false };
    struct client *c = client_open();
    /* HELLO and three NOTIFYs in a single write. */
    n += build_hello(buf + n, sizeof(buf) - n, &std_hello);
    n += build_notify(buf + n, sizeof(buf) - n, 1, 1, &hit_args);
    n += build_notify(buf + n, sizeof(buf) - n, 3, 1, &busy);
    n += build_notify(buf + n, sizeof(buf) - n, 5, 1, &fill);
    client_send(c, buf, n);
    expect_agent_hello(c, 16380, "pipelining");
    expect_ack(c, 1, 1, "hit", -1);
    expect_ack(c, 3, 1, "busy", 30);
    expect_ack(c, 5, 1, "fill", -1);
    assert_int_equal(stub.calls, 3);
    client_close(c);
}

static void test_notify_without_lookup(void **state)
{
    (void)state;
    uint8_t buf[256];
    struct spop_writer w;
    struct spop_data v = spop_data_cstr("x");
    struct client *c = client_ready();
    spop_writer_init(&w, buf, sizeof(buf));
    spop_frame_begin(&w, SPOP_FRAME_NOTIFY, SPOP_FLAG_FIN, 2, 1);
    spop_put_raw_string(&w, "other", 5);
    spop_put_u8(&w, 1);
    spop_put_raw_string(&w, "a", 1);
    spop_put_data(&w, &v);
    client_send(c, buf, spop_frame_end(&w));
    expect_ack(c, 2, 1, "pass", -1);
    /* An empty message list too. */
    spop_writer_init(&w, buf, sizeof(buf));
    spop_frame_begin(&w, SPOP_FRAME_NOTIFY, SPOP_FLAG_FIN, 4, 1);
    client_send(c, buf, spop_frame_end(&w));
    expect_ack(c, 4, 1, "pass", -1);
    assert_int_equal(stub.calls, 0);
    client_close(c);
}

static const char haproxy_disconnect[] =
    "\x00\x00\x00\x25" "\x02" "\x00\x00\x00\x01" "\x00\x00"
    "\x0b" "status-code" "\x03\x00"
    "\x07" "message" "\x08\x06" "normal";

static void test_haproxy_disconnect(void **state)
{
    (void)state;
    struct client *c = client_ready();
    client_send(c, haproxy_disconnect, sizeof(haproxy_disconnect) - 1);
    expect_disconnect(c, SPOP_STATUS_NORMAL);
    client_expect_eof(c);
    client_close(c);
    assert_int_equal(spop_server_stats(srv)->disconnects_received, 1);
    assert_int_equal(spop_server_stats(srv)->protocol_errors, 0);
}

static void test_unknown_types_ignored(void **state)
{
    (void)state;
    uint8_t buf[512];
    struct spop_writer w;
    struct client *c = client_ready();
    spop_writer_init(&w, buf, sizeof(buf));
    spop_frame_begin(&w, 42, SPOP_FLAG_FIN, 1, 1);
    spop_put_u8(&w, 0xaa);
    spop_frame_end(&w);
    spop_frame_begin(&w, SPOP_FRAME_UNSET, SPOP_FLAG_FIN, 1, 1);
    spop_frame_end(&w);
    client_send(c, buf, w.len);
    client_send(c, buf, build_notify(buf, sizeof(buf), 7, 1, &hit_args));
    expect_ack(c, 7, 1, "hit", -1);   /* the first thing back */
    client_close(c);
}

static bool conns_closed(const void *arg)
{
    (void)arg;
    return spop_server_stats(srv)->connections_open == 0;
}

static void test_byte_by_byte(void **state)
{
    (void)state;
    uint8_t buf[1024];
    size_t n = build_hello(buf, sizeof(buf), &std_hello);
    n += build_notify(buf + n, sizeof(buf) - n, 11, 3, &hit_args);
    struct client *c = client_open();
    for (size_t i = 0; i < n; i++) {
        client_send(c, buf + i, 1);
        ev_run(loop, EVRUN_NOWAIT);
    }
    expect_agent_hello(c, 16380, "pipelining");
    expect_ack(c, 11, 3, "hit", -1);
    client_close(c);
    pump_until(conns_closed, NULL);
}

static void test_large_frame(void **state)
{
    (void)state;
    static uint8_t buf[SPOP_SERVER_MAX_FRAME + 64];
    static char path[SPOP_SERVER_MAX_FRAME - 200];
    struct hello_opts o = std_hello;
    o.max_frame_size = SPOP_SERVER_MAX_FRAME;
    struct client *c = client_open();
    client_send(c, buf, build_hello(buf, sizeof(buf), &o));
    expect_agent_hello(c, SPOP_SERVER_MAX_FRAME, "pipelining");
    memset(path, 'p', sizeof(path) - 1);
    path[0] = '/';
    path[sizeof(path) - 1] = '\0';
    struct lookup_args big = { "npm", "GET", path, NULL, false, false, false, false, false };
    size_t n = build_notify(buf, sizeof(buf), 1, 1, &big);
    assert_true(n > 60000 && n <= SPOP_SERVER_MAX_FRAME + 4);
    client_send(c, buf, n);
    expect_ack(c, 1, 1, "fill", -1);
    client_close(c);
}

/* ------------------------------------------------- protocol errors */

struct bad_case {
    const char *name;
    bool hello_first;
    uint32_t status;
};

static void run_bad_case(const struct bad_case *bc, const uint8_t *bytes, size_t n)
{
    uint64_t errors = spop_server_stats(srv)->protocol_errors;
    struct client *c = bc->hello_first ? client_ready() : client_open();
    client_send(c, bytes, n);
    expect_disconnect(c, bc->status);
    client_expect_eof(c);
    client_close(c);
    assert_int_equal(spop_server_stats(srv)->protocol_errors, errors + 1);
}

static void test_length_zero(void **state)
{
    (void)state;
    static const struct bad_case bc = { "length 0", false, SPOP_STATUS_INVALID };
    run_bad_case(&bc, (const uint8_t *)"\x00\x00\x00\x00", 4);
    static const struct bad_case bc2 = { "length 6", true, SPOP_STATUS_INVALID };
    run_bad_case(&bc2, (const uint8_t *)"\x00\x00\x00\x06\x03\x00\x00\x00\x01\x00", 10);
}

static void test_length_too_big(void **state)
{
    (void)state;
    /* After HELLO at 16380: 16381 is one too many (body never sent). */
    static const struct bad_case bc = { "over negotiated", true, SPOP_STATUS_TOO_BIG };
    run_bad_case(&bc, (const uint8_t *)"\x00\x00\x3f\xfd\x03\x00\x00\x00\x01", 9);
    /* Before HELLO: over our own buffer. */
    static const struct bad_case bc2 = { "huge", false, SPOP_STATUS_TOO_BIG };
    run_bad_case(&bc2, (const uint8_t *)"\x7f\xff\xff\xff", 4);
}

static void test_hello_errors(void **state)
{
    (void)state;
    static const struct {
        struct hello_opts opts;
        uint32_t status;
    } cases[] = {
        { { "1.0", 16380, "", false, SPOP_FLAG_FIN }, SPOP_STATUS_BAD_VERSION },
        { { "2.0.1", 16380, "", false, SPOP_FLAG_FIN }, SPOP_STATUS_BAD_VERSION },
        { { NULL, 16380, "", false, SPOP_FLAG_FIN }, SPOP_STATUS_NO_VERSION },
        { { "2.0", -1, "", false, SPOP_FLAG_FIN }, SPOP_STATUS_NO_FRAME_SIZE },
        { { "2.0", 255, "", false, SPOP_FLAG_FIN }, SPOP_STATUS_BAD_FRAME_SIZE },
        { { "2.0", 16380, "", false, 0 }, SPOP_STATUS_FRAG_UNSUPPORTED },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t buf[512];
        struct bad_case bc = { "hello", false, cases[i].status };
        run_bad_case(&bc, buf, build_hello(buf, sizeof(buf), &cases[i].opts));
    }
}

static void test_notify_before_hello(void **state)
{
    (void)state;
    uint8_t buf[512];
    static const struct bad_case bc = { "notify first", false, SPOP_STATUS_INVALID };
    run_bad_case(&bc, buf, build_notify(buf, sizeof(buf), 1, 1, &hit_args));
    assert_int_equal(stub.calls, 0);
}

static void test_notify_no_fin(void **state)
{
    (void)state;
    uint8_t buf[512];
    size_t n = build_notify(buf, sizeof(buf), 1, 1, &hit_args);
    buf[8] = 0x00;   /* clear FIN: the last byte of the big-endian flags */
    static const struct bad_case bc = { "no fin", true, SPOP_STATUS_FRAG_UNSUPPORTED };
    run_bad_case(&bc, buf, n);
    assert_int_equal(stub.calls, 0);
}

static void test_malformed_notify(void **state)
{
    (void)state;
    /* Message "lookup", 1 arg whose STRING value claims 9 bytes but has 2. */
    static const char bad[] =
        "\x00\x00\x00\x18" "\x03" "\x00\x00\x00\x01" "\x01\x01"
        "\x06" "lookup" "\x01" "\x04" "path" "\x08\x09" "/x";
    static const struct bad_case bc = { "malformed notify", true, SPOP_STATUS_INVALID };
    run_bad_case(&bc, (const uint8_t *)bad, sizeof(bad) - 1);
    assert_int_equal(stub.calls, 0);
}

static void test_second_hello(void **state)
{
    (void)state;
    uint8_t buf[512];
    static const struct bad_case bc = { "second hello", true, SPOP_STATUS_INVALID };
    run_bad_case(&bc, buf, build_hello(buf, sizeof(buf), &std_hello));
}

/* ------------------------------------------------ connections, stop */

static void test_many_connections(void **state)
{
    (void)state;
    enum { N = 50 };
    struct client *cs[N];
    uint8_t buf[512];
    for (int i = 0; i < N; i++) {
        cs[i] = client_open();
        client_send(cs[i], buf, build_hello(buf, sizeof(buf), &std_hello));
    }
    for (int i = 0; i < N; i++) {
        expect_agent_hello(cs[i], 16380, "pipelining");
        client_send(cs[i], buf, build_notify(buf, sizeof(buf), (uint64_t)i, 1, &hit_args));
    }
    for (int i = 0; i < N; i++)
        expect_ack(cs[i], (uint64_t)i, 1, "hit", -1);
    assert_int_equal(spop_server_stats(srv)->connections_open, N);
    assert_int_equal(spop_server_stats(srv)->connections_total, N);
    for (int i = 0; i < N; i++)
        client_close(cs[i]);
    pump_until(conns_closed, NULL);
}

static bool three_open(const void *arg)
{
    (void)arg;
    return spop_server_stats(srv)->connections_open == 3;
}

static void test_stop_disconnects_everyone(void **state)
{
    (void)state;
    struct client *a = client_ready();
    struct client *b = client_ready();
    struct client *fresh = client_open();   /* no HELLO yet */
    pump_until(three_open, NULL);
    spop_server_stop(srv);
    srv = NULL;
    struct client *cs[] = { a, b, fresh };
    for (size_t i = 0; i < 3; i++) {
        expect_disconnect(cs[i], SPOP_STATUS_NORMAL);
        client_expect_eof(cs[i]);
        client_close(cs[i]);
    }
}

static bool server_closed(const void *arg)
{
    (void)arg;
    return spop_server_stats(srv)->connections_open == 0;
}

static bool one_open(const void *arg)
{
    (void)arg;
    return spop_server_stats(srv)->connections_open == 1;
}

/* A peer that sends NOTIFYs but never reads: the server must give up once
 * its output buffer reaches its bound instead of growing without end. */
static void test_peer_not_reading(void **state)
{
    (void)state;
    enum { BATCH = 500 };
    static uint8_t buf[BATCH * 64];
    struct client *c = client_open_on(spop_server_port(srv), false, 4096);
    size_t n = build_hello(buf, sizeof(buf), &std_hello);
    assert_int_equal(send(c->fd, buf, n, MSG_NOSIGNAL), (ssize_t)n);
    /* A batch of minimal NOTIFYs (message "lookup", no args), sent over
     * and over as one cyclic stream so frames are never cut. */
    struct spop_writer w;
    spop_writer_init(&w, buf, sizeof(buf));
    for (int i = 0; i < BATCH; i++) {
        spop_frame_begin(&w, SPOP_FRAME_NOTIFY, SPOP_FLAG_FIN, 1, 1);
        spop_put_raw_string(&w, "lookup", 6);
        spop_put_u8(&w, 0);
        assert_true(spop_frame_end(&w) > 0);
    }
    pump_until(one_open, NULL);
    size_t off = 0;
    int64_t deadline = sl_now_ms() + 4 * DEADLINE_MS;
    while (!server_closed(NULL)) {
        assert_true(sl_now_ms() < deadline);
        ssize_t k = send(c->fd, buf + off, w.len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (k < 0 && errno != EAGAIN)
            break;   /* reset by the server: it gave up */
        if (k > 0)
            off = (off + (size_t)k) % w.len;
        ev_run(loop, EVRUN_ONCE);
    }
    pump_until(server_closed, NULL);
    assert_true(spop_server_stats(srv)->acks > 1000);
    client_close(c);
}

static void test_bad_addresses(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "nonsense", "127.0.0.1", "::1:80", "127.0.0.1:99999", "127.0.0.1:http",
        "[::1]80", "127.0.0.1:",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[256] = "";
        assert_null(spop_server_start(loop, bad[i], stub_verdict, &stub, err, sizeof(err)));
        assert_true(err[0] != '\0');
    }
    /* The port already taken by the fixture's server. */
    char addr[64], err[256] = "";
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", spop_server_port(srv));
    assert_null(spop_server_start(loop, addr, stub_verdict, &stub, err, sizeof(err)));
    assert_true(err[0] != '\0');
    /* IPv6 loopback, where the machine has it. */
    struct spop_server *v6 = spop_server_start(loop, "[::1]:0", stub_verdict, &stub, err,
                                               sizeof(err));
    if (v6) {
        assert_true(spop_server_port(v6) > 0);
        spop_server_stop(v6);
    } else {
        print_message("note: no IPv6 loopback here (%s)\n", err);
    }
}

int main(void)
{
    if (!getenv("SPOP_TEST_VERBOSE"))
        log_set_level(LOG_ERROR);   /* the error cases log warnings by design */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hello_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hello_caps_and_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_healthcheck, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notify_lookup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notify_missing_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notify_plain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inline_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_notifies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notify_without_lookup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_haproxy_disconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_types_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_byte_by_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_frame, setup, teardown),
        cmocka_unit_test_setup_teardown(test_length_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_length_too_big, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hello_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notify_before_hello, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notify_no_fin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_notify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_hello, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_disconnects_everyone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_not_reading, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_addresses, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
