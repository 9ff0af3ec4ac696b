/*
 * serve.c - the SPOP verdict, the HTTP side and the admin endpoints (see
 * serve.h).
 *
 * Every response leaving the agent carries an RFC 9211 Cache-Status entry
 * for "sluice":
 *   hit                          served from a committed object
 *   fwd=uri-miss[; stored]       leader of a fill for a key we never had
 *   fwd=miss[; stored]           leader of a fill after a stale index entry
 *   fwd=uri-miss; collapsed      follower of a running fill
 * "stored" means the cache writer was attached when the head was sent; the
 * object is committed only if the body then completes and verifies.
 */
#include "serve/serve.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "store/cache.h"
#include "core/common.h"
#include "store/fault.h"
#include "fill/fill.h"
#include "http/httpx.h"
#include "store/key.h"
#include "core/log.h"

enum classify_result {
    CLASS_CACHEABLE,
    CLASS_PASS,          /* not ours to cache: method, credentials, route policy */
    CLASS_NO_ROUTE,
    CLASS_ROUTE_OFF,     /* route known but no origin configured */
    CLASS_BAD_KEY,
};

struct classified {
    const struct route *route;
    const char *rest;
    size_t rest_len;
    char key[KEY_MAX + 1];
    int key_err;
    uint8_t hash[KEY_HASH_LEN];
};

/* The one place that decides whether a request is a cache candidate. */
static enum classify_result serve_classify(struct agent *a, const struct route *route, bool get_or_head,
                                           bool has_credentials, const char *path, size_t path_len,
                                           const char *query, size_t query_len, struct classified *out)
{
    out->route = route;
    if (!route)
        return CLASS_NO_ROUTE;
    if (!route->has_origin)
        return CLASS_ROUTE_OFF;
    if (!get_or_head || has_credentials || route->policy != ROUTE_IMMUTABLE)
        return CLASS_PASS;
    if (path_len < route->prefix_len || memcmp(path, route->prefix, route->prefix_len) != 0)
        return CLASS_NO_ROUTE;
    out->rest = path + route->prefix_len;
    out->rest_len = path_len - route->prefix_len;
    int n = key_build(route->name, out->rest, out->rest_len, query, query_len, 1, out->key);
    if (n < 0) {
        out->key_err = n;
        return CLASS_BAD_KEY;
    }
    key_hash(out->key, (size_t)n, out->hash);
    SL_UNUSED(a);
    return CLASS_CACHEABLE;
}

/* ------------------------------------------------------------- verdict */

/* Storage of the inline answer handed to the SPOP server: valid until the
 * next verdict (the loop thread is the only caller). */
static struct {
    struct http_head head;
    uint8_t body[CACHE_SMALL_BODY_MAX];
} inline_answer;

static bool put_hit_headers(struct http_head *hd, const struct obj_meta *m);

/*
 * A plain GET for a small object whose body is in memory: answer it inside
 * the SPOP ACK, so HAProxy sends the response itself (haproxy/sluice.lua)
 * without a second hop to the HTTP side. The object is validated exactly as
 * for an HTTP hit; any doubt answers "hit" and the HTTP side decides.
 */
static bool verdict_inline(struct agent *a, struct index_entry *e, const struct classified *cl,
                           struct spop_verdict *out)
{
    if (e->body_size == 0 || e->body_size > (uint64_t)a->cfg.inline_hit_max)
        return false;
    struct cache_hit hit;
    if (!cache_open_hit(a, e, cl->key, &hit))
        return false;
    bool ok = hit.body != NULL && hit.meta->size <= sizeof(inline_answer.body);
    if (ok) {
        inline_answer.head.len = 0;
        ok = put_hit_headers(&inline_answer.head, hit.meta);
    }
    if (ok) {
        memcpy(inline_answer.body, hit.body, (size_t)hit.meta->size);
        out->fallback = "hit";
        out->hdrs = inline_answer.head.buf;
        out->hdrs_len = inline_answer.head.len;
        out->body = inline_answer.body;
        out->body_len = (size_t)hit.meta->size;
        a->m.hits++;
        a->m.bytes_hit += hit.meta->size;
    }
    cache_release_hit(a, &hit);
    return ok;
}

