/*
 * test_route.c - origin URLs, redirect host lists, the route map,
 * longest-prefix matching, and each route's ecosystem.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config.h"
#include "eco/eco.h"
#include "route/route.h"
#include "shipped_map.h"

static char err[512];

static void assert_err_contains(const char *needle)
{
    if (!strstr(err, needle))
        fail_msg("error '%s' does not contain '%s'", err, needle);
}

static const char *shipped_map = SHIPPED_MAP;

/* ------------------------------------------------------- origin URLs */

static void test_url_good(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        bool tls;
        const char *host;
        int port;
        const char *base;
    } ok[] = {
        { "https://registry.npmjs.org", true, "registry.npmjs.org", 443, "" },
        { "https://registry.npmjs.org/", true, "registry.npmjs.org", 443, "" },
        { "http://example.com", false, "example.com", 80, "" },
        { "HTTPS://Repo.Maven.Apache.org/maven2", true, "repo.maven.apache.org", 443, "/maven2" },
        { "https://repo.maven.apache.org/maven2/", true, "repo.maven.apache.org", 443,
          "/maven2" },
        { "http://127.0.0.1:8081/a/b//", false, "127.0.0.1", 8081, "/a/b" },
        { "http://[::1]:9000", false, "::1", 9000, "" },
        { "https://[2001:db8::1]/x", true, "2001:db8::1", 443, "/x" },
        { "http://[::ffff:127.0.0.1]:1/", false, "::ffff:127.0.0.1", 1, "" },
        { "http://h:65535", false, "h", 65535, "" },
        { "http://my_host-1.internal:80/p%20q/~u", false, "my_host-1.internal", 80,
          "/p%20q/~u" },
        { "http://h/a;b=c,d!e$f&g'h(i)*+:@", false, "h", 80, "/a;b=c,d!e$f&g'h(i)*+:@" },
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct origin_url u;
        if (origin_url_parse(ok[i].in, &u, err, sizeof(err)) != 0)
            fail_msg("'%s' should parse: %s", ok[i].in, err);
        assert_int_equal(u.tls, ok[i].tls);
        assert_string_equal(u.host, ok[i].host);
        assert_int_equal(u.port, ok[i].port);
        assert_string_equal(u.base_path, ok[i].base);
    }
}

static void test_url_bad(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *why;
    } bad[] = {
        { "", "http" },
        { "registry.npmjs.org", "http" },
        { "ftp://example.com", "http" },
        { "https:/example.com", "http" },
        { "https://", "missing host" },
        { "https:///path", "missing host" },
        { "https://:443", "missing host" },
        { "https://user@example.com", "user-info" },
        { "https://user:pw@example.com/x", "user-info" },
        { "https://example.com/x?y=1", "query" },
        { "https://example.com?", "query" },
        { "https://example.com/#frag", "fragment" },
        { "https://exa mple.com", "space" },
        { "https://example.com/a b", "space" },
        { "https://example.com/a\tb", "control" },
        { "https://example.com/\x7f", "control" },
        { "https://ex\xc3\xa4mple.com", "non-ASCII" },
        { "https://example.com:0", "port" },
        { "https://example.com:65536", "port" },
        { "https://example.com:", "port" },
        { "https://example.com:8x", "port" },
        { "https://example.com:-1", "port" },
        { "https://example.com:000443", "port" },
        { "https://[::1", "IPv6" },
        { "https://[::1]x", "IPv6" },
        { "https://[::g]", "IPv6" },
        { "https://[]", "missing host" },
        { "https://[fe80::1%25eth0]", "IPv6" },
        { "https://exa..mple.com", "bad host" },
        { "https://.example.com", "bad host" },
        { "https://example.com./", "bad host" },
        { "https://-example.com", "bad host" },
        { "https://exa!mple.com", "bad host" },
        { "https://example.com/a\\b", "bad character" },
        { "https://example.com/a\"b", "bad character" },
        { "https://example.com/a%zzb", "bad character or escape" },
        { "https://example.com/a%4", "bad character or escape" },
        { "https://example.com/<x>", "bad character" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct origin_url u;
        err[0] = '\0';
        if (origin_url_parse(bad[i].in, &u, err, sizeof(err)) == 0)
            fail_msg("'%s' should be rejected", bad[i].in);
        if (!strstr(err, bad[i].why))
            fail_msg("'%s': error '%s' lacks '%s'", bad[i].in, err, bad[i].why);
    }
}

