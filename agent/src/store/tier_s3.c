/*
 * tier_s3.c - a tier in an S3 bucket (AWS S3 or an S3-compatible store),
 * spoken over libcurl on the libev loop (core/curl_ev.h); see tier.h for
 * the contract and s3.h for names, metadata and XML.
 *
 * Signing is libcurl's (CURLOPT_AWS_SIGV4 "aws:amz:<region>:s3", the
 * key pair as CURLOPT_USERPWD). What libcurl 7.88 leaves to us: the
 * x-amz-content-sha256 header (S3 refuses a request without it; we send
 * the hex SHA-256 of the body, which is always in memory), the session
 * token (x-amz-security-token) and query strings written in S3's canonical
 * order (s3.h). Every body is sent from memory as POSTFIELDS, so the hash
 * libcurl signs and the one in the header are of the same bytes.
 *
 * read   GET <object>. The response headers decide before any body byte:
 *        200 with metadata of this key and a Content-Length equal to its
 *        size -> on_meta, then the body through on_data (TIER_PAUSE pauses
 *        the transfer, CURLPAUSE_CONT resumes it and libcurl delivers the
 *        same bytes again); 404 or metadata of another key -> TIER_MISS;
 *        anything else, or no headers within s3_read_header_timeout ->
 *        TIER_ERROR. After on_meta a body that is shorter or longer than
 *        the size, or that stalls for s3_stall_timeout, is TIER_ERROR.
 * write  the committed object's header block is decoded on the worker
 *        pool; up to s3_multipart_threshold the whole body is read there
 *        into memory and sent as one PutObject, above it a multipart upload
 *        is created, then each part (s3_part_size) is read on a worker and
 *        sent in turn (one part in memory per write), then completed. Any
 *        failure aborts the upload (a failed abort is logged, not fatal:
 *        the bucket's lifecycle rule for incomplete uploads reaps it), so
 *        the object is visible only when whole. Each request has
 *        s3_request_timeout.
 *
 * libcurl forbids touching the multi handle from inside its callbacks,
 * where on_meta and on_data run: adding a request, resuming and removing
 * one are queued and carried out by a zero-delay "kick" timer. Results are
 * reported from curl_ev's done callback or our timers, outside libcurl.
 *
 * Invariants: a request (s3_req) is freed only outside libcurl's callbacks;
 * after a read is aborted or reported, no callback of it runs; `pending`
 * counts reads and writes not freed yet, and the tier is freed when it is
 * zero after tier_destroy.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/common.h"
#include "core/curl_ev.h"
#include "core/log.h"
#include "core/workers.h"
#include "store/s3.h"
#include "store/tier.h"

#define REQ_MAGIC 0x53335251u     /* "S3RQ" */
#define READ_MAGIC 0x53335244u    /* "S3RD" */
#define WRITE_MAGIC 0x53335754u   /* "S3WT" */
#define BODY_KEEP_MAX (64 * 1024) /* XML answers and error documents */
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct s3_tier {
    struct tier base;   /* first: the interface hands out &base */
    struct ev_loop *loop;
    struct worker_pool *workers;
    struct s3_settings s;          /* strings owned (copies) */
    char *userpwd;                 /* "key:secret" */
    char *sigv4;                   /* "aws:amz:<region>:s3" */
    char *token_header;            /* "x-amz-security-token: ..." or NULL */
    struct curl_ev *ce;
    ev_timer kick;
    struct s3_req *ops;            /* requests with a queued operation */
    int pending;
    bool destroying;
};

/* One HTTP request: an easy handle and what its response said. */
struct s3_req {
    unsigned magic;
    struct s3_tier *t;
    CURL *easy;
    struct curl_slist *hdrs;
    const char *what;              /* for logs: "GET", "PutObject", ... */
    int status;
    int64_t content_length;        /* -1: not sent */
    char *meta_value;              /* x-amz-meta-sluice, or NULL */
    char etag[256];
    struct sl_buf body;            /* a kept response body (bounded) */
    /* owner's hooks: headers complete (false: stop the transfer), body
     * bytes (NULL: kept in body), finished (outside libcurl; frees q) */
    bool (*on_headers)(struct s3_req *q);
    size_t (*on_body)(struct s3_req *q, const uint8_t *data, size_t len);
    void (*finished)(struct s3_req *q, CURLcode rc);
    void (*released)(void *owner);  /* after an aborted request is freed */
    void *owner;
    bool in_multi, add_pending, resume_pending, remove_pending, queued;
    struct s3_req *next_op;
    char errbuf[CURL_ERROR_SIZE];
};

