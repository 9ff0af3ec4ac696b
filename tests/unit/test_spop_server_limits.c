/*
 * test_spop_server_limits.c - what a peer may cost the SPOP server
 * (struct spop_limits): the HELLO and every frame within frame_timeout,
 * an idle connection after its HELLO closed after idle_timeout (and kept
 * when it is 0), the connection cap, and read buffers that grow with the
 * bytes received, not with a length prefix's promise. Same fixture as
 * test_spop_server.c; the timeouts are short so the waits are.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "spop_server_fixture.h"

static void set_limits(int64_t frame_ms, int64_t idle_ms, int64_t max_conns)
{
    struct spop_limits l = { frame_ms, idle_ms, max_conns };
    spop_server_set_limits(srv, &l);
}

static uint64_t dropped(enum spop_drop_reason r)
{
    return spop_server_stats(srv)->dropped[r];
}

/* The loop runs for ms (to see that nothing happens meanwhile). */
static void pump_for(int64_t ms)
{
    int64_t until = sl_now_ms() + ms;
    while (sl_now_ms() < until)
        ev_run(loop, EVRUN_ONCE);
}

static bool no_conns(const void *arg)
{
    (void)arg;
    return spop_server_stats(srv)->connections_open == 0;
}

/* A peer closed by a limit: DISCONNECT "timeout", then EOF, not before ms. */
static void expect_timed_out(struct client *c, int64_t t0, int64_t ms)
{
    expect_disconnect(c, SPOP_STATUS_TIMEOUT);
    client_expect_eof(c);
    assert_true(sl_now_ms() - t0 >= ms - 20);
    client_close(c);
    pump_until(no_conns, NULL);
}

static void test_half_frame_times_out(void **state)
{
    (void)state;
    set_limits(200, 0, 0);
    struct client *c = client_ready();
    int64_t t0 = sl_now_ms();
    client_send(c, "\x00\x00\x00\x64\x03\x00", 6);   /* 6 of a 104-byte frame */
    expect_timed_out(c, t0, 200);
    assert_int_equal(dropped(SPOP_DROP_FRAME_TIMEOUT), 1);
    assert_int_equal(spop_server_stats(srv)->protocol_errors, 0);
}

static void test_no_hello_times_out(void **state)
{
    (void)state;
    set_limits(200, 0, 0);
    int64_t t0 = sl_now_ms();
    struct client *silent = client_open();
    expect_timed_out(silent, t0, 200);
    /* A HELLO that never ends is the same, however it trickles. */
    uint8_t buf[512];
    size_t n = build_hello(buf, sizeof(buf), &std_hello);
    t0 = sl_now_ms();
    struct client *slow = client_open();
    client_send(slow, buf, n / 2);
    expect_timed_out(slow, t0, 200);
    assert_int_equal(dropped(SPOP_DROP_HELLO_TIMEOUT), 2);
}

static void test_idle_after_hello(void **state)
{
    (void)state;
    uint8_t buf[512];
    set_limits(200, 0, 0);
    /* idle_timeout 0: an idle HAProxy connection stays past frame_timeout. */
    struct client *c = client_ready();
    pump_for(500);
    client_send(c, buf, build_notify(buf, sizeof(buf), 1, 1, &hit_args));
    expect_ack(c, 1, 1, "hit", -1);
    /* idle_timeout 400ms: frames every 100ms keep it, silence ends it. */
    set_limits(200, 400, 0);
    for (uint64_t i = 2; i < 8; i++) {
        pump_for(100);
        client_send(c, buf, build_notify(buf, sizeof(buf), i, 1, &hit_args));
        expect_ack(c, i, 1, "hit", -1);
    }
    expect_timed_out(c, sl_now_ms(), 400);
    assert_int_equal(dropped(SPOP_DROP_IDLE_TIMEOUT), 1);
    assert_int_equal(dropped(SPOP_DROP_FRAME_TIMEOUT), 0);
}

static bool one_open(const void *arg)
{
    (void)arg;
    return spop_server_stats(srv)->connections_open == 1;
}

static void test_connection_cap(void **state)
{
    (void)state;
    set_limits(5000, 0, 2);
    struct client *a = client_ready();
    struct client *b = client_ready();
    struct client *over = client_open();
    expect_disconnect(over, SPOP_STATUS_RESOURCE);
    client_expect_eof(over);
    client_close(over);
    assert_int_equal(dropped(SPOP_DROP_CAP), 1);
    assert_int_equal(spop_server_stats(srv)->connections_open, 2);
    /* One leaves: there is room again. */
    client_close(a);
    pump_until(one_open, NULL);
    struct client *c = client_ready();
    assert_int_equal(dropped(SPOP_DROP_CAP), 1);
    client_close(b);
    client_close(c);
    pump_until(no_conns, NULL);
}

static bool all_received(const void *arg)
{
    (void)arg;
    return spop_server_stats(srv)->connections_open == 20 && spop_server_stats(srv)->buffer_bytes > 0;
}

/* Twenty peers announce 60000-byte frames and send 10 bytes of them: the
 * server holds small buffers, not 20 x 60000 bytes. */
static void test_half_frame_buffers_stay_small(void **state)
{
    (void)state;
    enum { N = 20 };
    struct client *cs[N];
    static const uint8_t half[] = { 0x00, 0x00, 0xea, 0x60, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00 };
    for (int i = 0; i < N; i++) {
        cs[i] = client_open();
        client_send(cs[i], half, sizeof(half));
    }
    pump_until(all_received, NULL);
    pump_for(50);
    assert_true(spop_server_stats(srv)->buffer_bytes <= (uint64_t)N * 1024);
    for (int i = 0; i < N; i++)
        client_close(cs[i]);
    pump_until(no_conns, NULL);
    assert_int_equal(spop_server_stats(srv)->buffer_bytes, 0);
}

/* A frame larger than the first buffers still arrives whole, in pieces. */
static void test_buffer_grows_with_the_bytes(void **state)
{
    (void)state;
    static uint8_t buf[SPOP_SERVER_MAX_FRAME + 64];
    static char path[40000];
    memset(path, 'p', sizeof(path) - 1);
    path[0] = '/';
    struct hello_opts o = std_hello;
    o.max_frame_size = SPOP_SERVER_MAX_FRAME;
    struct client *c = client_open();
    client_send(c, buf, build_hello(buf, sizeof(buf), &o));
    expect_agent_hello(c, SPOP_SERVER_MAX_FRAME, "pipelining");
    struct lookup_args big = { "npm", "GET", path, NULL, false, false, false, false, false };
    size_t n = build_notify(buf, sizeof(buf), 1, 1, &big);
    for (size_t off = 0; off < n; off += 1000) {
        client_send(c, buf + off, SL_MIN((size_t)1000, n - off));
        ev_run(loop, EVRUN_NOWAIT);
    }
    expect_ack(c, 1, 1, "fill", -1);
    client_close(c);
    pump_until(no_conns, NULL);
}

int main(void)
{
    quiet_logs();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_half_frame_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_hello_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_after_hello, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_half_frame_buffers_stay_small, setup, teardown),
        cmocka_unit_test_setup_teardown(test_buffer_grows_with_the_bytes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
