/*
 * fill.c - singleflight fills, the spool, and the decoupled cache writer
 * (see fill.h for the model and its invariants).
 *
 * Life of a fill:
 *   fill_start      -> in the table, origin transfer queued
 *   on_headers      -> meta built; if cacheable the writer opens a temp file
 *   on_data         -> bytes appended to memory chunks; writer pumped;
 *                      readers woken
 *   on_done         -> origin finished; writer commits when it has caught up
 *   commit done     -> index updated, out of the table
 *   refs reach 0    -> freed
 *
 * References: the table, each reader, each worker job in flight, and the
 * origin transfer each hold one, so nothing a worker or libcurl still uses
 * can be freed under it.
 */
#include "fill/fill.h"

#include <errno.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "store/cache.h"
#include "core/common.h"
#include "http/httpx.h"
#include "core/log.h"
#include "origin/origin.h"
#include "origin/slots.h"
#include "core/workers.h"

#define CHUNK_SIZE (256 * 1024)
/* One write job takes everything received and not yet written, up to this:
 * the writer keeps pace with a fast origin by writing large batches. */
#define WRITE_MAX (16 * 1024 * 1024)

/*
 * A spool chunk. The spool list holds one reference; a write job in flight
 * holds one on each chunk it writes, so a write that hangs keeps only its
 * own chunks alive and never stops the spool from releasing memory (the
 * loop thread alone touches refs; the worker only reads data).
 */
struct chunk {
    struct chunk *next;
    uint64_t off;
    size_t len;
    size_t cap;
    int refs;
    uint8_t data[];
};

static void chunk_unref(struct chunk *c)
{
    SL_ASSERT(c->refs > 0);
    if (--c->refs == 0)
        free(c);
}

/* The spool file as readers see it: a dup of the writer's temp file, kept
 * open (and readable even once unlinked) as long as the fill lives. */
struct spool_file {
    int fd;
};

enum writer_state { W_NONE, W_OPENING, W_ACTIVE, W_COMMITTING, W_COMMITTED, W_FAILED };

struct fill {
    struct agent *a;
    uint8_t hash[KEY_HASH_LEN];
    char *key;
    char *url;
    const struct route *route;
    int refs;
    bool in_table;
    struct fill *table_next;
    int64_t started_wall;

    /* origin slot: queued for one, or holding one while the transfer runs */
    struct slot_wait wait;
    bool queued;
    bool has_slot;
    int64_t slot_start_ms;

    /* origin */
    struct origin_xfer *xfer;
    bool paused;
    struct sl_list paused_link;  /* on a->paused while paused */
    int retry_after;             /* FILL_HEAD_BUSY: seconds */
    bool origin_done;
    enum origin_result origin_result;
    char origin_detail[160];     /* why the origin transfer failed, for the client */
    enum fill_head_state head;
    struct obj_meta meta;
    int64_t content_length;

    /* spool */
    struct chunk *head_chunk, *tail_chunk;
    uint64_t mem_start;
    uint64_t received;
    size_t mem_bytes;

    /* readers */
    struct fill_reader *readers;
    int n_readers;

    /* writer */
    enum writer_state wstate;
    struct store_temp temp;
    bool wbusy;
    int64_t wop_start_ms;
    uint64_t written;
    uint64_t file_end;           /* bytes readable from sf */
    struct spool_file *sf;
    ev_timer wtimer;
    enum write_fail_reason wfail;  /* why the writer was detached (W_FAILED) */
    bool refetch;                  /* started by refetch_after_lag */
};

static void fill_unref(struct fill *f);
static void writer_pump(struct fill *f);
static void reclaim(struct fill *f);
static void resume_paused(struct agent *a);

/* --------------------------------------------------------------- table */

static unsigned table_bucket(const uint8_t hash[KEY_HASH_LEN])
{
    return ((unsigned)hash[0] << 8 | hash[1]) % FILL_TABLE_BUCKETS;
}

struct fill *fill_find(struct agent *a, const uint8_t hash[KEY_HASH_LEN])
{
    for (struct fill *f = a->fills[table_bucket(hash)]; f; f = f->table_next)
        if (memcmp(f->hash, hash, KEY_HASH_LEN) == 0)
            return f;
    return NULL;
}

