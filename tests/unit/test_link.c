/*
 * test_link.c - re-pointing document links from one base to another
 * (eco/link.h): absolute links under or not under the base (scheme, host
 * case, default and explicit ports, a path prefix against a mere string
 * prefix, credentials, dot segments), relative links resolved against the
 * page, the query kept and the fragment dropped, a base with and without a
 * path, and links refused rather than guessed at.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "eco/link.h"

#define PAGE "https://pypi.org/simple/demo/"
#define FROM "https://files.example/pypi"
#define TO "http://127.0.0.1:8080/pypi-files"

static struct sl_buf out;

/* link_rebase of link against page from `from` to TO; out has the result. */
static int rebase_from(const char *page, const char *link, const char *from)
{
    sl_buf_free(&out);
    sl_buf_append_str(&out, "prefix:");
    int rc = link_rebase(page, link, strlen(link), from, TO, &out);
    if (rc != 1 && strcmp((const char *)out.data, "prefix:") != 0)
        fail_msg("%s: out changed to %s though the result is %d", link, (const char *)out.data, rc);
    return rc;
}

static int rebase(const char *link)
{
    return rebase_from(PAGE, link, FROM);
}

static const char *got(void)
{
    return (const char *)out.data + SL_LIT_LEN("prefix:");
}

static int teardown(void **state)
{
    (void)state;
    sl_buf_free(&out);
    return 0;
}

static void test_absolute_under_base(void **state)
{
    (void)state;
    assert_int_equal(rebase("https://files.example/pypi/ab/cd/x-1.0.whl"), 1);
    assert_string_equal(got(), TO "/ab/cd/x-1.0.whl");
    assert_int_equal(rebase("HTTPS://FILES.Example/pypi/x.whl"), 1);   /* scheme and host case */
    assert_string_equal(got(), TO "/x.whl");
    assert_int_equal(rebase("https://files.example:443/pypi/x.whl"), 1);   /* explicit default port */
    assert_string_equal(got(), TO "/x.whl");
    assert_int_equal(rebase("https://files.example/pypi"), 1);   /* the base itself */
    assert_string_equal(got(), TO);
    assert_int_equal(rebase("https://files.example/pypi/"), 1);
    assert_string_equal(got(), TO "/");
    assert_int_equal(rebase("//files.example/pypi/x.whl"), 1);   /* scheme-relative */
    assert_string_equal(got(), TO "/x.whl");
    assert_int_equal(rebase("https://files.example/pypi/a/../b/./x.whl"), 1);   /* dot segments removed */
    assert_string_equal(got(), TO "/b/x.whl");
}

static void test_absolute_not_under_base(void **state)
{
    (void)state;
    assert_int_equal(rebase("http://files.example/pypi/x.whl"), 0);    /* scheme */
    assert_int_equal(rebase("https://files.example:8443/pypi/x.whl"), 0);   /* port */
    assert_int_equal(rebase("https://files.example:80/pypi/x.whl"), 0);
    assert_int_equal(rebase("https://other.example/pypi/x.whl"), 0);   /* host */
    assert_int_equal(rebase("https://files.example.evil/pypi/x.whl"), 0);
    assert_int_equal(rebase("https://files.example/pypi-other/x.whl"), 0);   /* a mere string prefix */
    assert_int_equal(rebase("https://files.example/pypix"), 0);
    assert_int_equal(rebase("https://files.example/PyPI/x.whl"), 0);   /* paths are case-sensitive */
    assert_int_equal(rebase("https://files.example/x.whl"), 0);
    assert_int_equal(rebase("https://files.example/pypi/../secret"), 0);   /* no climbing out */
    assert_int_equal(rebase("https://user@files.example/pypi/x.whl"), 0);   /* credentials: left alone */
    assert_int_equal(rebase("https://user:pw@files.example/pypi/x.whl"), 0);
    assert_int_equal(rebase("ftp://files.example/pypi/x.whl"), 0);
}

static void test_default_ports(void **state)
{
    (void)state;
    assert_int_equal(rebase_from(PAGE, "http://files.example:80/x.whl", "http://files.example"), 1);
    assert_string_equal(got(), TO "/x.whl");
    assert_int_equal(rebase_from(PAGE, "http://files.example/x.whl", "http://files.example:80"), 1);
    assert_int_equal(rebase_from(PAGE, "http://files.example:8080/x.whl", "http://files.example"), 0);
    assert_int_equal(rebase_from(PAGE, "http://files.example:8080/x.whl", "http://files.example:8080"), 1);
    assert_int_equal(rebase_from(PAGE, "https://files.example/x.whl", "https://files.example:443"), 1);
    assert_int_equal(rebase_from(PAGE, "http://[::1]:9000/p/x.whl", "http://[::1]:9000/p"), 1);
    assert_string_equal(got(), TO "/x.whl");
}

