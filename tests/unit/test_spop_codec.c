/*
 * test_spop_codec.c - the SPOP wire codec against the vectors and golden
 * frames of shared/notes/spoe.md (§1.4 varints, §1.12 frames).
 *
 * Every decoder is also fed every strict prefix of every vector and frame:
 * a truncated input must be reported, never read past, never mistaken for
 * the whole thing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "spop/spop_codec.h"

/* Byte arrays written as concatenated string literals; drop the NUL. */
#define BYTES(a) (const uint8_t *)(a), (sizeof(a) - 1)

/* ----------------------------------------------------------- golden */

/* §1.12a: health-check HAPROXY-HELLO, 78-byte frame. */
static const char golden_hc_hello[] =
    "\x00\x00\x00\x4e" "\x01" "\x00\x00\x00\x01" "\x00\x00"
    "\x12" "supported-versions" "\x08\x03" "2.0"
    "\x0e" "max-frame-size" "\x03\xfc\xf0\x06"
    "\x0c" "capabilities" "\x08\x00"
    "\x0b" "healthcheck" "\x11";

/* §1.12b: 2.6.12 traffic HELLO (129 bytes) with a fake engine-id. */
#define FAKE_ENGINE_ID "0123abcd-4567-89ef-0123-456789abcdef"
static const char golden_traffic_hello[] =
    "\x00\x00\x00\x81" "\x01" "\x00\x00\x00\x01" "\x00\x00"
    "\x12" "supported-versions" "\x08\x03" "2.0"
    "\x0e" "max-frame-size" "\x03\xfc\xf0\x06"
    "\x0c" "capabilities" "\x08\x10" "pipelining,async"
    "\x09" "engine-id" "\x08\x24" FAKE_ENGINE_ID;

/* §1.12c: AGENT-HELLO, 64-byte frame. */
static const char golden_agent_hello[] =
    "\x00\x00\x00\x40" "\x65" "\x00\x00\x00\x01" "\x00\x00"
    "\x07" "version" "\x08\x03" "2.0"
    "\x0e" "max-frame-size" "\x03\xfc\xf0\x06"
    "\x0c" "capabilities" "\x08\x0a" "pipelining";

/* §1.12d: NOTIFY "check" ip=10.0.0.1 path="/x", stream 5, frame 1. */
static const char golden_notify[] =
    "\x00\x00\x00\x1f" "\x03" "\x00\x00\x00\x01" "\x05\x01"
    "\x05" "check" "\x02"
    "\x02" "ip" "\x06\x0a\x00\x00\x01"
    "\x04" "path" "\x08\x02" "/x";

/* §1.12e: ACK stream 2 / frame 1, verdict="deny", retry_after=30. */
static const char golden_ack[] =
    "\x00\x00\x00\x29" "\x67" "\x00\x00\x00\x01" "\x02\x01"
    "\x01\x03\x02" "\x07" "verdict" "\x08\x04" "deny"
    "\x01\x03\x02" "\x0b" "retry_after" "\x02\x1e";

/* §1.12f: HAPROXY-DISCONNECT on soft-stop. */
static const char golden_disconnect[] =
    "\x00\x00\x00\x25" "\x02" "\x00\x00\x00\x01" "\x00\x00"
    "\x0b" "status-code" "\x03\x00"
    "\x07" "message" "\x08\x06" "normal";

/* Our AGENT-DISCONNECT for status 3. */
static const char golden_agent_disconnect[] =
    "\x00\x00\x00\x2c" "\x66" "\x00\x00\x00\x01" "\x00\x00"
    "\x0b" "status-code" "\x03\x03"
    "\x07" "message" "\x08\x0d" "frame too big";

struct golden {
    const char *name;
    const uint8_t *bytes;
    size_t len;
};

