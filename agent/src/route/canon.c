/*
 * canon.c - the canonical form of a request, its key and its origin URL
 * (see canon.h for the rules).
 *
 * A path segment is read twice in one pass: its canonical spelling goes
 * into the key, and its decoded bytes into a scratch buffer, where the
 * checks run (dot segment, separator, control, UTF-8). Checking the decoded
 * bytes is what makes every encoding of a dangerous byte as dangerous as
 * the byte itself.
 *
 * Invariants of a canonical request (asserted where they are cheap):
 *   - key_len <= KEY_MAX and key[key_len] == '\0';
 *   - key[0 .. path_off - 1] is "<route>:", the route name [a-z0-9_]+;
 *   - the key holds only printable ASCII (no byte < 0x21 or > 0x7e), so it
 *     is one line in an object file's header;
 *   - the origin URL is a function of the route's configuration and the
 *     key alone.
 */
#include "route/canon.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/common.h"

/* ------------------------------------------------------ character sets */

static bool is_unreserved(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static bool is_sub_delim(unsigned char c)
{
    return c != '\0' && strchr("!$&'()*+,;=", c) != NULL;
}

/* Path characters written as they are: unreserved, sub-delims, ':', '@'. */
static bool is_plain_path_char(unsigned char c)
{
    return is_unreserved(c) || is_sub_delim(c) || c == ':' || c == '@';
}

/* Query characters written as they are: the path's plus '/' and '?'. */
static bool is_plain_query_char(unsigned char c)
{
    return is_plain_path_char(c) || c == '/' || c == '?';
}

static bool is_control(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (unsigned char)tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int canon_escape_value(const char *s, size_t len, size_t i)
{
    if (i + 2 >= len)
        return -1;
    int hi = hex_value((unsigned char)s[i + 1]), lo = hex_value((unsigned char)s[i + 2]);
    return (hi < 0 || lo < 0) ? -1 : hi << 4 | lo;
}

/* ---------------------------------------------------------- key buffer */

static int put(struct canon *c, char ch)
{
    if (c->key_len >= KEY_MAX)
        return CANON_ERR_TOO_LONG;
    c->key[c->key_len++] = ch;
    return CANON_OK;
}

static int put_escape(struct canon *c, unsigned char v)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = put(c, '%');
    if (rc == CANON_OK)
        rc = put(c, hex[v >> 4]);
    if (rc == CANON_OK)
        rc = put(c, hex[v & 15]);
    return rc;
}

/* ------------------------------------------------------------- UTF-8 */

/* Length of the well-formed UTF-8 sequence at s (RFC 3629 table 3-7:
 * no overlong forms, no surrogates, nothing past U+10FFFF), or 0. */
static size_t utf8_sequence(const uint8_t *s, size_t n)
{
    uint8_t b = s[0];
    if (b < 0x80)
        return 1;
    size_t len = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : 2;
    uint8_t lo = 0x80, hi = 0xbf;   /* allowed range of the second byte */
    if (b < 0xc2 || b > 0xf4)
        return 0;
    if (b == 0xe0)
        lo = 0xa0;
    else if (b == 0xed)
        hi = 0x9f;
    else if (b == 0xf0)
        lo = 0x90;
    else if (b == 0xf4)
        hi = 0x8f;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return len;
}

static bool utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t k = utf8_sequence(s + i, n - i);
        if (k == 0)
            return false;
        i += k;
    }
    return true;
}

/* ---------------------------------------------------------------- path */

/*
 * One segment rest[*i .. next '/'): its canonical spelling into the key,
 * its decoded bytes into dec (room for the raw length), then the checks.
 */
