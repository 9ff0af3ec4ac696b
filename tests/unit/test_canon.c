/*
 * test_canon.c - the canonical form of a request (route/canon.h): how a raw
 * path and query become one key and one origin URL, and everything that is
 * refused before a key exists. The two are derived from the same form, so
 * every case checks both.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/common.h"
#include "core/config.h"
#include "eco/eco.h"
#include "route/canon.h"
#include "route/route.h"

static struct route_table rt;
static struct canon cn;

/* An ecosystem that caches everything but drops the query. */
static enum eco_class all_immutable(const struct canon *c)
{
    (void)c;
    return ECO_IMMUTABLE;
}
static const struct eco no_query_eco = { .name = "noq", .classify = all_immutable };

/* An origin whose layout differs from the clients' paths: "<path>/download". */
static int download_url(const struct canon *c, char *out, size_t outlen)
{
    int n = snprintf(out, outlen, "https://dl.example/%.*s/download", (int)c->path_len, c->key + c->path_off);
    return n > 0 && (size_t)n < outlen ? 0 : -1;
}
static const struct eco own_url_eco = { .name = "dl", .classify = all_immutable, .origin_url = download_url };

static int setup(void **state)
{
    (void)state;
    struct sluice_config cfg;
    char err[256];
    config_defaults(&cfg);
    assert_int_equal(config_set(&cfg, "origin_generic", "http://127.0.0.1:9000/base/", err, sizeof(err)), 0);
    assert_int_equal(config_set(&cfg, "origin_noq", "https://files.example", err, sizeof(err)), 0);
    assert_int_equal(route_table_parse(&rt, "/generic/ generic\n/noq/ noq\n/npm/ npm\n", &cfg, err, sizeof(err)), 0);
    rt.routes[1].eco = &no_query_eco;
    return 0;
}

/* Canonicalise "/generic/<rest>[?query]". */
static int canon_generic(const char *rest, size_t rest_len, const char *query)
{
    static char path[KEY_MAX * 4];
    assert_true(rest_len + 9 <= sizeof(path));
    memcpy(path, "/generic/", 9);
    memcpy(path + 9, rest, rest_len);
    return canon_request(&rt.routes[0], path, 9 + rest_len, query, query ? strlen(query) : 0, NULL, 0, &cn);
}

static const char *path_of(void)
{
    static char buf[KEY_MAX + 1];
    snprintf(buf, sizeof(buf), "%.*s", (int)cn.path_len, cn.key + cn.path_off);
    return buf;
}

/* ------------------------------------------------------ normalisation */

