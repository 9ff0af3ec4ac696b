/*
 * test_npm.c - the npm ecosystem (eco/npm.c): which paths are packuments,
 * tarballs or never cached; "@scope%2fname" and "@scope/name" being one
 * key; the abbreviated ("corgi") representation as its own key; the origin
 * URL of a scoped packument; and the dist.tarball rewriting of both
 * representations.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "eco_fixture.h"

#define CORGI "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"

static int setup(void **state)
{
    (void)state;
    static const char *const settings[] = { "origin_npm=http://127.0.0.1:9000/npm-proxy/", NULL };
    fx_routes("/npm/ npm\n", settings);
    return 0;
}

static void test_classes(void **state)
{
    (void)state;
    static const struct fx_class cases[] = {
        { "npm", "/npm/left-pad", ECO_METADATA },
        { "npm", "/npm/@babel/core", ECO_METADATA },
        { "npm", "/npm/@babel%2fcore", ECO_METADATA },
        { "npm", "/npm/@babel%2Fcore", ECO_METADATA },
        { "npm", "/npm/left-pad/-/left-pad-1.3.0.tgz", ECO_IMMUTABLE },
        { "npm", "/npm/@babel/core/-/core-7.0.0.tgz", ECO_IMMUTABLE },
        { "npm", "/npm/-/v1/search", ECO_NEVER },
        { "npm", "/npm/-/whoami", ECO_NEVER },
        { "npm", "/npm/-/package/left-pad/dist-tags", ECO_NEVER },
        { "npm", "/npm/left-pad/1.3.0", ECO_NEVER },
        { "npm", "/npm/left-pad/latest", ECO_NEVER },
        { "npm", "/npm/left-pad/-/sub/left-pad-1.3.0.tgz", ECO_NEVER },
        { "npm", "/npm/left-pad/-/left-pad-1.3.0.tar", ECO_NEVER },
        { "npm", "/npm/left-pad/-/.tgz", ECO_NEVER },
        { "npm", "/npm/@babel", ECO_NEVER },
        { "npm", "/npm/@/core", ECO_NEVER },
        { "npm", "/npm/@babel/", ECO_NEVER },
        { "npm", "/npm/.bin", ECO_NEVER },
        { "npm", "/npm/_session", ECO_NEVER },
    };
    fx_assert_classes(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_scoped_spellings_are_one_key(void **state)
{
    (void)state;
    static const char *spellings[] = { "/npm/@babel%2fcore", "/npm/@babel%2Fcore", "/npm/@babel/core" };
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(fx_canon("npm", spellings[i], NULL), CANON_OK);
        assert_string_equal(fx_cn.key, "npm:@babel/core");
        /* the registry is asked the way every registry answers */
        assert_string_equal(fx_origin_url(), "http://127.0.0.1:9000/npm-proxy/@babel%2fcore");
    }
    /* only the scope's own separator is npm's; any other %2f stays refused */
    assert_int_equal(fx_canon("npm", "/npm/left%2fpad", NULL), CANON_ERR_SEPARATOR);
    assert_int_equal(fx_canon("npm", "/npm/@babel%2fcore%2fx", NULL), CANON_ERR_SEPARATOR);
    /* a scoped tarball keeps its path */
    assert_int_equal(fx_canon("npm", "/npm/@babel/core/-/core-7.0.0.tgz", NULL), CANON_OK);
    assert_string_equal(fx_origin_url(), "http://127.0.0.1:9000/npm-proxy/@babel/core/-/core-7.0.0.tgz");
}

