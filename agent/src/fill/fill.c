/*
 * fill.c - singleflight fills: the table of running fills, their lifetime,
 * their source, and the API (see fill.h for the model and its invariants;
 * the spool is spool.c, the cache writer writer.c).
 *
 * Life of a fill:
 *   fill_start      -> in the table, origin transfer queued for a slot
 *   (fill_start_from_tier: the same, its bytes from a tier, no slot)
 *   (fill_start_lookup: tiers first, one after the other, then the origin
 *    slot: a tier miss, error or deadline before the head moves the same
 *    fill on; see "tier lookup" below)
 *   head            -> meta known; if cacheable the writer opens a temp file
 *   data            -> bytes appended to the spool; writer pumped; readers woken
 *   done            -> source finished; writer commits (its last bytes, header,
 *                      fsync, rename: one job); a request meanwhile joins late
 *   commit done     -> index updated, out of the table
 *   refs reach 0    -> its one log line (fill_log.c), freed
 *
 * References: the table, each reader, each worker job in flight, and the
 * source (or the queue wait that precedes it) each hold one, so nothing a
 * worker, libcurl or a tier still uses can be freed under it.
 */
#include <string.h>
#include <strings.h>

#include "core/common.h"
#include "core/log.h"
#include "fill/fill_impl.h"
#include "http/httpx.h"
#include "store/cache.h"
#include "store/l2.h"

/* --------------------------------------------------------------- table */

static unsigned table_bucket(const uint8_t hash[KEY_HASH_LEN])
{
    return ((unsigned)hash[0] << 8 | hash[1]) % FILL_TABLE_BUCKETS;
}

struct fill *fill_find(struct agent *a, const uint8_t hash[KEY_HASH_LEN])
{
    for (struct fill *f = a->fills[table_bucket(hash)]; f; f = f->table_next)
        if (memcmp(f->hash, hash, KEY_HASH_LEN) == 0)
            return f;
    return NULL;
}

void fill_table_remove(struct fill *f)
{
    if (!f->in_table)
        return;
    struct fill **pp = &f->a->fills[table_bucket(f->hash)];
    while (*pp != f) {
        SL_ASSERT(*pp);
        pp = &(*pp)->table_next;
    }
    *pp = f->table_next;
    f->in_table = false;
    f->a->m.fills_in_flight--;
    fill_unref(f);
}

/* ------------------------------------------------------------ lifetime */

static void check_close(struct fill *f)
{
    if (f->check)
        f->check_ops->close(f->check);
    f->check = NULL;
}

void fill_set_check(struct fill *f, const struct eco_rewriter_ops *ops, struct eco_rewriter *check)
{
    SL_CHECK_OBJ(f, FILL_MAGIC);
    SL_ASSERT(!f->check && f->received == 0);
    f->check_ops = ops;
    f->check = check;
}

/* The body is not what the ecosystem publishes: store nothing. */
static void check_refused(struct fill *f)
{
    log_warn("fill: the origin's document does not parse, not storing it key=%s after %llu bytes", f->key,
             (unsigned long long)f->received);
    check_close(f);
    writer_fail(f, WFAIL_INVALID);
}

static void check_feed(struct fill *f, const uint8_t *data, size_t len)
{
    if (f->check && f->meta.status == 200 && f->check_ops->feed(f->check, data, len) != 0)
        check_refused(f);
}

static void check_finish(struct fill *f)
{
    if (f->check && f->meta.status == 200 && f->check_ops->finish(f->check) != 0)
        check_refused(f);
}

void fill_ref(struct fill *f)
{
    SL_CHECK_OBJ(f, FILL_MAGIC);
    f->refs++;
}

static void fill_free(struct fill *f)
{
    if (f->ran)
        fill_log_end(f);   /* before anything it reads is freed */
    SL_ASSERT(!f->in_table && !f->src.h && !f->wbusy && f->n_readers == 0 && !f->queued && !f->has_slot);
    SL_ASSERT(!f->l2_slot && !ev_is_active(&f->lookup_timer));
    spool_free(f);
    ev_timer_stop(f->a->loop, &f->wtimer);
    SL_ASSERT(f->temp.fd < 0);
    if (f->refetch)
        f->a->refetches_running--;
    check_close(f);
    verify_free(f);
    obj_meta_free(&f->meta);
    free(f->key);
    free(f->url);
    for (size_t i = 0; i < SL_ARRAY_LEN(f->headers); i++)
        free(f->headers[i]);
    free((char *)f->rq.accept);
    free((char *)f->rq.if_none_match);
    f->magic = 0;
    free(f);
}

void fill_unref(struct fill *f)
{
    SL_CHECK_OBJ(f, FILL_MAGIC);
    SL_ASSERT(f->refs > 0);
    if (--f->refs == 0)
        fill_free(f);
}

void fill_wake_readers(struct fill *f)
{
    for (struct fill_reader *r = f->readers; r; r = r->next)
        r->wake(r->ctx);
}

