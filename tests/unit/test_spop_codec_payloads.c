/*
 * test_spop_codec_payloads.c - the SPOP wire codec on frame payloads:
 * HELLO, NOTIFY, ACK and DISCONNECT decoded from and built to the golden
 * frames of shared/notes/spoe.md (§1.12). Varints, typed data, frame
 * headers and the writer are in test_spop_codec.c.
 *
 * Every payload is also cut at every offset: a truncated payload must be
 * reported, never read past, never mistaken for the whole thing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "spop/spop_codec.h"

#include "spop_test_util.h"

/* ------------------------------------------------- payload truncation */

enum payload_kind { KV_LIST, MESSAGES, ACTIONS };

/* Walks a payload; returns the item count (or -1 when malformed) and the
 * offset where each item ends. */
static int walk_payload(enum payload_kind kind, const uint8_t *p, size_t len,
                        size_t *ends, size_t max_ends)
{
    struct spop_kv_iter kv_it;
    struct spop_msg_iter msg_it;
    struct spop_action_iter act_it;
    const struct spop_reader *r;
    int n = 0, rc;
    spop_kv_iter_init(&kv_it, p, len);
    spop_msg_iter_init(&msg_it, p, len);
    spop_action_iter_init(&act_it, p, len);
    r = kind == KV_LIST ? &kv_it.r : kind == MESSAGES ? &msg_it.r : &act_it.r;
    for (;;) {
        struct spop_kv kv;
        struct spop_message msg;
        struct spop_action act;
        if (kind == KV_LIST)
            rc = spop_kv_next(&kv_it, &kv);
        else if (kind == MESSAGES)
            rc = spop_msg_next(&msg_it, &msg);
        else
            rc = spop_action_next(&act_it, &act);
        if (rc <= 0)
            break;
        if ((size_t)n < max_ends)
            ends[n] = (size_t)(r->p - p);
        n++;
    }
    return rc < 0 ? -1 : n;
}

/* Cutting a payload anywhere is an error, except exactly at the end of an
 * item, where the items before the cut come out and nothing else. */
static void check_payload_truncation(enum payload_kind kind, const uint8_t *p, size_t len)
{
    size_t ends[512];
    int total = walk_payload(kind, p, len, ends, 512);
    assert_true(total > 0 && total <= 512);
    assert_int_equal(ends[total - 1], len);
    for (size_t cut = 1; cut < len; cut++) {
        size_t dummy[1];
        int want = -1;
        for (int i = 0; i < total; i++)
            if (ends[i] == cut)
                want = i + 1;
        assert_int_equal(walk_payload(kind, p, cut, dummy, 0), want);
    }
}

static void test_golden_payload_truncation(void **state)
{
    (void)state;
    for (size_t g = 0; g < sizeof(goldens) / sizeof(goldens[0]); g++) {
        struct spop_frame f;
        decode_golden(goldens[g].bytes, goldens[g].len, &f);
        enum payload_kind kind = f.type == SPOP_FRAME_NOTIFY ? MESSAGES
                               : f.type == SPOP_FRAME_ACK    ? ACTIONS
                                                             : KV_LIST;
        check_payload_truncation(kind, f.payload, f.payload_len);
    }
}

/* ------------------------------------------------------------- HELLO */

static void test_golden_hc_hello(void **state)
{
    (void)state;
    struct spop_frame f;
    decode_golden(BYTES(golden_hc_hello), &f);
    assert_int_equal(f.type, SPOP_FRAME_HAPROXY_HELLO);
    assert_true(f.stream_id == 0 && f.frame_id == 0);

    static const char *const keys[] = { "supported-versions", "max-frame-size", "capabilities",
                                        "healthcheck" };
    static const enum spop_data_type types[] = { SPOP_DATA_STRING, SPOP_DATA_UINT32,
                                                 SPOP_DATA_STRING, SPOP_DATA_BOOL };
    struct spop_kv_iter it;
    struct spop_kv kv;
    size_t i = 0;
    spop_kv_iter_init(&it, f.payload, f.payload_len);
    while (spop_kv_next(&it, &kv) == 1) {
        assert_true(i < 4);
        assert_str_n(kv.key, kv.key_len, keys[i]);
        assert_int_equal(kv.value.type, types[i]);
        i++;
    }
    assert_int_equal(i, 4);
    assert_int_equal(spop_kv_next(&it, &kv), 0);

    struct spop_hello h;
    assert_true(spop_hello_decode(f.payload, f.payload_len, &h));
    assert_str_n(h.versions, h.versions_len, "2.0");
    assert_true(h.has_max_frame_size);
    assert_int_equal(h.max_frame_size, 16380);
    assert_non_null(h.capabilities);
    assert_int_equal(h.capabilities_len, 0);
    assert_true(h.healthcheck);
    assert_null(h.engine_id);
}

