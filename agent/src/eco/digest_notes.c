/*
 * digest_notes.c - the table of expected digests (see digest_notes.h).
 */
#include "eco/digest_notes.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "core/common.h"
#include "route/canon.h"
#include "store/key.h"

#define FP_LEN 16

static const struct {
    const char *name;   /* OpenSSL's name */
    const char *sri;    /* Subresource Integrity's */
    size_t len;
} algorithms[] = {
    { "SHA1", "sha1", 20 },
    { "SHA256", "sha256", 32 },
    { "SHA512", "sha512", 64 },
    { "H1", "h1", 32 },      /* Go: a hash of the files in a module zip (eco/gosum.h), never streamed */
    { "H1MOD", "h1", 32 },   /* ... of a go.mod alone */
};

struct note {
    uint8_t fp[FP_LEN];   /* the name's key_hash, first bytes; all zero: empty */
    uint8_t alg;          /* index in algorithms + 1 */
    uint8_t len;
    uint8_t value[DIGEST_NOTE_MAX];
};

struct digest_notes {
    struct note *slots;   /* sets of two: [2 * set], [2 * set + 1] */
    size_t sets;
    uint8_t *next;        /* per set: the way the next new note takes */
    uint64_t puts;
    struct sl_buf *record;   /* digest_notes_record: puts are copied here */
};

/* One put as digest_notes_record keeps it: replayed without hashing. */
struct note_record {
    uint64_t set;
    struct note n;
};

struct digest_notes *digest_notes_new(size_t entries)
{
    struct digest_notes *t = sl_calloc(1, sizeof(*t));
    t->sets = entries < 2 ? 1 : (entries + 1) / 2;
    t->slots = sl_calloc(t->sets * 2, sizeof(*t->slots));
    t->next = sl_calloc(t->sets, 1);
    return t;
}

void digest_notes_free(struct digest_notes *t)
{
    if (!t)
        return;
    free(t->slots);
    free(t->next);
    free(t);
}

static int alg_index(const char *name)
{
    for (size_t i = 0; i < SL_ARRAY_LEN(algorithms); i++)
        if (strcasecmp(algorithms[i].name, name) == 0)
            return (int)i;
    return -1;
}

size_t digest_length(const char *algorithm)
{
    int i = alg_index(algorithm);
    return i < 0 ? 0 : algorithms[i].len;
}

/* The set of name, and its fingerprint (never all zero). */
static size_t locate(const struct digest_notes *t, const char *name, size_t len, uint8_t fp[FP_LEN])
{
    uint8_t h[KEY_HASH_LEN];
    key_hash(name, len, h);
    memcpy(fp, h, FP_LEN);
    fp[0] |= 1;
    uint64_t v;
    memcpy(&v, h + FP_LEN, sizeof(v));
    return (size_t)(v % t->sets);
}

/* Store note `src` in its set: the way holding its name, else the next. */
static void put_note(struct digest_notes *t, size_t set, const struct note *src)
{
    SL_ASSERT(set < t->sets && src->alg > 0);
    struct note *way = &t->slots[set * 2];
    int w = memcmp(way[0].fp, src->fp, FP_LEN) == 0 ? 0 : memcmp(way[1].fp, src->fp, FP_LEN) == 0 ? 1 : -1;
    if (w < 0) {
        w = t->next[set];
        t->next[set] ^= 1;
    }
    way[w] = *src;
    t->puts++;
    if (t->record) {
        struct note_record r = { set, *src };
        sl_buf_append(t->record, &r, sizeof(r));
    }
}

void digest_notes_put(struct digest_notes *t, const char *name, size_t len, const struct eco_digest *d)
{
    int a = alg_index(d->algorithm);
    SL_ASSERT(a >= 0 && d->len == algorithms[a].len);
    struct note n = { .alg = (uint8_t)(a + 1), .len = (uint8_t)SL_MIN(d->len, (size_t)DIGEST_NOTE_MAX) };
    size_t set = locate(t, name, len, n.fp);
    memcpy(n.value, d->value, n.len);
    put_note(t, set, &n);
}

void digest_notes_record(struct digest_notes *t, struct sl_buf *into)
{
    SL_ASSERT(!into || !t->record);
    t->record = into;
}

void digest_notes_replay(struct digest_notes *t, const uint8_t *rec, size_t len)
{
    SL_ASSERT(len % sizeof(struct note_record) == 0 && !t->record);
    for (size_t off = 0; off < len; off += sizeof(struct note_record)) {
        struct note_record r;
        memcpy(&r, rec + off, sizeof(r));
        put_note(t, (size_t)r.set, &r.n);
    }
}

bool digest_notes_get(const struct digest_notes *t, const char *name, size_t len, struct eco_digest *out)
{
    uint8_t fp[FP_LEN];
    size_t set = locate(t, name, len, fp);
    for (int w = 0; w < 2; w++) {
        const struct note *n = &t->slots[set * 2 + w];
        if (memcmp(n->fp, fp, FP_LEN) != 0)
            continue;
        out->algorithm = algorithms[n->alg - 1].name;
        out->len = n->len;
        memcpy(out->value, n->value, n->len);
        return true;
    }
    return false;
}

