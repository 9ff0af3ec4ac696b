/*
 * index.h - the in-memory index of committed objects.
 *
 * Answers "is this key committed?" from memory (the SPOP verdict may not
 * touch the disk), keeps the bytes-on-disk total, and orders entries by last
 * use for eviction. It is owned by the loop thread; workers never touch it.
 *
 * The index is a cache of what is on disk, never the truth: the object file
 * is validated on every hit, and an entry whose file is gone or bad is
 * dropped (C3). It is rebuilt by scanning the disk at start.
 *
 * The index also holds the open-file cache: a hot entry keeps its object
 * open with its decoded header, so a hit costs one fstat instead of open,
 * pread, fstat and close. Those entries are on a second LRU list, bounded
 * by the caller (cache.c).
 *
 * Invariants: every entry is in exactly one hash bucket and on the LRU list;
 * total_bytes is the sum of disk_bytes over all entries; an entry with
 * pins > 0 is never chosen for eviction and never loses its open file;
 * an entry is on the open-file list iff fd >= 0, and then meta != NULL;
 * a purged entry is pinned, and index_lookup never returns it.
 */
#ifndef SLUICE_INDEX_H
#define SLUICE_INDEX_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "store/key.h"
#include "core/list.h"
#include "store/objfile.h"

struct index_entry {
    uint8_t hash[KEY_HASH_LEN];
    uint64_t disk_bytes;       /* header + body */
    uint64_t body_size;
    int64_t stored;            /* unix seconds */
    int64_t validated;         /* unix seconds: stored, or when the origin last
                                  confirmed it current (304); freshness and Age
                                  count from here. In memory only: after a
                                  restart a copy is as old as its file says. */
    uint32_t pins;             /* responses being served from it */
    bool purged;               /* purged while pinned (index_forget): invisible
                                  to lookups, removed when the last pin goes */
    int status;                /* the stored status: 200, or 404 (negative) */
    struct index_entry *bucket_next;
    struct sl_list lru;        /* on index.lru; front = most recent */

    /* open-file cache */
    int fd;                    /* -1 when not open */
    struct obj_meta *meta;     /* decoded header of that file */
    uint8_t *body;             /* small objects: the body itself, or NULL */
    struct stat st;            /* identity when validated: a change means revalidate */
    struct sl_list open;       /* on index.open_lru while fd >= 0 */
};

struct index {
    struct index_entry **buckets;
    size_t n_buckets;          /* power of two */
    size_t count;
    uint64_t total_bytes;
    struct sl_list lru;
    size_t open_files;
    struct sl_list open_lru;
};

void index_init(struct index *ix);
void index_free(struct index *ix);

struct index_entry *index_lookup(struct index *ix, const uint8_t hash[KEY_HASH_LEN]);

/* Insert or replace; returns the entry (moved to most recent). */
struct index_entry *index_put(struct index *ix, const uint8_t hash[KEY_HASH_LEN],
                              uint64_t disk_bytes, uint64_t body_size, int64_t stored);

/* Keep `fd` and `meta` (ownership moves to the entry) as its open file. */
void index_fd_attach(struct index *ix, struct index_entry *e, int fd, struct obj_meta *meta,
                     const struct stat *st);
/* Close the entry's open file. Must not be pinned. */
void index_fd_release(struct index *ix, struct index_entry *e);
/* Least recently used open file that is not pinned, or NULL. */
struct index_entry *index_fd_oldest_unpinned(struct index *ix);

/* Remove and free (closing its open file). Must not be pinned. */
void index_remove(struct index *ix, struct index_entry *e);

/* Purge: remove the entry now when nothing pins it; otherwise mark it
 * purged, which hides it from index_lookup (a new object for its hash gets
 * a new entry) while the responses pinning it finish from their open files;
 * the last unpin removes it (cache_release_hit). */
void index_forget(struct index *ix, struct index_entry *e);

/* Mark as just used. */
void index_touch(struct index *ix, struct index_entry *e);

/* Least recently used entry that is not pinned, or NULL. */
struct index_entry *index_oldest_unpinned(struct index *ix);

#endif
