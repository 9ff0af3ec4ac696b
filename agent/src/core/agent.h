/*
 * agent.h - the agent's process-wide state, wired together in main.c.
 *
 * One struct agent exists per process; everything in it belongs to the
 * libev loop thread except what workers.c documents. Modules receive the
 * agent pointer rather than reaching for globals, so tests can build one.
 */
#ifndef SLUICE_AGENT_H
#define SLUICE_AGENT_H

#include <ev.h>
#include <stdbool.h>

#include "core/config.h"
#include "fill/chunk_pool.h"
#include "store/index.h"
#include "core/list.h"
#include "core/metrics.h"
#include "route/route.h"
#include "origin/slots.h"
#include "store/store.h"
#include "serve/edge_stats.h"
#include "serve/rwcache.h"

struct fill;
struct digest_notes;

#define FILL_TABLE_BUCKETS 4096
#define L2_SKIP_MAX 64           /* keys whose next miss skips L2 (store/l2.h) */
#define AGENT_MAGIC 0x534c4147u   /* "SLAG": checked where a void * becomes an agent */

struct agent {
    unsigned magic;
    struct ev_loop *loop;
    const char *config_path;                  /* re-read on SIGHUP (NULL: none) */
    struct sluice_config cfg;                 /* replaced whole by a reload (main.c) */
    struct route_table routes;                /* updated in place by a reload: routes never move (route.c) */
    struct store store;
    struct index index;
    struct worker_pool *workers;
    /* Storage tiers after L1 (store/tier.h), in lookup order (store/l2.h:
     * the l2_dir directory, then S3); the sinks among them get a copy of
     * every committed object through the upload queue. */
    struct tier *tiers[TIER_MAX];
    int n_tiers;
    int l2_lookups_running;                   /* fills reading from a tier */
    struct sl_list l2_queue;                  /* uploads waiting (store/l2.c) */
    int l2_uploads_queued;
    int l2_uploads_running;
    uint8_t l2_skip[L2_SKIP_MAX][KEY_HASH_LEN];   /* keys whose L2 copy failed after its head */
    int l2_skip_n, l2_skip_next;
    struct origin_client *origins;
    struct slots slots;
    struct digest_notes *notes;               /* published digests of artifacts (eco/digest_notes.h) */
    struct rwcache rwcache;                   /* rewritten metadata bodies (serve/rwcache.h) */
    struct edge_stats edge_stats;             /* HAProxy's counts of the edge tier (serve/edge_stats.h) */
    struct fill *fills[FILL_TABLE_BUCKETS];   /* running fills by key hash */
    uint64_t spool_bytes;                     /* memory of every fill's spool */
    struct chunk_pool chunks;                 /* where that memory comes from (fill/chunk_pool.h) */
    int refetches_running;                    /* background refetches in flight (at most one) */
    int64_t storage_error_ms;                 /* last write failed by the disk itself, or 0 */
    struct sl_list paused;                    /* fills whose origin is paused */
    bool spool_heads_kept;                    /* a fill may keep its head for followers to
                                                 come (fill/spool.c): worth dropping */
    struct http_server *http;
    struct http_server *admin;
    struct spop_server *spop;
    struct metrics m;
    bool index_loading;       /* the start-up scan is still running */
    bool evicting;            /* an eviction job is queued */
    bool stopping;
    int64_t started_wall;
};

#endif
