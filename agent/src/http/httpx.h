/*
 * httpx.h - pure HTTP helpers for the serving side: byte ranges,
 * conditional requests, HTTP dates, strong ETags and header hygiene.
 *
 * Nothing here does I/O; every function is a small total function over
 * strings so it can be unit-tested and fuzzed on its own.
 */
#ifndef SLUICE_HTTPX_H
#define SLUICE_HTTPX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

enum range_result {
    RANGE_NONE,           /* no Range header, or one we must ignore -> 200 full */
    RANGE_OK,             /* one satisfiable range -> 206 */
    RANGE_UNSATISFIABLE,  /* syntactically valid but outside the body -> 416 */
};

/*
 * Parse a Range header value against a body of `size` bytes (RFC 9110 14.2).
 * Only a single "bytes=" range is honoured: "a-b", "a-", "-n" (suffix).
 * Multiple ranges, other units, or malformed values give RANGE_NONE (the
 * RFC lets a server ignore Range). A last-pos past the end is clamped. A
 * suffix longer than the body means the whole body (RANGE_OK 0..size-1).
 * "bytes=-0" and a first-pos >= size give RANGE_UNSATISFIABLE, as does any
 * range of an empty body. On RANGE_OK, *first and *last are inclusive offsets.
 */
enum range_result httpx_parse_range(const char *value, size_t len, uint64_t size,
                                    uint64_t *first, uint64_t *last);

/* Format an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"); out >= 30 bytes. */
void httpx_format_date(time_t t, char *out, size_t outlen);

/* The current time as an IMF-fixdate, formatted at most once per second:
 * the Date header of every response. Loop thread only (static storage,
 * valid until the next call). */
const char *httpx_date_now(void);

/* Parse an HTTP date (IMF-fixdate; also RFC 850 and asctime forms).
 * Returns 0 and sets *out, or -1. */
int httpx_parse_date(const char *s, size_t len, time_t *out);

/* Same, with the reference time `now` used to place an RFC 850 two-digit
 * year (RFC 9110 5.6.7: no more than 50 years into the future).
 * httpx_parse_date() is this with now = time(NULL); tests pin `now`. */
int httpx_parse_date_at(const char *s, size_t len, time_t now, time_t *out);

/*
 * Does If-None-Match `value` match our strong `etag` (a quoted string such as
 * "\"abc\"")? Handles "*", comma lists, and W/ prefixes (weak comparison, as
 * RFC 9110 13.1.2 requires for If-None-Match).
 */
bool httpx_etag_matches(const char *value, size_t len, const char *etag);

/*
 * If-Range (RFC 9110 section 13.1.5): may a Range be honoured? An
 * entity-tag matches only strongly (neither side weak, the same opaque
 * tag: `etag` as the response carries it); an HTTP-date only when it is
 * exactly `last_modified`. Anything else, malformed included, means "send
 * the whole representation".
 */
bool httpx_if_range_matches(const char *value, size_t len, const char *etag, time_t last_modified);

/*
 * If-Modified-Since check: true when the client's copy is current, i.e. the
 * header parses and last_modified <= that date.
 */
bool httpx_not_modified_since(const char *value, size_t len, time_t last_modified);

/*
 * Is this an acceptable header field value to store and re-send? Rejects
 * CR, LF, NUL and other control characters except HTAB, and values longer
 * than max_len. Protects clients from hostile origin headers.
 */
bool httpx_header_value_ok(const char *value, size_t len, size_t max_len);

/* Is `name` a valid header field name (RFC 9110 token)? */
bool httpx_header_name_ok(const char *name, size_t len);

/*
 * Does the comma-separated list `value` (RFC 9110 5.6.1: Cache-Control,
 * Vary, Connection...) hold the element `token` (case-insensitive, OWS
 * around it ignored)? With arg_ok, "token=anything" counts too
 * (`private="Set-Cookie"`).
 */
bool httpx_list_has(const char *value, size_t len, const char *token, bool arg_ok);

/* 1 to 18 decimal digits (so it fits an int64_t) and nothing else; -1 if not. */
int64_t httpx_parse_digits(const char *v, size_t len);

/* A Retry-After field value (RFC 9110 section 10.2.3): delta-seconds, or
 * an HTTP date taken relative to `now`. Seconds to wait (0 for a date
 * already past), or -1 when it is neither. */
int64_t httpx_retry_after(const char *value, size_t len, time_t now);

/*
 * A Content-Length field value (RFC 9112 section 6.3): one length, or a
 * comma-separated list of equal ones ("5, 5" is 5). HTTPX_CL_INVALID when
 * an element is not a number, HTTPX_CL_CONFLICT when they differ.
 */
#define HTTPX_CL_INVALID (-1)
#define HTTPX_CL_CONFLICT (-2)
int64_t httpx_content_length(const char *value, size_t len);

#endif
