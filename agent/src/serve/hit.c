/*
 * hit.c - responses from committed objects (see hit.h).
 *
 * A hit response pins its index entry (cache_open_hit) for as long as it
 * is being sent, so eviction never removes an object under a reader, and
 * releases it in finish, which the HTTP server calls exactly once. A
 * rewritten hit (metadata of an ecosystem with a rewriter) sends the
 * rewrite kept in memory for this very stored copy (rwcache.h, with a
 * Content-Length), or reads its body through an rw_pipe instead of
 * sendfile, teeing the output into that cache when it rewrote it all.
 * Either way it carries the rewritten ETag and takes no Range.
 */
#include "serve/hit.h"

#include <string.h>

#include "core/buf.h"
#include "core/common.h"
#include "eco/digest_notes.h"
#include "http/httpx.h"
#include "serve/edge.h"
#include "serve/rewrite.h"
#include "serve/rwcache.h"
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
    struct rw_pipe *rw;      /* the body is rewritten, or NULL */
    struct rwc_entry *rwc;   /* ... or was, and is sent from memory, or NULL */
    struct rwcache_id id;    /* rw teeing: the copy it rewrites */
    bool notes_replayed;     /* rwc: its digest notes were put again */
};

static struct hit_resp *hit_of(void *r)
{
    struct hit_resp *h = r;
    SL_CHECK_OBJ(h, HIT_RESP_MAGIC);
    return h;
}

static enum http_head_result hit_head(struct http_response *r, struct http_head *out)
{
    *out = hit_of(r)->head;
    return HTTP_HEAD_READY;
}

/* The stored bytes, as file pieces (sent by sendfile, or read by the pipe). */
static enum http_body_result raw_body(void *ctx, struct http_piece *out)
{
    struct hit_resp *h = hit_of(ctx);
    SL_ASSERT(h->sent <= h->len);
    if (h->sent == h->len)
        return HTTP_PIECE_END;
    out->data = NULL;
    out->fd = h->hit.fd;
    out->file_off = OBJ_HEADER_SIZE + h->first + h->sent;
    out->len = (size_t)SL_MIN(h->len - h->sent, (uint64_t)1 << 30);
    return HTTP_PIECE_DATA;
}

static void raw_consumed(void *ctx, size_t n)
{
    struct hit_resp *h = hit_of(ctx);
    h->sent += n;
    SL_ASSERT(h->sent <= h->len);
}

/* The kept rewrite, as one memory piece; its notes put as the rewrite did. */
static enum http_body_result cached_body(struct hit_resp *h, struct http_piece *out)
{
    SL_ASSERT(h->sent <= h->len && h->len == h->rwc->len);
    if (!h->notes_replayed && h->rwc->notes_len > 0)
        digest_notes_replay(h->a->notes, h->rwc->notes, h->rwc->notes_len);
    h->notes_replayed = true;
    if (h->sent == h->len)
        return HTTP_PIECE_END;
    out->data = h->rwc->body + h->sent;
    out->len = (size_t)(h->len - h->sent);
    return HTTP_PIECE_DATA;
}

/* The pipe rewrote the whole body: keep the output for the next hits. */
static void keep_rewrite(struct hit_resp *h)
{
    struct sl_buf out, notes;
    if (!rw_pipe_take_tee(h->rw, &out, &notes))
        return;
    if (h->hit.e->purged) {   /* purged while it was sent: keep nothing of it */
        sl_buf_free(&out);
        sl_buf_free(&notes);
        return;
    }
    if (out.len > 0)
        out.data = sl_realloc(out.data, out.len);   /* the budget counts len */
    rwcache_put(&h->a->rwcache, &h->id, out.data, out.len, notes.data, notes.len);
}

static enum http_body_result piped_body(struct hit_resp *h, struct http_piece *out)
{
    enum http_body_result r = rw_pipe_body(h->rw, out);
    if (r == HTTP_PIECE_END)
        keep_rewrite(h);
    return r;
}

static enum http_body_result hit_body(struct http_response *r, struct http_piece *out)
{
    struct hit_resp *h = hit_of(r);
    if (h->rwc)
        return cached_body(h, out);
    return h->rw ? piped_body(h, out) : raw_body(h, out);
}

static void hit_consumed(struct http_response *r, size_t n)
{
    struct hit_resp *h = hit_of(r);
    if (h->rw)
        rw_pipe_consumed(h->rw, n);
    else
        raw_consumed(h, n);
    h->rc->bytes_hit += n;
}

static void hit_finish(struct http_response *r, bool completed)
{
    SL_UNUSED(completed);
    struct hit_resp *h = hit_of(r);
    rw_pipe_free(h->rw);
    if (h->rwc)
        rwcache_release(&h->a->rwcache, h->rwc);
    cache_release_hit(h->a, &h->hit);
    h->magic = 0;
    free(h);
}

