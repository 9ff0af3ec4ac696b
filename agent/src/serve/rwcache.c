/*
 * rwcache.c - rewritten metadata bodies kept in memory (see rwcache.h).
 *
 * A chained hash table of RWCACHE_BUCKETS buckets (entries are a few
 * hundred KiB each, so a budget holds hundreds, not millions) and one LRU
 * list. Freeing is by reference: unlinking drops the table's reference,
 * rwcache_release the responses'.
 */
#include "serve/rwcache.h"

#include <stdlib.h>
#include <string.h>

#include "core/common.h"

#define RWC_ENTRY_MAGIC 0x52574345u   /* "RWCE" */

void rwcache_init(struct rwcache *c, uint64_t budget, uint64_t object_max)
{
    memset(c, 0, sizeof(*c));
    list_init(&c->lru);
    c->budget = budget;
    c->object_max = object_max;
}

static size_t bucket_of(const uint8_t hash[KEY_HASH_LEN])
{
    uint64_t v;
    memcpy(&v, hash, sizeof(v));
    return (size_t)(v % RWCACHE_BUCKETS);
}

static bool same_id(const struct rwcache_id *x, const struct rwcache_id *y)
{
    return memcmp(x->hash, y->hash, KEY_HASH_LEN) == 0 && x->generation == y->generation && x->dev == y->dev &&
           x->ino == y->ino && x->file_size == y->file_size && x->mtime_ns == y->mtime_ns &&
           x->ctime_ns == y->ctime_ns && x->stored == y->stored && x->body_size == y->body_size &&
           x->etag_crc == y->etag_crc;
}

static uint64_t cost(const struct rwc_entry *e)
{
    return (uint64_t)e->len + e->notes_len;
}

static void entry_free(struct rwc_entry *e)
{
    SL_ASSERT(e->refs == 0 && !e->linked);
    free(e->body);
    free(e->notes);
    e->magic = 0;
    free(e);
}

void rwcache_release(struct rwcache *c, struct rwc_entry *e)
{
    SL_UNUSED(c);
    SL_CHECK_OBJ(e, RWC_ENTRY_MAGIC);
    SL_ASSERT(e->refs > 0);
    if (--e->refs == 0)
        entry_free(e);
}

/* The linked entry of hash, and the link that points at it. */
static struct rwc_entry **find(struct rwcache *c, const uint8_t hash[KEY_HASH_LEN])
{
    struct rwc_entry **pp = &c->buckets[bucket_of(hash)];
    while (*pp && memcmp((*pp)->id.hash, hash, KEY_HASH_LEN) != 0)
        pp = &(*pp)->bucket_next;
    return pp;
}

static void unlink_entry(struct rwcache *c, struct rwc_entry **pp)
{
    struct rwc_entry *e = *pp;
    SL_CHECK_OBJ(e, RWC_ENTRY_MAGIC);
    SL_ASSERT(e->linked && c->entries > 0 && c->bytes >= cost(e));
    *pp = e->bucket_next;
    e->bucket_next = NULL;
    list_remove(&e->lru);
    e->linked = false;
    c->entries--;
    c->bytes -= cost(e);
    rwcache_release(c, e);
}

void rwcache_drop(struct rwcache *c, const uint8_t hash[KEY_HASH_LEN])
{
    struct rwc_entry **pp = find(c, hash);
    if (*pp)
        unlink_entry(c, pp);
}

static void drop_all(struct rwcache *c)
{
    while (!list_empty(&c->lru)) {
        struct rwc_entry *e = SL_CONTAINER_OF(c->lru.next, struct rwc_entry, lru);
        rwcache_drop(c, e->id.hash);
    }
    SL_ASSERT(c->entries == 0 && c->bytes == 0);
}

void rwcache_configure(struct rwcache *c, uint64_t budget, uint64_t object_max)
{
    drop_all(c);
    c->budget = budget;
    c->object_max = object_max;
}

void rwcache_free(struct rwcache *c)
{
    drop_all(c);
}

struct rwc_entry *rwcache_get(struct rwcache *c, const struct rwcache_id *id)
{
    struct rwc_entry **pp = find(c, id->hash);
    if (*pp && !same_id(&(*pp)->id, id))
        unlink_entry(c, pp);   /* made from another copy, or before a reload: never again */
    struct rwc_entry *e = *pp;
    if (!e) {
        c->misses++;
        return NULL;
    }
    SL_ASSERT(e->linked && e->refs > 0);
    list_remove(&e->lru);
    list_push_front(&c->lru, &e->lru);
    e->refs++;
    c->hits++;
    return e;
}

/* Evict least recently used entries until `room` more bytes fit. */
static void make_room(struct rwcache *c, uint64_t room)
{
    while (c->bytes + room > c->budget && !list_empty(&c->lru)) {
        struct rwc_entry *old = SL_CONTAINER_OF(c->lru.prev, struct rwc_entry, lru);
        rwcache_drop(c, old->id.hash);
        c->evictions++;
    }
}

bool rwcache_put(struct rwcache *c, const struct rwcache_id *id, uint8_t *body, size_t len, uint8_t *notes,
                 size_t notes_len)
{
    uint64_t need = (uint64_t)len + notes_len;
    if (c->budget == 0 || len > c->object_max || need > c->budget) {
        free(body);
        free(notes);
        return false;
    }
    rwcache_drop(c, id->hash);
    make_room(c, need);
    struct rwc_entry *e = sl_calloc(1, sizeof(*e));
    *e = (struct rwc_entry){ .magic = RWC_ENTRY_MAGIC, .id = *id, .body = body, .len = len, .notes = notes,
                             .notes_len = notes_len, .refs = 1, .linked = true };
    struct rwc_entry **pp = find(c, id->hash);
    SL_ASSERT(*pp == NULL);
    *pp = e;
    list_push_front(&c->lru, &e->lru);
    c->entries++;
    c->bytes += need;
    c->insertions++;
    SL_ASSERT(c->bytes <= c->budget);
    return true;
}