struct s3_read {
    struct tier_read base;   /* first */
    unsigned magic;
    struct s3_tier *t;
    struct tier_read_cb cb;
    void *ctx;
    char *key;
    struct s3_req *q;
    struct obj_meta meta;
    bool have_meta, paused, dead;
    bool decided;                /* the headers settled the result: res */
    enum tier_result res;
    char detail[160];
    uint64_t got;
    ev_timer timer;              /* header deadline, then the stall window */
};

struct s3_write {
    unsigned magic;
    struct s3_tier *t;
    char *key;
    uint8_t hash[KEY_HASH_LEN];
    int fd;
    void (*done)(void *ctx, int rc);
    void *ctx;
    int rc;
    char why[160];
    uint64_t size;
    bool multipart;
    char meta_value[S3_META_MAX + 1];
    uint8_t *buf;                /* the body or the current part */
    size_t buf_len;
    char sha[KEY_HEX_LEN + 1];   /* of buf */
    int part, nparts;            /* part being sent (1-based), of nparts */
    char **etags;
    char upload_id[512];
    char *xml;                   /* the CompleteMultipartUpload body */
};

/* ------------------------------------------------------------ requests */

static void kick(struct s3_tier *t)
{
    if (!ev_is_active(&t->kick)) {
        ev_timer_set(&t->kick, 0., 0.);
        ev_timer_start(t->loop, &t->kick);
    }
}

static void queue_op(struct s3_req *q)
{
    if (!q->queued) {
        q->queued = true;
        q->next_op = q->t->ops;
        q->t->ops = q;
    }
    kick(q->t);
}

static void unqueue(struct s3_req *q)
{
    for (struct s3_req **pp = &q->t->ops; *pp; pp = &(*pp)->next_op)
        if (*pp == q) {
            *pp = q->next_op;
            break;
        }
    q->queued = false;
}

static void req_free(struct s3_req *q)
{
    SL_CHECK_OBJ(q, REQ_MAGIC);
    if (q->queued)
        unqueue(q);
    if (q->in_multi)
        curl_multi_remove_handle(curl_ev_multi(q->t->ce), q->easy);
    curl_easy_cleanup(q->easy);
    curl_slist_free_all(q->hdrs);
    free(q->meta_value);
    sl_buf_free(&q->body);
    q->magic = 0;
    free(q);
}

static struct s3_req *req_of(void *p)
{
    struct s3_req *q = p;
    SL_CHECK_OBJ(q, REQ_MAGIC);
    return q;
}

/* One response header line (no CRLF): what the tier looks at. */
static void note_header(struct s3_req *q, const char *line, size_t len)
{
    const char *v;
    size_t vl;
    if (s3_header_match(line, len, "content-length", &v, &vl)) {
        q->content_length = s3_parse_length(v, vl);
    } else if (s3_header_match(line, len, S3_META_HEADER, &v, &vl)) {
        free(q->meta_value);
        q->meta_value = sl_strndup(v, vl);
    } else if (s3_header_match(line, len, "etag", &v, &vl) && vl < sizeof(q->etag)) {
        memcpy(q->etag, v, vl);
        q->etag[vl] = '\0';
    }
}

static size_t header_cb(char *buf, size_t size, size_t nitems, void *userdata)
{
    struct s3_req *q = req_of(userdata);
    size_t len = size * nitems, l = len;
    if (q->remove_pending)
        return 0;
    while (l > 0 && (buf[l - 1] == '\n' || buf[l - 1] == '\r'))
        l--;
    if (l >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
        const char *sp = memchr(buf, ' ', l);
        q->status = sp ? atoi(sp + 1) : 0;
        q->content_length = -1;
        q->etag[0] = '\0';
        free(q->meta_value);
        q->meta_value = NULL;
    } else if (l > 0) {
        note_header(q, buf, l);
    } else if (q->status >= 200 && q->on_headers && !q->on_headers(q)) {
        return 0;
    }
    return len;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
    struct s3_req *q = req_of(userdata);
    size_t len = size * nmemb;
    if (q->remove_pending)
        return 0;
    if (q->on_body && q->status == 200)
        return q->on_body(q, (const uint8_t *)data, len);
    if (q->body.len + len <= BODY_KEEP_MAX)
        sl_buf_append(&q->body, data, len);
    return len;
}

