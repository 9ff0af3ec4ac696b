/*
 * test_go.c - the Go module proxy (eco/go.c): which paths are metadata,
 * artifacts or never cached (canonical versions only are immutable, the
 * checksum database's tiles too, its "latest" never); Go's case encoding
 * ('!' raw, as %21, or a capital letter) being one key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "eco_fixture.h"

static int setup(void **state)
{
    (void)state;
    static const char *const settings[] = { "origin_go=https://proxy.example", NULL };
    fx_routes("/go/ go\n", settings);
    return 0;
}

static void test_classes(void **state)
{
    (void)state;
    static const struct fx_class cases[] = {
        { "go", "/go/example.com/m/@v/list", ECO_METADATA },
        { "go", "/go/example.com/m/@latest", ECO_METADATA },
        { "go", "/go/example.com/m/@v/v1.2.3.info", ECO_IMMUTABLE },
        { "go", "/go/example.com/m/@v/v1.2.3.mod", ECO_IMMUTABLE },
        { "go", "/go/example.com/m/@v/v1.2.3.zip", ECO_IMMUTABLE },
        { "go", "/go/example.com/m/@v/v0.0.0-20200101000000-abcdef123456.zip", ECO_IMMUTABLE },
        { "go", "/go/example.com/m/@v/v2.0.0+incompatible.mod", ECO_IMMUTABLE },
        { "go", "/go/example.com/m/@v/v1.0.0-%21r%21c1.info", ECO_IMMUTABLE },
        { "go", "/go/example.com/m/@v/master.info", ECO_METADATA },     /* a query: it moves */
        { "go", "/go/example.com/m/@v/master.zip", ECO_NEVER },
        { "go", "/go/example.com/m/@v/v1.2.info", ECO_METADATA },
        { "go", "/go/example.com/m/@v/v01.2.3.zip", ECO_NEVER },
        { "go", "/go/example.com/m/@v/v1.2.3+meta.zip", ECO_NEVER },
        { "go", "/go/example.com/m/@v/v1.2.3.tar", ECO_NEVER },
        { "go", "/go/example.com/m/@v/x/v1.2.3.zip", ECO_NEVER },
        { "go", "/go/example.com/m", ECO_NEVER },
        { "go", "/go/@v/list", ECO_NEVER },
        { "go", "/go/sumdb/sum.golang.org/supported", ECO_METADATA },
        { "go", "/go/sumdb/sum.golang.org/lookup/example.com/m@v1.2.3", ECO_METADATA },
        { "go", "/go/sumdb/sum.golang.org/tile/8/0/x001/234", ECO_IMMUTABLE },
        { "go", "/go/sumdb/sum.golang.org/tile/8/0/000.p/7", ECO_IMMUTABLE },
        { "go", "/go/sumdb/sum.golang.org/latest", ECO_NEVER },
        { "go", "/go/sumdb/sum.golang.org/", ECO_NEVER },
    };
    fx_assert_classes(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_case_encoding_is_one_key(void **state)
{
    (void)state;
    static const char *const spellings[] = {
        "/go/github.com/%21azure/sdk/@v/v1.0.0.zip",
        "/go/github.com/!azure/sdk/@v/v1.0.0.zip",
        "/go/github.com/Azure/sdk/@v/v1.0.0.zip",
        "/go/github.com/%41zure/sdk/@v/v1.0.0.zip",
    };
    for (size_t i = 0; i < sizeof(spellings) / sizeof(spellings[0]); i++) {
        assert_int_equal(fx_canon("go", spellings[i], NULL), CANON_OK);
        assert_string_equal(fx_cn.key, "go:github.com/!azure/sdk/@v/v1.0.0.zip");
        assert_string_equal(fx_origin_url(), "https://proxy.example/github.com/!azure/sdk/@v/v1.0.0.zip");
    }
    assert_int_equal(fx_canon("go", "/go/sumdb/sum.golang.org/lookup/github.com/!azure/sdk@v1.0.0", NULL), CANON_OK);
    assert_string_equal(fx_cn.key, "go:sumdb/sum.golang.org/lookup/github.com/!azure/sdk@v1.0.0");
}

/* A module zip and its go.mod are verified against their lines in the
 * checksum database's lookup, fetched through the same route. */
static void test_zips_are_verified_against_the_checksum_database(void **state)
{
    (void)state;
    static const char body[] =
        "42\n"
        "github.com/Azure/sdk v1.0.0-RC1 h1:swFsGzNW6OnBje/aRGfqArT6vpRILHNm7fdd6D0VwfU=\n"
        "github.com/Azure/sdk v1.0.0-RC1/go.mod h1:U2t3Mhn1Vd7nkKgl3FieA3xw30xADU+L/f5JbmImjrM=\n"
        "\n"
        "go.sum database tree\n";
    const struct eco *g = eco_find("go", 2);
    struct eco_sidecar sc = { 0 };
    struct eco_digest d;
    assert_int_equal(fx_canon("go", "/go/github.com/%21azure/sdk/@v/v1.0.0-%21r%21c1.zip", NULL), CANON_OK);
    assert_true(g->sidecar(&fx_cn, &sc));
    assert_string_equal(sc.algorithm, "H1");
    sl_buf_append(&sc.path, "", 1);
    assert_string_equal((const char *)sc.path.data, "sumdb/sum.golang.org/lookup/github.com/!azure/sdk@v1.0.0-!r!c1");
    assert_true(g->sidecar_digest(&fx_cn, body, strlen(body), &d));
    assert_int_equal(d.len, 32);
    assert_int_equal(d.value[0], 0xb3);   /* swFs... */
    sl_buf_free(&sc.path);

    assert_int_equal(fx_canon("go", "/go/github.com/!azure/sdk/@v/v1.0.0-!r!c1.mod", NULL), CANON_OK);
    assert_true(g->sidecar(&fx_cn, &sc));
    assert_string_equal(sc.algorithm, "H1MOD");
    assert_true(g->sidecar_digest(&fx_cn, body, strlen(body), &d));
    assert_int_equal(d.value[0], 0x53);   /* U2t3... */
    sl_buf_free(&sc.path);

    assert_int_equal(fx_canon("go", "/go/github.com/!azure/sdk/@v/v1.0.0.info", NULL), CANON_OK);
    assert_false(g->sidecar(&fx_cn, &sc));   /* .info: nothing published */
    assert_int_equal(fx_canon("go", "/go/github.com/!azure/sdk/@v/v1.0.0.zip", NULL), CANON_OK);
    assert_false(g->sidecar_digest(&fx_cn, body, strlen(body), &d));   /* another version */
}

static void test_clients_that_never_retry_wait_for_a_slot(void **state)
{
    (void)state;
    assert_true(eco_find("go", 2)->wait_when_full);
    assert_false(eco_find("npm", 3)->wait_when_full);   /* npm retries: it gets 503 + Retry-After */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classes),
        cmocka_unit_test(test_case_encoding_is_one_key),
        cmocka_unit_test(test_zips_are_verified_against_the_checksum_database),
        cmocka_unit_test(test_clients_that_never_retry_wait_for_a_slot),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
