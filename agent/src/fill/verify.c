/*
 * verify.c - integrity while filling: a fill's body hashed as it arrives
 * and compared with the digest its ecosystem published (fill.h,
 * fill_verify).
 *
 * The hash runs on a worker, not on the event loop (a SHA-512 costs about
 * as much CPU per byte as the rest of a fill): one hash job at a time per
 * fill, over the spool chunks from `hashed` on, which stay in memory until
 * hashed (verify_pin). Like the cache writer, the hash may trail the stream
 * by cache_write_lag_max (spool.c), so its jobs overlap the loop's reading
 * instead of taking turns with it; a hash further behind pauses the origin,
 * never the loop.
 *
 * The readers are held one byte short of the body until the comparison is
 * made (fill_readable): a client cannot see a complete body whose digest
 * is wrong, whatever its framing (with Content-Length the last byte is the
 * clean end; chunked, the terminating chunk comes after it). On a match
 * the object records the digest (obj_meta.verified) and commits as usual;
 * on a mismatch the fill fails as an origin failure does (every reader's
 * transfer aborted, the writer detached with reason "integrity", nothing
 * committed, the key out of the table so the next request fetches again).
 *
 * Invariants: the hash has seen exactly bytes [0, hashed) of the body, in
 * order, and only a hash job touches it while one runs (busy); a verdict
 * is reached once, and only on a complete body whose expected digest is
 * known; until a match (or the end of hope for a digest) fill_readable is
 * received - 1, and for good after a mismatch.
 */
#include <ctype.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "core/common.h"
#include "core/log.h"
#include "core/workers.h"
#include "eco/digest_notes.h"
#include "eco/gosum.h"
#include "fill/fill_impl.h"
#include "route/canon.h"

enum verify_state {
    V_HASHING,     /* bytes arriving */
    V_PASSED,      /* matched: the body is released */
    V_FAILED,      /* did not match */
    V_UNKNOWN,     /* no expected digest after all: released unverified */
};


struct fill_verify {
    EVP_MD_CTX *md;             /* NULL for Go's h1, which is not a stream hash */
    const char *algorithm;
    bool expected_known;        /* expect is set */
    bool expected_pending;      /* it may still come (fill_verify_expect) */
    struct eco_digest expect;
    enum verify_state state;
    uint64_t hashed;            /* bytes the digest has seen */
    bool busy;                  /* a worker job runs: a stream hash (it owns md
                                   meanwhile) or Go's h1 over the written body */
    /* fill_verify_from: the sidecar's fill, read as one of its readers */
    struct fill *owner;
    struct fill_reader sidecar;
    struct canon *artifact;     /* the fill's request, for its eco's sidecar_digest */
    bool sidecar_attached;
    ev_timer sidecar_turn;      /* reads happen on their own loop turn, not inside a wake */
    struct sl_buf sidecar_text;
};

/* Go's h1 of a module zip ("H1") or of a go.mod ("H1MOD"): computed over
 * the whole written body by a worker, not while it streams. */
static bool is_h1(const char *algorithm)
{
    return strcmp(algorithm, "H1") == 0 || strcmp(algorithm, "H1MOD") == 0;
}

void fill_verify(struct fill *f, const char *algorithm, const struct eco_digest *expect)
{
    SL_CHECK_OBJ(f, FILL_MAGIC);
    SL_ASSERT(!f->verify && f->received == 0 && digest_length(algorithm) > 0);
    SL_ASSERT(!expect || strcmp(expect->algorithm, algorithm) == 0);
    struct fill_verify *v = sl_calloc(1, sizeof(*v));
    v->algorithm = algorithm;
    if (!is_h1(algorithm)) {
        v->md = EVP_MD_CTX_new();
        SL_ASSERT(v->md && EVP_DigestInit_ex(v->md, EVP_get_digestbyname(algorithm), NULL) == 1);
    }
    if (expect) {
        v->expect = *expect;
        v->expected_known = true;
    } else {
        v->expected_pending = true;
    }
    f->verify = v;
}

static void sidecar_stop(struct fill_verify *v)
{
    if (!v->sidecar_attached)
        return;
    ev_timer_stop(v->owner->a->loop, &v->sidecar_turn);
    fill_detach(&v->sidecar);
    v->sidecar_attached = false;
}

void verify_inherit(struct fill *g, const struct fill *f)
{
    const struct fill_verify *v = f->verify;
    if (v && v->expected_known)
        fill_verify(g, v->algorithm, &v->expect);
}