static void add_header(struct s3_req *q, const char *line)
{
    struct curl_slist *l = curl_slist_append(q->hdrs, line);
    SL_ASSERT(l != NULL);
    q->hdrs = l;
}

/* What every request of the tier sets: callbacks, timeouts, TLS, signing. */
static void set_common(struct s3_req *q, const char *url)
{
    const struct s3_tier *t = q->t;
    CURL *e = q->easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, q);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, q);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, q);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, q->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)t->s.connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, t->s.tls_verify ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, t->s.tls_verify ? 2L : 0L);
    curl_easy_setopt(e, CURLOPT_AWS_SIGV4, t->sigv4);
    curl_easy_setopt(e, CURLOPT_USERPWD, t->userpwd);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "sluice/0.1");
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
}

/* The method, and the body from memory: the bytes libcurl hashes for the
 * signature are the ones x-amz-content-sha256 names. */
static void set_method(struct s3_req *q, const char *method, const uint8_t *body, size_t body_len)
{
    CURL *e = q->easy;
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "DELETE") == 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    } else {
        add_header(q, "Expect:");   /* no 100-continue round trip */
        add_header(q, "Content-Type: application/octet-stream");
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body ? (const char *)body : "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? body_len : 0));
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    }
}

/* A request of `method` on object `hash` (+ query), with `body` (not
 * copied: it must outlive the request) or NULL; started by req_start. */
static struct s3_req *req_new(struct s3_tier *t, const char *what, const char *method, const uint8_t *hash,
                              const char *query, const uint8_t *body, size_t body_len, const char *body_sha)
{
    char url[S3_URL_MAX], line[KEY_HEX_LEN + 40];
    size_t n = s3_object_url(&t->s, hash, query, url, sizeof(url));
    SL_ASSERT(n > 0);   /* the settings were checked */
    struct s3_req *q = sl_calloc(1, sizeof(*q));
    q->magic = REQ_MAGIC;
    q->t = t;
    q->what = what;
    q->content_length = -1;
    q->easy = curl_easy_init();
    SL_ASSERT(q->easy != NULL);
    set_common(q, url);
    snprintf(line, sizeof(line), "x-amz-content-sha256: %s", body ? body_sha : EMPTY_SHA256);
    add_header(q, line);
    if (t->token_header)
        add_header(q, t->token_header);
    set_method(q, method, body, body_len);
    return q;
}

static void req_start(struct s3_req *q)
{
    curl_easy_setopt(q->easy, CURLOPT_HTTPHEADER, q->hdrs);
    q->add_pending = true;
    queue_op(q);
}

/* Stop a request from a callback or anywhere: it is freed by the kick,
 * which then calls released(owner). */
static void req_abandon(struct s3_req *q)
{
    q->remove_pending = true;
    q->add_pending = q->resume_pending = false;
    queue_op(q);
}

static void run_op(struct s3_req *q)
{
    CURLM *multi = curl_ev_multi(q->t->ce);
    if (q->remove_pending) {
        void (*released)(void *) = q->released;
        void *owner = q->owner;
        req_free(q);
        if (released)
            released(owner);
    } else if (q->add_pending) {
        q->add_pending = false;
        q->in_multi = true;
        curl_multi_add_handle(multi, q->easy);
    } else if (q->resume_pending) {
        q->resume_pending = false;
        curl_easy_pause(q->easy, CURLPAUSE_CONT);   /* may deliver bytes now */
    }
}

static void on_kick(struct ev_loop *loop, ev_timer *w, int revents)
{
    SL_UNUSED(loop);
    SL_UNUSED(revents);
    struct s3_tier *t = w->data;
    while (t->ops) {
        struct s3_req *q = t->ops;
        t->ops = q->next_op;
        q->queued = false;
        run_op(q);
    }
    curl_ev_check(t->ce);
}

