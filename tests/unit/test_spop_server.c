/*
 * test_spop_server.c - the SPOP server end to end over loopback TCP: the
 * HELLO handshake, framing, protocol errors, connections and stop. NOTIFY
 * and ACK are in test_spop_server_notify.c; the fixture (loop, server,
 * clients, frame builders) in spop_server_fixture.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "spop_server_fixture.h"

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

static void test_healthcheck(void **state)
{
    (void)state;
    struct client *c = client_open();
    client_send(c, BYTES(golden_hc_hello));   /* what `option spop-check` sends */
    expect_agent_hello(c, 16380, "");
    client_expect_eof(c);
    client_close(c);
    assert_int_equal(spop_server_stats(srv)->healthchecks, 1);
    assert_int_equal(spop_server_stats(srv)->hellos, 1);
    assert_int_equal(spop_server_stats(srv)->protocol_errors, 0);
}

static void test_haproxy_disconnect(void **state)
{
    (void)state;
    struct client *c = client_ready();
    client_send(c, BYTES(golden_disconnect));
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


static bool open_is(const void *want)
{
    return spop_server_stats(srv)->connections_open == *(const uint64_t *)want;
}

/* Drain (SIGTERM): no new connection; an idle one says DISCONNECT 0 at
 * once; one still in its handshake answers the HELLO, then says it. */
static void test_drain_disconnects_when_idle(void **state)
{
    (void)state;
    uint8_t buf[512];
    int port = spop_server_port(srv);
    struct client *idle = client_ready();
    struct client *fresh = client_open();   /* no HELLO yet */
    static const uint64_t two = 2;
    pump_until(open_is, &two);
    spop_server_drain(srv);
    expect_disconnect(idle, SPOP_STATUS_NORMAL);
    client_expect_eof(idle);
    client_send(fresh, buf, build_hello(buf, sizeof(buf), &std_hello));
    expect_agent_hello(fresh, 16380, "pipelining");
    expect_disconnect(fresh, SPOP_STATUS_NORMAL);
    client_expect_eof(fresh);
    client_close(idle);
    client_close(fresh);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), -1);
    close(fd);
    assert_int_equal(spop_server_stats(srv)->protocol_errors, 0);
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
    quiet_logs();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hello_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hello_caps_and_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_healthcheck, setup, teardown),
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
        cmocka_unit_test_setup_teardown(test_drain_disconnects_when_idle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_not_reading, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_addresses, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
