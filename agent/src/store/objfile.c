/*
 * objfile.c - encode and decode the 4096-byte header block of an object file
 * (format in objfile.h).
 *
 * The decoder reads bytes from disk that anything may have scribbled on (a
 * crash mid-write, a full disk, an operator, an older or newer agent), and a
 * block it accepts decides which bytes are served under which key. So it is
 * total and strict: every length is checked before it is used, the CRC must
 * cover the text, the zero padding must be zero, every line must be exactly
 * "name: value\n" with no NUL or CR, known fields must be present once and
 * in canonical form (decimal with no leading zeros, status 100..599), and kept
 * headers must be valid HTTP field names and values. Unknown field names are
 * skipped so that a newer agent can add fields without a format bump.
 *
 * The encoder refuses exactly what the decoder would reject, so a block that
 * encodes always decodes back to the same metadata (the fuzzer checks this).
 * It writes the fields in the documented order, omitting last-modified when
 * it is 0 (unknown); a missing last-modified decodes as 0.
 *
 * The CRC table is a constant (generated once from the reflected IEEE 802.3
 * polynomial 0xEDB88320 and checked against the bitwise algorithm by the
 * unit tests), so there is no lazy initialisation to race on.
 */
#include "store/objfile.h"

#include <stdarg.h>
#include <string.h>

#include "core/common.h"
#include "http/httpx.h"

#define META_OFF 16                              /* magic + length + CRC */
#define META_MAX (OBJ_HEADER_SIZE - META_OFF)    /* room for the text */
#define MAGIC_LEN 8

/* ------------------------------------------------------------------ CRC-32 */

