/*
 * canon.h - the one canonical form of a request, from which both its cache
 * key and its origin URL are derived, so the two can never disagree.
 *
 * canon_request() runs once per request (the SPOP verdict and the HTTP side
 * call it through the same classification, serve/classify.c) on the raw
 * path and query. Anything ambiguous is refused before a key exists:
 *
 *   CANON_ERR_TRAVERSAL    a segment that is "." or ".." once decoded
 *                          ("..", "%2e%2E", ...)
 *   CANON_ERR_SEPARATOR    an encoded '/' or '\' (%2F, %5C) or a raw '\':
 *                          an origin that decodes it would see a different
 *                          path than the key says (an ecosystem that defines
 *                          one, npm's "@scope%2fname", rewrites it in its
 *                          own canon operation before the shared rules run)
 *   CANON_ERR_ESCAPE       '%' not followed by two hex digits
 *   CANON_ERR_CONTROL      NUL or another control character, raw or encoded
 *   CANON_ERR_UTF8         a segment whose decoded bytes are not UTF-8:
 *                          overlong forms (%C0%AE is '.'), surrogates,
 *                          truncated or out-of-range sequences
 *   CANON_ERR_CHAR         '?' or '#' inside the path, '#' in the query
 *   CANON_ERR_EMPTY        nothing after the route prefix
 *   CANON_ERR_TOO_LONG     the key would exceed KEY_MAX bytes
 *   CANON_ERR_TARGET       the raw path and query are longer than the
 *                          configured bound (canon_check_size)
 *   CANON_ERR_SEGMENTS     the raw path has more segments than the bound
 *
 * The canonical path (after the prefix, without a leading '/'):
 *   - empty segments are dropped ("a//b" is "a/b", for the key and for the
 *     origin URL alike); a trailing '/' is kept (origins serve "x" and "x/"
 *     differently);
 *   - escapes of unreserved characters are decoded ("%41" is "A"); every
 *     other escape stays an escape with upper-case hex ("%3b" is "%3B",
 *     which origins need not treat as ';'); raw bytes outside the RFC 3986
 *     path characters are escaped.
 * The canonical query (when the ecosystem keys on it; otherwise dropped):
 *   escapes upper-cased, never decoded ("%26" must stay apart from '&'),
 *   raw bytes outside the RFC 3986 query characters escaped.
 *
 * Key:        "<route>:<path>[?<query>][|<variant>]"  (variant: the
 *             representation an ecosystem picks from the Accept header;
 *             '|' never appears unescaped in a canonical path or query)
 * Origin URL: "<origin>/<path>[?<query>]", origin being the route's
 *             configured URL (scheme, host, port, base path).
 * Canonicalising a canonical path gives the same path (the fuzzer checks).
 */
#ifndef SLUICE_CANON_H
#define SLUICE_CANON_H

#include <stddef.h>
#include <stdint.h>

#include "eco/eco.h"
#include "route/route.h"
#include "store/key.h"

enum canon_err {
    CANON_OK = 0,
    CANON_ERR_TRAVERSAL = -1,
    CANON_ERR_SEPARATOR = -2,
    CANON_ERR_ESCAPE = -3,
    CANON_ERR_CONTROL = -4,
    CANON_ERR_UTF8 = -5,
    CANON_ERR_CHAR = -6,
    CANON_ERR_EMPTY = -7,
    CANON_ERR_TOO_LONG = -8,
    CANON_ERR_TARGET = -9,
    CANON_ERR_SEGMENTS = -10,
};

/* Bounds checked before any canonical work (request_target_max and
 * request_segments_max). */
struct canon_limits {
    size_t target_max;     /* path + '?' + query, in raw bytes */
    size_t segments_max;   /* '/'-separated pieces of the raw path, empty ones included */
};

struct canon {
    const struct route *route;
    /* "<route>:<path>[?<query>]": path starts after the ':' */
    char key[KEY_MAX + 1];
    size_t key_len;
    size_t path_off, path_len;     /* the canonical path inside key */
    size_t query_off, query_len;   /* the canonical query inside key (after
                                      '?'); query_len 0 and no '?' when none */
    const char *variant;           /* representation (eco->variant), or NULL */
    enum eco_class cls;
    uint8_t hash[KEY_HASH_LEN];    /* key_hash of key */
};

/*
 * Canonicalise the request `path` (raw, percent-encoded, starting with the
 * route's prefix), `query` (raw, without '?', NULL when absent) and `accept`
 * (the Accept header, NULL when absent; used only by ecosystems with
 * representations) of route `r`, whose ecosystem must cache something
 * (r->eco->classify).
 * Fills *out (key, hash, class) and returns CANON_OK, or a negative enum
 * canon_err (out->key is then "").
 */
int canon_request(const struct route *r, const char *path, size_t path_len, const char *query,
                  size_t query_len, const char *accept, size_t accept_len, struct canon *out);

/*
 * The shared path rules: canonicalise `rest` (the raw path after the
 * prefix) into out->key after what is already there (out->key_len), and set
 * path_off/path_len. An ecosystem's canon operation calls this, after its
 * own rewriting, or instead of it. Returns CANON_OK or a negative error.
 */
int canon_path(const char *rest, size_t rest_len, struct canon *out);

/* The origin URL of a canonical request. 0, or -1 when it does not fit. */
int canon_origin_url(const struct canon *c, char *out, size_t outlen);

/* The byte of the percent-escape at s[i] (s[i] is '%'), or -1 when it is
 * not followed by two hex digits within len. */
int canon_escape_value(const char *s, size_t len, size_t i);

/*
 * The cheap check that runs first: CANON_ERR_TARGET when the raw path and
 * query (with its '?') are longer than lim->target_max, CANON_ERR_SEGMENTS
 * when the path has more than lim->segments_max '/' (each starts a
 * segment), else CANON_OK. One memchr pass over the path at most, stopping
 * at the first '/' past the bound, so a path of 8000 slashes costs no more
 * than its length and never reaches canon_request.
 */
int canon_check_size(const char *path, size_t path_len, const char *query, size_t query_len,
                     const struct canon_limits *lim);

/* One line saying what was wrong, for the 400 body and the logs. */
const char *canon_strerror(int err);

/* The HTTP status a canonicalisation error is answered with (400, 404,
 * 414 for TOO_LONG, TARGET and SEGMENTS). */
int canon_err_status(int err);

#endif