bool put_meta_headers(struct http_head *h, const struct obj_meta *m, const char *etag)
{
    char lm[40];
    httpx_format_date((time_t)m->last_modified, lm, sizeof(lm));
    bool ok = http_head_printf(h, "ETag: %s\r\nLast-Modified: %s\r\n", etag ? etag : m->etag, lm);
    for (int i = 0; i < m->n_headers && ok; i++)
        ok = http_head_printf(h, "%s: %s\r\n", m->headers[i].name, m->headers[i].value);
    return ok;
}

bool put_status_and_date(struct http_head *h, int status)
{
    return http_head_printf(h, "HTTP/1.1 %d %s\r\nDate: %s\r\n", status, http_status_text(status),
                            httpx_date_now());
}

bool put_vary(struct http_head *h, const struct canon *cn)
{
    /* an artifact has one representation, whatever the Accept */
    return !cn->route->eco->variant || cn->cls == ECO_IMMUTABLE || http_head_printf(h, "Vary: Accept\r\n");
}

static bool put_age(struct http_head *h, int64_t validated)
{
    int64_t age = sl_wall_s() - validated;
    return http_head_printf(h, "Age: %lld\r\n", (long long)(age > 0 ? age : 0));
}

/* Age, or the edge memory tier's lines when it may keep the hit (edge.h). */
static bool put_age_or_edge(struct http_head *h, int64_t validated, int64_t edge_ttl)
{
    return edge_ttl > 0 ? edge_put_lines(h, edge_ttl) : put_age(h, validated);
}

bool put_hit_headers(struct http_head *hd, const struct obj_meta *m, int64_t validated, int64_t edge_ttl)
{
    return http_head_printf(hd, "Date: %s\r\n", httpx_date_now()) && put_meta_headers(hd, m, NULL) &&
           put_age_or_edge(hd, validated, edge_ttl) &&
           http_head_printf(hd, "Accept-Ranges: bytes\r\nCache-Status: sluice; hit\r\n");
}

/* 304 when a validator matches `etag`, 206/416 for a Range on a plain 200
 * object (unless its If-Range names another version), else the stored
 * status; sets the body range to send. */
static int hit_status(struct hit_resp *h, const struct http_request *req, const struct obj_meta *m,
                      const char *etag, bool whole, uint64_t *first, uint64_t *last)
{
    bool not_modified = false;
    if (m->status == 200 && req->if_none_match)
        not_modified = httpx_etag_matches(req->if_none_match, strlen(req->if_none_match), etag);
    else if (m->status == 200 && req->if_modified_since)
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
    bool range_applies = !whole && m->status == 200 && req->range && req->method == HTTP_M_GET &&
                         (!req->if_range || httpx_if_range_matches(req->if_range, strlen(req->if_range), etag,
                                                                   (time_t)m->last_modified));
    if (range_applies)   /* an If-Range that no longer matches: the whole body (RFC 9110 13.1.5) */
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
    return m->status;
}

/* Content-Range and Content-Length, or chunked framing for a rewritten body. */
static bool put_framing(struct hit_resp *h, int status, uint64_t first, uint64_t last, uint64_t size)
{
    struct http_head *hd = &h->head;
    bool ok = true;
    if (status == 206)
        ok = http_head_printf(hd, "Content-Range: bytes %llu-%llu/%llu\r\n", (unsigned long long)first,
                              (unsigned long long)last, (unsigned long long)size);
    if (status == 416)
        ok = http_head_printf(hd, "Content-Range: bytes */%llu\r\n", (unsigned long long)size);
    hd->mode = (status == 304 || status == 416) ? HTTP_BODY_NONE : HTTP_BODY_LENGTH;
    if (h->rwc && hd->mode != HTTP_BODY_NONE)
        h->len = h->rwc->len;   /* the rewrite kept, not the stored body */
    if (h->rw && hd->mode != HTTP_BODY_NONE) {
        hd->mode = HTTP_BODY_CHUNKED;
        return ok && http_head_printf(hd, "Transfer-Encoding: chunked\r\n\r\n");
    }
    if (status != 304)
        ok = ok && http_head_printf(hd, "Content-Length: %llu\r\n", (unsigned long long)h->len);
    return ok && http_head_printf(hd, "\r\n");
}