void serve_verdict(void *ctx, const struct spop_lookup *in, struct spop_verdict *out)
{
    struct agent *a = ctx;
    out->retry_after = -1;
    const struct route *route = in->route ? route_by_name(&a->routes, in->route, in->route_len) : NULL;
    bool get = in->method_len == 3 && memcmp(in->method, "GET", 3) == 0;
    bool get_or_head = get || (in->method_len == 4 && memcmp(in->method, "HEAD", 4) == 0);
    struct classified cl;
    enum classify_result r = serve_classify(a, route, get_or_head, in->has_auth, in->path ? in->path : "",
                                            in->path ? in->path_len : 0, in->query, in->query_len, &cl);
    enum verdict_kind v = VERDICT_PASS;
    if (r == CLASS_CACHEABLE) {
        struct index_entry *e = index_lookup(&a->index, cl.hash);
        v = e ? VERDICT_HIT : VERDICT_FILL;
        if (e && get && in->plain && verdict_inline(a, e, &cl, out))
            v = VERDICT_INLINE;
        /* A new leader would be refused: let the edge answer 503 itself. */
        if (v == VERDICT_FILL && !fill_find(a, cl.hash) && slots_would_reject(&a->slots, route)) {
            v = VERDICT_BUSY;
            out->retry_after = slots_retry_after(&a->slots, route);
        }
    }
    out->verdict = verdict_names[v];
    a->m.verdicts[v]++;
}

/* ---------------------------------------------------------- hit responses */

struct hit_resp {
    struct http_response base;
    struct agent *a;
    struct cache_hit hit;
    struct http_head head;
    uint64_t first;          /* body range to send */
    uint64_t len;
    uint64_t sent;
};

static enum http_head_result hit_head(struct http_response *r, struct http_head *out)
{
    struct hit_resp *h = (struct hit_resp *)r;
    *out = h->head;
    return HTTP_HEAD_READY;
}

static enum http_body_result hit_body(struct http_response *r, struct http_piece *out)
{
    struct hit_resp *h = (struct hit_resp *)r;
    if (h->sent == h->len)
        return HTTP_PIECE_END;
    out->data = NULL;
    out->fd = h->hit.fd;
    out->file_off = OBJ_HEADER_SIZE + h->first + h->sent;
    out->len = (size_t)SL_MIN(h->len - h->sent, (uint64_t)1 << 30);
    return HTTP_PIECE_DATA;
}

static void hit_consumed(struct http_response *r, size_t n)
{
    struct hit_resp *h = (struct hit_resp *)r;
    h->sent += n;
    h->a->m.bytes_hit += n;
}

static void hit_finish(struct http_response *r, bool completed)
{
    SL_UNUSED(completed);
    struct hit_resp *h = (struct hit_resp *)r;
    cache_release_hit(h->a, &h->hit);
    free(h);
}

/* Headers every stored representation carries (hits and fills alike). */
static bool put_meta_headers(struct http_head *h, const struct obj_meta *m)
{
    char lm[40];
    httpx_format_date((time_t)m->last_modified, lm, sizeof(lm));
    bool ok = http_head_printf(h, "ETag: %s\r\nLast-Modified: %s\r\n", m->etag, lm);
    for (int i = 0; i < m->n_headers && ok; i++)
        ok = http_head_printf(h, "%s: %s\r\n", m->headers[i].name, m->headers[i].value);
    return ok;
}

/* The Date header's value, formatted once per second (loop thread only). */
static const char *date_now(void)
{
    static time_t formatted_at = -1;
    static char date[40];
    time_t now = time(NULL);
    if (now != formatted_at) {
        httpx_format_date(now, date, sizeof(date));
        formatted_at = now;
    }
    return date;
}

static bool put_status_and_date(struct http_head *h, int status)
{
    return http_head_printf(h, "HTTP/1.1 %d %s\r\nDate: %s\r\n", status, http_status_text(status), date_now());
}

