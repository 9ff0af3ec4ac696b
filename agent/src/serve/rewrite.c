/*
 * rewrite.c - metadata bodies through the ecosystem's rewriter on their way
 * out (see rewrite.h).
 *
 * Invariants of a pipe: `out[off .. len)` is rewritten output not yet
 * taken by the socket; the source is asked for more only when that is
 * empty, so memory holds one read piece and what the rewriter made of it;
 * once the source ended and the rewriter finished, only `out` remains.
 * A tee (rw_pipe_tee) holds everything emitted since the first byte and
 * the digest notes put meanwhile; it is given out (rw_pipe_take_tee) only
 * once the rewriter finished cleanly, and dropped at the first error or
 * when it outgrows its limit, so a partial output is never handed out.
 */
#include "serve/rewrite.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/common.h"
#include "core/log.h"
#include "eco/digest_notes.h"
#include "fill/fill.h"
#include "store/objfile.h"

#define RW_PIPE_MAGIC 0x52575049u   /* "RWPI" */

struct rw_pipe {
    unsigned magic;
    const struct eco_rewriter_ops *ops;
    struct eco_rewriter *rw;
    struct rw_source src;
    struct sl_buf out;
    size_t off;
    uint8_t *rbuf;            /* a file piece read for the rewriter */
    bool ended;               /* the source ended and the rewriter finished */
    const char *key;          /* for logs */
    struct digest_notes *notes;
    /* rw_pipe_tee: the whole output and the notes put, while at most tee_max */
    bool tee;
    size_t tee_max;
    struct sl_buf tee_out, tee_notes;
};

bool rewrite_applies(const struct canon *cn, int status)
{
    return status == 200 && cn->cls == ECO_METADATA && cn->route->eco->rewriter != NULL;
}

void rewrite_etag(const struct agent *a, const char *etag, char *out, size_t outlen)
{
    char base[CONFIG_URL_MAX];
    config_public_url(&a->cfg, base, sizeof(base));
    uint32_t crc = obj_crc32((const uint8_t *)base, strlen(base));
    size_t n = strlen(etag);
    bool quoted = n >= 2 && etag[n - 1] == '"';
    /* "abc" -> "abc-r1a2b3c4d" */
    snprintf(out, outlen, "%.*s-r%08x\"", (int)(quoted ? n - 1 : n), etag, crc);
}

static void discard(void *ctx, const uint8_t *data, size_t len)
{
    SL_UNUSED(ctx);
    SL_UNUSED(data);
    SL_UNUSED(len);
}

/* The ecosystem's rewriter for cn's document, what it makes going to emit. */
static struct eco_rewriter *open_rewriter(struct agent *a, const struct canon *cn, rw_emit_fn emit, void *ctx)
{
    char page[CONFIG_URL_MAX + KEY_MAX + 2], base[CONFIG_URL_MAX];
    if (canon_origin_url(cn, page, sizeof(page)) != 0)
        page[0] = '\0';
    config_public_url(&a->cfg, base, sizeof(base));
    struct eco_rewrite_ctx rc = { cn, page, &a->routes, base, a->notes };
    return cn->route->eco->rewriter->open(&rc, emit, ctx);
}

void rewrite_check_fill(struct agent *a, struct fill *f, const struct canon *cn)
{
    if (rewrite_applies(cn, 200))
        fill_set_check(f, cn->route->eco->rewriter, open_rewriter(a, cn, discard, NULL));
}

static void stop_tee(struct rw_pipe *p)
{
    p->tee = false;
    sl_buf_free(&p->tee_out);
    sl_buf_free(&p->tee_notes);
}

static void emit(void *ctx, const uint8_t *data, size_t len)
{
    struct rw_pipe *p = ctx;
    SL_CHECK_OBJ(p, RW_PIPE_MAGIC);
    sl_buf_append(&p->out, data, len);
    if (!p->tee)
        return;
    if (p->tee_out.len + len > p->tee_max)
        stop_tee(p);
    else
        sl_buf_append(&p->tee_out, data, len);
}

struct rw_pipe *rw_pipe_new(struct agent *a, const struct canon *cn, const struct rw_source *src)
{
    SL_ASSERT(rewrite_applies(cn, 200));
    struct rw_pipe *p = sl_calloc(1, sizeof(*p));
    p->magic = RW_PIPE_MAGIC;
    p->ops = cn->route->eco->rewriter;
    p->src = *src;
    p->key = cn->key;
    p->notes = a->notes;
    p->rw = open_rewriter(a, cn, emit, p);
    return p;
}