static void test_normalisation_table(void **state)
{
    (void)state;
    static const struct {
        const char *rest;
        const char *path;
    } cases[] = {
        { "left-pad/-/left-pad-1.3.0.tgz", "left-pad/-/left-pad-1.3.0.tgz" },
        /* unreserved escapes are decoded, whatever the case of the hex */
        { "%61%62%63", "abc" },
        { "%41%5a%30%39", "AZ09" },
        { "%2D%2e%5F%7E", "-._~" },
        /* other escapes are kept, hex upper-cased */
        { "a%20b", "a%20b" },
        { "%c3%a4", "%C3%A4" },
        { "%25", "%25" },
        { "%3f%23", "%3F%23" },
        { "%3b", "%3B" },
        /* empty segments dropped, a trailing '/' kept */
        { "a//b", "a/b" },
        { "a///b////c", "a/b/c" },
        { "/a/b", "a/b" },
        { "a/b/", "a/b/" },
        { "a/b//", "a/b/" },
        /* dots that are not a whole segment are ordinary */
        { "...", "..." },
        { "a..b", "a..b" },
        { ".hidden", ".hidden" },
        { "x/..a/b..", "x/..a/b.." },
        /* RFC 3986 path characters kept as they are */
        { "a:b@c!$&'()*+,;=", "a:b@c!$&'()*+,;=" },
        /* bytes that cannot be in a path are escaped, so both spellings agree */
        { "a b", "a%20b" },
        { "\xc3\xa4", "%C3%A4" },
        { "a\"b<c>d", "a%22b%3Cc%3Ed" },
        { "[x]{y}|^`", "%5Bx%5D%7By%7D%7C%5E%60" },
        /* valid UTF-8 of every length */
        { "%F0%9F%98%80/%E2%82%AC/%C2%A9", "%F0%9F%98%80/%E2%82%AC/%C2%A9" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = canon_generic(cases[i].rest, strlen(cases[i].rest), NULL);
        if (rc != CANON_OK)
            fail_msg("'%s' failed: %s", cases[i].rest, canon_strerror(rc));
        if (strcmp(path_of(), cases[i].path) != 0)
            fail_msg("'%s' gave '%s', want '%s'", cases[i].rest, path_of(), cases[i].path);
        char key[KEY_MAX + 16];
        snprintf(key, sizeof(key), "generic:%s", cases[i].path);
        assert_string_equal(cn.key, key);
        assert_int_equal(cn.key_len, strlen(key));
        assert_int_equal(cn.cls, ECO_IMMUTABLE);
    }
}

static void test_key_and_origin_url_come_from_one_form(void **state)
{
    (void)state;
    char url[4096];
    assert_int_equal(canon_generic(SL_LIT("x//%79/%7e"), "b=%2f&a=1"), CANON_OK);
    assert_string_equal(cn.key, "generic:x/y/~?b=%2F&a=1");
    assert_int_equal(canon_origin_url(&cn, url, sizeof(url)), 0);
    assert_string_equal(url, "http://127.0.0.1:9000/base/x/y/~?b=%2F&a=1");
    /* every spelling of the same path fetches the same URL */
    static const char *spellings[] = { "x/y/~", "/x//y/%7E", "%78/%79/~" };
    for (size_t i = 0; i < 3; i++) {
        char other[4096];
        assert_int_equal(canon_generic(spellings[i], strlen(spellings[i]), "b=%2F&a=1"), CANON_OK);
        assert_int_equal(canon_origin_url(&cn, other, sizeof(other)), 0);
        assert_string_equal(other, url);
    }
    /* a route that does not key on the query drops it from both */
    assert_int_equal(canon_request(&rt.routes[1], SL_LIT("/noq/f.whl"), SL_LIT("x=1"), NULL, 0, &cn), CANON_OK);
    assert_string_equal(cn.key, "noq:f.whl");
    assert_int_equal(canon_origin_url(&cn, url, sizeof(url)), 0);
    assert_string_equal(url, "https://files.example/f.whl");
    /* the URL must fit */
    assert_int_equal(canon_origin_url(&cn, url, 10), -1);
    /* an ecosystem with its own layout builds it from the same form */
    rt.routes[1].eco = &own_url_eco;
    assert_int_equal(canon_request(&rt.routes[1], SL_LIT("/noq/serde//1.0"), NULL, 0, NULL, 0, &cn), CANON_OK);
    assert_int_equal(canon_origin_url(&cn, url, sizeof(url)), 0);
    assert_string_equal(url, "https://dl.example/serde/1.0/download");
    rt.routes[1].eco = &no_query_eco;
}

static void test_hash_is_of_the_key(void **state)
{
    (void)state;
    assert_int_equal(canon_generic(SL_LIT("a"), NULL), CANON_OK);
    uint8_t want[KEY_HASH_LEN];
    key_hash("generic:a", 9, want);
    assert_memory_equal(cn.hash, want, KEY_HASH_LEN);
}

static void test_idempotent(void **state)
{
    (void)state;
    static const char *inputs[] = { "a%41/x y/\xc3\xa4/.../", "simple/x/", "%7e/~/%25/%2525", "%3B;" };
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        assert_int_equal(canon_generic(inputs[i], strlen(inputs[i]), "q=%2f x"), CANON_OK);
        char first[KEY_MAX + 1], path[KEY_MAX + 1], query[KEY_MAX + 1];
        strcpy(first, cn.key);
        snprintf(path, sizeof(path), "%.*s", (int)cn.path_len, cn.key + cn.path_off);
        snprintf(query, sizeof(query), "%.*s", (int)cn.query_len, cn.key + cn.query_off);
        assert_int_equal(canon_generic(path, strlen(path), query), CANON_OK);
        assert_string_equal(cn.key, first);
    }
}

/* ---------------------------------------------------------- rejections */

static void expect_error(const char *rest, size_t rest_len, int want)
{
    int rc = canon_generic(rest, rest_len, NULL);
    if (rc != want)
        fail_msg("'%.*s' gave %d (%s), want %d (%s)", (int)rest_len, rest, rc,
                 rc == CANON_OK ? cn.key : canon_strerror(rc), want, canon_strerror(want));
    assert_string_equal(cn.key, ""); /* no half-built key left behind */
}

static void expect_errors(const char *const *cases, size_t n, int want)
{
    for (size_t i = 0; i < n; i++)
        expect_error(cases[i], strlen(cases[i]), want);
}

static void test_traversal(void **state)
{
    (void)state;
    static const char *cases[] = {
        "..", ".", "../etc/passwd", "a/../b", "a/..", "a/./b", "./a", "a/.",
        "%2e%2e", "%2E%2E", "%2e%2E", ".%2e", "%2e.", ".%2E/x", "a/%2e%2e/b", "%2e",
        "a/%2E", "a//..//b", "../", "a/../",
    };
    expect_errors(cases, sizeof(cases) / sizeof(cases[0]), CANON_ERR_TRAVERSAL);
}

