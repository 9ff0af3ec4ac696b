/*
 * tier.h - a storage tier beyond the local disk: a place objects can be
 * read from (a source) and, optionally, copied to (a sink).
 *
 * The local disk (store.h) is L1 and stays special: it is the spool of
 * every fill and the only tier served with sendfile, so it hands out file
 * descriptors. Every other level (the S3 tier shared by edges, a shared
 * directory) is a tier here, and hands out bytes:
 *
 *   source  tier_read() starts reading one object by key: on_meta reports
 *           its metadata (size, validators, kept headers) before any byte,
 *           on_data delivers the body in order (returning TIER_PAUSE holds
 *           the rest until tier_read_resume), on_done ends it. A fill feeds
 *           those bytes into its spool exactly as it does an origin's
 *           (fill_start_from_tier), so L1 fills while followers read.
 *   sink    tier_write() copies a committed L1 object to the tier, off the
 *           serving path; it reports once, when the object is wholly
 *           stored (visible to readers) or not at all.
 *
 * Contract of every implementation (tests/unit/test_tier.c runs the same
 * suite on each):
 *   - callbacks run on the loop thread, never from inside the call that
 *     started or resumed the work (no re-entry);
 *   - a read reports on_done exactly once, unless aborted first; after
 *     tier_read_abort no callback of that read runs;
 *   - on_done(TIER_OK) only after exactly meta->size body bytes;
 *     TIER_MISS only before on_meta; anything else is TIER_ERROR;
 *   - a write's done runs exactly once; an object is never readable half
 *     written; a failed write leaves the previous object (or none);
 *   - tier_destroy may be called with reads aborted but not yet released
 *     (their cleanup finishes on its own); never with a read or a write
 *     whose callback has yet to run;
 *   - nothing a tier does blocks the loop (blocking I/O runs on the worker
 *     pool, network I/O on the loop's watchers) - except the memory tier,
 *     which exists for tests and reads a written object's file at once.
 */
#ifndef SLUICE_TIER_H
#define SLUICE_TIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/key.h"
#include "store/objfile.h"

#define TIER_PAUSE ((size_t)-1)
#define TIER_MAX 4          /* tiers after L1 one agent may have */

enum tier_result { TIER_OK, TIER_MISS, TIER_ERROR };

struct tier;

/* The first member of every implementation's read handle. */
struct tier_read {
    struct tier *tier;
};

struct tier_read_cb {
    void (*on_meta)(void *ctx, const struct obj_meta *meta);
    size_t (*on_data)(void *ctx, const uint8_t *data, size_t len);   /* len or TIER_PAUSE */
    void (*on_done)(void *ctx, enum tier_result res, const char *detail);
};

struct tier_ops {
    const char *kind;   /* "memory", "disk", "s3" */
    struct tier_read *(*read)(struct tier *t, const char *key, const uint8_t hash[KEY_HASH_LEN],
                              const struct tier_read_cb *cb, void *ctx);
    void (*read_resume)(struct tier_read *r);
    void (*read_abort)(struct tier_read *r);
    /* NULL: the tier is a source only. `fd` holds the object in objfile
     * format (header block, then the body); the tier reads it with pread
     * and closes it before done. */
    void (*write)(struct tier *t, const char *key, const uint8_t hash[KEY_HASH_LEN], int fd,
                  void (*done)(void *ctx, int rc), void *ctx);
    void (*destroy)(struct tier *t);
};

struct tier {
    const struct tier_ops *ops;
    char name[32];      /* for logs and metrics */
};

static inline struct tier_read *tier_read(struct tier *t, const char *key, const uint8_t hash[KEY_HASH_LEN],
                                          const struct tier_read_cb *cb, void *ctx)
{
    return t->ops->read(t, key, hash, cb, ctx);
}

static inline bool tier_is_sink(const struct tier *t)
{
    return t->ops->write != NULL;
}

void tier_read_resume(struct tier_read *r);
void tier_read_abort(struct tier_read *r);

/* Copy a committed object (fd, objfile format, ownership passes to the
 * tier) to a sink tier; done(ctx, 0 or -errno) runs once. */
void tier_write(struct tier *t, const char *key, const uint8_t hash[KEY_HASH_LEN], int fd,
                void (*done)(void *ctx, int rc), void *ctx);

void tier_destroy(struct tier *t);

/* ------------------------------------------------------ implementations */

struct ev_loop;
struct worker_pool;
struct store;
struct s3_settings;

/* Objects in memory: for tests, and the model the others are checked
 * against. Reads are delivered from the loop in pieces of `piece` bytes
 * (0: 64 KiB), so pausing and aborting mid-body are exercised. */
struct tier *tier_mem_new(struct ev_loop *loop, size_t piece);
/* How many objects the memory tier holds (tests). */
size_t tier_mem_count(const struct tier *t);

/* Objects in a directory with the disk cache's layout (store.h), read and
 * written on the worker pool: a second disk, or a directory several edges
 * share. */
struct tier *tier_disk_new(struct ev_loop *loop, struct worker_pool *workers, const char *dir, char *err,
                           size_t errlen);

/* Objects in an S3 bucket (store/s3.h: settings, names, metadata), over
 * libcurl on the loop, signed with the settings' key pair. NULL (and
 * `err` filled) when the settings are unusable. */
struct tier *tier_s3_new(struct ev_loop *loop, struct worker_pool *workers, const struct s3_settings *s,
                         char *err, size_t errlen);

#endif
