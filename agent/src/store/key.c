/*
 * key.c - cache keys: one canonical text per object, and its place on disk.
 *
 * key_build is the only way a key is made, and both the SPOP verdict and the
 * HTTP side call it on the raw request path, so they agree by construction.
 * Two requests that name the same resource at the origin should get the same
 * key, but two that might not must never share one; when in doubt we refuse
 * (traversal, NUL, backslash, bad escapes) instead of guessing.
 *
 * Invariants of a built key:
 *  - "<route>:<path>[?<query>]", route matching [a-z0-9_]+, so the first ':'
 *    ends the route;
 *  - the path holds no empty, "." or ".." segment, no byte outside the RFC
 *    3986 path characters (anything else is written as an upper-case %XX),
 *    no escape of an unreserved character, and no control character; a
 *    trailing '/' is kept, because origins serve "/x" and "/x/" differently;
 *  - the query holds no control character or '#', so a key is always one
 *    printable line (object files store it in a header line);
 *  - building a key from its own path and query gives the same key
 *    (normalisation is idempotent; the fuzzer checks it).
 */
#include "store/key.h"

#include <ctype.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "core/common.h"
#include "core/config.h"

/* The key being written: out[0..len), never longer than KEY_MAX. */
struct key_buf {
    char *out;
    size_t len;
};

static int put(struct key_buf *b, char c)
{
    if (b->len >= KEY_MAX)
        return KEY_ERR_TOO_LONG;
    b->out[b->len++] = c;
    return KEY_OK;
}

static int put_escape(struct key_buf *b, unsigned char v)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = put(b, '%');
    if (rc == KEY_OK)
        rc = put(b, hex[v >> 4]);
    if (rc == KEY_OK)
        rc = put(b, hex[v & 15]);
    return rc;
}

