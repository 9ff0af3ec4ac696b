/*
 * test_cargo.c - the Cargo sparse registry (eco/cargo.c): which index and
 * download paths are metadata, artifacts or never cached; index keys in
 * lower case; config.json's "dl" re-pointed at the edge with its markers
 * kept and "api" left alone; index files passed through byte for byte
 * while each line's cksum is noted for the download it names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "eco_fixture.h"

#define EDGE "http://127.0.0.1:8080"
#define SUM "6f1d46d27e0d2e1d3e50e0b6a8b8a1bba5c0a3cb2e2c3f1c4a0b0a9e8d7c6b5a"

static int setup(void **state)
{
    (void)state;
    static const char *const settings[] = { "origin_cargo_index=https://index.example",
                                            "origin_cargo_dl=https://static.example", NULL };
    fx_routes("/crates/dl/ cargo_dl\n/crates/ cargo_index\n", settings);
    return 0;
}

static void test_classes(void **state)
{
    (void)state;
    static const struct fx_class cases[] = {
        { "cargo_index", "/crates/config.json", ECO_METADATA },
        { "cargo_index", "/crates/1/a", ECO_METADATA },
        { "cargo_index", "/crates/2/ab", ECO_METADATA },
        { "cargo_index", "/crates/3/s/syn", ECO_METADATA },
        { "cargo_index", "/crates/se/rd/serde", ECO_METADATA },
        { "cargo_index", "/crates/se/rd/serde_json", ECO_METADATA },
        { "cargo_index", "/crates/Se/Rd/Serde", ECO_METADATA },     /* lower-cased first */
        { "cargo_index", "/crates/3/x/syn", ECO_NEVER },            /* not its place */
        { "cargo_index", "/crates/se/rx/serde", ECO_NEVER },
        { "cargo_index", "/crates/1/ab", ECO_NEVER },
        { "cargo_index", "/crates/api/v1/crates/new", ECO_NEVER },
        { "cargo_index", "/crates/se/rd/ser.de", ECO_NEVER },
        { "cargo_dl", "/crates/dl/crates/serde/serde-1.0.0.crate", ECO_IMMUTABLE },
        { "cargo_dl", "/crates/dl/serde/1.0.0/download", ECO_IMMUTABLE },
        { "cargo_dl", "/crates/dl/api/v1/crates/serde/1.0.0/download", ECO_IMMUTABLE },
        { "cargo_dl", "/crates/dl/crates/serde/other-1.0.0.crate", ECO_NEVER },
        { "cargo_dl", "/crates/dl/crates/serde/", ECO_NEVER },
        { "cargo_dl", "/crates/dl/index.html", ECO_NEVER },
    };
    fx_assert_classes(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_index_keys_are_lower_case(void **state)
{
    (void)state;
    assert_int_equal(fx_canon("cargo_index", "/crates/Se/Rd/Serde", NULL), CANON_OK);
    assert_string_equal(fx_cn.key, "cargo_index:se/rd/serde");
    assert_string_equal(fx_origin_url(), "https://index.example/se/rd/serde");
}

static void test_dl_points_at_the_edge_and_api_stays(void **state)
{
    (void)state;
    static const char doc[] =
        "{\"dl\":\"https://static.example/crates/{crate}/{crate}-{version}.crate\",\"api\":\"https://api.example\"}";
    static const char want[] =
        "{\"dl\":\"" EDGE "/crates/dl/crates/{crate}/{crate}-{version}.crate\",\"api\":\"https://api.example\"}";
    assert_int_equal(fx_canon("cargo_index", "/crates/config.json", NULL), CANON_OK);
    assert_string_equal(fx_rewritten(doc, EDGE), want);
    /* no markers (crates.io's form): cargo appends /{crate}/{version}/download */
    assert_string_equal(fx_rewritten("{\"dl\":\"https://static.example/crates\"}", EDGE),
                        "{\"dl\":\"" EDGE "/crates/dl/crates\"}");
    /* a dl elsewhere than the cargo_dl origin is left as it is */
    static const char other[] = "{\"dl\":\"https://elsewhere.example/crates\"}";
    assert_string_equal(fx_rewritten(other, EDGE), other);
    static const char prefix_only[] = "{\"dl\":\"https://static.example.evil/crates\"}";
    assert_string_equal(fx_rewritten(prefix_only, EDGE), prefix_only);
}

static void test_index_lines_pass_through_and_note_their_cksum(void **state)
{
    (void)state;
    static const char doc[] =
        "{\"name\":\"Demo\",\"vers\":\"0.1.0\",\"deps\":[],\"cksum\":\"" SUM "\",\"features\":{},\"yanked\":false}\n"
        "\n"
        "{\"name\":\"Demo\",\"vers\":\"0.2.0\",\"deps\":[],\"cksum\":\"short\",\"features\":{},\"yanked\":false}\n"
        "{\"name\":\"Demo\",\"vers\":\"0.3.0\",\"cksum\":\"" SUM "\"}";
    assert_int_equal(fx_canon("cargo_index", "/crates/de/mo/demo", NULL), CANON_OK);
    assert_string_equal(fx_rewritten(doc, EDGE), doc);
    assert_string_equal(fx_noted("cargo_dl", "/crates/dl/crates/Demo/Demo-0.1.0.crate"), SUM);
    assert_string_equal(fx_noted("cargo_dl", "/crates/dl/demo/0.1.0/download"), SUM);
    assert_string_equal(fx_noted("cargo_dl", "/crates/dl/crates/demo/demo-0.2.0.crate"), "");
    assert_string_equal(fx_noted("cargo_dl", "/crates/dl/crates/demo/demo-0.3.0.crate"), SUM);   /* no final '\n' */
}

static void test_a_line_that_is_not_json_refuses_the_file(void **state)
{
    (void)state;
    struct sl_buf out = { 0 };
    assert_int_equal(fx_canon("cargo_index", "/crates/de/mo/demo", NULL), CANON_OK);
    assert_int_equal(fx_rewrite("{\"name\":\"demo\"}\n<html>\n", 3, EDGE, &out), -1);
    assert_int_equal(fx_rewrite("[1,2]\n", 100, EDGE, &out), -1);
    assert_int_equal(fx_rewrite("", 100, EDGE, &out), 0);   /* an empty index file is fine */
    sl_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classes),
        cmocka_unit_test(test_index_keys_are_lower_case),
        cmocka_unit_test(test_dl_points_at_the_edge_and_api_stays),
        cmocka_unit_test(test_index_lines_pass_through_and_note_their_cksum),
        cmocka_unit_test(test_a_line_that_is_not_json_refuses_the_file),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