static void test_corgi_is_its_own_representation(void **state)
{
    (void)state;
    const struct eco *e = eco_find("npm", 3);
    assert_int_equal(fx_canon("npm", "/npm/left-pad", CORGI), CANON_OK);
    assert_string_equal(fx_cn.key, "npm:left-pad|corgi");
    assert_string_equal(fx_cn.variant, "corgi");
    assert_non_null(strstr(e->variant_accept(&fx_cn), "application/vnd.npm.install-v1+json"));
    uint8_t corgi_hash[KEY_HASH_LEN];
    memcpy(corgi_hash, fx_cn.hash, sizeof(corgi_hash));

    assert_int_equal(fx_canon("npm", "/npm/left-pad", "application/json"), CANON_OK);
    assert_string_equal(fx_cn.key, "npm:left-pad");
    assert_null(fx_cn.variant);
    assert_string_equal(e->variant_accept(&fx_cn), "application/json");
    assert_memory_not_equal(corgi_hash, fx_cn.hash, sizeof(corgi_hash));

    assert_int_equal(fx_canon("npm", "/npm/left-pad", NULL), CANON_OK);
    assert_string_equal(fx_cn.key, "npm:left-pad");

    /* a tarball has one representation whatever the client accepts */
    assert_int_equal(fx_canon("npm", "/npm/left-pad/-/left-pad-1.3.0.tgz", CORGI), CANON_OK);
    assert_string_equal(fx_cn.key, "npm:left-pad/-/left-pad-1.3.0.tgz");
}

static void test_tarballs_point_at_the_edge(void **state)
{
    (void)state;
    static const char doc[] =
        "{\"name\":\"left-pad\",\"dist-tags\":{\"latest\":\"1.3.0\"},\n"
        " \"versions\": {\n"
        "  \"1.3.0\": {\"dist\": {\"tarball\": \"http://127.0.0.1:9000/npm-proxy/left-pad/-/left-pad-1.3.0.tgz\","
        " \"shasum\": \"abc\"}, \"tarball\": \"http://not-this.example/x.tgz\"},\n"
        "  \"1.2.0\": {\"dist\": {\"integrity\": \"sha512-x\", \"tarball\": \"https://cdn.example/left-pad/-/left-pad-1.2.0.tgz\"}}\n"
        " },\n"
        " \"readme\": \"see http://127.0.0.1:9000/npm-proxy/left-pad/-/left-pad-1.3.0.tgz\"}";
    static const char want[] =
        "{\"name\":\"left-pad\",\"dist-tags\":{\"latest\":\"1.3.0\"},\n"
        " \"versions\": {\n"
        "  \"1.3.0\": {\"dist\": {\"tarball\": \"https://edge.example:8443/npm/left-pad/-/left-pad-1.3.0.tgz\","
        " \"shasum\": \"abc\"}, \"tarball\": \"http://not-this.example/x.tgz\"},\n"
        "  \"1.2.0\": {\"dist\": {\"integrity\": \"sha512-x\", \"tarball\": \"https://edge.example:8443/npm/left-pad/-/left-pad-1.2.0.tgz\"}}\n"
        " },\n"
        " \"readme\": \"see http://127.0.0.1:9000/npm-proxy/left-pad/-/left-pad-1.3.0.tgz\"}";
    assert_int_equal(fx_canon("npm", "/npm/left-pad", NULL), CANON_OK);
    assert_string_equal(fx_rewritten(doc, "https://edge.example:8443"), want);
    /* the abbreviated document has the same dist.tarball place */
    assert_int_equal(fx_canon("npm", "/npm/left-pad", CORGI), CANON_OK);
    assert_string_equal(fx_rewritten(doc, "https://edge.example:8443"), want);
}