/* curl_ev: a request ended (outside libcurl's callbacks). */
static void req_done(void *ctx, CURL *easy, CURLcode rc)
{
    SL_UNUSED(ctx);
    struct s3_req *q = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&q);
    q = req_of(q);
    if (!q->remove_pending)
        q->finished(q, rc);
}

/* "status 403 AccessDenied: ..." or libcurl's error, for logs. */
static void req_describe(const struct s3_req *q, CURLcode rc, char *out, size_t outlen)
{
    char code[64] = "", msg[128] = "";
    if (rc != CURLE_OK) {
        sl_set_err(out, outlen, "%s: %s", q->what, q->errbuf[0] ? q->errbuf : curl_easy_strerror(rc));
        return;
    }
    s3_xml_value((const char *)q->body.data, q->body.len, "Code", code, sizeof(code));
    s3_xml_value((const char *)q->body.data, q->body.len, "Message", msg, sizeof(msg));
    sl_set_err(out, outlen, "%s: status %d %s%s%s", q->what, q->status, code, msg[0] ? ": " : "", msg);
}

/* ------------------------------------------------------------- reading */

static void tier_free(struct s3_tier *t);

static void handle_gone(struct s3_tier *t)
{
    SL_ASSERT(t->pending > 0);
    if (--t->pending == 0 && t->destroying)
        tier_free(t);
}

static void read_free(void *owner)
{
    struct s3_read *r = owner;
    SL_CHECK_OBJ(r, READ_MAGIC);
    struct s3_tier *t = r->t;
    ev_timer_stop(t->loop, &r->timer);
    obj_meta_free(&r->meta);
    free(r->key);
    r->magic = 0;
    free(r);
    handle_gone(t);
}

/* Report and free (outside libcurl's callbacks). */
static void read_finish(struct s3_read *r, enum tier_result res, const char *detail)
{
    struct tier_read_cb cb = r->cb;
    void *ctx = r->ctx;
    char msg[256];
    sl_strlcpy(msg, detail, sizeof(msg));
    r->dead = true;
    req_free(r->q);
    read_free(r);
    cb.on_done(ctx, res, msg);
}

static void read_decide(struct s3_read *r, enum tier_result res, const char *detail)
{
    r->decided = true;
    r->res = res;
    sl_strlcpy(r->detail, detail, sizeof(r->detail));
}

/* A 200's metadata: this key's object, of the size being sent? */
static bool check_meta(struct s3_read *r, struct s3_req *q)
{
    char err[128];
    if (!q->meta_value) {
        read_decide(r, TIER_ERROR, "object without " S3_META_HEADER);
        return false;
    }
    if (s3_meta_decode(q->meta_value, strlen(q->meta_value), &r->meta, err, sizeof(err)) != 0) {
        read_decide(r, TIER_ERROR, err);
        return false;
    }
    if (strcmp(r->meta.key, r->key) != 0) {
        read_decide(r, TIER_MISS, "object of another key");
        return false;
    }
    if (q->content_length < 0 || (uint64_t)q->content_length != r->meta.size) {
        read_decide(r, TIER_ERROR, "Content-Length differs from the object's size");
        return false;
    }
    return true;
}

static bool read_on_headers(struct s3_req *q)
{
    struct s3_read *r = q->owner;
    SL_CHECK_OBJ(r, READ_MAGIC);
    if (q->status == 404) {
        read_decide(r, TIER_MISS, "no such object");
        return true;   /* read the small error document: the connection stays usable */
    }
    if (q->status != 200) {
        char why[64];
        snprintf(why, sizeof(why), "GET: status %d", q->status);
        read_decide(r, TIER_ERROR, why);
        return true;
    }
    if (!check_meta(r, q))
        return false;
    r->have_meta = true;
    r->cb.on_meta(r->ctx, &r->meta);
    if (r->dead)
        return false;
    r->timer.repeat = (double)r->t->s.stall_timeout_ms / 1000.0;
    ev_timer_again(r->t->loop, &r->timer);
    return true;
}