static const uint32_t crc_table[256] = {
    0x00000000, 0x77073096, 0xee0e612c, 0x990951ba, 0x076dc419, 0x706af48f,
    0xe963a535, 0x9e6495a3, 0x0edb8832, 0x79dcb8a4, 0xe0d5e91e, 0x97d2d988,
    0x09b64c2b, 0x7eb17cbd, 0xe7b82d07, 0x90bf1d91, 0x1db71064, 0x6ab020f2,
    0xf3b97148, 0x84be41de, 0x1adad47d, 0x6ddde4eb, 0xf4d4b551, 0x83d385c7,
    0x136c9856, 0x646ba8c0, 0xfd62f97a, 0x8a65c9ec, 0x14015c4f, 0x63066cd9,
    0xfa0f3d63, 0x8d080df5, 0x3b6e20c8, 0x4c69105e, 0xd56041e4, 0xa2677172,
    0x3c03e4d1, 0x4b04d447, 0xd20d85fd, 0xa50ab56b, 0x35b5a8fa, 0x42b2986c,
    0xdbbbc9d6, 0xacbcf940, 0x32d86ce3, 0x45df5c75, 0xdcd60dcf, 0xabd13d59,
    0x26d930ac, 0x51de003a, 0xc8d75180, 0xbfd06116, 0x21b4f4b5, 0x56b3c423,
    0xcfba9599, 0xb8bda50f, 0x2802b89e, 0x5f058808, 0xc60cd9b2, 0xb10be924,
    0x2f6f7c87, 0x58684c11, 0xc1611dab, 0xb6662d3d, 0x76dc4190, 0x01db7106,
    0x98d220bc, 0xefd5102a, 0x71b18589, 0x06b6b51f, 0x9fbfe4a5, 0xe8b8d433,
    0x7807c9a2, 0x0f00f934, 0x9609a88e, 0xe10e9818, 0x7f6a0dbb, 0x086d3d2d,
    0x91646c97, 0xe6635c01, 0x6b6b51f4, 0x1c6c6162, 0x856530d8, 0xf262004e,
    0x6c0695ed, 0x1b01a57b, 0x8208f4c1, 0xf50fc457, 0x65b0d9c6, 0x12b7e950,
    0x8bbeb8ea, 0xfcb9887c, 0x62dd1ddf, 0x15da2d49, 0x8cd37cf3, 0xfbd44c65,
    0x4db26158, 0x3ab551ce, 0xa3bc0074, 0xd4bb30e2, 0x4adfa541, 0x3dd895d7,
    0xa4d1c46d, 0xd3d6f4fb, 0x4369e96a, 0x346ed9fc, 0xad678846, 0xda60b8d0,
    0x44042d73, 0x33031de5, 0xaa0a4c5f, 0xdd0d7cc9, 0x5005713c, 0x270241aa,
    0xbe0b1010, 0xc90c2086, 0x5768b525, 0x206f85b3, 0xb966d409, 0xce61e49f,
    0x5edef90e, 0x29d9c998, 0xb0d09822, 0xc7d7a8b4, 0x59b33d17, 0x2eb40d81,
    0xb7bd5c3b, 0xc0ba6cad, 0xedb88320, 0x9abfb3b6, 0x03b6e20c, 0x74b1d29a,
    0xead54739, 0x9dd277af, 0x04db2615, 0x73dc1683, 0xe3630b12, 0x94643b84,
    0x0d6d6a3e, 0x7a6a5aa8, 0xe40ecf0b, 0x9309ff9d, 0x0a00ae27, 0x7d079eb1,
    0xf00f9344, 0x8708a3d2, 0x1e01f268, 0x6906c2fe, 0xf762575d, 0x806567cb,
    0x196c3671, 0x6e6b06e7, 0xfed41b76, 0x89d32be0, 0x10da7a5a, 0x67dd4acc,
    0xf9b9df6f, 0x8ebeeff9, 0x17b7be43, 0x60b08ed5, 0xd6d6a3e8, 0xa1d1937e,
    0x38d8c2c4, 0x4fdff252, 0xd1bb67f1, 0xa6bc5767, 0x3fb506dd, 0x48b2364b,
    0xd80d2bda, 0xaf0a1b4c, 0x36034af6, 0x41047a60, 0xdf60efc3, 0xa867df55,
    0x316e8eef, 0x4669be79, 0xcb61b38c, 0xbc66831a, 0x256fd2a0, 0x5268e236,
    0xcc0c7795, 0xbb0b4703, 0x220216b9, 0x5505262f, 0xc5ba3bbe, 0xb2bd0b28,
    0x2bb45a92, 0x5cb36a04, 0xc2d7ffa7, 0xb5d0cf31, 0x2cd99e8b, 0x5bdeae1d,
    0x9b64c2b0, 0xec63f226, 0x756aa39c, 0x026d930a, 0x9c0906a9, 0xeb0e363f,
    0x72076785, 0x05005713, 0x95bf4a82, 0xe2b87a14, 0x7bb12bae, 0x0cb61b38,
    0x92d28e9b, 0xe5d5be0d, 0x7cdcefb7, 0x0bdbdf21, 0x86d3d2d4, 0xf1d4e242,
    0x68ddb3f8, 0x1fda836e, 0x81be16cd, 0xf6b9265b, 0x6fb077e1, 0x18b74777,
    0x88085ae6, 0xff0f6a70, 0x66063bca, 0x11010b5c, 0x8f659eff, 0xf862ae69,
    0x616bffd3, 0x166ccf45, 0xa00ae278, 0xd70dd2ee, 0x4e048354, 0x3903b3c2,
    0xa7672661, 0xd06016f7, 0x4969474d, 0x3e6e77db, 0xaed16a4a, 0xd9d65adc,
    0x40df0b66, 0x37d83bf0, 0xa9bcae53, 0xdebb9ec5, 0x47b2cf7f, 0x30b5ffe9,
    0xbdbdf21c, 0xcabac28a, 0x53b39330, 0x24b4a3a6, 0xbad03605, 0xcdd70693,
    0x54de5729, 0x23d967bf, 0xb3667a2e, 0xc4614ab8, 0x5d681b02, 0x2a6f2b94,
    0xb40bbe37, 0xc30c8ea1, 0x5a05df1b, 0x2d02ef8d,
};

uint32_t obj_crc32(const uint8_t *data, size_t len)
{
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++)
        crc = crc_table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
    return crc ^ 0xFFFFFFFFu;
}

