/*
 * metrics.c - Prometheus text exposition of the agent's state (see
 * metrics.h). Names follow Prometheus conventions: `_total` for counters,
 * base units (bytes, seconds).
 *
 * Every plain metric is a row of one of two tables: route_rows (a field of
 * struct route_counters, one series per route with a `route` label) and
 * agent_rows (a field of struct metrics, or a reader for a gauge another
 * module owns). Families with labels of their own (verdicts, reasons,
 * outcomes, histograms) have a renderer each, listed in metrics_render.
 * Series are sums and readings at render time; rendering changes nothing.
 */
#include "core/metrics.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "core/agent.h"
#include "core/common.h"
#include "core/workers.h"
#include "http/http_server.h"
#include "origin/origin.h"
#include "serve/edge.h"
#include "spop/spop_server.h"
#include "store/store.h"
#include "store/tier.h"

static const char *const wfail_names[WFAIL_REASONS] = {
    "enospc", "edquot", "eio", "short_write", "timeout", "lag", "too_large", "origin", "invalid", "integrity",
    "purged", "other",
};

const char *const verdict_names[VERDICT_KINDS] = { "hit", "fill", "pass", "busy", "inline", "reject", "redirect" };

const char *write_fail_reason_name(enum write_fail_reason r)
{
    return (unsigned)r < WFAIL_REASONS ? wfail_names[r] : "other";
}

enum write_fail_reason write_fail_reason_from_errno(int err)
{
    switch (err) {
    case ENOSPC: return WFAIL_ENOSPC;
    case EDQUOT: return WFAIL_EDQUOT;
    case EIO:    return WFAIL_EIO;
    case STORE_ESHORT: return WFAIL_SHORT;
    default:     return WFAIL_OTHER;
    }
}

struct route_counters *metrics_route(struct agent *a, const struct route *r)
{
    if (!r)
        return &a->m.route[METRICS_NO_ROUTE];
    ptrdiff_t i = r - a->routes.routes;
    SL_ASSERT(i >= 0 && i < a->routes.n);
    return &a->m.route[i];
}

/* ------------------------------------------------------------- output */

struct out {
    char *buf;
    size_t len, cap;
};

static void emit(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(struct out *o, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        SL_ASSERT(n >= 0);
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        o->cap = o->cap * 2 + (size_t)n;
        o->buf = sl_realloc(o->buf, o->cap);
    }
}