static void test_golden_traffic_hello_build(void **state)
{
    (void)state;
    uint8_t buf[256];
    struct spop_writer w;
    struct spop_data versions = spop_data_cstr("2.0");
    struct spop_data size = spop_data_uint32(16380);
    struct spop_data caps = spop_data_cstr("pipelining,async");
    struct spop_data engine = spop_data_cstr(FAKE_ENGINE_ID);
    spop_writer_init(&w, buf, sizeof(buf));
    spop_frame_begin(&w, SPOP_FRAME_HAPROXY_HELLO, SPOP_FLAG_FIN, 0, 0);
    spop_put_kv(&w, "supported-versions", &versions);
    spop_put_kv(&w, "max-frame-size", &size);
    spop_put_kv(&w, "capabilities", &caps);
    spop_put_kv(&w, "engine-id", &engine);
    size_t n = spop_frame_end(&w);
    assert_int_equal(n, 4 + 129);
    assert_int_equal(n, sizeof(golden_traffic_hello) - 1);
    assert_memory_equal(buf, golden_traffic_hello, n);

    struct spop_frame f;
    struct spop_hello h;
    decode_golden(buf, n, &f);
    assert_true(spop_hello_decode(f.payload, f.payload_len, &h));
    assert_false(h.healthcheck);
    assert_true(spop_list_has(h.capabilities, h.capabilities_len, "pipelining"));
    assert_true(spop_list_has(h.capabilities, h.capabilities_len, "async"));
    assert_false(spop_list_has(h.capabilities, h.capabilities_len, "fragmentation"));
    assert_str_n(h.engine_id, h.engine_id_len, FAKE_ENGINE_ID);
}

static void test_hello_exact_keys(void **state)
{
    (void)state;
    /* Keys that merely start with a known name must not count. */
    uint8_t buf[256];
    struct spop_writer w;
    struct spop_data v = spop_data_cstr("2.0");
    struct spop_data size = spop_data_uint32(1000);
    struct spop_data wrong_type = spop_data_cstr("16380");
    spop_writer_init(&w, buf, sizeof(buf));
    spop_put_kv(&w, "supported-versions-x", &v);
    spop_put_kv(&w, "max-frame-sizes", &size);
    spop_put_kv(&w, "max-frame-siz", &size);
    struct spop_hello h;
    assert_true(spop_hello_decode(buf, w.len, &h));
    assert_null(h.versions);
    assert_false(h.has_max_frame_size);
    /* A max-frame-size that is not an integer counts as absent. */
    spop_writer_init(&w, buf, sizeof(buf));
    spop_put_kv(&w, "max-frame-size", &wrong_type);
    assert_true(spop_hello_decode(buf, w.len, &h));
    assert_false(h.has_max_frame_size);
    /* Any integer type is accepted. */
    struct spop_data as_int64 = spop_data_int64(20000);
    spop_writer_init(&w, buf, sizeof(buf));
    spop_put_kv(&w, "max-frame-size", &as_int64);
    assert_true(spop_hello_decode(buf, w.len, &h));
    assert_true(h.has_max_frame_size);
    assert_int_equal(h.max_frame_size, 20000);
}

