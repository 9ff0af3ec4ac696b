/*
 * test_pypi.c - the PyPI ecosystem (eco/pypi.c): the index's metadata
 * paths, the PEP 503 redirect to a project's normal name, the PEP 691
 * JSON representation as its own key, and the links of HTML and JSON pages
 * re-pointed at the edge (to the files route or back to the index route)
 * with every other byte kept.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "eco_fixture.h"

#define PEP691 "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
#define EDGE "http://127.0.0.1:8080"

static int setup(void **state)
{
    (void)state;
    static const char *const settings[] = { "origin_pypi=https://index.example/root",
                                            "origin_pypi_files=https://files.example", NULL };
    fx_routes("/pypi/files/ pypi_files\n/pypi/ pypi\n", settings);
    return 0;
}

static void test_classes(void **state)
{
    (void)state;
    static const struct fx_class cases[] = {
        { "pypi", "/pypi/simple/", ECO_METADATA },
        { "pypi", "/pypi/simple/demo-a/", ECO_METADATA },
        { "pypi", "/pypi/simple/Demo_A", ECO_METADATA },
        { "pypi", "/pypi/pypi/demo-a/json", ECO_METADATA },
        { "pypi", "/pypi/pypi/demo-a/1.0/json", ECO_METADATA },
        { "pypi", "/pypi/simple", ECO_NEVER },
        { "pypi", "/pypi/simple/demo-a/extra", ECO_NEVER },
        { "pypi", "/pypi/pypi//json", ECO_NEVER },
        { "pypi", "/pypi/legacy/", ECO_NEVER },
        { "pypi", "/pypi/search", ECO_NEVER },
        { "pypi", "/pypi/packages/ab/demo_a-1.0-py3-none-any.whl", ECO_IMMUTABLE },
        { "pypi", "/pypi/packages/ab/demo_a-1.0-py3-none-any.whl.metadata", ECO_IMMUTABLE },
        { "pypi", "/pypi/root/pypi/+f/0ab/demo_a-1.0.tar.gz", ECO_IMMUTABLE },
        { "pypi", "/pypi/packages/demo_a-1.0.zip", ECO_IMMUTABLE },
        { "pypi", "/pypi/packages/.whl", ECO_NEVER },
        { "pypi", "/pypi/packages/x.metadata", ECO_NEVER },
        { "pypi", "/pypi/packages/x.whl/", ECO_NEVER },
        { "pypi_files", "/pypi/files/packages/ab/cd/demo_a-1.0-py3-none-any.whl", ECO_IMMUTABLE },
        { "pypi_files", "/pypi/files/packages/ab/cd/demo_a-1.0-py3-none-any.whl.metadata", ECO_IMMUTABLE },
    };
    fx_assert_classes(cases, sizeof(cases) / sizeof(cases[0]));
}

/* The redirect target of path, or "" when it is already normal. */
static const char *redirect_of(const char *path)
{
    static struct sl_buf to;
    sl_buf_clear(&to);
    assert_int_equal(fx_canon("pypi", path, NULL), CANON_OK);
    if (!eco_find("pypi", 4)->redirect(&fx_cn, &to))
        return "";
    return (const char *)to.data;
}

static void test_normal_names(void **state)
{
    (void)state;
    assert_string_equal(redirect_of("/pypi/simple/demo-a/"), "");
    assert_string_equal(redirect_of("/pypi/simple/"), "");
    assert_string_equal(redirect_of("/pypi/simple/Demo_A/"), "simple/demo-a/");
    assert_string_equal(redirect_of("/pypi/simple/demo-a"), "simple/demo-a/");
    assert_string_equal(redirect_of("/pypi/simple/Zope.Interface"), "simple/zope-interface/");
    assert_string_equal(redirect_of("/pypi/simple/a--_.b/"), "simple/a-b/");
    assert_string_equal(redirect_of("/pypi/simple/a-/"), "");
    /* an escape's hex digits stay upper case, as canon writes them (a
     * lowered one was a redirect to itself; fuzz_classify found it) */
    assert_string_equal(redirect_of("/pypi/simple/%5Dx/"), "");
    assert_string_equal(redirect_of("/pypi/simple/]X"), "simple/%5Dx/");
    assert_string_equal(redirect_of("/pypi/pypi/Demo_A/json"), "");
}