bool fill_body_complete(const struct fill *f)
{
    return f->origin_done && f->origin_result == ORIGIN_OK &&
           (f->content_length < 0 || (uint64_t)f->content_length == f->received);
}

/* ------------------------------------------------------------- source */

/* The source is over: finished, failed, cut, or never granted a slot. */
static void source_ended(struct fill *f, enum origin_result res)
{
    f->origin_done = true;
    f->origin_result = res;
    f->ended_ms = sl_now_ms();
    f->body_end_time = ev_time();
}

static void release_slot(struct fill *f)
{
    if (!f->has_slot)
        return;
    f->has_slot = false;
    slot_release(&f->a->slots, f->route, sl_now_ms() - f->slot_start_ms);
}

/* Leave the origin queue (no client left, or shutdown). */
static void cancel_wait(struct fill *f)
{
    if (!f->queued)
        return;
    f->queued = false;
    slot_cancel(&f->a->slots, &f->wait);
    source_ended(f, ORIGIN_ERR_OTHER);
    f->aborted = true;
    if (f->head == FILL_HEAD_WAIT)
        f->head = FILL_HEAD_FAILED;
    fill_unref(f);   /* the wait's reference */
}

static void lookup_over(struct fill *f);

static void abort_origin(struct fill *f)
{
    cancel_wait(f);
    lookup_over(f);
    if (!f->src.h)
        return;
    release_slot(f);
    f->src.abort(f->src.h);
    f->src.h = NULL;
    source_ended(f, ORIGIN_ERR_OTHER);
    f->aborted = true;
    metrics_route(f->a, f->route)->fills_failed++;
    fill_unref(f);
}

/* No readers left: finish in the background, or give up. */
static void maybe_abandon(struct fill *f)
{
    if (f->n_readers > 0 || f->origin_done)
        return;
    if (f->queued) {
        /* Its client went away while waiting: leave the queue at once. */
        cancel_wait(f);
        fill_table_remove(f);
        return;
    }
    bool writer_ok = writer_attached(f) || f->head == FILL_HEAD_WAIT;
    uint64_t max = f->a->cfg.fill_background_max_size;
    bool small = f->content_length >= 0 ? (uint64_t)f->content_length <= max : f->received <= max;
    if (writer_ok && small)
        return;
    log_info("fill: last client left, aborting origin transfer key=%s", f->key);
    fill_ref(f);   /* a fill nobody ever read (a sidecar) has no other holder */
    abort_origin(f);
    writer_fail(f, WFAIL_ORIGIN);
    fill_table_remove(f);
    fill_wake_readers(f);
    fill_unref(f);
}

static const char *const kept_headers[] = {
    "Content-Type", "Content-Encoding", "Content-Disposition", "Content-Language",
};

/* Stable across restarts: derived from the key and the fill start. */
static void synthetic_etag(struct fill *f)
{
    char hex[KEY_HEX_LEN + 1], buf[64];
    key_hex(f->hash, hex);
    snprintf(buf, sizeof(buf), "\"sl-%.16s-%llx\"", hex, (unsigned long long)f->started_wall);
    free(f->meta.etag);
    f->meta.etag = sl_strdup(buf);
}

static void build_meta(struct fill *f, int status, const struct origin_headers *h)
{
    struct obj_meta *m = &f->meta;
    m->key = sl_strdup(f->key);
    m->status = status;
    m->stored = f->started_wall;
    m->last_modified = f->started_wall;
    const char *etag = NULL;
    for (int i = 0; i < h->n; i++) {
        const char *name = h->h[i].name, *value = h->h[i].value;
        size_t vlen = strlen(value);
        if (!httpx_header_value_ok(value, vlen, 1024))
            continue;   /* hostile or oversized origin header: dropped (C8) */
        if (strcasecmp(name, "ETag") == 0) {
            if (value[0] == '"' && vlen >= 2 && value[vlen - 1] == '"')
                etag = value;
            free(m->origin_etag);
            m->origin_etag = sl_strdup(value);   /* weak or strong: what a revalidation sends back */
        } else if (strcasecmp(name, "Last-Modified") == 0) {
            time_t t;
            if (httpx_parse_date(value, vlen, &t) == 0)
                m->last_modified = m->origin_last_modified = (int64_t)t;
        } else {
            for (size_t k = 0; k < SL_ARRAY_LEN(kept_headers); k++)
                if (strcasecmp(name, kept_headers[k]) == 0)
                    obj_meta_add_header(m, kept_headers[k], value);
        }
    }
    if (etag)
        m->etag = sl_strdup(etag);
    else
        synthetic_etag(f);
}

/* ------------------------------------------------ what may be stored */

/*
 * The origin's word on sharing its answer (RFC 9111 section 3), as the
 * route's class reads it (docs/ecosystems.md, "Answers the origin marks
 * private"): no-store, private and Vary: * are honoured on every route;
 * a Set-Cookie makes an answer private on the generic route only. On an
 * ecosystem route it is a registry's (or its CDN's) session cookie on a
 * public document, dropped: Set-Cookie is never relayed or stored.
 * NS_REASONS: the answer may be shared.
 */