static size_t read_on_body(struct s3_req *q, const uint8_t *data, size_t len)
{
    struct s3_read *r = q->owner;
    SL_CHECK_OBJ(r, READ_MAGIC);
    if (r->dead || !r->have_meta)
        return 0;
    if (len > r->meta.size - r->got) {
        read_decide(r, TIER_ERROR, "object longer than its size");
        return 0;
    }
    size_t took = len ? r->cb.on_data(r->ctx, data, len) : 0;
    if (r->dead)
        return 0;
    if (took == TIER_PAUSE) {
        r->paused = true;
        ev_timer_stop(r->t->loop, &r->timer);
        return CURL_WRITEFUNC_PAUSE;
    }
    SL_ASSERT(took == len);
    r->got += len;
    ev_timer_again(r->t->loop, &r->timer);
    return len;
}

static void read_finished(struct s3_req *q, CURLcode rc)
{
    struct s3_read *r = q->owner;
    SL_CHECK_OBJ(r, READ_MAGIC);
    char why[256];
    if (r->decided && r->res == TIER_MISS && r->have_meta)
        read_decide(r, TIER_ERROR, r->detail);   /* never a miss after on_meta */
    if (r->decided) {
        read_finish(r, r->res, r->detail);
    } else if (rc != CURLE_OK || !r->have_meta) {
        req_describe(q, rc, why, sizeof(why));
        read_finish(r, TIER_ERROR, why);
    } else if (r->got != r->meta.size) {
        read_finish(r, TIER_ERROR, "object shorter than its size");
    } else {
        read_finish(r, TIER_OK, "");
    }
}

static void on_read_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    SL_UNUSED(loop);
    SL_UNUSED(revents);
    struct s3_read *r = w->data;
    SL_CHECK_OBJ(r, READ_MAGIC);
    if (r->dead || r->paused)
        return;
    log_warn("s3: %s of %s: %s", r->have_meta ? "body" : "headers", r->key,
             r->have_meta ? "stalled" : "deadline passed");
    read_finish(r, TIER_ERROR, r->have_meta ? "S3 stalled" : "no S3 answer within s3_read_header_timeout");
}

static struct tier_read *s3_read(struct tier *tier, const char *key, const uint8_t hash[KEY_HASH_LEN],
                                 const struct tier_read_cb *cb, void *ctx)
{
    struct s3_tier *t = (struct s3_tier *)tier;
    struct s3_read *r = sl_calloc(1, sizeof(*r));
    r->base.tier = tier;
    r->magic = READ_MAGIC;
    r->t = t;
    r->cb = *cb;
    r->ctx = ctx;
    r->key = sl_strdup(key);
    struct s3_req *q = req_new(t, "GET", "GET", hash, "", NULL, 0, NULL);
    q->owner = r;
    q->on_headers = read_on_headers;
    q->on_body = read_on_body;
    q->finished = read_finished;
    q->released = read_free;
    r->q = q;
    ev_init(&r->timer, on_read_timer);
    r->timer.data = r;
    ev_timer_set(&r->timer, (double)t->s.header_timeout_ms / 1000.0, 0.);
    ev_timer_start(t->loop, &r->timer);
    t->pending++;
    req_start(q);
    return &r->base;
}

static void s3_read_resume(struct tier_read *base)
{
    struct s3_read *r = (struct s3_read *)base;
    SL_CHECK_OBJ(r, READ_MAGIC);
    if (!r->paused || r->dead)
        return;
    r->paused = false;
    r->timer.repeat = (double)r->t->s.stall_timeout_ms / 1000.0;
    ev_timer_again(r->t->loop, &r->timer);
    r->q->resume_pending = true;
    queue_op(r->q);
}

static void s3_read_abort(struct tier_read *base)
{
    struct s3_read *r = (struct s3_read *)base;
    SL_CHECK_OBJ(r, READ_MAGIC);
    if (r->dead)
        return;
    r->dead = true;
    ev_timer_stop(r->t->loop, &r->timer);
    req_abandon(r->q);   /* freed with the read by the kick */
}

/* ------------------------------------------------------------- writing */

static void write_send(struct s3_write *w);
static void write_next_part(struct s3_write *w);

static void write_free(struct s3_write *w)
{
    struct s3_tier *t = w->t;
    if (w->fd >= 0)
        close(w->fd);
    for (int i = 0; w->etags && i < w->nparts; i++)
        free(w->etags[i]);
    free(w->etags);
    free(w->buf);
    free(w->xml);
    free(w->key);
    w->magic = 0;
    free(w);
    handle_gone(t);
}