/* The header lines of every hit after its status line (HTTP or inline). */
static bool put_hit_headers(struct http_head *hd, const struct obj_meta *m)
{
    int64_t age = sl_wall_s() - m->stored;
    return http_head_printf(hd, "Date: %s\r\n", date_now()) && put_meta_headers(hd, m) &&
           http_head_printf(hd, "Age: %lld\r\nAccept-Ranges: bytes\r\nCache-Status: sluice; hit\r\n",
                            (long long)(age > 0 ? age : 0));
}

/* Build the full head of a hit: 200, 206, 304 or 416. */
static bool build_hit_head(struct hit_resp *h, const struct http_request *req, const struct obj_meta *m)
{
    struct agent *a = h->a;
    struct http_head *hd = &h->head;
    int status = 200;
    h->first = 0;
    h->len = m->size;
    bool not_modified = false;
    if (req->if_none_match)
        not_modified = httpx_etag_matches(req->if_none_match, strlen(req->if_none_match), m->etag);
    else if (req->if_modified_since)
        not_modified = httpx_not_modified_since(req->if_modified_since, strlen(req->if_modified_since),
                                                (time_t)m->last_modified);
    enum range_result rr = RANGE_NONE;
    uint64_t first = 0, last = 0;
    if (!not_modified && req->range && req->method == HTTP_M_GET)
        rr = httpx_parse_range(req->range, strlen(req->range), m->size, &first, &last);
    if (not_modified) {
        status = 304;
        h->len = 0;
        a->m.not_modified++;
    } else if (rr == RANGE_OK) {
        status = 206;
        h->first = first;
        h->len = last - first + 1;
        a->m.range_responses++;
    } else if (rr == RANGE_UNSATISFIABLE) {
        status = 416;
        h->len = 0;
    }
    bool ok = http_head_printf(hd, "HTTP/1.1 %d %s\r\n", status, http_status_text(status)) &&
              put_hit_headers(hd, m);
    if (status == 206)
        ok = ok && http_head_printf(hd, "Content-Range: bytes %llu-%llu/%llu\r\n", (unsigned long long)first,
                                    (unsigned long long)last, (unsigned long long)m->size);
    if (status == 416)
        ok = ok && http_head_printf(hd, "Content-Range: bytes */%llu\r\n", (unsigned long long)m->size);
    if (status != 304)
        ok = ok && http_head_printf(hd, "Content-Length: %llu\r\n", (unsigned long long)h->len);
    ok = ok && http_head_printf(hd, "\r\n");
    hd->mode = (status == 304 || status == 416) ? HTTP_BODY_NONE : HTTP_BODY_LENGTH;
    hd->length = h->len;
    hd->body_ready = h->len > 0;
    hd->bulk = true;   /* the object's file: a large send buffer is cheap */
    if (h->hit.body && h->len > 0) {
        hd->inline_body = h->hit.body + h->first;
        hd->inline_len = (size_t)h->len;
        if (req->method != HTTP_M_HEAD)
            a->m.bytes_hit += h->len;
    }
    return ok;
}

/* Serve a hit; false when the object was not usable (continue as a miss). */
static bool serve_hit(struct agent *a, struct http_conn *c, const struct http_request *req,
                      struct index_entry *e, const struct classified *cl)
{
    struct hit_resp *h = sl_calloc(1, sizeof(*h));
    if (!cache_open_hit(a, e, cl->key, &h->hit)) {
        free(h);
        return false;
    }
    h->base = (struct http_response){ hit_head, hit_body, hit_consumed, hit_finish };
    h->a = a;
    bool ok = build_hit_head(h, req, h->hit.meta);
    if (!ok) {
        hit_finish(&h->base, false);
        http_respond_simple(c, 500, "text/plain", "", "stored headers too large\n", 25);
        return true;
    }
    a->m.hits++;
    http_respond_with(c, &h->base);
    return true;
}

/* --------------------------------------------------------- fill responses */

struct fill_resp {
    struct http_response base;
    struct agent *a;
    struct http_conn *c;
    struct fill_reader reader;
    const char *cache_status;     /* fwd=uri-miss / fwd=miss */
    bool follower;
    const char *err_body;         /* origin failed before the head: small error body */
    size_t err_len, err_sent;
};

static void fill_resp_wake(void *ctx)
{
    struct fill_resp *fr = ctx;
    http_conn_wake(fr->c);
}

