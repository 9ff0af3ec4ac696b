/*
 * test_httpx.c - unit tests for the pure HTTP helpers (agent/src/httpx.c).
 *
 * Table-driven: each table row is one input and its expected answer, so a
 * new edge case is one line. Inputs are written with S("...") so that
 * embedded NULs are part of the tested length.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/common.h"
#include "http/httpx.h"

#define S(lit) lit, sizeof(lit) - 1

/* 2026-01-01T00:00:00Z: pins the RFC 850 two-digit-year window. */
#define NOW_2026 ((time_t)1767225600)
/* Sun, 06 Nov 1994 08:49:37 GMT, the RFC 9110 example. */
#define RFC_EXAMPLE ((time_t)784111777)

/* ------------------------------------------------------------------ ranges */

struct range_case {
    const char *value;
    size_t len;
    uint64_t size;
    enum range_result want;
    uint64_t first, last;
};

static const struct range_case range_cases[] = {
    /* the basic forms */
    { S("bytes=0-0"), 10, RANGE_OK, 0, 0 },
    { S("bytes=0-"), 10, RANGE_OK, 0, 9 },
    { S("bytes=3-7"), 10, RANGE_OK, 3, 7 },
    { S("bytes=9-9"), 10, RANGE_OK, 9, 9 },
    { S("bytes=-1"), 10, RANGE_OK, 9, 9 },
    { S("bytes=-10"), 10, RANGE_OK, 0, 9 },
    { S("bytes=-20"), 10, RANGE_OK, 0, 9 },       /* suffix longer than body */
    { S("bytes=0-99999"), 10, RANGE_OK, 0, 9 },   /* last-pos clamped */
    { S("bytes=5-"), 10, RANGE_OK, 5, 9 },
    /* unsatisfiable */
    { S("bytes=-0"), 10, RANGE_UNSATISFIABLE, 0, 0 },
    { S("bytes=10-"), 10, RANGE_UNSATISFIABLE, 0, 0 },
    { S("bytes=10-20"), 10, RANGE_UNSATISFIABLE, 0, 0 },
    { S("bytes=11-11"), 10, RANGE_UNSATISFIABLE, 0, 0 },
    /* empty body: every valid range is unsatisfiable */
    { S("bytes=0-"), 0, RANGE_UNSATISFIABLE, 0, 0 },
    { S("bytes=0-0"), 0, RANGE_UNSATISFIABLE, 0, 0 },
    { S("bytes=-5"), 0, RANGE_UNSATISFIABLE, 0, 0 },
    { S("bytes=-0"), 0, RANGE_UNSATISFIABLE, 0, 0 },
    { S("bytes=5-2"), 0, RANGE_NONE, 0, 0 },       /* invalid beats empty */
    /* invalid: last < first */
    { S("bytes=5-2"), 10, RANGE_NONE, 0, 0 },
    { S("bytes=1-0"), 10, RANGE_NONE, 0, 0 },
    /* multiple ranges are ignored */
    { S("bytes=0-1,2-3"), 10, RANGE_NONE, 0, 0 },
    { S("bytes=0-1, 5-"), 10, RANGE_NONE, 0, 0 },
    { S("bytes=0-1,0-1"), 10, RANGE_NONE, 0, 0 },
    { S("bytes=0-1,-1"), 10, RANGE_NONE, 0, 0 },
    { S("bytes=0-1,x"), 10, RANGE_NONE, 0, 0 },
    /* units */
    { S("items=0-1"), 10, RANGE_NONE, 0, 0 },
    { S("byte=0-1"), 10, RANGE_NONE, 0, 0 },
    { S("bytesx=0-1"), 10, RANGE_NONE, 0, 0 },
    { S("Bytes=0-1"), 10, RANGE_OK, 0, 1 },
    { S("BYTES=2-3"), 10, RANGE_OK, 2, 3 },
    { S("=0-1"), 10, RANGE_NONE, 0, 0 },
    /* list syntax: empty elements and OWS around commas are legal */
    { S("bytes=0-1,"), 10, RANGE_OK, 0, 1 },
    { S("bytes=,0-1"), 10, RANGE_OK, 0, 1 },
    { S("bytes=0-1 , "), 10, RANGE_OK, 0, 1 },
    { S("bytes= ,0-1"), 10, RANGE_OK, 0, 1 },
    { S("bytes=,, 0-1 ,,"), 10, RANGE_OK, 0, 1 },
    { S(" bytes=0-1\t"), 10, RANGE_OK, 0, 1 },      /* field value is trimmed */
    { S("bytes=,,,"), 10, RANGE_NONE, 0, 0 },
    /* OWS where the ABNF has none */
    { S("bytes =0-1"), 10, RANGE_NONE, 0, 0 },
    { S("bytes= 0-1"), 10, RANGE_NONE, 0, 0 },
    { S("bytes=\t0-1"), 10, RANGE_NONE, 0, 0 },
    { S("bytes=0 -1"), 10, RANGE_NONE, 0, 0 },
    { S("bytes=0- 1"), 10, RANGE_NONE, 0, 0 },
    { S("bytes=- 1"), 10, RANGE_NONE, 0, 0 },
    /* garbage */
    { S(""), 10, RANGE_NONE, 0, 0 },
    { S("bytes"), 10, RANGE_NONE, 0, 0 },
    { S("bytes="), 10, RANGE_NONE, 0, 0 },
    { S("bytes=-"), 10, RANGE_NONE, 0, 0 },
    { S("bytes=--1"), 10, RANGE_NONE, 0, 0 },
    { S("bytes=1-2-3"), 10, RANGE_NONE, 0, 0 },
    { S("bytes=a-b"), 10, RANGE_NONE, 0, 0 },
    { S("bytes=0x1-2"), 10, RANGE_NONE, 0, 0 },
    { S("bytes=+1-2"), 10, RANGE_NONE, 0, 0 },
    { S("bytes=1"), 10, RANGE_NONE, 0, 0 },
    { S("bytes=0-1;x"), 10, RANGE_NONE, 0, 0 },
    { S("bytes==0-1"), 10, RANGE_NONE, 0, 0 },
    { S("bytes=0-1\0junk"), 10, RANGE_NONE, 0, 0 },
    { S("bytes=0\0-1"), 10, RANGE_NONE, 0, 0 },
    { S("\0bytes=0-1"), 10, RANGE_NONE, 0, 0 },
    /* huge numbers */
    { S("bytes=18446744073709551615-"), 10, RANGE_UNSATISFIABLE, 0, 0 },
    { S("bytes=18446744073709551616-"), 10, RANGE_NONE, 0, 0 },
    { S("bytes=0-18446744073709551616"), 10, RANGE_NONE, 0, 0 },
    { S("bytes=-18446744073709551616"), 10, RANGE_NONE, 0, 0 },
    { S("bytes=99999999999999999999999999-"), 10, RANGE_NONE, 0, 0 },
    { S("bytes=-18446744073709551615"), 10, RANGE_OK, 0, 9 },
    { S("bytes=0-18446744073709551615"), 10, RANGE_OK, 0, 9 },
    { S("bytes=0000000000000000000000000001-2"), 10, RANGE_OK, 1, 2 },
    { S("bytes=0-"), UINT64_MAX, RANGE_OK, 0, UINT64_MAX - 1 },
    { S("bytes=-1"), UINT64_MAX, RANGE_OK, UINT64_MAX - 1, UINT64_MAX - 1 },
    { S("bytes=18446744073709551614-18446744073709551615"), UINT64_MAX, RANGE_OK,
      UINT64_MAX - 1, UINT64_MAX - 1 },
};