void rw_pipe_tee(struct rw_pipe *p, size_t max)
{
    SL_CHECK_OBJ(p, RW_PIPE_MAGIC);
    SL_ASSERT(p->out.len == 0 && !p->ended);   /* from the first byte */
    p->tee = true;
    p->tee_max = max;
}

bool rw_pipe_take_tee(struct rw_pipe *p, struct sl_buf *out, struct sl_buf *notes)
{
    SL_CHECK_OBJ(p, RW_PIPE_MAGIC);
    if (!p->tee || !p->ended)
        return false;
    *out = p->tee_out;
    *notes = p->tee_notes;
    memset(&p->tee_out, 0, sizeof(p->tee_out));
    memset(&p->tee_notes, 0, sizeof(p->tee_notes));
    p->tee = false;
    return true;
}

/* The rewriter's feed or finish, the notes it puts recorded while teeing. */
static int rewriter_step(struct rw_pipe *p, const uint8_t *data, size_t n, bool finish)
{
    if (p->tee && p->notes)
        digest_notes_record(p->notes, &p->tee_notes);
    int rc = finish ? p->ops->finish(p->rw) : p->ops->feed(p->rw, data, n);
    if (p->notes)
        digest_notes_record(p->notes, NULL);
    if (rc != 0 && p->tee)
        stop_tee(p);   /* a failed rewrite is never kept */
    return rc;
}

/* Feed the rewriter one raw piece; false on a rewriter or read error. */
static bool feed_piece(struct rw_pipe *p, const struct http_piece *pc)
{
    size_t n = SL_MIN(pc->len, (size_t)RW_READ_MAX);
    const uint8_t *data = pc->data;
    if (!data) {
        if (!p->rbuf)
            p->rbuf = sl_malloc(RW_READ_MAX);
        ssize_t got = pread(pc->fd, p->rbuf, n, (off_t)pc->file_off);
        if (got <= 0) {
            log_warn("rewrite: reading the stored body failed (%s) key=%s", got < 0 ? strerror(errno) : "short",
                     p->key);
            return false;
        }
        n = (size_t)got;
        data = p->rbuf;
    }
    int rc = rewriter_step(p, data, n, false);
    p->src.consumed(p->src.ctx, n);
    return rc == 0;
}

enum http_body_result rw_pipe_body(struct rw_pipe *p, struct http_piece *out)
{
    SL_CHECK_OBJ(p, RW_PIPE_MAGIC);
    while (p->off == p->out.len) {
        sl_buf_clear(&p->out);
        p->off = 0;
        if (p->ended)
            return HTTP_PIECE_END;
        struct http_piece pc = { .fd = -1 };
        enum http_body_result r = p->src.body(p->src.ctx, &pc);
        if (r == HTTP_PIECE_ERROR && p->tee)
            stop_tee(p);
        if (r == HTTP_PIECE_WAIT || r == HTTP_PIECE_ERROR)
            return r;
        if (r == HTTP_PIECE_END) {
            if (rewriter_step(p, NULL, 0, true) != 0) {
                log_warn("rewrite: the stored document does not parse to its end key=%s", p->key);
                return HTTP_PIECE_ERROR;
            }
            p->ended = true;
        } else if (!feed_piece(p, &pc)) {
            if (p->tee)
                stop_tee(p);
            return HTTP_PIECE_ERROR;
        }
    }
    out->data = p->out.data + p->off;
    out->len = p->out.len - p->off;
    return HTTP_PIECE_DATA;
}

void rw_pipe_consumed(struct rw_pipe *p, size_t n)
{
    SL_CHECK_OBJ(p, RW_PIPE_MAGIC);
    p->off += n;
    SL_ASSERT(p->off <= p->out.len);
}

void rw_pipe_free(struct rw_pipe *p)
{
    if (!p)
        return;
    SL_CHECK_OBJ(p, RW_PIPE_MAGIC);
    p->ops->close(p->rw);
    stop_tee(p);
    sl_buf_free(&p->out);
    free(p->rbuf);
    p->magic = 0;
    free(p);
}
