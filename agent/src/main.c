/*
 * main.c - the sluice agent: parse options, load config and routes, open
 * the cache, start the listeners and run the loop until SIGTERM/SIGINT.
 *
 * Start-up order matters: temp debris from a crash is swept before anything
 * can write, and the index rebuild runs on the worker pool while the
 * listeners already answer (until it finishes, unknown keys are simply
 * misses, and a fill that commits meanwhile wins over the scan's entry).
 *
 * Reload (SIGHUP): the config file, the environment and the route map are
 * read into fresh structures and checked; only then are they applied, all
 * in one loop callback, so a bad configuration changes nothing. Routes are
 * updated in place (route.c: a route never moves, so the `struct route *`
 * that fills, transfers and slots hold stay valid); settings that need a
 * restart keep their running value (config_keep_restart_settings).
 *
 * Shutdown (SIGTERM/SIGINT) is a drain: stop accepting on the SPOP and HTTP
 * listeners, say SPOP DISCONNECT status 0 on each connection (HAProxy
 * fails open from then on), let the HTTP side finish the responses it is
 * sending for up to drain_timeout (a->stopping is what /readyz reports
 * meanwhile), then abort what is left (fills' temp files are removed), let
 * the worker jobs drain (bounded) and exit 0. A second signal skips the
 * wait.
 */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/agent.h"
#include "store/cache.h"
#include "core/common.h"
#include "store/fault.h"
#include "store/l2.h"
#include "store/s3.h"
#include "eco/digest_notes.h"
#include "fill/fill.h"
#include "http/http_server.h"
#include "core/log.h"
#include "core/net.h"
#include "origin/origin.h"
#include "route/haproxy_gen.h"
#include "serve/edge_stats.h"
#include "serve/serve.h"
#include "spop/spop_server.h"
#include "core/workers.h"

extern char **environ;

#define WORKERS_DEADLINE_S 5.0
#define DRAIN_TICK_S 0.05

static struct agent the_agent;
static ev_timer drain_timer;
static double drain_started;
static bool cutting;   /* the drain is over: listeners gone, fills aborted */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: sluice [-c FILE] [--check | --print-config | --print-haproxy | --print-config-doc]\n"
            "  -c, --config FILE     config file (default: $SLUICE_CONFIG, else built-in defaults)\n"
            "      --check           validate the configuration and the route map, then exit\n"
            "      --print-config    print the effective configuration\n"
            "      --print-haproxy   print the generated HAProxy backends/env for the routes\n"
            "      --print-config-doc  print the settings table (markdown)\n"
            "Every setting can be overridden with SLUICE_<NAME> in the environment.\n");
}

/* Listeners and connections go, running fills are aborted; the worker
 * jobs get WORKERS_DEADLINE_S to finish. */
static void cut(struct agent *a, struct ev_loop *loop)
{
    cutting = true;
    spop_server_stop(a->spop);
    a->spop = NULL;
    http_server_stop(a->http);
    a->http = NULL;
    http_server_stop(a->admin);
    a->admin = NULL;
    fill_abort_all(a);
    l2_drop_queue(a);
    drain_started = ev_now(loop);
}

static void on_drain_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    SL_UNUSED(w);
    SL_UNUSED(revents);
    struct agent *a = &the_agent;
    double waited = ev_now(loop) - drain_started;
    if (cutting) {
        if (workers_pending(a->workers) == 0 || waited > WORKERS_DEADLINE_S)
            ev_break(loop, EVBREAK_ALL);
        return;
    }
    int busy = http_server_busy(a->http);
    if (busy > 0 && waited * 1000.0 < (double)a->cfg.drain_timeout)
        return;
    if (busy > 0)
        log_warn("drain: %d transfer(s) still running after drain_timeout (%.1fs), cutting them", busy,
                 (double)a->cfg.drain_timeout / 1000.0);
    else
        log_info("drain: every transfer finished after %.1fs", waited);
    cut(a, loop);
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    SL_UNUSED(revents);
    struct agent *a = &the_agent;
    if (a->stopping) {
        if (!cutting) {
            log_info("received signal %d again, cutting the drain short", w->signum);
            cut(a, loop);
        }
        return;
    }
    log_info("received signal %d: draining (up to %.1fs), then exiting", w->signum,
             (double)a->cfg.drain_timeout / 1000.0);
    a->stopping = true;
    edge_stats_stop(a);
    spop_server_drain(a->spop);
    http_server_drain(a->http);
    drain_started = ev_now(loop);
    ev_timer_init(&drain_timer, on_drain_tick, 0., DRAIN_TICK_S);
    ev_timer_start(loop, &drain_timer);
}

