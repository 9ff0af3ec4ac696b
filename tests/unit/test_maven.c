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

/* The sidecar of the last fx_canon: its path, or "" when it has none. */
static const char *sidecar_of(const char *path)
{
    static struct eco_sidecar sc;
    sl_buf_free(&sc.path);
    sc.algorithm = NULL;
    assert_int_equal(fx_canon("maven", path, NULL), CANON_OK);
    if (!eco_find("maven", 5)->sidecar(&fx_cn, &sc))
        return "";
    assert_string_equal(sc.algorithm, "SHA1");
    sl_buf_append(&sc.path, "", 1);
    return (const char *)sc.path.data;
}

static void test_artifacts_are_verified_against_their_sha1(void **state)
{
    (void)state;
    assert_string_equal(sidecar_of(G "1.0/demo-lib-1.0.jar"), "com/example/demo-lib/1.0/demo-lib-1.0.jar.sha1");
    assert_string_equal(fx_origin_url(), "https://repo.example/maven2/com/example/demo-lib/1.0/demo-lib-1.0.jar");
    assert_string_equal(sidecar_of(G "1.0/demo-lib-1.0.jar.sha1"), "");   /* a checksum has none of its own */
    assert_string_equal(sidecar_of(G "maven-metadata.xml"), "");         /* metadata is not verified */
    /* what a .sha1 says: its first word, hex; anything else is no digest */
    const struct eco *m = eco_find("maven", 5);
    struct eco_digest d;
    static const char sha1[] = "0123456789abcdef0123456789abcdef01234567  demo-lib-1.0.jar\n";
    assert_true(m->sidecar_digest(&fx_cn, sha1, strlen(sha1), &d));
    assert_int_equal(d.len, 20);
    assert_int_equal(d.value[19], 0x67);
    assert_false(m->sidecar_digest(&fx_cn, "<html>404</html>", 16, &d));
    assert_false(m->sidecar_digest(&fx_cn, "", 0, &d));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classes),
        cmocka_unit_test(test_artifacts_are_verified_against_their_sha1),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
