/*
 * test_spop_server_notify.c - the SPOP server end to end over loopback TCP:
 * NOTIFY in, ACK out (lookup arguments, verdicts, inline answers,
 * pipelining). The handshake, errors and lifecycle are in
 * test_spop_server.c; the fixture in spop_server_fixture.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "spop_server_fixture.h"

/* ---------------------------------------------------- NOTIFY and ACK */

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

/* An arg sent twice counts as its last value, for "plain" too: range
 * false then true is a Range, never plain (fuzz_spop_server found it plain). */
static void test_notify_repeated_arg(void **state)
{
    (void)state;
    uint8_t buf[512];
    struct spop_writer w;
    static const char *const names[] = { "method", "path", "range", "inm", "ims", "range" };
    const struct spop_data values[] = { spop_data_cstr("GET"), spop_data_cstr("/x"), spop_data_bool(false),
                                        spop_data_bool(false), spop_data_bool(false), spop_data_bool(true) };
    struct client *c = client_ready();
    spop_writer_init(&w, buf, sizeof(buf));
    spop_frame_begin(&w, SPOP_FRAME_NOTIFY, SPOP_FLAG_FIN, 1, 1);
    spop_put_raw_string(&w, "lookup", 6);
    spop_put_u8(&w, SL_ARRAY_LEN(names));
    for (size_t i = 0; i < SL_ARRAY_LEN(names); i++) {
        spop_put_raw_string(&w, names[i], strlen(names[i]));
        spop_put_data(&w, &values[i]);
    }
    client_send(c, buf, spop_frame_end(&w));
    expect_ack(c, 1, 1, "fill", -1);
    assert_true(stub.range);
    assert_false(stub.plain);
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
    assert_true(sl_bytes_eq(act.name, act.name_len, "verdict"));
    assert_true(sl_bytes_eq(act.value.u.str.ptr, act.value.u.str.len, "inline"));
    assert_int_equal(spop_action_next(&it, &act), 1);
    assert_true(sl_bytes_eq(act.name, act.name_len, "hdrs"));
    assert_int_equal(act.value.type, SPOP_DATA_STRING);
    assert_true(sl_bytes_eq(act.value.u.str.ptr, act.value.u.str.len, inline_hdrs));
    assert_int_equal(spop_action_next(&it, &act), 1);
    assert_true(sl_bytes_eq(act.name, act.name_len, "body"));
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

int main(void)
{
    quiet_logs();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_notify_lookup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notify_missing_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notify_plain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notify_repeated_arg, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inline_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_notifies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notify_without_lookup, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
