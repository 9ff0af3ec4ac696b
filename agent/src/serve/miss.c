/*
 * miss.c - fill responses (see miss.h).
 *
 * Cache-Status of a fill response:
 *   fwd=uri-miss[; stored]       leader of a fill for a key we never had
 *   fwd=miss[; stored]           leader after a stale index entry
 *   fwd=uri-miss; collapsed      follower of a running fill
 *   hit; detail=committing       a late joiner: the body had all arrived and
 *                                was being committed (the commit window);
 *                                served from the finished spool without the
 *                                origin, so a hit for the client, counted in
 *                                sluice_fill_late_joins_total
 *   fwd=stale; fwd-status=200    a revalidation that brought a new body
 *   fwd=stale; fwd-status=304    a revalidation the origin confirmed (the
 *                                stored copy is served: a delegated hit)
 *   hit; detail=stale-if-error   the origin failed, the stale copy served
 *   fwd=uri-miss; detail=l2-hit[; collapsed][; stored]
 *                                the body came from an L2 tier (a shared
 *                                directory, S3; fill_start_lookup): not in
 *                                this edge's cache, not from the origin
 * "stored" means the cache writer was attached when the head was sent; the
 * object is committed only if the body then completes and verifies.
 * A follower never relays an answer its origin marked private (the fill
 * is not shared, fill.h): it leads a fill of its own instead, and its
 * Cache-Status is a leader's.
 * Before the origin's head is known the response can still fail cleanly
 * (502 origin error, 503 queue wait expired); after it, a failure is an
 * aborted transfer (http_server.h).
 */
#include "serve/miss.h"

#include <string.h>

#include "core/common.h"
#include "fill/fill.h"
#include "serve/hit.h"
#include "serve/integrity.h"
#include "serve/rewrite.h"

#define FILL_RESP_MAGIC 0x46494c52u   /* "FILR" */

struct fill_resp {
    struct http_response base;    /* first: the server hands us &base */
    unsigned magic;
    struct agent *a;
    struct http_conn *c;
    const struct http_request *req;
    struct canon cn;              /* a copy: the response outlives the handler */
    struct fill_reader reader;
    const char *cache_status;
    bool follower;
    bool late;                /* joined in the commit window: the body was all here */
    bool stale_ok;
    struct http_response *delegate;   /* answered from the stored copy */
    struct rw_pipe *rw;           /* the body is rewritten, or NULL */
    const char *err_body;         /* failed before the head: a small error body */
    size_t err_len, err_sent;
    char err_buf[256];            /* ... when it is not a constant */
};

static struct fill_resp *fill_resp_of(void *r)
{
    struct fill_resp *fr = r;
    SL_CHECK_OBJ(fr, FILL_RESP_MAGIC);
    return fr;
}

static void fill_resp_wake(void *ctx)
{
    http_conn_wake(fill_resp_of(ctx)->c);
}

/* A plain-text error answer before any byte of the origin's (502, 503). */
static enum http_head_result error_head(struct fill_resp *fr, struct http_head *out, int status,
                                        const char *body, const char *extra)
{
    fr->err_body = body;
    fr->err_len = strlen(body);
    if (!put_status_and_date(out, status) ||
        !http_head_printf(out, "Content-Type: text/plain\r\nCache-Control: no-store\r\n%sContent-Length: %zu\r\n\r\n",
                          extra, fr->err_len))
        return HTTP_HEAD_ABORT;
    out->mode = HTTP_BODY_LENGTH;
    out->length = fr->err_len;
    return HTTP_HEAD_READY;
}

/* Answer from the stored copy from now on; false when it is gone. */
static bool delegate_to_stored(struct fill_resp *fr, const char *cache_status)
{
    struct index_entry *e = index_lookup(&fr->a->index, fr->cn.hash);
    fr->delegate = e ? hit_response(fr->a, fr->req, e, &fr->cn, cache_status) : NULL;
    return fr->delegate != NULL;
}