static void test_range_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(range_cases) / sizeof(range_cases[0]); i++) {
        const struct range_case *c = &range_cases[i];
        uint64_t first = 12345, last = 67890;
        enum range_result got = httpx_parse_range(c->value, c->len, c->size, &first, &last);
        if (got != c->want)
            print_error("range case %zu \"%s\" size %llu: got %d want %d\n", i, c->value,
                        (unsigned long long)c->size, (int)got, (int)c->want);
        assert_int_equal(got, c->want);
        if (got == RANGE_OK) {
            assert_true(first == c->first);
            assert_true(last == c->last);
            assert_true(first <= last && last < c->size);
        }
    }
}

static void test_range_null(void **state)
{
    (void)state;
    uint64_t first, last;
    assert_int_equal(httpx_parse_range(NULL, 0, 10, &first, &last), RANGE_NONE);
}

/* ------------------------------------------------------------------- dates */

static void test_date_format(void **state)
{
    (void)state;
    static const struct {
        time_t t;
        const char *want;
    } cases[] = {
        { RFC_EXAMPLE, "Sun, 06 Nov 1994 08:49:37 GMT" },
        { 0, "Thu, 01 Jan 1970 00:00:00 GMT" },
        { 951782400, "Tue, 29 Feb 2000 00:00:00 GMT" },
        { 1767225599, "Wed, 31 Dec 2025 23:59:59 GMT" },
        { -1, "Wed, 31 Dec 1969 23:59:59 GMT" },
        /* outside 4-digit years: clamped, still a valid date */
        { (time_t)INT64_C(253402300800), "Fri, 31 Dec 9999 23:59:59 GMT" },
        { (time_t)INT64_MAX, "Fri, 31 Dec 9999 23:59:59 GMT" },
        { (time_t)INT64_MIN, "Sat, 01 Jan 0000 00:00:00 GMT" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[30];
        memset(buf, 'x', sizeof(buf));
        httpx_format_date(cases[i].t, buf, sizeof(buf));
        assert_string_equal(buf, cases[i].want);
    }
}

static void test_date_round_trip(void **state)
{
    (void)state;
    /* A spread of instants, including leap days and year ends. */
    for (int64_t t = INT64_C(-62167219200); t <= INT64_C(253402300799);
         t += INT64_C(86399) * 367 + 7) {
        char buf[30];
        time_t back;
        httpx_format_date((time_t)t, buf, sizeof(buf));
        assert_int_equal(strlen(buf), 29);
        assert_int_equal(httpx_parse_date_at(buf, strlen(buf), NOW_2026, &back), 0);
        assert_true((int64_t)back == t);
    }
}

struct date_case {
    const char *value;
    size_t len;
    int want_rc;
    time_t want;
};

static const struct date_case date_cases[] = {
    /* the three forms of RFC 9110 5.6.7 */
    { S("Sun, 06 Nov 1994 08:49:37 GMT"), 0, RFC_EXAMPLE },
    { S("Sunday, 06-Nov-94 08:49:37 GMT"), 0, RFC_EXAMPLE },
    { S("Sun Nov  6 08:49:37 1994"), 0, RFC_EXAMPLE },
    { S("Sun Nov 06 08:49:37 1994"), 0, RFC_EXAMPLE },     /* 2DIGIT day */
    { S("  Sun, 06 Nov 1994 08:49:37 GMT "), 0, RFC_EXAMPLE }, /* trimmed */
    /* calendar edges */
    { S("Thu, 01 Jan 1970 00:00:00 GMT"), 0, 0 },
    { S("Tue, 29 Feb 2000 00:00:00 GMT"), 0, 951782400 },
    { S("Wed, 31 Dec 1969 23:59:59 GMT"), 0, -1 },
    { S("Wed, 31 Dec 2025 23:59:60 GMT"), 0, 1767225600 },  /* leap second */
    { S("Mon, 06 Nov 1994 08:49:37 GMT"), 0, RFC_EXAMPLE }, /* weekday unchecked */
    /* RFC 850 two-digit years, relative to 2026: window (1976, 2076] */
    { S("Wednesday, 01-Jan-70 00:00:00 GMT"), 0, (time_t)INT64_C(3155760000) },
    { S("Wednesday, 01-Jan-76 00:00:00 GMT"), 0, (time_t)INT64_C(3345062400) },
    { S("Saturday, 01-Jan-77 00:00:00 GMT"), 0, 220924800 },
    { S("Friday, 01-Jan-99 00:00:00 GMT"), 0, 915148800 },
    { S("Saturday, 01-Jan-00 00:00:00 GMT"), 0, 946684800 },
    /* bad */
    { S(""), -1, 0 },
    { S("garbage"), -1, 0 },
    { S("0"), -1, 0 },
    { S("784111777"), -1, 0 },
    { S("sun, 06 nov 1994 08:49:37 gmt"), -1, 0 },
    { S("Sun, 06 Nov 1994 08:49:37 UTC"), -1, 0 },
    { S("Sun, 06 Nov 1994 08:49:37 gmt"), -1, 0 },
    { S("Sun, 06 Nov 1994 08:49:37"), -1, 0 },
    { S("Sun, 06 Nov 1994 08:49:37 GMT extra"), -1, 0 },
    { S("Sun, 06 Nov 1994 08:49:37 GMT\0"), -1, 0 },
    { S("Sun, 06 Nov 1994 08:49:37 G\0MT"), -1, 0 },
    { S("Sun, 6 Nov 1994 08:49:37 GMT"), -1, 0 },
    { S("Sun, 06 Nov 94 08:49:37 GMT"), -1, 0 },
    { S("Sun, 06 Nov 1994 8:49:37 GMT"), -1, 0 },
    { S("Sun,  06 Nov 1994 08:49:37 GMT"), -1, 0 },
    { S("Sun 06 Nov 1994 08:49:37 GMT"), -1, 0 },
    { S("Sun, 06 Nov 1994 24:00:00 GMT"), -1, 0 },
    { S("Sun, 06 Nov 1994 08:60:00 GMT"), -1, 0 },
    { S("Sun, 06 Nov 1994 08:49:61 GMT"), -1, 0 },
    { S("Sun, 00 Nov 1994 08:49:37 GMT"), -1, 0 },
    { S("Sun, 31 Nov 1994 08:49:37 GMT"), -1, 0 },
    { S("Wed, 29 Feb 2023 00:00:00 GMT"), -1, 0 },
    { S("Mon, 29 Feb 1900 00:00:00 GMT"), -1, 0 },
    { S("Sun, 06 Foo 1994 08:49:37 GMT"), -1, 0 },
    { S("Fun, 06 Nov 1994 08:49:37 GMT"), -1, 0 },
    { S("Sunday, 06 Nov 1994 08:49:37 GMT"), -1, 0 },   /* long name, IMF */
    { S("Sun, 06-Nov-94 08:49:37 GMT"), -1, 0 },        /* short name, 850 */
    { S("Sunday, 06-Nov-1994 08:49:37 GMT"), -1, 0 },
    { S("Sunday, 6-Nov-94 08:49:37 GMT"), -1, 0 },
    { S("Sun Nov 6 08:49:37 1994"), -1, 0 },            /* one space */
    { S("Sun Nov  6 08:49:37 1994 GMT"), -1, 0 },
    { S("Sun Nov  6 08:49:37 94"), -1, 0 },
    { S("Sun Nov   6 08:49:37 1994"), -1, 0 },
    { S("Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT"), -1, 0 },
    { S("Sun, 06 Nov -994 08:49:37 GMT"), -1, 0 },
    { S("Sun, 06 Nov 1994 08:49:3 GMT"), -1, 0 },
};

static void test_date_parse_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(date_cases) / sizeof(date_cases[0]); i++) {
        const struct date_case *c = &date_cases[i];
        time_t got = 42;
        int rc = httpx_parse_date_at(c->value, c->len, NOW_2026, &got);
        if (rc != c->want_rc || (rc == 0 && got != c->want))
            print_error("date case %zu \"%s\": rc %d t %lld\n", i, c->value, rc,
                        (long long)got);
        assert_int_equal(rc, c->want_rc);
        if (rc == 0)
            assert_true(got == c->want);
    }
}