static void table_remove(struct fill *f)
{
    if (!f->in_table)
        return;
    struct fill **pp = &f->a->fills[table_bucket(f->hash)];
    while (*pp != f) {
        SL_ASSERT(*pp);
        pp = &(*pp)->table_next;
    }
    *pp = f->table_next;
    f->in_table = false;
    f->a->m.fills_in_flight--;
    fill_unref(f);
}

/* ------------------------------------------------------------ lifetime */

static void fill_ref(struct fill *f)
{
    f->refs++;
}

static void unpause_list_remove(struct fill *f);

static void fill_free(struct fill *f)
{
    unpause_list_remove(f);
    SL_ASSERT(f->a->spool_bytes >= f->mem_bytes);
    f->a->spool_bytes -= f->mem_bytes;
    SL_ASSERT(!f->in_table && !f->xfer && !f->wbusy && f->n_readers == 0 && !f->queued && !f->has_slot);
    ev_timer_stop(f->a->loop, &f->wtimer);
    struct chunk *c = f->head_chunk;
    while (c) {
        struct chunk *next = c->next;
        chunk_unref(c);
        c = next;
    }
    if (f->sf) {
        close(f->sf->fd);
        free(f->sf);
    }
    SL_ASSERT(f->temp.fd < 0);
    if (f->refetch)
        f->a->refetches_running--;
    obj_meta_free(&f->meta);
    free(f->key);
    free(f->url);
    free(f);
}

static void fill_unref(struct fill *f)
{
    SL_ASSERT(f->refs > 0);
    if (--f->refs == 0)
        fill_free(f);
}

static void wake_readers(struct fill *f)
{
    for (struct fill_reader *r = f->readers; r; r = r->next)
        r->wake(r->ctx);
}

/* -------------------------------------------------------------- writer */

struct fill_job {
    struct fill *f;
    int rc;
    struct iovec iov[STORE_IOV_MAX];   /* write: the bytes, in the chunks below */
    struct chunk *chunks[STORE_IOV_MAX];
    int iovcnt;
    size_t len;
    uint64_t off;
};

static struct fill_job *job_new(struct fill *f)
{
    struct fill_job *j = sl_calloc(1, sizeof(*j));
    j->f = f;
    fill_ref(f);
    return j;
}

static void job_done_common(struct fill_job *j)
{
    struct fill *f = j->f;
    for (int i = 0; i < j->iovcnt; i++)
        chunk_unref(j->chunks[i]);
    free(j);
    fill_unref(f);
}

static bool file_usable(const struct fill *f)
{
    return f->sf && (f->wstate == W_ACTIVE || f->wstate == W_COMMITTING || f->wstate == W_COMMITTED);
}

static void unlink_work(void *arg)
{
    struct fill_job *j = arg;
    store_temp_unlink(&j->f->a->store, &j->f->temp);
}

static void unlink_done(void *arg)
{
    job_done_common(arg);
}

/* Detach the writer: the object will not be stored, readers carry on. */
static void writer_fail(struct fill *f, enum write_fail_reason why)
{
    if (f->wstate != W_OPENING && f->wstate != W_ACTIVE)
        return;
    struct agent *a = f->a;
    bool was_opening = f->wstate == W_OPENING;
    f->wstate = W_FAILED;
    f->wfail = why;
    if (why == WFAIL_ENOSPC || why == WFAIL_EDQUOT || why == WFAIL_EIO || why == WFAIL_SHORT ||
        why == WFAIL_TIMEOUT)
        a->storage_error_ms = sl_now_ms();   /* the disk itself failed (see refetch_after_lag) */
    ev_timer_stop(a->loop, &f->wtimer);
    a->m.write_failures[why]++;
    a->m.writers_detached++;
    if (why != WFAIL_ORIGIN)
        log_warn("fill: cache writer detached (%s) key=%s after %llu bytes", write_fail_reason_name(why),
                 f->key, (unsigned long long)f->written);
    if (!was_opening) {
        /* Remove the name at once (C2); the fd closes when no write uses it. */
        workers_submit(a->workers, unlink_work, unlink_done, job_new(f));
        if (!f->wbusy)
            store_temp_close(&f->temp);
    }
    /* A detached writer no longer holds memory; readers behind may now need
     * it, which reclaim accounts for. */
    reclaim(f);
    /* Detached after the origin finished (a lagging write that failed or
     * hit its deadline): nothing will ever be committed, so the fill leaves
     * the table now and the next request starts a fresh, storing fill.
     * Left in, it would shadow the key: later requests would follow a fill
     * that can never store the object, and it would count as in flight
     * forever. Every caller holds its own reference. */
    if (f->origin_done)
        table_remove(f);
}

