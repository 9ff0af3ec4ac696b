/*
 * cache.h - the committed-object side: hit validation, stale-entry
 * dropping (C3), disk accounting and LRU eviction, and the start-up scan
 * that rebuilds the index from disk.
 */
#ifndef SLUICE_CACHE_H
#define SLUICE_CACHE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "core/agent.h"
#include "store/objfile.h"

/* Bodies up to this size are kept in memory with their open file. */
#define CACHE_SMALL_BODY_MAX (16 * 1024)

/* An object opened for one hit response. */
struct cache_hit {
    struct index_entry *e;        /* pinned while the hit lives */
    int fd;                       /* read with pread/sendfile at explicit offsets */
    const struct obj_meta *meta;
    const uint8_t *body;          /* the whole body when it is small and cached, else NULL */
    bool owned;                   /* fd and meta belong to this hit, not the open-file cache */
    struct obj_meta own_meta;
    struct stat st;
};

/*
 * Open the object behind an index entry and validate it before any
 * response byte: from the open-file cache when its file is unchanged (one
 * fstat), else by reading and checking the header (store_open_object). On
 * success pins the entry and returns true (release with cache_release_hit).
 * On failure the entry is dropped (when no one is serving it), the file
 * removed if corrupt, the stale metric bumped, and false returned: the
 * caller continues as a miss.
 */
bool cache_open_hit(struct agent *a, struct index_entry *e, const char *key, struct cache_hit *h);
void cache_release_hit(struct agent *a, struct cache_hit *h);

/* A fill committed an object: index it, evict if over the limits, and copy
 * it to the sink tiers (a->tiers) off the serving path: all of them, or,
 * for an object read from tier `source` (-1: the origin), those before it
 * (l2_upload). `fd` is the committed object read-only (ownership passes
 * here), or -1 when there are no sinks or it could not be opened. */
void cache_committed(struct agent *a, const uint8_t hash[KEY_HASH_LEN], const char *key, const struct obj_meta *m,
                     int fd, int source);

/* The validators a revalidation of entry `e` sends (its origin's ETag,
 * malloc'd or NULL, and Last-Modified or 0), read from the object; false
 * when it is not usable (as cache_open_hit). */
bool cache_validators(struct agent *a, struct index_entry *e, const char *key, char **etag, int64_t *last_modified);

/* Purge `hash` from the index (index_forget: hits being served finish from
 * their open files). The caller unlinks the file (store_remove_object, on
 * a worker). True when the index had it. */
bool cache_forget(struct agent *a, const uint8_t hash[KEY_HASH_LEN]);

/* The origin confirmed the stored copy of `hash` current (a 304): it is
 * fresh again from now. Nothing on disk changes. */
void cache_revalidated(struct agent *a, const uint8_t hash[KEY_HASH_LEN]);

/* Evict least-recently-used objects until within cache_max_size and
 * cache_min_free. Unlinks run on the worker pool. */
void cache_enforce_limits(struct agent *a);

/* Start the index rebuild on the worker pool; a->index_loading is true
 * until it finishes. */
void cache_start_scan(struct agent *a);

#endif
