/*
 * writer.c - the cache writer of a fill: the least important reader of its
 * spool (see fill.h).
 *
 * It opens a temp file on the worker pool, writes what the spool received
 * in large batches (one write in flight, at the body's final offset, under
 * cache_write_timeout), and commits when the body is complete: the last
 * bytes, header block, fsync, rename (one worker job), then the index. Any failure - ENOSPC, EDQUOT, EIO,
 * a short write, a missed deadline, lagging past cache_write_lag_max -
 * detaches it (writer_fail): the temp file is unlinked at once, nothing is
 * committed, and the readers never notice (C1, C2). Its temp file doubles
 * as the spool file readers behind the memory window read from.
 *
 * Every job holds a reference on the fill, and a write job on each chunk it
 * writes, so nothing a worker uses is freed under it.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "core/common.h"
#include "core/log.h"
#include "core/workers.h"
#include "fill/fill_impl.h"
#include "store/cache.h"

#define FILL_JOB_MAGIC 0x464a4f42u   /* "FJOB" */

struct fill_job {
    unsigned magic;
    struct fill *f;
    int rc;
    int object_fd;                     /* commit: the committed object, read-only */
    struct spool_pieces pieces;        /* write: the bytes */
    uint64_t off;
};

static struct fill_job *job_of(void *arg)
{
    struct fill_job *j = arg;
    SL_CHECK_OBJ(j, FILL_JOB_MAGIC);
    return j;
}

static struct fill_job *job_new(struct fill *f)
{
    struct fill_job *j = sl_calloc(1, sizeof(*j));
    j->magic = FILL_JOB_MAGIC;
    j->f = f;
    fill_ref(f);
    return j;
}

static void job_done_common(struct fill_job *j)
{
    struct fill *f = j->f;
    spool_give_back(&j->pieces);
    j->magic = 0;
    free(j);
    fill_unref(f);
}

bool writer_attached(const struct fill *f)
{
    return f->wstate == W_OPENING || f->wstate == W_ACTIVE;
}

bool writer_file_usable(const struct fill *f)
{
    return f->sf && (f->wstate == W_ACTIVE || f->wstate == W_COMMITTING || f->wstate == W_COMMITTED);
}

static void unlink_work(void *arg)
{
    struct fill_job *j = job_of(arg);
    store_temp_unlink(&j->f->a->store, &j->f->temp);
}

static void unlink_done(void *arg)
{
    job_done_common(arg);
}

/* The writer is over without a commit: counted, and remembered when the
 * disk itself failed (see refetch_after_lag). */
static void writer_failed(struct fill *f, enum write_fail_reason why)
{
    struct agent *a = f->a;
    f->wstate = W_FAILED;
    f->wfail = why;
    if (why == WFAIL_ENOSPC || why == WFAIL_EDQUOT || why == WFAIL_EIO || why == WFAIL_SHORT ||
        why == WFAIL_TIMEOUT)
        a->storage_error_ms = sl_now_ms();
    a->m.write_failures[why]++;
    a->m.writers_detached++;
}

/* Detach the writer: the object will not be stored, readers carry on. */
void writer_fail(struct fill *f, enum write_fail_reason why)
{
    if (f->wstate != W_OPENING && f->wstate != W_ACTIVE)
        return;
    struct agent *a = f->a;
    bool was_opening = f->wstate == W_OPENING;
    writer_failed(f, why);
    ev_timer_stop(a->loop, &f->wtimer);
    if (why != WFAIL_ORIGIN && why != WFAIL_INVALID && why != WFAIL_INTEGRITY &&
        why != WFAIL_PURGED)   /* they say why themselves */
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
    spool_reclaim(f);
    /* Detached after the origin finished (a lagging write that failed or
     * hit its deadline): nothing will ever be committed, so the fill leaves
     * the table now and the next request starts a fresh, storing fill.
     * Left in, it would shadow the key: later requests would follow a fill
     * that can never store the object, and it would count as in flight
     * forever. Every caller holds its own reference. */
    if (f->origin_done)
        fill_table_remove(f);
    /* A body waiting for Go's h1 over the spool file goes unverified now. */
    if (verify_when_written(f))
        fill_wake_readers(f);
}

static void open_work(void *arg)
{
    struct fill_job *j = job_of(arg);
    j->rc = store_temp_create(&j->f->a->store, j->f->hash, &j->f->temp);
}

static void open_done(void *arg)
{
    struct fill_job *j = job_of(arg);
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
    struct fill_job *j = job_of(arg);
    j->rc = store_temp_writev(&j->f->temp, j->pieces.iov, j->pieces.n, j->off);
}

static void write_done(void *arg)
{
    struct fill_job *j = job_of(arg);
    struct fill *f = j->f;
    f->wbusy = false;
    if (f->wstate != W_ACTIVE) {
        store_temp_close(&f->temp);  /* detached while this write ran */
    } else if (j->rc < 0) {
        enum write_fail_reason why = write_fail_reason_from_errno(-j->rc);
        writer_fail(f, why);
    } else {
        f->written += j->pieces.len;
        f->file_end = f->written;
        spool_check(f);
        ev_timer_stop(f->a->loop, &f->wtimer);
        writer_pump(f);
    }
    spool_reclaim(f);
    fill_wake_readers(f);
    job_done_common(j);
}

/* The body's last bytes (when the job carries them), then the commit: one
 * trip to a worker between the last byte and the index, not two. */
