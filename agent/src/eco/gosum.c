/*
 * gosum.c - Go's "h1:" hash of a module zip and of a go.mod, and the h1 a
 * checksum-database answer publishes (gosum.h).
 *
 * A zip is read the way Go's archive/zip reads it, from the end: the
 * end-of-central-directory record (and the ZIP64 locator and record when
 * a field is saturated), then the central directory, held whole and
 * sorted by name; then, name by name, each entry's local header and data,
 * streamed from pread through inflate (raw deflate) or as stored into two
 * SHA-256s and a CRC-32. Sizes, CRC-32 and method come from the central
 * directory, as Go takes them; a data descriptor (flag bit 3) is only
 * checked to agree with it, as Go does.
 *
 * Invariants: every read goes through zread, which refuses what is not
 * inside [0, size) of the zip; every count and size from the zip is
 * checked before it sizes a read, an allocation or a loop; an entry's
 * content is never trusted to be what the central directory declares
 * until it was inflated to exactly that length with that CRC-32.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <zlib.h>

#include "core/common.h"
#include "eco/gosum.h"

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOCATOR64 0x07064b50u
#define SIG_DESCRIPTOR 0x08074b50u

#define LOCAL_LEN 30
#define CENTRAL_LEN 46
#define EOCD_LEN 22
#define EOCD64_LEN 56
#define LOCATOR64_LEN 20
#define COMMENT_MAX 65535

#define FLAG_ENCRYPTED 0x0001u
#define FLAG_DESCRIPTOR 0x0008u

/* Deflate cannot expand by more than this: a 258-byte match costs at least
 * 2 bits (zlib's own bound, about 1032:1). */
#define DEFLATE_RATIO_MAX 1032u

#define SHOWN_MAX 104

struct zent {
    const uint8_t *name;
    uint32_t name_len;
    uint16_t flags, method;
    uint32_t crc;
    uint64_t csize, usize, local;
};

struct zip {
    int fd;
    uint64_t base, size;
    char *err;
    size_t errlen;
    uint64_t count, cd_off, cd_size, cd_end;
    uint8_t *cd;
    struct zent *ents;
    uint8_t *in, *out;
    EVP_MD_CTX *file_md, *all_md;
};

