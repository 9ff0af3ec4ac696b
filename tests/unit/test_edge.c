/*
 * test_edge.c - the edge memory tier's agent half (serve/edge.h): which
 * hits HAProxy may keep and for how long, how the edge map is found in a
 * `show map` reply, generations that only grow, a purge with no HAProxy
 * to tell, and the tier's counts read from a `show stat` reply (a real
 * one, and replies that must not parse). Storing, serving and emptying the tier through a real
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

static const char SHOW_STAT[] =
    /* `show stat -1 1 -1` of HAProxy 2.6.12 with haproxy/haproxy.cfg, after
     * 7 GETs of which 2 were answered from the tier */
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,s"
    "tatus,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,"
    "type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hr"
    "sp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp"
    "_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_cod"
    "e,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,"
    "agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,c"
    "onnect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,"
    "eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_serve"
    "r_check_status,agg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,"
    "h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,h2_detected_conn_protocol_errors"
    ",h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backe"
    "nd_open_streams,h2_total_connections,h2_backend_total_streams,h1_open_connections,h1_open_stream"
    "s,h1_total_connections,h1_total_streams,h1_bytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_"
    "bytes_out,\n"
    "edge,FRONTEND,,,0,2,8192,7,475,7624,0,0,0,,,,,OPEN,,,,,,,,,1,3,0,,,,0,7,0,7,,,,0,6,0,1,0,0,,7,7,"
    "7,,,0,0,0,0,,,,,,,,,,,,,,,,,,,,,http,,7,7,7,2,0,0,0,,,7,2,,,,,,,0,,,,,,,,,-,0,0,0,0,0,0,0,0,0,0,"
    "0,0,0,0,0,0,0,0,7,7,398,7674,0,0,\n"
    "fe_sluice_pass,FRONTEND,,,0,0,8192,0,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,5,0,,,,0,0,0,0,,,,0,0,0,0,0,0,"
    ",0,0,0,,,0,0,0,0,,,,,,,,,,,,,,,,,,,,,http,,0,0,0,0,0,0,0,,,0,0,,,,,,,0,,,,,,,,,-,0,0,0,0,0,0,0,0"
    ",0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,\n";

static void test_counts_from_show_stat(void **state)
{
    (void)state;
    struct edge_counts c = { 0, 0 };
    assert_true(edge_parse_stats(SHOW_STAT, "edge", &c));
    assert_int_equal(c.lookups, 7);
    assert_int_equal(c.hits, 2);
    assert_true(edge_parse_stats(SHOW_STAT, "fe_sluice_pass", &c));
    assert_int_equal(c.lookups, 0);
    assert_false(edge_parse_stats(SHOW_STAT, "edg", &c));        /* a prefix is not the name */
    assert_false(edge_parse_stats(SHOW_STAT, "nosuch", &c));
}

static void test_bad_show_stat_replies(void **state)
{
    (void)state;
    struct edge_counts c = { 0, 0 };
    assert_false(edge_parse_stats("", "edge", &c));
    assert_false(edge_parse_stats("Permission denied.\n", "edge", &c));
    assert_false(edge_parse_stats("# pxname,svname,stot\nedge,FRONTEND,3\n", "edge", &c));   /* no cache columns */
    assert_false(edge_parse_stats("# pxname,svname,cache_lookups,cache_hits\nedge,FRONTEND,x,1\n", "edge", &c));
    assert_false(edge_parse_stats("# pxname,svname,cache_lookups,cache_hits\nedge,FRONTEND,5\n", "edge", &c));
    assert_false(edge_parse_stats("# pxname,svname,cache_lookups,cache_hits\nedge,FRONTEND,,1\n", "edge", &c));
    assert_false(edge_parse_stats("# pxname,svname,cache_lookups,cache_hits\n"
                                  "edge,FRONTEND,99999999999999999999999,1\n", "edge", &c));     /* overflow */
    assert_false(edge_parse_stats("# pxname,svname,cache_lookups,cache_hits\nedge,BACKEND,5,1\n", "edge", &c));
    assert_true(edge_parse_stats("# pxname,svname,cache_lookups,cache_hits\nedge,FRONTEND,5,1", "edge", &c));
    assert_int_equal(c.lookups, 5);   /* the last line needs no newline */
    assert_int_equal(c.hits, 1);
}

static void test_no_haproxy_is_nothing_to_empty(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(edge_flush("/nonexistent-sluice-dir", 1, err, sizeof(err)), EDGE_NO_TIER);
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
        cmocka_unit_test(test_counts_from_show_stat),
        cmocka_unit_test(test_bad_show_stat_replies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
