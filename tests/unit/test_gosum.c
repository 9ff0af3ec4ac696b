/*
 * test_gosum.c - Go's h1 hash (eco/gosum.c) against the real Go's.
 *
 * Where the expected values come from: tests/unit/fixtures/gosum/
 * groundtruth.go, run with Debian's go 1.19 and golang.org/x/mod
 * (GO111MODULE=off GOPATH=/usr/share/gocode), which prints
 * dirhash.HashZip of a zip and dirhash.Hash1 of a go.mod exactly as cmd/go
 * computes them. module.zip and mixed.zip were written by Go itself
 * (x/mod/zip, archive/zip). The zips this test writes with its own small
 * writer were hashed by the same program: run this test with
 * GOSUM_DUMP=<dir> to get them as files, then `groundtruth.go hash`.
 *
 * Then every damaged or hostile zip (outside the file, truncated, CRC-32
 * wrong, duplicate names, a newline in a name, an entry claiming a
 * terabyte, ...) is refused with a reason and no sanitizer report; and
 * the text forms: "h1:" parsed strictly, a sumdb lookup's line found.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include "eco/gosum.h"

#define FIXTURES "tests/unit/fixtures/gosum/"
#define PAD 4096        /* the zip starts where an object file's body does */

/* ------------------------------------------------------- a tiny zip writer */

struct ent {
    char name[64];
    uint32_t crc;
    uint64_t csize, usize, local;
    uint16_t method, flags;
};

struct zw {
    uint8_t *buf;
    size_t len, cap;
    struct ent ents[32];
    size_t n;
    bool zip64;         /* every size and offset through the ZIP64 extra field */
};