/* ------------------------------------------------------- little-endian u32 */

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---------------------------------------------------------------- obj_meta */

void obj_meta_free(struct obj_meta *meta)
{
    if (meta == NULL)
        return;
    free(meta->key);
    free(meta->etag);
    free(meta->origin_etag);
    free(meta->verified);
    for (int i = 0; i < meta->n_headers && i < OBJ_MAX_HEADERS; i++) {
        free(meta->headers[i].name);
        free(meta->headers[i].value);
    }
    /* Leave it empty, so a second free or a reuse is harmless. */
    memset(meta, 0, sizeof(*meta));
}

void obj_meta_copy(struct obj_meta *dst, const struct obj_meta *src)
{
    SL_ASSERT(dst && src && src->n_headers <= OBJ_MAX_HEADERS);
    *dst = *src;
    dst->key = src->key ? sl_strdup(src->key) : NULL;
    dst->etag = src->etag ? sl_strdup(src->etag) : NULL;
    dst->origin_etag = src->origin_etag ? sl_strdup(src->origin_etag) : NULL;
    dst->verified = src->verified ? sl_strdup(src->verified) : NULL;
    for (int i = 0; i < src->n_headers; i++) {
        dst->headers[i].name = sl_strdup(src->headers[i].name);
        dst->headers[i].value = sl_strdup(src->headers[i].value);
    }
}

int obj_meta_add_header(struct obj_meta *meta, const char *name, const char *value)
{
    SL_ASSERT(meta != NULL && name != NULL && value != NULL);
    SL_ASSERT(meta->n_headers >= 0 && meta->n_headers <= OBJ_MAX_HEADERS);
    if (meta->n_headers == OBJ_MAX_HEADERS)
        return -1;
    meta->headers[meta->n_headers].name = sl_strdup(name);
    meta->headers[meta->n_headers].value = sl_strdup(value);
    meta->n_headers++;
    return 0;
}

/* ---------------------------------------------------------------- encoding */

/* An append-only text buffer that remembers that something did not fit. */
struct text {
    char *buf;
    size_t len;
    size_t cap;
    bool overflow;
};

static void text_put(struct text *t, const char *s, size_t n)
{
    if (t->overflow || n > t->cap - t->len) {
        t->overflow = true;
        return;
    }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
}

static void text_puts(struct text *t, const char *s)
{
    text_put(t, s, strlen(s));
}

