/*
 * cache.c - committed objects: hit validation, stale entries, eviction and
 * the start-up scan (see cache.h).
 *
 * The index is loop-owned; everything that touches the disk beyond the one
 * open+pread+fstat of a hit runs on the worker pool and reports back.
 */
#include "store/cache.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/common.h"
#include "core/log.h"
#include "core/workers.h"
#include "serve/rwcache.h"
#include "store/l2.h"

/* ---------------------------------------------------------------- hits */

#define UNLINK_JOB_MAGIC 0x554e4c4bu   /* "UNLK" */
#define SCAN_JOB_MAGIC 0x5343414eu     /* "SCAN" */

struct unlink_job {
    unsigned magic;
    struct agent *a;
    int n;
    uint8_t (*hashes)[KEY_HASH_LEN];
    int64_t free_after;       /* filled by the worker: fs free bytes */
    bool first;               /* the batch that only checked the size limit */
};

static void unlink_work(void *arg)
{
    struct unlink_job *j = arg;
    SL_CHECK_OBJ(j, UNLINK_JOB_MAGIC);
    for (int i = 0; i < j->n; i++)
        store_remove_object(&j->a->store, j->hashes[i]);
    j->free_after = store_fs_free(&j->a->store);
}

static void evict(struct agent *a, uint64_t extra);

static void unlink_done(void *arg)
{
    struct unlink_job *j = arg;
    SL_CHECK_OBJ(j, UNLINK_JOB_MAGIC);
    struct agent *a = j->a;
    a->evicting = false;
    int64_t min_free = (int64_t)a->cfg.cache_min_free;
    bool below = j->free_after >= 0 && j->free_after < min_free;
    int removed = j->n;
    int64_t free_after = j->free_after;
    bool first = j->first;
    free(j->hashes);
    j->magic = 0;
    free(j);
    /* Keep freeing space while that helps; stop when nothing was removable. */
    if (a->stopping)
        return;
    if (a->index.total_bytes > a->cfg.cache_max_size)
        evict(a, 0);   /* commits arrived while this batch ran */
    else if (below && (removed > 0 || first) && a->index.count > 0)
        evict(a, (uint64_t)(min_free - free_after));
}

static void submit_unlinks(struct agent *a, uint8_t (*hashes)[KEY_HASH_LEN], int n)
{
    struct unlink_job *j = sl_calloc(1, sizeof(*j));
    j->magic = UNLINK_JOB_MAGIC;
    j->a = a;
    j->n = n;
    j->hashes = hashes;
    workers_submit(a->workers, unlink_work, unlink_done, j);
}

static bool same_file(const struct stat *x, const struct stat *y)
{
    return x->st_dev == y->st_dev && x->st_ino == y->st_ino && x->st_size == y->st_size &&
           x->st_mtim.tv_sec == y->st_mtim.tv_sec && x->st_mtim.tv_nsec == y->st_mtim.tv_nsec &&
           x->st_ctim.tv_sec == y->st_ctim.tv_sec && x->st_ctim.tv_nsec == y->st_ctim.tv_nsec;
}

/*
 * The cached open file is still the validated object: linked, same inode,
 * same size, not written since. Anything else (deleted, replaced, truncated,
 * overwritten) sends the hit through full validation again.
 */
static bool open_file_still_valid(const struct index_entry *e)
{
    struct stat st;
    return fstat(e->fd, &st) == 0 && st.st_nlink > 0 && same_file(&st, &e->st);
}

static void keep_open(struct agent *a, struct index_entry *e, struct cache_hit *h)
{
    struct obj_meta *m = sl_malloc(sizeof(*m));
    *m = h->own_meta;
    memset(&h->own_meta, 0, sizeof(h->own_meta));
    index_fd_attach(&a->index, e, h->fd, m, &h->st);
    h->meta = m;
    h->owned = false;
    if (m->size <= CACHE_SMALL_BODY_MAX && m->size > 0) {
        /* Small objects also keep their body: a hit is then one send. */
        uint8_t *body = sl_malloc((size_t)m->size);
        if (pread(h->fd, body, (size_t)m->size, OBJ_HEADER_SIZE) == (ssize_t)m->size)
            e->body = body;
        else
            free(body);
        h->body = e->body;
    }
    while (a->index.open_files > (size_t)a->cfg.open_file_cache_size) {
        struct index_entry *old = index_fd_oldest_unpinned(&a->index);
        if (!old)
            break;
        index_fd_release(&a->index, old);
    }
}