static void test_relative_links(void **state)
{
    (void)state;
    const char *page = "http://127.0.0.1:9000/simple/demo/";
    const char *from = "http://127.0.0.1:9000/packages";
    assert_int_equal(rebase_from(page, "../../packages/x.whl", from), 1);
    assert_string_equal(got(), TO "/x.whl");
    assert_int_equal(rebase_from(page, "/packages/ab/x.whl", from), 1);
    assert_string_equal(got(), TO "/ab/x.whl");
    assert_int_equal(rebase_from(page, "../../packages/../../packages/x.whl", from), 1);
    assert_string_equal(got(), TO "/x.whl");
    assert_int_equal(rebase_from(page, "x.whl", from), 0);   /* /simple/demo/x.whl */
    assert_int_equal(rebase_from(page, "../../other/x.whl", from), 0);
    assert_int_equal(rebase_from(page, "x.whl", "http://127.0.0.1:9000/simple"), 1);
    assert_string_equal(got(), TO "/demo/x.whl");
    assert_int_equal(rebase_from(page, "", "http://127.0.0.1:9000/simple"), 1);   /* the page itself */
    assert_string_equal(got(), TO "/demo/");
    assert_int_equal(rebase_from(page, "https://files.example/pypi/x.whl", FROM), 1);   /* absolute anyway */
}

static void test_query_and_fragment(void **state)
{
    (void)state;
    assert_int_equal(rebase("https://files.example/pypi/x.whl?a=1&b=%20"), 1);
    assert_string_equal(got(), TO "/x.whl?a=1&b=%20");
    assert_int_equal(rebase("https://files.example/pypi/x.whl#sha256=abcd"), 1);
    assert_string_equal(got(), TO "/x.whl");   /* the caller appends the fragment */
    assert_int_equal(rebase("https://files.example/pypi/x.whl?q#f"), 1);
    assert_string_equal(got(), TO "/x.whl?q");
    assert_int_equal(rebase_from("https://files.example/pypi/d/", "x.whl?v=2#sha256=ab", FROM), 1);
    assert_string_equal(got(), TO "/d/x.whl?v=2");
}

static void test_base_with_and_without_path(void **state)
{
    (void)state;
    assert_int_equal(rebase_from(PAGE, "https://files.example/packages/x.whl", "https://files.example"), 1);
    assert_string_equal(got(), TO "/packages/x.whl");
    assert_int_equal(rebase_from(PAGE, "https://files.example/a/b/c/x.whl", "https://files.example/a/b"), 1);
    assert_string_equal(got(), TO "/c/x.whl");
    assert_int_equal(rebase_from(PAGE, "https://files.example/a/bc/x.whl", "https://files.example/a/b"), 0);
}

static void test_bad_links(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "https://files.example/pypi/a b.whl", " https://files.example/pypi/x.whl",
        "https://files.example/pypi/x.whl\n", "https://files.example/pypi/\tx.whl",
        "https://files.example/pypi/x\x01.whl", "https://files.example/pypi/x\x7f.whl",
        "https://files.example/pypi/caf\xc3\xa9.whl", "https://files.example/pypi\\..\\x.whl",
        "https://files.example:99999/pypi/x.whl", "javascript:alert(1)", "https:x.whl", "http://",
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++)
        if (rebase(bad[i]) != -1)
            fail_msg("'%s' should be refused", bad[i]);
    sl_buf_free(&out);
    assert_int_equal(link_rebase(PAGE, "https://files.example/pypi/x\0.whl", 33, FROM, TO, &out), -1);
    assert_int_equal(out.len, 0);
    assert_int_equal(link_rebase("not a url", "x.whl", 5, FROM, TO, &out), -1);
    assert_int_equal(link_rebase(PAGE, "https://files.example/pypi/x.whl", 32, "no base", TO, &out), -1);
    assert_int_equal(out.len, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_absolute_under_base),
        cmocka_unit_test(test_absolute_not_under_base),
        cmocka_unit_test(test_default_ports),
        cmocka_unit_test(test_relative_links),
        cmocka_unit_test(test_query_and_fragment),
        cmocka_unit_test(test_base_with_and_without_path),
        cmocka_unit_test(test_bad_links),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