static void test_url_lengths(void **state)
{
    (void)state;
    struct origin_url u;
    char url[1200];
    strcpy(url, "http://");
    memset(url + 7, 'a', 255);
    url[7 + 255] = '\0';
    assert_int_equal(origin_url_parse(url, &u, err, sizeof(err)), 0); /* 255: fits */
    strcpy(url, "http://");
    memset(url + 7, 'a', 256);
    url[7 + 256] = '\0';
    assert_int_equal(origin_url_parse(url, &u, err, sizeof(err)), -1);
    assert_err_contains("host too long");
    strcpy(url, "http://h/");
    memset(url + 9, 'p', 600);
    url[9 + 600] = '\0';
    assert_int_equal(origin_url_parse(url, &u, err, sizeof(err)), -1);
    assert_err_contains("path too long");
}

/* ------------------------------------------------------------- map file */

static void test_map_shipped(void **state)
{
    (void)state;
    struct sluice_config cfg;
    struct route_table rt;
    config_defaults(&cfg);
    assert_int_equal(route_table_parse(&rt, shipped_map, &cfg, err, sizeof(err)), 0);
    assert_int_equal(rt.n, 8);

    const struct route *r = route_by_name(&rt, "pypi_files", 10);
    assert_non_null(r);
    assert_string_equal(r->prefix, "/pypi/files/");
    assert_int_equal(r->prefix_len, 12);
    assert_true(r->has_origin);
    assert_string_equal(r->origin, "https://files.pythonhosted.org");
    assert_true(r->url.tls);
    assert_string_equal(r->url.host, "files.pythonhosted.org");
    assert_string_equal(r->eco->name, "pypi_files");
    assert_non_null(r->eco->classify);

    r = route_by_name(&rt, "generic", 7);
    assert_non_null(r);
    assert_false(r->has_origin); /* no default: off */
    assert_string_equal(r->eco->name, "generic");
    assert_non_null(r->eco->classify);

    r = route_by_name(&rt, "maven", 5);
    assert_string_equal(r->url.base_path, "/maven2");
    assert_non_null(r->eco->classify);
    assert_null(route_by_name(&rt, "mave", 4));
    assert_null(route_by_name(&rt, "mavenx", 6));
    assert_null(route_by_name(&rt, "", 0));
}

static void test_map_file_matches_shipped(void **state)
{
    (void)state;
    /* The real file in the repository parses and has the same routes. */
    struct sluice_config cfg;
    struct route_table rt;
    config_defaults(&cfg);
    if (access("haproxy/routes.map", R_OK) != 0)
        skip();
    assert_int_equal(route_table_load(&rt, "haproxy/routes.map", &cfg, err, sizeof(err)), 0);
    assert_int_equal(rt.n, 8);
    /* longer prefixes first, so HAProxy's first-match agrees with us */
    for (int i = 0; i < rt.n; i++)
        for (int j = i + 1; j < rt.n; j++)
            if (strncmp(rt.routes[j].prefix, rt.routes[i].prefix, rt.routes[i].prefix_len) == 0)
                fail_msg("%s is listed after its prefix %s", rt.routes[j].prefix,
                         rt.routes[i].prefix);
}

static void expect_match(const struct route_table *rt, const char *path, const char *route,
                         const char *rest)
{
    const char *got_rest = NULL;
    size_t got_len = 0;
    const struct route *r = route_match(rt, path, strlen(path), &got_rest, &got_len);
    if (!route) {
        if (r)
            fail_msg("'%s' should match nothing, matched %s", path, r->name);
        return;
    }
    if (!r)
        fail_msg("'%s' should match %s, matched nothing", path, route);
    if (strcmp(r->name, route) != 0)
        fail_msg("'%s' should match %s, matched %s", path, route, r->name);
    if (got_len != strlen(rest) || memcmp(got_rest, rest, got_len) != 0)
        fail_msg("'%s': rest '%.*s', want '%s'", path, (int)got_len, got_rest, rest);
}

