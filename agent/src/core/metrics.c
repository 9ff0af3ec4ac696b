/*
 * metrics.c - Prometheus text exposition of the agent's state (see
 * metrics.h). Names follow Prometheus conventions: `_total` for counters,
 * base units (bytes, seconds).
 */
#include "core/metrics.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "core/agent.h"
#include "core/common.h"
#include "http/http_server.h"
#include "origin/origin.h"
#include "spop/spop_server.h"
#include "store/store.h"
#include "core/workers.h"

static const char *const wfail_names[WFAIL_REASONS] = {
    "enospc", "edquot", "eio", "short_write", "timeout", "lag", "too_large", "origin", "other",
};

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

static void counter(struct out *o, const char *name, const char *help, uint64_t v)
{
    emit(o, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name, (unsigned long long)v);
}

static void gauge(struct out *o, const char *name, const char *help, double v)
{
    emit(o, "# HELP %s %s\n# TYPE %s gauge\n%s %.17g\n", name, help, name, name, v);
}

static int count_open_fds(void)
{
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

const char *const verdict_names[VERDICT_KINDS] = { "hit", "fill", "pass", "busy", "inline", "reject" };

static void render_verdicts(struct out *o, const struct metrics *m)
{
    emit(o, "# HELP sluice_verdicts_total SPOP verdicts answered, by kind.\n"
            "# TYPE sluice_verdicts_total counter\n");
    for (int i = 0; i < VERDICT_KINDS; i++)
        emit(o, "sluice_verdicts_total{verdict=\"%s\"} %llu\n", verdict_names[i], (unsigned long long)m->verdicts[i]);
}

static void render_write_failures(struct out *o, const struct metrics *m)
{
    emit(o, "# HELP sluice_cache_write_failures_total Cache writers detached, by reason.\n"
            "# TYPE sluice_cache_write_failures_total counter\n");
    for (int i = 0; i < WFAIL_REASONS; i++)
        emit(o, "sluice_cache_write_failures_total{reason=\"%s\"} %llu\n", wfail_names[i],
             (unsigned long long)m->write_failures[i]);
}

static void render_slots(struct out *o, const struct agent *a)
{
    const struct slots *s = &a->slots;
    gauge(o, "sluice_origin_fetches_in_flight", "Origin slots held by running fills.", s->in_flight);
    gauge(o, "sluice_origin_fetches_queued", "Leaders waiting for an origin slot.", s->queued);
    emit(o, "# HELP sluice_origin_queue_wait_seconds Time leaders waited for an origin slot, by outcome.\n"
            "# TYPE sluice_origin_queue_wait_seconds histogram\n");
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
    emit(o, "# HELP sluice_busy_responses_total 503 + Retry-After answers, by who sent them.\n"
            "# TYPE sluice_busy_responses_total counter\n"
            "sluice_busy_responses_total{by=\"edge\"} %llu\nsluice_busy_responses_total{by=\"agent\"} %llu\n",
         (unsigned long long)a->m.verdicts[VERDICT_BUSY], (unsigned long long)a->m.busy_503_agent);
}

static void render_origin(struct out *o, const struct origin_stats *s)
{
    counter(o, "sluice_origin_requests_total", "Origin transfers started.", s->requests);
    gauge(o, "sluice_origin_transfers_running", "Origin transfers inside libcurl.", (double)s->in_flight);
    counter(o, "sluice_origin_bytes_total", "Body bytes received from origins.", s->bytes);
    emit(o, "# HELP sluice_origin_errors_total Origin transfers that failed, by kind.\n"
            "# TYPE sluice_origin_errors_total counter\n");
    for (int i = ORIGIN_ERR_CONNECT; i <= ORIGIN_ERR_OTHER; i++)
        emit(o, "sluice_origin_errors_total{kind=\"%s\"} %llu\n", origin_result_name((enum origin_result)i),
             (unsigned long long)s->errors[i]);
    emit(o, "# HELP sluice_origin_redirects_total Origin redirects, followed or refused (by why).\n"
            "# TYPE sluice_origin_redirects_total counter\n");
    for (int i = 0; i < REDIRECT_VERDICTS; i++)
        emit(o, "sluice_origin_redirects_total{outcome=\"%s\"} %llu\n",
             redirect_verdict_name((enum redirect_verdict)i), (unsigned long long)s->redirects[i]);
}

char *metrics_render(struct agent *a, size_t *len)
{
    struct out o = { sl_malloc(8192), 0, 8192 };
    const struct metrics *m = &a->m;
    render_verdicts(&o, m);
    counter(&o, "sluice_hits_total", "Responses served from a committed object.", m->hits);
    counter(&o, "sluice_misses_total", "Requests that started a fill (became its leader); background refetches are not counted.", m->misses);
    counter(&o, "sluice_followers_total", "Requests attached to a running fill.", m->followers);
    counter(&o, "sluice_not_modified_total", "304 responses.", m->not_modified);
    counter(&o, "sluice_range_responses_total", "206 responses.", m->range_responses);
    counter(&o, "sluice_hit_bytes_total", "Body bytes served from committed objects.", m->bytes_hit);
    counter(&o, "sluice_fill_bytes_total", "Body bytes served from running fills.", m->bytes_fill);
    counter(&o, "sluice_fills_committed_total", "Objects committed to the cache.", m->fills_committed);
    counter(&o, "sluice_fills_failed_total", "Fills whose origin transfer failed or was aborted.", m->fills_failed);
    counter(&o, "sluice_fills_not_cacheable_total", "Fills whose response was not stored (status, size).",
            m->fills_not_cacheable);
    gauge(&o, "sluice_fills_in_flight", "Shared fills running.", (double)m->fills_in_flight);
    gauge(&o, "sluice_fill_readers_attached", "Client responses attached to fills.", (double)m->followers_attached);
    render_write_failures(&o, m);
    counter(&o, "sluice_writers_detached_total", "Cache writers detached for any reason.", m->writers_detached);
    counter(&o, "sluice_fill_refetches_total",
            "Background refetches of objects whose writer was detached for lagging (paced by the writer).",
            m->refetches);
    counter(&o, "sluice_stale_index_dropped_total", "Index entries whose object was missing or invalid.",
            m->stale_index_dropped);
    counter(&o, "sluice_evictions_total", "Objects evicted.", m->evictions);
    counter(&o, "sluice_evicted_bytes_total", "Bytes evicted.", m->evicted_bytes);
    counter(&o, "sluice_temp_files_swept_total", "Temp files removed at start.", m->temp_swept);
    counter(&o, "sluice_bad_requests_total", "Requests refused for a bad path or key.", m->bad_requests);
    gauge(&o, "sluice_cache_objects", "Objects in the index.", (double)a->index.count);
    gauge(&o, "sluice_cache_bytes", "Bytes on disk of indexed objects.", (double)a->index.total_bytes);
    gauge(&o, "sluice_cache_max_bytes", "cache_max_size.", (double)a->cfg.cache_max_size);
    gauge(&o, "sluice_open_file_cache_files", "Hot objects kept open (open_file_cache_size).",
          (double)a->index.open_files);
    gauge(&o, "sluice_index_loading", "1 while the start-up scan runs.", a->index_loading ? 1 : 0);
    render_slots(&o, a);
    render_origin(&o, origin_client_stats(a->origins));
    if (a->http) {
        const struct http_server_stats *h = http_server_stats(a->http);
        counter(&o, "sluice_http_requests_total", "Requests on the agent's HTTP side.", h->requests);
        gauge(&o, "sluice_http_connections_open", "Open HTTP-side connections.", (double)h->connections_open);
        counter(&o, "sluice_http_bytes_sent_total", "Bytes written to HTTP-side clients.", h->bytes_sent);
        counter(&o, "sluice_stalled_clients_dropped_total", "Clients dropped after the stall window.",
                h->stalled_clients);
        counter(&o, "sluice_http_aborted_responses_total", "Responses cut short by a closed connection.",
                h->aborted_responses);
        counter(&o, "sluice_http_bad_requests_total", "Malformed requests answered 400/414/431.", h->bad_requests);
    }
    if (a->spop) {
        const struct spop_stats *s = spop_server_stats(a->spop);
        counter(&o, "sluice_spop_connections_total", "SPOP connections accepted.", s->connections_total);
        gauge(&o, "sluice_spop_connections_open", "SPOP connections open.", (double)s->connections_open);
        counter(&o, "sluice_spop_notify_total", "SPOP NOTIFY frames handled.", s->notifies);
        counter(&o, "sluice_spop_inline_too_large_total",
                "Inline answers over the SPOP frame size, sent as verdict hit (served again by the HTTP side).",
                s->inline_too_large);
        counter(&o, "sluice_spop_healthchecks_total", "SPOP health-check HELLOs.", s->healthchecks);
        counter(&o, "sluice_spop_protocol_errors_total", "SPOP connections closed for a protocol error.",
                s->protocol_errors);
    }
    gauge(&o, "sluice_worker_jobs_pending", "Blocking jobs queued or running.", workers_pending(a->workers));
    gauge(&o, "sluice_open_fds", "File descriptors open in the agent.", count_open_fds());
    gauge(&o, "sluice_uptime_seconds", "Seconds since start.", (double)(sl_wall_s() - a->started_wall));
    *len = o.len;
    return o.buf;
}
