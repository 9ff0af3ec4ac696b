/*
 * miss.c - fill responses (see miss.h).
 *
 * Cache-Status of a fill response:
 *   fwd=uri-miss[; stored]       leader of a fill for a key we never had
 *   fwd=miss[; stored]           leader after a stale index entry
 *   fwd=uri-miss; collapsed      follower of a running fill
 * "stored" means the cache writer was attached when the head was sent; the
 * object is committed only if the body then completes and verifies.
 * Before the origin's head is known the response can still fail cleanly
 * (502 origin error, 503 queue wait expired); after it, a failure is an
 * aborted transfer (http_server.h).
 */
#include "serve/miss.h"

#include <string.h>

#include "core/common.h"
#include "fill/fill.h"
#include "serve/hit.h"

#define FILL_RESP_MAGIC 0x46494c52u   /* "FILR" */

struct fill_resp {
    struct http_response base;    /* first: the server hands us &base */
    unsigned magic;
    struct agent *a;
    struct http_conn *c;
    struct fill_reader reader;
    const struct route *route;
    const char *cache_status;     /* fwd=uri-miss / fwd=miss */
    bool follower;
    const char *err_body;         /* failed before the head: a small error body */
    size_t err_len, err_sent;
    char err_buf[256];            /* ... when it is not a constant */
};

static struct fill_resp *fill_resp_of(struct http_response *r)
{
    struct fill_resp *fr = (struct fill_resp *)r;
    SL_CHECK_OBJ(fr, FILL_RESP_MAGIC);
    return fr;
}

static void fill_resp_wake(void *ctx)
{
    struct fill_resp *fr = ctx;
    SL_CHECK_OBJ(fr, FILL_RESP_MAGIC);
    http_conn_wake(fr->c);
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

static enum http_head_result busy_head(struct fill_resp *fr, struct http_head *out)
{
    char extra[128];
    metrics_route(fr->a, fr->route)->busy_503_agent++;
    snprintf(extra, sizeof(extra), "Retry-After: %d\r\nCache-Status: sluice; fwd=miss; detail=busy\r\n",
             fill_retry_after(fr->reader.fill));
    return error_head(fr, out, 503, "busy: waited too long for an origin slot, retry later\n", extra);
}

/* The origin failed before its head: 502, and why when the client can act
 * on it (a redirect the route's policy refused names its target). */
static enum http_head_result failed_head(struct fill_resp *fr, struct http_head *out)
{
    char extra[160];
    const char *detail;
    bool redirect = fill_failure(fr->reader.fill, &detail) == ORIGIN_ERR_REDIRECT;
    snprintf(extra, sizeof(extra), "Cache-Status: sluice; %s; detail=%s\r\n", fr->cache_status,
             redirect ? "redirect-refused" : "origin-error");
    if (!redirect)
        return error_head(fr, out, 502, "origin unavailable\n", extra);
    snprintf(fr->err_buf, sizeof(fr->err_buf), "origin redirect refused: %s\n", detail);
    return error_head(fr, out, 502, fr->err_buf, extra);
}

/* The origin's own head, relayed with our Cache-Status and framing. */
static enum http_head_result origin_head(struct fill_resp *fr, struct http_head *out)
{
    struct fill *f = fr->reader.fill;
    const struct obj_meta *m = fill_meta(f);
    int64_t cl = fill_content_length(f);
    bool ok = put_status_and_date(out, m->status);
    if (m->status == 200)
        ok = ok && put_meta_headers(out, m);
    else
        for (int i = 0; i < m->n_headers && ok; i++)
            ok = http_head_printf(out, "%s: %s\r\n", m->headers[i].name, m->headers[i].value);
    out->head_alone = true;   /* followers woken together: heads first */
    ok = ok && http_head_printf(out, "Cache-Status: sluice; %s%s%s\r\n", fr->cache_status,
                                fr->follower ? "; collapsed" : "", fill_is_storing(f) ? "; stored" : "");
    if (cl >= 0) {
        ok = ok && http_head_printf(out, "Content-Length: %lld\r\n\r\n", (long long)cl);
        out->mode = HTTP_BODY_LENGTH;
        out->length = (uint64_t)cl;
    } else {
        ok = ok && http_head_printf(out, "Transfer-Encoding: chunked\r\n\r\n");
        out->mode = HTTP_BODY_CHUNKED;
    }
    return ok ? HTTP_HEAD_READY : HTTP_HEAD_ABORT;
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
    case FILL_HEAD_READY:
        break;
    }
    return origin_head(fr, out);
}

static enum http_body_result fill_resp_body(struct http_response *r, struct http_piece *out)
{
    struct fill_resp *fr = fill_resp_of(r);
    if (fr->err_body) {
        SL_ASSERT(fr->err_sent <= fr->err_len);
        if (fr->err_sent == fr->err_len)
            return HTTP_PIECE_END;
        out->data = (const uint8_t *)fr->err_body + fr->err_sent;
        out->len = fr->err_len - fr->err_sent;
        return HTTP_PIECE_DATA;
    }
    return fill_read(&fr->reader, out);
}

static void fill_resp_consumed(struct http_response *r, size_t n)
{
    struct fill_resp *fr = fill_resp_of(r);
    if (fr->err_body)
        fr->err_sent += n;
    else
        fill_consumed(&fr->reader, n);
}

static void fill_resp_finish(struct http_response *r, bool completed)
{
    SL_UNUSED(completed);
    struct fill_resp *fr = fill_resp_of(r);
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

void serve_miss(struct agent *a, struct http_conn *c, const struct canon *cn, bool stale)
{
    struct fill_resp *fr = sl_calloc(1, sizeof(*fr));
    fr->base = (struct http_response){ fill_resp_head, fill_resp_body, fill_resp_consumed, fill_resp_finish };
    fr->magic = FILL_RESP_MAGIC;
    fr->a = a;
    fr->c = c;
    fr->route = cn->route;
    fr->cache_status = stale ? "fwd=miss" : "fwd=uri-miss";
    struct fill *f = fill_find(a, cn->hash);
    if (f && fill_attach(f, &fr->reader, fill_resp_wake, fr)) {
        fr->follower = true;
        metrics_route(a, cn->route)->followers++;
        http_respond_with(c, &fr->base);
        return;
    }
    char url[CONFIG_URL_MAX + KEY_MAX + 2];
    if (canon_origin_url(cn, url, sizeof(url)) != 0) {
        free(fr);
        http_respond_simple(c, 414, "text/plain", "", SL_LIT("origin URL too long\n"));
        return;
    }
    /* A running fill that cannot take us from byte 0 gives way to a new
     * generation, which every later arrival shares. */
    if (f)
        fill_retire(f);
    f = fill_start(a, cn->route, cn->key, cn->hash, url);
    if (!f) {
        free(fr);
        respond_busy(a, c, cn->route);
        return;
    }
    metrics_route(a, cn->route)->misses++;   /* this request leads the fill (a refetch has no request) */
    bool attached = fill_attach(f, &fr->reader, fill_resp_wake, fr);
    SL_ASSERT(attached);
    http_respond_with(c, &fr->base);
}