/* Read and check a whole new configuration; apply nothing. */
static int reload_read(struct agent *a, struct sluice_config *cfg, struct route_table *rt, char *err,
                       size_t errlen)
{
    if (config_load(cfg, a->config_path, environ, err, errlen) != 0)
        return -1;
    return route_table_load(rt, cfg->routes_map, cfg, err, errlen);
}

/* A reload that names another log_file (or stderr) switches to it; when
 * it cannot be opened, the running one stays, in cfg too. */
static void reload_log_file(const char *was, char *now, size_t nowlen)
{
    if (strcmp(was, now) == 0)
        return;
    log_info("reload: log lines go to %s from here on", now[0] ? now : "stderr");   /* the old one's last */
    int rc = log_open(now);
    if (rc == 0)
        return;
    log_warn("reload: cannot open log_file %s: %s; logging goes on to %s", now, strerror(-rc),
             was[0] ? was : "stderr");
    sl_strlcpy(now, was, nowlen);
}

static void apply_spop_limits(struct agent *a)
{
    struct spop_limits l = { a->cfg.spop_frame_timeout, a->cfg.spop_idle_timeout, a->cfg.spop_max_connections };
    spop_server_set_limits(a->spop, &l);
}

/* Apply a checked configuration (routes already updated in place). */
static void reload_apply(struct agent *a, struct sluice_config *cfg)
{
    int kept = config_keep_restart_settings(cfg, &a->cfg);
    reload_log_file(a->cfg.log_file, cfg->log_file, sizeof(cfg->log_file));
    a->cfg = *cfg;
    int lvl = log_level_parse(a->cfg.log_level);
    log_set_level(lvl < 0 ? LOG_INFO : (enum log_level)lvl);
    slots_reconfigure(&a->slots, &a->cfg);
    origin_client_set_timeouts(a->origins, a->cfg.origin_connect_timeout, a->cfg.origin_stall_timeout);
    origin_client_set_header_timeout(a->origins, a->cfg.origin_header_timeout);
    http_server_set_stall_timeout(a->http, a->cfg.client_stall_timeout);
    http_server_set_stall_timeout(a->admin, a->cfg.client_stall_timeout);
    apply_spop_limits(a);
    /* public_url or the routes may have changed: every kept rewrite goes */
    rwcache_configure(&a->rwcache, a->cfg.rewrite_cache_size, a->cfg.rewrite_cache_object_max);
    a->m.reloads[0]++;
    a->m.config_generation++;
    a->m.config_loaded_wall = (uint64_t)sl_wall_s();
    log_info("reload: configuration %llu applied (%d route(s) known%s)", (unsigned long long)a->m.config_generation,
             a->routes.n, kept ? "; some settings wait for a restart, see above" : "");
}

static void on_reload(struct ev_loop *loop, ev_signal *w, int revents)
{
    SL_UNUSED(loop);
    SL_UNUSED(w);
    SL_UNUSED(revents);
    struct agent *a = &the_agent;
    if (a->stopping)
        return;
    int lrc = log_reopen();   /* logrotate renamed the file: lines go to a new one at its name */
    if (lrc != 0)
        log_warn("reload: cannot reopen log_file %s: %s; logging to the file already open", a->cfg.log_file,
                 strerror(-lrc));
    char err[512];
    struct sluice_config *cfg = sl_calloc(1, sizeof(*cfg));
    struct route_table *rt = sl_calloc(1, sizeof(*rt));
    if (reload_read(a, cfg, rt, err, sizeof(err)) == 0 && route_table_update(&a->routes, rt, err, sizeof(err)) == 0) {
        reload_apply(a, cfg);
    } else {
        a->m.reloads[1]++;
        log_error("reload refused, the running configuration stays in force: %s", err);
    }
    free(rt);
    free(cfg);
}

/* Every client, origin connection, spool file and cached open object is a
 * descriptor: use all the process may have (like nginx's rlimit_nofile). */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            log_warn("cannot raise the descriptor limit: %s", strerror(errno));
    }
}