static enum not_shared_reason share_verdict(const struct fill *f, const struct origin_headers *h)
{
    if (h->no_store)
        return NS_NO_STORE;
    if (h->private_)
        return NS_PRIVATE;
    if (h->vary_star)
        return NS_VARY_STAR;
    if (h->set_cookies > 0 && strcmp(f->route->eco->name, "generic") == 0)
        return NS_SET_COOKIE;
    return NS_REASONS;
}

/* A not-shared answer tells its own client why, in the origin's words
 * (its meta is relayed, never stored). */
static void relay_sharing_headers(struct fill *f, const struct origin_headers *h)
{
    for (int i = 0; i < h->n; i++)
        if ((strcasecmp(h->h[i].name, "Cache-Control") == 0 || strcasecmp(h->h[i].name, "Vary") == 0) &&
            httpx_header_value_ok(h->h[i].value, strlen(h->h[i].value), 1024))
            obj_meta_add_header(&f->meta, h->h[i].name, h->h[i].value);
}

/* What the cache can do without, first to go: its name in meta->headers,
 * or NULL for the origin's ETag (a synthetic one replaces it, and a
 * revalidation falls back to Last-Modified). Content-Encoding is never
 * dropped: without it the body means something else. */
static const char *const droppable[] = { "Content-Language", "Content-Disposition", NULL, "Content-Type" };

static bool drop_header(struct obj_meta *m, const char *name)
{
    for (int i = m->n_headers - 1; i >= 0; i--) {
        if (strcasecmp(m->headers[i].name, name) != 0)
            continue;
        free(m->headers[i].name);
        free(m->headers[i].value);
        memmove(&m->headers[i], &m->headers[i + 1], (size_t)(m->n_headers - i - 1) * sizeof(m->headers[0]));
        m->n_headers--;
        return true;
    }
    return false;
}

static bool drop_one(struct fill *f)
{
    struct obj_meta *m = &f->meta;
    for (size_t k = 0; k < SL_ARRAY_LEN(droppable); k++) {
        if (droppable[k] && drop_header(m, droppable[k]))
            return true;
        if (!droppable[k] && m->origin_etag) {
            free(m->origin_etag);
            m->origin_etag = NULL;
            synthetic_etag(f);
            return true;
        }
    }
    return false;
}

/*
 * An object's header block (objfile.h) holds its key, validators and kept
 * headers in 4 KiB: an answer whose headers do not fit is stored without
 * the ones it can do without, so that its commit never fails (a commit
 * that fails makes every request a refetch). False: even the essentials
 * do not fit; not stored.
 */
static bool fit_meta(struct fill *f)
{
    int dropped = 0;
    while (!obj_meta_fits(&f->meta) && drop_one(f))
        dropped++;
    if (dropped > 0) {
        metrics_route(f->a, f->route)->headers_dropped += (uint64_t)dropped;
        log_warn("fill: %d origin header(s) do not fit the object's header block, stored without them key=%s",
                 dropped, f->key);
    }
    if (obj_meta_fits(&f->meta))
        return true;
    log_warn("fill: the origin's essential headers do not fit the object's header block, not storing key=%s",
             f->key);
    return false;
}

static struct fill *fill_of(void *ctx)
{
    struct fill *f = ctx;
    SL_CHECK_OBJ(f, FILL_MAGIC);
    return f;
}

/* The head is known (f->meta, f->content_length): store it if we may. */
/* Which answers are stored: 200, and a metadata 404 while negative
 * caching is on (an artifact's 404 never is: it may be a transient). */
static bool status_stored(const struct fill *f, int status)
{
    return status == 200 ||
           (status == 404 && f->rq.cls == ECO_METADATA && f->route->fresh.negative_ttl > 0);
}

static void head_ready(struct fill *f, bool shared)
{
    struct agent *a = f->a;
    f->head = FILL_HEAD_READY;
    bool cacheable = shared && status_stored(f, f->meta.status) &&
                     (f->content_length < 0 || (uint64_t)f->content_length <= a->cfg.object_max_size) &&
                     fit_meta(f);
    if (!shared) {
        f->not_shared = true;
        fill_table_remove(f);   /* no later request joins it: each fetches its own */
    }
    if (cacheable && !f->purged)   /* purged before its head: never stored */
        writer_open(f);
    else if (!cacheable)
        metrics_route(a, f->route)->fills_not_cacheable++;
    fill_wake_readers(f);
    maybe_abandon(f);
}

/*
 * The answer to a revalidation: 304, the stored copy is current again (the
 * index says when; the file is not touched); 5xx, a failure for the caller,
 * who has a stale copy to serve instead of relaying the error.
 */
