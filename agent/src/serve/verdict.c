/*
 * verdict.c - the SPOP verdict: what HAProxy should do with a request,
 * answered from memory only (no disk or network I/O; see serve.h).
 *
 *   inline   a plain GET of a small object whose body is in memory: the
 *            whole answer rides in the ACK and HAProxy sends it (sluice.lua)
 *   hit      the key is indexed: the agent's HTTP side serves it
 *   fill     cacheable, not indexed: the HTTP side fetches it (from an L2
 *            tier when one holds it, else the origin; store/l2.h) - the
 *            verdict never asks a tier, which is I/O
 *   busy     ... and a new leader would be refused: HAProxy answers 503
 *            (never with L2 tiers: the key may be there, and an L2 read
 *            takes no origin slot; the HTTP side answers 503 itself when
 *            it is not)
 *   reject   the path or query is ambiguous (canon.h): HAProxy answers the
 *            status and reason carried in the ACK, nothing reaches an origin
 *   redirect the ecosystem spells the name another way: HAProxy answers a
 *            301 to the location carried in the ACK
 *   pass     anything else: HAProxy forwards it to the origin
 *
 * Asked over SPOP (spop_server.c) and over HTTP (verdict_http.c, for the
 * Lua edge). Only a "plain" lookup may be answered inline; the HTTP caller,
 * which cannot carry a body back, never sends one as plain.
 */
#include <string.h>

#include "core/common.h"
#include "fill/fill.h"
#include "serve/classify.h"
#include "serve/edge.h"
#include "serve/hit.h"
#include "serve/serve.h"
#include "store/cache.h"

/* Storage of the inline answer and the redirect location handed to the
 * SPOP server: valid until the next verdict (the loop thread is the only
 * caller). */
static struct {
    struct http_head head;
    uint8_t body[CACHE_SMALL_BODY_MAX];
    char location[ROUTE_PREFIX_MAX + KEY_MAX + 1];
} inline_answer;

/*
 * A plain GET for a small object whose body is in memory: answer it inside
 * the SPOP ACK, so HAProxy sends the response itself (haproxy/sluice.lua)
 * without a second hop to the HTTP side. The object is validated exactly as
 * for an HTTP hit; any doubt answers "hit" and the HTTP side decides.
 */
static bool verdict_inline(struct agent *a, struct index_entry *e, const struct canon *cn,
                           struct spop_verdict *out)
{
    if (e->body_size == 0 || e->body_size > (uint64_t)a->cfg.inline_hit_max)
        return false;
    struct cache_hit hit;
    if (!cache_open_hit(a, e, cn->key, &hit))
        return false;
    bool ok = hit.body != NULL && hit.meta->size <= sizeof(inline_answer.body) && hit.meta->status == 200;
    if (ok) {
        inline_answer.head.len = 0;
        ok = put_hit_headers(&inline_answer.head, hit.meta, e->validated, edge_ttl(&a->cfg, cn, hit.meta, 200, true));
    }
    if (ok) {
        memcpy(inline_answer.body, hit.body, (size_t)hit.meta->size);
        out->fallback = "hit";
        out->hdrs = inline_answer.head.buf;
        out->hdrs_len = inline_answer.head.len;
        out->body = inline_answer.body;
        out->body_len = (size_t)hit.meta->size;
        struct route_counters *rc = metrics_route(a, cn->route);
        rc->hits++;
        rc->bytes_hit += hit.meta->size;
    }
    cache_release_hit(a, &hit);
    return ok;
}

static enum verdict_kind verdict_cacheable(struct agent *a, const struct spop_lookup *in, bool get,
                                           const struct canon *cn, struct spop_verdict *out)
{
    struct index_entry *e = index_lookup(&a->index, cn->hash);
    /* Only immutable artifacts: metadata has freshness rules and rewriting,
     * which the HTTP side applies. */
    if (e && get && in->plain && cn->cls == ECO_IMMUTABLE && verdict_inline(a, e, cn, out))
        return VERDICT_INLINE;
    if (e)
        return VERDICT_HIT;
    /* A new leader would be refused: let the edge answer 503 itself. */
    if (a->n_tiers == 0 && !fill_find(a, cn->hash) && slots_would_reject(&a->slots, cn->route)) {
        out->retry_after = slots_retry_after(&a->slots, cn->route);
        return VERDICT_BUSY;
    }
    return VERDICT_FILL;
}

void serve_verdict(void *ctx, const struct spop_lookup *in, struct spop_verdict *out)
{
    struct agent *a = ctx;
    SL_CHECK_OBJ(a, AGENT_MAGIC);
    out->retry_after = -1;
    const struct route *route = in->route ? route_by_name(&a->routes, in->route, in->route_len) : NULL;
    bool get = sl_bytes_eq(in->method, in->method_len, "GET");
    struct request_class rc;
    struct canon_limits lim = serve_canon_limits(&a->cfg);
    serve_classify(route, &lim, get || sl_bytes_eq(in->method, in->method_len, "HEAD"), in->has_auth, in->path ? in->path : "",
                   in->path ? in->path_len : 0, in->query, in->query_len, in->accept, in->accept_len, &rc);
    enum verdict_kind v = VERDICT_PASS;
    if (rc.kind == CLASS_CACHEABLE && !a->stopping) {   /* draining: the HTTP side takes no new work */
        v = verdict_cacheable(a, in, get, &rc.canon, out);
    } else if (rc.kind == CLASS_REJECT) {
        v = VERDICT_REJECT;
        out->status = canon_err_status(rc.canon_err);
        out->reason = canon_strerror(rc.canon_err);
        serve_count_reject(a, &rc);
    } else if (rc.kind == CLASS_REDIRECT) {
        v = VERDICT_REDIRECT;
        sl_strlcpy(inline_answer.location, rc.location, sizeof(inline_answer.location));
        out->location = inline_answer.location;
    }
    out->verdict = verdict_names[v];
    metrics_route(a, route)->verdicts[v]++;
}