static void test_date_parse_now(void **state)
{
    (void)state;
    time_t t;
    /* The wall-clock variant agrees on forms that do not depend on "now". */
    assert_int_equal(httpx_parse_date(S("Sun, 06 Nov 1994 08:49:37 GMT"), &t), 0);
    assert_true(t == RFC_EXAMPLE);
    assert_int_equal(httpx_parse_date(S("Sun Nov  6 08:49:37 1994"), &t), 0);
    assert_true(t == RFC_EXAMPLE);
    assert_int_equal(httpx_parse_date(NULL, 0, &t), -1);
}

/* Late in a century the window wraps forward: in mid-2080 it is (2030, 2130]. */
static void test_date_rfc850_window_wraps(void **state)
{
    (void)state;
    const time_t now_2080 = (time_t)INT64_C(3484425600);
    time_t t;
    assert_int_equal(httpx_parse_date_at(S("Monday, 01-Jan-20 00:00:00 GMT"), now_2080, &t), 0);
    assert_true((int64_t)t == INT64_C(4733510400));     /* 2120 */
    assert_int_equal(httpx_parse_date_at(S("Sunday, 01-Jan-30 00:00:00 GMT"), now_2080, &t), 0);
    assert_true((int64_t)t == INT64_C(5049129600));     /* 2130 */
    assert_int_equal(httpx_parse_date_at(S("Monday, 01-Jan-80 00:00:00 GMT"), now_2080, &t), 0);
    assert_true((int64_t)t == INT64_C(3471292800));     /* 2080 */
}