static bool revalidation_answered(struct fill *f, int status)
{
    if (status != 304 && status < 500)
        return false;
    /* A background refresh (serve/meta.c) has no reader: abort_origin and
     * fill_table_remove may drop the last references before the wake-up. */
    fill_ref(f);
    if (status == 304) {
        f->head = FILL_HEAD_NOT_MODIFIED;
        cache_revalidated(f->a, f->hash);
        metrics_route(f->a, f->route)->revalidated++;
    } else if (status >= 500) {
        f->head = FILL_HEAD_FAILED;
        snprintf(f->origin_detail, sizeof(f->origin_detail), "origin answered %d", status);
        abort_origin(f);
        f->origin_result = ORIGIN_ERR_STATUS;
        fill_table_remove(f);
    }
    fill_wake_readers(f);
    fill_unref(f);
    return true;
}

/* Tell the slots whether the origin answered (serve/meta.c holds off a
 * failing one). */
static void origin_seen(struct fill *f, bool ok)
{
    slots_origin_seen(&f->a->slots, f->route, ok, f->route->fresh.error_hold);
}

/* The origin's own failures feed the adaptive limit (slots.h); a refused
 * redirect, a malformed answer or our own abort do not. */
static void origin_failed(struct fill *f, enum origin_result res)
{
    if (res == ORIGIN_ERR_CONNECT || res == ORIGIN_ERR_STALL || res == ORIGIN_ERR_TRUNCATED ||
        res == ORIGIN_ERR_HEADER_TIMEOUT)
        slots_origin_error(&f->a->slots, f->route, res == ORIGIN_ERR_HEADER_TIMEOUT);
}

/* A 429's or 503's Retry-After, in milliseconds (0: none, or unreadable). */
static int64_t retry_after_ms(int status, const struct origin_headers *h)
{
    if (status != 429 && status != 503)
        return 0;
    for (int i = 0; i < h->n; i++)
        if (strcasecmp(h->h[i].name, "Retry-After") == 0) {
            int64_t s = httpx_retry_after(h->h[i].value, strlen(h->h[i].value), time(NULL));
            return s > 0 ? SL_MIN(s, INT64_MAX / 1000) * 1000 : 0;
        }
    return 0;
}

static void on_origin_headers(void *ctx, int status, const struct origin_headers *h)
{
    struct fill *f = fill_of(ctx);
    origin_seen(f, status < 500);
    slots_origin_head(&f->a->slots, f->route, status, sl_now_ms() - f->slot_start_ms, retry_after_ms(status, h));
    f->answer_status = status;
    if (f->rq.revalidate && revalidation_answered(f, status))
        return;
    build_meta(f, status, h);
    f->content_length = h->content_length;
    enum not_shared_reason why = share_verdict(f, h);
    struct route_counters *rc = metrics_route(f->a, f->route);
    if (why != NS_REASONS) {
        relay_sharing_headers(f, h);
    }
    if (why != NS_REASONS && status_stored(f, status)) {
        rc->not_shared[why]++;
        log_info("fill: the origin marks its answer %s, relayed to its clients and not stored key=%s",
                 why == NS_SET_COOKIE ? "private (Set-Cookie)" : why == NS_VARY_STAR ? "Vary: *"
                 : why == NS_PRIVATE ? "private" : "no-store", f->key);
    } else if (h->set_cookies > 0) {
        rc->cookies_dropped += (uint64_t)h->set_cookies;
    }
    head_ready(f, why == NS_REASONS);
}

static void on_origin_bad(void *ctx, enum origin_bad why)
{
    struct fill *f = fill_of(ctx);
    SL_ASSERT(why > ORIGIN_BAD_NONE && why < ORIGIN_BAD_REASONS);
    metrics_route(f->a, f->route)->origin_bad[why]++;
}

/* Body bytes from any source (ORIGIN_PAUSE and TIER_PAUSE are the same). */
static size_t on_source_data(void *ctx, const uint8_t *data, size_t len)
{
    struct fill *f = fill_of(ctx);
    if (spool_must_pause(f, len)) {
        spool_pause(f);
        return ORIGIN_PAUSE;
    }
    spool_append(f, data, len);
    if (f->tier_idx >= 0)
        f->a->m.tier[f->tier_idx].bytes_read += len;
    verify_pump(f);   /* hash what just arrived */
    check_feed(f, data, len);
    if (f->received > f->a->cfg.object_max_size)
        writer_fail(f, WFAIL_TOO_LARGE);
    writer_pump(f);
    fill_wake_readers(f);
    if (f->n_readers == 0)
        maybe_abandon(f);
    return len;
}

/*
 * A complete body whose writer was detached for lagging (a fast origin, a
 * busy machine) is fetched once more in the background, with nobody
 * attached, so must_pause paces that origin by the writer and the object
 * gets stored: otherwise every later request would be a miss that lags the
 * same way. It is one more origin fetch for the key, one at a time (C5),
 * never for a refetch itself, and it takes an origin slot like any fill.
 * One refetch runs at a time, and none while the disk has failed a write
 * in the last minute: writers that lag because a full disk makes every
 * fill fail at once must not turn into a second round of origin fetches.
 */
#define REFETCH_DISK_QUIET_MS (60 * 1000)

