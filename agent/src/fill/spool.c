/*
 * spool.c - the bytes of a fill on their way to its readers (see fill.h):
 * memory chunks appended as the source delivers them, released as soon as
 * every memory reader and the cache writer have them; the writer's temp
 * file behind them for readers that fall back; and the budgets that decide
 * when a source is paused (clients are slow) and when a lagging writer is
 * detached instead (the origin never waits for the cache).
 *
 * A fill with no usable spool file (its writer failed, or it stores
 * nothing) keeps its body in memory from byte 0 - or from where the failed
 * writer's file ends, the file kept open for it - while it is in the
 * table, so that a follower arriving now still attaches (fill_attach) and
 * no second origin fetch starts. That memory is optional: when a fill
 * needs memory over its window, or the agent over spool_memory_max, the
 * retained bytes go first (for good, head_dropped), before any origin is
 * paused; followers arriving after that start a new generation (fill.h).
 */
#include <string.h>
#include <unistd.h>

#include "core/common.h"
#include "core/log.h"
#include "fill/fill_impl.h"

static void resume_paused(struct agent *a);

size_t spool_chunk_size(void)
{
    return sizeof(struct chunk) + CHUNK_SIZE;
}

void spool_chunk_unref(struct chunk *c)
{
    SL_ASSERT(c->refs > 0);
    if (--c->refs == 0)
        chunk_pool_put(c->pool, c);
}

size_t spool_take(struct fill *f, uint64_t pos, struct spool_pieces *out, size_t max_len)
{
    struct chunk *c = (struct chunk *)spool_chunk_at(f, pos);
    SL_ASSERT(c != NULL);   /* a taker's position always pins its memory */
    out->n = 0;
    out->len = 0;
    for (; c && out->n < STORE_IOV_MAX && out->len < max_len; c = c->next) {
        size_t n = (size_t)(c->off + c->len - pos);
        out->iov[out->n].iov_base = c->data + (pos - c->off);
        out->iov[out->n].iov_len = n;
        out->chunks[out->n++] = c;
        c->refs++;
        out->len += n;
        pos += n;
    }
    return out->len;
}

void spool_give_back(struct spool_pieces *p)
{
    for (int i = 0; i < p->n; i++)
        spool_chunk_unref(p->chunks[i]);
    p->n = 0;
}

const struct chunk *spool_chunk_at(const struct fill *f, uint64_t pos)
{
    for (const struct chunk *c = f->head_chunk; c; c = c->next)
        if (pos >= c->off && pos < c->off + c->len)
            return c;
    return NULL;
}

/*
 * The lowest offset anyone may still read from memory. Readers behind the
 * writer's progress are served from the file, so while the file is usable
 * they do not pin memory; otherwise every reader does. With `count_workers`,
 * so does the work done off the loop: the writer pins what it has not
 * written while it is attached or committing (a write in flight works on
 * its own copy, writer_pump, and pins nothing), and the integrity hash
 * what it has not hashed (verify.c).
 */
static uint64_t free_point(const struct fill *f, bool count_workers)
{
    uint64_t p = count_workers ? verify_pin(f) : f->received;
    if (count_workers && (writer_attached(f) || f->wstate == W_COMMITTING))
        p = SL_MIN(p, f->written);
    bool file_ok = writer_file_usable(f);
    for (const struct fill_reader *r = f->readers; r; r = r->next)
        if (!(file_ok && r->pos < f->file_end))
            p = SL_MIN(p, r->pos);
    return p;
}

/* Does the fill keep its head for followers to come (see the top)? */
static bool retains_head(const struct fill *f)
{
    return f->in_table && !f->head_dropped && (f->wstate == W_NONE || f->wstate == W_FAILED);
}

/* What a follower attaching from byte 0 needs in memory: all of it, or
 * what the failed writer's file does not hold. */
static uint64_t retain_point(const struct fill *f)
{
    if (!retains_head(f))
        return f->received;
    return f->sf ? f->file_end : 0;
}

/*
 * Once the writer has failed, its (already unlinked) temp file is only
 * needed by readers still behind memory, and by followers to come while
 * the fill retains its head; memory is no longer freed past any reader, so
 * when none is behind, none ever will be again. Closing the file then
 * gives its disk space back at once instead of when the fill ends: when
 * the disk is full, the sooner failed fills return their space, the fewer
 * of the other running fills fail too.
 */
static void release_spool_file(struct fill *f)
{
    if (!f->sf || f->wstate != W_FAILED || retains_head(f))
        return;
    for (const struct fill_reader *r = f->readers; r; r = r->next)
        if (r->pos < f->mem_start)
            return;
    close(f->sf->fd);
    free(f->sf);
    f->sf = NULL;
    f->file_end = 0;
}

/* Release the memory nobody needs any more (spool_reclaim without waking
 * paused fills). */