static void family(struct out *o, const char *name, const char *type, const char *help)
{
    emit(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The label value of route i (METRICS_NO_ROUTE: "none"). */
static const char *route_label(const struct agent *a, int i)
{
    return i == METRICS_NO_ROUTE ? "none" : a->routes.routes[i].name;
}

/* Route indexes to render: every route of the table, then "none"; -1 ends. */
static int next_route(const struct agent *a, int i)
{
    if (i == METRICS_NO_ROUTE)
        return -1;
    return i + 1 < a->routes.n ? i + 1 : METRICS_NO_ROUTE;
}

#define FOR_EACH_ROUTE(a, i) for (int i = next_route((a), -1); i >= 0; i = next_route((a), i))

/* ------------------------------------------------------ the two tables */

struct metric_row {
    const char *name;
    const char *type;             /* "counter" or "gauge" */
    const char *help;
    size_t offset;                /* of a uint64_t in its struct ... */
    double (*read)(const struct agent *a);   /* ... or a reader (agent rows only) */
};

#define RC(f) offsetof(struct route_counters, f)
static const struct metric_row route_rows[] = {
    { "sluice_hits_total", "counter",
      "Responses served from a committed object by the agent (not the edge memory tier's: HAProxy counts those).",
      RC(hits), NULL },
    { "sluice_misses_total", "counter",
      "Requests that started a fill (became its leader); background refetches are not counted.", RC(misses), NULL },
    { "sluice_followers_total", "counter", "Requests attached to a running fill.", RC(followers), NULL },
    { "sluice_fill_late_joins_total", "counter",
      "Followers that attached to a fill after its last body byte had arrived, while it was committed "
      "(served from the finished spool: Cache-Status hit; detail=committing).", RC(late_joins), NULL },
    { "sluice_not_modified_total", "counter", "304 responses.", RC(not_modified), NULL },
    { "sluice_range_responses_total", "counter", "206 responses.", RC(range_responses), NULL },
    { "sluice_hit_bytes_total", "counter", "Body bytes served from committed objects.", RC(bytes_hit), NULL },
    { "sluice_fill_bytes_total", "counter", "Body bytes served from running fills.", RC(bytes_fill), NULL },
    { "sluice_fills_committed_total", "counter", "Objects committed to the cache.", RC(fills_committed), NULL },
    { "sluice_fills_failed_total", "counter", "Fills whose origin transfer failed or was aborted.",
      RC(fills_failed), NULL },
    { "sluice_fills_not_cacheable_total", "counter", "Fills whose response was not stored (status, size).",
      RC(fills_not_cacheable), NULL },
    { "sluice_revalidated_total", "counter", "Stored metadata the origin confirmed current (304).",
      RC(revalidated), NULL },
    { "sluice_stale_served_total", "counter",
      "Stale metadata served at once while one background revalidation ran (stale-while-revalidate).",
      RC(stale_while_revalidate), NULL },
    { "sluice_stale_if_error_total", "counter",
      "Stale metadata served because the origin failed or its queue was full (stale-if-error).",
      RC(stale_if_error), NULL },
    { "sluice_integrity_verified_total", "counter",
      "Artifact fills whose body matched the digest its ecosystem published (verified while streaming).",
      RC(integrity_verified), NULL },
    { "sluice_integrity_failures_total", "counter",
      "Artifact fills whose body did not match its published digest: every client's transfer aborted, "
      "nothing stored.", RC(integrity_failures), NULL },
    { "sluice_integrity_unknown_total", "counter",
      "Artifact fills with no published digest known (the ecosystem publishes none, or it was not seen): "
      "stored unverified.", RC(integrity_unknown), NULL },
    { "sluice_origin_cookies_dropped_total", "counter",
      "Set-Cookie headers left out of an ecosystem answer that was stored all the same (never relayed, never "
      "stored).", RC(cookies_dropped), NULL },
    { "sluice_origin_headers_dropped_total", "counter",
      "Origin headers left out of an object because they did not fit its header block (the object is stored "
      "without them).", RC(headers_dropped), NULL },
    { "sluice_bad_requests_total", "counter",
      "Requests refused for an ambiguous path or query (400/404/414, by the verdict or the HTTP side).",
      RC(bad_requests), NULL },
    { "sluice_oversized_requests_total", "counter",
      "Requests refused with a 414 before any canonical work: a path and query longer than request_target_max, "
      "or a path in more segments than request_segments_max (also counted in sluice_bad_requests_total).",
      RC(oversized_requests), NULL },
};

static double read_cache_objects(const struct agent *a) { return (double)a->index.count; }
static double read_cache_bytes(const struct agent *a) { return (double)a->index.total_bytes; }
static double read_cache_max(const struct agent *a) { return (double)a->cfg.cache_max_size; }
static double read_min_free(const struct agent *a) { return (double)a->cfg.cache_min_free; }
static double read_fs_free(const struct agent *a) { return (double)store_fs_free(&a->store); }
static double read_open_files(const struct agent *a) { return (double)a->index.open_files; }
static double read_rwc_bytes(const struct agent *a) { return (double)a->rwcache.bytes; }
static double read_rwc_entries(const struct agent *a) { return (double)a->rwcache.entries; }
static double read_rwc_hits(const struct agent *a) { return (double)a->rwcache.hits; }
static double read_rwc_misses(const struct agent *a) { return (double)a->rwcache.misses; }
static double read_rwc_insertions(const struct agent *a) { return (double)a->rwcache.insertions; }
static double read_rwc_evictions(const struct agent *a) { return (double)a->rwcache.evictions; }
static double read_loading(const struct agent *a) { return a->index_loading ? 1 : 0; }
static double read_jobs(const struct agent *a) { return workers_pending(a->workers); }
static double read_uptime(const struct agent *a) { return (double)(sl_wall_s() - a->started_wall); }
static double read_stopping(const struct agent *a) { return a->stopping ? 1 : 0; }

static double read_open_fds(const struct agent *a)
{
    SL_UNUSED(a);
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1;   /* the directory's own fd */
}

#define AM(f) offsetof(struct metrics, f)
static const struct metric_row agent_rows[] = {
    { "sluice_fills_in_flight", "gauge", "Shared fills running.", AM(fills_in_flight), NULL },
    { "sluice_fill_readers_attached", "gauge", "Client responses attached to fills.", AM(followers_attached), NULL },
    { "sluice_writers_detached_total", "counter", "Cache writers detached for any reason.", AM(writers_detached),
      NULL },
    { "sluice_fill_refetches_total", "counter",
      "Background refetches of objects whose writer was detached for lagging (paced by the writer).",
      AM(refetches), NULL },
    { "sluice_stale_index_dropped_total", "counter", "Index entries whose object was missing or invalid.",
      AM(stale_index_dropped), NULL },
    { "sluice_evictions_total", "counter", "Objects evicted.", AM(evictions), NULL },
    { "sluice_evicted_bytes_total", "counter", "Bytes evicted.", AM(evicted_bytes), NULL },
    { "sluice_temp_files_swept_total", "counter", "Temp files removed at start.", AM(temp_swept), NULL },
    { "sluice_purged_objects_total", "counter",
      "Objects purged through the admin API (DELETE /objects/...): stored copies removed and fills in flight "
      "whose commit was discarded.", AM(purged_objects), NULL },
    { "sluice_edge_lookups_total", "counter",
      "Requests HAProxy looked up in the edge memory tier, as HAProxy counts them on its edge frontend (read "
      "every 2 s through its runtime API; they restart at 0 when HAProxy restarts or reloads).", AM(edge_lookups),
      NULL },
    { "sluice_edge_hits_total", "counter",
      "Of those, the ones HAProxy answered from the tier without asking the agent (sluice_hits_total does not "
      "count them).", AM(edge_hits), NULL },
    { "sluice_edge_stats_failures_total", "counter",
      "Reads of HAProxy's edge tier counts that failed (HAProxy answered on haproxy_socket_dir without an edge "
      "frontend's cache counts, or not in time); the two counts above keep their last values.",
      AM(edge_stats_failures), NULL },
    { "sluice_cache_objects", "gauge", "Objects in the index.", 0, read_cache_objects },
    { "sluice_cache_bytes", "gauge", "Bytes on disk of indexed objects.", 0, read_cache_bytes },
    { "sluice_cache_max_bytes", "gauge", "cache_max_size.", 0, read_cache_max },
    { "sluice_cache_fs_free_bytes", "gauge",
      "Space available on the cache's filesystem (statvfs f_bavail; -1 when unreadable).", 0, read_fs_free },
    { "sluice_cache_min_free_bytes", "gauge", "cache_min_free: eviction keeps at least this much free.", 0,
      read_min_free },
    { "sluice_open_file_cache_files", "gauge", "Hot objects kept open (open_file_cache_size).", 0, read_open_files },
    { "sluice_rewrite_cache_bytes", "gauge",
      "Memory of the rewritten metadata bodies kept (rewrite_cache_size), with their digest notes.", 0,
      read_rwc_bytes },
    { "sluice_rewrite_cache_entries", "gauge", "Rewritten metadata bodies kept in memory.", 0, read_rwc_entries },
    { "sluice_rewrite_cache_hits_total", "counter",
      "Rewritten metadata hits answered from a kept rewrite (no rewriting).", 0, read_rwc_hits },
    { "sluice_rewrite_cache_misses_total", "counter",
      "Rewritten metadata hits with no kept rewrite of that stored copy (rewritten again).", 0, read_rwc_misses },
    { "sluice_rewrite_cache_insertions_total", "counter",
      "Rewrites kept after a hit rewrote the whole body (within rewrite_cache_object_max).", 0,
      read_rwc_insertions },
    { "sluice_rewrite_cache_evictions_total", "counter",
      "Kept rewrites removed to stay within rewrite_cache_size (least recently used first).", 0,
      read_rwc_evictions },
    { "sluice_index_loading", "gauge", "1 while the start-up scan runs.", 0, read_loading },
    { "sluice_worker_jobs_pending", "gauge", "Blocking jobs queued or running.", 0, read_jobs },
    { "sluice_open_fds", "gauge", "File descriptors open in the agent.", 0, read_open_fds },
    { "sluice_uptime_seconds", "gauge", "Seconds since start.", 0, read_uptime },
    { "sluice_stopping", "gauge", "1 while the agent drains after SIGTERM/SIGINT.", 0, read_stopping },
    { "sluice_config_generation", "gauge", "The running configuration: 1 at start, +1 per applied reload.",
      AM(config_generation), NULL },
    { "sluice_config_loaded_timestamp_seconds", "gauge", "When the running configuration was read (Unix time).",
      AM(config_loaded_wall), NULL },
};

static void render_route_rows(struct out *o, const struct agent *a)
{
    for (size_t k = 0; k < SL_ARRAY_LEN(route_rows); k++) {
        const struct metric_row *row = &route_rows[k];
        family(o, row->name, row->type, row->help);
        FOR_EACH_ROUTE(a, i) {
            const uint64_t *v = (const uint64_t *)((const char *)&a->m.route[i] + row->offset);
            emit(o, "%s{route=\"%s\"} %llu\n", row->name, route_label(a, i), (unsigned long long)*v);
        }
    }
}

static void render_agent_rows(struct out *o, const struct agent *a)
{
    for (size_t k = 0; k < SL_ARRAY_LEN(agent_rows); k++) {
        const struct metric_row *row = &agent_rows[k];
        family(o, row->name, row->type, row->help);
        double v = row->read ? row->read(a) : (double)*(const uint64_t *)((const char *)&a->m + row->offset);
        emit(o, "%s %.17g\n", row->name, v);
    }
}

/* ------------------------------------------------ labelled families */

static void render_verdicts(struct out *o, const struct agent *a)
{
    family(o, "sluice_verdicts_total", "counter", "Verdicts answered (SPOP and the HTTP verdict of Lua mode), by kind.");
    FOR_EACH_ROUTE(a, i)
        for (int v = 0; v < VERDICT_KINDS; v++)
            emit(o, "sluice_verdicts_total{route=\"%s\",verdict=\"%s\"} %llu\n", route_label(a, i), verdict_names[v],
                 (unsigned long long)a->m.route[i].verdicts[v]);
}

static const char *const not_shared_names[NS_REASONS] = { "no-store", "private", "vary-star", "set-cookie" };

/* Answers the origin refused or restricted, by route and reason. */
static void render_origin_answers(struct out *o, const struct agent *a)
{
    family(o, "sluice_origin_bad_responses_total", "counter", "Origin responses refused for an ambiguous body "
           "length (502, nothing stored), by reason: cl-te, cl-conflict, cl-invalid.");
    FOR_EACH_ROUTE(a, i)
        for (int k = ORIGIN_BAD_CL_TE; k < ORIGIN_BAD_REASONS; k++)
            emit(o, "sluice_origin_bad_responses_total{route=\"%s\",reason=\"%s\"} %llu\n", route_label(a, i),
                 origin_bad_name((enum origin_bad)k), (unsigned long long)a->m.route[i].origin_bad[k]);
    family(o, "sluice_origin_not_shared_total", "counter", "Origin answers relayed to their own clients but never "
           "stored, because the origin said no shared cache may keep them, by reason.");
    FOR_EACH_ROUTE(a, i)
        for (int k = 0; k < NS_REASONS; k++)
            emit(o, "sluice_origin_not_shared_total{route=\"%s\",reason=\"%s\"} %llu\n", route_label(a, i),
                 not_shared_names[k], (unsigned long long)a->m.route[i].not_shared[k]);
}

static void render_write_failures(struct out *o, const struct metrics *m)
{
    family(o, "sluice_cache_write_failures_total", "counter", "Cache writers detached, by reason.");
    for (int i = 0; i < WFAIL_REASONS; i++)
        emit(o, "sluice_cache_write_failures_total{reason=\"%s\"} %llu\n", wfail_names[i],
             (unsigned long long)m->write_failures[i]);
}

const double metrics_commit_window_bounds[COMMIT_WINDOW_BUCKETS] = { 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                                     0.05,  0.1,    0.25,  1,    5 };

void metrics_commit_window(struct metrics *m, double seconds)
{
    m->commit_window_sum += seconds;
    m->commit_window_count++;
    for (int b = 0; b < COMMIT_WINDOW_BUCKETS; b++)
        if (seconds <= metrics_commit_window_bounds[b])
            m->commit_window_buckets[b]++;
}

static void render_commit_window(struct out *o, const struct metrics *m)
{
    family(o, "sluice_fill_commit_window_seconds", "histogram",
           "Time from a committed fill's last body byte to its object in the index (last write, fsync, rename): "
           "requests for the key meanwhile join the fill late instead of hitting.");
    for (int b = 0; b < COMMIT_WINDOW_BUCKETS; b++)
        emit(o, "sluice_fill_commit_window_seconds_bucket{le=\"%g\"} %llu\n", metrics_commit_window_bounds[b],
             (unsigned long long)m->commit_window_buckets[b]);
    emit(o, "sluice_fill_commit_window_seconds_bucket{le=\"+Inf\"} %llu\n",
         (unsigned long long)m->commit_window_count);
    emit(o, "sluice_fill_commit_window_seconds_sum %.6f\nsluice_fill_commit_window_seconds_count %llu\n",
         m->commit_window_sum, (unsigned long long)m->commit_window_count);
}

static void render_reloads(struct out *o, const struct metrics *m)
{
    family(o, "sluice_config_reloads_total", "counter", "Configuration reloads (SIGHUP), applied or refused.");
    emit(o, "sluice_config_reloads_total{result=\"ok\"} %llu\n", (unsigned long long)m->reloads[0]);
    emit(o, "sluice_config_reloads_total{result=\"error\"} %llu\n", (unsigned long long)m->reloads[1]);
}

static void render_edge_flushes(struct out *o, const struct metrics *m)
{
    family(o, "sluice_edge_flushes_total", "counter",
           "Purges that emptied HAProxy's edge memory tier: flushed, no_tier (no HAProxy or no tier there: "
           "nothing to empty), failed (HAProxy kept the old generation: see the log).");
    for (int r = 0; r < 3; r++)
        emit(o, "sluice_edge_flushes_total{result=\"%s\"} %llu\n", edge_flush_result_name(r),
             (unsigned long long)m->edge_flushes[r]);
}

static const char *const l2_end_names[L2_LOOKUP_ENDS] = { "hit", "absent", "stale", "timeout", "error", "busy" };
static const char *const l2_upload_names[L2_UP_RESULTS] = { "ok", "failed", "dropped" };

/* One series per tier of a family labelled by reason: ends [from, to). */
static void render_tier_reasons(struct out *o, const struct agent *a, const char *name, int from, int to)
{
    for (int i = 0; i < a->n_tiers; i++)
        for (int k = from; k < to; k++)
            emit(o, "%s{tier=\"%s\",reason=\"%s\"} %llu\n", name, a->tiers[i]->name, l2_end_names[k],
                 (unsigned long long)a->m.tier[i].lookups[k]);
}

static void render_tiers(struct out *o, const struct agent *a)
{
    if (a->n_tiers == 0)
        return;
    family(o, "sluice_l2_hits_total", "counter", "Misses served from an L2 tier (its head arrived in time).");
    for (int i = 0; i < a->n_tiers; i++)
        emit(o, "sluice_l2_hits_total{tier=\"%s\"} %llu\n", a->tiers[i]->name,
             (unsigned long long)a->m.tier[i].lookups[L2_HIT]);
    family(o, "sluice_l2_misses_total", "counter", "L2 lookups that found nothing usable, by reason (absent, "
           "stale metadata); the fill went on to the next tier or the origin.");
    render_tier_reasons(o, a, "sluice_l2_misses_total", L2_MISS_ABSENT, L2_ERR_TIMEOUT);
    family(o, "sluice_l2_errors_total", "counter", "L2 lookups that failed or were skipped, by reason (timeout: "
           "no head within l2_lookup_timeout; error; busy: l2_lookups_max reached); the fill went on.");
    render_tier_reasons(o, a, "sluice_l2_errors_total", L2_ERR_TIMEOUT, L2_LOOKUP_ENDS);
    family(o, "sluice_l2_read_failures_total", "counter", "L2 reads that failed after their head (clients aborted).");
    for (int i = 0; i < a->n_tiers; i++)
        emit(o, "sluice_l2_read_failures_total{tier=\"%s\"} %llu\n", a->tiers[i]->name,
             (unsigned long long)a->m.tier[i].reads_failed);
    family(o, "sluice_l2_bytes_read_total", "counter", "Body bytes read from an L2 tier.");
    for (int i = 0; i < a->n_tiers; i++)
        emit(o, "sluice_l2_bytes_read_total{tier=\"%s\"} %llu\n", a->tiers[i]->name,
             (unsigned long long)a->m.tier[i].bytes_read);
    family(o, "sluice_l2_lookup_seconds", "summary", "Time from an L2 lookup to its head, miss or error.");
    for (int i = 0; i < a->n_tiers; i++)
        emit(o, "sluice_l2_lookup_seconds_sum{tier=\"%s\"} %.6f\nsluice_l2_lookup_seconds_count{tier=\"%s\"} %llu\n",
             a->tiers[i]->name, a->m.tier[i].lookup_seconds_sum, a->tiers[i]->name,
             (unsigned long long)a->m.tier[i].lookup_count);
    family(o, "sluice_l2_upload_queue_depth", "gauge", "Committed objects waiting to be copied to a sink tier.");
    for (int i = 0; i < a->n_tiers; i++)
        emit(o, "sluice_l2_upload_queue_depth{tier=\"%s\"} %llu\n", a->tiers[i]->name,
             (unsigned long long)a->m.tier[i].upload_queued);
    family(o, "sluice_l2_uploads_total", "counter", "Copies of committed objects to a sink tier, by result "
           "(ok, failed, dropped: the upload queue was full).");
    for (int i = 0; i < a->n_tiers; i++)
        for (int k = 0; k < L2_UP_RESULTS; k++)
            emit(o, "sluice_l2_uploads_total{tier=\"%s\",result=\"%s\"} %llu\n", a->tiers[i]->name,
                 l2_upload_names[k], (unsigned long long)a->m.tier[i].uploads[k]);
}

static void render_queue_waits(struct out *o, const struct slots *s)
{
    family(o, "sluice_origin_queue_wait_seconds", "histogram", "Time leaders waited for an origin slot, by outcome.");
    for (int k = 0; k < QWAIT_OUTCOMES; k++) {
        const char *name = queue_outcome_name((enum queue_outcome)k);
        for (int b = 0; b < QWAIT_BUCKETS; b++)
            emit(o, "sluice_origin_queue_wait_seconds_bucket{outcome=\"%s\",le=\"%g\"} %llu\n", name,
                 slots_wait_bounds[b], (unsigned long long)s->wait_buckets[k][b]);
        emit(o, "sluice_origin_queue_wait_seconds_bucket{outcome=\"%s\",le=\"+Inf\"} %llu\n", name,
             (unsigned long long)s->wait_count[k]);
        emit(o, "sluice_origin_queue_wait_seconds_sum{outcome=\"%s\"} %.6f\n", name, s->wait_sum[k]);
        emit(o, "sluice_origin_queue_wait_seconds_count{outcome=\"%s\"} %llu\n", name,
             (unsigned long long)s->wait_count[k]);
    }
}

static void render_limits(struct out *o, const struct agent *a)
{
    const struct slots *s = &a->slots;
    family(o, "sluice_origin_limit", "gauge", "Origin fetches allowed in flight now per route: the adaptive limit "
           "(origin_limit_adaptive), or the fixed cap.");
    for (int i = 0; i < a->routes.n; i++)
        emit(o, "sluice_origin_limit{route=\"%s\"} %d\n", route_label(a, i), s->origins[i].lim.limit);
    family(o, "sluice_origin_limit_increases_total", "counter", "Steps of +1 of the adaptive limit (a fast answer "
           "while leaders waited).");
    for (int i = 0; i < a->routes.n; i++)
        emit(o, "sluice_origin_limit_increases_total{route=\"%s\"} %llu\n", route_label(a, i),
             (unsigned long long)s->origins[i].lim.increases);
    family(o, "sluice_origin_limit_decreases_total", "counter", "Cuts (halvings) of the adaptive limit, by reason.");
    for (int i = 0; i < a->routes.n; i++)
        for (int k = 0; k < LIMIT_CUTS; k++)
            emit(o, "sluice_origin_limit_decreases_total{route=\"%s\",reason=\"%s\"} %llu\n", route_label(a, i),
                 limit_cut_name((enum limit_cut)k), (unsigned long long)s->origins[i].lim.decreases[k]);
}

static void render_slots(struct out *o, const struct agent *a)
{
    const struct slots *s = &a->slots;
    family(o, "sluice_origin_fetches_in_flight", "gauge", "Origin slots held by running fills.");
    for (int i = 0; i < a->routes.n; i++)
        emit(o, "sluice_origin_fetches_in_flight{route=\"%s\"} %d\n", route_label(a, i), s->origins[i].in_flight);
    family(o, "sluice_origin_fetches_queued", "gauge", "Leaders waiting for an origin slot.");
    for (int i = 0; i < a->routes.n; i++)
        emit(o, "sluice_origin_fetches_queued{route=\"%s\"} %d\n", route_label(a, i), s->origins[i].queued);
    render_queue_waits(o, s);
    render_limits(o, a);
    family(o, "sluice_busy_responses_total", "counter", "503 + Retry-After answers, by who sent them.");
    FOR_EACH_ROUTE(a, i)
        emit(o, "sluice_busy_responses_total{route=\"%s\",by=\"edge\"} %llu\n"
                "sluice_busy_responses_total{route=\"%s\",by=\"agent\"} %llu\n",
             route_label(a, i), (unsigned long long)a->m.route[i].verdicts[VERDICT_BUSY], route_label(a, i),
             (unsigned long long)a->m.route[i].busy_503_agent);
}

static void render_origin(struct out *o, const struct origin_stats *s)
{
    family(o, "sluice_origin_requests_total", "counter", "Origin transfers started.");
    emit(o, "sluice_origin_requests_total %llu\n", (unsigned long long)s->requests);
    family(o, "sluice_origin_transfers_running", "gauge", "Origin transfers inside libcurl.");
    emit(o, "sluice_origin_transfers_running %llu\n", (unsigned long long)s->in_flight);
    family(o, "sluice_origin_bytes_total", "counter", "Body bytes received from origins.");
    emit(o, "sluice_origin_bytes_total %llu\n", (unsigned long long)s->bytes);
    family(o, "sluice_origin_errors_total", "counter", "Origin transfers that failed, by kind.");
    for (int i = ORIGIN_ERR_CONNECT; i <= ORIGIN_ERR_OTHER; i++)
        emit(o, "sluice_origin_errors_total{kind=\"%s\"} %llu\n", origin_result_name((enum origin_result)i),
             (unsigned long long)s->errors[i]);
    family(o, "sluice_origin_redirects_total", "counter", "Origin redirects, followed or refused (by why).");
    for (int i = 0; i < REDIRECT_VERDICTS; i++)
        emit(o, "sluice_origin_redirects_total{outcome=\"%s\"} %llu\n",
             redirect_verdict_name((enum redirect_verdict)i), (unsigned long long)s->redirects[i]);
}

static void plain(struct out *o, const char *name, const char *type, const char *help, double v)
{
    family(o, name, type, help);
    emit(o, "%s %.17g\n", name, v);
}

static void render_http(struct out *o, const struct http_server_stats *h)
{
    plain(o, "sluice_http_requests_total", "counter", "Requests on the agent's HTTP side.", (double)h->requests);
    plain(o, "sluice_http_connections_open", "gauge", "Open HTTP-side connections.", (double)h->connections_open);
    plain(o, "sluice_http_bytes_sent_total", "counter", "Bytes written to HTTP-side clients.", (double)h->bytes_sent);
    plain(o, "sluice_stalled_clients_dropped_total", "counter", "Clients dropped after the stall window.",
          (double)h->stalled_clients);
    plain(o, "sluice_http_aborted_responses_total", "counter", "Responses cut short by a closed connection.",
          (double)h->aborted_responses);
    plain(o, "sluice_http_bad_requests_total", "counter", "Malformed requests answered 400/414/431.",
          (double)h->bad_requests);
}

static void render_spop(struct out *o, const struct spop_stats *s)
{
    plain(o, "sluice_spop_connections_total", "counter", "SPOP connections accepted.", (double)s->connections_total);
    plain(o, "sluice_spop_connections_open", "gauge", "SPOP connections open.", (double)s->connections_open);
    plain(o, "sluice_spop_notify_total", "counter", "SPOP NOTIFY frames handled.", (double)s->notifies);
    plain(o, "sluice_spop_inline_too_large_total", "counter",
          "Inline answers over the SPOP frame size, sent as verdict hit (served again by the HTTP side).",
          (double)s->inline_too_large);
    plain(o, "sluice_spop_healthchecks_total", "counter", "SPOP health-check HELLOs.", (double)s->healthchecks);
    plain(o, "sluice_spop_protocol_errors_total", "counter", "SPOP connections closed for a protocol error.",
          (double)s->protocol_errors);
    family(o, "sluice_spop_connections_dropped_total", "counter",
           "SPOP connections the agent closed on its own, by limit: cap (spop_max_connections), hello_timeout, "
           "frame_timeout (spop_frame_timeout), idle_timeout (spop_idle_timeout).");
    for (int i = 0; i < SPOP_DROP_REASONS; i++)
        emit(o, "sluice_spop_connections_dropped_total{reason=\"%s\"} %llu\n", spop_drop_reason_names[i],
             (unsigned long long)s->dropped[i]);
    plain(o, "sluice_spop_buffer_bytes", "gauge", "Read and write buffers of the open SPOP connections.",
          (double)s->buffer_bytes);
}

char *metrics_render(struct agent *a, size_t *len)
{
    struct out o = { sl_malloc(16384), 0, 16384 };
    render_verdicts(&o, a);
    render_route_rows(&o, a);
    render_origin_answers(&o, a);
    render_write_failures(&o, &a->m);
    render_agent_rows(&o, a);
    render_commit_window(&o, &a->m);
    render_reloads(&o, &a->m);
    render_edge_flushes(&o, &a->m);
    render_tiers(&o, a);
    render_slots(&o, a);
    render_origin(&o, origin_client_stats(a->origins));
    if (a->http)
        render_http(&o, http_server_stats(a->http));
    if (a->spop)
        render_spop(&o, spop_server_stats(a->spop));
    *len = o.len;
    return o.buf;
}