static void write_finish(struct s3_write *w, int rc)
{
    void (*done)(void *, int) = w->done;
    void *ctx = w->ctx;
    if (rc != 0)
        log_warn("s3: upload of %s failed: %s", w->key, w->why[0] ? w->why : strerror(-rc));
    write_free(w);
    done(ctx, rc);
}

static void set_why(struct s3_write *w, int rc, const char *why)
{
    w->rc = rc;
    sl_strlcpy(w->why, why, sizeof(w->why));
}

/* Read len bytes of the body at off into w->buf and hash them (worker). */
static void read_body(struct s3_write *w, uint64_t off, size_t len)
{
    free(w->buf);
    w->buf = sl_malloc(len ? len : 1);
    w->buf_len = len;
    for (size_t done = 0; done < len;) {
        ssize_t n = pread(w->fd, w->buf + done, len - done, (off_t)(OBJ_HEADER_SIZE + off + done));
        if (n <= 0) {
            set_why(w, n < 0 ? -errno : -EIO, n < 0 ? strerror(errno) : "object file shorter than its size");
            return;
        }
        done += (size_t)n;
    }
    uint8_t h[KEY_HASH_LEN];
    key_hash((const char *)w->buf, len, h);   /* SHA-256 of the bytes */
    key_hex(h, w->sha);
}

/* The header block: this key's, encodable as S3 metadata (worker). */
static void prepare_work(void *arg)
{
    struct s3_write *w = arg;
    uint8_t block[OBJ_HEADER_SIZE];
    struct obj_meta meta;
    char err[128];
    if (pread(w->fd, block, sizeof(block), 0) != (ssize_t)sizeof(block) ||
        obj_header_decode(block, sizeof(block), &meta, err, sizeof(err)) != 0) {
        set_why(w, -EINVAL, "not an object file");
        return;
    }
    bool ours = strcmp(meta.key, w->key) == 0;
    w->size = meta.size;
    obj_meta_free(&meta);
    if (!ours)
        set_why(w, -EINVAL, "object file of another key");
    else if (s3_meta_encode(block, w->meta_value, sizeof(w->meta_value)) == 0)
        set_why(w, -E2BIG, "metadata larger than S3 keeps");
    else if (!(w->multipart = w->size > w->t->s.multipart_threshold))
        read_body(w, 0, (size_t)w->size);
}

static void part_work(void *arg)
{
    struct s3_write *w = arg;
    uint64_t off = (uint64_t)(w->part - 1) * w->t->s.part_size;
    read_body(w, off, (size_t)SL_MIN(w->size - off, w->t->s.part_size));
}

static struct s3_req *write_req(struct s3_write *w, const char *what, const char *method, const char *query,
                                const uint8_t *body, size_t len, const char *sha,
                                void (*finished)(struct s3_req *, CURLcode))
{
    struct s3_req *q = req_new(w->t, what, method, w->hash, query, body, len, sha);
    curl_easy_setopt(q->easy, CURLOPT_TIMEOUT_MS, (long)w->t->s.request_timeout_ms);
    q->owner = w;
    q->finished = finished;
    return q;
}

static void add_meta_header(struct s3_req *q, const struct s3_write *w)
{
    char *line = sl_printf(S3_META_HEADER ": %s", w->meta_value);
    add_header(q, line);
    free(line);
}

/* A write's request ended: ok when 2xx (and no <Error> in a 200). */
static bool write_req_ok(struct s3_write *w, struct s3_req *q, CURLcode rc)
{
    bool ok = rc == CURLE_OK && q->status / 100 == 2 &&
              !s3_xml_is_error((const char *)q->body.data, q->body.len);
    if (!ok) {
        char why[200];
        req_describe(q, rc, why, sizeof(why));
        set_why(w, -EIO, why);
    }
    return ok;
}

static void put_finished(struct s3_req *q, CURLcode rc)
{
    struct s3_write *w = q->owner;
    SL_CHECK_OBJ(w, WRITE_MAGIC);
    bool ok = write_req_ok(w, q, rc);
    req_free(q);
    write_finish(w, ok ? 0 : w->rc);
}