uint64_t digest_notes_puts(const struct digest_notes *t)
{
    return t->puts;
}

/* ---------------------------------------------------------------- forms */

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = (char)tolower((unsigned char)ch);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

bool digest_parse_hex(const char *algorithm, const char *hex, size_t len, struct eco_digest *out)
{
    int a = alg_index(algorithm);
    if (a < 0 || len != 2 * algorithms[a].len)
        return false;
    for (size_t i = 0; i < algorithms[a].len; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out->value[i] = (uint8_t)(hi << 4 | lo);
    }
    out->algorithm = algorithms[a].name;
    out->len = algorithms[a].len;
    return true;
}

/* The standard base64 (with padding) of a digest of `algorithm`. */
static bool parse_base64(const char *algorithm, const char *b64, size_t len, struct eco_digest *out)
{
    int a = alg_index(algorithm);
    uint8_t buf[96];
    char text[129];
    if (a < 0 || len != 4 * ((algorithms[a].len + 2) / 3) || len > 128)
        return false;
    memcpy(text, b64, len);
    text[len] = '\0';
    if (EVP_DecodeBlock(buf, (const unsigned char *)text, (int)len) < (int)algorithms[a].len)
        return false;
    memcpy(out->value, buf, algorithms[a].len);
    out->algorithm = algorithms[a].name;
    out->len = algorithms[a].len;
    return true;
}

/* One "<alg>-<base64>[?options]" of an SRI list. */
static bool parse_sri_one(const char *s, size_t len, struct eco_digest *out)
{
    const char *dash = memchr(s, '-', len);
    if (!dash)
        return false;
    const char *q = memchr(dash, '?', len - (size_t)(dash - s));
    size_t b64 = (size_t)((q ? q : s + len) - dash - 1);
    for (size_t i = 0; i < SL_ARRAY_LEN(algorithms); i++) {
        if ((size_t)(dash - s) != strlen(algorithms[i].sri) || strncasecmp(s, algorithms[i].sri, (size_t)(dash - s)) ||
            strncmp(algorithms[i].name, "H1", 2) == 0)   /* not an SRI algorithm */
            continue;
        return parse_base64(algorithms[i].name, dash + 1, b64, out);
    }
    return false;
}

bool digest_parse_sri(const char *sri, size_t len, struct eco_digest *out)
{
    bool found = false;
    size_t i = 0;
    while (i < len) {
        while (i < len && isspace((unsigned char)sri[i]))
            i++;
        size_t start = i;
        while (i < len && !isspace((unsigned char)sri[i]))
            i++;
        struct eco_digest d;
        if (i > start && parse_sri_one(sri + start, i - start, &d) && (!found || d.len > out->len)) {
            *out = d;
            found = true;
        }
    }
    return found;
}

bool digest_notes_put_hex(struct digest_notes *t, const char *name, size_t len, const char *algorithm,
                          const char *hex, size_t hex_len)
{
    struct eco_digest d;
    if (!digest_parse_hex(algorithm, hex, hex_len, &d))
        return false;
    digest_notes_put(t, name, len, &d);
    return true;
}

bool digest_notes_put_sri(struct digest_notes *t, const char *name, size_t len, const char *sri, size_t sri_len)
{
    struct eco_digest d;
    if (!digest_parse_sri(sri, sri_len, &d))
        return false;
    digest_notes_put(t, name, len, &d);
    return true;
}

void digest_format(const struct eco_digest *d, char *out, size_t outlen)
{
    static const char hex[] = "0123456789abcdef";
    int a = alg_index(d->algorithm);
    int n = snprintf(out, outlen, "%s:", a < 0 ? "?" : algorithms[a].sri);
    for (size_t i = 0; i < d->len && n > 0 && (size_t)n + 2 < outlen; i++) {
        out[n++] = hex[d->value[i] >> 4];
        out[n++] = hex[d->value[i] & 15];
    }
    if (n > 0 && (size_t)n < outlen)
        out[n] = '\0';
}

/* ---------------------------------------------------------------- names */

bool digest_notes_name(const struct canon *c, struct sl_buf *out)
{
    if (c->route->eco->digest_name)
        return c->route->eco->digest_name(c, out);
    sl_buf_append(out, c->key, c->key_len);
    return true;
}

void digest_notes_put_link(struct digest_notes *t, const struct route_table *rt, const char *path, size_t len,
                           const struct eco_digest *d)
{
    const char *rest, *q = memchr(path, '?', len);
    size_t rest_len;
    len = q ? (size_t)(q - path) : len;
    const struct route *r = route_match(rt, path, len, &rest, &rest_len);
    if (!t || !r || !r->eco->classify)
        return;
    struct canon *c = sl_malloc(sizeof(*c));
    struct sl_buf name = { 0 };
    if (canon_request(r, path, len, NULL, 0, NULL, 0, c) == CANON_OK && c->cls == ECO_IMMUTABLE &&
        digest_notes_name(c, &name))
        digest_notes_put(t, (const char *)name.data, name.len, d);
    sl_buf_free(&name);
    free(c);
}