static void test_odd_tarball_values_are_kept(void **state)
{
    (void)state;
    /* no scheme, no path, a number: nothing the edge could serve */
    static const char doc[] = "{\"versions\":{\"1\":{\"dist\":{\"tarball\":\"left-pad.tgz\"}},"
                              "\"2\":{\"dist\":{\"tarball\":\"https://host.example\"}},"
                              "\"3\":{\"dist\":{\"tarball\":7}}}}";
    assert_int_equal(fx_canon("npm", "/npm/left-pad", NULL), CANON_OK);
    assert_string_equal(fx_rewritten(doc, "http://127.0.0.1:8080"), doc);
    /* a quote in a path comes out escaped, never as the end of the string */
    static const char quoted[] = "{\"versions\":{\"1\":{\"dist\":{\"tarball\":\"http://h/a\\\"b.tgz\"}}}}";
    assert_string_equal(fx_rewritten(quoted, "http://127.0.0.1:8080"),
                        "{\"versions\":{\"1\":{\"dist\":{\"tarball\":\"http://127.0.0.1:8080/npm/a\\\"b.tgz\"}}}}");
}

/* Each tarball's digest is noted under its edge key, paired with the
 * integrity (else the shasum) of its own dist object, whatever the order
 * of the keys in it, and never with a neighbour's. */
static void test_digests_are_noted_by_tarball(void **state)
{
    (void)state;
    static const char doc[] =
        "{\"versions\": {\n"
        "  \"1.0.0\": {\"dist\": {\"tarball\": \"http://127.0.0.1:9000/npm-proxy/p/-/p-1.0.0.tgz\","
        " \"shasum\": \"0123456789abcdef0123456789abcdef01234567\"}},\n"
        "  \"2.0.0\": {\"dist\": {\"integrity\": \"sha1-ASNFZ4mrze8BI0VniavN7wEjRWc= "
        "sha512-q83vEqvN7xKrze8Sq83vEqvN7xKrze8Sq83vEqvN7xKrze8Sq83vEqvN7xKrze8Sq83vEqvN7xKrze8Sq83vEg==\","
        " \"tarball\": \"http://127.0.0.1:9000/npm-proxy/p/-/p-2.0.0.tgz\"}},\n"
        "  \"3.0.0\": {\"dist\": {\"tarball\": \"http://127.0.0.1:9000/npm-proxy/p/-/p-3.0.0.tgz\"}},\n"
        "  \"4.0.0\": {\"dist\": {\"integrity\": \"not a digest\","
        " \"tarball\": \"http://127.0.0.1:9000/npm-proxy/p/-/p-4.0.0.tgz\"}}\n"
        "}}";
    assert_int_equal(fx_canon("npm", "/npm/p", NULL), CANON_OK);
    fx_rewritten(doc, "http://127.0.0.1:8080");
    assert_string_equal(fx_noted("npm", "/npm/p/-/p-1.0.0.tgz"), "0123456789abcdef0123456789abcdef01234567");
    /* the strongest of the list; a note keeps the first 32 bytes of a sha512 */
    assert_string_equal(fx_noted("npm", "/npm/p/-/p-2.0.0.tgz"),
                        "abcdef12abcdef12abcdef12abcdef12abcdef12abcdef12abcdef12abcdef12");
    assert_string_equal(fx_noted("npm", "/npm/p/-/p-3.0.0.tgz"), "");
    assert_string_equal(fx_noted("npm", "/npm/p/-/p-4.0.0.tgz"), "");
}

static void test_not_json_is_refused(void **state)
{
    (void)state;
    struct sl_buf out = { 0 };
    assert_int_equal(fx_canon("npm", "/npm/left-pad", NULL), CANON_OK);
    assert_int_equal(fx_rewrite("<html>oops</html>", 4, "http://127.0.0.1:8080", &out), -1);
    assert_int_equal(fx_rewrite("{\"versions\":{", 100, "http://127.0.0.1:8080", &out), -1);
    sl_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classes),
        cmocka_unit_test(test_scoped_spellings_are_one_key),
        cmocka_unit_test(test_corgi_is_its_own_representation),
        cmocka_unit_test(test_tarballs_point_at_the_edge),
        cmocka_unit_test(test_odd_tarball_values_are_kept),
        cmocka_unit_test(test_digests_are_noted_by_tarball),
        cmocka_unit_test(test_not_json_is_refused),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
