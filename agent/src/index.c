/*
 * index.c - hash table + LRU list of committed objects (see index.h).
 *
 * Keys are SHA-256 digests, already uniformly distributed, so the bucket is
 * simply the first 8 bytes masked to the table size. The table doubles when
 * the load factor passes 1.
 */
#include "index.h"

#include <string.h>
#include <unistd.h>

#include "common.h"

static size_t bucket_of(const struct index *ix, const uint8_t hash[KEY_HASH_LEN])
{
    uint64_t h;
    memcpy(&h, hash, sizeof(h));
    return (size_t)(h & (ix->n_buckets - 1));
}

void index_init(struct index *ix)
{
    memset(ix, 0, sizeof(*ix));
    ix->n_buckets = 1024;
    ix->buckets = sl_calloc(ix->n_buckets, sizeof(*ix->buckets));
}

static void fd_unlink(struct index *ix, struct index_entry *e)
{
    if (e->fd_prev)
        e->fd_prev->fd_next = e->fd_next;
    else
        ix->fd_head = e->fd_next;
    if (e->fd_next)
        e->fd_next->fd_prev = e->fd_prev;
    else
        ix->fd_tail = e->fd_prev;
    e->fd_prev = e->fd_next = NULL;
}

static void fd_push_head(struct index *ix, struct index_entry *e)
{
    e->fd_prev = NULL;
    e->fd_next = ix->fd_head;
    if (ix->fd_head)
        ix->fd_head->fd_prev = e;
    ix->fd_head = e;
    if (!ix->fd_tail)
        ix->fd_tail = e;
}

static void close_open_file(struct index *ix, struct index_entry *e)
{
    if (e->fd < 0)
        return;
    fd_unlink(ix, e);
    close(e->fd);
    e->fd = -1;
    obj_meta_free(e->meta);
    free(e->meta);
    e->meta = NULL;
    free(e->body);
    e->body = NULL;
    SL_ASSERT(ix->open_files > 0);
    ix->open_files--;
}

void index_fd_attach(struct index *ix, struct index_entry *e, int fd, struct obj_meta *meta,
                     const struct stat *st)
{
    SL_ASSERT(e->fd < 0 && fd >= 0 && meta);
    e->fd = fd;
    e->meta = meta;
    e->st = *st;
    fd_push_head(ix, e);
    ix->open_files++;
}

void index_fd_release(struct index *ix, struct index_entry *e)
{
    SL_ASSERT(e->pins == 0);
    close_open_file(ix, e);
}

struct index_entry *index_fd_oldest_unpinned(struct index *ix)
{
    for (struct index_entry *e = ix->fd_tail; e; e = e->fd_prev)
        if (e->pins == 0)
            return e;
    return NULL;
}

void index_free(struct index *ix)
{
    struct index_entry *e = ix->lru_head;
    while (e) {
        struct index_entry *next = e->lru_next;
        close_open_file(ix, e);
        free(e);
        e = next;
    }
    free(ix->buckets);
    memset(ix, 0, sizeof(*ix));
}

static void lru_unlink(struct index *ix, struct index_entry *e)
{
    if (e->lru_prev)
        e->lru_prev->lru_next = e->lru_next;
    else
        ix->lru_head = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else
        ix->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void lru_push_head(struct index *ix, struct index_entry *e)
{
    e->lru_prev = NULL;
    e->lru_next = ix->lru_head;
    if (ix->lru_head)
        ix->lru_head->lru_prev = e;
    ix->lru_head = e;
    if (!ix->lru_tail)
        ix->lru_tail = e;
}

static void grow(struct index *ix)
{
    size_t old_n = ix->n_buckets;
    struct index_entry **old = ix->buckets;
    ix->n_buckets = old_n * 2;
    ix->buckets = sl_calloc(ix->n_buckets, sizeof(*ix->buckets));
    for (size_t i = 0; i < old_n; i++) {
        struct index_entry *e = old[i];
        while (e) {
            struct index_entry *next = e->bucket_next;
            size_t b = bucket_of(ix, e->hash);
            e->bucket_next = ix->buckets[b];
            ix->buckets[b] = e;
            e = next;
        }
    }
    free(old);
}

struct index_entry *index_lookup(struct index *ix, const uint8_t hash[KEY_HASH_LEN])
{
    for (struct index_entry *e = ix->buckets[bucket_of(ix, hash)]; e; e = e->bucket_next)
        if (memcmp(e->hash, hash, KEY_HASH_LEN) == 0)
            return e;
    return NULL;
}

struct index_entry *index_put(struct index *ix, const uint8_t hash[KEY_HASH_LEN],
                              uint64_t disk_bytes, uint64_t body_size, int64_t stored)
{
    struct index_entry *e = index_lookup(ix, hash);
    if (e) {
        /* A new object replaced the file: the cached one is stale. */
        if (e->pins == 0)
            close_open_file(ix, e);
        ix->total_bytes -= e->disk_bytes;
        lru_unlink(ix, e);
    } else {
        if (ix->count >= ix->n_buckets)
            grow(ix);
        e = sl_calloc(1, sizeof(*e));
        e->fd = -1;
        memcpy(e->hash, hash, KEY_HASH_LEN);
        size_t b = bucket_of(ix, hash);
        e->bucket_next = ix->buckets[b];
        ix->buckets[b] = e;
        ix->count++;
    }
    e->disk_bytes = disk_bytes;
    e->body_size = body_size;
    e->stored = stored;
    ix->total_bytes += disk_bytes;
    lru_push_head(ix, e);
    return e;
}

void index_remove(struct index *ix, struct index_entry *e)
{
    SL_ASSERT(e->pins == 0);
    struct index_entry **pp = &ix->buckets[bucket_of(ix, e->hash)];
    while (*pp != e) {
        SL_ASSERT(*pp != NULL);
        pp = &(*pp)->bucket_next;
    }
    *pp = e->bucket_next;
    close_open_file(ix, e);
    lru_unlink(ix, e);
    SL_ASSERT(ix->total_bytes >= e->disk_bytes && ix->count > 0);
    ix->total_bytes -= e->disk_bytes;
    ix->count--;
    free(e);
}

void index_touch(struct index *ix, struct index_entry *e)
{
    if (ix->lru_head != e) {
        lru_unlink(ix, e);
        lru_push_head(ix, e);
    }
    if (e->fd >= 0 && ix->fd_head != e) {
        fd_unlink(ix, e);
        fd_push_head(ix, e);
    }
}

struct index_entry *index_oldest_unpinned(struct index *ix)
{
    for (struct index_entry *e = ix->lru_tail; e; e = e->lru_prev)
        if (e->pins == 0)
            return e;
    return NULL;
}