static void test_separators(void **state)
{
    (void)state;
    static const char *cases[] = {
        "a%2fb", "a%2Fb", "@scope%2fname", "..%2f..%2fsecret", "..%2F..", "a%5cb", "a%5Cb", "a\\b", "..\\..\\x",
    };
    expect_errors(cases, sizeof(cases) / sizeof(cases[0]), CANON_ERR_SEPARATOR);
}

static void test_escapes_and_controls(void **state)
{
    (void)state;
    static const char *bad_escapes[] = { "a%4", "a%", "%", "%zz", "%4g", "%g4", "a%2", "x/%%41" };
    expect_errors(bad_escapes, sizeof(bad_escapes) / sizeof(bad_escapes[0]), CANON_ERR_ESCAPE);
    static const char *controls[] = { "a%00b", "%00", "a\tb", "a\rb", "a\nb", "a\x01", "a\x7f",
                                      "%0a", "%0D%0A", "%1f", "%7f", "%7F" };
    expect_errors(controls, sizeof(controls) / sizeof(controls[0]), CANON_ERR_CONTROL);
    expect_error("a\0b", 3, CANON_ERR_CONTROL);       /* a raw NUL inside the length */
    static const char *chars[] = { "a?b", "a#b" };
    expect_errors(chars, 2, CANON_ERR_CHAR);
    /* the length is respected: a bad byte past it does not count */
    assert_int_equal(canon_generic("ab\\c", 2, NULL), CANON_OK);
    assert_string_equal(cn.key, "generic:ab");
    /* an escape cut by the length is malformed */
    expect_error("a%41", 3, CANON_ERR_ESCAPE);
}

static void test_utf8(void **state)
{
    (void)state;
    static const char *cases[] = {
        "%C0%AE%C0%AE",        /* overlong '.' */
        "a%C0%AFb",            /* overlong '/' */
        "%E0%80%AE",           /* overlong, three bytes */
        "%F0%80%80%AE",        /* overlong, four bytes */
        "%C1%BF",              /* overlong */
        "%ED%A0%80",           /* a UTF-16 surrogate */
        "%F4%90%80%80",        /* past U+10FFFF */
        "%F5%80%80%80",        /* never valid */
        "%E2%82",              /* truncated */
        "%80", "%ff", "a%C3", "\xff", "\xc3(",
    };
    expect_errors(cases, sizeof(cases) / sizeof(cases[0]), CANON_ERR_UTF8);
}

static void test_empty_and_too_long(void **state)
{
    (void)state;
    expect_error("", 0, CANON_ERR_EMPTY);
    expect_error("/", 1, CANON_ERR_EMPTY);
    expect_error("////", 4, CANON_ERR_EMPTY);
    assert_int_equal(canon_generic("", 0, "a=1"), CANON_ERR_EMPTY);   /* a query alone is no object */
    static char rest[KEY_MAX + 100];
    const size_t prefix = strlen("generic:");
    memset(rest, 'a', KEY_MAX - prefix + 1);   /* exactly KEY_MAX bytes fits */
    assert_int_equal(canon_generic(rest, KEY_MAX - prefix, NULL), CANON_OK);
    assert_int_equal(cn.key_len, KEY_MAX);
    assert_int_equal(canon_generic(rest, KEY_MAX - prefix + 1, NULL), CANON_ERR_TOO_LONG);
    memset(rest, ' ', KEY_MAX / 2);        /* escaping can make a short input too long */
    expect_error(rest, KEY_MAX / 2, CANON_ERR_TOO_LONG);
    memset(rest, 'a', KEY_MAX - prefix);   /* the trailing '/' counts */
    rest[KEY_MAX - prefix] = '/';
    expect_error(rest, KEY_MAX - prefix + 1, CANON_ERR_TOO_LONG);
    assert_int_equal(canon_generic(rest, KEY_MAX - prefix - 2, "b"), CANON_OK);   /* and the query */
    assert_int_equal(canon_generic(rest, KEY_MAX - prefix - 2, "bc"), CANON_ERR_TOO_LONG);
}

/* --------------------------------------------------------------- query */

