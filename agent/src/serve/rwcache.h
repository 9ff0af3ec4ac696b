/*
 * rwcache.h - rewritten metadata bodies kept in memory.
 *
 * A metadata hit of an ecosystem with a rewriter (rewrite.h) would run the
 * rewriter over the stored body every time (an npm packument: a JSON parse
 * of a few hundred KiB per request). The first hit that rewrites a stored
 * copy to its end keeps the output here ("tee"), with the digest notes the
 * rewriter put on the way (digest_notes.h, replayed on every later hit);
 * later hits of the same copy send those bytes from memory, with a
 * Content-Length.
 *
 * An entry is matched by its whole identity (struct rwcache_id): the key
 * hash, the configuration generation it was made under (a reload may
 * change public_url or the routes, which the output depends on), and the
 * stored copy it was made from (the validated file's inode, size, mtime
 * and ctime, with the header's stored time, body size and ETag). A 304
 * revalidation changes none of them, so the rewrite stays; a new body is a
 * new file, so an old rewrite never matches it, even one finished after
 * the new commit. Commits, purges, evictions and reloads also drop
 * entries at once (cache.c, main.c), for the memory.
 *
 * Loop thread only. Bounded by a byte budget (rewrite_cache_size) over
 * bodies and notes, least recently used first out; an output over
 * rewrite_cache_object_max is never kept.
 *
 * Invariants (SL_ASSERT): at most one linked entry per key hash; `bytes`
 * and `entries` are the sums over linked entries, bytes <= budget after
 * every put; a linked entry holds one reference of its own, each response
 * sending it one more, and it is freed when the last goes (an entry
 * dropped while being sent stays readable to its response); an unlinked
 * entry is never returned by rwcache_get.
 */
#ifndef SLUICE_RWCACHE_H
#define SLUICE_RWCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/list.h"
#include "store/key.h"

#define RWCACHE_BUCKETS 1024

/* What a rewrite was made from; equal ids give equal outputs. */
struct rwcache_id {
    uint8_t hash[KEY_HASH_LEN];
    uint64_t generation;         /* configuration generation */
    uint64_t dev, ino, file_size;
    int64_t mtime_ns, ctime_ns;
    int64_t stored;              /* obj_meta.stored */
    uint64_t body_size;
    uint32_t etag_crc;           /* of the stored ETag */
};

struct rwc_entry {
    unsigned magic;
    struct rwcache_id id;
    uint8_t *body;
    size_t len;
    uint8_t *notes;              /* digest_notes_replay records */
    size_t notes_len;
    unsigned refs;
    bool linked;
    struct rwc_entry *bucket_next;
    struct sl_list lru;          /* front = most recent */
};

struct rwcache {
    uint64_t budget;             /* 0: off */
    uint64_t object_max;
    struct rwc_entry *buckets[RWCACHE_BUCKETS];
    struct sl_list lru;
    uint64_t bytes;              /* gauge: bodies + notes of linked entries */
    uint64_t entries;            /* gauge */
    uint64_t hits, misses, insertions, evictions;   /* counters */
};

void rwcache_init(struct rwcache *c, uint64_t budget, uint64_t object_max);

/* New limits (a reload): every entry is dropped. */
void rwcache_configure(struct rwcache *c, uint64_t budget, uint64_t object_max);

/* Drop every entry and free what no response holds. */
void rwcache_free(struct rwcache *c);

static inline bool rwcache_enabled(const struct rwcache *c)
{
    return c->budget > 0;
}

/* The entry made from exactly `id`, referenced (rwcache_release), or NULL
 * (a miss; an entry of the same hash made from another copy is dropped). */
struct rwc_entry *rwcache_get(struct rwcache *c, const struct rwcache_id *id);
void rwcache_release(struct rwcache *c, struct rwc_entry *e);

/* Keep `body` and `notes` (malloc'd; ownership passes here, freed when not
 * kept) as the rewrite of `id`, replacing the hash's entry, evicting the
 * least recently used over the budget. False when not kept (too large). */
bool rwcache_put(struct rwcache *c, const struct rwcache_id *id, uint8_t *body, size_t len, uint8_t *notes,
                 size_t notes_len);

/* Forget the rewrite of `hash`, if any (commit, purge, eviction). */
void rwcache_drop(struct rwcache *c, const uint8_t hash[KEY_HASH_LEN]);

#endif