static int load(struct agent *a, const char *config_path)
{
    char err[512];
    a->config_path = config_path;
    if (config_load(&a->cfg, config_path, environ, err, sizeof(err)) != 0) {
        fprintf(stderr, "sluice: %s\n", err);
        return -1;
    }
    int lvl = log_level_parse(a->cfg.log_level);
    log_set_level(lvl < 0 ? LOG_INFO : (enum log_level)lvl);
    if (route_table_load(&a->routes, a->cfg.routes_map, &a->cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "sluice: %s\n", err);
        return -1;
    }
    return 0;
}

/* "set" or "not set" for each credential of the S3 tier (never a value). */
static void print_s3_credentials(FILE *out)
{
    static const char *const vars[] = { "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN" };
    fputs("# s3 credentials:", out);
    for (size_t i = 0; i < SL_ARRAY_LEN(vars); i++) {
        const char *v = getenv(vars[i]);
        fprintf(out, "%s %s %s", i ? "," : "", vars[i], v && v[0] ? "set" : "not set");
    }
    fputs("\n", out);
}

/* --check of the S3 tier's settings together (each alone is checked as
 * it is set). 0 or -1 with the reason printed. */
static int check_s3(const struct sluice_config *cfg)
{
    struct s3_settings s;
    char endpoint[CONFIG_URL_MAX];
    if (!s3_settings_from_config(cfg, &s, endpoint, sizeof(endpoint)))
        return 0;
    const char *why = s3_settings_check(&s);
    if (!why && (!s.access_key || !s.access_key[0] || !s.secret_key || !s.secret_key[0]))
        why = "s3_bucket is set: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set";
    if (why)
        fprintf(stderr, "sluice: s3 tier: %s\n", why);
    return why ? -1 : 0;
}

static int start_listeners(struct agent *a)
{
    char err[256];
    struct net_unix_perm perm;
    int rc = net_unix_perm_parse(a->cfg.unix_socket_mode, a->cfg.unix_socket_group, &perm, err, sizeof(err));
    SL_ASSERT(rc == 0);   /* both were checked when they were set */
    net_set_unix_perm(&perm);
    a->spop = spop_server_start(a->loop, a->cfg.spop_listen, serve_verdict, a, err, sizeof(err));
    if (a->spop)
        apply_spop_limits(a);
    if (a->spop)
        a->http = http_server_start(a->loop, a->cfg.http_listen, serve_http, a, a->cfg.client_stall_timeout,
                                    err, sizeof(err));
    if (a->http)
        a->admin = http_server_start(a->loop, a->cfg.admin_listen, serve_admin, a, a->cfg.client_stall_timeout,
                                     err, sizeof(err));
    if (!a->admin) {
        log_error("%s", err);
        return -1;
    }
    http_server_allow_delete(a->admin);   /* the admin API's purge */
    log_info("listening: spop %s, http %s, admin %s; cache %s (max %llu bytes)", a->cfg.spop_listen,
             a->cfg.http_listen, a->cfg.admin_listen, a->cfg.cache_dir,
             (unsigned long long)a->cfg.cache_max_size);
    return 0;
}