static void commit_work(void *arg)
{
    struct fill_job *j = job_of(arg);
    struct store *st = &j->f->a->store;
    j->rc = j->pieces.n > 0 ? store_temp_writev(&j->f->temp, j->pieces.iov, j->pieces.n, j->off) : 0;
    if (j->rc == 0) {
        j->rc = store_temp_commit(st, &j->f->temp, j->f->hash, &j->f->meta);
    } else {
        store_temp_unlink(st, &j->f->temp);
        store_temp_close(&j->f->temp);
    }
    j->object_fd = -1;
    if (j->rc == 0 && j->f->a->n_tiers > 0)   /* constant after start: safe to read here */
        j->object_fd = store_object_open(&j->f->a->store, j->f->hash);
}

/* A purge arrived while the commit ran: the object just renamed into
 * place is removed again, never indexed (nothing else indexes it: the
 * fill left the table when it was purged). */
static void purged_unlink_work(void *arg)
{
    struct fill_job *j = job_of(arg);
    store_remove_object(&j->f->a->store, j->f->hash);
}

static void commit_done(void *arg)
{
    struct fill_job *j = job_of(arg);
    struct fill *f = j->f;
    struct agent *a = f->a;
    f->wbusy = false;
    ev_timer_stop(a->loop, &f->wtimer);
    if (j->rc == 0) {
        f->written += j->pieces.len;   /* the tail it wrote: the file is whole */
        f->file_end = f->written;
        SL_ASSERT(f->written == f->received);
    }
    if (j->rc < 0) {
        writer_failed(f, write_fail_reason_from_errno(-j->rc));   /* its last write, header, fsync or rename */
        log_warn("fill: commit failed key=%s: %s", f->key, strerror(-j->rc));
    } else if (f->purged) {
        /* Stays W_COMMITTED: readers behind the memory window read the
         * spool file, which stays readable through its descriptor. */
        f->wstate = W_COMMITTED;
        if (j->object_fd >= 0)
            close(j->object_fd);
        workers_submit(a->workers, purged_unlink_work, unlink_done, job_new(f));
    } else {
        f->wstate = W_COMMITTED;
        metrics_route(a, f->route)->fills_committed++;
        metrics_commit_window(&a->m, ev_time() - f->body_end_time);
        SL_ASSERT(f->meta.size == f->received);
        /* an L2 hit is not copied back to where it was read */
        cache_committed(a, f->hash, f->key, &f->meta, j->object_fd, f->from_tier ? f->tier_idx : -1);
    }
    fill_table_remove(f);
    spool_reclaim(f);
    fill_wake_readers(f);
    job_done_common(j);
}

static void on_write_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    SL_UNUSED(loop);
    SL_UNUSED(revents);
    struct fill *f = w->data;
    SL_CHECK_OBJ(f, FILL_MAGIC);
    if (f->wbusy && f->wstate == W_ACTIVE)
        writer_fail(f, WFAIL_TIMEOUT);
    fill_wake_readers(f);
}

static void arm_write_deadline(struct fill *f)
{
    f->wop_start_ms = sl_now_ms();
    ev_timer_stop(f->a->loop, &f->wtimer);
    ev_timer_set(&f->wtimer, (double)f->a->cfg.cache_write_timeout / 1000.0, 0.);
    ev_timer_start(f->a->loop, &f->wtimer);
}

static bool commit_ready(const struct fill *f)
{
    return fill_body_complete(f) && verify_settled(f);
}

/* Commit (job j carries the unwritten tail of the body, if any). The
 * tail stays in memory meanwhile (free_point): a follower joining now
 * reads the file up to `written`, then memory. */
static void start_commit(struct fill *f, struct fill_job *j)
{
    f->wstate = W_COMMITTING;
    f->meta.size = f->received;
    if (!f->from_tier || f->meta.stored <= 0)   /* a tier's copy keeps when the origin sent it (freshness) */
        f->meta.stored = sl_wall_s();
    f->wbusy = true;
    arm_write_deadline(f);
    workers_submit(f->a->workers, commit_work, commit_done, j);
}

void writer_pump(struct fill *f)
{
    if (f->wstate != W_ACTIVE || f->wbusy)
        return;
    if (f->written < f->received) {
        /* The job holds references on the chunks it writes, so a write in
         * flight - however long it hangs - never pins spool memory:
         * detaching a slow writer (deadline, lag) releases the spool at once
         * and the origin is never paused for it (C1). It covers only bytes
         * already received; the loop may append past them meanwhile. */
        struct fill_job *j = job_new(f);
        j->off = f->written;
        size_t n = spool_take(f, f->written, &j->pieces, WRITE_MAX);   /* memory is never freed past `written` */
        if (commit_ready(f) && f->written + n == f->received) {
            start_commit(f, j);   /* the last write and the commit in one job */
            return;
        }
        f->wbusy = true;
        arm_write_deadline(f);
        workers_submit(f->a->workers, write_work, write_done, j);
        return;
    }
    verify_when_written(f);   /* Go's h1 hashes the written body */
    if (commit_ready(f))
        start_commit(f, job_new(f));
}

void writer_init(struct fill *f)
{
    f->temp.fd = -1;
    ev_init(&f->wtimer, on_write_deadline);
    f->wtimer.data = f;
}

void writer_open(struct fill *f)
{
    SL_ASSERT(f->wstate == W_NONE);
    f->wstate = W_OPENING;
    workers_submit(f->a->workers, open_work, open_done, job_new(f));
}
