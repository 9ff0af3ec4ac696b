/*
 * test_haproxy_gen.c - the HAProxy configuration generated from the route
 * table and the agent's settings (checked with `haproxy -c` when haproxy is
 * installed).
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
#include "route/haproxy_gen.h"
#include "route/route.h"
#include "shipped_map.h"

static char err[512];

static const char *shipped_map = SHIPPED_MAP;

/* ----------------------------------------------------- HAProxy output */

static char *haproxy_text(const struct route_table *rt, const struct sluice_config *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    haproxy_gen_print(rt, cfg, f);
    fclose(f);
    return buf;
}

static void expect_line(const char *text, const char *line)
{
    char want[1024];
    snprintf(want, sizeof(want), "\n%s\n", line);
    if (!strstr(text, want))
        fail_msg("haproxy config lacks line '%s':\n%s", line, text);
}

static void test_haproxy_shipped(void **state)
{
    (void)state;
    struct sluice_config cfg;
    struct route_table rt;
    config_defaults(&cfg);
    assert_int_equal(route_table_parse(&rt, shipped_map, &cfg, err, sizeof(err)), 0);
    char *text = haproxy_text(&rt, &cfg);
    char cwd[4096], want[4200];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    expect_line(text, "global");
    expect_line(text, "    setenv SLUICE_LISTEN 127.0.0.1:8080");
    snprintf(want, sizeof(want), "    setenv SLUICE_SPOP_ADDR unix@%s/var/run/spop.sock", cwd);
    expect_line(text, want);
    snprintf(want, sizeof(want), "    setenv SLUICE_HTTP_ADDR unix@%s/var/run/http.sock", cwd);
    expect_line(text, want);
    expect_line(text, "    setenv SLUICE_ADMIN_ADDR 127.0.0.1:8093");
    expect_line(text, "backend be_origin_pypi_files");
    expect_line(text, "    mode http");
    expect_line(text, "    timeout connect 5000ms");
    expect_line(text, "    timeout server 30000ms");
    expect_line(text, "    http-request set-path \"%[path,regsub('^/pypi/files/','/')]\"");
    expect_line(text, "    http-request set-header Host files.pythonhosted.org");
    expect_line(text, "    http-response add-header Cache-Status \"sluice; fwd=bypass\"");
    expect_line(text, "    http-request set-path \"%[path,regsub('^/crates/dl/','/')]\"");
    expect_line(text, "    http-request set-path \"%[path,regsub('^/maven/','/maven2/')]\"");
    expect_line(text, "    server origin repo.maven.apache.org:443 resolvers sluice_dns "
                      "resolve-prefer ipv4 init-addr none ssl verify required "
                      "ca-file @system-ca sni str(repo.maven.apache.org)");
    expect_line(text, "resolvers sluice_dns");
    assert_null(strstr(text, "be_origin_generic")); /* off: no backend */
    /* the sockets HAProxy binds for the agent, the edge memory tier's sizes */
    snprintf(want, sizeof(want), "    setenv SLUICE_HAPROXY_SOCKET unix@%s/var/run/haproxy.sock", cwd);
    expect_line(text, want);
    snprintf(want, sizeof(want), "    setenv SLUICE_PASS_ADDR unix@%s/var/run/pass.sock", cwd);
    expect_line(text, want);
    expect_line(text, "    setenv SLUICE_EDGE_TIER_OBJECT_MAX 65536");
    expect_line(text, "    setenv SLUICE_EDGE_TIER_MB 64");
    expect_line(text, "    setenv SLUICE_EDGE_TIER_TTL 3600");
    free(text);
}

/* edge_tier_max_size 0: no tier sizes, so haproxy.cfg declares no cache;
 * the sockets stay (the pass-through relay needs its own). */
static void test_haproxy_edge_tier_off(void **state)
{
    (void)state;
    struct sluice_config cfg;
    struct route_table rt;
    config_defaults(&cfg);
    assert_int_equal(config_set(&cfg, "edge_tier_max_size", "0", err, sizeof(err)), 0);
    assert_int_equal(config_set(&cfg, "haproxy_socket_dir", "/tmp", err, sizeof(err)), 0);
    assert_int_equal(route_table_parse(&rt, shipped_map, &cfg, err, sizeof(err)), 0);
    char *text = haproxy_text(&rt, &cfg);
    expect_line(text, "    setenv SLUICE_PASS_ADDR unix@/tmp/pass.sock");
    assert_null(strstr(text, "SLUICE_EDGE_TIER"));
    free(text);
}