static void text_put_u64(struct text *t, uint64_t v)
{
    char digits[20];
    size_t n = 0;
    do {
        digits[sizeof(digits) - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    text_put(t, digits + sizeof(digits) - n, n);
}

static void text_put_i64(struct text *t, int64_t v)
{
    if (v < 0) {
        text_puts(t, "-");
        /* Negate in unsigned arithmetic: -INT64_MIN does not fit int64_t. */
        text_put_u64(t, (uint64_t)0 - (uint64_t)v);
    } else {
        text_put_u64(t, (uint64_t)v);
    }
}

static void text_field(struct text *t, const char *name, const char *value)
{
    text_puts(t, name);
    text_puts(t, ": ");
    text_puts(t, value);
    text_puts(t, "\n");
}

static void text_field_u64(struct text *t, const char *name, uint64_t value)
{
    text_puts(t, name);
    text_puts(t, ": ");
    text_put_u64(t, value);
    text_puts(t, "\n");
}

static void text_field_i64(struct text *t, const char *name, int64_t value)
{
    text_puts(t, name);
    text_puts(t, ": ");
    text_put_i64(t, value);
    text_puts(t, "\n");
}

/* A string that can sit on one metadata line. */
static bool line_safe(const char *s)
{
    return s != NULL && strpbrk(s, "\r\n") == NULL;
}

/* Mirror of the decoder's checks, so that what encodes also decodes. */
static bool meta_encodable(const struct obj_meta *m)
{
    if (!line_safe(m->key) || m->key[0] == '\0')
        return false;
    if (m->status < 100 || m->status > 599)
        return false;
    if (m->etag == NULL || m->etag[0] == '\0' ||
        !httpx_header_value_ok(m->etag, strlen(m->etag), META_MAX))
        return false;
    if (m->origin_etag != NULL && (m->origin_etag[0] == '\0' ||
                                   !httpx_header_value_ok(m->origin_etag, strlen(m->origin_etag), META_MAX)))
        return false;
    if (m->verified != NULL && (m->verified[0] == '\0' || !line_safe(m->verified)))
        return false;
    for (int i = 0; i < m->n_headers; i++) {
        const struct obj_header_field *h = &m->headers[i];
        if (h->name == NULL || h->value == NULL ||
            !httpx_header_name_ok(h->name, strlen(h->name)) ||
            !httpx_header_value_ok(h->value, strlen(h->value), META_MAX))
            return false;
    }
    return true;
}

int obj_header_encode(const struct obj_meta *meta, uint8_t block[OBJ_HEADER_SIZE])
{
    SL_ASSERT(meta != NULL && block != NULL);
    SL_ASSERT(meta->n_headers >= 0 && meta->n_headers <= OBJ_MAX_HEADERS);
    memset(block, 0, OBJ_HEADER_SIZE);
    if (!meta_encodable(meta))
        return -1;

    struct text t = { (char *)block + META_OFF, 0, META_MAX, false };
    text_field(&t, "key", meta->key);
    text_field_i64(&t, "status", meta->status);
    text_field_u64(&t, "size", meta->size);
    text_field_i64(&t, "stored", meta->stored);
    text_field(&t, "etag", meta->etag);
    if (meta->last_modified != 0)
        text_field_i64(&t, "last-modified", meta->last_modified);
    if (meta->origin_etag != NULL)
        text_field(&t, "origin-etag", meta->origin_etag);
    if (meta->origin_last_modified != 0)
        text_field_i64(&t, "origin-last-modified", meta->origin_last_modified);
    if (meta->verified != NULL)
        text_field(&t, "verified", meta->verified);
    for (int i = 0; i < meta->n_headers; i++) {
        text_puts(&t, "h: ");
        text_field(&t, meta->headers[i].name, meta->headers[i].value);
    }
    if (t.overflow) {
        memset(block, 0, OBJ_HEADER_SIZE); /* never leave a half-written block */
        return -1;
    }

    memcpy(block, OBJ_MAGIC, MAGIC_LEN);
    put_le32(block + 8, (uint32_t)t.len);
    put_le32(block + 12, obj_crc32(block + META_OFF, t.len));
    return 0;
}

bool obj_meta_fits(const struct obj_meta *meta)
{
    /* an 8-byte algorithm prefix and 128 hex digits: longer than any digest
     * verify.c records ("sha512:<hex>") */
    static const char longest_verified[] = "algname:"
        "0000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000";
    uint8_t block[OBJ_HEADER_SIZE];
    struct obj_meta worst = *meta;
    worst.size = UINT64_MAX;
    if (!worst.verified)
        worst.verified = (char *)longest_verified;
    return obj_header_encode(&worst, block) == 0;
}

/* ---------------------------------------------------------------- decoding */

enum {
    F_KEY = 1 << 0,
    F_STATUS = 1 << 1,
    F_SIZE = 1 << 2,
    F_STORED = 1 << 3,
    F_ETAG = 1 << 4,
    F_LAST_MODIFIED = 1 << 5,
    F_ORIGIN_ETAG = 1 << 6,
    F_ORIGIN_LM = 1 << 7,
    F_VERIFIED = 1 << 8,
    F_REQUIRED = F_KEY | F_STATUS | F_SIZE | F_STORED | F_ETAG,
};

struct decoder {
    struct obj_meta *meta;
    unsigned seen;   /* F_* bits of the known fields read so far */
    int line;        /* 1-based, for error messages */
    char *err;
    size_t errlen;
};

static int fail(struct decoder *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct decoder *d, const char *fmt, ...)
{
    if (d->err != NULL && d->errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->err, d->errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Canonical unsigned decimal: 1..20 digits, no leading zero, no overflow. */
static bool parse_canon_u64(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || (len > 1 && s[0] == '0'))
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        uint64_t digit = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - digit) / 10)
            return false;
        v = v * 10 + digit;
    }
    *out = v;
    return true;
}