bool cache_open_hit(struct agent *a, struct index_entry *e, const char *key, struct cache_hit *h)
{
    memset(h, 0, sizeof(*h));
    h->e = e;
    if (e->fd >= 0) {
        if (open_file_still_valid(e)) {
            e->pins++;
            index_touch(&a->index, e);
            h->fd = e->fd;
            h->meta = e->meta;
            h->body = e->body;
            h->st = e->st;
            return true;
        }
        if (e->pins == 0)
            index_fd_release(&a->index, e);
    }
    const char *why = NULL;
    enum store_open_result r = store_open_object(&a->store, e->hash, key, &h->fd, &h->own_meta, &h->st, &why);
    if (r == STORE_OPEN_OK) {
        e->pins++;
        index_touch(&a->index, e);
        h->owned = true;
        h->meta = &h->own_meta;
        if (e->fd < 0 && a->cfg.open_file_cache_size > 0)
            keep_open(a, e, h);
        return true;
    }
    a->m.stale_index_dropped++;
    log_warn("cache: index entry without a usable object (%s), serving as a miss: %s", why, key);
    if (e->pins == 0) {
        if (r == STORE_OPEN_CORRUPT) {
            uint8_t (*doomed)[KEY_HASH_LEN] = sl_malloc(KEY_HASH_LEN);
            memcpy(doomed[0], e->hash, KEY_HASH_LEN);
            submit_unlinks(a, doomed, 1);
        }
        rwcache_drop(&a->rwcache, e->hash);
        index_remove(&a->index, e);
    }
    return false;
}

void cache_release_hit(struct agent *a, struct cache_hit *h)
{
    SL_ASSERT(h->e && h->e->pins > 0);
    h->e->pins--;
    if (h->owned) {
        close(h->fd);
        obj_meta_free(&h->own_meta);
    }
    if (h->e->purged && h->e->pins == 0)
        index_remove(&a->index, h->e);   /* the last response of a purged object */
    h->e = NULL;
}

/* ------------------------------------------------------------ eviction */

bool cache_validators(struct agent *a, struct index_entry *e, const char *key, char **etag, int64_t *last_modified)
{
    struct cache_hit h;
    if (!cache_open_hit(a, e, key, &h))
        return false;
    *etag = h.meta->origin_etag ? sl_strdup(h.meta->origin_etag) : NULL;
    *last_modified = h.meta->origin_last_modified;
    cache_release_hit(a, &h);
    return true;
}

bool cache_forget(struct agent *a, const uint8_t hash[KEY_HASH_LEN])
{
    struct index_entry *e = index_lookup(&a->index, hash);
    rwcache_drop(&a->rwcache, hash);
    if (e)
        index_forget(&a->index, e);
    return e != NULL;
}

void cache_revalidated(struct agent *a, const uint8_t hash[KEY_HASH_LEN])
{
    struct index_entry *e = index_lookup(&a->index, hash);
    if (e)
        e->validated = sl_wall_s();
}

void cache_committed(struct agent *a, const uint8_t hash[KEY_HASH_LEN], const char *key, const struct obj_meta *m,
                     int fd, int source)
{
    rwcache_drop(&a->rwcache, hash);   /* a new copy: its rewrite is made afresh */
    struct index_entry *e = index_put(&a->index, hash, OBJ_HEADER_SIZE + m->size, m->size, m->stored);
    e->status = m->status;
    cache_enforce_limits(a);
    if (fd >= 0) {
        l2_upload(a, hash, key, fd, source);
        close(fd);
    }
}

/*
 * Remove least-recently-used, unpinned entries until the index is within
 * cache_max_size and at least `extra` more bytes were freed, then unlink
 * them on a worker, which also measures the free space so that unlink_done
 * can go on for cache_min_free.
 */
