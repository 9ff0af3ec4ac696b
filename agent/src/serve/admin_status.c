/*
 * admin_status.c - the status page (GET /) and its data (GET /status.json).
 *
 * The page is one self-contained HTML document (inline CSS and script, no
 * external asset: the admin listener is often reached through an SSH
 * tunnel or on an air-gapped box). Its script fetches /status.json every
 * two seconds and redraws; everything it shows comes from there:
 *
 *   state        ready, loading (start-up scan) or stopping
 *   routes[]     per route: hits, misses (leaders), followers, hit_ratio
 *                (hits / (hits + misses + followers), null before any
 *                request), bytes, fills committed and failed, origin slots
 *                in flight and queued, origin URL (redacted), failing (the
 *                origin failed within its error hold, slots.h)
 *   fills        in flight, readers attached
 *   queue        origin slots in flight and leaders queued, all routes
 *   disk         bytes of indexed objects, objects, cache_max_size,
 *                cache_min_free, free bytes on the cache filesystem
 *   origin       transfers started, bytes, errors by kind
 *   errors[]     the last warnings and errors logged (core/log_ring.h)
 */
#include <string.h>

#include "core/common.h"
#include "core/log_ring.h"
#include "origin/origin.h"
#include "serve/admin_impl.h"
#include "store/store.h"

static const char status_html[] =
#include "status_page.inc"
    ;

void admin_status_page(struct agent *a, struct http_conn *c)
{
    SL_UNUSED(a);
    http_respond_simple(c, 200, "text/html; charset=utf-8", "Cache-Control: no-store\r\n", status_html,
                        sizeof(status_html) - 1);
}

static void route_json(struct agent *a, struct sl_buf *b, int i)
{
    const struct route *r = &a->routes.routes[i];
    const struct route_counters *rc = &a->m.route[i];
    uint64_t served = rc->hits + rc->misses + rc->followers;
    char url[CONFIG_URL_MAX + 16];
    config_redact("", r->has_origin ? r->origin : "", url, sizeof(url));
    sl_buf_append_str(b, i ? ",\n  {\"name\": " : "\n  {\"name\": ");
    admin_json_str(b, r->name);
    if (served)
        admin_printf(b, ", \"hit_ratio\": %.4f", (double)rc->hits / (double)served);
    else
        sl_buf_append_str(b, ", \"hit_ratio\": null");
    admin_printf(b, ", \"hits\": %llu, \"misses\": %llu, \"followers\": %llu, \"bytes_hit\": %llu, "
                    "\"bytes_fill\": %llu",
                 (unsigned long long)rc->hits, (unsigned long long)rc->misses, (unsigned long long)rc->followers,
                 (unsigned long long)rc->bytes_hit, (unsigned long long)rc->bytes_fill);
    admin_printf(b, ", \"fills_committed\": %llu, \"fills_failed\": %llu, \"in_flight\": %d, \"queued\": %d, "
                    "\"failing\": %s",
                 (unsigned long long)rc->fills_committed, (unsigned long long)rc->fills_failed,
                 a->slots.origins[i].in_flight, a->slots.origins[i].queued,
                 slots_origin_failing(&a->slots, r) ? "true" : "false");
    sl_buf_append_str(b, ", \"origin\": ");
    admin_json_str(b, url);
    sl_buf_append_str(b, "}");
}

static void agent_json(struct agent *a, struct sl_buf *b)
{
    const char *state = a->stopping ? "stopping" : a->index_loading ? "loading" : "ready";
    admin_printf(b, "{\"state\": \"%s\", \"uptime_s\": %lld, \"now_ms\": %lld,\n", state,
                 (long long)(sl_wall_s() - a->started_wall), (long long)sl_now_ms());
    admin_printf(b, " \"fills\": {\"in_flight\": %llu, \"readers\": %llu},\n",
                 (unsigned long long)a->m.fills_in_flight, (unsigned long long)a->m.followers_attached);
    admin_printf(b, " \"queue\": {\"in_flight\": %d, \"queued\": %d, \"max_in_flight\": %d},\n", a->slots.in_flight,
                 a->slots.queued, a->slots.max_in_flight);
    admin_printf(b, " \"disk\": {\"used\": %llu, \"objects\": %zu, \"max\": %llu, \"min_free\": %llu, "
                    "\"fs_free\": %lld},\n",
                 (unsigned long long)a->index.total_bytes, a->index.count,
                 (unsigned long long)a->cfg.cache_max_size, (unsigned long long)a->cfg.cache_min_free,
                 (long long)store_fs_free(&a->store));
}

static void origin_json(struct agent *a, struct sl_buf *b)
{
    const struct origin_stats *s = origin_client_stats(a->origins);
    admin_printf(b, " \"origin\": {\"requests\": %llu, \"bytes\": %llu, \"errors\": {",
                 (unsigned long long)s->requests, (unsigned long long)s->bytes);
    for (int i = ORIGIN_ERR_CONNECT; i <= ORIGIN_ERR_OTHER; i++)
        admin_printf(b, "%s\"%s\": %llu", i == ORIGIN_ERR_CONNECT ? "" : ", ",
                     origin_result_name((enum origin_result)i), (unsigned long long)s->errors[i]);
    sl_buf_append_str(b, "}},\n");
}

static void errors_json(struct sl_buf *b)
{
    static char lines[LOG_RING_LINES][LOG_RING_LINE];   /* loop thread only */
    int n = log_ring_read(lines, LOG_RING_LINES);
    sl_buf_append_str(b, " \"errors\": [");
    for (int i = 0; i < n; i++) {
        sl_buf_append_str(b, i ? ",\n  " : "\n  ");
        admin_json_str(b, lines[i]);
    }
    sl_buf_append_str(b, "]}\n");
}

void admin_status_json(struct agent *a, struct http_conn *c)
{
    struct sl_buf b = { 0 };
    agent_json(a, &b);
    origin_json(a, &b);
    sl_buf_append_str(&b, " \"routes\": [");
    for (int i = 0; i < a->routes.n; i++)
        route_json(a, &b, i);
    sl_buf_append_str(&b, "],\n");
    errors_json(&b);
    admin_respond_json(c, 200, &b);
}
