/*
 * hit.c - responses from committed objects (see hit.h).
 *
 * A hit response pins its index entry (cache_open_hit) for as long as it
 * is being sent, so eviction never removes an object under a reader, and
 * releases it in finish, which the HTTP server calls exactly once.
 */
#include "serve/hit.h"

#include <string.h>

#include "core/common.h"
#include "http/httpx.h"
#include "store/cache.h"

#define HIT_RESP_MAGIC 0x48495452u   /* "HITR" */

struct hit_resp {
    struct http_response base;    /* first: the server hands us &base */
    unsigned magic;
    struct agent *a;
    struct route_counters *rc;    /* of the request's route */
    struct cache_hit hit;
    struct http_head head;
    uint64_t first;          /* body range to send */
    uint64_t len;
    uint64_t sent;
};

static struct hit_resp *hit_of(struct http_response *r)
{
    struct hit_resp *h = (struct hit_resp *)r;
    SL_CHECK_OBJ(h, HIT_RESP_MAGIC);
    return h;
}

static enum http_head_result hit_head(struct http_response *r, struct http_head *out)
{
    *out = hit_of(r)->head;
    return HTTP_HEAD_READY;
}

static enum http_body_result hit_body(struct http_response *r, struct http_piece *out)
{
    struct hit_resp *h = hit_of(r);
    SL_ASSERT(h->sent <= h->len);
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
    struct hit_resp *h = hit_of(r);
    h->sent += n;
    SL_ASSERT(h->sent <= h->len);
    h->rc->bytes_hit += n;
}

static void hit_finish(struct http_response *r, bool completed)
{
    SL_UNUSED(completed);
    struct hit_resp *h = hit_of(r);
    cache_release_hit(h->a, &h->hit);
    h->magic = 0;
    free(h);
}

bool put_meta_headers(struct http_head *h, const struct obj_meta *m)
{
    char lm[40];
    httpx_format_date((time_t)m->last_modified, lm, sizeof(lm));
    bool ok = http_head_printf(h, "ETag: %s\r\nLast-Modified: %s\r\n", m->etag, lm);
    for (int i = 0; i < m->n_headers && ok; i++)
        ok = http_head_printf(h, "%s: %s\r\n", m->headers[i].name, m->headers[i].value);
    return ok;
}

bool put_status_and_date(struct http_head *h, int status)
{
    return http_head_printf(h, "HTTP/1.1 %d %s\r\nDate: %s\r\n", status, http_status_text(status),
                            httpx_date_now());
}

bool put_hit_headers(struct http_head *hd, const struct obj_meta *m)
{
    int64_t age = sl_wall_s() - m->stored;
    return http_head_printf(hd, "Date: %s\r\n", httpx_date_now()) && put_meta_headers(hd, m) &&
           http_head_printf(hd, "Age: %lld\r\nAccept-Ranges: bytes\r\nCache-Status: sluice; hit\r\n",
                            (long long)(age > 0 ? age : 0));
}

/* 304 when a validator matches, 206/416 for a Range, else 200; sets the
 * body range to send. */
static int hit_status(struct hit_resp *h, const struct http_request *req, const struct obj_meta *m,
                      uint64_t *first, uint64_t *last)
{
    bool not_modified = false;
    if (req->if_none_match)
        not_modified = httpx_etag_matches(req->if_none_match, strlen(req->if_none_match), m->etag);
    else if (req->if_modified_since)
        not_modified = httpx_not_modified_since(req->if_modified_since, strlen(req->if_modified_since),
                                                (time_t)m->last_modified);
    h->first = 0;
    h->len = m->size;
    if (not_modified) {
        h->len = 0;
        h->rc->not_modified++;
        return 304;
    }
    enum range_result rr = RANGE_NONE;
    if (req->range && req->method == HTTP_M_GET)
        rr = httpx_parse_range(req->range, strlen(req->range), m->size, first, last);
    if (rr == RANGE_OK) {
        h->first = *first;
        h->len = *last - *first + 1;
        h->rc->range_responses++;
        return 206;
    }
    if (rr == RANGE_UNSATISFIABLE) {
        h->len = 0;
        return 416;
    }
    return 200;
}

/* Build the full head of a hit: 200, 206, 304 or 416. */
static bool build_hit_head(struct hit_resp *h, const struct http_request *req, const struct obj_meta *m)
{
    struct http_head *hd = &h->head;
    uint64_t first = 0, last = 0;
    int status = hit_status(h, req, m, &first, &last);
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
            h->rc->bytes_hit += h->len;
    }
    return ok;
}

bool serve_hit(struct agent *a, struct http_conn *c, const struct http_request *req, struct index_entry *e,
               const struct canon *cn)
{
    struct hit_resp *h = sl_calloc(1, sizeof(*h));
    if (!cache_open_hit(a, e, cn->key, &h->hit)) {
        free(h);
        return false;
    }
    h->base = (struct http_response){ hit_head, hit_body, hit_consumed, hit_finish };
    h->magic = HIT_RESP_MAGIC;
    h->a = a;
    h->rc = metrics_route(a, cn->route);
    if (!build_hit_head(h, req, h->hit.meta)) {
        hit_finish(&h->base, false);
        http_respond_simple(c, 500, "text/plain", "", SL_LIT("stored headers too large\n"));
        return true;
    }
    h->rc->hits++;
    http_respond_with(c, &h->base);
    return true;
}
