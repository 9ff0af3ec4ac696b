/*
 * test_key.c - key normalisation, rejection of hostile paths, hashing and
 * the on-disk layout.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store/key.h"

static char out[KEY_MAX + 1];

static int build(const char *route, const char *rest, const char *query, int with_query)
{
    return key_build(route, rest, strlen(rest), query, query ? strlen(query) : 0, with_query,
                     out);
}

/* ------------------------------------------------------ normalisation */

static void test_normalisation_table(void **state)
{
    (void)state;
    static const struct {
        const char *rest;
        const char *key;
    } cases[] = {
        { "left-pad/-/left-pad-1.3.0.tgz", "npm:left-pad/-/left-pad-1.3.0.tgz" },
        /* unreserved escapes are decoded, whatever the case of the hex */
        { "%61%62%63", "npm:abc" },
        { "%41%5a%30%39", "npm:AZ09" },
        { "%2D%2e%5F%7E", "npm:-._~" },
        { "%7e%7E", "npm:~~" },
        /* other escapes are kept, hex upper-cased */
        { "@scope%2fname", "npm:@scope%2Fname" },
        { "@scope%2Fname", "npm:@scope%2Fname" },
        { "a%20b", "npm:a%20b" },
        { "%c3%a4", "npm:%C3%A4" },
        { "%25", "npm:%25" },
        { "%3f%23", "npm:%3F%23" },
        { "%ff", "npm:%FF" },
        { "%80", "npm:%80" },
        /* empty segments dropped, a trailing '/' kept */
        { "a//b", "npm:a/b" },
        { "a///b////c", "npm:a/b/c" },
        { "/a/b", "npm:a/b" },
        { "//a", "npm:a" },
        { "a/b/", "npm:a/b/" },
        { "a/b//", "npm:a/b/" },
        { "simple/requests/", "npm:simple/requests/" },
        /* dots that are not a whole segment are ordinary */
        { "...", "npm:..." },
        { "a..b", "npm:a..b" },
        { ".hidden", "npm:.hidden" },
        { "x/..a/b..", "npm:x/..a/b.." },
        { "..%2F..", "npm:..%2F.." }, /* one segment, not a traversal here */
        /* RFC 3986 path characters kept as they are */
        { "a:b@c!$&'()*+,;=", "npm:a:b@c!$&'()*+,;=" },
        /* bytes that cannot be in a path are escaped, so both spellings agree */
        { "a b", "npm:a%20b" },
        { "\xc3\xa4", "npm:%C3%A4" },
        { "a\"b<c>d", "npm:a%22b%3Cc%3Ed" },
        { "[x]{y}|^`", "npm:%5Bx%5D%7By%7D%7C%5E%60" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int n = build("npm", cases[i].rest, NULL, 0);
        if (n < 0)
            fail_msg("'%s' failed: %s", cases[i].rest, key_strerror(n));
        if (strcmp(out, cases[i].key) != 0)
            fail_msg("'%s' gave '%s', want '%s'", cases[i].rest, out, cases[i].key);
        assert_int_equal(n, (int)strlen(cases[i].key));
    }
}

static void test_equivalent_spellings(void **state)
{
    (void)state;
    char a[KEY_MAX + 1];
    assert_true(build("generic", "dir/%66ile.tar.gz", NULL, 0) > 0);
    strcpy(a, out);
    assert_true(build("generic", "dir//file.tar.gz", NULL, 0) > 0);
    assert_string_equal(a, out);
    assert_true(build("generic", "/dir/fil%65.tar.gz", NULL, 0) > 0);
    assert_string_equal(a, out);
    /* but an encoded slash is a different object */
    assert_true(build("generic", "dir%2Ffile.tar.gz", NULL, 0) > 0);
    assert_string_not_equal(a, out);
    /* and so is a trailing slash */
    assert_true(build("generic", "dir/file.tar.gz/", NULL, 0) > 0);
    assert_string_not_equal(a, out);
}

static void test_idempotent(void **state)
{
    (void)state;
    static const char *inputs[] = {
        "a%2fb/%41/x y/\xff/.../", "simple/x/", "@s%2Fn", "%7e/~/%25/%2525",
    };
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        int n = build("generic", inputs[i], NULL, 0);
        assert_true(n > 0);
        char first[KEY_MAX + 1];
        strcpy(first, out);
        const char *path = strchr(first, ':') + 1;
        assert_int_equal(build("generic", path, NULL, 0), n);
        assert_string_equal(out, first);
    }
}

/* ---------------------------------------------------------- rejections */