static void test_query(void **state)
{
    (void)state;
    assert_int_equal(canon_generic(SL_LIT("a/b"), "x=1"), CANON_OK);
    assert_string_equal(cn.key, "generic:a/b?x=1");
    assert_int_equal(canon_generic(SL_LIT("a/b"), ""), CANON_OK);   /* empty query: no '?' */
    assert_string_equal(cn.key, "generic:a/b");
    /* escapes upper-cased, never decoded; order and '+' kept */
    assert_int_equal(canon_generic(SL_LIT("a"), "b=%2f&a=%41+x&&c"), CANON_OK);
    assert_string_equal(cn.key, "generic:a?b=%2F&a=%41+x&&c");
    assert_int_equal(canon_generic(SL_LIT("a"), "?q/../x"), CANON_OK);
    assert_string_equal(cn.key, "generic:a??q/../x");
    /* raw bytes outside the query characters are escaped */
    assert_int_equal(canon_generic(SL_LIT("a"), "q=a b\"\xc3\xa4"), CANON_OK);
    assert_string_equal(cn.key, "generic:a?q=a%20b%22%C3%A4");
    static const struct { const char *q; int err; } bad[] = {
        { "x\ny", CANON_ERR_CONTROL }, { "x\x7f", CANON_ERR_CONTROL }, { "x=%00", CANON_ERR_CONTROL },
        { "x#y", CANON_ERR_CHAR }, { "x=%zz", CANON_ERR_ESCAPE }, { "x=%4", CANON_ERR_ESCAPE },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(canon_generic(SL_LIT("a"), bad[i].q), bad[i].err);
    /* ignored queries are not inspected */
    assert_int_equal(canon_request(&rt.routes[1], SL_LIT("/noq/a"), SL_LIT("x\ny"), NULL, 0, &cn), CANON_OK);
    /* only query_len bytes are used */
    assert_int_equal(canon_request(&rt.routes[0], SL_LIT("/generic/a"), "x=1&y", 3, NULL, 0, &cn), CANON_OK);
    assert_string_equal(cn.key, "generic:a?x=1");
}

/* The bounds checked before any canonical work: the raw target's length
 * (the '?' counts when there is a query) and its segment count. */
static void test_check_size(void **state)
{
    (void)state;
    static char slashes[8300];
    const struct canon_limits lim = { 100, 4 };
    assert_int_equal(canon_check_size("/a/b/c/d", 8, NULL, 0, &lim), CANON_OK);
    assert_int_equal(canon_check_size("/a/b/c/d/", 9, NULL, 0, &lim), CANON_ERR_SEGMENTS);
    assert_int_equal(canon_check_size("/a//b", 5, "", 0, &lim), CANON_OK);   /* empty ones count */
    assert_int_equal(canon_check_size("/////", 5, NULL, 0, &lim), CANON_ERR_SEGMENTS);
    assert_int_equal(canon_check_size("/x", 2, "q", 97, &lim), CANON_OK);     /* 2 + 1 + 97 */
    assert_int_equal(canon_check_size("/x", 2, "q", 98, &lim), CANON_ERR_TARGET);
    assert_int_equal(canon_check_size("", 0, NULL, 0, &lim), CANON_OK);
    /* The request: 8200 slashes, refused on length before segments. */
    memset(slashes, '/', sizeof(slashes));
    const struct canon_limits dflt = { 8192, 128 };
    assert_int_equal(canon_check_size(slashes, 8200, NULL, 0, &dflt), CANON_ERR_TARGET);
    assert_int_equal(canon_check_size(slashes, 8000, NULL, 0, &dflt), CANON_ERR_SEGMENTS);
    assert_int_equal(canon_check_size(slashes, 128, NULL, 0, &dflt), CANON_OK);
    assert_int_equal(canon_check_size(slashes, 129, NULL, 0, &dflt), CANON_ERR_SEGMENTS);
    assert_int_equal(canon_err_status(CANON_ERR_TARGET), 414);
    assert_int_equal(canon_err_status(CANON_ERR_SEGMENTS), 414);
    assert_non_null(strstr(canon_strerror(CANON_ERR_TARGET), "request_target_max"));
    assert_non_null(strstr(canon_strerror(CANON_ERR_SEGMENTS), "request_segments_max"));
}

static void test_strerror_and_status(void **state)
{
    (void)state;
    assert_string_equal(canon_strerror(CANON_OK), "ok");
    assert_non_null(strstr(canon_strerror(CANON_ERR_TRAVERSAL), "traversal"));
    assert_non_null(strstr(canon_strerror(CANON_ERR_SEPARATOR), "encoded '/'"));
    assert_non_null(strstr(canon_strerror(CANON_ERR_UTF8), "UTF-8"));
    assert_non_null(strstr(canon_strerror(-99), "bad request"));
    assert_int_equal(canon_err_status(CANON_ERR_EMPTY), 404);
    assert_int_equal(canon_err_status(CANON_ERR_TOO_LONG), 414);
    assert_int_equal(canon_err_status(CANON_ERR_UTF8), 400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalisation_table),
        cmocka_unit_test(test_key_and_origin_url_come_from_one_form),
        cmocka_unit_test(test_hash_is_of_the_key),
        cmocka_unit_test(test_idempotent),
        cmocka_unit_test(test_traversal),
        cmocka_unit_test(test_separators),
        cmocka_unit_test(test_escapes_and_controls),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_empty_and_too_long),
        cmocka_unit_test(test_query),
        cmocka_unit_test(test_check_size),
        cmocka_unit_test(test_strerror_and_status),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
