/*
 * test_objfile.c - unit tests for the object file header block
 * (agent/src/objfile.c).
 *
 * Blocks are either produced by obj_header_encode() or built by hand with
 * build_block(), which computes the CRC with an independent bitwise
 * implementation; the hand-built ones are how we feed the decoder text the
 * encoder would never write.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store/objfile.h"

#define META_OFF 16
#define META_MAX (OBJ_HEADER_SIZE - META_OFF)
#define S(lit) lit, sizeof(lit) - 1

/* The minimal valid text, used as a base by the hand-built cases. */
#define BASE_TEXT "key: generic:a/b\nstatus: 200\nsize: 5\nstored: 1\netag: \"x\"\n"

/* Bitwise CRC-32 (IEEE, reflected): the reference for the table version. */
static uint32_t ref_crc32(const uint8_t *p, size_t n)
{
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc & 1) ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
    }
    return ~crc;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* A block holding `text` verbatim, with a correct length and CRC. */
static void build_block(uint8_t *block, const char *text, size_t n)
{
    assert_true(n <= META_MAX);
    memset(block, 0, OBJ_HEADER_SIZE);
    memcpy(block, OBJ_MAGIC, 8);
    put_le32(block + 8, (uint32_t)n);
    put_le32(block + 12, ref_crc32((const uint8_t *)text, n));
    memcpy(block + META_OFF, text, n);
}

static uint32_t text_len(const uint8_t *block)
{
    return (uint32_t)block[8] | (uint32_t)block[9] << 8 | (uint32_t)block[10] << 16 |
           (uint32_t)block[11] << 24;
}

static void make_meta(struct obj_meta *m)
{
    memset(m, 0, sizeof(*m));
    m->key = strdup("pypi:packages/ab/cd/foo-1.0.tar.gz");
    m->status = 200;
    m->size = 123456789;
    m->stored = 1767225600;
    m->etag = strdup("\"sha256-0123abcd\"");
    m->last_modified = 784111777;
    assert_int_equal(obj_meta_add_header(m, "Content-Type", "application/x-tar"), 0);
    assert_int_equal(obj_meta_add_header(m, "Cache-Control", "max-age=600, public"), 0);
    assert_int_equal(obj_meta_add_header(m, "X-Empty", ""), 0);
}

static void assert_meta_equal(const struct obj_meta *a, const struct obj_meta *b)
{
    assert_string_equal(a->key, b->key);
    assert_int_equal(a->status, b->status);
    assert_true(a->size == b->size);
    assert_true(a->stored == b->stored);
    assert_string_equal(a->etag, b->etag);
    assert_true(a->last_modified == b->last_modified);
    assert_int_equal(a->n_headers, b->n_headers);
    for (int i = 0; i < a->n_headers; i++) {
        assert_string_equal(a->headers[i].name, b->headers[i].name);
        assert_string_equal(a->headers[i].value, b->headers[i].value);
    }
}

static void assert_rejected(const uint8_t *block, size_t len, const char *why)
{
    struct obj_meta m;
    char err[128] = "";
    int rc = obj_header_decode(block, len, &m, err, sizeof(err));
    if (rc == 0)
        print_error("accepted a block that should fail (%s)\n", why);
    assert_int_equal(rc, -1);
    assert_true(err[0] != '\0');
    /* A failed decode leaves nothing allocated and nothing half-filled. */
    assert_null(m.key);
    assert_null(m.etag);
    assert_int_equal(m.n_headers, 0);
}

/* ------------------------------------------------------------------- CRC */

static void test_crc32(void **state)
{
    (void)state;
    assert_true(obj_crc32((const uint8_t *)"123456789", 9) == 0xCBF43926u);
    assert_true(obj_crc32(NULL, 0) == 0);
    uint8_t buf[1024];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof(buf); i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
    for (size_t n = 0; n <= sizeof(buf); n += 7)
        assert_true(obj_crc32(buf, n) == ref_crc32(buf, n));
}

/* ------------------------------------------------------------ round trip */