static void test_json_is_its_own_representation(void **state)
{
    (void)state;
    const struct eco *e = eco_find("pypi", 4);
    assert_int_equal(fx_canon("pypi", "/pypi/simple/demo-a/", PEP691), CANON_OK);
    assert_string_equal(fx_cn.key, "pypi:simple/demo-a/|json");
    assert_string_equal(e->variant_accept(&fx_cn), "application/vnd.pypi.simple.v1+json");
    assert_int_equal(fx_canon("pypi", "/pypi/simple/demo-a/", "text/html"), CANON_OK);
    assert_string_equal(fx_cn.key, "pypi:simple/demo-a/");
    assert_string_equal(e->variant_accept(&fx_cn), "text/html");
    assert_string_equal(fx_origin_url(), "https://index.example/root/simple/demo-a/");
    /* the JSON API has one representation */
    assert_int_equal(fx_canon("pypi", "/pypi/pypi/demo-a/json", PEP691), CANON_OK);
    assert_string_equal(fx_cn.key, "pypi:pypi/demo-a/json");
    assert_null(e->variant_accept(&fx_cn));
    /* files keep no variant, whatever is asked */
    assert_int_equal(fx_canon("pypi_files", "/pypi/files/x.whl", PEP691), CANON_OK);
    assert_string_equal(fx_cn.key, "pypi_files:x.whl");
}

static void test_html_links(void **state)
{
    (void)state;
    static const char page[] =
        "<!DOCTYPE html><html><body>\n"
        "<a href=\"https://files.example/packages/ab/demo_a-1.0.tar.gz#sha256=00ff\" "
        "data-requires-python=\"&gt;=3.8\">demo_a-1.0.tar.gz</a><br/>\n"
        "<A HREF='../../packages/cd/demo_a-1.1-py3-none-any.whl#sha256=11'>whl</A>\n"
        "<a href=\"https://elsewhere.example/demo_a-2.0.tar.gz\">elsewhere</a>\n"
        "<a href=\"https://files.example/packages/x.tar.gz?a=1&amp;b=2\">query</a>\n"
        "<!-- <a href=\"https://files.example/comment\"> -->\n"
        "</body></html>\n";
    static const char want[] =
        "<!DOCTYPE html><html><body>\n"
        "<a href=\"" EDGE "/pypi/files/packages/ab/demo_a-1.0.tar.gz#sha256=00ff\" "
        "data-requires-python=\"&gt;=3.8\">demo_a-1.0.tar.gz</a><br/>\n"
        "<A HREF='" EDGE "/pypi/packages/cd/demo_a-1.1-py3-none-any.whl#sha256=11'>whl</A>\n"
        "<a href=\"https://elsewhere.example/demo_a-2.0.tar.gz\">elsewhere</a>\n"
        "<a href=\"" EDGE "/pypi/files/packages/x.tar.gz?a=1&amp;b=2\">query</a>\n"
        "<!-- <a href=\"https://files.example/comment\"> -->\n"
        "</body></html>\n";
    assert_int_equal(fx_canon("pypi", "/pypi/simple/demo-a/", NULL), CANON_OK);
    assert_string_equal(fx_rewritten(page, EDGE), want);
}

static void test_pep691_links(void **state)
{
    (void)state;
    static const char doc[] =
        "{\"meta\":{\"api-version\":\"1.1\"},\"name\":\"demo-a\",\"files\":["
        "{\"filename\":\"demo_a-1.0.tar.gz\",\"url\":\"https://files.example/packages/ab/demo_a-1.0.tar.gz#sha256=00\","
        "\"hashes\":{\"sha256\":\"00\"}},"
        "{\"filename\":\"x\",\"url\":\"https://elsewhere.example/x\"}],"
        "\"url\":\"https://files.example/not-a-file-url\"}";
    static const char want[] =
        "{\"meta\":{\"api-version\":\"1.1\"},\"name\":\"demo-a\",\"files\":["
        "{\"filename\":\"demo_a-1.0.tar.gz\",\"url\":\"" EDGE "/pypi/files/packages/ab/demo_a-1.0.tar.gz#sha256=00\","
        "\"hashes\":{\"sha256\":\"00\"}},"
        "{\"filename\":\"x\",\"url\":\"https://elsewhere.example/x\"}],"
        "\"url\":\"https://files.example/not-a-file-url\"}";
    assert_int_equal(fx_canon("pypi", "/pypi/simple/demo-a/", PEP691), CANON_OK);
    assert_string_equal(fx_rewritten(doc, EDGE), want);
}

static void test_json_api_links(void **state)
{
    (void)state;
    static const char doc[] =
        "{\"info\":{\"name\":\"demo-a\",\"project_url\":\"https://files.example/p\"},"
        "\"urls\":[{\"url\":\"https://files.example/packages/b.whl\"}],"
        "\"releases\":{\"1.0\":[{\"url\":\"https://files.example/packages/a.tar.gz\"}],\"0.1\":[]}}";
    static const char want[] =
        "{\"info\":{\"name\":\"demo-a\",\"project_url\":\"https://files.example/p\"},"
        "\"urls\":[{\"url\":\"" EDGE "/pypi/files/packages/b.whl\"}],"
        "\"releases\":{\"1.0\":[{\"url\":\"" EDGE "/pypi/files/packages/a.tar.gz\"}],\"0.1\":[]}}";
    assert_int_equal(fx_canon("pypi", "/pypi/pypi/demo-a/json", NULL), CANON_OK);
    assert_string_equal(fx_rewritten(doc, EDGE), want);
}

