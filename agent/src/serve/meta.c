/*
 * meta.c - metadata freshness on the HTTP side (see meta.h).
 *
 *   fresh              a hit
 *   stale, within SWR  a hit now ("hit; detail=stale-while-revalidate"),
 *                      and one background revalidation per key (a fill
 *                      nobody reads; it takes an origin slot like any)
 *   older              a revalidation fill the request leads or follows:
 *                      304 -> the stored copy, refreshed; 200 -> the new
 *                      body, streamed and stored; the origin failing -> the
 *                      stale copy while within stale-if-error, else 502;
 *                      while the origin is failing (it failed a fetch in
 *                      the last metadata_error_hold), the stale copy at
 *                      once, without asking it
 * A stored 404 (negative caching) is fresh for metadata_negative_ttl, then
 * fetched again. Every stale answer is counted per route.
 */
#include "serve/meta.h"

#include "core/common.h"
#include "core/log.h"
#include "fill/fill.h"
#include "serve/fresh.h"
#include "serve/hit.h"
#include "serve/miss.h"
#include "serve/rewrite.h"
#include "store/cache.h"

/* The fill_request of a revalidation of entry e (its validators), or a
 * plain refetch when the object cannot be read. */
static void revalidation_request(struct agent *a, struct index_entry *e, const struct canon *cn,
                                 struct fill_request *rq, char **etag)
{
    miss_request(cn, rq);
    int64_t lm = 0;
    *etag = NULL;
    if (cache_validators(a, e, cn->key, etag, &lm)) {
        rq->revalidate = true;
        rq->if_none_match = *etag;
        rq->if_modified_since = lm;
    }
}

/* Stale-while-revalidate: refresh in the background unless a fill for the
 * key runs already (one per key) or the origin's queue is full. */
static void refresh_in_background(struct agent *a, struct index_entry *e, const struct canon *cn)
{
    char url[CONFIG_URL_MAX + KEY_MAX + 2], *etag;
    struct fill_request rq;
    if (fill_find(a, cn->hash) || slots_origin_failing(&a->slots, cn->route) ||
        canon_origin_url(cn, url, sizeof(url)) != 0)
        return;
    revalidation_request(a, e, cn, &rq, &etag);
    struct fill *f = fill_start(a, cn->route, cn->key, cn->hash, url, &rq);
    if (f)
        rewrite_check_fill(a, f, cn);
    else
        log_debug("meta: no origin slot to refresh key=%s now; the next request tries again", cn->key);
    free(etag);
}

static void serve_stale(struct agent *a, struct http_conn *c, const struct http_request *req,
                        struct index_entry *e, const struct canon *cn)
{
    struct http_response *r = hit_response(a, req, e, cn, "hit; detail=stale-while-revalidate");
    if (!r) {
        struct fill_request rq;
        miss_request(cn, &rq);
        serve_miss(a, c, req, cn, &(struct miss_opts){ "fwd=miss", &rq, false });
        return;
    }
    metrics_route(a, cn->route)->stale_while_revalidate++;
    refresh_in_background(a, e, cn);
    http_respond_with(c, r);
}

/* The origin is failing: the stale copy now, as if it had just failed again. */
static bool serve_stale_on_error(struct agent *a, struct http_conn *c, const struct http_request *req,
                                 struct index_entry *e, const struct canon *cn)
{
    struct http_response *r = hit_response(a, req, e, cn, "hit; detail=stale-if-error");
    if (!r)
        return false;
    metrics_route(a, cn->route)->stale_if_error++;
    http_respond_with(c, r);
    return true;
}

void serve_metadata(struct agent *a, struct http_conn *c, const struct http_request *req, struct index_entry *e,
                    const struct canon *cn)
{
    struct fill_request rq;
    char *etag = NULL;
    if (!e) {
        miss_request(cn, &rq);
        serve_miss(a, c, req, cn, &(struct miss_opts){ "fwd=uri-miss", &rq, false });
        return;
    }
    enum freshness fr = fresh_judge(&cn->route->fresh, e->status, e->validated, sl_wall_s(),
                                    fresh_client_no_cache(req->cache_control));
    if (fr == FRESH) {
        if (serve_hit(a, c, req, e, cn))
            return;
        miss_request(cn, &rq);   /* the object was unusable: e is gone (C3) */
        serve_miss(a, c, req, cn, &(struct miss_opts){ "fwd=miss", &rq, false });
        return;
    }
    if (fr == STALE_SERVE) {
        serve_stale(a, c, req, e, cn);
        return;
    }
    if (fr == STALE_ON_ERROR && slots_origin_failing(&a->slots, cn->route) && serve_stale_on_error(a, c, req, e, cn))
        return;
    revalidation_request(a, e, cn, &rq, &etag);
    serve_miss(a, c, req, cn, &(struct miss_opts){ "fwd=stale", &rq, fr == STALE_ON_ERROR && rq.revalidate });
    free(etag);
}