static void expect_error(const char *rest, size_t rest_len, int want)
{
    memset(out, 'x', 16);
    int rc = key_build("generic", rest, rest_len, NULL, 0, 0, out);
    if (rc != want)
        fail_msg("'%.*s' gave %d (%s), want %d (%s)", (int)rest_len, rest, rc,
                 rc < 0 ? key_strerror(rc) : out, want, key_strerror(want));
    assert_string_equal(out, ""); /* no half-built key left behind */
}

static void test_traversal(void **state)
{
    (void)state;
    static const char *cases[] = {
        "..", ".", "../etc/passwd", "a/../b", "a/..", "a/./b", "./a", "a/.",
        "%2e%2e", "%2E%2E", "%2e%2E", ".%2e", "%2e.", ".%2E/x", "a/%2e%2e/b", "%2e",
        "a/%2E", "a//..//b", "../", "a/../",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_error(cases[i], strlen(cases[i]), KEY_ERR_TRAVERSAL);
}

static void test_bad_path(void **state)
{
    (void)state;
    static const char *cases[] = {
        "a%00b", "%00", "a\\b", "..\\..\\x", "a%5cb", "a%5Cb", "a\tb", "a\rb", "a\nb",
        "a\x01", "a\x7f", "%0a", "%0D%0A", "%1f", "%7f", "%7F", "a%4", "a%", "%", "%zz",
        "%4g", "%g4", "a%2", "a?b", "a#b", "x/%%41",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_error(cases[i], strlen(cases[i]), KEY_ERR_BAD_PATH);
    /* a raw NUL inside the given length */
    expect_error("a\0b", 3, KEY_ERR_BAD_PATH);
    /* the length is respected: a bad byte past it does not count */
    assert_true(key_build("generic", "ab\\c", 2, NULL, 0, 0, out) > 0);
    assert_string_equal(out, "generic:ab");
    /* an escape cut by the length is malformed */
    expect_error("a%41", 3, KEY_ERR_BAD_PATH);
}

static void test_empty(void **state)
{
    (void)state;
    expect_error("", 0, KEY_ERR_EMPTY);
    expect_error("/", 1, KEY_ERR_EMPTY);
    expect_error("////", 4, KEY_ERR_EMPTY);
    assert_int_equal(key_build("generic", NULL, 0, NULL, 0, 0, out), KEY_ERR_EMPTY);
    /* a query alone is not an object */
    assert_int_equal(key_build("generic", "", 0, "a=1", 3, 1, out), KEY_ERR_EMPTY);
}

static void test_bad_route(void **state)
{
    (void)state;
    static const char *routes[] = { "", "NPM", "a:b", "a b", "a/b", "npm\n",
                                    "abcdefghijabcdefghijabcdefghij12" };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        assert_int_equal(key_build(routes[i], "x", 1, NULL, 0, 0, out), KEY_ERR_BAD_ROUTE);
    assert_true(key_build("pypi_files2", "x", 1, NULL, 0, 0, out) > 0);
    assert_string_equal(out, "pypi_files2:x");
}

/* -------------------------------------------------------------- lengths */

static void test_too_long(void **state)
{
    (void)state;
    static char rest[KEY_MAX + 100];
    const size_t prefix = strlen("generic:");
    /* exactly KEY_MAX bytes fits */
    memset(rest, 'a', KEY_MAX - prefix);
    rest[KEY_MAX - prefix] = '\0';
    assert_int_equal(build("generic", rest, NULL, 0), KEY_MAX);
    assert_int_equal(strlen(out), KEY_MAX);
    /* one more does not */
    rest[KEY_MAX - prefix] = 'a';
    rest[KEY_MAX - prefix + 1] = '\0';
    expect_error(rest, strlen(rest), KEY_ERR_TOO_LONG);
    /* escaping can make a short input too long */
    for (size_t i = 0; i < KEY_MAX / 2; i++)
        rest[i] = ' ';
    rest[KEY_MAX / 2] = '\0';
    expect_error(rest, strlen(rest), KEY_ERR_TOO_LONG);
    /* the trailing '/' counts */
    memset(rest, 'a', KEY_MAX - prefix);
    rest[KEY_MAX - prefix] = '/';
    rest[KEY_MAX - prefix + 1] = '\0';
    expect_error(rest, strlen(rest), KEY_ERR_TOO_LONG);
    /* and the query too */
    memset(rest, 'a', KEY_MAX - prefix - 2);
    rest[KEY_MAX - prefix - 2] = '\0';
    assert_int_equal(build("generic", rest, "b", 1), KEY_MAX);
    assert_int_equal(build("generic", rest, "bc", 1), KEY_ERR_TOO_LONG);
}

/* --------------------------------------------------------------- query */

static void test_query(void **state)
{
    (void)state;
    assert_true(build("generic", "a/b", "x=1", 1) > 0);
    assert_string_equal(out, "generic:a/b?x=1");
    assert_true(build("generic", "a/b", "x=1", 0) > 0); /* route does not key on it */
    assert_string_equal(out, "generic:a/b");
    assert_true(build("generic", "a/b", "", 1) > 0); /* empty query: no '?' */
    assert_string_equal(out, "generic:a/b");
    assert_true(build("generic", "a/b", NULL, 1) > 0);
    assert_string_equal(out, "generic:a/b");
    /* verbatim: no decoding, no reordering, no case change */
    assert_true(build("generic", "a", "b=%2f&a=%41+x&&c", 1) > 0);
    assert_string_equal(out, "generic:a?b=%2f&a=%41+x&&c");
    assert_true(build("generic", "a", "?q/../x", 1) > 0);
    assert_string_equal(out, "generic:a??q/../x");
    /* control characters, NUL and '#' would break the key's one-line form */
    assert_int_equal(build("generic", "a", "x\ny", 1), KEY_ERR_BAD_PATH);
    assert_int_equal(build("generic", "a", "x\x7f", 1), KEY_ERR_BAD_PATH);
    assert_int_equal(build("generic", "a", "x#y", 1), KEY_ERR_BAD_PATH);
    assert_int_equal(key_build("generic", "a", 1, "x\0y", 3, 1, out), KEY_ERR_BAD_PATH);
    /* ignored queries are not inspected */
    assert_true(build("generic", "a", "x\ny", 0) > 0);
    /* only query_len bytes are used */
    assert_true(key_build("generic", "a", 1, "x=1&y", 3, 1, out) > 0);
    assert_string_equal(out, "generic:a?x=1");
}

static void test_strerror(void **state)
{
    (void)state;
    assert_string_equal(key_strerror(KEY_OK), "ok");
    assert_non_null(strstr(key_strerror(KEY_ERR_TOO_LONG), "too long"));
    assert_non_null(strstr(key_strerror(KEY_ERR_TRAVERSAL), "traversal"));
    assert_non_null(strstr(key_strerror(KEY_ERR_BAD_PATH), "bad"));
    assert_non_null(strstr(key_strerror(KEY_ERR_EMPTY), "empty"));
    assert_non_null(strstr(key_strerror(KEY_ERR_BAD_ROUTE), "route"));
    assert_non_null(strstr(key_strerror(-99), "unknown"));
}

/* ------------------------------------------------------ hash and layout */

static void check_hash(const char *key, const char *want_hex)
{
    uint8_t hash[KEY_HASH_LEN];
    char hex[KEY_HEX_LEN + 1];
    char rel[96];
    char want_rel[96];
    key_hash(key, strlen(key), hash);
    key_hex(hash, hex);
    assert_string_equal(hex, want_hex);
    key_rel_path(hash, rel, sizeof(rel));
    snprintf(want_rel, sizeof(want_rel), "objects/%.2s/%.2s/%s", want_hex, want_hex + 2,
             want_hex);
    assert_string_equal(rel, want_rel);
}

static void test_hash_hex_path(void **state)
{
    (void)state;
    /* expected values: printf %s KEY | sha256sum */
    assert_true(build("npm", "left-pad/-/left-pad-1.3.0.tgz", NULL, 0) > 0);
    check_hash(out, "8bbee96edc0c97802b44a672c988de452fdd70f8461d250024527f6294ecefc7");
    assert_true(build("generic", "a//b", "x=1", 1) > 0);
    assert_string_equal(out, "generic:a/b?x=1");
    check_hash(out, "f555b76879acb90ad79e5ea8d0e09b21e011a9b681ecd24a8738d5ca943e24c6");
    check_hash("go:x", "370e080ef1966eff2df131aeeb5f3e87a2d44d96977e57b5f3aa6f470c545fa9");

    uint8_t hash[KEY_HASH_LEN];
    char rel[80];
    key_hash("go:x", 4, hash);
    key_rel_path(hash, rel, sizeof(rel)); /* the documented minimum is enough */
    assert_string_equal(rel, "objects/37/0e/"
                             "370e080ef1966eff2df131aeeb5f3e87a2d44d96977e57b5f3aa6f470c545fa9");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalisation_table),
        cmocka_unit_test(test_equivalent_spellings),
        cmocka_unit_test(test_idempotent),
        cmocka_unit_test(test_traversal),
        cmocka_unit_test(test_bad_path),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_bad_route),
        cmocka_unit_test(test_too_long),
        cmocka_unit_test(test_query),
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_hash_hex_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