static const struct golden goldens[] = {
    { "hc_hello", BYTES(golden_hc_hello) },
    { "traffic_hello", BYTES(golden_traffic_hello) },
    { "agent_hello", BYTES(golden_agent_hello) },
    { "notify", BYTES(golden_notify) },
    { "ack", BYTES(golden_ack) },
    { "disconnect", BYTES(golden_disconnect) },
    { "agent_disconnect", BYTES(golden_agent_disconnect) },
};

static void decode_golden(const uint8_t *bytes, size_t len, struct spop_frame *f)
{
    size_t wire = 0;
    assert_int_equal(spop_frame_decode(bytes, len, 65536, f, &wire), SPOP_DECODE_OK);
    assert_int_equal(wire, len);
    assert_int_equal(f->flags, SPOP_FLAG_FIN);
}

static bool str_is(const char *p, size_t len, const char *want)
{
    return len == strlen(want) && memcmp(p, want, len) == 0;
}

#define assert_str_n(p, len, want) assert_true(str_is((p), (len), (want)))

/* ----------------------------------------------------------- varints */

struct varint_vector {
    uint64_t value;
    const char *bytes;
    size_t len;
};

#define VV(v, b) { (v), (b), sizeof(b) - 1 }

static const struct varint_vector varint_vectors[] = {
    VV(0, "\x00"),
    VV(239, "\xef"),
    VV(240, "\xf0\x00"),
    VV(255, "\xff\x00"),
    VV(256, "\xf0\x01"),
    VV(2287, "\xff\x7f"),
    VV(2288, "\xf0\x80\x00"),
    VV(2289, "\xf1\x80\x00"),
    VV(16380, "\xfc\xf0\x06"),
    VV(18080, "\xf0\xdb\x07"),
    VV(264431, "\xff\xff\x7f"),
    VV(264432, "\xf0\x80\x80\x00"),
    VV(33818864, "\xf0\x80\x80\x80\x00"),
    VV(4294967295u, "\xff\xf0\xfe\xfe\x7e"),
    VV(INT64_MAX, "\xff\xf0\xfe\xfe\xfe\xfe\xfe\xfe\xfe\x06"),
    VV(UINT64_MAX, "\xff\xf0\xfe\xfe\xfe\xfe\xfe\xfe\xfe\x0e"),
};

static void test_varint_encode_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(varint_vectors) / sizeof(varint_vectors[0]); i++) {
        const struct varint_vector *vv = &varint_vectors[i];
        uint8_t out[SPOP_VARINT_MAX_LEN];
        size_t n = spop_varint_encode(vv->value, out);
        assert_int_equal(n, vv->len);
        assert_memory_equal(out, vv->bytes, n);
    }
}

static void test_varint_decode_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(varint_vectors) / sizeof(varint_vectors[0]); i++) {
        const struct varint_vector *vv = &varint_vectors[i];
        uint8_t buf[SPOP_VARINT_MAX_LEN + 2];
        uint64_t v = 0;
        memcpy(buf, vv->bytes, vv->len);
        buf[vv->len] = 0x55;   /* trailing bytes must not be consumed */
        assert_int_equal(spop_varint_decode(buf, vv->len + 1, &v), vv->len);
        assert_true(v == vv->value);
        /* Every strict prefix is truncated. */
        for (size_t cut = 0; cut < vv->len; cut++)
            assert_int_equal(spop_varint_decode(buf, cut, &v), 0);
    }
}

static void test_varint_round_trip_boundaries(void **state)
{
    (void)state;
    static const uint64_t values[] = {
        1, 127, 128, 238, 241, 1000, 65535, 65536, 33818863, 4328786159u,
        4328786160u, (uint64_t)1 << 40, ((uint64_t)1 << 63) + 12345, UINT64_MAX - 1,
    };
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        uint8_t out[SPOP_VARINT_MAX_LEN];
        uint64_t v = 0;
        size_t n = spop_varint_encode(values[i], out);
        assert_in_range(n, 1, SPOP_VARINT_MAX_LEN);
        assert_int_equal(spop_varint_decode(out, n, &v), n);
        assert_true(v == values[i]);
    }
}