static void refetch_after_lag(struct fill *f)
{
    struct agent *a = f->a;
    if (f->wstate != W_FAILED || f->wfail != WFAIL_LAG || f->refetch ||
        f->received > a->cfg.cache_refetch_max_size || fill_find(a, f->hash) || a->refetches_running > 0 ||
        (a->storage_error_ms && sl_now_ms() - a->storage_error_ms < REFETCH_DISK_QUIET_MS))
        return;
    struct fill *g = fill_start(a, f->route, f->key, f->hash, f->url, &f->rq);
    if (!g)
        return;   /* no origin slot now: the next request fills as usual */
    g->refetch = true;
    verify_inherit(g, f);   /* stored only if it matches what f was checked against */
    a->refetches_running++;
    a->m.refetches++;
    log_info("fill: refetching key=%s in the background, paced by the cache writer", f->key);
}

/* What follows the end of the source (or, for a fill waiting for its
 * expected digest, the verdict): fail, wait, drop out, or commit. */
static void settle(struct fill *f)
{
    if (!fill_body_complete(f)) {
        if (f->origin_result == ORIGIN_OK)
            f->origin_result = ORIGIN_ERR_TRUNCATED;
        /* the origin's own failure (not a redirect policy's, not a tier's) */
        if (!f->from_tier && f->url[0] && f->origin_result >= ORIGIN_ERR_CONNECT && f->origin_result <= ORIGIN_ERR_PROTOCOL)
            origin_seen(f, false);
        metrics_route(f->a, f->route)->fills_failed++;
        if (f->lookup && f->from_tier)
            l2_skip_once(f->a, f->hash);   /* its next miss fetches it afresh, healing L2 */
        log_warn("fill: origin failed (%s%s%s) key=%s after %llu bytes", origin_result_name(f->origin_result),
                 f->origin_detail[0] ? ": " : "", f->origin_detail, f->key, (unsigned long long)f->received);
        writer_fail(f, WFAIL_ORIGIN);
        fill_table_remove(f);
    } else if (!verify_settled(f)) {
        return;   /* the expected digest is still coming (fill_verify_expect) */
    } else if (f->wstate == W_NONE || f->wstate == W_FAILED) {
        fill_table_remove(f);   /* nothing will be committed */
        refetch_after_lag(f);
    } else {
        writer_pump(f);
    }
}

void fill_verdict_reached(struct fill *f)
{
    settle(f);
    fill_wake_readers(f);
}

static void on_origin_done(void *ctx, enum origin_result res, const char *detail)
{
    struct fill *f = fill_of(ctx);
    f->src.h = NULL;
    origin_failed(f, res);
    release_slot(f);
    source_ended(f, res);
    sl_strlcpy(f->origin_detail, detail ? detail : "", sizeof(f->origin_detail));
    if (f->head == FILL_HEAD_WAIT && res != ORIGIN_OK)
        f->head = FILL_HEAD_FAILED;
    if (fill_body_complete(f)) {
        check_finish(f);            /* before anything is committed */
        verify_body_complete(f);    /* may fail the fill (integrity) */
    }
    fill_verdict_reached(f);
    fill_unref(f);   /* the transfer's reference */
}

static const struct origin_callbacks fill_origin_cb = {
    .on_headers = on_origin_headers,
    .on_data = on_source_data,
    .on_done = on_origin_done,
    .on_bad = on_origin_bad,
};

static void origin_resume_h(void *h) { origin_resume(h); }
static void origin_abort_h(void *h) { origin_abort(h); }

/* ---------------------------------------------------------- tier source */

_Static_assert(ORIGIN_PAUSE == TIER_PAUSE, "one pause value for every source");

static void lookup_count(struct fill *f, enum l2_lookup_end end);
static void lookup_go_on(struct fill *f);

/* A tier's copy a lookup must not serve: metadata past its TTL (another
 * edge fetched it; its `stored` is when the origin sent it), or a stored
 * 404 (negative caching is each edge's own). The origin is asked instead. */
static bool tier_copy_stale(const struct fill *f, const struct obj_meta *m)
{
    if (m->status != 0 && m->status != 200)
        return true;
    return f->rq.cls == ECO_METADATA && m->stored + f->route->fresh.ttl / 1000 <= sl_wall_s();
}

static void on_tier_meta(void *ctx, const struct obj_meta *m)
{
    struct fill *f = fill_of(ctx);
    if (f->lookup) {
        ev_timer_stop(f->a->loop, &f->lookup_timer);
        if (tier_copy_stale(f, m)) {
            tier_read_abort(f->src.h);   /* no callback of it runs after this */
            f->src.h = NULL;
            lookup_count(f, L2_MISS_STALE);
            lookup_go_on(f);
            return;
        }
        lookup_count(f, L2_HIT);
    }
    f->from_tier = true;
    obj_meta_copy(&f->meta, m);
    free(f->meta.key);
    f->meta.key = sl_strdup(f->key);
    f->meta.status = f->answer_status = 200;
    f->content_length = (int64_t)m->size;
    head_ready(f, true);
}