/* The origin failed (or its queue was full) while a stale copy may do. */
static bool serve_stale_instead(struct fill_resp *fr)
{
    if (!fr->stale_ok || !delegate_to_stored(fr, "hit; detail=stale-if-error"))
        return false;
    metrics_route(fr->a, fr->cn.route)->stale_if_error++;
    return true;
}

static enum http_head_result busy_head(struct fill_resp *fr, struct http_head *out)
{
    char extra[128];
    if (serve_stale_instead(fr))
        return fr->delegate->head(fr->delegate, out);
    metrics_route(fr->a, fr->cn.route)->busy_503_agent++;
    snprintf(extra, sizeof(extra), "Retry-After: %d\r\nCache-Status: sluice; fwd=miss; detail=busy\r\n",
             fill_retry_after(fr->reader.fill));
    return error_head(fr, out, 503, "busy: waited too long for an origin slot, retry later\n", extra);
}

/* The origin failed before its head: the stale copy if one may be served,
 * else 502, and why when the client can act on it (a redirect the route's
 * policy refused names its target). */
static enum http_head_result failed_head(struct fill_resp *fr, struct http_head *out)
{
    char extra[160];
    const char *detail;
    if (serve_stale_instead(fr))
        return fr->delegate->head(fr->delegate, out);
    bool redirect = fill_failure(fr->reader.fill, &detail) == ORIGIN_ERR_REDIRECT;
    snprintf(extra, sizeof(extra), "Cache-Status: sluice; %s; detail=%s\r\n", fr->cache_status,
             redirect ? "redirect-refused" : "origin-error");
    snprintf(fr->err_buf, sizeof(fr->err_buf), "%s%s%s\n", redirect ? "origin redirect refused" : "origin unavailable",
             detail && *detail ? ": " : "", detail ? detail : "");
    return error_head(fr, out, 502, fr->err_buf, extra);
}

/* A revalidation the origin answered 304: the stored copy is current. */
static enum http_head_result not_modified_head(struct fill_resp *fr, struct http_head *out)
{
    if (delegate_to_stored(fr, "fwd=stale; fwd-status=304"))
        return fr->delegate->head(fr->delegate, out);
    return error_head(fr, out, 502, "the stored copy went away during its revalidation\n",
                      "Cache-Status: sluice; fwd=stale; detail=origin-error\r\n");
}

static enum http_body_result raw_body(void *ctx, struct http_piece *out)
{
    return fill_read(&fill_resp_of(ctx)->reader, out);
}

static void raw_consumed(void *ctx, size_t n)
{
    fill_consumed(&fill_resp_of(ctx)->reader, n);
}

/* Content-Length as announced, or chunked (unknown, or rewritten). */
static bool put_framing(struct fill_resp *fr, struct http_head *out)
{
    int64_t cl = fill_content_length(fr->reader.fill);
    if (cl >= 0 && !fr->rw) {
        out->mode = HTTP_BODY_LENGTH;
        out->length = (uint64_t)cl;
        return http_head_printf(out, "Content-Length: %lld\r\n\r\n", (long long)cl);
    }
    out->mode = HTTP_BODY_CHUNKED;
    return http_head_printf(out, "Transfer-Encoding: chunked\r\n\r\n");
}

/* The origin's own head, relayed with our Cache-Status and framing. */
static enum http_head_result origin_head(struct fill_resp *fr, struct http_head *out)
{
    struct fill *f = fr->reader.fill;
    const struct obj_meta *m = fill_meta(f);
    char etag[300];
    if (rewrite_applies(&fr->cn, m->status)) {
        struct rw_source src = { raw_body, raw_consumed, fr };
        fr->rw = rw_pipe_new(fr->a, &fr->cn, &src);
        rewrite_etag(fr->a, m->etag, etag, sizeof(etag));
    }
    bool ok = put_status_and_date(out, m->status);
    if (m->status == 200 || m->status == 404)
        ok = ok && put_meta_headers(out, m, fr->rw ? etag : NULL);
    else
        for (int i = 0; i < m->n_headers && ok; i++)
            ok = http_head_printf(out, "%s: %s\r\n", m->headers[i].name, m->headers[i].value);
    out->head_alone = true;   /* followers woken together: heads first */
    ok = ok && put_vary(out, &fr->cn);
    if (fr->late)
        ok = ok && http_head_printf(out, "Cache-Status: sluice; hit; detail=committing\r\n");
    else
        ok = ok && http_head_printf(out, "Cache-Status: sluice; %s%s%s%s%s\r\n", fr->cache_status,
                          fill_is_revalidation(f) ? "; fwd-status=200" : "",
                          fill_tier_name(f) ? "; detail=l2-hit" : "", fr->follower ? "; collapsed" : "",
                          fill_is_storing(f) ? "; stored" : "");
    ok = ok && put_framing(fr, out);
    return ok ? HTTP_HEAD_READY : HTTP_HEAD_ABORT;
}