static void test_list_has(void **state)
{
    (void)state;
    assert_true(spop_list_has("2.0", 3, "2.0"));
    assert_true(spop_list_has("1.0, 2.0", 8, "2.0"));
    assert_true(spop_list_has(" 2.0 ,1.0", 9, "2.0"));
    assert_false(spop_list_has("2.0.1", 5, "2.0"));
    assert_false(spop_list_has("1.0", 3, "2.0"));
    assert_false(spop_list_has("", 0, "2.0"));
    assert_false(spop_list_has("pipelining", 9, "pipelining"));   /* length bounds it */
    assert_true(spop_list_has("pipelining,async", 16, "async"));
    assert_false(spop_list_has("pipelining,async", 16, "pipe"));
    assert_true(spop_list_has("a,,b", 4, "b"));
}

static void test_golden_agent_hello_build(void **state)
{
    (void)state;
    uint8_t buf[128];
    size_t n = spop_build_agent_hello(buf, sizeof(buf), 16380, "pipelining");
    assert_int_equal(n, 68);
    assert_memory_equal(buf, golden_agent_hello, 68);
    /* Exactly the space needed works; one byte less writes nothing. */
    assert_int_equal(spop_build_agent_hello(buf, 68, 16380, "pipelining"), 68);
    for (size_t cap = 0; cap < 68; cap++)
        assert_int_equal(spop_build_agent_hello(buf, cap, 16380, "pipelining"), 0);
    /* Empty capabilities: "... 0c capabilities 08 00" (the [RT] vector). */
    n = spop_build_agent_hello(buf, sizeof(buf), 16380, "");
    assert_int_equal(n, 68 - 10);
    assert_memory_equal(buf + n - 2, "\x08\x00", 2);
    assert_memory_equal(buf, "\x00\x00\x00\x36", 4);
}

/* ------------------------------------------------------------- NOTIFY */

static void test_golden_notify_decode(void **state)
{
    (void)state;
    struct spop_frame f;
    decode_golden(BYTES(golden_notify), &f);
    assert_int_equal(f.type, SPOP_FRAME_NOTIFY);
    assert_int_equal(f.stream_id, 5);
    assert_int_equal(f.frame_id, 1);

    struct spop_msg_iter it;
    struct spop_message msg;
    struct spop_arg arg;
    spop_msg_iter_init(&it, f.payload, f.payload_len);
    assert_int_equal(spop_msg_next(&it, &msg), 1);
    assert_str_n(msg.name, msg.name_len, "check");
    assert_int_equal(msg.nb_args, 2);
    assert_int_equal(spop_arg_next(&msg, &arg), 1);
    assert_str_n(arg.name, arg.name_len, "ip");
    assert_int_equal(arg.value.type, SPOP_DATA_IPV4);
    assert_memory_equal(arg.value.u.ipv4, "\x0a\x00\x00\x01", 4);
    assert_int_equal(spop_arg_next(&msg, &arg), 1);
    assert_str_n(arg.name, arg.name_len, "path");
    assert_int_equal(arg.value.type, SPOP_DATA_STRING);
    assert_str_n(arg.value.u.str.ptr, arg.value.u.str.len, "/x");
    assert_int_equal(spop_arg_next(&msg, &arg), 0);
    assert_int_equal(spop_msg_next(&it, &msg), 0);
}

static void test_notify_many_messages(void **state)
{
    (void)state;
    uint8_t buf[4096];
    struct spop_writer w;
    struct spop_data one = spop_data_int64(1);
    spop_writer_init(&w, buf, sizeof(buf));
    /* An empty message, then one with an unnamed arg, then 200 args
     * (nb-args is unsigned: more than 127 must work). */
    spop_put_raw_string(&w, "empty", 5);
    spop_put_u8(&w, 0);
    spop_put_raw_string(&w, "anon", 4);
    spop_put_u8(&w, 1);
    spop_put_raw_string(&w, "", 0);
    spop_put_data(&w, &one);
    spop_put_raw_string(&w, "wide", 4);
    spop_put_u8(&w, 200);
    for (int i = 0; i < 200; i++) {
        spop_put_raw_string(&w, "a", 1);
        spop_put_data(&w, &one);
    }
    assert_false(w.failed);

    struct spop_msg_iter it;
    struct spop_message msg;
    struct spop_arg arg;
    spop_msg_iter_init(&it, buf, w.len);
    assert_int_equal(spop_msg_next(&it, &msg), 1);
    assert_int_equal(msg.nb_args, 0);
    assert_int_equal(spop_arg_next(&msg, &arg), 0);
    assert_int_equal(spop_msg_next(&it, &msg), 1);
    assert_int_equal(spop_arg_next(&msg, &arg), 1);
    assert_int_equal(arg.name_len, 0);
    assert_int_equal(spop_msg_next(&it, &msg), 1);
    assert_int_equal(msg.nb_args, 200);
    int n = 0;
    while (spop_arg_next(&msg, &arg) == 1)
        n++;
    assert_int_equal(n, 200);
    assert_int_equal(spop_msg_next(&it, &msg), 0);

    check_payload_truncation(MESSAGES, buf, w.len);
}