static void open_work(void *arg)
{
    struct fill_job *j = arg;
    j->rc = store_temp_create(&j->f->a->store, j->f->hash, &j->f->temp);
}

static void open_done(void *arg)
{
    struct fill_job *j = arg;
    struct fill *f = j->f;
    if (j->rc < 0) {
        f->temp.fd = -1;
        writer_fail(f, write_fail_reason_from_errno(-j->rc));
    } else if (f->wstate != W_OPENING) {
        /* Abandoned while opening (origin failed, shutdown). */
        store_temp_close(&f->temp);
        workers_submit(f->a->workers, unlink_work, unlink_done, job_new(f));
    } else {
        f->wstate = W_ACTIVE;
        f->sf = sl_calloc(1, sizeof(*f->sf));
        f->sf->fd = dup(f->temp.fd);
        if (f->sf->fd < 0) {
            free(f->sf);
            f->sf = NULL;
            writer_fail(f, WFAIL_OTHER);
        } else {
            writer_pump(f);
        }
    }
    job_done_common(j);
}

static void write_work(void *arg)
{
    struct fill_job *j = arg;
    j->rc = store_temp_writev(&j->f->temp, j->iov, j->iovcnt, j->off);
}

static void write_done(void *arg)
{
    struct fill_job *j = arg;
    struct fill *f = j->f;
    f->wbusy = false;
    if (f->wstate != W_ACTIVE) {
        store_temp_close(&f->temp);  /* detached while this write ran */
    } else if (j->rc < 0) {
        enum write_fail_reason why = write_fail_reason_from_errno(-j->rc);
        writer_fail(f, why);
    } else {
        f->written += j->len;
        f->file_end = f->written;
        ev_timer_stop(f->a->loop, &f->wtimer);
        writer_pump(f);
    }
    reclaim(f);
    wake_readers(f);
    job_done_common(j);
}

static void commit_work(void *arg)
{
    struct fill_job *j = arg;
    j->rc = store_temp_commit(&j->f->a->store, &j->f->temp, j->f->hash, &j->f->meta);
}

static void commit_done(void *arg)
{
    struct fill_job *j = arg;
    struct fill *f = j->f;
    struct agent *a = f->a;
    f->wbusy = false;
    ev_timer_stop(a->loop, &f->wtimer);
    if (j->rc < 0) {
        f->wstate = W_FAILED;
        a->m.write_failures[write_fail_reason_from_errno(-j->rc)]++;
        a->m.writers_detached++;
        log_warn("fill: commit failed key=%s: %s", f->key, strerror(-j->rc));
    } else {
        f->wstate = W_COMMITTED;
        metrics_route(a, f->route)->fills_committed++;
        cache_committed(a, f->hash, OBJ_HEADER_SIZE + f->received, f->received, f->meta.stored);
    }
    table_remove(f);
    reclaim(f);
    wake_readers(f);
    job_done_common(j);
}

static void on_write_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    SL_UNUSED(loop);
    SL_UNUSED(revents);
    struct fill *f = w->data;
    if (f->wbusy && f->wstate == W_ACTIVE)
        writer_fail(f, WFAIL_TIMEOUT);
    wake_readers(f);
}

static void arm_write_deadline(struct fill *f)
{
    f->wop_start_ms = sl_now_ms();
    ev_timer_stop(f->a->loop, &f->wtimer);
    ev_timer_set(&f->wtimer, (double)f->a->cfg.cache_write_timeout / 1000.0, 0.);
    ev_timer_start(f->a->loop, &f->wtimer);
}

static const struct chunk *chunk_at(const struct fill *f, uint64_t pos)
{
    for (const struct chunk *c = f->head_chunk; c; c = c->next)
        if (pos >= c->off && pos < c->off + c->len)
            return c;
    return NULL;
}