enum lead_result { LEAD_OK, LEAD_BUSY, LEAD_URL_TOO_LONG };
static enum lead_result lead(struct fill_resp *fr, struct fill *running, const struct miss_opts *o);

/*
 * The fill this follower joined turned out to be private to its leader's
 * request (the origin marked it so, fill_is_shared): this request fetches
 * its own answer as if it had come alone, as a shared cache's waiting
 * requests do when the answer they waited for is not shareable.
 */
static enum http_head_result fetch_alone(struct fill_resp *fr, struct http_head *out)
{
    struct fill_request rq;
    miss_request(&fr->cn, &rq);
    struct miss_opts o = { .cache_status = fr->cache_status, .rq = &rq, .stale_ok = fr->stale_ok };
    fill_detach(&fr->reader);
    fr->follower = false;
    if (lead(fr, fill_find(fr->a, fr->cn.hash), &o) == LEAD_OK)
        return HTTP_HEAD_WAIT;   /* the new fill wakes us */
    char extra[128];
    metrics_route(fr->a, fr->cn.route)->busy_503_agent++;
    snprintf(extra, sizeof(extra), "Retry-After: %d\r\nCache-Status: sluice; fwd=miss; detail=busy\r\n",
             slots_retry_after(&fr->a->slots, fr->cn.route));
    return error_head(fr, out, 503, "busy: origin fetch queue is full, retry later\n", extra);
}

static enum http_head_result fill_resp_head(struct http_response *r, struct http_head *out)
{
    struct fill_resp *fr = fill_resp_of(r);
    switch (fill_head_state(fr->reader.fill)) {
    case FILL_HEAD_WAIT:
        return HTTP_HEAD_WAIT;
    case FILL_HEAD_BUSY:
        return busy_head(fr, out);
    case FILL_HEAD_FAILED:
        return failed_head(fr, out);
    case FILL_HEAD_NOT_MODIFIED:
        return not_modified_head(fr, out);
    case FILL_HEAD_READY:
        break;
    }
    if (fr->follower && !fill_is_shared(fr->reader.fill))
        return fetch_alone(fr, out);
    return origin_head(fr, out);
}

static enum http_body_result fill_resp_body(struct http_response *r, struct http_piece *out)
{
    struct fill_resp *fr = fill_resp_of(r);
    if (fr->delegate)
        return fr->delegate->body(fr->delegate, out);
    if (fr->err_body) {
        SL_ASSERT(fr->err_sent <= fr->err_len);
        if (fr->err_sent == fr->err_len)
            return HTTP_PIECE_END;
        out->data = (const uint8_t *)fr->err_body + fr->err_sent;
        out->len = fr->err_len - fr->err_sent;
        return HTTP_PIECE_DATA;
    }
    return fr->rw ? rw_pipe_body(fr->rw, out) : raw_body(fr, out);
}

static void fill_resp_consumed(struct http_response *r, size_t n)
{
    struct fill_resp *fr = fill_resp_of(r);
    if (fr->delegate)
        fr->delegate->consumed(fr->delegate, n);
    else if (fr->err_body)
        fr->err_sent += n;
    else if (fr->rw)
        rw_pipe_consumed(fr->rw, n);
    else
        raw_consumed(fr, n);
}

