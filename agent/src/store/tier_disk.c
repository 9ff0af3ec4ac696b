/*
 * tier_disk.c - a tier that keeps objects in a directory with the disk
 * cache's own layout and format (store.h, objfile.h): a second disk, or a
 * directory that several edges share (see tier.h).
 *
 * Every file operation runs on the worker pool; the loop only hands over
 * buffers and reports. A read opens and validates the object (key, header,
 * length) on a worker, then reads it piece by piece, one worker job at a
 * time, into a buffer it owns. A write copies a committed object into a
 * temp file of this directory and renames it into place (store_temp_*), so
 * a reader sees the old object or the new one, never a part.
 *
 * Invariants: at most one worker job per read or write is in flight, and
 * its handle is freed only when no job holds it (an abort during a job
 * marks the handle dead; the job's done frees it); `pending` counts
 * handles not freed yet. Destroying the tier while an aborted read's job
 * still runs defers the free to that job's end (the worker pool runs every
 * done callback before it stops).
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "core/common.h"
#include "core/workers.h"
#include "store/fault.h"
#include "store/store.h"
#include "store/tier.h"

#define DISK_READ_MAGIC 0x444b5244u    /* "DKRD" */
#define DISK_WRITE_MAGIC 0x444b5752u   /* "DKWR" */
#define PIECE (256 * 1024)
#define COPY_BUF (1024 * 1024)

struct disk_tier {
    struct tier base;         /* first: the interface hands out &base */
    struct ev_loop *loop;
    struct worker_pool *workers;
    struct store store;
    int pending;
    bool destroying;          /* destroy called; freed when pending is 0 */
};

struct disk_read {
    struct tier_read base;    /* first */
    unsigned magic;
    struct disk_tier *t;
    struct tier_read_cb cb;
    void *ctx;
    char *key;
    uint8_t hash[KEY_HASH_LEN];
    int fd;
    struct obj_meta meta;
    enum store_open_result open_rc;
    uint64_t pos;             /* body bytes delivered */
    uint8_t *buf;             /* the piece read last */
    ssize_t got;              /* its length, or -errno */
    bool busy;                /* a worker job holds the handle */
    bool paused, dead, in_callback;
};

struct disk_write {
    unsigned magic;
    struct disk_tier *t;
    char *key;
    uint8_t hash[KEY_HASH_LEN];
    int fd;
    int rc;
    void (*done)(void *ctx, int rc);
    void *ctx;
};

/* ------------------------------------------------------------ reading */

static void tier_free(struct disk_tier *t)
{
    store_close(&t->store);
    free(t);
}

/* A handle is gone: the last one of a destroyed tier frees the tier. */
static void handle_gone(struct disk_tier *t)
{
    SL_ASSERT(t->pending > 0);
    if (--t->pending == 0 && t->destroying)
        tier_free(t);
}

static void read_free(struct disk_read *r)
{
    SL_ASSERT(!r->busy);
    if (r->fd >= 0)
        close(r->fd);
    obj_meta_free(&r->meta);
    struct disk_tier *t = r->t;
    r->magic = 0;
    free(r->buf);
    free(r->key);
    free(r);
    handle_gone(t);
}

static void read_next(struct disk_read *r);

static void piece_work(void *arg)
{
    struct disk_read *r = arg;
    size_t n = (size_t)SL_MIN(r->meta.size - r->pos, (uint64_t)PIECE);
    r->got = pread(r->fd, r->buf, n, (off_t)(OBJ_HEADER_SIZE + r->pos));
    if (r->got < 0)
        r->got = -errno;
}

/* Deliver the piece in buf; false when the read ended or paused. */
static bool deliver(struct disk_read *r)
{
    size_t want = (size_t)SL_MIN(r->meta.size - r->pos, (uint64_t)PIECE);
    r->in_callback = true;
    if (r->got != (ssize_t)want) {
        r->cb.on_done(r->ctx, TIER_ERROR, r->got < 0 ? strerror((int)-r->got) : "object shorter than its header says");
        r->dead = true;
    } else if (r->cb.on_data(r->ctx, r->buf, want) == TIER_PAUSE) {
        r->paused = true;
    } else {
        r->pos += want;
    }
    r->in_callback = false;
    return !r->dead && !r->paused;
}

static void piece_done(void *arg)
{
    struct disk_read *r = arg;
    SL_CHECK_OBJ(r, DISK_READ_MAGIC);
    r->busy = false;
    if (r->dead) {
        read_free(r);
        return;
    }
    if (deliver(r))
        read_next(r);
    else if (r->dead)
        read_free(r);
}

/* The next piece, or the end. */
static void read_next(struct disk_read *r)
{
    if (r->pos < r->meta.size) {
        r->busy = true;
        workers_submit(r->t->workers, piece_work, piece_done, r);
        return;
    }
    r->in_callback = true;
    r->cb.on_done(r->ctx, TIER_OK, "");
    r->in_callback = false;
    read_free(r);
}

static void open_work(void *arg)
{
    struct disk_read *r = arg;
    struct stat st;
    r->open_rc = store_open_object(&r->t->store, r->hash, r->key, &r->fd, &r->meta, &st, NULL);
#ifdef SLUICE_TESTING
    int64_t delay = fault_tier_read_delay_ms();   /* a slow L2 (fault.h): opened, no head yet */
    if (delay > 0)
        fault_sleep_ms(delay);
#endif
}