void verify_free(struct fill *f)
{
    if (!f->verify)
        return;
    SL_ASSERT(!f->verify->busy);   /* a job holds a reference */
    sidecar_stop(f->verify);
    sl_buf_free(&f->verify->sidecar_text);
    free(f->verify->artifact);
    EVP_MD_CTX_free(f->verify->md);
    free(f->verify);
    f->verify = NULL;
}

/* Only a 200's body is an artifact; anything else is never verified. */
static bool applies(const struct fill *f)
{
    return f->verify && f->head == FILL_HEAD_READY && f->meta.status == 200;
}

/* ---------------------------------------------------------------- hash */

struct hash_job {
    struct fill *f;
    EVP_MD_CTX *md;
    struct spool_pieces pieces;
};

static void hash_work(void *arg)
{
    struct hash_job *j = arg;
    for (int i = 0; i < j->pieces.n; i++)
        SL_ASSERT(EVP_DigestUpdate(j->md, j->pieces.iov[i].iov_base, j->pieces.iov[i].iov_len) == 1);
}

static void judge(struct fill *f);
static void hash_done(void *arg);

/* Hash what arrived and was not hashed yet; once all of a complete body
 * is, judge it and return true (the caller then settles the fill). */
static bool hash_pump(struct fill *f)
{
    struct fill_verify *v = f->verify;
    if (!applies(f) || !v->md || v->state != V_HASHING || v->busy)
        return false;
    if (v->hashed < f->received) {
        struct hash_job *j = sl_calloc(1, sizeof(*j));
        j->f = f;
        j->md = v->md;
        spool_take(f, v->hashed, &j->pieces, (size_t)16 << 20);
        v->busy = true;
        fill_ref(f);
        workers_submit(f->a->workers, hash_work, hash_done, j);
        return false;
    }
    if (!v->expected_known || !fill_body_complete(f))
        return false;
    judge(f);
    return true;
}

static void hash_done(void *arg)
{
    struct hash_job *j = arg;
    struct fill *f = j->f;
    struct fill_verify *v = f->verify;
    v->busy = false;
    v->hashed += j->pieces.len;
    spool_give_back(&j->pieces);
    free(j);
    spool_reclaim(f);   /* the hash no longer pins those bytes */
    if (hash_pump(f))
        fill_verdict_reached(f);
    fill_unref(f);
}

void verify_pump(struct fill *f)
{
    hash_pump(f);
}

uint64_t verify_pin(const struct fill *f)
{
    const struct fill_verify *v = f->verify;
    bool pins = applies(f) && v->md && v->state == V_HASHING;
    return pins ? v->hashed : f->received;
}

bool verify_settled(const struct fill *f)
{
    return !applies(f) || f->verify->state == V_PASSED || f->verify->state == V_UNKNOWN;
}

const char *verify_log_name(const struct fill *f)
{
    if (!applies(f))
        return NULL;
    return f->verify->state == V_PASSED ? "verified" : f->verify->state == V_FAILED ? "failed" : "unknown";
}

uint64_t fill_readable(const struct fill *f)
{
    /* held while hashing, and for good once the digest did not match */
    bool holding = applies(f) && !verify_settled(f) && f->received > 0;
    return holding ? f->received - 1 : f->received;
}

static void record(struct fill *f, const uint8_t *got, size_t len)
{
    char text[8 + 2 * 64 + 1];
    struct eco_digest d = { .algorithm = f->verify->algorithm, .len = len };
    memcpy(d.value, got, len);
    digest_format(&d, text, sizeof(text));
    free(f->meta.verified);
    f->meta.verified = sl_strdup(text);
}

static void mismatch(struct fill *f, const uint8_t *got, size_t len)
{
    char want[8 + 2 * 64 + 1], have[8 + 2 * 64 + 1];
    struct eco_digest d = { .algorithm = f->verify->algorithm, .len = len };
    memcpy(d.value, got, len);
    digest_format(&f->verify->expect, want, sizeof(want));
    digest_format(&d, have, sizeof(have));
    log_warn("fill: integrity failure key=%s url=%s expected=%s got=%s (%llu bytes): aborting every client, "
             "storing nothing", f->key, f->url, want, have, (unsigned long long)f->received);
    metrics_route(f->a, f->route)->integrity_failures++;
    f->origin_result = ORIGIN_ERR_INTEGRITY;
    snprintf(f->origin_detail, sizeof(f->origin_detail), "the body does not match its published digest");
    writer_fail(f, WFAIL_INTEGRITY);
}

