/*
 * metrics.h - the agent's counters and gauges, rendered as Prometheus text
 * on the admin listener (/metrics).
 *
 * Counters live in plain structs owned by the loop thread; modules bump
 * them directly. What happens to one route's requests (hits, misses, bytes,
 * fills, verdicts...) is counted per route, in struct route_counters, and
 * rendered with a `route` label; what belongs to the whole agent (cache
 * writers, eviction, the index) is not. Gauges that other modules already
 * track (open connections, bytes on disk, fds) are read at render time
 * instead of being duplicated.
 *
 * metrics.c describes every metric in one table (name, type, help, and
 * where its value lives), so adding a counter is a field here and a row
 * there; docs/architecture.md section 8 says what is counted.
 */
#ifndef SLUICE_METRICS_H
#define SLUICE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "origin/origin.h"
#include "route/route.h"
#include "store/tier.h"

enum verdict_kind { VERDICT_HIT, VERDICT_FILL, VERDICT_PASS, VERDICT_BUSY, VERDICT_INLINE, VERDICT_REJECT, VERDICT_REDIRECT, VERDICT_KINDS };

/* Label values of enum verdict_kind; also the verdict strings sent to HAProxy. */
extern const char *const verdict_names[VERDICT_KINDS];

/* Why a cache writer was detached (label `reason`). */
enum write_fail_reason {
    WFAIL_ENOSPC, WFAIL_EDQUOT, WFAIL_EIO, WFAIL_SHORT, WFAIL_TIMEOUT, WFAIL_LAG,
    WFAIL_TOO_LARGE, WFAIL_ORIGIN, WFAIL_INVALID, WFAIL_INTEGRITY, WFAIL_PURGED, WFAIL_OTHER, WFAIL_REASONS
};

/* Why an origin's complete answer was not shared (label `reason`). */
enum not_shared_reason { NS_NO_STORE, NS_PRIVATE, NS_VARY_STAR, NS_SET_COOKIE, NS_REASONS };

/* What one route's requests did (label `route`). */
struct route_counters {
    uint64_t verdicts[VERDICT_KINDS];        /* SPOP answers by kind */
    uint64_t hits;                           /* responses served from a committed object */
    uint64_t misses;                         /* fills started by a request (leaders) */
    uint64_t followers;                      /* requests attached to a running fill */
    uint64_t late_joins;                     /* ... after its whole body had arrived (commit window) */
    uint64_t not_modified;                   /* 304s */
    uint64_t range_responses;                /* 206s */
    uint64_t bytes_hit;                      /* body bytes sent from committed objects */
    uint64_t bytes_fill;                     /* body bytes sent from fills */
    uint64_t fills_committed;
    uint64_t fills_failed;                   /* origin error or truncation */
    uint64_t fills_not_cacheable;            /* origin answered something we don't store */
    uint64_t bad_requests;                   /* refused by the canonical form (400/404/414) */
    uint64_t oversized_requests;             /* ... of them: over request_target_max or request_segments_max */
    uint64_t busy_503_agent;                 /* 503 + Retry-After sent by the agent */
    uint64_t revalidated;                    /* metadata revalidations answered 304 */
    uint64_t stale_while_revalidate;         /* stale metadata served while it was refreshed */
    uint64_t stale_if_error;                 /* stale metadata served because the origin failed */
    uint64_t integrity_verified;             /* fills whose body matched its published digest */
    uint64_t integrity_failures;             /* ... that did not: aborted, nothing stored */
    uint64_t integrity_unknown;              /* artifact fills with no digest known (stored unverified) */
    uint64_t origin_bad[ORIGIN_BAD_REASONS]; /* responses refused for their framing (502) */
    uint64_t not_shared[NS_REASONS];         /* answers the origin said no cache may share */
    uint64_t cookies_dropped;                /* Set-Cookie dropped from a stored ecosystem answer */
    uint64_t headers_dropped;                /* origin headers left out of an object: too large to fit */
};

/* How an L2 lookup ended (metrics per tier: hits, misses and errors by
 * reason). `busy`: skipped, l2_lookups_max reads were running. */
enum l2_lookup_end {
    L2_HIT, L2_MISS_ABSENT, L2_MISS_STALE, L2_ERR_TIMEOUT, L2_ERR_ERROR, L2_ERR_BUSY, L2_LOOKUP_ENDS
};

/* What became of a copy of a committed object to a sink tier. */
enum l2_upload_result { L2_UP_OK, L2_UP_FAILED, L2_UP_DROPPED, L2_UP_RESULTS };

/* One tier's counters (label `tier`), by agent tier index. */
struct tier_counters {
    uint64_t lookups[L2_LOOKUP_ENDS];
    uint64_t bytes_read;                     /* body bytes a fill received from the tier */
    uint64_t reads_failed;                   /* reads that failed mid-body (clients aborted) */
    double lookup_seconds_sum;               /* from the lookup to its head, miss or error */
    uint64_t lookup_count;
    uint64_t uploads[L2_UP_RESULTS];
    uint64_t upload_queued;                  /* gauge: copies waiting in the upload queue */
};

/* The commit window histogram's upper bounds, in seconds (metrics.c). */
#define COMMIT_WINDOW_BUCKETS 10
extern const double metrics_commit_window_bounds[COMMIT_WINDOW_BUCKETS];

/* Index of the counters of requests that matched no route. */
#define METRICS_NO_ROUTE ROUTE_MAX

struct metrics {
    struct route_counters route[ROUTE_MAX + 1];   /* by route index; [METRICS_NO_ROUTE] */
    uint64_t fills_in_flight;                /* gauge */
    uint64_t followers_attached;             /* gauge: readers attached to fills */
    uint64_t write_failures[WFAIL_REASONS];
    uint64_t writers_detached;
    uint64_t refetches;                      /* background refetches after a lag detach */
    double commit_window_sum;                /* seconds from fills' last byte to their index entry */
    uint64_t commit_window_count;            /* ... of that many committed fills */
    uint64_t commit_window_buckets[COMMIT_WINDOW_BUCKETS];   /* ... at most metrics_commit_window_bounds[i] */
    uint64_t stale_index_dropped;            /* C3: entry whose object was gone/bad */
    uint64_t evictions;
    uint64_t evicted_bytes;
    uint64_t temp_swept;                     /* crash debris removed at start */
    uint64_t purged_objects;                 /* objects removed by the admin API's DELETE */
    uint64_t edge_flushes[3];                /* purges emptying the edge tier, by enum edge_flush_result */
    uint64_t edge_lookups, edge_hits;        /* HAProxy's counts of the edge tier (serve/edge_stats.h) */
    uint64_t edge_stats_failures;            /* reads of those that failed */
    struct tier_counters tier[TIER_MAX];     /* by agent tier index */
    uint64_t reloads[2];                     /* SIGHUP: [0] applied, [1] refused */
    uint64_t config_generation;              /* 1 at start, +1 per applied reload */
    uint64_t config_loaded_wall;             /* when the running configuration was read (unix s) */
};

struct agent;

/* A fill committed `seconds` after its last byte (the commit window). */
void metrics_commit_window(struct metrics *m, double seconds);

/* The counters of `r`'s requests (r NULL: requests that matched no route). */
struct route_counters *metrics_route(struct agent *a, const struct route *r);

const char *write_fail_reason_name(enum write_fail_reason r);
enum write_fail_reason write_fail_reason_from_errno(int err);

/* Render every metric; returns a malloc'd buffer and its length. */
char *metrics_render(struct agent *a, size_t *len);

#endif