/* ------------------------------------------------------------------- ETags */

struct etag_case {
    const char *value;
    size_t len;
    const char *etag;
    bool want;
};

static const struct etag_case etag_cases[] = {
    { S("\"abc\""), "\"abc\"", true },
    { S("W/\"abc\""), "\"abc\"", true },                   /* weak comparison */
    { S("\"abc\""), "W/\"abc\"", true },
    { S("\"x\", \"abc\""), "\"abc\"", true },
    { S("\"x\" ,W/\"abc\" , \"y\""), "\"abc\"", true },
    { S("\"x\",\"abc\",\"y\""), "\"abc\"", true },
    { S(", \"abc\" ,,"), "\"abc\"", true },                /* empty elements */
    { S("  \"abc\"\t"), "\"abc\"", true },
    { S("*"), "\"abc\"", true },
    { S(" * "), "\"abc\"", true },
    { S("*"), NULL, true },
    { S("\"\""), "\"\"", true },
    { S("\"a,b\""), "\"a,b\"", true },                     /* comma inside a tag */
    { S("\"\xe9t\xe9\""), "\"\xe9t\xe9\"", true },         /* obs-text */
    /* no match */
    { S("\"abd\""), "\"abc\"", false },
    { S("\"ABC\""), "\"abc\"", false },
    { S("\"x\", \"y\""), "\"abc\"", false },
    { S("\"a\", \"b\""), "\"a,b\"", false },
    { S("\"abc\""), "\"abcd\"", false },
    { S("\"abc\""), NULL, false },
    { S("\"abc\""), "abc", false },                        /* our tag unquoted */
    { S(""), "\"abc\"", false },
    { S(",,,"), "\"abc\"", false },
    /* malformed: ignored entirely, so no match even if a tag would */
    { S("abc"), "\"abc\"", false },
    { S("\"abc\", abc"), "\"abc\"", false },
    { S("\"abc"), "\"abc\"", false },
    { S("abc\""), "\"abc\"", false },
    { S("w/\"abc\""), "\"abc\"", false },
    { S("W \"abc\""), "\"abc\"", false },
    { S("*, \"abc\""), "\"abc\"", false },
    { S("**"), "\"abc\"", false },
    { S("\"abc\" \"abc\""), "\"abc\"", false },
    { S("\"abc\"x"), "\"abc\"", false },
    { S("\"a bc\""), "\"a bc\"", false },                   /* SP is not etagc */
    { S("\"ab\x01\""), "\"ab\x01\"", false },
    { S("\"abc\"\0"), "\"abc\"", false },
    { S("\"ab\0c\""), "\"abc\"", false },
};