/* --------------------------------------------------------------- ACK */

static void test_golden_ack_build(void **state)
{
    (void)state;
    struct spop_action acts[2] = {
        { SPOP_ACTION_SET_VAR, SPOP_SCOPE_TXN, "verdict", 7, spop_data_cstr("deny") },
        { SPOP_ACTION_SET_VAR, SPOP_SCOPE_TXN, "retry_after", 11, spop_data_int32(30) },
    };
    uint8_t buf[128];
    size_t n = spop_build_ack(buf, sizeof(buf), 2, 1, acts, 2);
    assert_int_equal(n, sizeof(golden_ack) - 1);
    assert_memory_equal(buf, golden_ack, n);
    for (size_t cap = 0; cap < n; cap++)
        assert_int_equal(spop_build_ack(buf, cap, 2, 1, acts, 2), 0);

    /* And the action iterator reads it back. */
    struct spop_frame f;
    struct spop_action_iter it;
    struct spop_action act;
    decode_golden(BYTES(golden_ack), &f);
    assert_int_equal(f.type, SPOP_FRAME_ACK);
    assert_int_equal(f.stream_id, 2);
    assert_int_equal(f.frame_id, 1);
    spop_action_iter_init(&it, f.payload, f.payload_len);
    assert_int_equal(spop_action_next(&it, &act), 1);
    assert_int_equal(act.type, SPOP_ACTION_SET_VAR);
    assert_int_equal(act.scope, SPOP_SCOPE_TXN);
    assert_str_n(act.name, act.name_len, "verdict");
    assert_str_n(act.value.u.str.ptr, act.value.u.str.len, "deny");
    assert_int_equal(spop_action_next(&it, &act), 1);
    assert_str_n(act.name, act.name_len, "retry_after");
    assert_int_equal(act.value.type, SPOP_DATA_INT32);
    assert_int_equal(act.value.u.int32, 30);
    assert_int_equal(spop_action_next(&it, &act), 0);

    check_payload_truncation(ACTIONS, f.payload, f.payload_len);
}

static void test_ack_small_and_unset(void **state)
{
    (void)state;
    uint8_t buf[64];
    /* The smallest ACK: no actions. */
    assert_int_equal(spop_build_ack(buf, sizeof(buf), 0, 1, NULL, 0), 11);
    assert_memory_equal(buf, "\x00\x00\x00\x07\x67\x00\x00\x00\x01\x00\x01", 11);
    /* unset-var, and large ids echoed as varints. */
    struct spop_action unset = { SPOP_ACTION_UNSET_VAR, SPOP_SCOPE_SESS, "x", 1, spop_data_null() };
    size_t n = spop_build_ack(buf, sizeof(buf), 542, 300000, &unset, 1);
    assert_true(n > 0);
    struct spop_frame f;
    struct spop_action_iter it;
    struct spop_action act;
    decode_golden(buf, n, &f);
    assert_int_equal(f.stream_id, 542);
    assert_int_equal(f.frame_id, 300000);
    spop_action_iter_init(&it, f.payload, f.payload_len);
    assert_int_equal(spop_action_next(&it, &act), 1);
    assert_int_equal(act.type, SPOP_ACTION_UNSET_VAR);
    assert_int_equal(act.scope, SPOP_SCOPE_SESS);
    assert_str_n(act.name, act.name_len, "x");
    assert_int_equal(spop_action_next(&it, &act), 0);
    /* Unknown action type, and a set-var with the wrong nb-args. */
    static const uint8_t unknown[] = { 0x07, 0x00 };
    static const uint8_t bad_nb[] = { 0x01, 0x02, 0x02, 0x01, 'x', 0x00 };
    spop_action_iter_init(&it, unknown, sizeof(unknown));
    assert_int_equal(spop_action_next(&it, &act), -1);
    assert_int_equal(spop_action_next(&it, &act), -1);
    spop_action_iter_init(&it, bad_nb, sizeof(bad_nb));
    assert_int_equal(spop_action_next(&it, &act), -1);
}