static enum http_head_result fill_resp_head(struct http_response *r, struct http_head *out)
{
    struct fill_resp *fr = (struct fill_resp *)r;
    struct fill *f = fr->reader.fill;
    switch (fill_head_state(f)) {
    case FILL_HEAD_WAIT:
        return HTTP_HEAD_WAIT;
    case FILL_HEAD_BUSY:
        fr->a->m.busy_503_agent++;
        fr->err_body = "busy: waited too long for an origin slot, retry later\n";
        fr->err_len = strlen(fr->err_body);
        if (!put_status_and_date(out, 503) ||
            !http_head_printf(out, "Content-Type: text/plain\r\nCache-Control: no-store\r\nRetry-After: %d\r\n"
                                   "Cache-Status: sluice; fwd=miss; detail=busy\r\nContent-Length: %zu\r\n\r\n",
                              fill_retry_after(f), fr->err_len))
            return HTTP_HEAD_ABORT;
        out->mode = HTTP_BODY_LENGTH;
        out->length = fr->err_len;
        return HTTP_HEAD_READY;
    case FILL_HEAD_FAILED:
        /* Nothing sent yet, so a clean error is still possible. */
        fr->err_body = "origin unavailable\n";
        fr->err_len = strlen(fr->err_body);
        if (!put_status_and_date(out, 502) ||
            !http_head_printf(out, "Content-Type: text/plain\r\nCache-Control: no-store\r\n"
                                   "Cache-Status: sluice; %s; detail=origin-error\r\nContent-Length: %zu\r\n\r\n",
                              fr->cache_status, fr->err_len))
            return HTTP_HEAD_ABORT;
        out->mode = HTTP_BODY_LENGTH;
        out->length = fr->err_len;
        return HTTP_HEAD_READY;
    case FILL_HEAD_READY:
        break;
    }
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

static enum http_body_result fill_resp_body(struct http_response *r, struct http_piece *out)
{
    struct fill_resp *fr = (struct fill_resp *)r;
    if (fr->err_body) {
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
    struct fill_resp *fr = (struct fill_resp *)r;
    if (fr->err_body)
        fr->err_sent += n;
    else
        fill_consumed(&fr->reader, n);
}

static void fill_resp_finish(struct http_response *r, bool completed)
{
    SL_UNUSED(completed);
    struct fill_resp *fr = (struct fill_resp *)r;
    fill_detach(&fr->reader);
    free(fr);
}

/* The origin's queue is full: 503 + Retry-After, never cached. */
static void respond_busy(struct agent *a, struct http_conn *c, const struct route *route)
{
    char headers[256];
    snprintf(headers, sizeof(headers),
             "Retry-After: %d\r\nCache-Control: no-store\r\nCache-Status: sluice; fwd=miss; detail=busy\r\n",
             slots_retry_after(&a->slots, route));
    a->m.busy_503_agent++;
    static const char body[] = "busy: origin fetch queue is full, retry later\n";
    http_respond_simple(c, 503, "text/plain", headers, body, sizeof(body) - 1);
}

static void serve_fill(struct agent *a, struct http_conn *c, const struct classified *cl, bool stale,
                       const char *query, size_t query_len)
{
    struct fill_resp *fr = sl_calloc(1, sizeof(*fr));
    fr->base = (struct http_response){ fill_resp_head, fill_resp_body, fill_resp_consumed, fill_resp_finish };
    fr->a = a;
    fr->c = c;
    fr->cache_status = stale ? "fwd=miss" : "fwd=uri-miss";
    struct fill *f = fill_find(a, cl->hash);
    if (f && fill_attach(f, &fr->reader, fill_resp_wake, fr)) {
        fr->follower = true;
        a->m.followers++;
        http_respond_with(c, &fr->base);
        return;
    }
    char url[CONFIG_URL_MAX + HTTP_URL_MAX];
    if (fill_origin_url(cl->route, cl->rest, cl->rest_len, query, query_len, url, sizeof(url)) != 0) {
        free(fr);
        http_respond_simple(c, 414, "text/plain", "", "origin URL too long\n", 20);
        return;
    }
    /* A running fill that cannot take us from byte 0 gives way to a new
     * generation, which every later arrival shares. */
    if (f)
        fill_retire(f);
    f = fill_start(a, cl->route, cl->key, cl->hash, url);
    if (!f) {
        free(fr);
        respond_busy(a, c, cl->route);
        return;
    }
    a->m.misses++;   /* this request leads the fill (a refetch has no request) */
    bool attached = fill_attach(f, &fr->reader, fill_resp_wake, fr);
    SL_ASSERT(attached);
    http_respond_with(c, &fr->base);
}

/* ------------------------------------------------------------ HTTP side */

static void respond_text(struct http_conn *c, int status, const char *text)
{
    http_respond_simple(c, status, "text/plain",
                        status >= 400 ? "Cache-Control: no-store\r\nCache-Status: sluice; fwd=bypass; detail=rejected\r\n" : "",
                        text, strlen(text));
}

void serve_http(void *ctx, struct http_conn *c, const struct http_request *req)
{
    struct agent *a = ctx;
    static const char health[] = "/_sluice/healthz";
    if (req->path_len == sizeof(health) - 1 && memcmp(req->path, health, req->path_len) == 0) {
        respond_text(c, a->stopping ? 503 : 200, a->stopping ? "stopping\n" : "ok\n");
        return;
    }
    const char *rest;
    size_t rest_len;
    const struct route *route = route_match(&a->routes, req->path, req->path_len, &rest, &rest_len);
    struct classified cl;
    enum classify_result r = serve_classify(a, route, true, req->has_credentials, req->path, req->path_len,
                                            req->query, req->query_len, &cl);
    switch (r) {
    case CLASS_NO_ROUTE:
        respond_text(c, 404, "no route for this path\n");
        return;
    case CLASS_ROUTE_OFF:
        respond_text(c, 404, "this route has no origin configured\n");
        return;
    case CLASS_PASS:
        respond_text(c, req->has_credentials ? 403 : 421,
                     req->has_credentials ? "requests with credentials bypass the cache\n"
                                          : "this route is not cached by the agent\n");
        return;
    case CLASS_BAD_KEY:
        a->m.bad_requests++;
        respond_text(c, cl.key_err == KEY_ERR_TOO_LONG ? 414 : cl.key_err == KEY_ERR_EMPTY ? 404 : 400,
                     key_strerror(cl.key_err));
        return;
    case CLASS_CACHEABLE:
        break;
    }
    struct index_entry *e = index_lookup(&a->index, cl.hash);
    if (e && serve_hit(a, c, req, e, &cl))
        return;
    serve_fill(a, c, &cl, e != NULL, req->query, req->query_len);
}

/* --------------------------------------------------------------- admin */

static bool path_is(const struct http_request *req, const char *p)
{
    return req->path_len == strlen(p) && memcmp(req->path, p, req->path_len) == 0;
}

void serve_admin(void *ctx, struct http_conn *c, const struct http_request *req)
{
    struct agent *a = ctx;
    if (path_is(req, "/metrics")) {
        size_t len;
        char *text = metrics_render(a, &len);
        http_respond_simple(c, 200, "text/plain; version=0.0.4", "", text, len);
        free(text);
        return;
    }
    if (path_is(req, "/healthz")) {
        const char *state = a->stopping ? "stopping\n" : a->index_loading ? "loading\n" : "ok\n";
        http_respond_simple(c, *state == 'o' ? 200 : 503, "text/plain", "", state, strlen(state));
        return;
    }
#ifdef SLUICE_TESTING
    if (path_is(req, "/fault")) {
        char spec[256], err[160];
        size_t n = SL_MIN(req->query_len, sizeof(spec) - 1);
        memcpy(spec, req->query ? req->query : "", n);
        spec[n] = '\0';
        if (fault_configure(spec, err, sizeof(err)) != 0) {
            http_respond_simple(c, 400, "text/plain", "", err, strlen(err));
            return;
        }
        http_respond_simple(c, 200, "text/plain", "", "armed\n", 6);
        return;
    }
#endif
    http_respond_simple(c, 404, "text/plain", "", "not found\n", 10);
}