/* The agent's "unix:PATH" is HAProxy's "unix@PATH", made absolute so
 * HAProxy finds the socket from any working directory. */
static void test_haproxy_unix_addresses(void **state)
{
    (void)state;
    struct sluice_config cfg;
    struct route_table rt;
    config_defaults(&cfg);
    assert_int_equal(config_set(&cfg, "http_listen", "unix:/run/sluice/http.sock", err,
                                sizeof(err)),
                     0);
    assert_int_equal(config_set(&cfg, "spop_listen", "unix:var/spop.sock", err, sizeof(err)), 0);
    assert_int_equal(route_table_parse(&rt, shipped_map, &cfg, err, sizeof(err)), 0);
    char *text = haproxy_text(&rt, &cfg);
    char cwd[1024], want[1200];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    expect_line(text, "    setenv SLUICE_HTTP_ADDR unix@/run/sluice/http.sock");
    snprintf(want, sizeof(want), "    setenv SLUICE_SPOP_ADDR unix@%s/var/spop.sock", cwd);
    expect_line(text, want);
    expect_line(text, "    setenv SLUICE_ADMIN_ADDR 127.0.0.1:8093");
    free(text);
}

static void test_haproxy_literals_and_ports(void **state)
{
    (void)state;
    struct sluice_config cfg;
    struct route_table rt;
    config_defaults(&cfg);
    for (int i = 0; i < cfg.n_origins; i++)
        cfg.origins[i].url[0] = '\0';
    assert_int_equal(config_set(&cfg, "listen", "[::]:80", err, sizeof(err)), 0);
    assert_int_equal(config_set(&cfg, "origin_v6", "https://[2001:db8::1]:8443/b", err,
                                sizeof(err)),
                     0);
    assert_int_equal(config_set(&cfg, "origin_v4", "http://127.0.0.1:8081", err, sizeof(err)),
                     0);
    assert_int_equal(config_set(&cfg, "origin_named", "http://Mirror.Example:80/m/", err,
                                sizeof(err)),
                     0);
    const char *map = "/v6/ v6\n/v4 v4\n/named/ named\n";
    assert_int_equal(route_table_parse(&rt, map, &cfg, err, sizeof(err)), 0);
    char *text = haproxy_text(&rt, &cfg);
    expect_line(text, "    setenv SLUICE_LISTEN [::]:80");
    expect_line(text, "    http-request set-header Host [2001:db8::1]:8443");
    expect_line(text, "    server origin [2001:db8::1]:8443 ssl verify required "
                      "ca-file @system-ca"); /* no SNI for an address */
    expect_line(text, "    http-request set-path \"%[path,regsub('^/v4/?','/')]\"");
    expect_line(text, "    http-request set-header Host 127.0.0.1:8081");
    expect_line(text, "    server origin 127.0.0.1:8081");
    expect_line(text, "    http-request set-header Host mirror.example"); /* default port */
    expect_line(text, "    http-request set-path \"%[path,regsub('^/named/','/m/')]\"");
    expect_line(text, "    server origin mirror.example:80 resolvers sluice_dns "
                      "resolve-prefer ipv4 init-addr none");
    free(text);

    /* only addresses: no resolvers section */
    assert_int_equal(config_set(&cfg, "origin_named", "", err, sizeof(err)), 0);
    assert_int_equal(route_table_parse(&rt, map, &cfg, err, sizeof(err)), 0);
    text = haproxy_text(&rt, &cfg);
    assert_null(strstr(text, "resolvers"));
    assert_null(strstr(text, "be_origin_named"));
    free(text);
}

static void test_haproxy_escaping(void **state)
{
    (void)state;
    struct sluice_config cfg;
    struct route_table rt;
    config_defaults(&cfg);
    assert_int_equal(config_set(&cfg, "origin_w", "http://127.0.0.1/b'a$s,e(1)", err,
                                sizeof(err)),
                     0);
    assert_int_equal(route_table_parse(&rt, "/a.b+c(d)$e*f,g'h/ w\n", &cfg, err, sizeof(err)),
                     0);
    char *text = haproxy_text(&rt, &cfg);
    /* regex metacharacters get a backslash (doubled for the config line), '$'
     * is protected from env expansion, a quote leaves and re-enters quoting */
    expect_line(text, "    http-request set-path \"%[path,regsub("
                      "'^/a\\\\.b\\\\+c\\\\(d\\\\)\\\\\\$e\\\\*f,g'\\\\''h/',"
                      "'/b'\\\\''a\\$s,e(1)/')]\"");
    free(text);
}