static int fail(struct zip *z, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct zip *z, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (z->errlen)
        vsnprintf(z->err, z->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* n bytes at off of the zip, all inside it, or -1. */
static int zread(struct zip *z, uint64_t off, void *buf, size_t n)
{
    if (off > z->size || n > z->size - off)
        return fail(z, "zip: a read at %llu+%zu is past the zip's end (%llu)", (unsigned long long)off, n,
                    (unsigned long long)z->size);
    for (size_t done = 0; done < n;) {
        ssize_t r = pread(z->fd, (uint8_t *)buf + done, n - done, (off_t)(z->base + off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return fail(z, "zip: read: %s", r < 0 ? strerror(errno) : "the file is shorter than said");
        done += (size_t)r;
    }
    return 0;
}

/* ------------------------------------------------------------ the directory */

/* The last EOCD signature whose comment fits in the tail (Go's rule). */
static int find_eocd(struct zip *z, uint64_t *pos, uint8_t rec[EOCD_LEN])
{
    if (z->size < EOCD_LEN)
        return fail(z, "zip: too short to be a zip (%llu bytes)", (unsigned long long)z->size);
    size_t tail = (size_t)SL_MIN(z->size, (uint64_t)EOCD_LEN + COMMENT_MAX);
    uint8_t *buf = malloc(tail);
    if (!buf)
        return fail(z, "zip: out of memory");
    int rc = zread(z, z->size - tail, buf, tail);
    for (size_t i = tail - EOCD_LEN + 1; rc == 0 && i-- > 0;) {
        if (le32(buf + i) == SIG_EOCD && i + EOCD_LEN + le16(buf + i + 20) <= tail) {
            memcpy(rec, buf + i, EOCD_LEN);
            *pos = z->size - tail + i;
            free(buf);
            return 0;
        }
    }
    free(buf);
    return rc ? rc : fail(z, "zip: no end-of-central-directory record");
}

/* The ZIP64 record a locator just before the EOCD points at. */
static int read_zip64(struct zip *z, uint64_t eocd_pos)
{
    uint8_t loc[LOCATOR64_LEN], rec[EOCD64_LEN];
    if (eocd_pos < LOCATOR64_LEN || zread(z, eocd_pos - LOCATOR64_LEN, loc, sizeof(loc)) < 0 ||
        le32(loc) != SIG_LOCATOR64)
        return fail(z, "zip: a saturated end-of-central-directory record without a ZIP64 locator");
    uint64_t at = le64(loc + 8);
    if (le32(loc + 4) != 0 || le32(loc + 16) > 1)
        return fail(z, "zip: spans several disks");
    if (at > eocd_pos - LOCATOR64_LEN || eocd_pos - LOCATOR64_LEN - at < EOCD64_LEN)
        return fail(z, "zip: the ZIP64 record is not before its locator");
    if (zread(z, at, rec, sizeof(rec)) < 0 || le32(rec) != SIG_EOCD64)
        return fail(z, "zip: no ZIP64 end-of-central-directory record where its locator says");
    if (le32(rec + 16) != 0 || le32(rec + 20) != 0 || le64(rec + 24) != le64(rec + 32))
        return fail(z, "zip: spans several disks");
    z->count = le64(rec + 32);
    z->cd_size = le64(rec + 40);
    z->cd_off = le64(rec + 48);
    z->cd_end = at;
    return 0;
}

static int read_eocd(struct zip *z)
{
    uint8_t rec[EOCD_LEN] = { 0 };
    uint64_t pos = 0;
    if (find_eocd(z, &pos, rec) < 0)
        return -1;
    if (le16(rec + 4) != 0 || le16(rec + 6) != 0 || le16(rec + 8) != le16(rec + 10))
        return fail(z, "zip: spans several disks");
    z->count = le16(rec + 10);
    z->cd_size = le32(rec + 12);
    z->cd_off = le32(rec + 16);
    z->cd_end = pos;
    if (z->count == 0xffff || z->cd_size == 0xffffffffu || z->cd_off == 0xffffffffu)
        if (read_zip64(z, pos) < 0)
            return -1;
    if (z->count > GOSUM_ENTRIES_MAX)
        return fail(z, "zip: %llu entries (at most %u)", (unsigned long long)z->count, GOSUM_ENTRIES_MAX);
    if (z->cd_size > GOSUM_CD_MAX)
        return fail(z, "zip: a central directory of %llu bytes (at most %u)", (unsigned long long)z->cd_size,
                    GOSUM_CD_MAX);
    if (z->cd_off > z->cd_end || z->cd_size > z->cd_end - z->cd_off)
        return fail(z, "zip: the central directory is not before its end record");
    if (z->count * CENTRAL_LEN > z->cd_size)
        return fail(z, "zip: %llu entries cannot fit in a central directory of %llu bytes",
                    (unsigned long long)z->count, (unsigned long long)z->cd_size);
    return 0;
}

/* The ZIP64 extra field (id 1): the 64-bit forms of the fields that are
 * saturated, in the order usize, csize, local offset. */
static int zip64_extra(struct zip *z, struct zent *e, const uint8_t *x, size_t len)
{
    uint64_t *want[3] = { e->usize == 0xffffffffu ? &e->usize : NULL, e->csize == 0xffffffffu ? &e->csize : NULL,
                          e->local == 0xffffffffu ? &e->local : NULL };
    for (size_t i = 0; i + 4 <= len;) {
        size_t id = le16(x + i), n = le16(x + i + 2), at = i + 4;
        if (n > len - at)
            return fail(z, "zip: an extra field runs past its entry");
        for (size_t k = 0; id == 1 && k < 3; k++) {
            if (!want[k])
                continue;
            if (at + 8 > i + 4 + n)
                return fail(z, "zip: a ZIP64 extra field too short for its saturated sizes");
            *want[k] = le64(x + at);
            want[k] = NULL;
            at += 8;
        }
        i += 4 + n;
    }
    if (want[0] || want[1] || want[2])
        return fail(z, "zip: a saturated size or offset without its ZIP64 extra field");
    return 0;
}

/* total: the content and the compressed data so far. Entries' data do not
 * overlap in a zip, so together they are no larger than it: that bounds
 * the reading (many entries naming one huge stream would not be). */
static int check_entry(struct zip *z, const struct zent *e, uint64_t total[2])
{
    if (e->name_len == 0 || e->name_len > GOSUM_NAME_MAX)
        return fail(z, "zip: an entry name of %u bytes (1 to %u)", e->name_len, GOSUM_NAME_MAX);
    if (memchr(e->name, '\n', e->name_len))
        return fail(z, "zip: a file name with a newline (dirhash refuses them)");
    if (e->flags & FLAG_ENCRYPTED)
        return fail(z, "zip: an encrypted entry");
    if (e->method != 0 && e->method != 8)
        return fail(z, "zip: an entry compressed with method %u (only stored and deflate)", e->method);
    if (e->usize > GOSUM_ZIP_MAX - total[0])
        return fail(z, "zip: more than %llu bytes of content", (unsigned long long)GOSUM_ZIP_MAX);
    total[0] += e->usize;
    if (e->csize > z->size - total[1] || e->local >= z->cd_off)
        return fail(z, "zip: an entry's data is outside the zip");
    total[1] += e->csize;
    if (e->method == 0 ? e->csize != e->usize : e->usize / DEFLATE_RATIO_MAX > e->csize)
        return fail(z, "zip: an entry of %llu bytes cannot be %llu bytes compressed",
                    (unsigned long long)e->usize, (unsigned long long)e->csize);
    return 0;
}

/* One central directory record at *at; advances it. */
static int parse_central(struct zip *z, size_t *at, struct zent *e, uint64_t total[2])
{
    const uint8_t *p = z->cd + *at;
    if (z->cd_size - *at < CENTRAL_LEN || le32(p) != SIG_CENTRAL)
        return fail(z, "zip: a central directory record is missing or damaged");
    size_t n = le16(p + 28), x = le16(p + 30), c = le16(p + 32);
    if (n + x + c > z->cd_size - *at - CENTRAL_LEN)
        return fail(z, "zip: a central directory record runs past the directory");
    *e = (struct zent){ .name = p + CENTRAL_LEN, .name_len = (uint32_t)n, .flags = le16(p + 8),
                        .method = le16(p + 10), .crc = le32(p + 16), .csize = le32(p + 20),
                        .usize = le32(p + 24), .local = le32(p + 42) };
    if (zip64_extra(z, e, p + CENTRAL_LEN + n, x) < 0)
        return -1;
    *at += CENTRAL_LEN + n + x + c;
    return check_entry(z, e, total);
}

/* An entry's name for a message: printable, at most 100 bytes shown. */
static const char *shown(const struct zent *e, char buf[SHOWN_MAX])
{
    size_t n = SL_MIN((size_t)e->name_len, (size_t)SHOWN_MAX - 4);
    for (size_t i = 0; i < n; i++)
        buf[i] = e->name[i] >= 0x20 && e->name[i] < 0x7f ? (char)e->name[i] : '?';
    strcpy(buf + n, n < e->name_len ? "..." : "");
    return buf;
}

static int name_cmp(const void *a, const void *b)
{
    const struct zent *x = a, *y = b;
    int c = memcmp(x->name, y->name, SL_MIN(x->name_len, y->name_len));
    return c ? c : (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

/* The central directory, parsed and sorted by name; no name twice. */
static int read_directory(struct zip *z)
{
    z->cd = malloc(z->cd_size ? z->cd_size : 1);
    z->ents = calloc(z->count ? z->count : 1, sizeof(*z->ents));
    if (!z->cd || !z->ents)
        return fail(z, "zip: out of memory");
    if (zread(z, z->cd_off, z->cd, z->cd_size) < 0)
        return -1;
    size_t at = 0;
    uint64_t total[2] = { 0, 0 };
    char buf[SHOWN_MAX];
    for (uint64_t i = 0; i < z->count; i++)
        if (parse_central(z, &at, &z->ents[i], total) < 0)
            return -1;
    qsort(z->ents, z->count, sizeof(*z->ents), name_cmp);
    for (uint64_t i = 1; i < z->count; i++)
        if (name_cmp(&z->ents[i - 1], &z->ents[i]) == 0)
            return fail(z, "zip: the name %s twice", shown(&z->ents[i], buf));
    return 0;
}

/* ---------------------------------------------------------------- the data */

/* Where an entry's data starts: after its local header. */
static int data_start(struct zip *z, const struct zent *e, uint64_t *start)
{
    uint8_t h[LOCAL_LEN];
    if (zread(z, e->local, h, sizeof(h)) < 0)
        return -1;
    if (le32(h) != SIG_LOCAL)
        return fail(z, "zip: no local header where the central directory says");
    *start = e->local + LOCAL_LEN + le16(h + 26) + le16(h + 28);
    if (*start > z->size || e->csize > z->size - *start)
        return fail(z, "zip: an entry's data runs past the zip's end");
    return 0;
}

/* A data descriptor after the data, signed or not: its CRC-32 must be the
 * central directory's (what Go checks; its sizes are ignored, as Go does). */
static int check_descriptor(struct zip *z, const struct zent *e, uint64_t end)
{
    uint8_t d[8];
    if (zread(z, end, d, 4) < 0)
        return -1;
    uint32_t crc = le32(d);
    if (crc == SIG_DESCRIPTOR) {
        if (zread(z, end + 4, d + 4, 4) < 0)
            return -1;
        crc = le32(d + 4);
    }
    if (crc != e->crc)
        return fail(z, "zip: a data descriptor's CRC-32 differs from the central directory's");
    return 0;
}

static void consume(struct zip *z, const uint8_t *p, size_t n, uint32_t *crc)
{
    EVP_DigestUpdate(z->file_md, p, n);
    *crc = (uint32_t)crc32(*crc, p, (uInt)n);
}

static int copy_stored(struct zip *z, const struct zent *e, uint64_t at, uint32_t *crc)
{
    for (uint64_t left = e->csize; left > 0;) {
        size_t n = (size_t)SL_MIN(left, (uint64_t)GOSUM_IO_BUF);
        if (zread(z, at, z->in, n) < 0)
            return -1;
        consume(z, z->in, n, crc);
        at += n;
        left -= n;
    }
    return 0;
}

/* One inflate step's output; -1 when the entry outgrows its declared size. */
static int inflated(struct zip *z, const struct zent *e, size_t n, uint64_t *made, uint32_t *crc)
{
    char buf[SHOWN_MAX];
    if (n > e->usize - *made)
        return fail(z, "zip: %s inflates to more than its %llu bytes", shown(e, buf), (unsigned long long)e->usize);
    *made += n;
    consume(z, z->out, n, crc);
    return 0;
}

static int inflate_loop(struct zip *z, z_stream *zs, const struct zent *e, uint64_t at, uint32_t *crc)
{
    uint64_t left = e->csize, made = 0;
    for (int rc = Z_OK; rc != Z_STREAM_END;) {
        if (zs->avail_in == 0) {
            if (left == 0)
                return fail(z, "zip: deflate data ends before its last block");
            size_t n = (size_t)SL_MIN(left, (uint64_t)GOSUM_IO_BUF);
            if (zread(z, at, z->in, n) < 0)
                return -1;
            zs->next_in = z->in;
            zs->avail_in = (uInt)n;
            at += n;
            left -= n;
        }
        zs->next_out = z->out;
        zs->avail_out = GOSUM_IO_BUF;
        rc = inflate(zs, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END && !(rc == Z_BUF_ERROR && zs->avail_in == 0))
            return fail(z, "zip: bad deflate data (%s)", zs->msg ? zs->msg : zError(rc));
        if (inflated(z, e, GOSUM_IO_BUF - zs->avail_out, &made, crc) < 0)
            return -1;
    }
    return made == e->usize ? 0 : fail(z, "zip: an entry inflates to fewer bytes than declared");
}

static int copy_deflated(struct zip *z, const struct zent *e, uint64_t at, uint32_t *crc)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (inflateInit2(&zs, -MAX_WBITS) != Z_OK)
        return fail(z, "zip: inflateInit2 failed");
    int rc = inflate_loop(z, &zs, e, at, crc);
    inflateEnd(&zs);
    return rc;
}

/* "<hex sha256>  <name>\n" of one entry into the summary. */
static int hash_entry(struct zip *z, const struct zent *e)
{
    uint64_t at = 0;
    uint32_t crc = (uint32_t)crc32(0, Z_NULL, 0);
    if (data_start(z, e, &at) < 0)
        return -1;
    if ((e->flags & FLAG_DESCRIPTOR) && check_descriptor(z, e, at + e->csize) < 0)
        return -1;
    EVP_DigestInit_ex(z->file_md, EVP_sha256(), NULL);
    if ((e->method == 0 ? copy_stored(z, e, at, &crc) : copy_deflated(z, e, at, &crc)) < 0)
        return -1;
    char buf[SHOWN_MAX];
    if (crc != e->crc)
        return fail(z, "zip: %s: CRC-32 mismatch", shown(e, buf));
    uint8_t d[32];
    char line[2 * sizeof(d) + 2];
    EVP_DigestFinal_ex(z->file_md, d, NULL);
    for (size_t i = 0; i < sizeof(d); i++)
        snprintf(line + 2 * i, 3, "%02x", d[i]);
    line[64] = line[65] = ' ';
    EVP_DigestUpdate(z->all_md, line, sizeof(line));
    EVP_DigestUpdate(z->all_md, e->name, e->name_len);
    EVP_DigestUpdate(z->all_md, "\n", 1);
    return 0;
}

static int zip_h1(struct zip *z, uint8_t out[32])
{
    if (z->size > GOSUM_ZIP_MAX)
        return fail(z, "zip: %llu bytes (at most %llu)", (unsigned long long)z->size,
                    (unsigned long long)GOSUM_ZIP_MAX);
    if (read_eocd(z) < 0 || read_directory(z) < 0)
        return -1;
    z->in = malloc(GOSUM_IO_BUF);
    z->out = malloc(GOSUM_IO_BUF);
    z->file_md = EVP_MD_CTX_new();
    z->all_md = EVP_MD_CTX_new();
    if (!z->in || !z->out || !z->file_md || !z->all_md)
        return fail(z, "zip: out of memory");
    EVP_DigestInit_ex(z->all_md, EVP_sha256(), NULL);
    for (uint64_t i = 0; i < z->count; i++)
        if (hash_entry(z, &z->ents[i]) < 0)
            return -1;
    EVP_DigestFinal_ex(z->all_md, out, NULL);
    return 0;
}

int gosum_zip_h1(int fd, uint64_t offset, uint64_t size, uint8_t out[32], char *err, size_t errlen)
{
    struct zip z = { .fd = fd, .base = offset, .size = size, .err = err, .errlen = errlen };
    if (errlen)
        err[0] = '\0';
    int rc = size > INT64_MAX || offset > INT64_MAX - size ? fail(&z, "zip: offset and size overflow")
                                                           : zip_h1(&z, out);
    EVP_MD_CTX_free(z.file_md);
    EVP_MD_CTX_free(z.all_md);
    free(z.in);
    free(z.out);
    free(z.ents);
    free(z.cd);
    return rc;
}

/* ------------------------------------------------------------- text forms */

void gosum_file_h1(const char *name, const uint8_t *data, size_t len, uint8_t out[32])
{
    SL_ASSERT(!strchr(name, '\n'));
    uint8_t d[32];
    char hex[2 * sizeof(d) + 1];
    EVP_Digest(data, len, d, NULL, EVP_sha256(), NULL);
    for (size_t i = 0; i < sizeof(d); i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    SL_ASSERT(md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1);
    EVP_DigestUpdate(md, hex, 64);
    EVP_DigestUpdate(md, "  ", 2);
    EVP_DigestUpdate(md, name, strlen(name));
    EVP_DigestUpdate(md, "\n", 1);
    EVP_DigestFinal_ex(md, out, NULL);
    EVP_MD_CTX_free(md);
}

void gosum_format_h1(const uint8_t h[32], char out[GOSUM_H1_TEXT])
{
    memcpy(out, "h1:", 3);
    EVP_EncodeBlock((unsigned char *)out + 3, h, 32);
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* 32 bytes are 43 base64 characters and one '='; the last character
 * carries 4 bits, whose 2 low ones must be 0 (the one spelling Go makes). */
bool gosum_parse_h1(const char *text, size_t len, uint8_t out[32])
{
    if (len != 3 + 44 || memcmp(text, "h1:", 3) != 0 || text[46] != '=')
        return false;
    uint32_t acc = 0;
    size_t bits = 0, n = 0;
    for (size_t i = 3; i < 46; i++) {
        int v = b64_value(text[i]);
        if (v < 0)
            return false;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return n == 32 && acc == 0;
}

/* A token with none of these bytes: a module path has no space or
 * newline, a version no '/' either (or "v1.0.0/go.mod" would find the
 * go.mod line when the zip's was asked for). */
static bool plain(const char *s, const char *bad)
{
    return s[0] && !strpbrk(s, bad);
}

/* "<module> <version>[/go.mod] h1:..." line: its h1, if it is that line. */
static int match_line(const char *p, size_t n, const char *module, const char *version, bool go_mod,
                      uint8_t out[32])
{
    size_t m = strlen(module), v = strlen(version), s = go_mod ? 7 : 0;
    if (n < m + v + s + 2 || memcmp(p, module, m) != 0 || p[m] != ' ' || memcmp(p + m + 1, version, v) != 0 ||
        (go_mod && memcmp(p + m + 1 + v, "/go.mod", 7) != 0) || p[m + 1 + v + s] != ' ')
        return 0;
    size_t at = m + v + s + 2;
    return gosum_parse_h1(p + at, n - at, out) ? 1 : -1;
}

bool gosum_lookup_line(const char *body, size_t len, const char *module, const char *version, bool go_mod,
                       uint8_t out[32])
{
    size_t i = 0;
    while (i < len && body[i] >= '0' && body[i] <= '9')
        i++;
    if (i == 0 || i >= len || body[i] != '\n' || !plain(module, " \n") || !plain(version, " \n/"))
        return false;
    int found = 0;
    uint8_t h[32], first[32];
    for (i++; i < len;) {
        const char *nl = memchr(body + i, '\n', len - i);
        if (!nl)
            return false;               /* the record's text ends with a blank line */
        size_t n = (size_t)(nl - (body + i));
        if (n == 0)
            break;
        int rc = match_line(body + i, n, module, version, go_mod, h);
        if (rc < 0)
            return false;
        if (rc > 0 && found++ == 0)
            memcpy(first, h, sizeof(first));
        i += n + 1;
    }
    if (i >= len || found != 1)
        return false;
    memcpy(out, first, 32);
    return true;
}