static void put(struct zw *w, const void *p, size_t n)
{
    if (w->len + n > w->cap) {
        w->cap = (w->len + n) * 2 + 1024;
        w->buf = realloc(w->buf, w->cap);
        assert_non_null(w->buf);
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void put16(struct zw *w, uint32_t v)
{
    uint8_t b[2] = { (uint8_t)v, (uint8_t)(v >> 8) };
    put(w, b, 2);
}

static void put32(struct zw *w, uint32_t v)
{
    put16(w, v & 0xffff);
    put16(w, v >> 16);
}

static void put64(struct zw *w, uint64_t v)
{
    put32(w, (uint32_t)v);
    put32(w, (uint32_t)(v >> 32));
}

static size_t deflate_raw(const uint8_t *in, size_t n, uint8_t **out)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    assert_int_equal(deflateInit2(&zs, 9, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&zs, n);
    *out = malloc(cap ? cap : 1);
    zs.next_in = (uint8_t *)in;
    zs.avail_in = (uInt)n;
    zs.next_out = *out;
    zs.avail_out = (uInt)cap;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    size_t len = zs.total_out;
    deflateEnd(&zs);
    return len;
}

enum { STORED = 0, DEFLATED = 8 };
enum { NO_DESC = 0, DESC = 1, DESC_SIGNED = 2 };

static void zw_add(struct zw *w, const char *name, const void *data, size_t n, int method, int desc)
{
    struct ent *e = &w->ents[w->n++];
    uint8_t *z = NULL;
    const uint8_t *body = data;
    snprintf(e->name, sizeof(e->name), "%s", name);
    e->crc = (uint32_t)crc32(crc32(0, Z_NULL, 0), data, (uInt)n);
    e->usize = n;
    e->csize = n;
    e->method = (uint16_t)method;
    e->flags = desc ? 8 : 0;
    e->local = w->len;
    if (method == DEFLATED) {
        e->csize = deflate_raw(data, n, &z);
        body = z;
    }
    put32(w, 0x04034b50);
    put16(w, w->zip64 ? 45 : 20);
    put16(w, e->flags);
    put16(w, e->method);
    put32(w, 0);                                  /* time, date */
    put32(w, desc ? 0 : e->crc);
    put32(w, desc ? 0 : w->zip64 ? 0xffffffffu : (uint32_t)e->csize);
    put32(w, desc ? 0 : w->zip64 ? 0xffffffffu : (uint32_t)e->usize);
    put16(w, (uint32_t)strlen(name));
    put16(w, w->zip64 ? 20 : 0);
    put(w, name, strlen(name));
    if (w->zip64) {
        put16(w, 1);
        put16(w, 16);
        put64(w, desc ? 0 : e->usize);
        put64(w, desc ? 0 : e->csize);
    }
    put(w, body, e->csize);
    if (desc == DESC_SIGNED)
        put32(w, 0x08074b50);
    if (desc) {
        put32(w, e->crc);
        put32(w, (uint32_t)e->csize);
        put32(w, (uint32_t)e->usize);
    }
    free(z);
}

static void zw_central(struct zw *w, const struct ent *e)
{
    put32(w, 0x02014b50);
    put16(w, w->zip64 ? 45 : 20);
    put16(w, w->zip64 ? 45 : 20);
    put16(w, e->flags);
    put16(w, e->method);
    put32(w, 0);
    put32(w, e->crc);
    put32(w, w->zip64 ? 0xffffffffu : (uint32_t)e->csize);
    put32(w, w->zip64 ? 0xffffffffu : (uint32_t)e->usize);
    put16(w, (uint32_t)strlen(e->name));
    put16(w, w->zip64 ? 28 : 0);
    put16(w, 0);                                  /* comment */
    put16(w, 0);                                  /* disk */
    put16(w, 0);
    put32(w, 0);
    put32(w, w->zip64 ? 0xffffffffu : (uint32_t)e->local);
    put(w, e->name, strlen(e->name));
    if (w->zip64) {
        put16(w, 1);
        put16(w, 24);
        put64(w, e->usize);
        put64(w, e->csize);
        put64(w, e->local);
    }
}

static void zw_finish(struct zw *w)
{
    uint64_t cd = w->len;
    for (size_t i = 0; i < w->n; i++)
        zw_central(w, &w->ents[i]);
    uint64_t cd_size = w->len - cd, z64 = w->len;
    if (w->zip64) {
        put32(w, 0x06064b50);
        put64(w, 44);
        put16(w, 45);
        put16(w, 45);
        put32(w, 0);
        put32(w, 0);
        put64(w, w->n);
        put64(w, w->n);
        put64(w, cd_size);
        put64(w, cd);
        put32(w, 0x07064b50);
        put32(w, 0);
        put64(w, z64);
        put32(w, 1);
    }
    put32(w, 0x06054b50);
    put32(w, 0);
    put16(w, w->zip64 ? 0xffff : (uint32_t)w->n);
    put16(w, w->zip64 ? 0xffff : (uint32_t)w->n);
    put32(w, w->zip64 ? 0xffffffffu : (uint32_t)cd_size);
    put32(w, w->zip64 ? 0xffffffffu : (uint32_t)cd);
    put16(w, 7);
    put(w, "comment", 7);
}

/* --------------------------------------------------------------- helpers */

/* The zip in a temp file behind PAD bytes of junk and followed by more. */
static int zip_fd(const uint8_t *zip, size_t len)
{
    char path[] = "/tmp/test_gosum.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    uint8_t junk[PAD];
    memset(junk, 'P', sizeof(junk));
    assert_int_equal(write(fd, junk, PAD), PAD);
    assert_int_equal(write(fd, zip, len), (ssize_t)len);
    assert_int_equal(write(fd, junk, 100), 100);
    return fd;
}

static int h1_of(const uint8_t *zip, size_t len, char text[GOSUM_H1_TEXT], char *err, size_t errlen)
{
    int fd = zip_fd(zip, len);
    uint8_t h[32];
    int rc = gosum_zip_h1(fd, PAD, len, h, err, errlen);
    close(fd);
    if (rc == 0)
        gosum_format_h1(h, text);
    return rc;
}

static void expect_h1(const uint8_t *zip, size_t len, const char *want)
{
    char text[GOSUM_H1_TEXT], err[256];
    int rc = h1_of(zip, len, text, err, sizeof(err));
    if (rc != 0)
        fail_msg("refused: %s", err);
    assert_string_equal(text, want);
}

/* Refused, with a reason that says what (a substring of it). */
static void expect_refused(const uint8_t *zip, size_t len, const char *why)
{
    char text[GOSUM_H1_TEXT], err[256] = "unset";
    assert_int_equal(h1_of(zip, len, text, err, sizeof(err)), -1);
    if (!strstr(err, why))
        fail_msg("reason \"%s\" does not say \"%s\"", err, why);
    assert_null(strchr(err, '\n'));
}

static void dump(const char *name, const struct zw *w)
{
    const char *dir = getenv("GOSUM_DUMP");
    char path[512];
    if (!dir)
        return;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(w->buf, 1, w->len, f);
    fclose(f);
}

static uint8_t *read_fixture(const char *name, size_t *len)
{
    FILE *f = fopen(name, "rb");
    if (!f)
        fail_msg("%s: run the test from the repository's root", name);
    static uint8_t buf[64 << 10];
    *len = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    return buf;
}

/* ----------------------------------------------------- zips Go wrote */

static void test_zips_go_wrote(void **state)
{
    (void)state;
    size_t len;
    /* x/mod/zip.Create: deflate and data descriptors throughout; names in
     * an order ("Demo_test.go" < "LICENSE" < "big.txt", "sub.go" <
     * "sub/inner.go") and a 150 KB file inflated in several pieces. */
    uint8_t *zip = read_fixture(FIXTURES "module.zip", &len);
    expect_h1(zip, len, "h1:swFsGzNW6OnBje/aRGfqArT6vpRILHNm7fdd6D0VwfU=");
    /* archive/zip: a stored entry without a descriptor, a directory entry
     * (hashed as an empty file, as HashZip does: without it the h1 would
     * be h1:UAcnZhDzvZ3Z/2kxVD9o0PM4KnTgAd8G+P4gDxzJMCk=), an empty file. */
    zip = read_fixture(FIXTURES "mixed.zip", &len);
    expect_h1(zip, len, "h1:fO37qUnSVL+hGtH1f/pqJz/mZcSAwEMe4P5YSD0Hqfs=");
}

static void test_go_mod(void **state)
{
    (void)state;
    const char mod[] = "module example.com/Gosum/demo\n\ngo 1.19\n";
    uint8_t h[32];
    char text[GOSUM_H1_TEXT];
    gosum_file_h1("go.mod", (const uint8_t *)mod, strlen(mod), h);
    gosum_format_h1(h, text);
    assert_string_equal(text, "h1:U2t3Mhn1Vd7nkKgl3FieA3xw30xADU+L/f5JbmImjrM=");
}

/* ------------------------------------------------ zips this test writes */

static uint8_t big_random[200000], big_text[300000];

static void fill_contents(void)
{
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof(big_random); i++) {
        x = x * 1103515245u + 12345u;
        big_random[i] = (uint8_t)(x >> 16);
    }
    for (size_t i = 0; i < sizeof(big_text); i++)
        big_text[i] = "gosum hashes module zips\n"[i % 25];
}

/* The same files, every way of writing them; order is the writer's. */
static void write_set(struct zw *w, bool reversed)
{
    static const char small[] = "package demo\n";
    struct {
        const char *name;
        const void *data;
        size_t len;
        int method, desc;
    } f[] = {
        { "example.com/w@v1.0.0/go.mod", "module example.com/w\n", 21, STORED, NO_DESC },
        { "example.com/w@v1.0.0/a.go", small, sizeof(small) - 1, DEFLATED, DESC_SIGNED },
        { "example.com/w@v1.0.0/b.go", small, sizeof(small) - 1, DEFLATED, DESC },
        { "example.com/w@v1.0.0/c.go", small, sizeof(small) - 1, STORED, DESC_SIGNED },
        { "example.com/w@v1.0.0/empty", "", 0, DEFLATED, NO_DESC },
        { "example.com/w@v1.0.0/dir/", "", 0, STORED, NO_DESC },
        { "example.com/w@v1.0.0/random.bin", big_random, sizeof(big_random), DEFLATED, NO_DESC },
        { "example.com/w@v1.0.0/random.raw", big_random, sizeof(big_random), STORED, NO_DESC },
        { "example.com/w@v1.0.0/text.txt", big_text, sizeof(big_text), DEFLATED, DESC },
    };
    size_t n = sizeof(f) / sizeof(f[0]);
    for (size_t i = 0; i < n; i++) {
        size_t k = reversed ? n - 1 - i : i;
        zw_add(w, f[k].name, f[k].data, f[k].len, f[k].method, f[k].desc);
    }
    zw_finish(w);
}

/* Hashed by groundtruth.go (GOSUM_DUMP): writer.zip, writer64.zip and
 * reversed.zip all gave this one. */
/* Hashed by groundtruth.go (GOSUM_DUMP): small64.zip. */
#define SMALL64_H1 "h1:cepIdBcXbYYIG9c8ycsTt0rWG2BBZ/LU8luULnVNldQ="
#define WRITER_H1 "h1:FXch3R84Tr8KjfuYYuqKiLE+zVK7Q4MrIc4glowFdqE="

static void test_zips_this_test_writes(void **state)
{
    (void)state;
    struct zw plain = { 0 }, z64 = { .zip64 = true }, rev = { 0 };
    fill_contents();
    write_set(&plain, false);
    write_set(&z64, false);
    write_set(&rev, true);
    dump("writer.zip", &plain);
    dump("writer64.zip", &z64);
    dump("reversed.zip", &rev);
    expect_h1(plain.buf, plain.len, WRITER_H1);
    expect_h1(z64.buf, z64.len, WRITER_H1);
    expect_h1(rev.buf, rev.len, WRITER_H1);
    free(plain.buf);
    free(z64.buf);
    free(rev.buf);
}

/* A small ZIP64 zip (every size and offset in the ZIP64 extra fields, the
 * end records saturated): Go reads it, and gets this (small64.zip). */
static void test_small_zip64(void **state)
{
    (void)state;
    struct zw w = { .zip64 = true };
    zw_add(&w, "m@v1.0.0/b", "stored\n", 7, STORED, NO_DESC);
    zw_add(&w, "m@v1.0.0/a", "deflated, with a descriptor\n", 28, DEFLATED, DESC_SIGNED);
    zw_finish(&w);
    dump("small64.zip", &w);
    expect_h1(w.buf, w.len, SMALL64_H1);
    free(w.buf);
}

/* No entries at all: the hash of nothing (Go's too). */
static void test_empty_zip(void **state)
{
    (void)state;
    struct zw w = { 0 };
    zw_finish(&w);
    dump("empty.zip", &w);
    expect_h1(w.buf, w.len, "h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
    free(w.buf);
}

/* --------------------------------------------------- refused, with reason */

static struct zw one_file(const char *name, int method, int desc)
{
    struct zw w = { 0 };
    zw_add(&w, name, "hello, world\n", 13, method, desc);
    zw_finish(&w);
    return w;
}

static void test_outside_the_file(void **state)
{
    (void)state;
    struct zw w = one_file("m@v1/a", DEFLATED, NO_DESC);
    int fd = zip_fd(w.buf, w.len);
    uint8_t h[32];
    char err[256];
    off_t end = lseek(fd, 0, SEEK_END);
    assert_int_equal(gosum_zip_h1(fd, (uint64_t)end + 10, 100, h, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "shorter"));
    assert_int_equal(gosum_zip_h1(fd, PAD, (uint64_t)end, h, err, sizeof(err)), -1);   /* runs past the end */
    assert_int_equal(gosum_zip_h1(fd, UINT64_MAX - 5, 100, h, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "overflow"));
    assert_int_equal(gosum_zip_h1(fd, PAD, 600ull << 20, h, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "at most"));
    assert_int_equal(gosum_zip_h1(fd, PAD, 10, h, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "too short"));
    assert_int_equal(gosum_zip_h1(-1, 0, 100, h, err, sizeof(err)), -1);
    assert_int_equal(gosum_zip_h1(fd, PAD, w.len, h, NULL, 0), 0);    /* no room for a reason: fine */
    close(fd);
    free(w.buf);
}

static void test_truncated_everywhere(void **state)
{
    (void)state;
    struct zw w = one_file("m@v1/a", DEFLATED, DESC_SIGNED);
    /* Any prefix, and any tail, of a zip is not a zip. */
    for (size_t n = 0; n < w.len; n++) {
        char text[GOSUM_H1_TEXT], err[256];
        assert_int_equal(h1_of(w.buf, n, text, err, sizeof(err)), -1);
        assert_int_equal(h1_of(w.buf + n + 1, w.len - n - 1, text, err, sizeof(err)), -1);
    }
    free(w.buf);
}

/* Offsets of the one entry's fields in a one_file zip. */
static size_t local_data(const struct zw *w)
{
    return 30 + strlen(w->ents[0].name);
}

static size_t central(const struct zw *w)
{
    return w->len - 22 - 7 - (46 + strlen(w->ents[0].name));
}

static void set32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void test_damaged_entries(void **state)
{
    (void)state;
    struct zw w = one_file("m@v1/a", STORED, NO_DESC);
    w.buf[local_data(&w)] ^= 1;
    expect_refused(w.buf, w.len, "CRC-32 mismatch");
    free(w.buf);

    w = one_file("m@v1/a", DEFLATED, NO_DESC);
    w.buf[central(&w) + 16] ^= 1;                     /* the central CRC-32 */
    expect_refused(w.buf, w.len, "CRC-32 mismatch");
    free(w.buf);

    w = one_file("m@v1/a", DEFLATED, DESC_SIGNED);
    w.buf[central(&w) - 12] ^= 1;                     /* the descriptor's CRC-32 */
    expect_refused(w.buf, w.len, "data descriptor");
    free(w.buf);

    w = one_file("m@v1/a", DEFLATED, NO_DESC);
    memset(w.buf + local_data(&w), 0xff, w.ents[0].csize);
    expect_refused(w.buf, w.len, "bad deflate data");
    free(w.buf);

    w = one_file("m@v1/a", DEFLATED, NO_DESC);
    set32(w.buf + central(&w) + 24, 12);              /* declares one byte fewer */
    expect_refused(w.buf, w.len, "more than its 12 bytes");
    free(w.buf);

    w = one_file("m@v1/a", DEFLATED, NO_DESC);
    set32(w.buf + central(&w) + 24, 14);              /* one byte more */
    expect_refused(w.buf, w.len, "fewer bytes than declared");
    free(w.buf);

    w = one_file("m@v1/a", DEFLATED, NO_DESC);
    set32(w.buf + central(&w) + 20, (uint32_t)w.ents[0].csize - 1);   /* the stream cut short */
    expect_refused(w.buf, w.len, "ends before its last block");
    free(w.buf);

    w = one_file("m@v1/a", STORED, NO_DESC);
    set32(w.buf + central(&w) + 24, 1000);            /* stored: sizes must agree */
    expect_refused(w.buf, w.len, "cannot be");
    free(w.buf);

    w = one_file("m@v1/a", STORED, NO_DESC);
    w.buf[central(&w) + 10] = 12;                      /* bzip2 */
    expect_refused(w.buf, w.len, "method 12");
    free(w.buf);

    w = one_file("m@v1/a", STORED, NO_DESC);
    w.buf[central(&w) + 8] |= 1;                       /* encrypted */
    expect_refused(w.buf, w.len, "encrypted");
    free(w.buf);

    w = one_file("m@v1/a", STORED, NO_DESC);
    w.buf[0] = 'X';                                    /* the local header's signature */
    expect_refused(w.buf, w.len, "no local header");
    free(w.buf);
}

static void test_hostile_directories(void **state)
{
    (void)state;
    struct zw w = { 0 };
    zw_add(&w, "m@v1/a", "x", 1, STORED, NO_DESC);
    zw_add(&w, "m@v1/b", "y", 1, DEFLATED, NO_DESC);
    zw_add(&w, "m@v1/a", "z", 1, STORED, NO_DESC);
    zw_finish(&w);
    expect_refused(w.buf, w.len, "m@v1/a twice");
    free(w.buf);

    w = one_file("m@v1/a\nb", STORED, NO_DESC);
    expect_refused(w.buf, w.len, "newline");
    free(w.buf);

    /* A ZIP64 entry claiming a terabyte. */
    w = (struct zw){ .zip64 = true };
    zw_add(&w, "m@v1/huge", "x", 1, DEFLATED, NO_DESC);
    w.ents[0].usize = 1ull << 40;
    zw_finish(&w);
    expect_refused(w.buf, w.len, "more than 524288000 bytes of content");
    free(w.buf);

    /* Many central records naming one stream: more data than the zip. */
    w = (struct zw){ 0 };
    zw_add(&w, "m@v1/a", big_text, 50000, STORED, NO_DESC);
    for (int i = 1; i < 5; i++) {
        w.ents[w.n] = w.ents[0];
        snprintf(w.ents[w.n++].name, 64, "m@v1/copy%d", i);
    }
    zw_finish(&w);
    expect_refused(w.buf, w.len, "outside the zip");
    free(w.buf);

    /* More entries than the directory holds (a long name, so that two
     * records' worth of bytes are there). */
    w = one_file("m@v1/a-name-long-enough-for-a-second-record-to-seem-to-fit", STORED, NO_DESC);
    w.buf[w.len - 7 - 12] = 2;
    w.buf[w.len - 7 - 14] = 2;
    expect_refused(w.buf, w.len, "missing or damaged");
    free(w.buf);

    /* An entry count no directory could hold. */
    w = one_file("m@v1/a", STORED, NO_DESC);
    w.buf[w.len - 7 - 12] = 0xfe;
    w.buf[w.len - 7 - 14] = 0xfe;
    expect_refused(w.buf, w.len, "cannot fit");
    free(w.buf);

    /* A saturated field without the ZIP64 records. */
    w = one_file("m@v1/a", STORED, NO_DESC);
    set32(w.buf + w.len - 7 - 6, 0xffffffffu);
    expect_refused(w.buf, w.len, "ZIP64 locator");
    free(w.buf);

    /* Not a zip at all. */
    expect_refused(big_random, 5000, "no end-of-central-directory");
}

/* ----------------------------------------------------------- text forms */

static void test_parse_h1(void **state)
{
    (void)state;
    uint8_t h[32], again[32];
    char text[GOSUM_H1_TEXT];
    const char *good = "h1:U2t3Mhn1Vd7nkKgl3FieA3xw30xADU+L/f5JbmImjrM=";
    assert_true(gosum_parse_h1(good, strlen(good), h));
    gosum_format_h1(h, text);
    assert_string_equal(text, good);
    assert_true(gosum_parse_h1(text, strlen(text), again));
    assert_memory_equal(h, again, 32);
    assert_false(gosum_parse_h1(good, strlen(good) - 1, h));
    assert_false(gosum_parse_h1("h2:U2t3Mhn1Vd7nkKgl3FieA3xw30xADU+L/f5JbmImjrM=", 47, h));
    assert_false(gosum_parse_h1("h1:U2t3Mhn1Vd7nkKgl3FieA3xw30xADU+L/f5JbmImjrN=", 47, h));  /* stray bits */
    assert_false(gosum_parse_h1("h1:U2t3Mhn1Vd7nkKgl3FieA3xw30xADU-L/f5JbmImjrM=", 47, h));  /* URL alphabet */
    assert_false(gosum_parse_h1("h1:U2t3Mhn1Vd7nkKgl3FieA3xw30xADU+L/f5JbmImjrMM", 47, h));
    assert_false(gosum_parse_h1("h1:U2t3Mhn1Vd7nkKgl3FieA3xw30xADU+L/f5JbmImj==", 46, h));
    assert_false(gosum_parse_h1("", 0, h));
}

#define LOOKUP                                                                   \
    "24893213\n"                                                                 \
    "github.com/Azure/sdk v1.0.0 h1:swFsGzNW6OnBje/aRGfqArT6vpRILHNm7fdd6D0VwfU=\n" \
    "github.com/Azure/sdk v1.0.0/go.mod h1:U2t3Mhn1Vd7nkKgl3FieA3xw30xADU+L/f5JbmImjrM=\n" \
    "\n"                                                                         \
    "go.sum database tree\n"                                                     \
    "31000000\n"                                                                 \
    "Qg7mGHHBp2gCRGgGyvtY/nX1nDE2dpc9WdETGvhVQ0s=\n"                             \
    "\n"                                                                         \
    "\xe2\x80\x94 sum.golang.org Az3grnmrxEU7w5aZbGvHQu0j1G4fc4p0OETTVXv9Lhr8Ka8CvEwGtgjI=\n"

static void expect_lookup(const char *body, const char *module, const char *version, bool go_mod,
                          const char *want)
{
    uint8_t h[32];
    char text[GOSUM_H1_TEXT];
    bool found = gosum_lookup_line(body, strlen(body), module, version, go_mod, h);
    if (!want) {
        assert_false(found);
        return;
    }
    assert_true(found);
    gosum_format_h1(h, text);
    assert_string_equal(text, want);
}

static void test_lookup_line(void **state)
{
    (void)state;
    expect_lookup(LOOKUP, "github.com/Azure/sdk", "v1.0.0", false, "h1:swFsGzNW6OnBje/aRGfqArT6vpRILHNm7fdd6D0VwfU=");
    expect_lookup(LOOKUP, "github.com/Azure/sdk", "v1.0.0", true, "h1:U2t3Mhn1Vd7nkKgl3FieA3xw30xADU+L/f5JbmImjrM=");
    expect_lookup(LOOKUP, "github.com/azure/sdk", "v1.0.0", false, NULL);      /* the decoded name */
    expect_lookup(LOOKUP, "github.com/Azure/sd", "v1.0.0", false, NULL);
    expect_lookup(LOOKUP, "github.com/Azure/sdk", "v1.0", false, NULL);
    expect_lookup(LOOKUP, "github.com/Azure/sdk", "v1.0.0/go.mod", false, NULL);
    expect_lookup(LOOKUP, "github.com/Azure/sdk v1.0.0", "h1:x", false, NULL);
    expect_lookup(LOOKUP, "", "v1.0.0", false, NULL);
    /* Only the record's text is searched, not the note after it. */
    expect_lookup("7\n\nm v1.0.0 h1:swFsGzNW6OnBje/aRGfqArT6vpRILHNm7fdd6D0VwfU=\n\n", "m", "v1.0.0", false, NULL);
    /* A record id, then lines, then a blank line: or nothing. */
    expect_lookup("m v1.0.0 h1:swFsGzNW6OnBje/aRGfqArT6vpRILHNm7fdd6D0VwfU=\n\n", "m", "v1.0.0", false, NULL);
    expect_lookup("7\nm v1.0.0 h1:swFsGzNW6OnBje/aRGfqArT6vpRILHNm7fdd6D0VwfU=\n", "m", "v1.0.0", false, NULL);
    expect_lookup("7\nm v1.0.0 h1:swFsGzNW6OnBje/aRGfqArT6vpRILHNm7fdd6D0VwfU=\n\n", "m", "v1.0.0", false,
                  "h1:swFsGzNW6OnBje/aRGfqArT6vpRILHNm7fdd6D0VwfU=");
    /* The same line twice, or a damaged h1 on the line asked for: no answer. */
    expect_lookup("7\nm v1 h1:swFsGzNW6OnBje/aRGfqArT6vpRILHNm7fdd6D0VwfU=\nm v1 "
                  "h1:swFsGzNW6OnBje/aRGfqArT6vpRILHNm7fdd6D0VwfU=\n\n",
                  "m", "v1", false, NULL);
    expect_lookup("7\nm v1 h1:swFsGzNW6OnBje\n\n", "m", "v1", false, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zips_go_wrote),
        cmocka_unit_test(test_go_mod),
        cmocka_unit_test(test_zips_this_test_writes),
        cmocka_unit_test(test_small_zip64),
        cmocka_unit_test(test_empty_zip),
        cmocka_unit_test(test_outside_the_file),
        cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_damaged_entries),
        cmocka_unit_test(test_hostile_directories),
        cmocka_unit_test(test_parse_h1),
        cmocka_unit_test(test_lookup_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