/* -------------------------------------------------------- DISCONNECT */

static void test_golden_disconnect_decode(void **state)
{
    (void)state;
    struct spop_frame f;
    struct spop_disconnect d;
    decode_golden(BYTES(golden_disconnect), &f);
    assert_int_equal(f.type, SPOP_FRAME_HAPROXY_DISCONNECT);
    assert_true(spop_disconnect_decode(f.payload, f.payload_len, &d));
    assert_true(d.has_status);
    assert_int_equal(d.status, 0);
    assert_str_n(d.message, d.message_len, "normal");
    check_payload_truncation(KV_LIST, f.payload, f.payload_len);
}

static void test_agent_disconnect_build(void **state)
{
    (void)state;
    uint8_t buf[512];
    size_t n = spop_build_agent_disconnect(buf, sizeof(buf), SPOP_STATUS_TOO_BIG,
                                           spop_status_text(SPOP_STATUS_TOO_BIG));
    assert_int_equal(n, sizeof(golden_agent_disconnect) - 1);
    assert_memory_equal(buf, golden_agent_disconnect, n);
    for (size_t cap = 0; cap < n; cap++)
        assert_int_equal(spop_build_agent_disconnect(buf, cap, 3, "frame too big"), 0);
}

static void test_disconnect_message_limit(void **state)
{
    (void)state;
    char msg[301];
    memset(msg, 'm', 300);
    msg[300] = '\0';
    uint8_t buf[512];
    struct spop_frame f;
    struct spop_disconnect d;
    /* Our builder cuts the message to 255 bytes... */
    size_t n = spop_build_agent_disconnect(buf, sizeof(buf), 99, msg);
    assert_true(n > 0);
    decode_golden(buf, n, &f);
    assert_int_equal(f.type, SPOP_FRAME_AGENT_DISCONNECT);
    assert_true(spop_disconnect_decode(f.payload, f.payload_len, &d));
    assert_int_equal(d.status, 99);
    assert_int_equal(d.message_len, SPOP_DISCONNECT_MSG_MAX);
    /* ...and the decoder rejects a longer one, as HAProxy 2.6 does. */
    struct spop_writer w;
    struct spop_data code = spop_data_uint32(1);
    struct spop_data long_msg = spop_data_string(msg, 256);
    spop_writer_init(&w, buf, sizeof(buf));
    spop_put_kv(&w, "status-code", &code);
    spop_put_kv(&w, "message", &long_msg);
    assert_false(spop_disconnect_decode(buf, w.len, &d));
}

static void test_status_text(void **state)
{
    (void)state;
    assert_string_equal(spop_status_text(0), "normal");
    assert_string_equal(spop_status_text(3), "frame too big");
    assert_string_equal(spop_status_text(10), "fragmentation not supported");
    assert_string_equal(spop_status_text(99), "unknown error");
    assert_string_equal(spop_status_text(12345), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_payload_truncation),
        cmocka_unit_test(test_golden_hc_hello),
        cmocka_unit_test(test_golden_traffic_hello_build),
        cmocka_unit_test(test_hello_exact_keys),
        cmocka_unit_test(test_list_has),
        cmocka_unit_test(test_golden_agent_hello_build),
        cmocka_unit_test(test_golden_notify_decode),
        cmocka_unit_test(test_notify_many_messages),
        cmocka_unit_test(test_golden_ack_build),
        cmocka_unit_test(test_ack_small_and_unset),
        cmocka_unit_test(test_golden_disconnect_decode),
        cmocka_unit_test(test_agent_disconnect_build),
        cmocka_unit_test(test_disconnect_message_limit),
        cmocka_unit_test(test_status_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