/* Canonical signed decimal: an optional '-' (not on zero) and the above. */
static bool parse_canon_i64(const char *s, size_t len, int64_t *out)
{
    size_t neg = (len > 0 && s[0] == '-') ? 1 : 0;
    uint64_t mag;
    if (!parse_canon_u64(s + neg, len - neg, &mag))
        return false;
    if (neg) {
        if (mag == 0 || mag > (uint64_t)INT64_MAX + 1)
            return false;
        *out = -(int64_t)(mag - 1) - 1; /* reaches INT64_MIN without overflow */
    } else {
        if (mag > (uint64_t)INT64_MAX)
            return false;
        *out = (int64_t)mag;
    }
    return true;
}

/* "h: Name: value" with the "h: " already removed. */
static int decode_kept_header(struct decoder *d, const char *v, size_t vlen)
{
    struct obj_meta *m = d->meta;
    const char *colon = memchr(v, ':', vlen);
    if (colon == NULL)
        return fail(d, "line %d: kept header without ':'", d->line);
    size_t nlen = (size_t)(colon - v);
    if (!httpx_header_name_ok(v, nlen))
        return fail(d, "line %d: bad kept header name", d->line);
    if (vlen - nlen < 2 || colon[1] != ' ')
        return fail(d, "line %d: kept header without ': '", d->line);
    const char *hv = colon + 2;
    size_t hvlen = vlen - nlen - 2;
    if (!httpx_header_value_ok(hv, hvlen, META_MAX))
        return fail(d, "line %d: bad kept header value", d->line);
    if (m->n_headers >= OBJ_MAX_HEADERS)
        return fail(d, "line %d: more than %d kept headers", d->line, OBJ_MAX_HEADERS);
    m->headers[m->n_headers].name = sl_strndup(v, nlen);
    m->headers[m->n_headers].value = sl_strndup(hv, hvlen);
    m->n_headers++;
    return 0;
}

/* Record that known field `bit` is being read; it may appear only once. */
static int claim(struct decoder *d, unsigned bit, const char *name)
{
    if (d->seen & bit)
        return fail(d, "line %d: duplicate %s", d->line, name);
    d->seen |= bit;
    return 0;
}

static int decode_number(struct decoder *d, const char *name, unsigned bit,
                         const char *v, size_t vlen, int64_t *out)
{
    if (claim(d, bit, name) != 0)
        return -1;
    if (!parse_canon_i64(v, vlen, out))
        return fail(d, "line %d: bad %s", d->line, name);
    return 0;
}

/* A non-empty value that could be a header's, kept as a string. */
static int decode_string(struct decoder *d, const char *name, unsigned bit, const char *v, size_t vlen, char **out)
{
    if (claim(d, bit, name) != 0)
        return -1;
    if (vlen == 0 || !httpx_header_value_ok(v, vlen, META_MAX))
        return fail(d, "line %d: bad %s", d->line, name);
    *out = sl_strndup(v, vlen);
    return 0;
}

static bool field_is(const char *name, size_t nlen, const char *lit)
{
    return nlen == strlen(lit) && memcmp(name, lit, nlen) == 0;
}