static void check_shipped_matches(const struct route_table *rt)
{
    expect_match(rt, "/pypi/files/packages/ab/x.whl", "pypi_files", "packages/ab/x.whl");
    expect_match(rt, "/pypi/simple/requests/", "pypi", "simple/requests/");
    expect_match(rt, "/pypi/files", "pypi", "files");
    expect_match(rt, "/crates/dl/serde/1.0.0/download", "cargo_dl", "serde/1.0.0/download");
    expect_match(rt, "/crates/se/rd/serde", "cargo_index", "se/rd/serde");
    expect_match(rt, "/crates/", "cargo_index", "");
    expect_match(rt, "/npm//left-pad", "npm", "left-pad"); /* rest never starts with '/' */
    expect_match(rt, "/npm///", "npm", "");
    expect_match(rt, "/npm", NULL, NULL);
    expect_match(rt, "/NPM/x", NULL, NULL); /* case-sensitive, like map_beg */
    expect_match(rt, "/npmx/y", NULL, NULL);
    expect_match(rt, "", NULL, NULL);
    expect_match(rt, "/", NULL, NULL);
    expect_match(rt, "npm/x", NULL, NULL);
}

static void test_match_longest_prefix_any_order(void **state)
{
    (void)state;
    struct route_table rt;
    assert_int_equal(route_table_parse(&rt, shipped_map, NULL, err, sizeof(err)), 0);
    check_shipped_matches(&rt);
    /* shortest prefixes first: HAProxy would disagree, the agent must not */
    const char *reversed = "/go/ go\n/maven/ maven\n/crates/ cargo_index\n/crates/dl/ cargo_dl\n"
                           "/pypi/ pypi\n/pypi/files/ pypi_files\n/npm/ npm\n/generic/ generic\n";
    assert_int_equal(route_table_parse(&rt, reversed, NULL, err, sizeof(err)), 0);
    check_shipped_matches(&rt);
}

static void test_match_nested_and_no_slash(void **state)
{
    (void)state;
    struct route_table rt;
    const char *map = "/a b\n/a/b/c/ abc\n/a/b/ ab\n/x x\n";
    assert_int_equal(route_table_parse(&rt, map, NULL, err, sizeof(err)), 0);
    expect_match(&rt, "/a/b/c/d", "abc", "d");
    expect_match(&rt, "/a/b/cd", "ab", "cd");
    expect_match(&rt, "/a/bc", "b", "bc");
    expect_match(&rt, "/ab", "b", "b");
    expect_match(&rt, "/xyz", "x", "yz");
    expect_match(&rt, "/x/yz", "x", "yz");

    /* non-NUL-terminated input and NULL out pointers */
    const char buf[] = "/a/b/c/dXXXX";
    const struct route *r = route_match(&rt, buf, 8, NULL, NULL);
    assert_non_null(r);
    assert_string_equal(r->name, "abc");
    assert_null(route_match(&rt, NULL, 0, NULL, NULL));
}

static void test_map_syntax(void **state)
{
    (void)state;
    struct route_table rt;
    const char *map = "\n"
                      "   # indented comment\n"
                      "\t/one/\tone\t\r\n"
                      "/two/    two   \n"
                      "#/three/ three\n"
                      "/four/ four"; /* no final newline */
    assert_int_equal(route_table_parse(&rt, map, NULL, err, sizeof(err)), 0);
    assert_int_equal(rt.n, 3);
    assert_string_equal(rt.routes[0].name, "one");
    assert_string_equal(rt.routes[0].prefix, "/one/");
    assert_string_equal(rt.routes[2].name, "four");
    assert_false(rt.routes[0].has_origin); /* no cfg: no origins */
    assert_int_equal(route_table_parse(&rt, "", NULL, err, sizeof(err)), 0);
    assert_int_equal(rt.n, 0);
    assert_null(route_match(&rt, "/x", 2, NULL, NULL));
}