static int put_segment(struct canon *c, const char *rest, size_t rest_len, size_t *i, uint8_t *dec)
{
    size_t n = 0;
    while (*i < rest_len && rest[*i] != '/') {
        unsigned char ch = (unsigned char)rest[*i];
        bool escaped = ch == '%';
        if (escaped) {
            int v = canon_escape_value(rest, rest_len, *i);
            if (v < 0)
                return CANON_ERR_ESCAPE;
            ch = (unsigned char)v;
            *i += 3;
        } else {
            *i += 1;
        }
        if (ch == '\0' || is_control(ch))
            return CANON_ERR_CONTROL;
        if (ch == '/' || ch == '\\')
            return CANON_ERR_SEPARATOR;
        if (!escaped && (ch == '?' || ch == '#'))
            return CANON_ERR_CHAR;
        SL_ASSERT(n <= KEY_MAX);
        dec[n++] = ch;
        bool literal = escaped ? is_unreserved(ch) : is_plain_path_char(ch);
        int rc = literal ? put(c, (char)ch) : put_escape(c, ch);
        if (rc != CANON_OK)
            return rc;
    }
    if ((n == 1 && dec[0] == '.') || (n == 2 && dec[0] == '.' && dec[1] == '.'))
        return CANON_ERR_TRAVERSAL;
    return utf8_valid(dec, n) ? CANON_OK : CANON_ERR_UTF8;
}

int canon_path(const char *rest, size_t rest_len, struct canon *c)
{
    SL_ASSERT(c && (rest || rest_len == 0) && c->key_len <= KEY_MAX);
    c->path_off = c->key_len;
    /* A segment's decoded bytes: each one also puts at least one byte in
     * the key, which stops at KEY_MAX, so this is never overrun. */
    uint8_t dec[KEY_MAX + 1];
    int rc = CANON_OK;
    size_t i = 0;
    while (i < rest_len && rc == CANON_OK) {
        if (rest[i] == '/') {   /* empty segment: dropped */
            i++;
            continue;
        }
        if (c->key_len > c->path_off)
            rc = put(c, '/');
        if (rc == CANON_OK)
            rc = put_segment(c, rest, rest_len, &i, dec);
    }
    if (rc == CANON_OK && c->key_len == c->path_off)
        rc = CANON_ERR_EMPTY;
    if (rc == CANON_OK && rest[rest_len - 1] == '/')
        rc = put(c, '/');
    c->path_len = c->key_len - c->path_off;
    return rc;
}

/* --------------------------------------------------------------- query */

static int put_query(struct canon *c, const char *q, size_t qlen)
{
    int rc = put(c, '?');
    c->query_off = c->key_len;
    for (size_t i = 0; i < qlen && rc == CANON_OK; i++) {
        unsigned char ch = (unsigned char)q[i];
        if (ch == '%') {
            int v = canon_escape_value(q, qlen, i);
            if (v < 0)
                return CANON_ERR_ESCAPE;
            if (v == 0)
                return CANON_ERR_CONTROL;
            rc = put_escape(c, (unsigned char)v);
            i += 2;
        } else if (ch == '\0' || is_control(ch)) {
            return CANON_ERR_CONTROL;
        } else if (ch == '#') {
            return CANON_ERR_CHAR;
        } else {
            rc = is_plain_query_char(ch) ? put(c, (char)ch) : put_escape(c, ch);
        }
    }
    c->query_len = c->key_len - c->query_off;
    return rc;
}

/* ------------------------------------------------------------- request */

static int put_route(struct canon *c, const char *name)
{
    size_t n = strlen(name);
    SL_ASSERT(n > 0 && n < KEY_MAX);
    memcpy(c->key, name, n);
    c->key_len = n;
    return put(c, ':');
}

/* "|<variant>" after the path and query: the representation asked for. */
static int put_variant(struct canon *c, const char *variant)
{
    int rc = put(c, '|');
    for (const char *v = variant; rc == CANON_OK && *v; v++)
        rc = put(c, *v);
    return rc;
}