static void evict(struct agent *a, uint64_t extra)
{
    int cap = 16, n = 0;
    uint8_t (*hashes)[KEY_HASH_LEN] = sl_malloc((size_t)cap * KEY_HASH_LEN);
    uint64_t freed = 0;
    while (a->index.total_bytes > a->cfg.cache_max_size || freed < extra) {
        struct index_entry *e = index_oldest_unpinned(&a->index);
        if (!e)
            break;
        if (n == cap) {
            cap *= 2;
            hashes = sl_realloc(hashes, (size_t)cap * KEY_HASH_LEN);
        }
        memcpy(hashes[n++], e->hash, KEY_HASH_LEN);
        freed += e->disk_bytes;
        a->m.evictions++;
        a->m.evicted_bytes += e->disk_bytes;
        rwcache_drop(&a->rwcache, e->hash);
        index_remove(&a->index, e);
    }
    struct unlink_job *j = sl_calloc(1, sizeof(*j));
    j->magic = UNLINK_JOB_MAGIC;
    j->a = a;
    j->n = n;
    j->hashes = hashes;
    j->first = extra == 0;
    a->evicting = true;
    workers_submit(a->workers, unlink_work, unlink_done, j);
}

void cache_enforce_limits(struct agent *a)
{
    if (a->evicting || a->stopping)
        return;
    evict(a, 0);
}

/* ---------------------------------------------------------- start-up scan */

struct scan_entry {
    uint8_t hash[KEY_HASH_LEN];
    uint64_t disk_bytes, body_size;
    int64_t stored, atime;
    int status;
};

struct scan_job {
    unsigned magic;
    struct agent *a;
    struct scan_entry *v;
    size_t n, cap;
};

static void scan_add(void *ctx, const uint8_t hash[KEY_HASH_LEN], uint64_t disk_bytes,
                     const struct obj_meta *m, int64_t atime)
{
    struct scan_job *j = ctx;
    SL_CHECK_OBJ(j, SCAN_JOB_MAGIC);
    if (j->n == j->cap) {
        j->cap = j->cap ? j->cap * 2 : 1024;
        j->v = sl_realloc(j->v, j->cap * sizeof(*j->v));
    }
    struct scan_entry *e = &j->v[j->n++];
    memcpy(e->hash, hash, KEY_HASH_LEN);
    e->disk_bytes = disk_bytes;
    e->body_size = m->size;
    e->stored = m->stored;
    e->status = m->status;
    e->atime = atime;
}

static void scan_work(void *arg)
{
    struct scan_job *j = arg;
    SL_CHECK_OBJ(j, SCAN_JOB_MAGIC);
    store_scan(&j->a->store, scan_add, j);
}

static int by_atime(const void *x, const void *y)
{
    const struct scan_entry *a = x, *b = y;
    return (a->atime > b->atime) - (a->atime < b->atime);
}

static void scan_done(void *arg)
{
    struct scan_job *j = arg;
    SL_CHECK_OBJ(j, SCAN_JOB_MAGIC);
    struct agent *a = j->a;
    /* Oldest first, so the most recently used end up at the LRU head. */
    if (j->n > 1)
        qsort(j->v, j->n, sizeof(*j->v), by_atime);
    size_t added = 0;
    for (size_t i = 0; i < j->n; i++) {
        if (index_lookup(&a->index, j->v[i].hash))
            continue;   /* committed by a fill while we scanned: newer */
        struct index_entry *e =
            index_put(&a->index, j->v[i].hash, j->v[i].disk_bytes, j->v[i].body_size, j->v[i].stored);
        e->status = j->v[i].status;
        added++;
    }
    log_info("cache: index rebuilt from disk: %zu objects, %llu bytes", added,
             (unsigned long long)a->index.total_bytes);
    a->index_loading = false;
    free(j->v);
    j->magic = 0;
    free(j);
    cache_enforce_limits(a);
}

void cache_start_scan(struct agent *a)
{
    struct scan_job *j = sl_calloc(1, sizeof(*j));
    j->magic = SCAN_JOB_MAGIC;
    j->a = a;
    a->index_loading = true;
    workers_submit(a->workers, scan_work, scan_done, j);
}