static void release_memory(struct fill *f)
{
    uint64_t p = SL_MIN(free_point(f, true), retain_point(f));
    if (retains_head(f) && f->received > 0)
        f->a->spool_heads_kept = true;
    while (f->head_chunk && f->head_chunk->off + f->head_chunk->len <= p &&
           (f->head_chunk->len == f->head_chunk->cap || f->head_chunk->off + f->head_chunk->len == f->received)) {
        struct chunk *c = f->head_chunk;
        f->head_chunk = c->next;
        if (!f->head_chunk)
            f->tail_chunk = NULL;
        f->mem_bytes -= c->cap;
        f->a->spool_bytes -= c->cap;
        spool_chunk_unref(c);
    }
    f->mem_start = f->head_chunk ? f->head_chunk->off : f->received;
    spool_check(f);
    release_spool_file(f);
}

void spool_reclaim(struct fill *f)
{
    release_memory(f);
    resume_paused(f->a);
}

static void drop_head(struct fill *f)
{
    if (!retains_head(f))
        return;
    f->head_dropped = true;
    log_debug("fill: memory short, no longer keeping key=%s from byte 0 for followers", f->key);
    release_memory(f);
}

/* Every fill gives up its retained head: memory over spool_memory_max
 * never pauses an origin while optional bytes are kept. */
static void drop_all_heads(struct agent *a)
{
    if (!a->spool_heads_kept)
        return;   /* none since the last time: no walk */
    a->spool_heads_kept = false;
    for (int b = 0; b < FILL_TABLE_BUCKETS; b++)
        for (struct fill *f = a->fills[b]; f; f = f->table_next)
            drop_head(f);
}

/* The invariants of fill.h, checked wherever the spool changes. */
void spool_check(const struct fill *f)
{
    SL_ASSERT(f->mem_start <= f->received);
    SL_ASSERT(f->written <= f->received);
    SL_ASSERT(f->file_end <= f->written);
    SL_ASSERT(!writer_file_usable(f) || f->mem_start <= f->file_end || f->mem_start == f->received);
    SL_ASSERT((f->head_chunk == NULL) == (f->tail_chunk == NULL));
    SL_ASSERT(f->mem_bytes <= f->a->spool_bytes);
}

void spool_append(struct fill *f, const uint8_t *data, size_t len)
{
    while (len > 0) {
        struct chunk *c = f->tail_chunk;
        if (!c || c->len == c->cap) {
            c = chunk_pool_get(&f->a->chunks, sizeof(*c) + CHUNK_SIZE);
            c->next = NULL;
            c->pool = &f->a->chunks;
            c->off = f->received;
            c->len = 0;
            c->cap = CHUNK_SIZE;
            c->refs = 1;
            if (f->tail_chunk)
                f->tail_chunk->next = c;
            else
                f->head_chunk = c;
            f->tail_chunk = c;
            f->mem_bytes += c->cap;
            f->a->spool_bytes += c->cap;
        }
        size_t n = SL_MIN(len, c->cap - c->len);
        memcpy(c->data + c->len, data, n);
        c->len += n;
        f->received += n;
        data += n;
        len -= n;
    }
    spool_check(f);
}

/* Memory over this fill's window, or all fills over spool_memory_max. */
static bool over_budget(const struct fill *f, size_t incoming)
{
    const struct sluice_config *cfg = &f->a->cfg;
    return f->mem_bytes + incoming > cfg->fill_buffer_size ||
           f->a->spool_bytes + incoming > cfg->spool_memory_max;
}

/* Work off the loop that trails the stream from `from` gets this slack:
 * cache_write_lag_max behind it, within the global cap. */
static bool within_lag(const struct fill *f, uint64_t from, size_t incoming)
{
    return f->received + incoming - from <= f->a->cfg.cache_write_lag_max &&
           f->a->spool_bytes + incoming <= f->a->cfg.spool_memory_max;
}

