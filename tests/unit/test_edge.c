/*
 * test_edge.c - the edge memory tier's agent half (serve/edge.h): which
 * hits HAProxy may keep and for how long, how the edge map is found in a
 * `show map` reply, generations that only grow, and a purge with no
 * HAProxy to tell. Storing, serving and emptying the tier through a real
 * HAProxy: tests/integration/test_edge_tier.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/config.h"
#include "serve/edge.h"

static struct sluice_config cfg;

static int setup(void **state)
{
    (void)state;
    config_defaults(&cfg);
    return 0;
}

static void test_only_small_whole_immutable_200s(void **state)
{
    (void)state;
    struct canon cn = { .cls = ECO_IMMUTABLE };
    struct obj_meta m = { .status = 200, .size = 1024 };
    assert_int_equal(edge_ttl(&cfg, &cn, &m, 200, true), 3600);   /* edge_tier_ttl 1h */
    assert_int_equal(edge_ttl(&cfg, &cn, &m, 200, false), 0);     /* rewritten, or HEAD */
    assert_int_equal(edge_ttl(&cfg, &cn, &m, 304, true), 0);      /* a conditional's answer */
    assert_int_equal(edge_ttl(&cfg, &cn, &m, 206, true), 0);
    m.size = 65536;
    assert_int_equal(edge_ttl(&cfg, &cn, &m, 200, true), 3600);   /* edge_tier_max_size, inclusive */
    m.size = 65537;
    assert_int_equal(edge_ttl(&cfg, &cn, &m, 200, true), 0);
    m.size = 0;
    assert_int_equal(edge_ttl(&cfg, &cn, &m, 200, true), 0);
    m = (struct obj_meta){ .status = 404, .size = 10 };             /* negative caching */
    assert_int_equal(edge_ttl(&cfg, &cn, &m, 200, true), 0);
    m = (struct obj_meta){ .status = 200, .size = 10 };
    cn.cls = ECO_METADATA;                                          /* freshness rules: the agent's */
    assert_int_equal(edge_ttl(&cfg, &cn, &m, 200, true), 0);
    cn.cls = ECO_IMMUTABLE;
    cfg.edge_tier_max_size = 0;                                     /* off */
    assert_int_equal(edge_ttl(&cfg, &cn, &m, 200, true), 0);
}

static void test_header_lines(void **state)
{
    (void)state;
    struct http_head h = { 0 };
    assert_true(edge_put_lines(&h, 3600));
    assert_string_equal(h.buf, "X-Sluice-Edge-TTL: 3600\r\n");
}

static void test_map_id_from_show_map(void **state)
{
    (void)state;
    const char *reply =
        "# id (file) description\n"
        "0 (/srv/haproxy/routes.map) pattern loaded from file '/srv/haproxy/routes.map' used by map at file "
        "'haproxy.cfg' line 120. curr_ver=0 next_ver=0 entry_cnt=8\n"
        "3 (/srv/haproxy/edge.map) pattern loaded from file '/srv/haproxy/edge.map' used by map at file "
        "'haproxy.cfg' line 160. curr_ver=0 next_ver=0 entry_cnt=1\n\n";
    assert_int_equal(edge_map_id(reply), 3);
    assert_int_equal(edge_map_id("# id (file) description\n0 (/x/routes.map) ...\n"), -1);
    assert_int_equal(edge_map_id(""), -1);
    assert_int_equal(edge_map_id("# 7 (/x/edge.map)\n"), -1);   /* a comment is not a map */
    assert_int_equal(edge_map_id("Permission denied\n"), -1);
}

static void test_generations_grow(void **state)
{
    (void)state;
    int64_t g = edge_next_generation();
    for (int i = 0; i < 1000; i++) {
        int64_t next = edge_next_generation();
        assert_true(next > g);
        g = next;
    }
}

static void test_no_haproxy_is_nothing_to_empty(void **state)
{
    (void)state;
    char err[256];
    strcpy(cfg.haproxy_socket_dir, "/nonexistent-sluice-dir");
    assert_int_equal(edge_flush(&cfg, 1, err, sizeof(err)), EDGE_NO_TIER);
    assert_non_null(strstr(err, "haproxy.sock"));
    assert_string_equal(edge_flush_result_name(EDGE_FAILED), "failed");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_only_small_whole_immutable_200s, setup),
        cmocka_unit_test_setup(test_header_lines, setup),
        cmocka_unit_test_setup(test_map_id_from_show_map, setup),
        cmocka_unit_test_setup(test_generations_grow, setup),
        cmocka_unit_test_setup(test_no_haproxy_is_nothing_to_empty, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