int canon_request(const struct route *r, const char *path, size_t path_len, const char *query,
                  size_t query_len, const char *accept, size_t accept_len, struct canon *out)
{
    SL_ASSERT(r && r->eco && r->eco->classify && out && (path || path_len == 0));
    SL_ASSERT(path_len >= r->prefix_len && memcmp(path, r->prefix, r->prefix_len) == 0);
    out->route = r;
    out->path_off = out->path_len = out->query_off = out->query_len = 0;
    out->variant = NULL;
    out->cls = ECO_NEVER;
    const char *rest = path + r->prefix_len;
    size_t rest_len = path_len - r->prefix_len;
    int rc = put_route(out, r->name);
    if (rc == CANON_OK)
        rc = r->eco->canon ? r->eco->canon(rest, rest_len, out) : canon_path(rest, rest_len, out);
    if (rc == CANON_OK && r->eco->key_query && query && query_len > 0)
        rc = put_query(out, query, query_len);
    if (rc == CANON_OK) {
        out->key[out->key_len] = '\0';
        out->cls = r->eco->classify(out);
        /* Representations are of metadata only: an artifact is its bytes. */
        if (out->cls == ECO_METADATA && r->eco->variant)
            out->variant = r->eco->variant(out, accept ? accept : "", accept ? accept_len : 0);
        if (out->variant)
            rc = put_variant(out, out->variant);
    }
    if (rc != CANON_OK) {
        out->key[0] = '\0';
        out->key_len = 0;
        out->cls = ECO_NEVER;
        return rc;
    }
    out->key[out->key_len] = '\0';
    for (size_t i = 0; i < out->key_len; i++)
        SL_ASSERT(out->key[i] > 0x20 && out->key[i] < 0x7f);   /* one printable line */
    key_hash(out->key, out->key_len, out->hash);
    return CANON_OK;
}

int canon_check_size(const char *path, size_t path_len, const char *query, size_t query_len,
                     const struct canon_limits *lim)
{
    SL_ASSERT(lim && (path || path_len == 0));
    size_t target = path_len + (query ? 1 + query_len : 0);
    if (target > lim->target_max)
        return CANON_ERR_TARGET;
    size_t segments = 0;
    for (const char *p = path, *end = path + path_len; (p = memchr(p, '/', (size_t)(end - p))) != NULL; p++)
        if (++segments > lim->segments_max)
            return CANON_ERR_SEGMENTS;
    return CANON_OK;
}

int canon_origin_url(const struct canon *c, char *out, size_t outlen)
{
    SL_ASSERT(c && c->route && out);
    if (c->route->eco->origin_url)
        return c->route->eco->origin_url(c, out, outlen);
    size_t n = origin_url_format_base(&c->route->url, out, outlen);
    int m = -1;
    if (n > 0 && n < outlen)
        m = snprintf(out + n, outlen - n, "/%.*s%s%.*s", (int)c->path_len, c->key + c->path_off,
                     c->query_len ? "?" : "", (int)c->query_len, c->key + c->query_off);
    return (m >= 0 && (size_t)m < outlen - n) ? 0 : -1;
}

const char *canon_strerror(int err)
{
    switch (err) {
    case CANON_OK: return "ok";
    case CANON_ERR_TRAVERSAL: return "path traversal: a '.' or '..' segment, in any encoding";
    case CANON_ERR_SEPARATOR: return "an encoded '/' or '\\', or a backslash, in the path";
    case CANON_ERR_ESCAPE: return "a '%' that does not start a %XX escape";
    case CANON_ERR_CONTROL: return "a NUL or control character, raw or encoded";
    case CANON_ERR_UTF8: return "a path segment that is not valid UTF-8 (overlong or malformed)";
    case CANON_ERR_CHAR: return "a '?' or '#' where none may be";
    case CANON_ERR_EMPTY: return "nothing after the route prefix";
    case CANON_ERR_TOO_LONG: return "the path and query are too long to cache";
    case CANON_ERR_TARGET: return "the request target is longer than request_target_max";
    case CANON_ERR_SEGMENTS: return "the path has more segments than request_segments_max";
    }
    return "bad request path";
}

int canon_err_status(int err)
{
    if (err == CANON_ERR_EMPTY)
        return 404;
    return err == CANON_ERR_TOO_LONG || err == CANON_ERR_TARGET || err == CANON_ERR_SEGMENTS ? 414 : 400;
}