static void on_tier_done(void *ctx, enum tier_result res, const char *detail)
{
    struct fill *f = fill_of(ctx);
    if (f->lookup && f->head == FILL_HEAD_WAIT) {
        SL_ASSERT(res != TIER_OK);   /* TIER_OK only after the head */
        f->src.h = NULL;             /* the read is over */
        log_debug("fill: tier %s: %s key=%s, going on", f->a->tiers[f->tier_idx]->name, detail, f->key);
        lookup_count(f, res == TIER_MISS ? L2_MISS_ABSENT : L2_ERR_ERROR);
        lookup_go_on(f);
        return;
    }
    if (res != TIER_OK && f->tier_idx >= 0)
        f->a->m.tier[f->tier_idx].reads_failed++;
    lookup_over(f);
    on_origin_done(ctx, res == TIER_OK ? ORIGIN_OK : ORIGIN_ERR_OTHER, detail);
}

static const struct tier_read_cb fill_tier_cb = {
    .on_meta = on_tier_meta,
    .on_data = on_source_data,
    .on_done = on_tier_done,
};

static void tier_resume_h(void *h) { tier_read_resume(h); }
static void tier_abort_h(void *h) { tier_read_abort(h); }

/* ---------------------------------------------------------------- API */

static void start_transfer(struct fill *f)
{
    f->has_slot = true;
    f->slot_start_ms = sl_now_ms();
    f->src = (struct fill_source){
        origin_fetch(f->a->origins, f->route, f->url, (const char *const *)f->headers, &fill_origin_cb, f),
        origin_resume_h, origin_abort_h };
}

static void on_slot_granted(void *ctx)
{
    struct fill *f = fill_of(ctx);
    f->queued = false;
    start_transfer(f);   /* the wait's reference becomes the transfer's */
}

static void origin_busy(struct fill *f);

static void on_slot_expired(void *ctx)
{
    struct fill *f = fill_of(ctx);
    f->queued = false;
    origin_busy(f);   /* the wait's reference */
}

/* --------------------------------------------------------- tier lookup */

/* The L2 lookup phase is over (a hit's body ended, a fallback, an abort):
 * its deadline and its place among l2_lookups_max go. Idempotent. */
static void lookup_over(struct fill *f)
{
    ev_timer_stop(f->a->loop, &f->lookup_timer);
    if (!f->l2_slot)
        return;
    SL_ASSERT(f->a->l2_lookups_running > 0);
    f->a->l2_lookups_running--;
    f->l2_slot = false;
}

static void lookup_count(struct fill *f, enum l2_lookup_end end)
{
    SL_ASSERT(f->tier_idx >= 0);
    struct tier_counters *tc = &f->a->m.tier[f->tier_idx];
    tc->lookups[end]++;
    tc->lookup_seconds_sum += (double)(sl_now_ms() - f->lookup_start_ms) / 1000.0;
    tc->lookup_count++;
}

/* The origin's queue refused the fill (full) or let it wait too long. */
static void origin_busy(struct fill *f)
{
    source_ended(f, ORIGIN_ERR_OTHER);
    f->head = FILL_HEAD_BUSY;
    f->retry_after = slots_retry_after(&f->a->slots, f->route);
    fill_table_remove(f);
    fill_wake_readers(f);
    fill_unref(f);   /* the source's reference */
}

/* No tier had it: the origin, taking a slot. The source's reference
 * becomes the queue wait's or the transfer's. */
static void lookup_to_origin(struct fill *f)
{
    enum slot_result sr = slot_acquire(&f->a->slots, f->route, &f->wait, on_slot_granted, on_slot_expired, f);
    if (sr == SLOT_GRANTED)
        start_transfer(f);
    else if (sr == SLOT_QUEUED)
        f->queued = true;
    else
        origin_busy(f);
}

static void start_tier_read(struct fill *f, struct tier *t)
{
    f->src = (struct fill_source){ NULL, tier_resume_h, tier_abort_h };
    f->src.h = tier_read(t, f->key, f->hash, &fill_tier_cb, f);
}

static void lookup_tier(struct fill *f, int i)
{
    struct agent *a = f->a;
    f->tier_idx = i;
    f->lookup_start_ms = sl_now_ms();
    ev_timer_set(&f->lookup_timer, (double)a->cfg.l2_lookup_timeout / 1000.0, 0.0);
    ev_timer_start(a->loop, &f->lookup_timer);
    start_tier_read(f, a->tiers[i]);
}

/* This tier had nothing usable in time: the next one, or the origin. */
static void lookup_go_on(struct fill *f)
{
    SL_ASSERT(f->lookup && !f->src.h && f->head == FILL_HEAD_WAIT);
    ev_timer_stop(f->a->loop, &f->lookup_timer);
    if (f->tier_idx + 1 < f->a->n_tiers) {
        lookup_tier(f, f->tier_idx + 1);
        return;
    }
    lookup_over(f);
    f->tier_idx = -1;
    if (!f->in_table && f->n_readers == 0) {
        source_ended(f, ORIGIN_ERR_OTHER);   /* purged, and nobody left to fetch it for */
        f->head = FILL_HEAD_FAILED;
        fill_unref(f);
        return;
    }
    lookup_to_origin(f);
}

