/*
 * key.h - cache keys: what identifies an object, and where it lives on disk.
 *
 * A key is "<route>:<normalised path>[?<query>]" as text. The SPOP verdict
 * and the HTTP side both build it from the raw request path with the same
 * function, so they always agree.
 *
 * Normalisation of the path after the route prefix:
 *  - percent-escapes of unreserved characters (A-Z a-z 0-9 - . _ ~) are
 *    decoded; every other escape is kept, with its hex digits upper-cased
 *    ("%2f" -> "%2F"), so "/a%2Fb" and "/a/b" stay different objects;
 *  - empty segments are dropped ("a//b" -> "a/b");
 *  - a segment that is "." or ".." (also when written with %2E escapes) is
 *    rejected (KEY_ERR_TRAVERSAL): we never guess what the origin means;
 *  - NUL (raw or %00), control characters, backslash and malformed
 *    escapes are rejected (KEY_ERR_BAD_PATH);
 *  - the query is kept verbatim when the route keys on it (generic does);
 *  - the whole key must fit in KEY_MAX bytes (KEY_ERR_TOO_LONG).
 *
 * On disk an object lives at <cache_dir>/objects/<h0h1>/<h2h3>/<64 hex>, where
 * the hex is SHA-256 of the key text (nginx-style two directory levels).
 */
#ifndef SLUICE_KEY_H
#define SLUICE_KEY_H

#include <stddef.h>
#include <stdint.h>

#define KEY_MAX 2048
#define KEY_HASH_LEN 32
#define KEY_HEX_LEN 64

enum key_err {
    KEY_OK = 0,
    KEY_ERR_TOO_LONG = -1,
    KEY_ERR_TRAVERSAL = -2,
    KEY_ERR_BAD_PATH = -3,
    KEY_ERR_EMPTY = -4,        /* nothing after the prefix */
    KEY_ERR_BAD_ROUTE = -5,    /* route name not [a-z0-9_]+ (would make the key ambiguous) */
};

/*
 * Build the key into out (size KEY_MAX + 1, NUL-terminated). `rest` is the
 * raw path after the route prefix (no leading '/'), `query` the raw query
 * without '?' (may be NULL/empty; ignored unless with_query). Returns the key
 * length (> 0) or a negative enum key_err.
 */
int key_build(const char *route, const char *rest, size_t rest_len,
              const char *query, size_t query_len, int with_query, char *out);

const char *key_strerror(int err);

void key_hash(const char *key, size_t key_len, uint8_t out[KEY_HASH_LEN]);
void key_hex(const uint8_t hash[KEY_HASH_LEN], char out[KEY_HEX_LEN + 1]);

/* "objects/ab/cd/<hex>" relative to the cache dir (out >= 80 bytes). */
void key_rel_path(const uint8_t hash[KEY_HASH_LEN], char *out, size_t outlen);

#endif