static int decode_field(struct decoder *d, const char *name, size_t nlen,
                        const char *v, size_t vlen)
{
    struct obj_meta *m = d->meta;
    if (field_is(name, nlen, "h"))
        return decode_kept_header(d, v, vlen);
    if (field_is(name, nlen, "key")) {
        if (claim(d, F_KEY, "key") != 0)
            return -1;
        if (vlen == 0)
            return fail(d, "line %d: empty key", d->line);
        m->key = sl_strndup(v, vlen);
        return 0;
    }
    if (field_is(name, nlen, "status")) {
        uint64_t status;
        if (claim(d, F_STATUS, "status") != 0)
            return -1;
        if (!parse_canon_u64(v, vlen, &status) || status < 100 || status > 599)
            return fail(d, "line %d: bad status", d->line);
        m->status = (int)status;
        return 0;
    }
    if (field_is(name, nlen, "size")) {
        if (claim(d, F_SIZE, "size") != 0)
            return -1;
        if (!parse_canon_u64(v, vlen, &m->size))
            return fail(d, "line %d: bad size", d->line);
        return 0;
    }
    if (field_is(name, nlen, "stored"))
        return decode_number(d, "stored", F_STORED, v, vlen, &m->stored);
    if (field_is(name, nlen, "last-modified"))
        return decode_number(d, "last-modified", F_LAST_MODIFIED, v, vlen, &m->last_modified);
    if (field_is(name, nlen, "origin-last-modified"))
        return decode_number(d, "origin-last-modified", F_ORIGIN_LM, v, vlen, &m->origin_last_modified);
    if (field_is(name, nlen, "origin-etag"))
        return decode_string(d, "origin-etag", F_ORIGIN_ETAG, v, vlen, &m->origin_etag);
    if (field_is(name, nlen, "verified"))
        return decode_string(d, "verified", F_VERIFIED, v, vlen, &m->verified);
    if (field_is(name, nlen, "etag"))
        return decode_string(d, "etag", F_ETAG, v, vlen, &m->etag);
    return 0; /* unknown field: written by a newer agent, skip it */
}

/* One line without its '\n': "name: value". */
static int decode_line(struct decoder *d, const char *line, size_t len)
{
    const char *colon = memchr(line, ':', len);
    if (colon == NULL)
        return fail(d, "line %d: no ':'", d->line);
    size_t nlen = (size_t)(colon - line);
    if (!httpx_header_name_ok(line, nlen))
        return fail(d, "line %d: bad field name", d->line);
    if (len - nlen < 2 || colon[1] != ' ')
        return fail(d, "line %d: no space after ':'", d->line);
    return decode_field(d, line, nlen, colon + 2, len - nlen - 2);
}

static int decode_text(struct decoder *d, const char *text, size_t n)
{
    if (memchr(text, '\0', n) != NULL || memchr(text, '\r', n) != NULL)
        return fail(d, "NUL or CR in metadata");
    const char *p = text, *end = text + n;
    while (p < end) {
        d->line++;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            return fail(d, "line %d: not terminated", d->line);
        if (decode_line(d, p, (size_t)(nl - p)) != 0)
            return -1;
        p = nl + 1;
    }
    if ((d->seen & F_REQUIRED) != F_REQUIRED)
        return fail(d, "missing required field (have 0x%x)", d->seen);
    return 0;
}

/* Magic, length, CRC and padding: everything but the text itself. */
static int check_frame(struct decoder *d, const uint8_t *block, size_t len, uint32_t *n)
{
    if (block == NULL || len < OBJ_HEADER_SIZE)
        return fail(d, "short header block (%zu bytes)", block == NULL ? (size_t)0 : len);
    if (memcmp(block, OBJ_MAGIC, MAGIC_LEN) != 0)
        return fail(d, "bad magic");
    *n = get_le32(block + 8);
    if (*n > META_MAX)
        return fail(d, "metadata length %u too large", (unsigned)*n);
    if (obj_crc32(block + META_OFF, *n) != get_le32(block + 12))
        return fail(d, "metadata CRC mismatch");
    for (size_t i = META_OFF + *n; i < OBJ_HEADER_SIZE; i++)
        if (block[i] != 0)
            return fail(d, "nonzero padding at %zu", i);
    return 0;
}

int obj_header_decode(const uint8_t *block, size_t len, struct obj_meta *meta,
                      char *err, size_t errlen)
{
    SL_ASSERT(meta != NULL);
    memset(meta, 0, sizeof(*meta));
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    struct decoder d = { meta, 0, 0, err, errlen };
    uint32_t n = 0;
    if (check_frame(&d, block, len, &n) != 0)
        return -1;
    if (decode_text(&d, (const char *)block + META_OFF, n) != 0) {
        obj_meta_free(meta); /* no half-filled metadata escapes */
        return -1;
    }
    return 0;
}