static void expect_map_error(const char *map, const char *needle)
{
    struct route_table rt;
    err[0] = '\0';
    if (route_table_parse(&rt, map, NULL, err, sizeof(err)) == 0)
        fail_msg("map should be rejected:\n%s", map);
    assert_err_contains(needle);
    assert_int_equal(rt.n, 0); /* a failed parse leaves an empty table */
}

static void test_map_errors(void **state)
{
    (void)state;
    expect_map_error("/npm/\n", "map:1: expected '<prefix> <route>'");
    expect_map_error("/npm/ npm extra\n", "map:1: expected");
    expect_map_error("/npm/ npm # comment\n", "map:1: expected");
    expect_map_error("/ok/ ok\n\nnpm/ npm\n", "map:3: bad prefix 'npm/'");
    expect_map_error("/a\\b/ x\n", "bad prefix");
    expect_map_error("/a?b/ x\n", "bad prefix");
    expect_map_error("/a#b/ x\n", "bad prefix");
    expect_map_error("/a\"b/ x\n", "bad prefix");
    expect_map_error("/a%zz/ x\n", "bad prefix");
    expect_map_error("/a%2/ x\n", "bad prefix");
    expect_map_error("/\xc3\xa4/ x\n", "bad prefix");
    expect_map_error("/x/ NPM\n", "bad route name 'NPM'");
    expect_map_error("/x/ a-b\n", "bad route name");
    expect_map_error("/x/ a:b\n", "bad route name");
    expect_map_error("/x/ abcdefghijabcdefghijabcdefghij12\n", "bad route name");
    expect_map_error("/x/ a\n/x/ b\n", "map:2: duplicate prefix '/x/'");
    expect_map_error("/x/ a\n/y/ a\n", "map:2: route 'a' already has a prefix");
    char big[400];
    snprintf(big, sizeof(big), "/%0200d/ x\n", 0);
    expect_map_error(big, "prefix too long");
}

static void test_map_too_many(void **state)
{
    (void)state;
    struct route_table rt;
    char map[64 * 40];
    size_t n = 0;
    for (int i = 0; i < ROUTE_MAX; i++)
        n += (size_t)snprintf(map + n, sizeof(map) - n, "/r%d/ r%d\n", i, i);
    assert_int_equal(route_table_parse(&rt, map, NULL, err, sizeof(err)), 0);
    assert_int_equal(rt.n, ROUTE_MAX);
    snprintf(map + n, sizeof(map) - n, "/last/ last\n");
    assert_int_equal(route_table_parse(&rt, map, NULL, err, sizeof(err)), -1);
    assert_err_contains("too many routes");
}

static void test_map_origins_attach(void **state)
{
    (void)state;
    struct sluice_config cfg;
    struct route_table rt;
    config_defaults(&cfg);
    assert_int_equal(config_set(&cfg, "origin_npm", "", err, sizeof(err)), 0);
    assert_int_equal(config_set(&cfg, "origin_generic", "http://[::1]:9000/files/",
                                err, sizeof(err)),
                     0);
    assert_int_equal(config_set(&cfg, "origin_custom", "https://custom.example:8443",
                                err, sizeof(err)),
                     0);
    const char *map = "/npm/ npm\n/generic/ generic\n/custom/ custom\n/nowhere/ nowhere\n";
    assert_int_equal(route_table_parse(&rt, map, &cfg, err, sizeof(err)), 0);
    assert_false(route_by_name(&rt, "npm", 3)->has_origin); /* empty origin: off */
    const struct route *g = route_by_name(&rt, "generic", 7);
    assert_true(g->has_origin);
    assert_string_equal(g->url.host, "::1");
    assert_string_equal(g->url.base_path, "/files");
    assert_ptr_equal(g->eco, eco_find("generic", 7));
    const struct route *c = route_by_name(&rt, "custom", 6);
    assert_true(c->has_origin);
    assert_int_equal(c->url.port, 8443);
    assert_ptr_equal(c->eco, &eco_unknown); /* not an ecosystem: nothing cached */
    assert_false(route_by_name(&rt, "nowhere", 7)->has_origin);

    /* a config built by hand with a bad URL is caught at attach time */
    struct sluice_config bad = cfg;
    for (int i = 0; i < bad.n_origins; i++)
        if (strcmp(bad.origins[i].route, "npm") == 0)
            strcpy(bad.origins[i].url, "ftp://nope");
    assert_int_equal(route_table_parse(&rt, "/npm/ npm\n", &bad, err, sizeof(err)), -1);
    assert_err_contains("origin_npm");
}

