/*
 * test_redirect.c - which origin redirects a fill may follow
 * (origin/redirect.h): relative and absolute Locations, the origin's own
 * authority, listed hosts and their ports, schemes and downgrades, the hop
 * limit, and the addresses that count as non-public.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/config.h"
#include "origin/redirect.h"
#include "route/route.h"

static struct route_table rt;
static char next[4096];

static int setup(void **state)
{
    (void)state;
    struct sluice_config cfg;
    char err[256];
    config_defaults(&cfg);
    assert_int_equal(config_set(&cfg, "origin_generic", "https://Registry.Example/base", err, sizeof(err)), 0);
    assert_int_equal(config_set(&cfg, "origin_generic_redirect_hosts", "cdn.example, dl.example:8443 [2001:db8::1]",
                                err, sizeof(err)), 0);
    assert_int_equal(config_set(&cfg, "origin_files", "http://127.0.0.1:9000", err, sizeof(err)), 0);
    assert_int_equal(route_table_parse(&rt, "/generic/ generic\n/files/ files\n", &cfg, err, sizeof(err)), 0);
    return 0;
}

static enum redirect_verdict check_gen(const char *location, int hop)
{
    return redirect_check(&rt.routes[0], "https://registry.example/base/a/b.tgz?x=1", location, hop, next,
                          sizeof(next));
}

static void test_own_origin_relative_and_absolute(void **state)
{
    (void)state;
    assert_int_equal(check_gen("/base/c.tgz", 1), REDIRECT_FOLLOW);
    assert_string_equal(next, "https://registry.example/base/c.tgz");
    assert_int_equal(check_gen("c.tgz", 1), REDIRECT_FOLLOW);
    assert_string_equal(next, "https://registry.example/base/a/c.tgz");
    assert_int_equal(check_gen("../z", 2), REDIRECT_FOLLOW);   /* resolved, then checked */
    assert_string_equal(next, "https://registry.example/base/z");
    assert_int_equal(check_gen("HTTPS://REGISTRY.EXAMPLE:443/y", 1), REDIRECT_FOLLOW);
    assert_int_equal(check_gen("//registry.example/y", 1), REDIRECT_FOLLOW);
}

static void test_listed_hosts_and_ports(void **state)
{
    (void)state;
    assert_int_equal(check_gen("https://cdn.example/files/x", 1), REDIRECT_FOLLOW);
    assert_string_equal(next, "https://cdn.example/files/x");
    assert_int_equal(check_gen("https://cdn.example:444/x", 1), REDIRECT_REFUSE_HOST);   /* listed without port */
    assert_int_equal(check_gen("https://dl.example:8443/x", 1), REDIRECT_FOLLOW);
    assert_int_equal(check_gen("https://dl.example/x", 1), REDIRECT_REFUSE_HOST);
    assert_int_equal(check_gen("https://[2001:db8::1]/x", 1), REDIRECT_FOLLOW);
    assert_int_equal(check_gen("https://registry.example:8443/x", 1), REDIRECT_REFUSE_HOST);  /* other port */
    assert_int_equal(check_gen("https://evil.example/x", 1), REDIRECT_REFUSE_HOST);
    assert_non_null(strstr(next, "evil.example"));
    assert_non_null(strstr(next, "origin_generic_redirect_hosts"));
    assert_int_equal(check_gen("https://cdn.example.evil/x", 1), REDIRECT_REFUSE_HOST);
    assert_int_equal(check_gen("https://127.0.0.1:8093/metrics", 1), REDIRECT_REFUSE_HOST);
}

static void test_loopback_origin_is_one_authority(void **state)
{
    (void)state;
    const struct route *files = &rt.routes[1];
    assert_int_equal(redirect_check(files, "http://127.0.0.1:9000/a", "/b", 1, next, sizeof(next)), REDIRECT_FOLLOW);
    assert_int_equal(redirect_check(files, "http://127.0.0.1:9000/a", "http://127.0.0.1:8093/x", 1, next,
                                    sizeof(next)),
                     REDIRECT_REFUSE_HOST);
    assert_int_equal(redirect_check(files, "http://127.0.0.1:9000/a", "http://localhost:9000/x", 1, next,
                                    sizeof(next)),
                     REDIRECT_REFUSE_HOST);
    /* http to https of the same host is an upgrade, but another port */
    assert_int_equal(redirect_check(files, "http://127.0.0.1:9000/a", "https://127.0.0.1/x", 1, next, sizeof(next)),
                     REDIRECT_REFUSE_HOST);
}

static void test_schemes(void **state)
{
    (void)state;
    assert_int_equal(check_gen("http://registry.example/x", 1), REDIRECT_REFUSE_SCHEME);   /* downgrade */
    assert_non_null(strstr(next, "https to http"));
    assert_int_equal(check_gen("ftp://registry.example/x", 1), REDIRECT_REFUSE_SCHEME);
    assert_int_equal(check_gen("file:///etc/passwd", 1), REDIRECT_REFUSE_LOCATION);
    assert_int_equal(check_gen("", 1), REDIRECT_FOLLOW);   /* empty: the same URL again */
    assert_int_equal(check_gen("https://registry.example/a b", 1), REDIRECT_REFUSE_LOCATION);
    assert_int_equal(check_gen("https://user:pw@registry.example/x", 1), REDIRECT_FOLLOW);
}

static void test_hop_limit(void **state)
{
    (void)state;
    assert_int_equal(check_gen("/x", REDIRECT_MAX_HOPS), REDIRECT_FOLLOW);
    assert_int_equal(check_gen("/x", REDIRECT_MAX_HOPS + 1), REDIRECT_REFUSE_HOPS);
    assert_non_null(strstr(next, "more than 5"));
}

static void test_private_addresses(void **state)
{
    (void)state;
    static const char *non_public[] = {
        "127.0.0.1", "127.255.0.9", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
        "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255",
        "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
        "not an address", "",
    };
    for (size_t i = 0; i < sizeof(non_public) / sizeof(non_public[0]); i++)
        if (!redirect_address_private(non_public[i]))
            fail_msg("%s should count as non-public", non_public[i]);
    static const char *public[] = { "8.8.8.8", "172.32.0.1", "172.15.255.255", "192.169.0.1", "100.128.0.1",
                                    "2606:4700::1111", "::ffff:8.8.8.8", "151.101.0.223" };
    for (size_t i = 0; i < sizeof(public) / sizeof(public[0]); i++)
        if (redirect_address_private(public[i]))
            fail_msg("%s should count as public", public[i]);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(redirect_verdict_name(REDIRECT_FOLLOW), "followed");
    assert_string_equal(redirect_verdict_name(REDIRECT_REFUSE_HOST), "host");
    assert_string_equal(redirect_verdict_name(REDIRECT_REFUSE_ADDRESS), "address");
    assert_string_equal(redirect_verdict_name((enum redirect_verdict)99), "location");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_own_origin_relative_and_absolute),
        cmocka_unit_test(test_listed_hosts_and_ports),
        cmocka_unit_test(test_loopback_origin_is_one_authority),
        cmocka_unit_test(test_schemes),
        cmocka_unit_test(test_hop_limit),
        cmocka_unit_test(test_private_addresses),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