/* Write text, then (with rt) the generated fragment, then tail to a temp file. */
static void write_temp(char *path, const char *text, const struct route_table *rt,
                       const struct sluice_config *cfg, const char *tail)
{
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    if (text)
        fputs(text, f);
    if (rt)
        haproxy_gen_print(rt, cfg, f);
    if (tail)
        fputs(tail, f);
    fclose(f);
}

/* `haproxy -c` on the given files; fails on any alert, and on any warning
 * except "could not resolve" (tests may run without DNS). */
static void haproxy_check(const char *files)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "haproxy -c %s 2>&1", files);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[1024];
    bool bad = false;
    while (fgets(line, sizeof(line), p)) {
        if (strstr(line, "ALERT") ||
            (strstr(line, "WARNING") && !strstr(line, "could not resolve address")))
            bad = true;
        if (bad)
            fputs(line, stderr);
    }
    int rc = pclose(p);
    if (bad || rc != 0)
        fail_msg("haproxy -c %s failed (status %d)", files, rc);
}

/*
 * The fragment as deployed: loaded first (its setenv lines must precede the
 * frontend that uses them), then a config with defaults and a frontend that
 * routes with map_beg on the same map. Also the other way round, after a
 * defaults section, as a standalone check.
 */
static void test_haproxy_config_check(void **state)
{
    (void)state;
    if (system("command -v haproxy >/dev/null 2>&1") != 0)
        skip();
    struct sluice_config cfg;
    struct route_table rt;
    config_defaults(&cfg);
    assert_int_equal(config_set(&cfg, "origin_generic", "http://[::1]:9/g", err, sizeof(err)),
                     0);
    assert_int_equal(config_set(&cfg, "origin_odd", "http://127.0.0.1:9/b'a$s,e", err,
                                sizeof(err)),
                     0);
    char map[1024];
    snprintf(map, sizeof(map), "%s/o.d+d(x)$y,z'q/ odd\n/short short\n", shipped_map);
    assert_int_equal(config_set(&cfg, "origin_short", "https://127.0.0.1", err, sizeof(err)),
                     0);
    char map_path[] = "/tmp/sluice-test-hmap-XXXXXX";
    write_temp(map_path, map, NULL, NULL, NULL);
    assert_int_equal(route_table_load(&rt, map_path, &cfg, err, sizeof(err)), 0);

    static const char defaults[] = "defaults\n    mode http\n    timeout connect 5s\n"
                                   "    timeout client 30s\n    timeout server 30s\n";
    char frontend[256], rest[512];
    snprintf(frontend, sizeof(frontend),
             "\nfrontend edge\n    bind \"$SLUICE_LISTEN\"\n"
             "    use_backend be_origin_%%[path,map_beg(%s)]\n",
             map_path);
    snprintf(rest, sizeof(rest), "%s%s", defaults, frontend);

    char frag_path[] = "/tmp/sluice-test-hfrag-XXXXXX";
    char rest_path[] = "/tmp/sluice-test-hrest-XXXXXX";
    char both_path[] = "/tmp/sluice-test-hboth-XXXXXX";
    write_temp(frag_path, NULL, &rt, &cfg, NULL);
    write_temp(rest_path, rest, NULL, NULL, NULL);
    write_temp(both_path, defaults, &rt, &cfg, frontend);

    char files[256];
    snprintf(files, sizeof(files), "-f %s -f %s", frag_path, rest_path);
    haproxy_check(files);
    snprintf(files, sizeof(files), "-f %s", both_path);
    haproxy_check(files);

    unlink(map_path);
    unlink(frag_path);
    unlink(rest_path);
    unlink(both_path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_haproxy_shipped),
        cmocka_unit_test(test_haproxy_unix_addresses),
        cmocka_unit_test(test_haproxy_edge_tier_off),
        cmocka_unit_test(test_haproxy_literals_and_ports),
        cmocka_unit_test(test_haproxy_escaping),
        cmocka_unit_test(test_haproxy_config_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