static void test_redirect_hosts(void **state)
{
    (void)state;
    struct route_host h[4];
    int n = -1;
    assert_int_equal(route_hosts_parse("", h, 4, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 0);
    assert_int_equal(route_hosts_parse(" CDN.Example , dl.example:8443\t[2001:DB8::1]:9,10.0.0.1", h, 4, &n, err,
                                       sizeof(err)), 0);
    assert_int_equal(n, 4);
    assert_string_equal(h[0].host, "cdn.example");
    assert_int_equal(h[0].port, 0);   /* the redirect scheme's default */
    assert_string_equal(h[1].host, "dl.example");
    assert_int_equal(h[1].port, 8443);
    assert_string_equal(h[2].host, "2001:db8::1");
    assert_int_equal(h[2].port, 9);
    assert_string_equal(h[3].host, "10.0.0.1");
    assert_int_equal(route_hosts_parse("a,b,c,d,e", h, 4, &n, err, sizeof(err)), -1);
    assert_err_contains("too many hosts");
    static const char *bad[] = { "https://cdn.example/", "a..b", "host:0", "host:x", "[::1", "-a.example" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (route_hosts_parse(bad[i], h, 4, &n, err, sizeof(err)) != -1)
            fail_msg("'%s' should be refused", bad[i]);
    /* the setting reaches the route; an unset one is the ecosystem's default (none) */
    struct sluice_config cfg;
    struct route_table rt;
    config_defaults(&cfg);
    assert_int_equal(config_set(&cfg, "origin_generic", "http://127.0.0.1:9", err, sizeof(err)), 0);
    assert_int_equal(config_set(&cfg, "origin_generic_redirect_hosts", "cdn.example", err, sizeof(err)), 0);
    assert_int_equal(config_set(&cfg, "origin_generic_redirect_hosts", "x/y", err, sizeof(err)), -1);
    assert_err_contains("a host, not a URL");
    assert_int_equal(route_table_parse(&rt, "/generic/ generic\n/npm/ npm\n", &cfg, err, sizeof(err)), 0);
    assert_int_equal(route_by_name(&rt, "generic", 7)->n_redirect_hosts, 1);
    assert_int_equal(route_by_name(&rt, "npm", 3)->n_redirect_hosts, 0);
}

static void test_origin_url_format(void **state)
{
    (void)state;
    struct origin_url u;
    char out[256];
    assert_int_equal(origin_url_parse("https://Files.Example:443/base/", &u, err, sizeof(err)), 0);
    assert_int_equal(origin_url_format_base(&u, out, sizeof(out)), strlen("https://files.example/base"));
    assert_string_equal(out, "https://files.example/base");
    assert_int_equal(origin_url_parse("http://[::1]:9000", &u, err, sizeof(err)), 0);
    origin_url_format_base(&u, out, sizeof(out));
    assert_string_equal(out, "http://[::1]:9000");
    assert_true(origin_url_host_is_ip(&u) && origin_url_host_is_ipv6(&u));
    assert_int_equal(origin_url_format_base(&u, out, 8), 0);   /* does not fit */
}

static void test_map_load_file(void **state)
{
    (void)state;
    struct route_table rt;
    char path[] = "/tmp/sluice-test-map-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "/a/ a\nbad\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(route_table_load(&rt, path, NULL, err, sizeof(err)), -1);
    char want[128];
    snprintf(want, sizeof(want), "%s:2: expected", path);
    assert_err_contains(want);
    unlink(path);
    assert_int_equal(route_table_load(&rt, "/nonexistent.map", NULL, err, sizeof(err)), -1);
    assert_err_contains("/nonexistent.map");
}

/* A reload never moves a route: kept names keep their slot (and take the
 * new prefix and origin), gone ones are retired (lookups skip them, the
 * memory stays), new ones are appended, a returning one gets its old slot;
 * a map that would need more than ROUTE_MAX slots changes nothing. */
static void test_table_update_keeps_slots(void **state)
{
    (void)state;
    static struct sluice_config cfg;
    static struct route_table live, fresh;
    config_defaults(&cfg);
    assert_int_equal(config_set(&cfg, "origin_generic", "http://127.0.0.1:1", err, sizeof(err)), 0);
    assert_int_equal(route_table_parse(&live, "/npm/ npm\n/generic/ generic\n/x/ x\n", &cfg, err, sizeof(err)), 0);
    const struct route *npm = route_by_name(&live, "npm", 3), *x = route_by_name(&live, "x", 1);
    assert_int_equal(config_set(&cfg, "origin_generic", "http://127.0.0.1:2", err, sizeof(err)), 0);
    assert_int_equal(route_table_parse(&fresh, "/files/ generic\n/y/ y\n/npm/ npm\n", &cfg, err, sizeof(err)), 0);
    assert_int_equal(route_table_update(&live, &fresh, err, sizeof(err)), 0);
    assert_int_equal(live.n, 4);
    assert_ptr_equal(route_by_name(&live, "npm", 3), npm);
    const struct route *g = route_by_name(&live, "generic", 7);
    assert_ptr_equal(g, &live.routes[1]);
    assert_string_equal(g->prefix, "/files/");
    assert_int_equal(g->url.port, 2);
    assert_null(route_by_name(&live, "x", 1));
    assert_true(x->retired);
    assert_string_equal(x->name, "x");
    assert_null(route_match(&live, "/x/a", 4, NULL, NULL));
    assert_ptr_equal(route_match(&live, "/y/a", 4, NULL, NULL), &live.routes[3]);
    assert_int_equal(route_table_parse(&fresh, "/x/ x\n", &cfg, err, sizeof(err)), 0);
    assert_int_equal(route_table_update(&live, &fresh, err, sizeof(err)), 0);
    assert_ptr_equal(route_by_name(&live, "x", 1), x);
    assert_null(route_by_name(&live, "npm", 3));

    char map[ROUTE_MAX * 16] = "";
    for (int i = 0; i < ROUTE_MAX; i++)
        snprintf(map + strlen(map), sizeof(map) - strlen(map), "/r%d/ r%d\n", i, i);
    assert_int_equal(route_table_parse(&fresh, map, &cfg, err, sizeof(err)), 0);
    assert_int_equal(route_table_update(&live, &fresh, err, sizeof(err)), -1);
    assert_err_contains("until a restart");
    assert_int_equal(live.n, 4);
    assert_ptr_equal(route_by_name(&live, "x", 1), x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_good),
        cmocka_unit_test(test_url_bad),
        cmocka_unit_test(test_url_lengths),
        cmocka_unit_test(test_map_shipped),
        cmocka_unit_test(test_map_file_matches_shipped),
        cmocka_unit_test(test_match_longest_prefix_any_order),
        cmocka_unit_test(test_match_nested_and_no_slash),
        cmocka_unit_test(test_map_syntax),
        cmocka_unit_test(test_map_errors),
        cmocka_unit_test(test_map_too_many),
        cmocka_unit_test(test_map_origins_attach),
        cmocka_unit_test(test_map_load_file),
        cmocka_unit_test(test_redirect_hosts),
        cmocka_unit_test(test_origin_url_format),
        cmocka_unit_test(test_table_update_keeps_slots),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
