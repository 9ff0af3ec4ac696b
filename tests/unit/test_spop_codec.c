/*
 * test_spop_codec.c - the SPOP wire codec's building blocks (varints, typed
 * data, frame headers and lengths, the writer) against the vectors and
 * golden frames of shared/notes/spoe.md (§1.4 varints, §1.12 frames). The
 * frame payloads (HELLO, NOTIFY, ACK, DISCONNECT) are in
 * test_spop_codec_payloads.c.
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

#include "spop_test_util.h"

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
        cmocka_unit_test(test_writer_multiple_frames_and_rollback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