static void test_varint_too_long(void **state)
{
    (void)state;
    /* 11 bytes: the 10th still has its continuation bit set. */
    static const uint8_t eleven[] = { 0xff, 0x80, 0x80, 0x80, 0x80, 0x80,
                                      0x80, 0x80, 0x80, 0x80, 0x00 };
    uint64_t v;
    assert_int_equal(spop_varint_decode(eleven, sizeof(eleven), &v), 0);
    struct spop_reader r;
    spop_reader_init(&r, eleven, sizeof(eleven));
    assert_false(spop_get_varint(&r, &v));
    assert_int_equal(spop_reader_left(&r), sizeof(eleven));
}

/* ------------------------------------------------------- typed data */

struct data_vector {
    const char *bytes;
    size_t len;
    struct spop_data value;
};

static struct spop_data ipv4(uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
    struct spop_data v = spop_data_null();
    v.type = SPOP_DATA_IPV4;
    v.u.ipv4[0] = a;
    v.u.ipv4[1] = b;
    v.u.ipv4[2] = c;
    v.u.ipv4[3] = d;
    return v;
}

static struct spop_data ipv6_2001_db8_1(void)
{
    static const uint8_t addr[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };
    struct spop_data v = spop_data_null();
    v.type = SPOP_DATA_IPV6;
    memcpy(v.u.ipv6, addr, 16);
    return v;
}

#define DV(b, v) { (b), sizeof(b) - 1, (v) }

/* The exact encodings of §1.12(d), plus one vector for every type. */
static void data_vectors(struct data_vector *out, size_t *n)
{
    struct data_vector v[] = {
        DV("\x00", spop_data_null()),
        DV("\x11", spop_data_bool(true)),
        DV("\x01", spop_data_bool(false)),
        DV("\x02\x1e", spop_data_int32(30)),
        DV("\x02\xff\xf0\xfe\xfe\xfe\xfe\xfe\xfe\xfe\x0e", spop_data_int32(-1)),
        DV("\x03\xfc\xf0\x06", spop_data_uint32(16380)),
        DV("\x03\xff\xf0\xfe\xfe\x7e", spop_data_uint32(UINT32_MAX)),
        DV("\x04\x03", spop_data_int64(3)),
        DV("\x04\xf0\xdb\x07", spop_data_int64(18080)),
        DV("\x04\xff\xf0\xfe\xfe\xfe\xfe\xfe\xfe\xfe\x0e", spop_data_int64(-1)),
        DV("\x04\xfc\x03", spop_data_int64(300)),
        DV("\x05\xff\xf0\xfe\xfe\xfe\xfe\xfe\xfe\xfe\x0e", spop_data_uint64(UINT64_MAX)),
        DV("\x06\x7f\x00\x00\x01", ipv4(127, 0, 0, 1)),
        DV("\x06\x0a\x00\x00\x01", ipv4(10, 0, 0, 1)),
        DV("\x07\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01", ipv6_2001_db8_1()),
        DV("\x08\x03" "GET", spop_data_cstr("GET")),
        DV("\x08\x00", spop_data_cstr("")),
        DV("\x09\x08" "\x00\x01\x02\x03\xfe\xff\x80\x7f", spop_data_binary("\x00\x01\x02\x03\xfe\xff\x80\x7f", 8)),
        DV("\x09\x00", spop_data_binary("", 0)),
    };
    memcpy(out, v, sizeof(v));
    *n = sizeof(v) / sizeof(v[0]);
}

static void test_data_exact_encodings(void **state)
{
    (void)state;
    struct data_vector vecs[32];
    size_t n;
    data_vectors(vecs, &n);
    for (size_t i = 0; i < n; i++) {
        uint8_t out[64];
        struct spop_writer w;
        spop_writer_init(&w, out, sizeof(out));
        spop_put_data(&w, &vecs[i].value);
        assert_false(w.failed);
        assert_int_equal(w.len, vecs[i].len);
        assert_memory_equal(out, vecs[i].bytes, w.len);
    }
}