static bool is_unreserved(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* Path characters kept as they are: unreserved, sub-delims, ':' and '@'. */
static bool is_plain_path_char(unsigned char c)
{
    return is_unreserved(c) || (c != '\0' && strchr("!$&'()*+,;=:@", c) != NULL);
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

/* A decoded escape's byte is refused when it could hide a NUL, a control
 * character or a backslash (a path separator for some origins). */
static bool escaped_byte_ok(unsigned char v)
{
    return v != 0 && !is_control(v) && v != '\\';
}

/*
 * Normalise the path byte at rest[*i] (or the %XX escape starting there)
 * into b and advance *i. Never sees '/'.
 */
static int put_path_byte(struct key_buf *b, const char *rest, size_t rest_len, size_t *i)
{
    unsigned char c = (unsigned char)rest[*i];
    if (c == '%') {
        int hi = *i + 2 < rest_len ? hex_value((unsigned char)rest[*i + 1]) : -1;
        int lo = *i + 2 < rest_len ? hex_value((unsigned char)rest[*i + 2]) : -1;
        if (hi < 0 || lo < 0)
            return KEY_ERR_BAD_PATH;
        unsigned char v = (unsigned char)(hi << 4 | lo);
        if (!escaped_byte_ok(v))
            return KEY_ERR_BAD_PATH;
        *i += 3;
        return is_unreserved(v) ? put(b, (char)v) : put_escape(b, v);
    }
    /* '?' and '#' cannot be in a path: one here would make the key ambiguous
     * with a key that has a query. */
    if (c == '\0' || is_control(c) || c == '\\' || c == '?' || c == '#')
        return KEY_ERR_BAD_PATH;
    *i += 1;
    return is_plain_path_char(c) ? put(b, (char)c) : put_escape(b, c);
}

static bool is_dot_segment(const char *seg, size_t n)
{
    return (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.');
}

/* Write the normalised path of rest; the caller has written "<route>:". */
static int put_path(struct key_buf *b, const char *rest, size_t rest_len)
{
    size_t path_start = b->len;
    size_t i = 0;
    while (i < rest_len) {
        if (rest[i] == '/') { /* empty segment: dropped */
            i++;
            continue;
        }
        if (b->len > path_start) {
            int rc = put(b, '/');
            if (rc != KEY_OK)
                return rc;
        }
        size_t seg_start = b->len;
        while (i < rest_len && rest[i] != '/') {
            int rc = put_path_byte(b, rest, rest_len, &i);
            if (rc != KEY_OK)
                return rc;
        }
        if (is_dot_segment(b->out + seg_start, b->len - seg_start))
            return KEY_ERR_TRAVERSAL;
    }
    if (b->len == path_start)
        return KEY_ERR_EMPTY;
    if (rest[rest_len - 1] == '/')
        return put(b, '/');
    return KEY_OK;
}

static int put_query(struct key_buf *b, const char *query, size_t query_len)
{
    int rc = put(b, '?');
    for (size_t i = 0; i < query_len && rc == KEY_OK; i++) {
        unsigned char c = (unsigned char)query[i];
        if (c == '\0' || is_control(c) || c == '#')
            return KEY_ERR_BAD_PATH;
        rc = put(b, (char)c);
    }
    return rc;
}

static int put_route(struct key_buf *b, const char *route)
{
    size_t n = strlen(route);
    if (n == 0 || n >= CONFIG_ROUTE_NAME_MAX)
        return KEY_ERR_BAD_ROUTE;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)route[i];
        if (!islower(c) && !isdigit(c) && c != '_')
            return KEY_ERR_BAD_ROUTE;
        b->out[b->len++] = (char)c; /* n < KEY_MAX: cannot overflow */
    }
    return put(b, ':');
}

int key_build(const char *route, const char *rest, size_t rest_len,
              const char *query, size_t query_len, int with_query, char *out)
{
    SL_ASSERT(route && out && (rest || rest_len == 0) && (query || query_len == 0));
    struct key_buf b = { out, 0 };
    int rc = put_route(&b, route);
    if (rc == KEY_OK)
        rc = put_path(&b, rest, rest_len);
    if (rc == KEY_OK && with_query && query_len > 0)
        rc = put_query(&b, query, query_len);
    if (rc != KEY_OK) {
        out[0] = '\0';
        return rc;
    }
    SL_ASSERT(b.len > 0 && b.len <= KEY_MAX);
    out[b.len] = '\0';
    return (int)b.len;
}

const char *key_strerror(int err)
{
    switch (err) {
    case KEY_OK: return "ok";
    case KEY_ERR_TOO_LONG: return "key too long";
    case KEY_ERR_TRAVERSAL: return "path traversal ('.' or '..' segment)";
    case KEY_ERR_BAD_PATH: return "bad character or escape in path or query";
    case KEY_ERR_EMPTY: return "empty path";
    case KEY_ERR_BAD_ROUTE: return "bad route name";
    }
    return err > 0 ? "ok" : "unknown key error";
}

/* SHA-256 fetched once: OpenSSL 3 otherwise looks the algorithm up (a
 * locked table) on every digest, which showed in the hit path's profile.
 * Never freed; it lives as long as the process. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    SL_ASSERT(sha256_md != NULL);
}

void key_hash(const char *key, size_t key_len, uint8_t out[KEY_HASH_LEN])
{
    SL_ASSERT(key && out);
    pthread_once(&sha256_once, sha256_fetch);
    unsigned int n = 0;
    int ok = EVP_Digest(key, key_len, out, &n, sha256_md, NULL);
    SL_ASSERT(ok == 1 && n == KEY_HASH_LEN);
}

void key_hex(const uint8_t hash[KEY_HASH_LEN], char out[KEY_HEX_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    SL_ASSERT(hash && out);
    for (int i = 0; i < KEY_HASH_LEN; i++) {
        out[2 * i] = hex[hash[i] >> 4];
        out[2 * i + 1] = hex[hash[i] & 15];
    }
    out[KEY_HEX_LEN] = '\0';
}

void key_rel_path(const uint8_t hash[KEY_HASH_LEN], char *out, size_t outlen)
{
    SL_ASSERT(hash && out && outlen >= 80);
    char hex[KEY_HEX_LEN + 1];
    key_hex(hash, hex);
    snprintf(out, outlen, "objects/%.2s/%.2s/%s", hex, hex + 2, hex);
}