static bool body_complete(const struct fill *f)
{
    return f->origin_done && f->origin_result == ORIGIN_OK &&
           (f->content_length < 0 || (uint64_t)f->content_length == f->received);
}

static void writer_pump(struct fill *f)
{
    if (f->wstate != W_ACTIVE || f->wbusy)
        return;
    struct agent *a = f->a;
    if (f->written < f->received) {
        /* The job holds references on the chunks it writes, so a write in
         * flight - however long it hangs - never pins spool memory:
         * detaching a slow writer (deadline, lag) releases the spool at once
         * and the origin is never paused for it (C1). It covers only bytes
         * already received; the loop may append past them meanwhile. */
        struct fill_job *j = job_new(f);
        j->off = f->written;
        uint64_t pos = f->written;
        struct chunk *c = (struct chunk *)chunk_at(f, pos);
        SL_ASSERT(c != NULL);   /* memory is never freed past `written` */
        for (; c && j->iovcnt < STORE_IOV_MAX && j->len < WRITE_MAX; c = c->next) {
            size_t n = (size_t)(c->off + c->len - pos);
            j->iov[j->iovcnt].iov_base = c->data + (pos - c->off);
            j->iov[j->iovcnt].iov_len = n;
            j->chunks[j->iovcnt] = c;
            c->refs++;
            j->iovcnt++;
            j->len += n;
            pos += n;
        }
        f->wbusy = true;
        arm_write_deadline(f);
        workers_submit(a->workers, write_work, write_done, j);
        return;
    }
    if (body_complete(f)) {
        f->wstate = W_COMMITTING;
        f->meta.size = f->received;
        f->meta.stored = sl_wall_s();
        f->wbusy = true;
        arm_write_deadline(f);
        workers_submit(a->workers, commit_work, commit_done, job_new(f));
    }
}

/* -------------------------------------------------------------- memory */

/*
 * The lowest offset anyone may still read from memory. Readers behind the
 * writer's progress are served from the file, so while the file is usable
 * they do not pin memory; otherwise every reader does. The writer pins what
 * it has not written while it is attached; a write in flight works on its
 * own copy (writer_pump) and pins nothing.
 */
static uint64_t free_point(const struct fill *f, bool count_writer)
{
    uint64_t p = f->received;
    if (count_writer && (f->wstate == W_OPENING || f->wstate == W_ACTIVE))
        p = SL_MIN(p, f->written);
    bool file_ok = file_usable(f);
    for (const struct fill_reader *r = f->readers; r; r = r->next)
        if (!(file_ok && r->pos < f->file_end))
            p = SL_MIN(p, r->pos);
    return p;
}

/*
 * Once the writer has failed, its (already unlinked) temp file is only
 * needed by readers still behind memory; memory is no longer freed past any
 * reader, so when none is behind, none ever will be again. Closing the file
 * then gives its disk space back at once instead of when the fill ends:
 * when the disk is full, the sooner failed fills return their space, the
 * fewer of the other running fills fail too.
 */
static void release_spool_file(struct fill *f)
{
    if (!f->sf || f->wstate != W_FAILED)
        return;
    for (const struct fill_reader *r = f->readers; r; r = r->next)
        if (r->pos < f->mem_start)
            return;
    close(f->sf->fd);
    free(f->sf);
    f->sf = NULL;
    f->file_end = 0;
}

static void reclaim(struct fill *f)
{
    uint64_t p = free_point(f, true);
    while (f->head_chunk && f->head_chunk->off + f->head_chunk->len <= p &&
           (f->head_chunk->len == f->head_chunk->cap || f->head_chunk->off + f->head_chunk->len == f->received)) {
        struct chunk *c = f->head_chunk;
        f->head_chunk = c->next;
        if (!f->head_chunk)
            f->tail_chunk = NULL;
        f->mem_bytes -= c->cap;
        f->a->spool_bytes -= c->cap;
        chunk_unref(c);
    }
    f->mem_start = f->head_chunk ? f->head_chunk->off : f->received;
    SL_ASSERT(f->mem_start <= f->received);
    SL_ASSERT(!file_usable(f) || f->mem_start <= f->file_end || f->mem_start == f->received);
    release_spool_file(f);
    resume_paused(f->a);
}