static void open_done(void *arg)
{
    struct disk_read *r = arg;
    SL_CHECK_OBJ(r, DISK_READ_MAGIC);
    r->busy = false;
    if (!r->dead && r->open_rc != STORE_OPEN_OK) {
        bool missing = r->open_rc == STORE_OPEN_MISSING;
        r->cb.on_done(r->ctx, missing ? TIER_MISS : TIER_ERROR, missing ? "no such object" : "unusable object");
        r->dead = true;
    }
    if (!r->dead) {
        r->in_callback = true;
        r->cb.on_meta(r->ctx, &r->meta);
        r->in_callback = false;
    }
    if (r->dead)
        read_free(r);
    else
        read_next(r);
}

static struct tier_read *disk_read(struct tier *tier, const char *key, const uint8_t hash[KEY_HASH_LEN],
                                   const struct tier_read_cb *cb, void *ctx)
{
    struct disk_tier *t = (struct disk_tier *)tier;
    struct disk_read *r = sl_calloc(1, sizeof(*r));
    r->base.tier = tier;
    r->magic = DISK_READ_MAGIC;
    r->t = t;
    r->cb = *cb;
    r->ctx = ctx;
    r->key = sl_strdup(key);
    memcpy(r->hash, hash, KEY_HASH_LEN);
    r->fd = -1;
    r->buf = sl_malloc(PIECE);
    r->busy = true;
    t->pending++;
    workers_submit(t->workers, open_work, open_done, r);
    return &r->base;
}

static void disk_read_resume(struct tier_read *base)
{
    struct disk_read *r = (struct disk_read *)base;
    SL_CHECK_OBJ(r, DISK_READ_MAGIC);
    if (!r->paused || r->dead || r->in_callback)
        return;
    r->paused = false;
    if (deliver(r))
        read_next(r);
    else if (r->dead)
        read_free(r);
}

static void disk_read_abort(struct tier_read *base)
{
    struct disk_read *r = (struct disk_read *)base;
    SL_CHECK_OBJ(r, DISK_READ_MAGIC);
    if (r->busy || r->in_callback)
        r->dead = true;   /* freed when the job or the callback returns */
    else
        read_free(r);
}

/* ------------------------------------------------------------ writing */

/* Copy the committed object in w->fd into a temp file, then commit it. */
static void write_work(void *arg)
{
    struct disk_write *w = arg;
    uint8_t block[OBJ_HEADER_SIZE];
    struct obj_meta meta = { 0 };
    struct store_temp tmp = { .fd = -1 };
    char err[128];
#ifdef SLUICE_TESTING
    int64_t delay = fault_tier_write_delay_ms();   /* a slow upload (fault.h) */
    if (delay > 0)
        fault_sleep_ms(delay);
#endif
    if (pread(w->fd, block, sizeof(block), 0) != (ssize_t)sizeof(block) ||
        obj_header_decode(block, sizeof(block), &meta, err, sizeof(err)) != 0 || strcmp(meta.key, w->key) != 0) {
        w->rc = -EINVAL;
    } else if ((w->rc = store_temp_create(&w->t->store, w->hash, &tmp)) == 0) {
        uint8_t *buf = sl_malloc(COPY_BUF);
        for (uint64_t off = 0; w->rc == 0 && off < meta.size;) {
            ssize_t n = pread(w->fd, buf, (size_t)SL_MIN(meta.size - off, (uint64_t)COPY_BUF),
                              (off_t)(OBJ_HEADER_SIZE + off));
            struct iovec v = { buf, n > 0 ? (size_t)n : 0 };
            w->rc = n <= 0 ? -EIO : store_temp_writev(&tmp, &v, 1, off);
            off += n > 0 ? (uint64_t)n : 0;
        }
        free(buf);
        w->rc = w->rc == 0 ? store_temp_commit(&w->t->store, &tmp, w->hash, &meta) : w->rc;
        if (w->rc != 0)
            store_temp_unlink(&w->t->store, &tmp);
        store_temp_close(&tmp);
    }
    obj_meta_free(&meta);
    close(w->fd);
}

static void write_done(void *arg)
{
    struct disk_write *w = arg;
    SL_CHECK_OBJ(w, DISK_WRITE_MAGIC);
    struct disk_tier *t = w->t;
    w->done(w->ctx, w->rc);
    w->magic = 0;
    free(w->key);
    free(w);
    handle_gone(t);
}

static void disk_write(struct tier *tier, const char *key, const uint8_t hash[KEY_HASH_LEN], int fd,
                       void (*done)(void *ctx, int rc), void *ctx)
{
    struct disk_tier *t = (struct disk_tier *)tier;
    struct disk_write *w = sl_calloc(1, sizeof(*w));
    w->magic = DISK_WRITE_MAGIC;
    w->t = t;
    w->key = sl_strdup(key);
    memcpy(w->hash, hash, KEY_HASH_LEN);
    w->fd = fd;
    w->done = done;
    w->ctx = ctx;
    t->pending++;
    workers_submit(t->workers, write_work, write_done, w);
}

/* ------------------------------------------------------------ the tier */

static void disk_destroy(struct tier *tier)
{
    struct disk_tier *t = (struct disk_tier *)tier;
    SL_ASSERT(!t->destroying);
    t->destroying = true;
    if (t->pending == 0)
        tier_free(t);
}

static const struct tier_ops disk_ops = {
    .kind = "disk",
    .read = disk_read,
    .read_resume = disk_read_resume,
    .read_abort = disk_read_abort,
    .write = disk_write,
    .destroy = disk_destroy,
};

struct tier *tier_disk_new(struct ev_loop *loop, struct worker_pool *workers, const char *dir, char *err,
                           size_t errlen)
{
    struct disk_tier *t = sl_calloc(1, sizeof(*t));
    if (store_init(&t->store, dir, err, errlen) != 0) {
        free(t);
        return NULL;
    }
    t->base.ops = &disk_ops;
    sl_strlcpy(t->base.name, "disk", sizeof(t->base.name));
    t->loop = loop;
    t->workers = workers;
    return &t->base;
}
