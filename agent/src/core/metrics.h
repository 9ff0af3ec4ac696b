/*
 * metrics.h - the agent's counters and gauges, rendered as Prometheus text
 * on the admin listener (/metrics).
 *
 * Counters live in one plain struct owned by the loop thread; modules bump
 * them directly. Gauges that other modules already track (open connections,
 * bytes on disk, fds) are read at render time instead of being duplicated.
 */
#ifndef SLUICE_METRICS_H
#define SLUICE_METRICS_H

#include <stddef.h>
#include <stdint.h>

enum verdict_kind { VERDICT_HIT, VERDICT_FILL, VERDICT_PASS, VERDICT_BUSY, VERDICT_INLINE, VERDICT_REJECT, VERDICT_KINDS };

/* Label values of enum verdict_kind; also the verdict strings sent to HAProxy. */
extern const char *const verdict_names[VERDICT_KINDS];

/* Why a cache writer was detached (label `reason`). */
enum write_fail_reason {
    WFAIL_ENOSPC, WFAIL_EDQUOT, WFAIL_EIO, WFAIL_SHORT, WFAIL_TIMEOUT, WFAIL_LAG,
    WFAIL_TOO_LARGE, WFAIL_ORIGIN, WFAIL_OTHER, WFAIL_REASONS
};

struct metrics {
    uint64_t verdicts[VERDICT_KINDS];        /* SPOP answers by kind */
    uint64_t hits;                           /* responses served from a committed object */
    uint64_t misses;                         /* fills started (leaders) */
    uint64_t followers;                      /* requests attached to a running fill */
    uint64_t not_modified;                   /* 304s */
    uint64_t range_responses;                /* 206s */
    uint64_t bytes_hit;                      /* body bytes sent from committed objects */
    uint64_t bytes_fill;                     /* body bytes sent from fills */
    uint64_t fills_committed;
    uint64_t fills_failed;                   /* origin error or truncation */
    uint64_t fills_not_cacheable;            /* origin answered something we don't store */
    uint64_t fills_in_flight;                /* gauge */
    uint64_t followers_attached;             /* gauge: readers attached to fills */
    uint64_t write_failures[WFAIL_REASONS];
    uint64_t writers_detached;
    uint64_t refetches;          /* background refetches after a lag detach */
    uint64_t stale_index_dropped;            /* C3: entry whose object was gone/bad */
    uint64_t evictions;
    uint64_t evicted_bytes;
    uint64_t temp_swept;                     /* crash debris removed at start */
    uint64_t bad_requests;                   /* 400/414 from key validation */
    uint64_t busy_503_agent;                 /* 503 + Retry-After sent by the agent */
};

const char *write_fail_reason_name(enum write_fail_reason r);
enum write_fail_reason write_fail_reason_from_errno(int err);

struct agent;
/* Render every metric; returns a malloc'd buffer and its length. */
char *metrics_render(struct agent *a, size_t *len);

#endif