/* The body's digest is `got`: pass or fail it. */
static void conclude(struct fill *f, const uint8_t *got, size_t len)
{
    struct fill_verify *v = f->verify;
    SL_ASSERT(v->expect.len > 0 && v->expect.len <= len);
    if (memcmp(got, v->expect.value, v->expect.len) == 0) {
        v->state = V_PASSED;
        metrics_route(f->a, f->route)->integrity_verified++;
        record(f, got, len);
    } else {
        v->state = V_FAILED;
        mismatch(f, got, len);
    }
}

/* Compare, once the body is complete and the expected digest known. */
static void judge(struct fill *f)
{
    uint8_t got[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    SL_ASSERT(EVP_DigestFinal_ex(f->verify->md, got, &len) == 1 && len <= 64);
    conclude(f, got, len);
}

/* ------------------------------------------------------------------ h1 */

struct h1_job {
    struct fill *f;
    int fd;                  /* a dup of the spool file: the body at OBJ_HEADER_SIZE */
    uint64_t size;
    bool mod;
    uint8_t got[32];
    int rc;
    char err[160];
};

#define GO_MOD_MAX ((uint64_t)16 << 20)   /* go.mod files are at most 16 MiB (modfetch) */

static void h1_work(void *arg)
{
    struct h1_job *j = arg;
    if (!j->mod) {
        j->rc = gosum_zip_h1(j->fd, OBJ_HEADER_SIZE, j->size, j->got, j->err, sizeof(j->err));
        return;
    }
    uint8_t *buf = j->size <= GO_MOD_MAX ? sl_malloc((size_t)j->size + 1) : NULL;
    j->rc = buf && pread(j->fd, buf, (size_t)j->size, OBJ_HEADER_SIZE) == (ssize_t)j->size ? 0 : -1;
    if (j->rc == 0)
        gosum_file_h1("go.mod", buf, (size_t)j->size, j->got);
    else
        snprintf(j->err, sizeof(j->err), "go.mod larger than 16 MiB or unreadable");
    free(buf);
}

static void h1_done(void *arg)
{
    struct h1_job *j = arg;
    struct fill *f = j->f;
    close(j->fd);
    f->verify->busy = false;
    if (f->verify->state == V_HASHING) {
        if (j->rc != 0) {
            /* not a zip go would take: as wrong as a wrong digest */
            log_warn("fill: cannot hash key=%s as a module: %s", f->key, j->err);
            memset(j->got, 0, sizeof(j->got));
        }
        conclude(f, j->got, sizeof(j->got));
        fill_verdict_reached(f);
    }
    fill_unref(f);
    free(j);
}

/* An h1 is computed once the whole body is in the spool file; without one
 * (the writer was detached: nothing will be stored anyway) the body is
 * released unverified, and true says so (the caller wakes the readers). */
bool verify_when_written(struct fill *f)
{
    struct fill_verify *v = f->verify;
    if (!applies(f) || v->md || v->state != V_HASHING || !v->expected_known || v->busy ||
        !fill_body_complete(f))
        return false;
    if (f->wstate == W_OPENING)
        return false;   /* its file is coming: writer_pump calls again */
    if (!writer_file_usable(f)) {
        v->state = V_UNKNOWN;
        metrics_route(f->a, f->route)->integrity_unknown++;
        log_info("fill: not verified (the cache writer was detached) key=%s", f->key);
        return true;
    }
    if (f->written < f->received || f->wbusy)
        return false;   /* writer_pump calls again */
    struct h1_job *j = sl_calloc(1, sizeof(*j));
    j->f = f;
    j->fd = dup(f->sf->fd);
    j->size = f->received;
    j->mod = strcmp(v->algorithm, "H1MOD") == 0;
    if (j->fd < 0) {
        free(j);
        v->state = V_UNKNOWN;
        return true;
    }
    fill_ref(f);
    v->busy = true;
    workers_submit(f->a->workers, h1_work, h1_done, j);
    return false;
}

void verify_body_complete(struct fill *f)
{
    if (!applies(f) || f->verify->state != V_HASHING)
        return;
    if (f->verify->expected_known && f->verify->md)
        hash_pump(f);   /* judges once every byte is hashed */
    else if (f->verify->expected_known)
        verify_when_written(f);
    else if (!f->verify->expected_pending)
        f->verify->state = V_UNKNOWN;
}

void fill_verify_expect(struct fill *f, const struct eco_digest *expect)
{
    SL_CHECK_OBJ(f, FILL_MAGIC);
    struct fill_verify *v = f->verify;
    if (!v || !v->expected_pending)
        return;
    v->expected_pending = false;
    if (expect && strcmp(expect->algorithm, v->algorithm) == 0) {
        v->expect = *expect;
        v->expected_known = true;
    } else {
        metrics_route(f->a, f->route)->integrity_unknown++;
    }
    if (fill_body_complete(f)) {   /* the body was waiting for this */
        verify_body_complete(f);
        fill_verdict_reached(f);
    }
}

/* ------------------------------------------------------------- sidecar */

/* The sidecar ended (or failed): what its ecosystem reads in it is the
 * expected digest (eco.h, sidecar_digest). */
static void sidecar_done(struct fill *f, bool ok)
{
    struct fill_verify *v = f->verify;
    struct eco_digest d;
    const struct canon *c = v->artifact;
    ok = ok && c->route->eco->sidecar_digest(c, (const char *)v->sidecar_text.data, v->sidecar_text.len, &d);
    sidecar_stop(v);
    if (!ok)
        log_info("fill: no usable digest beside key=%s, storing it unverified", f->key);
    fill_verify_expect(f, ok ? &d : NULL);
}

/* Read what the sidecar's fill has; false once it is done. */
static bool sidecar_read(struct fill *f)
{
    struct fill_verify *v = f->verify;
    struct fill *src = v->sidecar.fill;
    enum fill_head_state hs = fill_head_state(src);
    if (hs == FILL_HEAD_WAIT)
        return true;
    if (hs != FILL_HEAD_READY) {
        sidecar_done(f, false);
        return false;
    }
    /* A 404 (no sidecar published) is read to its end all the same: left
     * unread, its fill would be abandoned mid-body, counted as failed and
     * its origin connection closed. */
    bool published = fill_meta(src)->status == 200;
    for (;;) {
        struct http_piece pc = { .fd = -1 };
        enum http_body_result r = fill_read(&v->sidecar, &pc);
        if (r == HTTP_PIECE_WAIT)
            return true;
        if (r != HTTP_PIECE_DATA) {
            sidecar_done(f, published && r == HTTP_PIECE_END);
            return false;
        }
        size_t room = FILL_SIDECAR_MAX - SL_MIN(v->sidecar_text.len, (size_t)FILL_SIDECAR_MAX);
        size_t n = published ? SL_MIN(pc.len, room) : 0;
        uint8_t buf[FILL_SIDECAR_MAX];
        if (n && pc.data)
            sl_buf_append(&v->sidecar_text, pc.data, n);
        else if (n && pread(pc.fd, buf, n, (off_t)pc.file_off) == (ssize_t)n)
            sl_buf_append(&v->sidecar_text, buf, n);
        fill_consumed(&v->sidecar, pc.len);
    }
}

static void on_sidecar_turn(struct ev_loop *loop, ev_timer *w, int revents)
{
    SL_UNUSED(loop);
    SL_UNUSED(revents);
    struct fill *f = w->data;
    fill_ref(f);   /* a verdict may take it out of the table (its last reference) */
    sidecar_read(f);
    fill_unref(f);
}

static void on_sidecar_wake(void *ctx)
{
    struct fill *f = ctx;
    ev_timer_start(f->a->loop, &f->verify->sidecar_turn);
}

void fill_verify_from(struct fill *f, struct fill *sidecar, const struct canon *artifact)
{
    SL_CHECK_OBJ(f, FILL_MAGIC);
    struct fill_verify *v = f->verify;
    SL_ASSERT(v && v->expected_pending && !v->sidecar_attached);
    v->owner = f;
    v->artifact = sl_malloc(sizeof(*v->artifact));
    *v->artifact = *artifact;
    ev_timer_init(&v->sidecar_turn, on_sidecar_turn, 0., 0.);
    v->sidecar_turn.data = f;
    if (!fill_attach(sidecar, &v->sidecar, on_sidecar_wake, f)) {
        fill_verify_expect(f, NULL);
        return;
    }
    v->sidecar_attached = true;
    ev_timer_start(f->a->loop, &v->sidecar_turn);
}