static void abort_finished(struct s3_req *q, CURLcode rc)
{
    struct s3_write *w = q->owner;
    SL_CHECK_OBJ(w, WRITE_MAGIC);
    if (rc != CURLE_OK || q->status / 100 != 2) {
        char why[200];
        req_describe(q, rc, why, sizeof(why));
        log_warn("s3: AbortMultipartUpload of %s failed (%s): the bucket's lifecycle rule must reap it", w->key,
                 why);
    }
    req_free(q);
    write_finish(w, w->rc);
}

/* A multipart step failed: abort the upload, then report w->rc. */
static void multipart_fail(struct s3_write *w)
{
    char query[1024];
    if (s3_query_upload(w->upload_id, query, sizeof(query)) == 0) {
        write_finish(w, w->rc);
        return;
    }
    req_start(write_req(w, "AbortMultipartUpload", "DELETE", query, NULL, 0, NULL, abort_finished));
}

static void complete_finished(struct s3_req *q, CURLcode rc)
{
    struct s3_write *w = q->owner;
    SL_CHECK_OBJ(w, WRITE_MAGIC);
    bool ok = write_req_ok(w, q, rc);
    req_free(q);
    if (ok)
        write_finish(w, 0);
    else
        multipart_fail(w);
}

static void complete_upload(struct s3_write *w)
{
    char query[1024];
    uint8_t h[KEY_HASH_LEN];
    free(w->buf);
    w->buf = NULL;
    w->xml = s3_complete_xml(w->etags, w->nparts);
    key_hash(w->xml, strlen(w->xml), h);
    key_hex(h, w->sha);
    s3_query_upload(w->upload_id, query, sizeof(query));
    req_start(write_req(w, "CompleteMultipartUpload", "POST", query, (const uint8_t *)w->xml, strlen(w->xml),
                        w->sha, complete_finished));
}

static void part_finished(struct s3_req *q, CURLcode rc)
{
    struct s3_write *w = q->owner;
    SL_CHECK_OBJ(w, WRITE_MAGIC);
    bool ok = write_req_ok(w, q, rc);
    if (ok && !q->etag[0]) {
        set_why(w, -EIO, "UploadPart: no ETag");
        ok = false;
    }
    if (ok)
        w->etags[w->part - 1] = sl_strdup(q->etag);
    req_free(q);
    if (!ok)
        multipart_fail(w);
    else if (w->part == w->nparts)
        complete_upload(w);
    else
        write_next_part(w);
}

static void part_read_done(void *arg)
{
    struct s3_write *w = arg;
    SL_CHECK_OBJ(w, WRITE_MAGIC);
    char query[1024];
    if (w->rc != 0 || s3_query_part(w->part, w->upload_id, query, sizeof(query)) == 0) {
        if (w->rc == 0)
            set_why(w, -EINVAL, "upload id too long");
        multipart_fail(w);
        return;
    }
    req_start(write_req(w, "UploadPart", "PUT", query, w->buf, w->buf_len, w->sha, part_finished));
}

static void write_next_part(struct s3_write *w)
{
    w->part++;
    workers_submit(w->t->workers, part_work, part_read_done, w);
}

static void create_finished(struct s3_req *q, CURLcode rc)
{
    struct s3_write *w = q->owner;
    SL_CHECK_OBJ(w, WRITE_MAGIC);
    bool ok = write_req_ok(w, q, rc);
    if (ok && s3_xml_value((const char *)q->body.data, q->body.len, "UploadId", w->upload_id,
                           sizeof(w->upload_id)) <= 0) {
        set_why(w, -EIO, "CreateMultipartUpload: no UploadId");
        ok = false;
    }
    req_free(q);
    if (!ok) {
        write_finish(w, w->rc);
        return;
    }
    w->nparts = (int)((w->size + w->t->s.part_size - 1) / w->t->s.part_size);
    w->etags = sl_calloc((size_t)w->nparts, sizeof(*w->etags));
    write_next_part(w);
}

static void write_send(struct s3_write *w)
{
    struct s3_req *q;
    if (!w->multipart) {
        q = write_req(w, "PutObject", "PUT", "", w->buf, w->buf_len, w->sha, put_finished);
    } else if ((w->size + w->t->s.part_size - 1) / w->t->s.part_size > S3_MAX_PARTS) {
        set_why(w, -EFBIG, "more than 10000 parts: raise s3_part_size");
        write_finish(w, w->rc);
        return;
    } else {
        q = write_req(w, "CreateMultipartUpload", "POST", "uploads=", NULL, 0, NULL, create_finished);
    }
    add_meta_header(q, w);
    req_start(q);
}