static int run(struct agent *a)
{
    char err[512];
    if (store_init(&a->store, a->cfg.cache_dir, err, sizeof(err)) != 0) {
        log_error("%s", err);
        return 1;
    }
    int64_t fs_size = store_fs_size(&a->store);
    if (fs_size > 0 && a->cfg.cache_min_free >= (uint64_t)fs_size / 2)
        log_warn("cache_min_free (%llu bytes) is at least half of the cache filesystem (%lld bytes): "
                 "most committed objects will be evicted at once; lower cache_min_free",
                 (unsigned long long)a->cfg.cache_min_free, (long long)fs_size);
    int swept = store_sweep_temp(&a->store);
    a->m.temp_swept = (uint64_t)swept;
    if (swept)
        log_info("cache: removed %d leftover temp file(s)", swept);
#ifdef SLUICE_TESTING
    const char *fault = getenv("SLUICE_FAULT");
    if (fault && *fault && fault_configure(fault, err, sizeof(err)) != 0) {
        log_error("SLUICE_FAULT: %s", err);
        return 1;
    }
#endif
    a->loop = ev_default_loop(EVFLAG_AUTO);
    a->started_wall = sl_wall_s();
    a->m.config_generation = 1;
    a->m.config_loaded_wall = (uint64_t)a->started_wall;
    index_init(&a->index);
    list_init(&a->paused);
    a->workers = workers_start(a->loop, (int)a->cfg.workers, a->cfg.worker_cpus, err, sizeof(err));
    if (!a->workers) {
        log_error("%s", err);
        index_free(&a->index);
        store_close(&a->store);
        return 1;
    }
    /* The tiers after L1, in lookup order (store/l2.h). */
    if (l2_open(a, err, sizeof(err)) != 0) {
        log_error("%s", err);
        workers_stop(a->workers);
        l2_close(a);
        index_free(&a->index);
        store_close(&a->store);
        return 1;
    }
    a->origins = origin_client_new(a->loop, a->cfg.origin_connect_timeout, a->cfg.origin_stall_timeout);
    origin_client_set_header_timeout(a->origins, a->cfg.origin_header_timeout);
    slots_init(&a->slots, a->loop, &a->routes, &a->cfg);
    a->notes = digest_notes_new((size_t)a->cfg.integrity_notes);
    rwcache_init(&a->rwcache, a->cfg.rewrite_cache_size, a->cfg.rewrite_cache_object_max);
    if (chunk_pool_init(&a->chunks, spool_chunk_size(), a->cfg.spool_memory_max) != 0)
        log_warn("spool: cannot reserve %llu bytes for the chunk pool (%s); chunks come from malloc",
                 (unsigned long long)a->cfg.spool_memory_max, strerror(errno));
    else
        chunk_pool_prefault(&a->chunks, a->cfg.spool_memory_prefault);
    if (!sl_heap_prefault((size_t)a->cfg.heap_prefault) && a->cfg.heap_prefault > 0)
        log_info("heap: heap_prefault not applied (not glibc's allocator)");
    cache_start_scan(a);
    int rc = start_listeners(a);
    if (rc == 0) {
        edge_stats_start(a);
        ev_signal sig_term, sig_int, sig_hup;
        ev_signal_init(&sig_term, on_signal, SIGTERM);
        ev_signal_init(&sig_int, on_signal, SIGINT);
        ev_signal_init(&sig_hup, on_reload, SIGHUP);
        ev_signal_start(a->loop, &sig_term);
        ev_signal_start(a->loop, &sig_int);
        ev_signal_start(a->loop, &sig_hup);
        ev_run(a->loop, 0);
        ev_signal_stop(a->loop, &sig_term);
        ev_signal_stop(a->loop, &sig_int);
        ev_signal_stop(a->loop, &sig_hup);
        ev_timer_stop(a->loop, &drain_timer);
        edge_stats_stop(a);
    } else {
        a->stopping = true;
        spop_server_stop(a->spop);
        http_server_stop(a->http);
        http_server_stop(a->admin);
    }
    workers_stop(a->workers);
    l2_close(a);
    origin_client_free(a->origins);
    rwcache_free(&a->rwcache);
    chunk_pool_free(&a->chunks);
    digest_notes_free(a->notes);
    index_free(&a->index);
    store_close(&a->store);
    log_info("stopped");
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "check", no_argument, NULL, 'k' },
        { "print-config", no_argument, NULL, 'p' },
        { "print-haproxy", no_argument, NULL, 'H' },
        { "print-config-doc", no_argument, NULL, 'd' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *config_path = getenv("SLUICE_CONFIG");
    int action = 0, opt;
    while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'c': config_path = optarg; break;
        case 'k': case 'p': case 'H': case 'd': action = opt; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    if (action == 'd') {
        config_print_markdown(stdout);
        return 0;
    }
    struct agent *a = &the_agent;
    a->magic = AGENT_MAGIC;
    if (load(a, config_path) != 0)
        return 1;
    switch (action) {
    case 'k':
        if (check_s3(&a->cfg) != 0)
            return 1;
        printf("configuration ok: %d routes\n", a->routes.n);
        print_s3_credentials(stdout);
        return 0;
    case 'p':
        config_print(&a->cfg, stdout);
        print_s3_credentials(stdout);
        return 0;
    case 'H': haproxy_gen_print(&a->routes, &a->cfg, stdout); return 0;
    default: break;
    }
    int lrc = log_open(a->cfg.log_file);
    if (lrc != 0) {
        fprintf(stderr, "sluice: log_file %s: %s\n", a->cfg.log_file, strerror(-lrc));
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = run(a);
    curl_global_cleanup();
    return rc;
}