static void test_etag_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(etag_cases) / sizeof(etag_cases[0]); i++) {
        const struct etag_case *c = &etag_cases[i];
        bool got = httpx_etag_matches(c->value, c->len, c->etag);
        if (got != c->want)
            print_error("etag case %zu [%s] vs [%s]: got %d\n", i, c->value,
                        c->etag ? c->etag : "(null)", (int)got);
        assert_int_equal(got, c->want);
    }
    assert_false(httpx_etag_matches(NULL, 0, "\"abc\""));
}

/* --------------------------------------------------------- If-Modified-Since */

static void test_not_modified_since(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        size_t len;
        bool want;
    } cases[] = {
        { S("Sun, 06 Nov 1994 08:49:37 GMT"), true },  /* equal */
        { S("Sun, 06 Nov 1994 08:49:38 GMT"), true },  /* client newer */
        { S("Sun Nov  6 09:00:00 1994"), true },
        { S("Sun, 06 Nov 1994 08:49:36 GMT"), false }, /* changed since */
        { S("Thu, 01 Jan 1970 00:00:00 GMT"), false },
        { S("garbage"), false },
        { S(""), false },
        { S("Sun, 06 Nov 1994 08:49:37 GMT, Sun, 06 Nov 1994 08:49:37 GMT"), false },
        { S("Sun, 06 Nov 1994 08:49:37 GMT\0"), false },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool got = httpx_not_modified_since(cases[i].value, cases[i].len, RFC_EXAMPLE);
        if (got != cases[i].want)
            print_error("ims case %zu \"%s\"\n", i, cases[i].value);
        assert_int_equal(got, cases[i].want);
    }
    assert_false(httpx_not_modified_since(NULL, 0, RFC_EXAMPLE));
}