static void prepare_done(void *arg)
{
    struct s3_write *w = arg;
    SL_CHECK_OBJ(w, WRITE_MAGIC);
    if (w->rc != 0)
        write_finish(w, w->rc);
    else
        write_send(w);
}

static void s3_write(struct tier *tier, const char *key, const uint8_t hash[KEY_HASH_LEN], int fd,
                     void (*done)(void *ctx, int rc), void *ctx)
{
    struct s3_tier *t = (struct s3_tier *)tier;
    struct s3_write *w = sl_calloc(1, sizeof(*w));
    w->magic = WRITE_MAGIC;
    w->t = t;
    w->key = sl_strdup(key);
    memcpy(w->hash, hash, KEY_HASH_LEN);
    w->fd = fd;
    w->done = done;
    w->ctx = ctx;
    t->pending++;
    workers_submit(t->workers, prepare_work, prepare_done, w);
}

/* ------------------------------------------------------------ the tier */

static void tier_free(struct s3_tier *t)
{
    SL_ASSERT(t->ops == NULL);
    ev_timer_stop(t->loop, &t->kick);
    curl_ev_free(t->ce);
    free((char *)t->s.endpoint);
    free((char *)t->s.bucket);
    free((char *)t->s.region);
    free((char *)t->s.prefix);
    free(t->userpwd);
    free(t->sigv4);
    free(t->token_header);
    free(t);
}

static void s3_destroy(struct tier *tier)
{
    struct s3_tier *t = (struct s3_tier *)tier;
    SL_ASSERT(!t->destroying);
    for (struct s3_req **pp = &t->ops; *pp;) {   /* aborted reads: release them now */
        struct s3_req *q = *pp;
        if (!q->remove_pending) {
            pp = &q->next_op;
            continue;
        }
        *pp = q->next_op;
        q->queued = false;
        run_op(q);
    }
    t->destroying = true;   /* after: a release above must not free the tier */
    if (t->pending == 0)
        tier_free(t);
    else   /* a contract breach (tier.h), only at exit: the tier stays allocated */
        log_warn("s3: tier destroyed with %d read(s) or upload(s) still running", t->pending);
}

static const struct tier_ops s3_ops = {
    .kind = "s3",
    .read = s3_read,
    .read_resume = s3_read_resume,
    .read_abort = s3_read_abort,
    .write = s3_write,
    .destroy = s3_destroy,
};

static void copy_settings(struct s3_tier *t, const struct s3_settings *s)
{
    t->s = *s;
    t->s.endpoint = sl_strdup(s->endpoint);
    t->s.bucket = sl_strdup(s->bucket);
    t->s.region = sl_strdup(s->region);
    t->s.prefix = sl_strdup(s->prefix ? s->prefix : "");
    t->s.access_key = t->s.secret_key = t->s.session_token = NULL;   /* kept only as below */
    t->userpwd = sl_printf("%s:%s", s->access_key, s->secret_key);
    t->sigv4 = sl_printf("aws:amz:%s:s3", s->region);
    if (s->session_token && s->session_token[0])
        t->token_header = sl_printf("x-amz-security-token: %s", s->session_token);
}

struct tier *tier_s3_new(struct ev_loop *loop, struct worker_pool *workers, const struct s3_settings *s,
                         char *err, size_t errlen)
{
    const char *why = s3_settings_check(s);
    if (!why && (!s->access_key || !s->access_key[0] || !s->secret_key || !s->secret_key[0]))
        why = "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set";
    if (why) {
        sl_set_err(err, errlen, "s3 tier: %s", why);
        return NULL;
    }
    struct s3_tier *t = sl_calloc(1, sizeof(*t));
    t->base.ops = &s3_ops;
    sl_strlcpy(t->base.name, "s3", sizeof(t->base.name));
    t->loop = loop;
    t->workers = workers;
    copy_settings(t, s);
    t->ce = curl_ev_new(loop, req_done, t);
    ev_init(&t->kick, on_kick);
    t->kick.data = t;
    return &t->base;
}