static void append(struct fill *f, const uint8_t *data, size_t len)
{
    while (len > 0) {
        struct chunk *c = f->tail_chunk;
        if (!c || c->len == c->cap) {
            c = sl_malloc(sizeof(*c) + CHUNK_SIZE);
            c->next = NULL;
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
}

/* Memory over this fill's window, or all fills over spool_memory_max. */
static bool over_budget(const struct fill *f, size_t incoming)
{
    const struct sluice_config *cfg = &f->a->cfg;
    return f->mem_bytes + incoming > cfg->fill_buffer_size ||
           f->a->spool_bytes + incoming > cfg->spool_memory_max;
}

/* Over budget: detach a lagging writer, else pause. True = pause. */
static bool must_pause(struct fill *f, size_t incoming)
{
    if (!over_budget(f, incoming))
        return false;
    reclaim(f);
    if (!over_budget(f, incoming))
        return false;
    if ((f->wstate == W_OPENING || f->wstate == W_ACTIVE) && free_point(f, false) > free_point(f, true)) {
        /* Nobody reads this fill (a background refetch, or its clients
         * left): pausing the origin for the writer holds no client (C1).
         * Only for an open writer: each of its writes has a deadline, so
         * the pause is bounded (an open that hangs has none; it gets the
         * lag rule below). */
        if (f->n_readers == 0 && f->wstate == W_ACTIVE)
            return true;
        /* The writer holds the memory. Give it cache_write_lag_max of slack
         * within the global cap (a busy loop or a short disk hiccup must not
         * cost the object); past that it is detached, never waited for. */
        if (f->received + incoming - f->written <= f->a->cfg.cache_write_lag_max &&
            f->a->spool_bytes + incoming <= f->a->cfg.spool_memory_max)
            return false;
        writer_fail(f, WFAIL_LAG);
        reclaim(f);
        if (!over_budget(f, incoming))
            return false;
    }
    /* A fill holding nothing has nothing its readers could free: let it
     * take one chunk rather than wait for other fills. */
    return f->mem_bytes > 0;
}

static void unpause_list_remove(struct fill *f)
{
    if (!f->paused)
        return;
    list_remove(&f->paused_link);
    f->paused = false;
}

static void pause_origin(struct fill *f)
{
    SL_ASSERT(!f->paused);
    f->paused = true;
    list_push_back(&f->a->paused, &f->paused_link);
}

/*
 * Resume paused origins once memory is back under both budgets (with
 * hysteresis, so a fill does not flap between paused and running). Memory
 * freed by any fill can resume another, since the global cap is shared.
 */
static void resume_paused(struct agent *a)
{
    if (list_empty(&a->paused) || a->spool_bytes > a->cfg.spool_memory_max / 4 * 3)
        return;
    struct sl_list *n = a->paused.next;
    while (n != &a->paused) {
        struct fill *f = SL_CONTAINER_OF(n, struct fill, paused_link);
        n = n->next;
        if (f->mem_bytes <= a->cfg.fill_buffer_size / 2) {
            unpause_list_remove(f);
            if (f->xfer)
                origin_resume(f->xfer);
        }
    }
}

/* ------------------------------------------------------------- origin */

static void release_slot(struct fill *f)
{
    if (!f->has_slot)
        return;
    f->has_slot = false;
    slot_release(&f->a->slots, f->route, sl_now_ms() - f->slot_start_ms);
}

/* Leave the origin queue (no client left, or shutdown). */
static void cancel_wait(struct fill *f)
{
    if (!f->queued)
        return;
    f->queued = false;
    slot_cancel(&f->a->slots, &f->wait);
    f->origin_done = true;
    f->origin_result = ORIGIN_ERR_OTHER;
    if (f->head == FILL_HEAD_WAIT)
        f->head = FILL_HEAD_FAILED;
    fill_unref(f);   /* the wait's reference */
}

static void abort_origin(struct fill *f)
{
    cancel_wait(f);
    if (!f->xfer)
        return;
    release_slot(f);
    origin_abort(f->xfer);
    f->xfer = NULL;
    f->origin_done = true;
    f->origin_result = ORIGIN_ERR_OTHER;
    metrics_route(f->a, f->route)->fills_failed++;
    fill_unref(f);
}

/* No readers left: finish in the background, or give up. */
static void maybe_abandon(struct fill *f)
{
    if (f->n_readers > 0 || f->origin_done)
        return;
    if (f->queued) {
        /* Its client went away while waiting: leave the queue at once. */
        cancel_wait(f);
        table_remove(f);
        return;
    }
    bool writer_ok = f->wstate == W_OPENING || f->wstate == W_ACTIVE || f->head == FILL_HEAD_WAIT;
    uint64_t max = f->a->cfg.fill_background_max_size;
    bool small = f->content_length >= 0 ? (uint64_t)f->content_length <= max : f->received <= max;
    if (writer_ok && small)
        return;
    log_info("fill: last client left, aborting origin transfer key=%s", f->key);
    abort_origin(f);
    writer_fail(f, WFAIL_ORIGIN);
    table_remove(f);
    wake_readers(f);
}

static const char *const kept_headers[] = {
    "Content-Type", "Content-Encoding", "Content-Disposition", "Content-Language",
};

static void build_meta(struct fill *f, int status, const struct origin_headers *h)
{
    struct obj_meta *m = &f->meta;
    m->key = sl_strdup(f->key);
    m->status = status;
    m->stored = f->started_wall;
    m->last_modified = f->started_wall;
    const char *etag = NULL;
    for (int i = 0; i < h->n; i++) {
        const char *name = h->h[i].name, *value = h->h[i].value;
        size_t vlen = strlen(value);
        if (!httpx_header_value_ok(value, vlen, 1024))
            continue;   /* hostile or oversized origin header: dropped (C8) */
        if (strcasecmp(name, "ETag") == 0 && value[0] == '"' && vlen >= 2 && value[vlen - 1] == '"')
            etag = value;
        else if (strcasecmp(name, "Last-Modified") == 0) {
            time_t t;
            if (httpx_parse_date(value, vlen, &t) == 0)
                m->last_modified = (int64_t)t;
        } else {
            for (size_t k = 0; k < SL_ARRAY_LEN(kept_headers); k++)
                if (strcasecmp(name, kept_headers[k]) == 0)
                    obj_meta_add_header(m, kept_headers[k], value);
        }
    }
    if (etag) {
        m->etag = sl_strdup(etag);
    } else {
        /* Stable across restarts: derived from the key and the fill start. */
        char hex[KEY_HEX_LEN + 1], buf[64];
        key_hex(f->hash, hex);
        snprintf(buf, sizeof(buf), "\"sl-%.16s-%llx\"", hex, (unsigned long long)f->started_wall);
        m->etag = sl_strdup(buf);
    }
}

static void on_origin_headers(void *ctx, int status, const struct origin_headers *h)
{
    struct fill *f = ctx;
    struct agent *a = f->a;
    build_meta(f, status, h);
    f->content_length = h->content_length;
    f->head = FILL_HEAD_READY;
    bool cacheable = status == 200 &&
                     (h->content_length < 0 || (uint64_t)h->content_length <= a->cfg.object_max_size);
    if (cacheable) {
        f->wstate = W_OPENING;
        workers_submit(a->workers, open_work, open_done, job_new(f));
    } else {
        metrics_route(a, f->route)->fills_not_cacheable++;
    }
    wake_readers(f);
    maybe_abandon(f);
}

static size_t on_origin_data(void *ctx, const uint8_t *data, size_t len)
{
    struct fill *f = ctx;
    if (must_pause(f, len)) {
        pause_origin(f);
        return ORIGIN_PAUSE;
    }
    append(f, data, len);
    if (f->received > f->a->cfg.object_max_size)
        writer_fail(f, WFAIL_TOO_LARGE);
    writer_pump(f);
    wake_readers(f);
    if (f->n_readers == 0)
        maybe_abandon(f);
    return len;
}

/*
 * A complete body whose writer was detached for lagging (a fast origin, a
 * busy machine) is fetched once more in the background, with nobody
 * attached, so must_pause paces that origin by the writer and the object
 * gets stored: otherwise every later request would be a miss that lags the
 * same way. It is one more origin fetch for the key, one at a time (C5),
 * never for a refetch itself, and it takes an origin slot like any fill.
 * One refetch runs at a time, and none while the disk has failed a write
 * in the last minute: writers that lag because a full disk makes every
 * fill fail at once must not turn into a second round of origin fetches.
 */
#define REFETCH_DISK_QUIET_MS (60 * 1000)

static void refetch_after_lag(struct fill *f)
{
    struct agent *a = f->a;
    if (f->wstate != W_FAILED || f->wfail != WFAIL_LAG || f->refetch ||
        f->received > a->cfg.cache_refetch_max_size || fill_find(a, f->hash) || a->refetches_running > 0 ||
        (a->storage_error_ms && sl_now_ms() - a->storage_error_ms < REFETCH_DISK_QUIET_MS))
        return;
    struct fill *g = fill_start(a, f->route, f->key, f->hash, f->url);
    if (!g)
        return;   /* no origin slot now: the next request fills as usual */
    g->refetch = true;
    a->refetches_running++;
    a->m.refetches++;
    log_info("fill: refetching key=%s in the background, paced by the cache writer", f->key);
}

static void on_origin_done(void *ctx, enum origin_result res, const char *detail)
{
    struct fill *f = ctx;
    struct agent *a = f->a;
    f->xfer = NULL;
    release_slot(f);
    f->origin_done = true;
    f->origin_result = res;
    sl_strlcpy(f->origin_detail, detail ? detail : "", sizeof(f->origin_detail));
    if (f->head == FILL_HEAD_WAIT && res != ORIGIN_OK)
        f->head = FILL_HEAD_FAILED;
    if (!body_complete(f)) {
        if (res == ORIGIN_OK)
            f->origin_result = ORIGIN_ERR_TRUNCATED;
        metrics_route(a, f->route)->fills_failed++;
        log_warn("fill: origin failed (%s%s%s) key=%s after %llu bytes", origin_result_name(f->origin_result),
                 detail && *detail ? ": " : "", detail ? detail : "", f->key, (unsigned long long)f->received);
        writer_fail(f, WFAIL_ORIGIN);
        table_remove(f);
    } else if (f->wstate == W_NONE || f->wstate == W_FAILED) {
        table_remove(f);   /* nothing will be committed */
        refetch_after_lag(f);
    } else {
        writer_pump(f);
    }
    wake_readers(f);
    fill_unref(f);   /* the transfer's reference */
}

static const struct origin_callbacks fill_origin_cb = {
    .on_headers = on_origin_headers,
    .on_data = on_origin_data,
    .on_done = on_origin_done,
};

/* ---------------------------------------------------------------- API */

static void start_transfer(struct fill *f)
{
    f->has_slot = true;
    f->slot_start_ms = sl_now_ms();
    f->xfer = origin_fetch(f->a->origins, f->route, f->url, &fill_origin_cb, f);
}

static void on_slot_granted(void *ctx)
{
    struct fill *f = ctx;
    f->queued = false;
    start_transfer(f);   /* the wait's reference becomes the transfer's */
}

static void on_slot_expired(void *ctx)
{
    struct fill *f = ctx;
    f->queued = false;
    f->origin_done = true;
    f->origin_result = ORIGIN_ERR_OTHER;
    f->head = FILL_HEAD_BUSY;
    f->retry_after = slots_retry_after(&f->a->slots, f->route);
    table_remove(f);
    wake_readers(f);
    fill_unref(f);
}

void fill_retire(struct fill *f)
{
    table_remove(f);
}

struct fill *fill_start(struct agent *a, const struct route *route, const char *key,
                        const uint8_t hash[KEY_HASH_LEN], const char *url)
{
    SL_ASSERT(!fill_find(a, hash));
    struct fill *f = sl_calloc(1, sizeof(*f));
    enum slot_result sr = slot_acquire(&a->slots, route, &f->wait, on_slot_granted, on_slot_expired, f);
    if (sr == SLOT_REJECTED) {
        free(f);
        return NULL;
    }
    f->a = a;
    memcpy(f->hash, hash, KEY_HASH_LEN);
    f->key = sl_strdup(key);
    f->url = sl_strdup(url);
    f->route = route;
    f->started_wall = sl_wall_s();
    f->content_length = -1;
    f->temp.fd = -1;
    f->head = FILL_HEAD_WAIT;
    ev_init(&f->wtimer, on_write_deadline);
    f->wtimer.data = f;
    f->refs = 2;   /* the table, and the transfer or the queue wait that precedes it */
    unsigned b = table_bucket(hash);
    f->table_next = a->fills[b];
    a->fills[b] = f;
    f->in_table = true;
    a->m.fills_in_flight++;
    if (sr == SLOT_GRANTED)
        start_transfer(f);
    else
        f->queued = true;
    return f;
}

bool fill_attach(struct fill *f, struct fill_reader *r, void (*wake)(void *ctx), void *ctx)
{
    if (f->mem_start > 0 && !(f->sf && f->file_end >= f->mem_start))
        return false;
    r->fill = f;
    r->pos = 0;
    r->wake = wake;
    r->ctx = ctx;
    r->prev = NULL;
    r->next = f->readers;
    if (f->readers)
        f->readers->prev = r;
    f->readers = r;
    f->n_readers++;
    f->a->m.followers_attached++;
    fill_ref(f);
    return true;
}

void fill_detach(struct fill_reader *r)
{
    struct fill *f = r->fill;
    if (!f)
        return;
    if (r->prev)
        r->prev->next = r->next;
    else
        f->readers = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->fill = NULL;
    f->n_readers--;
    f->a->m.followers_attached--;
    reclaim(f);
    maybe_abandon(f);
    fill_unref(f);
}

enum fill_head_state fill_head_state(const struct fill *f)
{
    return f->head;
}

const struct obj_meta *fill_meta(const struct fill *f)
{
    SL_ASSERT(f->head == FILL_HEAD_READY);
    return &f->meta;
}

enum origin_result fill_failure(const struct fill *f, const char **detail)
{
    SL_ASSERT(f->head == FILL_HEAD_FAILED);
    *detail = f->origin_detail;
    return f->origin_result;
}

int fill_retry_after(const struct fill *f)
{
    return f->retry_after;
}

int64_t fill_content_length(const struct fill *f)
{
    return f->content_length;
}

bool fill_is_storing(const struct fill *f)
{
    return f->wstate == W_OPENING || f->wstate == W_ACTIVE || f->wstate == W_COMMITTING ||
           f->wstate == W_COMMITTED;
}

enum http_body_result fill_read(struct fill_reader *r, struct http_piece *out)
{
    struct fill *f = r->fill;
    SL_ASSERT(f && r->pos <= f->received);
    if (r->pos < f->mem_start) {
        SL_ASSERT(f->sf && f->file_end > r->pos);
        uint64_t end = SL_MIN(f->mem_start, f->file_end);
        out->data = NULL;
        out->fd = f->sf->fd;
        out->file_off = OBJ_HEADER_SIZE + r->pos;
        out->len = (size_t)SL_MIN(end - r->pos, (uint64_t)1 << 30);
        return HTTP_PIECE_DATA;
    }
    if (r->pos < f->received) {
        const struct chunk *c = chunk_at(f, r->pos);
        SL_ASSERT(c != NULL);
        out->data = c->data + (r->pos - c->off);
        out->len = (size_t)(c->off + c->len - r->pos);
        return HTTP_PIECE_DATA;
    }
    if (!f->origin_done)
        return HTTP_PIECE_WAIT;
    return body_complete(f) ? HTTP_PIECE_END : HTTP_PIECE_ERROR;
}

void fill_consumed(struct fill_reader *r, size_t n)
{
    struct fill *f = r->fill;
    r->pos += n;
    SL_ASSERT(r->pos <= f->received);
    metrics_route(f->a, f->route)->bytes_fill += n;
    reclaim(f);
}

void fill_abort_all(struct agent *a)
{
    for (int b = 0; b < FILL_TABLE_BUCKETS; b++) {
        while (a->fills[b]) {
            struct fill *f = a->fills[b];
            fill_ref(f);
            abort_origin(f);
            writer_fail(f, WFAIL_ORIGIN);
            table_remove(f);
            wake_readers(f);
            fill_unref(f);
        }
    }
}
