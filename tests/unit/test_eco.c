/*
 * test_eco.c - the ecosystem table (eco/eco.h): every entry is usable as a
 * route (valid unique name, parsable default origin and redirect hosts),
 * every route of the shipped map has its ecosystem, and the classes and
 * flags that decide what is cached are the documented ones.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config.h"
#include "eco/eco.h"
#include "route/canon.h"
#include "route/route.h"

static void test_every_entry_is_a_valid_route(void **state)
{
    (void)state;
    char err[256];
    assert_true(eco_count() >= 1);
    for (size_t i = 0; i < eco_count(); i++) {
        const struct eco *e = eco_at(i);
        if (!route_name_valid(e->name, strlen(e->name)))
            fail_msg("ecosystem %zu: bad name '%s'", i, e->name);
        for (size_t j = 0; j < i; j++)
            if (strcmp(eco_at(j)->name, e->name) == 0)
                fail_msg("ecosystem '%s' listed twice", e->name);
        struct origin_url u;
        if (e->default_origin && origin_url_parse(e->default_origin, &u, err, sizeof(err)) != 0)
            fail_msg("%s: default origin: %s", e->name, err);
        struct route_host hosts[ROUTE_REDIRECT_HOSTS_MAX];
        int n;
        if (e->default_redirect_hosts &&
            route_hosts_parse(e->default_redirect_hosts, hosts, ROUTE_REDIRECT_HOSTS_MAX, &n, err, sizeof(err)))
            fail_msg("%s: default redirect hosts: %s", e->name, err);
        assert_ptr_equal(eco_find(e->name, strlen(e->name)), e);
    }
}

static void test_lookup_is_exact(void **state)
{
    (void)state;
    assert_non_null(eco_find("generic", 7));
    assert_null(eco_find("generi", 6));
    assert_null(eco_find("genericx", 8));
    assert_null(eco_find("", 0));
    assert_null(eco_find("GENERIC", 7));
    assert_null(eco_unknown.classify);   /* a name that is no ecosystem's caches nothing */
}

static void test_every_shipped_route_has_its_ecosystem(void **state)
{
    (void)state;
    struct sluice_config cfg;
    struct route_table rt;
    char err[256];
    config_defaults(&cfg);
    if (access("haproxy/routes.map", R_OK) != 0)
        skip();
    assert_int_equal(route_table_load(&rt, "haproxy/routes.map", &cfg, err, sizeof(err)), 0);
    for (int i = 0; i < rt.n; i++)
        if (rt.routes[i].eco == &eco_unknown)
            fail_msg("route %s has no ecosystem", rt.routes[i].name);
}

static void test_generic_caches_every_path_with_its_query(void **state)
{
    (void)state;
    const struct eco *g = eco_find("generic", 7);
    assert_non_null(g->classify);
    assert_true(g->key_query);
    assert_null(g->default_origin);      /* off until origin_generic is set */
    struct canon c = { 0 };
    assert_int_equal(g->classify(&c), ECO_IMMUTABLE);
}

static void test_every_registry_has_a_public_origin_and_caches(void **state)
{
    (void)state;
    static const char *registries[] = { "npm", "pypi", "pypi_files", "cargo_index", "cargo_dl", "maven", "go" };
    for (size_t i = 0; i < sizeof(registries) / sizeof(registries[0]); i++) {
        const struct eco *e = eco_find(registries[i], strlen(registries[i]));
        assert_non_null(e);
        assert_non_null(e->classify);
        assert_non_null(e->default_origin);
        assert_int_equal(strncmp(e->default_origin, "https://", 8), 0);
    }
}

static void test_npm_and_pypi_cache_and_say_how(void **state)
{
    (void)state;
    static const char *cached[] = { "npm", "pypi", "pypi_files" };
    for (size_t i = 0; i < sizeof(cached) / sizeof(cached[0]); i++) {
        const struct eco *e = eco_find(cached[i], strlen(cached[i]));
        assert_non_null(e);
        assert_non_null(e->classify);
        assert_false(e->key_query);       /* their objects have no query */
        assert_int_equal(strncmp(e->default_origin, "https://", 8), 0);
    }
    /* the two with metadata rewrite its links and pick a representation */
    assert_non_null(eco_find("npm", 3)->rewriter);
    assert_non_null(eco_find("npm", 3)->variant);
    assert_non_null(eco_find("pypi", 4)->rewriter);
    assert_non_null(eco_find("pypi", 4)->redirect);
    assert_null(eco_find("pypi_files", 10)->rewriter);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_entry_is_a_valid_route),
        cmocka_unit_test(test_lookup_is_exact),
        cmocka_unit_test(test_every_shipped_route_has_its_ecosystem),
        cmocka_unit_test(test_generic_caches_every_path_with_its_query),
        cmocka_unit_test(test_every_registry_has_a_public_origin_and_caches),
        cmocka_unit_test(test_npm_and_pypi_cache_and_say_how),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
