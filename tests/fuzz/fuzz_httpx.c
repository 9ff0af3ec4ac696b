/*
 * fuzz_httpx.c - libFuzzer target for the pure HTTP helpers.
 *
 * Input layout: the first 8 bytes (little-endian, zero-filled when short)
 * give a body size / a time value, the rest is the header value. Besides
 * "no crash, no UB", it checks the properties callers rely on: a RANGE_OK
 * range lies inside the body, a parsed date formats and parses back to
 * itself, a formatted date is always 29 characters and parses, and the
 * header validators never pass a byte that would split a header.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/httpx.h"

#define NOW_2026 ((time_t)1767225600)
#define DATE_MAX_T INT64_C(253402300799)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond)
        abort();
}

static void fuzz_range(const char *s, size_t len, uint64_t size)
{
    uint64_t first = 0, last = 0;
    enum range_result r = httpx_parse_range(s, len, size, &first, &last);
    check(r == RANGE_NONE || r == RANGE_OK || r == RANGE_UNSATISFIABLE);
    if (r == RANGE_OK)
        check(size > 0 && first <= last && last < size);
    if (size == 0)
        check(r != RANGE_OK);
}

static void fuzz_date(const char *s, size_t len, uint64_t bits)
{
    char buf[30], again[30];
    time_t t, back;

    if (httpx_parse_date_at(s, len, NOW_2026, &t) == 0 && (int64_t)t <= DATE_MAX_T) {
        httpx_format_date(t, buf, sizeof(buf));
        check(httpx_parse_date_at(buf, strlen(buf), NOW_2026, &back) == 0 && back == t);
    }
    /* Any time value formats to a valid, parseable IMF-fixdate. */
    httpx_format_date((time_t)(int64_t)bits, buf, sizeof(buf));
    check(strlen(buf) == 29);
    check(httpx_parse_date_at(buf, 29, NOW_2026, &back) == 0);
    httpx_format_date(back, again, sizeof(again));
    check(strcmp(buf, again) == 0);
    (void)httpx_not_modified_since(s, len, (time_t)(int64_t)bits);
}

static void fuzz_etag(const char *s, size_t len, const char *cstr)
{
    bool star = httpx_etag_matches(s, len, "\"abc\"");
    bool self = httpx_etag_matches(s, len, cstr);
    /* "*" matches anything, so matching a fixed tag via "*" implies self. */
    if (star && len == 1 && s[0] == '*')
        check(self);
    (void)httpx_etag_matches(cstr, strlen(cstr), "W/\"abc\"");
}

/* If-Range: a match is either exactly our strong tag or exactly our date. */
static void fuzz_if_range(const char *s, size_t len, const char *cstr, uint64_t bits)
{
    time_t lm = (time_t)(bits % UINT64_C(4102444800));
    if (httpx_if_range_matches(s, len, "\"abc\"", lm)) {
        time_t t;
        bool tag = len >= 5 && memmem(s, len, "\"abc\"", 5) != NULL;
        check(tag || (httpx_parse_date(s, len, &t) == 0 && t == lm));
    }
    (void)httpx_if_range_matches(s, len, cstr, lm);
}

static void fuzz_headers(const char *s, size_t len, uint64_t bits)
{
    if (httpx_header_value_ok(s, len, (size_t)(bits % 4096))) {
        check(len <= bits % 4096);
        check(memchr(s, '\r', len) == NULL && memchr(s, '\n', len) == NULL);
        check(memchr(s, '\0', len) == NULL);
    }
    if (httpx_header_name_ok(s, len)) {
        check(len > 0);
        check(memchr(s, ':', len) == NULL && memchr(s, ' ', len) == NULL);
        check(memchr(s, '\0', len) == NULL && memchr(s, '\n', len) == NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t bits = 0;
    size_t head = size < 8 ? size : 8;
    for (size_t i = 0; i < head; i++)
        bits |= (uint64_t)data[i] << (8 * i);

    /* The value, copied so ASan catches any read past `len`. */
    size_t len = size - head;
    char *s = malloc(len ? len : 1);
    char *cstr = malloc(len + 1);
    if (s == NULL || cstr == NULL) {
        free(s);
        free(cstr);
        return 0;
    }
    memcpy(s, data + head, len);
    memcpy(cstr, data + head, len);
    cstr[len] = '\0';

    fuzz_range(s, len, bits);
    fuzz_range(s, len, bits & 0xFF); /* small bodies reach the clamping paths */
    fuzz_date(s, len, bits);
    fuzz_etag(s, len, cstr);
    fuzz_if_range(s, len, cstr, bits);
    fuzz_headers(s, len, bits);

    free(s);
    free(cstr);
    return 0;
}