/* Over budget: detach a lagging writer, else pause. True = pause. */
bool spool_must_pause(struct fill *f, size_t incoming)
{
    if (!over_budget(f, incoming))
        return false;
    spool_reclaim(f);
    if (!over_budget(f, incoming))
        return false;
    /* Bytes kept only for followers to come go first. */
    drop_head(f);
    if (f->a->spool_bytes + incoming > f->a->cfg.spool_memory_max)
        drop_all_heads(f->a);
    if (!over_budget(f, incoming))
        return false;
    if (free_point(f, false) > free_point(f, true)) {
        /* The writer or the hash holds the memory, not a client.
         * Nobody reads this fill (a background refetch, or its clients
         * left): pausing the origin for them holds no client (C1).
         * Only for an open writer: each of its writes has a deadline, so
         * the pause is bounded (an open that hangs has none; it gets the
         * lag rule below). */
        if (f->n_readers == 0 && f->wstate == W_ACTIVE)
            return true;
        /* Give them cache_write_lag_max of slack within the global cap (a
         * busy loop or a short disk hiccup must not cost the object, nor a
         * hash one window behind cost the stream its pace). Past that the
         * writer is detached, never waited for; the hash is waited for (it
         * never blocks: its pace is the CPU's). */
        if (within_lag(f, free_point(f, true), incoming))
            return false;
        if (writer_attached(f) && !within_lag(f, f->written, incoming)) {
            writer_fail(f, WFAIL_LAG);
            drop_head(f);   /* the bytes it lagged on are not kept either */
            spool_reclaim(f);
            if (!over_budget(f, incoming) || within_lag(f, free_point(f, true), incoming))
                return false;
        }
    }
    /* A fill holding at most one chunk has nothing its readers could free
     * (a reader held one byte short of the body, fill_readable, pins the
     * last chunk however fast it reads): let it take one more rather than
     * wait for other fills, or for a byte that only more of the body can
     * release. */
    return f->mem_bytes > CHUNK_SIZE;
}

void spool_unpause(struct fill *f)
{
    if (!f->paused)
        return;
    list_remove(&f->paused_link);
    f->paused = false;
}

void spool_pause(struct fill *f)
{
    SL_ASSERT(!f->paused);
    f->paused = true;
    list_push_back(&f->a->paused, &f->paused_link);
}

/* A paused fill resumes at half its window, or with one chunk left: a
 * reader held one byte short of the body (fill_readable) pins the last
 * chunk, and a smaller threshold would then never be reached. */
static uint64_t resume_point(const struct agent *a)
{
    return SL_MAX(a->cfg.fill_buffer_size / 2, (uint64_t)CHUNK_SIZE);
}

/*
 * Resume paused origins once memory is back under both budgets (with
 * hysteresis, so a fill does not flap between paused and running). Memory
 * freed by any fill can resume another, since the global cap is shared.
 */
static void resume_paused(struct agent *a)
{
    if (list_empty(&a->paused))
        return;
    if (a->spool_bytes > a->cfg.spool_memory_max / 4 * 3)
        drop_all_heads(a);   /* retained heads never keep an origin paused */
    if (a->spool_bytes > a->cfg.spool_memory_max / 4 * 3)
        return;
    struct sl_list *n = a->paused.next;
    while (n != &a->paused) {
        struct fill *f = SL_CONTAINER_OF(n, struct fill, paused_link);
        n = n->next;
        if (f->mem_bytes <= resume_point(a)) {
            spool_unpause(f);
            if (f->src.h)
                f->src.resume(f->src.h);
        }
    }
}

enum http_body_result fill_read(struct fill_reader *r, struct http_piece *out)
{
    struct fill *f = r->fill;
    SL_ASSERT(f && r->pos <= f->received);
    uint64_t readable = fill_readable(f);   /* the last byte may wait for its verdict */
    if (r->pos < f->mem_start && r->pos < readable) {
        SL_ASSERT(f->sf && f->file_end > r->pos);
        uint64_t end = SL_MIN(SL_MIN(f->mem_start, f->file_end), readable);
        out->data = NULL;
        out->fd = f->sf->fd;
        out->file_off = OBJ_HEADER_SIZE + r->pos;
        out->len = (size_t)SL_MIN(end - r->pos, (uint64_t)1 << 30);
        return HTTP_PIECE_DATA;
    }
    if (r->pos < readable) {
        const struct chunk *c = spool_chunk_at(f, r->pos);
        SL_ASSERT(c != NULL);
        out->data = c->data + (r->pos - c->off);
        out->len = (size_t)(SL_MIN(c->off + c->len, readable) - r->pos);
        return HTTP_PIECE_DATA;
    }
    if (!f->origin_done)
        return HTTP_PIECE_WAIT;
    if (!fill_body_complete(f))
        return HTTP_PIECE_ERROR;
    return readable < f->received ? HTTP_PIECE_WAIT : HTTP_PIECE_END;   /* WAIT: no verdict yet */
}

void fill_consumed(struct fill_reader *r, size_t n)
{
    struct fill *f = r->fill;
    r->pos += n;
    SL_ASSERT(r->pos <= f->received);
    metrics_route(f->a, f->route)->bytes_fill += n;
    spool_reclaim(f);
}

void spool_free(struct fill *f)
{
    spool_unpause(f);
    SL_ASSERT(f->a->spool_bytes >= f->mem_bytes);
    f->a->spool_bytes -= f->mem_bytes;
    struct chunk *c = f->head_chunk;
    while (c) {
        struct chunk *next = c->next;
        spool_chunk_unref(c);
        c = next;
    }
    f->head_chunk = f->tail_chunk = NULL;
    f->mem_bytes = 0;
    if (f->sf) {
        close(f->sf->fd);
        free(f->sf);
        f->sf = NULL;
    }
}
