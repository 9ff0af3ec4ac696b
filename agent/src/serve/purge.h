/*
 * purge.h - removing cached objects on request (the admin API's DELETE
 * /objects/...): the stored copies, metadata and artifacts alike, and the
 * commits of the fills in flight for them.
 *
 * A purge names its objects either by their hashes (the keys a request
 * derives, route/canon.h) or by a key prefix ("npm:@types/"). It runs in
 * three steps:
 *   1. on a worker: with a prefix, scan the store for the objects whose
 *      key starts with it (every object's header is read, as the start-up
 *      scan does); then unlink each object file;
 *   2. on the loop: forget each hash in the index (cache_forget: a hit
 *      being served holds its open descriptor and finishes byte for byte;
 *      the entry goes with its last response) and purge every running fill
 *      of those keys (fill_purge: its readers carry on, nothing of it is
 *      committed, the next request fetches afresh);
 *   3. on a worker, unless the edge tier is off: HAProxy's edge memory
 *      tier gets a new generation (edge.h), so nothing it stored before
 *      is served again; `done` follows.
 * Unlinking before forgetting means a commit that lands in between leaves
 * at most a file the index does not know (found again by the next start-up
 * scan), never an index entry without its file.
 *
 * Invariant: `done` runs exactly once, on the loop, unless purge_detach
 * was called first.
 */
#ifndef SLUICE_PURGE_H
#define SLUICE_PURGE_H

#include "core/agent.h"
#include "store/key.h"

#define PURGE_HASHES_MAX 4

struct purge;
/* `purged`: objects removed (stored copies and fills in flight, a key
 * counted once). */
typedef void (*purge_done_fn)(void *ctx, long purged);

/* Purge the objects of `hashes` (n <= PURGE_HASHES_MAX), or, when prefix
 * is not NULL, every object whose key starts with it (hashes ignored). */
struct purge *purge_start(struct agent *a, const uint8_t (*hashes)[KEY_HASH_LEN], int n, const char *prefix,
                          purge_done_fn done, void *ctx);

/* The caller is gone: the purge completes, but `done` is not called. */
void purge_detach(struct purge *p);

#endif