static void test_data_decode_and_truncation(void **state)
{
    (void)state;
    struct data_vector vecs[32];
    size_t n;
    data_vectors(vecs, &n);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *b = (const uint8_t *)vecs[i].bytes;
        struct spop_reader r;
        struct spop_data d;
        spop_reader_init(&r, b, vecs[i].len);
        assert_true(spop_get_data(&r, &d));
        assert_int_equal(spop_reader_left(&r), 0);
        assert_true(spop_data_equal(&d, &vecs[i].value));
        for (size_t cut = 0; cut < vecs[i].len; cut++) {
            spop_reader_init(&r, b, cut);
            assert_false(spop_get_data(&r, &d));
            assert_int_equal(spop_reader_left(&r), cut);   /* reader not moved */
        }
    }
}

static void test_data_round_trip_every_type(void **state)
{
    (void)state;
    struct spop_data values[] = {
        spop_data_null(), spop_data_bool(true), spop_data_bool(false),
        spop_data_int32(INT32_MIN), spop_data_int32(INT32_MAX), spop_data_int32(-5),
        spop_data_uint32(0), spop_data_uint32(UINT32_MAX),
        spop_data_int64(INT64_MIN), spop_data_int64(INT64_MAX), spop_data_int64(-300),
        spop_data_uint64(0), spop_data_uint64((uint64_t)1 << 63),
        ipv4(192, 168, 1, 254), ipv6_2001_db8_1(),
        spop_data_cstr("hello, world"), spop_data_binary("\x00\xff", 2),
    };
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        uint8_t out[64];
        struct spop_writer w;
        struct spop_reader r;
        struct spop_data d;
        spop_writer_init(&w, out, sizeof(out));
        spop_put_data(&w, &values[i]);
        assert_false(w.failed);
        spop_reader_init(&r, out, w.len);
        assert_true(spop_get_data(&r, &d));
        assert_int_equal(spop_reader_left(&r), 0);
        assert_true(spop_data_equal(&d, &values[i]));
    }
}

static void test_data_equal(void **state)
{
    (void)state;
    /* Every type, and two values of each: equal exactly on the diagonal. */
    struct spop_data v[] = {
        spop_data_null(),
        spop_data_bool(true), spop_data_bool(false),
        spop_data_int32(1), spop_data_int32(-1),
        spop_data_uint32(1), spop_data_uint32(UINT32_MAX),
        spop_data_int64(1), spop_data_int64(INT64_MIN),
        spop_data_uint64(1), spop_data_uint64(UINT64_MAX),
        ipv4(127, 0, 0, 1), ipv4(127, 0, 0, 2),
        ipv6_2001_db8_1(), spop_data_null(),   /* [14] becomes ::1 below */
        spop_data_cstr("abc"), spop_data_cstr("abd"),
        spop_data_binary("abc", 3), spop_data_binary("ab", 2),
    };
    v[14].type = SPOP_DATA_IPV6;
    v[14].u.ipv6[15] = 1;
    size_t n = sizeof(v) / sizeof(v[0]);
    for (size_t i = 0; i < n; i++) {
        struct spop_data copy = v[i];
        assert_true(spop_data_equal(&v[i], &copy));
        for (size_t j = 0; j < n; j++)
            assert_int_equal(spop_data_equal(&v[i], &v[j]), i == j);
    }

    /* Bytes are compared, not pointers. */
    char a[] = "payload", b[] = "payload";
    struct spop_data sa = spop_data_cstr(a), sb = spop_data_cstr(b);
    assert_true(spop_data_equal(&sa, &sb));
    struct spop_data ba = spop_data_binary(a, 7), bb = spop_data_binary(b, 7);
    assert_true(spop_data_equal(&ba, &bb));
    assert_false(spop_data_equal(&sa, &ba));   /* same bytes, other type */

    /* Zero length: equal whatever the pointers, NULL included. */
    struct spop_data s_null = spop_data_string(NULL, 0), s_empty = spop_data_cstr("");
    struct spop_data b_null = spop_data_binary(NULL, 0), b_empty = spop_data_binary(a, 0);
    struct spop_data s_one = spop_data_string("x", 1);
    assert_true(spop_data_equal(&s_null, &s_null));
    assert_true(spop_data_equal(&s_null, &s_empty));
    assert_true(spop_data_equal(&s_empty, &s_null));
    assert_true(spop_data_equal(&b_null, &b_empty));
    assert_false(spop_data_equal(&s_null, &b_null));
    assert_false(spop_data_equal(&s_null, &s_one));
    assert_false(spop_data_equal(&s_one, &s_null));

    /* A type outside the enum equals nothing, not even itself. */
    struct spop_data bad = spop_data_null();
    bad.type = (enum spop_data_type)12;
    assert_false(spop_data_equal(&bad, &bad));
}