/* No head from the tier within l2_lookup_timeout: give up on it. */
static void on_lookup_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    SL_UNUSED(loop);
    SL_UNUSED(revents);
    struct fill *f = fill_of(w->data);
    SL_ASSERT(f->src.h && f->head == FILL_HEAD_WAIT);
    tier_read_abort(f->src.h);
    f->src.h = NULL;
    lookup_count(f, L2_ERR_TIMEOUT);
    log_info("fill: tier %s gave no answer within l2_lookup_timeout key=%s, going on", f->a->tiers[f->tier_idx]->name,
             f->key);
    lookup_go_on(f);
}

void fill_retire(struct fill *f)
{
    fill_table_remove(f);
}

void fill_purge(struct fill *f)
{
    SL_CHECK_OBJ(f, FILL_MAGIC);
    fill_ref(f);
    f->purged = true;
    writer_fail(f, WFAIL_PURGED);
    fill_table_remove(f);
    fill_wake_readers(f);
    fill_unref(f);
}

int fill_purge_prefix(struct agent *a, const char *prefix)
{
    size_t n = strlen(prefix);
    int purged = 0;
    for (int b = 0; b < FILL_TABLE_BUCKETS; b++) {
        struct fill *f = a->fills[b];
        while (f) {
            if (strncmp(f->key, prefix, n) != 0) {
                f = f->table_next;
                continue;
            }
            fill_purge(f);   /* leaves the table: start the bucket again */
            purged++;
            f = a->fills[b];
        }
    }
    return purged;
}

static const char *const writer_state_names[] = {
    [W_NONE] = "none", [W_OPENING] = "opening", [W_ACTIVE] = "writing", [W_COMMITTING] = "committing",
    [W_COMMITTED] = "committed", [W_FAILED] = "detached",
};

static void describe(const struct fill *f, struct fill_info *out)
{
    out->key = f->key;
    out->route = f->route->name;
    out->url = f->url;
    out->received = f->received;
    out->content_length = f->content_length;
    out->readers = f->n_readers;
    out->age_ms = sl_now_ms() - f->start_ms;
    out->queued = f->queued;
    out->writer = writer_state_names[f->wstate];
    out->writer_detached_why = f->wstate == W_FAILED ? write_fail_reason_name(f->wfail) : NULL;
}

void fill_each(struct agent *a, void (*fn)(void *ctx, const struct fill_info *fi), void *ctx)
{
    for (int b = 0; b < FILL_TABLE_BUCKETS; b++)
        for (const struct fill *f = a->fills[b]; f; f = f->table_next) {
            struct fill_info fi;
            describe(f, &fi);
            fn(ctx, &fi);
        }
}

/* The request headers rq asks for, owned by the fill. */
static void set_request(struct fill *f, const struct fill_request *rq)
{
    int n = 0;
    char date[40];
    f->rq = rq ? *rq : (struct fill_request){ .cls = ECO_IMMUTABLE };
    f->rq.accept = f->rq.accept ? sl_strdup(f->rq.accept) : NULL;
    f->rq.if_none_match = f->rq.revalidate && f->rq.if_none_match ? sl_strdup(f->rq.if_none_match) : NULL;
    if (f->rq.accept)
        f->headers[n++] = sl_printf("Accept: %s", f->rq.accept);
    /* Metadata is parsed (checked, rewritten): its bytes as the document,
     * never a gzip of it, whatever the origin would otherwise choose. */
    if (f->rq.cls == ECO_METADATA)
        f->headers[n++] = sl_strdup("Accept-Encoding: identity");
    if (f->rq.if_none_match)
        f->headers[n++] = sl_printf("If-None-Match: %s", f->rq.if_none_match);
    if (f->rq.revalidate && f->rq.if_modified_since > 0) {
        httpx_format_date((time_t)f->rq.if_modified_since, date, sizeof(date));
        f->headers[n++] = sl_printf("If-Modified-Since: %s", date);
    }
    SL_ASSERT(n < (int)SL_ARRAY_LEN(f->headers));
}

/* A new fill, not in the table yet, holding one reference (the table's). */
static struct fill *fill_new(struct agent *a, const struct route *route, const char *key,
                             const uint8_t hash[KEY_HASH_LEN], const char *url)
{
    SL_ASSERT(!fill_find(a, hash));
    struct fill *f = sl_calloc(1, sizeof(*f));
    f->magic = FILL_MAGIC;
    f->a = a;
    memcpy(f->hash, hash, KEY_HASH_LEN);
    f->key = sl_strdup(key);
    f->url = sl_strdup(url);
    f->route = route;
    f->started_wall = sl_wall_s();
    f->start_ms = sl_now_ms();
    f->content_length = -1;
    f->head = FILL_HEAD_WAIT;
    list_init(&f->paused_link);
    writer_init(f);
    f->tier_idx = -1;
    ev_init(&f->lookup_timer, on_lookup_deadline);
    f->lookup_timer.data = f;
    f->refs = 1;
    return f;
}