#define SHA_A "aa00000000000000000000000000000000000000000000000000000000000001"
#define SHA_B "bb00000000000000000000000000000000000000000000000000000000000002"

/* Each file's sha256 is noted under the edge key of its rewritten link:
 * from an HTML fragment, PEP 691's hashes, the JSON API's digests. */
static void test_digests_are_noted_by_file(void **state)
{
    (void)state;
    static const char page[] =
        "<a href=\"https://files.example/packages/h/a-1.0.tar.gz#sha256=" SHA_A "\">a</a>\n"
        "<a href=\"../../packages/h/a-1.1.tar.gz#md5=00\">no sha256</a>\n";
    assert_int_equal(fx_canon("pypi", "/pypi/simple/a/", NULL), CANON_OK);
    fx_rewritten(page, EDGE);
    assert_string_equal(fx_noted("pypi_files", "/pypi/files/packages/h/a-1.0.tar.gz"), SHA_A);
    assert_string_equal(fx_noted("pypi", "/pypi/packages/h/a-1.1.tar.gz"), "");

    static const char pep691[] =
        "{\"files\":[{\"hashes\":{\"sha256\":\"" SHA_B "\"},\"url\":\"https://files.example/packages/j/b.whl\"},"
        "{\"url\":\"https://files.example/packages/j/c.whl\",\"hashes\":{}}]}";
    assert_int_equal(fx_canon("pypi", "/pypi/simple/b/", PEP691), CANON_OK);
    fx_rewritten(pep691, EDGE);
    assert_string_equal(fx_noted("pypi_files", "/pypi/files/packages/j/b.whl"), SHA_B);
    assert_string_equal(fx_noted("pypi_files", "/pypi/files/packages/j/c.whl"), "");

    static const char api[] =
        "{\"releases\":{\"1.0\":[{\"url\":\"https://files.example/packages/k/d.whl\","
        "\"digests\":{\"md5\":\"00\",\"sha256\":\"" SHA_A "\"}}]}}";
    assert_int_equal(fx_canon("pypi", "/pypi/pypi/d/json", NULL), CANON_OK);
    fx_rewritten(api, EDGE);
    assert_string_equal(fx_noted("pypi_files", "/pypi/files/packages/k/d.whl"), SHA_A);
}

static void test_a_page_is_rewritten_as_what_it_is(void **state)
{
    (void)state;
    /* a static mirror answers HTML to pip's JSON Accept */
    static const char page[] = "\n  <a href=\"https://files.example/p/x.whl#sha256=1\">x</a>\n";
    static const char want[] = "\n  <a href=\"" EDGE "/pypi/files/p/x.whl#sha256=1\">x</a>\n";
    assert_int_equal(fx_canon("pypi", "/pypi/simple/demo-a/", PEP691), CANON_OK);
    assert_string_equal(fx_rewritten(page, EDGE), want);
    /* and JSON to a client that asked for HTML */
    static const char doc[] = " {\"files\":[{\"url\":\"https://files.example/p/x.whl\"}]}";
    assert_int_equal(fx_canon("pypi", "/pypi/simple/demo-a/", "text/html"), CANON_OK);
    assert_string_equal(fx_rewritten(doc, EDGE), " {\"files\":[{\"url\":\"" EDGE "/pypi/files/p/x.whl\"}]}");
    /* nothing, or only blanks: an empty page */
    assert_string_equal(fx_rewritten("", EDGE), "");
    assert_string_equal(fx_rewritten(" \n", EDGE), " \n");
}

static void test_bad_json_is_refused(void **state)
{
    (void)state;
    struct sl_buf out = { 0 };
    assert_int_equal(fx_canon("pypi", "/pypi/simple/demo-a/", PEP691), CANON_OK);
    int cut = fx_rewrite("{\"files\": [", 3, EDGE, &out);
    int junk = fx_rewrite("{\"files\": ]", 3, EDGE, &out);
    assert_int_equal(fx_canon("pypi", "/pypi/pypi/demo-a/json", NULL), CANON_OK);
    int api = fx_rewrite("<html></html>", 3, EDGE, &out);   /* the JSON API is always JSON */
    sl_buf_free(&out);
    assert_int_equal(cut, -1);
    assert_int_equal(junk, -1);
    assert_int_equal(api, -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classes),
        cmocka_unit_test(test_normal_names),
        cmocka_unit_test(test_json_is_its_own_representation),
        cmocka_unit_test(test_html_links),
        cmocka_unit_test(test_pep691_links),
        cmocka_unit_test(test_json_api_links),
        cmocka_unit_test(test_digests_are_noted_by_file),
        cmocka_unit_test(test_a_page_is_rewritten_as_what_it_is),
        cmocka_unit_test(test_bad_json_is_refused),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
