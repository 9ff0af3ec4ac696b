/*
 * test_maven.c - a Maven 2 repository (eco/maven.c): release files and
 * timestamped snapshots immutable; maven-metadata.xml (with its checksums)
 * and the moving "-SNAPSHOT" names metadata; directories never cached; the
 * ".sha1" sidecar an artifact is verified against, and none for a checksum
 * file itself.
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
    static const char *const settings[] = { "origin_maven=https://repo.example/maven2", NULL };
    fx_routes("/maven/ maven\n", settings);
    return 0;
}

#define G "/maven/com/example/demo-lib/"

static void test_classes(void **state)
{
    (void)state;
    static const struct fx_class cases[] = {
        { "maven", G "1.0/demo-lib-1.0.jar", ECO_IMMUTABLE },
        { "maven", G "1.0/demo-lib-1.0.pom", ECO_IMMUTABLE },
        { "maven", G "1.0/demo-lib-1.0.jar.sha1", ECO_IMMUTABLE },
        { "maven", G "1.0/demo-lib-1.0-sources.jar.asc", ECO_IMMUTABLE },
        { "maven", G "maven-metadata.xml", ECO_METADATA },
        { "maven", G "maven-metadata.xml.sha1", ECO_METADATA },
        { "maven", G "maven-metadata.xml.md5", ECO_METADATA },
        { "maven", G "1.1-SNAPSHOT/maven-metadata.xml", ECO_METADATA },
        { "maven", G "1.1-SNAPSHOT/demo-lib-1.1-SNAPSHOT.jar", ECO_METADATA },
        { "maven", G "1.1-SNAPSHOT/demo-lib-1.1-SNAPSHOT.pom.sha1", ECO_METADATA },
        { "maven", G "1.1-SNAPSHOT/demo-lib-1.1-20261123.060920-1.jar", ECO_IMMUTABLE },
        { "maven", G "1.1-SNAPSHOT/demo-lib-1.1-20261123.060920-1.jar.sha1", ECO_IMMUTABLE },
        { "maven", "/maven/archetype-catalog.xml", ECO_METADATA },
        { "maven", "/maven/.index/nexus-maven-repository-index.gz", ECO_METADATA },
        { "maven", G "1.0/", ECO_NEVER },
        { "maven", G, ECO_NEVER },
    };
    fx_assert_classes(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_artifacts_are_verified_against_their_sha1(void **state)
{
    (void)state;
    const struct eco *m = eco_find("maven", 5);
    const char *alg = NULL;
    assert_int_equal(fx_canon("maven", G "1.0/demo-lib-1.0.jar", NULL), CANON_OK);
    assert_string_equal(m->sidecar(&fx_cn, &alg), ".sha1");
    assert_string_equal(alg, "SHA1");
    assert_string_equal(fx_origin_url(), "https://repo.example/maven2/com/example/demo-lib/1.0/demo-lib-1.0.jar");
    assert_int_equal(fx_canon("maven", G "1.0/demo-lib-1.0.jar.sha1", NULL), CANON_OK);
    assert_null(m->sidecar(&fx_cn, &alg));   /* a checksum has none of its own */
    assert_int_equal(fx_canon("maven", G "maven-metadata.xml", NULL), CANON_OK);
    assert_null(m->sidecar(&fx_cn, &alg));   /* metadata is not verified */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classes),
        cmocka_unit_test(test_artifacts_are_verified_against_their_sha1),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