static void table_insert(struct fill *f)
{
    unsigned b = table_bucket(f->hash);
    f->table_next = f->a->fills[b];
    f->a->fills[b] = f;
    f->in_table = true;
    f->ran = true;
    f->a->m.fills_in_flight++;
}

struct fill *fill_start(struct agent *a, const struct route *route, const char *key,
                        const uint8_t hash[KEY_HASH_LEN], const char *url, const struct fill_request *rq)
{
    struct fill *f = fill_new(a, route, key, hash, url);
    set_request(f, rq);
    enum slot_result sr = slot_acquire(&a->slots, route, &f->wait, on_slot_granted, on_slot_expired, f);
    if (sr == SLOT_REJECTED) {
        fill_unref(f);
        return NULL;
    }
    table_insert(f);
    f->refs++;   /* the transfer's, or the queue wait's that precedes it */
    if (sr == SLOT_GRANTED)
        start_transfer(f);
    else
        f->queued = true;
    return f;
}

struct fill *fill_start_from_tier(struct agent *a, const struct route *route, const char *key,
                                  const uint8_t hash[KEY_HASH_LEN], struct tier *tier)
{
    struct fill *f = fill_new(a, route, key, hash, "");
    set_request(f, NULL);
    table_insert(f);
    f->refs++;   /* the read's */
    f->from_tier = true;
    for (int i = 0; i < a->n_tiers; i++)
        if (a->tiers[i] == tier)
            f->tier_idx = i;
    start_tier_read(f, tier);
    return f;
}

struct fill *fill_start_lookup(struct agent *a, const struct route *route, const char *key,
                               const uint8_t hash[KEY_HASH_LEN], const char *url, const struct fill_request *rq)
{
    if (a->n_tiers == 0 || (rq && rq->revalidate) || l2_take_skip(a, hash))
        return fill_start(a, route, key, hash, url, rq);
    if (a->l2_lookups_running >= a->cfg.l2_lookups_max) {
        for (int i = 0; i < a->n_tiers; i++)
            a->m.tier[i].lookups[L2_ERR_BUSY]++;
        return fill_start(a, route, key, hash, url, rq);
    }
    struct fill *f = fill_new(a, route, key, hash, url);
    set_request(f, rq);
    table_insert(f);
    f->refs++;   /* the source's: each tier read in turn, then the origin's wait or transfer */
    f->lookup = true;
    f->l2_slot = true;
    a->l2_lookups_running++;
    lookup_tier(f, 0);
    return f;
}

const char *fill_tier_name(const struct fill *f)
{
    if (!f->from_tier)
        return NULL;
    return f->tier_idx >= 0 ? f->a->tiers[f->tier_idx]->name : "tier";
}

bool fill_attach(struct fill *f, struct fill_reader *r, void (*wake)(void *ctx), void *ctx)
{
    if (f->mem_start > 0 && !(f->sf && f->file_end >= f->mem_start))
        return false;
    r->fill = f;
    r->pos = 0;
    r->wake = wake;
    r->ctx = ctx;
    r->prev = NULL;
    r->next = f->readers;
    if (f->readers)
        f->readers->prev = r;
    f->readers = r;
    f->n_readers++;
    f->attached++;
    f->a->m.followers_attached++;
    fill_ref(f);
    return true;
}

void fill_detach(struct fill_reader *r)
{
    struct fill *f = r->fill;
    if (!f)
        return;
    if (r->prev)
        r->prev->next = r->next;
    else
        f->readers = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->fill = NULL;
    f->n_readers--;
    f->a->m.followers_attached--;
    spool_reclaim(f);
    maybe_abandon(f);
    fill_unref(f);
}

enum fill_head_state fill_head_state(const struct fill *f)
{
    return f->head;
}

const struct obj_meta *fill_meta(const struct fill *f)
{
    SL_ASSERT(f->head == FILL_HEAD_READY);
    return &f->meta;
}

enum origin_result fill_failure(const struct fill *f, const char **detail)
{
    SL_ASSERT(f->head == FILL_HEAD_FAILED);
    *detail = f->origin_detail;
    return f->origin_result;
}

bool fill_is_revalidation(const struct fill *f)
{
    return f->rq.revalidate;
}

int fill_retry_after(const struct fill *f)
{
    return f->retry_after;
}

int64_t fill_content_length(const struct fill *f)
{
    return f->content_length;
}

bool fill_is_shared(const struct fill *f)
{
    return !f->not_shared;
}

bool fill_is_storing(const struct fill *f)
{
    return f->wstate == W_OPENING || f->wstate == W_ACTIVE || f->wstate == W_COMMITTING ||
           f->wstate == W_COMMITTED;
}



void fill_abort_all(struct agent *a)
{
    for (int b = 0; b < FILL_TABLE_BUCKETS; b++) {
        while (a->fills[b]) {
            struct fill *f = a->fills[b];
            fill_ref(f);
            abort_origin(f);
            writer_fail(f, WFAIL_ORIGIN);
            fill_table_remove(f);
            fill_wake_readers(f);
            fill_unref(f);
        }
    }
}
