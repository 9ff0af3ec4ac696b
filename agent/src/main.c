/*
 * main.c - the sluice agent: parse options, load config and routes, open
 * the cache, start the listeners and run the loop until SIGTERM/SIGINT.
 *
 * Start-up order matters: temp debris from a crash is swept before anything
 * can write, and the index rebuild runs on the worker pool while the
 * listeners already answer (until it finishes, unknown keys are simply
 * misses, and a fill that commits meanwhile wins over the scan's entry).
 *
 * Shutdown: stop accepting, tell HAProxy (SPOP DISCONNECT status 0), abort
 * running fills so their temp files are removed, let the worker jobs drain
 * (bounded), then exit. HAProxy fails open while the agent is away.
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
#include "eco/digest_notes.h"
#include "fill/fill.h"
#include "http/http_server.h"
#include "core/log.h"
#include "origin/origin.h"
#include "route/haproxy_gen.h"
#include "serve/serve.h"
#include "spop/spop_server.h"
#include "core/workers.h"

extern char **environ;

#define DRAIN_DEADLINE_S 5.0

static struct agent the_agent;
static ev_timer drain_timer;
static double drain_started;

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

static void on_drain_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    SL_UNUSED(w);
    SL_UNUSED(revents);
    struct agent *a = &the_agent;
    if (workers_pending(a->workers) == 0 || ev_now(loop) - drain_started > DRAIN_DEADLINE_S)
        ev_break(loop, EVBREAK_ALL);
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    SL_UNUSED(revents);
    struct agent *a = &the_agent;
    if (a->stopping)
        return;
    log_info("received signal %d, shutting down", w->signum);
    a->stopping = true;
    spop_server_stop(a->spop);
    a->spop = NULL;
    http_server_stop(a->http);
    a->http = NULL;
    http_server_stop(a->admin);
    a->admin = NULL;
    fill_abort_all(a);
    l2_drop_queue(a);
    drain_started = ev_now(loop);
    ev_timer_init(&drain_timer, on_drain_tick, 0.01, 0.05);
    ev_timer_start(loop, &drain_timer);
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

static int start_listeners(struct agent *a)
{
    char err[256];
    a->spop = spop_server_start(a->loop, a->cfg.spop_listen, serve_verdict, a, err, sizeof(err));
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
        index_free(&a->index);
        store_close(&a->store);
        return 1;
    }
    a->origins = origin_client_new(a->loop, a->cfg.origin_connect_timeout, a->cfg.origin_stall_timeout);
    slots_init(&a->slots, a->loop, &a->routes, &a->cfg);
    a->notes = digest_notes_new((size_t)a->cfg.integrity_notes);
    cache_start_scan(a);
    int rc = start_listeners(a);
    if (rc == 0) {
        ev_signal sig_term, sig_int;
        ev_signal_init(&sig_term, on_signal, SIGTERM);
        ev_signal_init(&sig_int, on_signal, SIGINT);
        ev_signal_start(a->loop, &sig_term);
        ev_signal_start(a->loop, &sig_int);
        ev_run(a->loop, 0);
        ev_signal_stop(a->loop, &sig_term);
        ev_signal_stop(a->loop, &sig_int);
        ev_timer_stop(a->loop, &drain_timer);
    } else {
        a->stopping = true;
        spop_server_stop(a->spop);
        http_server_stop(a->http);
        http_server_stop(a->admin);
    }
    workers_stop(a->workers);
    l2_close(a);
    origin_client_free(a->origins);
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
    case 'k': printf("configuration ok: %d routes\n", a->routes.n); return 0;
    case 'p': config_print(&a->cfg, stdout); return 0;
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