static void fill_resp_finish(struct http_response *r, bool completed)
{
    struct fill_resp *fr = fill_resp_of(r);
    if (fr->delegate)
        fr->delegate->finish(fr->delegate, completed);
    rw_pipe_free(fr->rw);
    fill_detach(&fr->reader);
    fr->magic = 0;
    free(fr);
}

/* The origin's queue is full: 503 + Retry-After, never cached. */
static void respond_busy(struct agent *a, struct http_conn *c, const struct route *route)
{
    char headers[256];
    snprintf(headers, sizeof(headers),
             "Retry-After: %d\r\nCache-Control: no-store\r\nCache-Status: sluice; fwd=miss; detail=busy\r\n",
             slots_retry_after(&a->slots, route));
    metrics_route(a, route)->busy_503_agent++;
    http_respond_simple(c, 503, "text/plain", headers, SL_LIT("busy: origin fetch queue is full, retry later\n"));
}

void miss_request(const struct canon *cn, struct fill_request *rq)
{
    const struct eco *eco = cn->route->eco;
    *rq = (struct fill_request){ .cls = cn->cls };
    rq->accept = eco->variant_accept ? eco->variant_accept(cn) : NULL;
}

/* Start the fill (a new one, or a new generation of a running one). */
static enum lead_result lead(struct fill_resp *fr, struct fill *running, const struct miss_opts *o)
{
    struct agent *a = fr->a;
    char url[CONFIG_URL_MAX + KEY_MAX + 2];
    if (canon_origin_url(&fr->cn, url, sizeof(url)) != 0)
        return LEAD_URL_TOO_LONG;
    /* A running fill that cannot take us from byte 0 gives way to a new
     * generation, which every later arrival shares. */
    if (running)
        fill_retire(running);
    struct fill *f = fill_start_lookup(a, fr->cn.route, fr->cn.key, fr->cn.hash, url, o->rq);
    if (!f)
        return LEAD_BUSY;
    rewrite_check_fill(a, f, &fr->cn);
    integrity_arm(a, f, &fr->cn);
    metrics_route(a, fr->cn.route)->misses++;   /* this request leads the fill (a refetch has no request) */
    bool attached = fill_attach(f, &fr->reader, fill_resp_wake, fr);
    SL_ASSERT(attached);
    return LEAD_OK;
}

void serve_miss(struct agent *a, struct http_conn *c, const struct http_request *req, const struct canon *cn,
                const struct miss_opts *o)
{
    struct fill_resp *fr = sl_calloc(1, sizeof(*fr));
    fr->base = (struct http_response){ fill_resp_head, fill_resp_body, fill_resp_consumed, fill_resp_finish };
    fr->magic = FILL_RESP_MAGIC;
    fr->a = a;
    fr->c = c;
    fr->req = req;
    fr->cn = *cn;
    fr->cache_status = o->cache_status;
    fr->stale_ok = o->stale_ok;
    struct fill *f = fill_find(a, cn->hash);
    if (f && fill_attach(f, &fr->reader, fill_resp_wake, fr)) {
        fr->follower = true;
        metrics_route(a, cn->route)->followers++;
        fr->late = fill_body_complete(f);   /* in its commit window: the finished spool serves it */
        if (fr->late)
            metrics_route(a, cn->route)->late_joins++;
        http_respond_with(c, &fr->base);
        return;
    }
    enum lead_result lr = lead(fr, f, o);
    if (lr == LEAD_OK) {
        http_respond_with(c, &fr->base);
        return;
    }
    if (lr == LEAD_URL_TOO_LONG) {
        fr->magic = 0;
        free(fr);
        http_respond_simple(c, 414, "text/plain", "", SL_LIT("origin URL too long\n"));
        return;
    }
    /* The origin's queue is full. */
    if (o->stale_ok && serve_stale_instead(fr)) {
        struct http_response *stale = fr->delegate;
        fr->magic = 0;
        free(fr);
        http_respond_with(c, stale);
        return;
    }
    fr->magic = 0;
    free(fr);
    respond_busy(a, c, cn->route);
}