/* ---------------------------------------------------------- header hygiene */

static void test_header_value(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        size_t len;
        size_t max;
        bool want;
    } cases[] = {
        { S("text/plain"), 100, true },
        { S("a\tb"), 100, true },
        { S(""), 100, true },
        { S("caf\xc3\xa9"), 100, true },     /* obs-text */
        { S(" padded "), 100, true },
        { S("abcd"), 4, true },              /* exactly max */
        { S("abcde"), 4, false },
        { S("a\rb"), 100, false },
        { S("a\nb"), 100, false },
        { S("a\r\nX-Injected: 1"), 100, false },
        { S("a\0b"), 100, false },
        { S("\x01"), 100, false },
        { S("\x1f"), 100, false },
        { S("a\x7f"), 100, false },
        { S("\x0b"), 100, false },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool got = httpx_header_value_ok(cases[i].value, cases[i].len, cases[i].max);
        if (got != cases[i].want)
            print_error("value case %zu\n", i);
        assert_int_equal(got, cases[i].want);
    }
    assert_true(httpx_header_value_ok(NULL, 0, 10));
    assert_false(httpx_header_value_ok(NULL, 1, 10));
}

/* Cache-Control and Vary lists: an element, whatever the case and the
 * blanks around it, never a prefix or a value of another element. */
static void test_list_has(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        const char *token;
        bool arg_ok;
        bool want;
    } cases[] = {
        { "no-store", "no-store", false, true },
        { "max-age=0, No-Store", "no-store", false, true },
        { "public,\tno-store\t", "no-store", false, true },
        { "no-storage", "no-store", false, false },
        { "x-no-store", "no-store", false, false },
        { "no-cache=\"no-store\"", "no-store", false, false },
        { "private", "private", true, true },
        { "private=\"Set-Cookie\"", "private", true, true },
        { "private=\"Set-Cookie\"", "private", false, false },
        { "privately", "private", true, false },
        { "Accept, *", "*", false, true },
        { "Accept-Encoding", "*", false, false },
        { "", "*", false, false },
        { ",,  ,", "*", false, false },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(httpx_list_has(cases[i].value, strlen(cases[i].value), cases[i].token, cases[i].arg_ok),
                         cases[i].want);
}

/* Content-Length: one length, a list of equal ones, or refused. */
static void test_retry_after(void **state)
{
    (void)state;
    time_t now = 784111777;   /* Sun, 06 Nov 1994 08:49:37 GMT */
    assert_int_equal(httpx_retry_after("120", 3, now), 120);
    assert_int_equal(httpx_retry_after("0", 1, now), 0);
    const char *date = "Sun, 06 Nov 1994 08:50:37 GMT";
    assert_int_equal(httpx_retry_after(date, strlen(date), now), 60);
    assert_int_equal(httpx_retry_after(date, strlen(date), now + 3600), 0);   /* already past */
    assert_int_equal(httpx_retry_after("-5", 2, now), -1);
    assert_int_equal(httpx_retry_after("1.5", 3, now), -1);
    assert_int_equal(httpx_retry_after("", 0, now), -1);
    assert_int_equal(httpx_retry_after("soon", 4, now), -1);
}