static void test_data_rejects(void **state)
{
    (void)state;
    struct spop_reader r;
    struct spop_data d;
    /* Reserved types 10..15. */
    for (uint8_t t = 10; t <= 15; t++) {
        uint8_t b[2] = { t, 0 };
        spop_reader_init(&r, b, sizeof(b));
        assert_false(spop_get_data(&r, &d));
    }
    /* INT32 out of range: 2^31. */
    uint8_t buf[16];
    uint8_t vi[SPOP_VARINT_MAX_LEN];
    size_t n = spop_varint_encode((uint64_t)INT32_MAX + 1, vi);
    buf[0] = SPOP_DATA_INT32;
    memcpy(buf + 1, vi, n);
    spop_reader_init(&r, buf, n + 1);
    assert_false(spop_get_data(&r, &d));
    /* UINT32 above 2^32-1. */
    n = spop_varint_encode((uint64_t)UINT32_MAX + 1, vi);
    buf[0] = SPOP_DATA_UINT32;
    memcpy(buf + 1, vi, n);
    spop_reader_init(&r, buf, n + 1);
    assert_false(spop_get_data(&r, &d));
    /* String length larger than what is left (and than SIZE_MAX-ish). */
    static const uint8_t huge[] = { 0x08, 0xff, 0xf0, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0x0e, 'a' };
    spop_reader_init(&r, huge, sizeof(huge));
    assert_false(spop_get_data(&r, &d));
    /* A BOOL is true only with the exact flag nibble 0x10. */
    static const uint8_t odd_bool[] = { 0x31 };
    spop_reader_init(&r, odd_bool, 1);
    assert_true(spop_get_data(&r, &d));
    assert_int_equal(d.type, SPOP_DATA_BOOL);
    assert_false(d.u.boolean);
}

/* ------------------------------------------------------------- frames */

static void test_frame_truncation_every_offset(void **state)
{
    (void)state;
    for (size_t g = 0; g < sizeof(goldens) / sizeof(goldens[0]); g++) {
        struct spop_frame f;
        size_t wire;
        decode_golden(goldens[g].bytes, goldens[g].len, &f);
        for (size_t cut = 0; cut < goldens[g].len; cut++)
            assert_int_equal(spop_frame_decode(goldens[g].bytes, cut, 65536, &f, &wire),
                             SPOP_DECODE_NEED_MORE);
    }
}

/* A length prefix that cuts the header short must not be read past. */
static void test_frame_header_cut_by_length(void **state)
{
    (void)state;
    struct spop_frame f;
    size_t wire;
    /* len 7 but the stream-id varint wants more bytes than the frame has. */
    static const char cut_sid[] = "\x00\x00\x00\x07" "\x03" "\x00\x00\x00\x01" "\xf0\x80" "\x01\x01";
    assert_int_equal(spop_frame_decode(BYTES(cut_sid), 65536, &f, &wire), SPOP_DECODE_INVALID);
    /* The parser alone, at every length of a valid frame's body. */
    const uint8_t *body = (const uint8_t *)golden_notify + 4;
    for (size_t cut = 0; cut < 7; cut++)
        assert_false(spop_frame_parse(body, cut, &f));
    assert_true(spop_frame_parse(body, 7, &f));
    assert_int_equal(f.payload_len, 0);
}

