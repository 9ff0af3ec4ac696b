/*
 * index.c - hash table + LRU list of committed objects (see index.h).
 *
 * Keys are SHA-256 digests, already uniformly distributed, so the bucket is
 * simply the first 8 bytes masked to the table size. The table doubles when
 * the load factor passes 1.
 */
#include "store/index.h"

#include <string.h>
#include <unistd.h>

#include "core/common.h"

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
    list_init(&ix->lru);
    list_init(&ix->open_lru);
}

static void close_open_file(struct index *ix, struct index_entry *e)
{
    if (e->fd < 0)
        return;
    list_remove(&e->open);
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
    list_push_front(&ix->open_lru, &e->open);
    ix->open_files++;
}

void index_fd_release(struct index *ix, struct index_entry *e)
{
    SL_ASSERT(e->pins == 0);
    close_open_file(ix, e);
}

struct index_entry *index_fd_oldest_unpinned(struct index *ix)
{
    for (struct sl_list *n = ix->open_lru.prev; n != &ix->open_lru; n = n->prev) {
        struct index_entry *e = SL_CONTAINER_OF(n, struct index_entry, open);
        if (e->pins == 0)
            return e;
    }
    return NULL;
}

void index_free(struct index *ix)
{
    while (!list_empty(&ix->lru)) {
        struct index_entry *e = SL_CONTAINER_OF(ix->lru.next, struct index_entry, lru);
        list_remove(&e->lru);
        close_open_file(ix, e);
        free(e);
    }
    free(ix->buckets);
    memset(ix, 0, sizeof(*ix));
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
        if (!e->purged && memcmp(e->hash, hash, KEY_HASH_LEN) == 0)
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
        list_remove(&e->lru);
    } else {
        if (ix->count >= ix->n_buckets)
            grow(ix);
        e = sl_calloc(1, sizeof(*e));
        e->fd = -1;
        list_init(&e->lru);
        list_init(&e->open);
        memcpy(e->hash, hash, KEY_HASH_LEN);
        size_t b = bucket_of(ix, hash);
        e->bucket_next = ix->buckets[b];
        ix->buckets[b] = e;
        ix->count++;
    }
    e->disk_bytes = disk_bytes;
    e->body_size = body_size;
    e->stored = stored;
    e->validated = stored;
    e->status = 200;   /* callers storing another status set it */
    ix->total_bytes += disk_bytes;
    list_push_front(&ix->lru, &e->lru);
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
    list_remove(&e->lru);
    SL_ASSERT(ix->total_bytes >= e->disk_bytes && ix->count > 0);
    ix->total_bytes -= e->disk_bytes;
    ix->count--;
    free(e);
}

void index_forget(struct index *ix, struct index_entry *e)
{
    if (e->pins == 0)
        index_remove(ix, e);
    else
        e->purged = true;
}

void index_touch(struct index *ix, struct index_entry *e)
{
    list_remove(&e->lru);
    list_push_front(&ix->lru, &e->lru);
    if (e->fd >= 0) {
        list_remove(&e->open);
        list_push_front(&ix->open_lru, &e->open);
    }
}

struct index_entry *index_oldest_unpinned(struct index *ix)
{
    for (struct sl_list *n = ix->lru.prev; n != &ix->lru; n = n->prev) {
        struct index_entry *e = SL_CONTAINER_OF(n, struct index_entry, lru);
        if (e->pins == 0)
            return e;
    }
    return NULL;
}
