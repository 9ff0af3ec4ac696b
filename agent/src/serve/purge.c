/*
 * purge.c - removing cached objects on request (see purge.h).
 */
#include "serve/purge.h"

#include <string.h>

#include "core/common.h"
#include "core/workers.h"
#include "core/log.h"
#include "fill/fill.h"
#include "serve/edge.h"
#include "store/cache.h"
#include "store/store.h"

#define PURGE_MAGIC 0x50555247u   /* "PURG" */

struct purge {
    unsigned magic;
    struct agent *a;
    char *prefix;                       /* key prefix, or NULL */
    uint8_t (*hashes)[KEY_HASH_LEN];    /* the objects, found by the scan for a prefix */
    bool *unlinked;                     /* [i]: hashes[i]'s file was removed */
    size_t n, cap;
    long purged;                        /* objects removed (step 2) */
    int64_t edge_gen;                   /* the edge tier's new generation */
    enum edge_flush_result edge;        /* what HAProxy said (step 3) */
    char edge_err[256];
    char socket_dir[CONFIG_PATH_MAX];   /* haproxy_socket_dir when step 3 began */
    purge_done_fn done;                 /* NULL once detached */
    void *ctx;
};

static void add_hash(struct purge *p, const uint8_t hash[KEY_HASH_LEN])
{
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 16;
        p->hashes = sl_realloc(p->hashes, p->cap * KEY_HASH_LEN);
    }
    memcpy(p->hashes[p->n++], hash, KEY_HASH_LEN);
}

/* store_scan callback (worker): keep the objects under the prefix. */
static void scan_match(void *ctx, const uint8_t hash[KEY_HASH_LEN], uint64_t disk_bytes,
                       const struct obj_meta *m, int64_t atime)
{
    SL_UNUSED(disk_bytes);
    SL_UNUSED(atime);
    struct purge *p = ctx;
    SL_CHECK_OBJ(p, PURGE_MAGIC);
    if (strncmp(m->key, p->prefix, strlen(p->prefix)) == 0)
        add_hash(p, hash);
}

static void purge_work(void *arg)
{
    struct purge *p = arg;
    SL_CHECK_OBJ(p, PURGE_MAGIC);
    if (p->prefix)
        store_scan(&p->a->store, scan_match, p);
    p->unlinked = sl_calloc(p->n ? p->n : 1, sizeof(bool));
    for (size_t i = 0; i < p->n; i++)
        p->unlinked[i] = store_remove_object(&p->a->store, p->hashes[i]) == 0;
}

/* One object: its file, its index entry, its running fill. */
static bool purge_one(struct purge *p, size_t i)
{
    bool found = p->unlinked[i];
    found |= cache_forget(p->a, p->hashes[i]);
    struct fill *f = fill_find(p->a, p->hashes[i]);
    if (f)
        fill_purge(f);
    return found || f;
}

/* Step 3 (worker): HAProxy's edge memory tier forgets everything stored
 * before now (edge.h); the agent has already forgotten the objects. */
static void purge_edge_work(void *arg)
{
    struct purge *p = arg;
    SL_CHECK_OBJ(p, PURGE_MAGIC);
    p->edge = edge_flush(p->socket_dir, p->edge_gen, p->edge_err, sizeof(p->edge_err));
}

static void purge_finish(void *arg)
{
    struct purge *p = arg;
    SL_CHECK_OBJ(p, PURGE_MAGIC);
    p->a->m.edge_flushes[p->edge]++;
    if (p->edge == EDGE_FAILED)
        log_warn("admin: purge: the edge memory tier keeps what it held: %s", p->edge_err);
    if (p->done)
        p->done(p->ctx, p->purged);
    free(p->prefix);
    free(p->hashes);
    free(p->unlinked);
    p->magic = 0;
    free(p);
}

/* Step 2 (loop): forget; then step 3 unless the edge tier is off. */
static void purge_done(void *arg)
{
    struct purge *p = arg;
    SL_CHECK_OBJ(p, PURGE_MAGIC);
    for (size_t i = 0; i < p->n; i++)
        p->purged += purge_one(p, i);
    if (p->prefix)
        p->purged += fill_purge_prefix(p->a, p->prefix);   /* fills with nothing stored yet */
    p->a->m.purged_objects += (uint64_t)p->purged;
    p->edge = EDGE_NO_TIER;
    if (p->a->cfg.edge_tier_max_size == 0) {
        purge_finish(p);
        return;
    }
    p->edge_gen = edge_next_generation();
    sl_strlcpy(p->socket_dir, p->a->cfg.haproxy_socket_dir, sizeof(p->socket_dir));
    workers_submit(p->a->workers, purge_edge_work, purge_finish, p);
}

struct purge *purge_start(struct agent *a, const uint8_t (*hashes)[KEY_HASH_LEN], int n, const char *prefix,
                          purge_done_fn done, void *ctx)
{
    SL_ASSERT(n >= 0 && n <= PURGE_HASHES_MAX && done);
    struct purge *p = sl_calloc(1, sizeof(*p));
    p->magic = PURGE_MAGIC;
    p->a = a;
    p->done = done;
    p->ctx = ctx;
    if (prefix)
        p->prefix = sl_strdup(prefix);
    else
        for (int i = 0; i < n; i++)
            add_hash(p, hashes[i]);
    workers_submit(a->workers, purge_work, purge_done, p);
    return p;
}

void purge_detach(struct purge *p)
{
    SL_CHECK_OBJ(p, PURGE_MAGIC);
    p->done = NULL;
}