static void test_frame_length_checks(void **state)
{
    (void)state;
    struct spop_frame f;
    size_t wire;
    uint32_t len;
    static const char zero[] = "\x00\x00\x00\x00";
    static const char six[] = "\x00\x00\x00\x06" "\x03\x00\x00\x00\x01\x00";
    static const char big[] = "\x00\x00\x40\x00" "\x03";  /* 16384, body absent */
    assert_int_equal(spop_frame_decode(BYTES(zero), 16380, &f, &wire), SPOP_DECODE_INVALID);
    assert_int_equal(spop_frame_decode(BYTES(six), 16380, &f, &wire), SPOP_DECODE_INVALID);
    assert_int_equal(spop_frame_decode(BYTES(big), 16380, &f, &wire), SPOP_DECODE_TOO_BIG);
    assert_int_equal(spop_frame_decode(BYTES(big), 16384, &f, &wire), SPOP_DECODE_NEED_MORE);
    assert_false(spop_frame_peek_length((const uint8_t *)big, 3, &len));
    assert_true(spop_frame_peek_length((const uint8_t *)big, 4, &len));
    assert_int_equal(len, 16384);
    /* Two frames back to back: the first decode stops at its own end. */
    uint8_t two[80];
    memcpy(two, golden_notify, sizeof(golden_notify) - 1);
    memcpy(two + sizeof(golden_notify) - 1, golden_notify, sizeof(golden_notify) - 1);
    assert_int_equal(spop_frame_decode(two, 2 * (sizeof(golden_notify) - 1), 65536, &f, &wire),
                     SPOP_DECODE_OK);
    assert_int_equal(wire, sizeof(golden_notify) - 1);
}

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

/* ------------------------------------------------------------- writer */

static void test_writer_multiple_frames_and_rollback(void **state)
{
    (void)state;
    uint8_t buf[80];
    struct spop_writer w;
    struct spop_data v = spop_data_cstr("/x");
    spop_writer_init(&w, buf, sizeof(buf));
    for (int i = 0; i < 2; i++) {
        spop_frame_begin(&w, SPOP_FRAME_NOTIFY, SPOP_FLAG_FIN, 5, 1);
        spop_put_raw_string(&w, "check", 5);
        spop_put_u8(&w, 2);
        spop_put_raw_string(&w, "ip", 2);
        struct spop_data ip = ipv4(10, 0, 0, 1);
        spop_put_data(&w, &ip);
        spop_put_raw_string(&w, "path", 4);
        spop_put_data(&w, &v);
        assert_int_equal(spop_frame_end(&w), 35);
    }
    assert_memory_equal(buf, golden_notify, 35);
    assert_memory_equal(buf + 35, golden_notify, 35);
    /* A third frame does not fit: nothing of it stays. */
    spop_frame_begin(&w, SPOP_FRAME_NOTIFY, SPOP_FLAG_FIN, 5, 1);
    spop_put_raw_string(&w, "check", 5);
    spop_put_u8(&w, 0);
    assert_int_equal(spop_frame_end(&w), 0);
    assert_true(w.failed);
    assert_int_equal(w.len, 70);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_varint_encode_vectors),
        cmocka_unit_test(test_varint_decode_vectors),
        cmocka_unit_test(test_varint_round_trip_boundaries),
        cmocka_unit_test(test_varint_too_long),
        cmocka_unit_test(test_data_exact_encodings),
        cmocka_unit_test(test_data_decode_and_truncation),
        cmocka_unit_test(test_data_round_trip_every_type),
        cmocka_unit_test(test_data_equal),
        cmocka_unit_test(test_data_rejects),
        cmocka_unit_test(test_frame_truncation_every_offset),
        cmocka_unit_test(test_frame_header_cut_by_length),
        cmocka_unit_test(test_frame_length_checks),
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
        cmocka_unit_test(test_writer_multiple_frames_and_rollback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