static void test_round_trip(void **state)
{
    (void)state;
    struct obj_meta in, out;
    uint8_t block[OBJ_HEADER_SIZE];
    char err[128];
    make_meta(&in);
    assert_int_equal(obj_header_encode(&in, block), 0);
    assert_memory_equal(block, OBJ_MAGIC, 8);
    assert_true(text_len(block) > 0 && text_len(block) <= META_MAX);
    for (size_t i = META_OFF + text_len(block); i < OBJ_HEADER_SIZE; i++)
        assert_int_equal(block[i], 0);
    assert_int_equal(obj_header_decode(block, sizeof(block), &out, err, sizeof(err)), 0);
    assert_meta_equal(&in, &out);
    obj_meta_free(&out);
    obj_meta_free(&in);
}

/* obj_meta_fits answers for the finished object: any size, and a verified
 * digest added after it was asked. */
static void test_fits_the_worst_case(void **state)
{
    (void)state;
    struct obj_meta m;
    uint8_t block[OBJ_HEADER_SIZE];
    make_meta(&m);
    assert_true(obj_meta_fits(&m));
    char big[1000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    while (obj_meta_fits(&m))
        assert_int_equal(obj_meta_add_header(&m, "Content-Type", big), 0);
    assert_int_equal(obj_header_encode(&m, block), -1);
    obj_meta_free(&m);
    /* Fits now, but not once a long digest and size are added: refused. */
    make_meta(&m);
    char *pad = calloc(1, META_MAX);
    size_t n = 0;
    do {   /* the longest first header that encodes */
        pad[n++] = 'y';
        free(m.headers[0].value);
        m.headers[0].value = strdup(pad);
    } while (obj_header_encode(&m, block) == 0);
    pad[n - 100] = '\0';   /* encodes, with less than 100 bytes to spare */
    free(m.headers[0].value);
    m.headers[0].value = strdup(pad);
    assert_int_equal(obj_header_encode(&m, block), 0);
    assert_false(obj_meta_fits(&m));
    free(pad);
    obj_meta_free(&m);
}

/* The digest an object was verified against goes and comes back; a
 * value that would break the line is refused. */
static void test_verified_round_trip(void **state)
{
    (void)state;
    struct obj_meta in, out;
    uint8_t block[OBJ_HEADER_SIZE];
    char err[128];
    make_meta(&in);
    in.verified = strdup("sha256:00ff");
    assert_int_equal(obj_header_encode(&in, block), 0);
    assert_non_null(memmem(block, OBJ_HEADER_SIZE, "\nverified: sha256:00ff\n", 23));
    assert_int_equal(obj_header_decode(block, sizeof(block), &out, err, sizeof(err)), 0);
    assert_string_equal(out.verified, "sha256:00ff");
    obj_meta_free(&out);
    free(in.verified);
    in.verified = strdup("sha256:00\nstatus: 500");
    assert_int_equal(obj_header_encode(&in, block), -1);
    obj_meta_free(&in);
}

/* The exact bytes, so a format change is a deliberate test change. */
static void test_text_layout(void **state)
{
    (void)state;
    struct obj_meta in;
    uint8_t block[OBJ_HEADER_SIZE];
    static const char want[] =
        "key: pypi:packages/ab/cd/foo-1.0.tar.gz\n"
        "status: 200\n"
        "size: 123456789\n"
        "stored: 1767225600\n"
        "etag: \"sha256-0123abcd\"\n"
        "last-modified: 784111777\n"
        "h: Content-Type: application/x-tar\n"
        "h: Cache-Control: max-age=600, public\n"
        "h: X-Empty: \n";
    make_meta(&in);
    assert_int_equal(obj_header_encode(&in, block), 0);
    assert_int_equal(text_len(block), sizeof(want) - 1);
    assert_memory_equal(block + META_OFF, want, sizeof(want) - 1);
    assert_true(ref_crc32(block + META_OFF, sizeof(want) - 1) ==
                ((uint32_t)block[12] | (uint32_t)block[13] << 8 |
                 (uint32_t)block[14] << 16 | (uint32_t)block[15] << 24));
    obj_meta_free(&in);
}

/* Extreme numbers and the "0 = unknown" last-modified all survive. */
static void test_round_trip_extremes(void **state)
{
    (void)state;
    static const struct {
        int status;
        uint64_t size;
        int64_t stored, last_modified;
        int n_headers;
    } cases[] = {
        { 200, 0, 0, 0, 0 },
        { 100, UINT64_MAX, INT64_MAX, INT64_MIN, 1 },
        { 599, 1, INT64_MIN, INT64_MAX, OBJ_MAX_HEADERS },
        { 404, 4096, -1, -1, 2 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct obj_meta in, out;
        uint8_t block[OBJ_HEADER_SIZE];
        memset(&in, 0, sizeof(in));
        in.key = strdup("k");
        in.etag = strdup("W/\"weak\"");
        in.status = cases[i].status;
        in.size = cases[i].size;
        in.stored = cases[i].stored;
        in.last_modified = cases[i].last_modified;
        for (int h = 0; h < cases[i].n_headers; h++) {
            char name[16];
            snprintf(name, sizeof(name), "X-H%d", h);
            assert_int_equal(obj_meta_add_header(&in, name, "v\tw \xe9"), 0);
        }
        assert_int_equal(obj_header_encode(&in, block), 0);
        assert_int_equal(obj_header_decode(block, sizeof(block), &out, NULL, 0), 0);
        assert_meta_equal(&in, &out);
        obj_meta_free(&out);
        obj_meta_free(&in);
    }
}

/* A caller may hand over a longer read (header plus some body). */
static void test_decode_longer_buffer(void **state)
{
    (void)state;
    struct obj_meta in, out;
    uint8_t *buf = calloc(1, 2 * OBJ_HEADER_SIZE);
    assert_non_null(buf);
    make_meta(&in);
    assert_int_equal(obj_header_encode(&in, buf), 0);
    memset(buf + OBJ_HEADER_SIZE, 0xAB, OBJ_HEADER_SIZE);
    assert_int_equal(obj_header_decode(buf, 2 * OBJ_HEADER_SIZE, &out, NULL, 0), 0);
    assert_meta_equal(&in, &out);
    obj_meta_free(&out);
    obj_meta_free(&in);
    free(buf);
}

/* ------------------------------------------------------------ corruption */

static void test_every_byte_flip_rejected(void **state)
{
    (void)state;
    struct obj_meta in;
    uint8_t block[OBJ_HEADER_SIZE];
    make_meta(&in);
    assert_int_equal(obj_header_encode(&in, block), 0);
    obj_meta_free(&in);
    uint32_t n = text_len(block);

    /* Every single-bit flip and the all-bits flip of every byte of the
     * block: the frame fields, the text (caught by the CRC) and the padding. */
    for (size_t i = 0; i < OBJ_HEADER_SIZE; i++) {
        for (int k = 0; k <= 8; k++) {
            uint8_t mask = k == 8 ? 0xFF : (uint8_t)(1u << k);
            struct obj_meta m;
            char err[128] = "";
            block[i] ^= mask;
            int rc = obj_header_decode(block, sizeof(block), &m, err, sizeof(err));
            block[i] ^= mask;
            if (rc == 0)
                print_error("flip of byte %zu mask 0x%02x accepted\n", i, mask);
            assert_int_equal(rc, -1);
            if (i >= META_OFF && i < META_OFF + n)
                assert_non_null(strstr(err, "CRC"));
        }
    }
}

static void test_truncation_rejected(void **state)
{
    (void)state;
    struct obj_meta in, out;
    uint8_t block[OBJ_HEADER_SIZE];
    make_meta(&in);
    assert_int_equal(obj_header_encode(&in, block), 0);
    obj_meta_free(&in);

    /* A short read at any length. */
    for (size_t len = 0; len < OBJ_HEADER_SIZE; len++)
        assert_rejected(block, len, "short read");
    assert_rejected(NULL, 0, "NULL block");

    /* A shorter length field with the original CRC. */
    uint32_t n = text_len(block);
    for (uint32_t k = 0; k < n; k++) {
        uint8_t copy[OBJ_HEADER_SIZE];
        memcpy(copy, block, sizeof(copy));
        put_le32(copy + 8, k);
        assert_rejected(copy, sizeof(copy), "shortened length");
    }

    /* Every prefix of the text with a recomputed CRC: a cut mid-line is
     * caught by the line parser, a cut before the last required field by the
     * presence check. Only whole-line prefixes after "etag" can be valid. */
    const char *text = (const char *)block + META_OFF;
    const char *etag_line = strstr(text, "etag: ");
    assert_non_null(etag_line);
    size_t required_end = (size_t)(strchr(etag_line, '\n') + 1 - text);
    for (uint32_t k = 0; k < n; k++) {
        uint8_t copy[OBJ_HEADER_SIZE];
        build_block(copy, text, k);
        bool may_pass = k >= required_end && text[k - 1] == '\n';
        if (!may_pass) {
            assert_rejected(copy, sizeof(copy), "text prefix");
        } else {
            assert_int_equal(obj_header_decode(copy, sizeof(copy), &out, NULL, 0), 0);
            obj_meta_free(&out);
        }
    }
}

/* --------------------------------------------------------------- headers */

static void test_too_many_headers(void **state)
{
    (void)state;
    struct obj_meta m;
    memset(&m, 0, sizeof(m));
    for (int i = 0; i < OBJ_MAX_HEADERS; i++)
        assert_int_equal(obj_meta_add_header(&m, "X-A", "b"), 0);
    assert_int_equal(obj_meta_add_header(&m, "X-A", "b"), -1);
    assert_int_equal(m.n_headers, OBJ_MAX_HEADERS);
    obj_meta_free(&m);

    /* A hand-made block with one kept header too many. */
    char text[META_MAX];
    size_t n = (size_t)snprintf(text, sizeof(text), "%s", BASE_TEXT);
    for (int i = 0; i <= OBJ_MAX_HEADERS; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "h: X-%d: v\n", i);
    uint8_t block[OBJ_HEADER_SIZE];
    build_block(block, text, n);
    assert_rejected(block, sizeof(block), "17 headers");

    /* Exactly the maximum is fine. */
    n -= strlen("h: X-16: v\n");
    build_block(block, text, n);
    assert_int_equal(obj_header_decode(block, sizeof(block), &m, NULL, 0), 0);
    assert_int_equal(m.n_headers, OBJ_MAX_HEADERS);
    assert_string_equal(m.headers[15].name, "X-15");
    obj_meta_free(&m);
}

/* ------------------------------------------------------------- encoding */

static void test_oversized_refused(void **state)
{
    (void)state;
    struct obj_meta m;
    uint8_t block[OBJ_HEADER_SIZE];
    memset(&m, 0, sizeof(m));
    m.status = 200;
    m.etag = strdup("\"e\"");
    /* "key: K\nstatus: 200\nsize: 0\nstored: 0\netag: \"e\"\n" is the
     * fixed part; find the key length that fills the text exactly. */
    size_t fixed = strlen("key: \nstatus: 200\nsize: 0\nstored: 0\netag: \"e\"\n");
    size_t exact = META_MAX - fixed;
    char *key = malloc(exact + 2);
    assert_non_null(key);
    memset(key, 'k', exact + 1);
    key[exact + 1] = '\0';

    m.key = key; /* one byte too many */
    memset(block, 0x55, sizeof(block));
    assert_int_equal(obj_header_encode(&m, block), -1);
    for (size_t i = 0; i < sizeof(block); i++)
        assert_int_equal(block[i], 0); /* no stale or partial block */

    key[exact] = '\0'; /* exactly full */
    assert_int_equal(obj_header_encode(&m, block), 0);
    assert_int_equal(text_len(block), META_MAX);
    struct obj_meta out;
    assert_int_equal(obj_header_decode(block, sizeof(block), &out, NULL, 0), 0);
    assert_int_equal(strlen(out.key), exact);
    obj_meta_free(&out);

    /* Many long headers overflow too. */
    key[10] = '\0';
    char value[600];
    memset(value, 'v', sizeof(value) - 1);
    value[sizeof(value) - 1] = '\0';
    for (int i = 0; i < 8; i++)
        assert_int_equal(obj_meta_add_header(&m, "X-Long", value), 0);
    assert_int_equal(obj_header_encode(&m, block), -1);
    obj_meta_free(&m); /* frees key and etag too */
}

static void test_bad_strings_refused(void **state)
{
    (void)state;
    static const struct {
        const char *key, *etag, *hname, *hvalue;
        int status;
    } cases[] = {
        { "a\nb", "\"e\"", NULL, NULL, 200 },
        { "a\rb", "\"e\"", NULL, NULL, 200 },
        { "ab\n", "\"e\"", NULL, NULL, 200 },
        { "", "\"e\"", NULL, NULL, 200 },
        { NULL, "\"e\"", NULL, NULL, 200 },
        { "k", "\"e\n\"", NULL, NULL, 200 },
        { "k", "\"e\r\"", NULL, NULL, 200 },
        { "k", "\"e\x01\"", NULL, NULL, 200 },
        { "k", "", NULL, NULL, 200 },
        { "k", NULL, NULL, NULL, 200 },
        { "k", "\"e\"", "X-A\n", "v", 200 },
        { "k", "\"e\"", "X-A", "v\n", 200 },
        { "k", "\"e\"", "X-A", "v\r\nX-Evil: 1", 200 },
        { "k", "\"e\"", "X A", "v", 200 },
        { "k", "\"e\"", "X-A:", "v", 200 },
        { "k", "\"e\"", "", "v", 200 },
        { "k", "\"e\"", "X-A", "\x7f", 200 },
        { "k", "\"e\"", NULL, NULL, 99 },
        { "k", "\"e\"", NULL, NULL, 600 },
        { "k", "\"e\"", NULL, NULL, -200 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct obj_meta m;
        uint8_t block[OBJ_HEADER_SIZE];
        memset(&m, 0, sizeof(m));
        m.key = cases[i].key ? strdup(cases[i].key) : NULL;
        m.etag = cases[i].etag ? strdup(cases[i].etag) : NULL;
        m.status = cases[i].status;
        if (cases[i].hname)
            assert_int_equal(obj_meta_add_header(&m, cases[i].hname, cases[i].hvalue), 0);
        int rc = obj_header_encode(&m, block);
        if (rc != -1)
            print_error("bad-string case %zu encoded\n", i);
        assert_int_equal(rc, -1);
        obj_meta_free(&m);
    }
}

/* ------------------------------------------------------ hand-built text */

static void test_unknown_field_ignored(void **state)
{
    (void)state;
    static const char text[] =
        "key: generic:a/b\n"
        "future-thing: whatever: with colons\n"
        "status: 206\n"
        "x-v2: \n"
        "size: 5\n"
        "stored: 1\n"
        "etag: \"x\"\n"
        "h: ETag-Ish: \"y\"\n"
        "last-modified: 784111777\n";
    uint8_t block[OBJ_HEADER_SIZE];
    struct obj_meta m;
    char err[128] = "";
    build_block(block, text, sizeof(text) - 1);
    assert_int_equal(obj_header_decode(block, sizeof(block), &m, err, sizeof(err)), 0);
    assert_string_equal(m.key, "generic:a/b");
    assert_int_equal(m.status, 206);
    assert_true(m.size == 5);
    assert_true(m.stored == 1);
    assert_string_equal(m.etag, "\"x\"");
    assert_true(m.last_modified == 784111777);
    assert_int_equal(m.n_headers, 1);
    assert_string_equal(m.headers[0].name, "ETag-Ish");
    assert_string_equal(m.headers[0].value, "\"y\"");
    obj_meta_free(&m);
    obj_meta_free(&m); /* a second free is harmless */
    obj_meta_free(NULL);
}

static void test_missing_required_rejected(void **state)
{
    (void)state;
    static const char *const lines[] = {
        "key: generic:a/b\n", "status: 200\n", "size: 5\n", "stored: 1\n", "etag: \"x\"\n",
    };
    for (size_t skip = 0; skip < sizeof(lines) / sizeof(lines[0]); skip++) {
        char text[256] = "";
        for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
            if (i != skip)
                strcat(text, lines[i]);
        strcat(text, "last-modified: 1\nh: A: b\n");
        uint8_t block[OBJ_HEADER_SIZE];
        build_block(block, text, strlen(text));
        assert_rejected(block, sizeof(block), lines[skip]);
    }
    uint8_t block[OBJ_HEADER_SIZE];
    build_block(block, "", 0);
    assert_rejected(block, sizeof(block), "empty text");
}

struct text_case {
    const char *text;
    size_t len;
    bool ok;
};

/* Lines appended to BASE_TEXT (or, with a leading '!', replacing it). */
static const struct text_case text_cases[] = {
    /* accepted */
    { S(""), true },
    { S("last-modified: -1\n"), true },
    { S("last-modified: -9223372036854775808\n"), true },
    { S("last-modified: 9223372036854775807\n"), true },
    { S("h: A: \n"), true },
    { S("h: A: b: c\n"), true },
    { S("h: A:  leading space\n"), true },
    { S("unknown: \x01\x7f\xff\n"), true },  /* unknown values are not parsed */
    { S("!key: k\nstatus: 100\nsize: 0\nstored: -5\netag: e\n"), true },
    { S("!key: k\nstatus: 599\nsize: 18446744073709551615\nstored: 0\netag: e\n"), true },
    { S("!key:  k with spaces \nstatus: 200\nsize: 0\nstored: 0\netag: e\n"), true },
    /* numbers */
    { S("!key: k\nstatus: 99\nsize: 0\nstored: 0\netag: e\n"), false },
    { S("!key: k\nstatus: 600\nsize: 0\nstored: 0\netag: e\n"), false },
    { S("!key: k\nstatus: 0200\nsize: 0\nstored: 0\netag: e\n"), false },
    { S("!key: k\nstatus: 2000\nsize: 0\nstored: 0\netag: e\n"), false },
    { S("!key: k\nstatus: 99999999999999999999999\nsize: 0\nstored: 0\netag: e\n"), false },
    { S("!key: k\nstatus: \nsize: 0\nstored: 0\netag: e\n"), false },
    { S("!key: k\nstatus: 200 \nsize: 0\nstored: 0\netag: e\n"), false },
    { S("!key: k\nstatus: +200\nsize: 0\nstored: 0\netag: e\n"), false },
    { S("!key: k\nstatus: -200\nsize: 0\nstored: 0\netag: e\n"), false },
    { S("!key: k\nstatus: 200\nsize: -1\nstored: 0\netag: e\n"), false },
    { S("!key: k\nstatus: 200\nsize: 01\nstored: 0\netag: e\n"), false },
    { S("!key: k\nstatus: 200\nsize: 18446744073709551616\nstored: 0\netag: e\n"), false },
    { S("!key: k\nstatus: 200\nsize: 0x10\nstored: 0\netag: e\n"), false },
    { S("!key: k\nstatus: 200\nsize: 1e3\nstored: 0\netag: e\n"), false },
    { S("!key: k\nstatus: 200\nsize: 0\nstored: -0\netag: e\n"), false },
    { S("!key: k\nstatus: 200\nsize: 0\nstored: -\netag: e\n"), false },
    { S("!key: k\nstatus: 200\nsize: 0\nstored: 9223372036854775808\netag: e\n"), false },
    { S("!key: k\nstatus: 200\nsize: 0\nstored: -9223372036854775809\netag: e\n"), false },
    { S("last-modified: x\n"), false },
    { S("last-modified: \n"), false },
    /* duplicates */
    { S("key: other\n"), false },
    { S("status: 200\n"), false },
    { S("size: 5\n"), false },
    { S("stored: 1\n"), false },
    { S("etag: \"x\"\n"), false },
    { S("last-modified: 1\nlast-modified: 1\n"), false },
    /* empty or bad values of known fields */
    { S("!key: \nstatus: 200\nsize: 0\nstored: 0\netag: e\n"), false },
    { S("!key: k\nstatus: 200\nsize: 0\nstored: 0\netag: \n"), false },
    { S("!key: k\nstatus: 200\nsize: 0\nstored: 0\netag: \"\x01\"\n"), false },
    { S("!key: k\nstatus: 200\nsize: 0\nstored: 0\netag: \"\x7f\"\n"), false },
    /* line syntax */
    { S("no colon\n"), false },
    { S("name:value\n"), false },
    { S("name:\n"), false },
    { S(": value\n"), false },
    { S("na me: value\n"), false },
    { S("KEY: value\n"), true },             /* names are case-sensitive: unknown */
    { S("\n"), false },
    { S("x: y"), false },                    /* unterminated last line */
    { S("x: y\r\n"), false },
    { S("x: \ry\n"), false },
    { S("x: y\0z\n"), false },
    { S("\0"), false },
    /* kept headers */
    { S("h: \n"), false },
    { S("h: A\n"), false },
    { S("h: A:b\n"), false },
    { S("h: : b\n"), false },
    { S("h: A B: c\n"), false },
    { S("h: A\x01: c\n"), false },
    { S("h: A: b\x01\n"), false },
    { S("h: A: b\x7f\n"), false },
    { S("h:A: b\n"), false },
};

static void test_hostile_text(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(text_cases) / sizeof(text_cases[0]); i++) {
        const struct text_case *c = &text_cases[i];
        char text[1024];
        size_t n;
        if (c->len > 0 && c->text[0] == '!') {
            n = c->len - 1;
            memcpy(text, c->text + 1, n);
        } else {
            n = strlen(BASE_TEXT);
            memcpy(text, BASE_TEXT, n);
            memcpy(text + n, c->text, c->len);
            n += c->len;
        }
        uint8_t block[OBJ_HEADER_SIZE];
        struct obj_meta m;
        char err[128] = "";
        build_block(block, text, n);
        int rc = obj_header_decode(block, sizeof(block), &m, err, sizeof(err));
        if ((rc == 0) != c->ok)
            print_error("text case %zu: rc %d err \"%s\"\n", i, rc, err);
        assert_int_equal(rc == 0, c->ok);
        if (rc == 0)
            obj_meta_free(&m);
        else
            assert_null(m.key);
    }
}

static void test_frame_rejected(void **state)
{
    (void)state;
    uint8_t block[OBJ_HEADER_SIZE];

    build_block(block, S(BASE_TEXT));
    block[0] = 's';
    assert_rejected(block, sizeof(block), "magic");

    build_block(block, S(BASE_TEXT));
    put_le32(block + 8, META_MAX + 1);
    assert_rejected(block, sizeof(block), "length just too large");
    put_le32(block + 8, UINT32_MAX);
    assert_rejected(block, sizeof(block), "length huge");

    build_block(block, S(BASE_TEXT));
    block[OBJ_HEADER_SIZE - 1] = 1;
    assert_rejected(block, sizeof(block), "padding");

    /* The largest text is accepted when its CRC is right. */
    char text[META_MAX];
    memset(text, 'y', sizeof(text));
    memcpy(text, BASE_TEXT, strlen(BASE_TEXT));
    memcpy(text + strlen(BASE_TEXT), "pad: ", 5);
    text[META_MAX - 1] = '\n';
    build_block(block, text, META_MAX);
    struct obj_meta m;
    assert_int_equal(obj_header_decode(block, sizeof(block), &m, NULL, 0), 0);
    obj_meta_free(&m);

    /* err is optional, and a 1-byte err is still terminated. */
    char tiny[1] = { 'z' };
    block[0] ^= 1;
    assert_int_equal(obj_header_decode(block, sizeof(block), &m, tiny, sizeof(tiny)), -1);
    assert_int_equal(tiny[0], '\0');
    assert_int_equal(obj_header_decode(block, sizeof(block), &m, NULL, 0), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_verified_round_trip),
        cmocka_unit_test(test_text_layout),
        cmocka_unit_test(test_round_trip_extremes),
        cmocka_unit_test(test_decode_longer_buffer),
        cmocka_unit_test(test_every_byte_flip_rejected),
        cmocka_unit_test(test_truncation_rejected),
        cmocka_unit_test(test_too_many_headers),
        cmocka_unit_test(test_oversized_refused),
        cmocka_unit_test(test_bad_strings_refused),
        cmocka_unit_test(test_unknown_field_ignored),
        cmocka_unit_test(test_missing_required_rejected),
        cmocka_unit_test(test_hostile_text),
        cmocka_unit_test(test_frame_rejected),
        cmocka_unit_test(test_fits_the_worst_case),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