/* The full head of a hit: 200, 206, 304, 416, or a stored 404. */
static bool build_hit_head(struct hit_resp *h, const struct http_request *req, const struct canon *cn,
                           const char *cache_status)
{
    const struct obj_meta *m = h->hit.meta;
    struct http_head *hd = &h->head;
    bool rewritten = h->rw || h->rwc;
    char etag[300];
    if (rewritten)
        rewrite_etag(h->a, m->etag, etag, sizeof(etag));
    else
        sl_strlcpy(etag, m->etag, sizeof(etag));
    uint64_t first = 0, last = 0;
    int status = hit_status(h, req, m, etag, rewritten, &first, &last);
    int64_t ettl = strcmp(cache_status, "hit") == 0
                       ? edge_ttl(&h->a->cfg, cn, m, status, !rewritten && req->method == HTTP_M_GET)
                       : 0;
    bool ok = put_status_and_date(hd, status) && put_meta_headers(hd, m, etag) &&
              put_age_or_edge(hd, h->hit.e->validated, ettl) && put_vary(hd, cn) &&
              (rewritten || m->status != 200 || http_head_printf(hd, "Accept-Ranges: bytes\r\n")) &&
              http_head_printf(hd, "Cache-Status: sluice; %s\r\n", cache_status) &&
              put_framing(h, status, first, last, m->size);
    hd->length = h->len;
    hd->body_ready = h->len > 0;
    hd->bulk = !h->rw;   /* the object's file or memory: a large send buffer is cheap */
    if (!rewritten && h->hit.body && h->len > 0) {
        hd->inline_body = h->hit.body + h->first;
        hd->inline_len = (size_t)h->len;
        if (req->method != HTTP_M_HEAD)
            h->rc->bytes_hit += h->len;
    }
    return ok;
}

/* The stored headers do not fit a head: a 500 that says so, never a miss
 * (refetching would store the same headers again). */
static void too_large_head(struct hit_resp *h)
{
    static const char body[] = "stored headers too large\n";
    struct http_head *hd = &h->head;
    rw_pipe_free(h->rw);
    h->rw = NULL;
    if (h->rwc)
        rwcache_release(&h->a->rwcache, h->rwc);
    h->rwc = NULL;
    *hd = (struct http_head){ .mode = HTTP_BODY_LENGTH, .length = sizeof(body) - 1 };
    bool ok = put_status_and_date(hd, 500) &&
              http_head_printf(hd, "Content-Type: text/plain\r\nCache-Control: no-store\r\nContent-Length: %zu\r\n\r\n",
                               sizeof(body) - 1);
    SL_ASSERT(ok);
    hd->inline_body = (const uint8_t *)body;
    hd->inline_len = sizeof(body) - 1;
}

/* The identity of the stored copy a hit opened (rwcache.h). */
static void copy_id(const struct agent *a, const struct cache_hit *hit, const uint8_t hash[KEY_HASH_LEN],
                    struct rwcache_id *id)
{
    const struct stat *st = &hit->st;
    const struct obj_meta *m = hit->meta;
    memset(id, 0, sizeof(*id));
    memcpy(id->hash, hash, KEY_HASH_LEN);
    id->generation = a->m.config_generation;
    id->dev = (uint64_t)st->st_dev;
    id->ino = (uint64_t)st->st_ino;
    id->file_size = (uint64_t)st->st_size;
    id->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    id->ctime_ns = (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
    id->stored = m->stored;
    id->body_size = m->size;
    id->etag_crc = obj_crc32((const uint8_t *)m->etag, strlen(m->etag));
}

/* The kept rewrite of this copy, or a pipe that rewrites it (and tees). */
static void start_rewrite(struct agent *a, struct hit_resp *h, const struct canon *cn)
{
    struct rwcache *c = &a->rwcache;
    if (rwcache_enabled(c)) {
        copy_id(a, &h->hit, cn->hash, &h->id);
        h->rwc = rwcache_get(c, &h->id);
        if (h->rwc)
            return;
    }
    struct rw_source src = { raw_body, raw_consumed, h };
    h->rw = rw_pipe_new(a, cn, &src);
    if (rwcache_enabled(c))
        rw_pipe_tee(h->rw, (size_t)c->object_max);
}

struct http_response *hit_response(struct agent *a, const struct http_request *req, struct index_entry *e,
                                   const struct canon *cn, const char *cache_status)
{
    struct hit_resp *h = sl_calloc(1, sizeof(*h));
    if (!cache_open_hit(a, e, cn->key, &h->hit)) {
        free(h);
        return NULL;
    }
    h->base = (struct http_response){ hit_head, hit_body, hit_consumed, hit_finish };
    h->magic = HIT_RESP_MAGIC;
    h->a = a;
    h->rc = metrics_route(a, cn->route);
    if (rewrite_applies(cn, h->hit.meta->status))
        start_rewrite(a, h, cn);
    if (!build_hit_head(h, req, cn, cache_status))
        too_large_head(h);
    h->rc->hits++;
    return &h->base;
}

bool serve_hit(struct agent *a, struct http_conn *c, const struct http_request *req, struct index_entry *e,
               const struct canon *cn)
{
    struct http_response *r = hit_response(a, req, e, cn, "hit");
    if (!r)
        return false;
    http_respond_with(c, r);
    return true;
}