static void test_content_length(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        int64_t want;
    } cases[] = {
        { "0", 0 },
        { "1234", 1234 },
        { "5, 5", 5 },
        { "5,5,\t5", 5 },
        { "5, 10", HTTPX_CL_CONFLICT },
        { "10x", HTTPX_CL_INVALID },
        { "5, 10x", HTTPX_CL_INVALID },
        { "-1", HTTPX_CL_INVALID },
        { "+5", HTTPX_CL_INVALID },
        { "", HTTPX_CL_INVALID },
        { "5,", 5 },   /* an empty list element is no element (RFC 9110 5.6.1) */
        { ",", HTTPX_CL_INVALID },
        { "9999999999999999999", HTTPX_CL_INVALID },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_true(httpx_content_length(cases[i].value, strlen(cases[i].value)) == cases[i].want);
}

static void test_if_range(void **state)
{
    (void)state;
    const time_t lm = 1767225600;   /* Thu, 01 Jan 2026 00:00:00 GMT */
    assert_true(httpx_if_range_matches(SL_LIT("\"abc\""), "\"abc\"", lm));
    assert_true(httpx_if_range_matches(SL_LIT(" \"abc\" "), "\"abc\"", lm));
    assert_false(httpx_if_range_matches(SL_LIT("\"abd\""), "\"abc\"", lm));     /* another version */
    assert_false(httpx_if_range_matches(SL_LIT("W/\"abc\""), "\"abc\"", lm));   /* weak: never */
    assert_false(httpx_if_range_matches(SL_LIT("\"abc\""), "W/\"abc\"", lm));
    assert_false(httpx_if_range_matches(SL_LIT("\"abc\", \"abd\""), "\"abc\"", lm));   /* one tag only */
    assert_false(httpx_if_range_matches(SL_LIT("*"), "\"abc\"", lm));
    assert_false(httpx_if_range_matches(SL_LIT("\"abc\""), NULL, lm));
    assert_true(httpx_if_range_matches(SL_LIT("Thu, 01 Jan 2026 00:00:00 GMT"), "\"abc\"", lm));
    assert_false(httpx_if_range_matches(SL_LIT("Thu, 01 Jan 2026 00:00:01 GMT"), "\"abc\"", lm));
    assert_false(httpx_if_range_matches(SL_LIT("Wed, 31 Dec 2025 23:59:59 GMT"), "\"abc\"", lm));
    assert_false(httpx_if_range_matches(SL_LIT("yesterday"), "\"abc\"", lm));
    assert_false(httpx_if_range_matches(NULL, 0, "\"abc\"", lm));
}

static void test_header_name(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        size_t len;
        bool want;
    } cases[] = {
        { S("Content-Type"), true },
        { S("x"), true },
        { S("X-Foo_bar!#$%&'*+-.^`|~09"), true },
        { S(""), false },
        { S("Foo Bar"), false },
        { S("Foo:"), false },
        { S(":authority"), false },
        { S("Foo\0"), false },
        { S("Foo\r"), false },
        { S("Foo\n"), false },
        { S("Foo\t"), false },
        { S("caf\xc3\xa9"), false },
        { S("a(b)"), false },
        { S("a/b"), false },
        { S("a\"b"), false },
        { S("a,b"), false },
        { S("a=b"), false },
        { S("a@b"), false },
        { S("{a}"), false },
        { S("a\x7f"), false },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool got = httpx_header_name_ok(cases[i].name, cases[i].len);
        if (got != cases[i].want)
            print_error("name case %zu\n", i);
        assert_int_equal(got, cases[i].want);
    }
    assert_false(httpx_header_name_ok(NULL, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range_table),
        cmocka_unit_test(test_range_null),
        cmocka_unit_test(test_date_format),
        cmocka_unit_test(test_date_round_trip),
        cmocka_unit_test(test_date_parse_table),
        cmocka_unit_test(test_date_parse_now),
        cmocka_unit_test(test_date_rfc850_window_wraps),
        cmocka_unit_test(test_etag_table),
        cmocka_unit_test(test_not_modified_since),
        cmocka_unit_test(test_header_value),
        cmocka_unit_test(test_header_name),
        cmocka_unit_test(test_if_range),
        cmocka_unit_test(test_list_has),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_content_length),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
