/*
 * slots.h - origin backpressure: a cap on origin fetches in flight (global
 * and per origin) and a bounded FIFO queue of waiting leaders.
 *
 * Only a fill's leader takes a slot: hits, followers of a running (or
 * queued) fill and pass-through never do, so they are never delayed by a
 * cold-cache stampede of distinct keys. Each route is one origin.
 *
 * A leader asks for a slot and gets one of three answers:
 *   GRANTED  a slot is free: fetch now;
 *   QUEUED   wait in its origin's queue; `granted` or `expired` is called
 *            later (exactly one of them), unless slot_cancel is called first;
 *   REJECTED the origin's queue is full: answer 503 + Retry-After (never
 *            on a route whose ecosystem says wait_when_full: those wait in
 *            the queue past its size, up to its timeout).
 *
 * When a slot frees, the waiter that has waited longest among the origins
 * below their own cap gets it (FIFO across origins).
 *
 * Retry-After is an estimate of when a slot will free: the moving average
 * of fill durations times the number of waiters ahead per slot, clamped to
 * [retry_after_min, retry_after_max].
 *
 * Per origin, the number of slots is an adaptive limit below the fixed cap
 * (origin_limit.h): fast response heads while leaders wait raise it, a
 * 429/5xx, an error or a slow head halves it (slots_origin_head,
 * slots_origin_error); a raise grants waiters at once. Each cut is one
 * info line (at most one per route per origin_limit_cooldown).
 *
 * Invariants: a slot is granted only while in_flight < max_in_flight
 * globally and in_flight < the origin's current limit (a reload that lowers
 * a cap, or a cut, lets the fetches above it finish: no new one starts until
 * in_flight is below it); a waiter is on exactly one queue from QUEUED until
 * granted/expired/canceled.
 */
#ifndef SLUICE_SLOTS_H
#define SLUICE_SLOTS_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/list.h"
#include "origin/origin_limit.h"
#include "route/route.h"

enum slot_result { SLOT_GRANTED, SLOT_QUEUED, SLOT_REJECTED };

enum queue_outcome { QWAIT_ADMITTED, QWAIT_TIMEOUT, QWAIT_CANCELED, QWAIT_REJECTED, QWAIT_OUTCOMES };

#define QWAIT_BUCKETS 12

struct slots;

struct slot_wait {
    struct slots *owner;
    int origin;                      /* route index */
    int64_t enqueued_ms;
    uint64_t seq;                    /* arrival order (many arrive in one millisecond) */
    ev_timer timer;
    void (*granted)(void *ctx);
    void (*expired)(void *ctx);
    void *ctx;
    struct sl_list link;             /* on its origin's queue while queued */
    bool queued;
};

struct slot_origin {
    int in_flight;
    int queued;
    int max_in_flight;               /* origin_max_in_flight_per_origin: the cap */
    struct origin_limit lim;         /* lim.limit: the slots it has now (<= the cap) */
    int queue_max;                   /* origin_queue_max */
    int64_t queue_timeout_ms;        /* origin_queue_timeout */
    struct sl_list queue;            /* of struct slot_wait, oldest first */
    int64_t failing_until_ms;        /* slots_origin_seen: a failure was seen */
};

struct slots {
    struct ev_loop *loop;
    const struct route_table *routes;
    int in_flight;
    int queued;
    int max_in_flight;
    int retry_after_min, retry_after_max;
    double avg_fill_s;               /* moving average of slot hold times */
    uint64_t next_seq;               /* arrival numbers of waiters */
    struct slot_origin origins[ROUTE_MAX];   /* by route slot (route.c: slots never move) */
    int n_origins;                   /* origins[0..n) are set up */
    /* queue wait histogram by outcome (Prometheus buckets, seconds) */
    uint64_t wait_buckets[QWAIT_OUTCOMES][QWAIT_BUCKETS];
    uint64_t wait_count[QWAIT_OUTCOMES];
    double wait_sum[QWAIT_OUTCOMES];
};

extern const double slots_wait_bounds[QWAIT_BUCKETS];
const char *queue_outcome_name(enum queue_outcome o);

/* Limits come from cfg, with per-route overrides (config_route_int). */
void slots_init(struct slots *s, struct ev_loop *loop, const struct route_table *routes,
                const struct sluice_config *cfg);

/* Reload: limits from the new cfg, for the routes of the (updated in place)
 * table, including routes new to it. Waiters keep their place and their
 * timer; any the new limits admit are granted at once. */
void slots_reconfigure(struct slots *s, const struct sluice_config *cfg);

/* Ask for a slot for `route`. On SLOT_QUEUED, `w` must stay valid until one
 * of its callbacks ran or slot_cancel was called. */
enum slot_result slot_acquire(struct slots *s, const struct route *route, struct slot_wait *w,
                              void (*granted)(void *ctx), void (*expired)(void *ctx), void *ctx);

/* Leave the queue (client gone). No callback runs afterwards. */
void slot_cancel(struct slots *s, struct slot_wait *w);

/* A granted slot is given back after `held_ms`; the next waiter may run. */
void slot_release(struct slots *s, const struct route *route, int64_t held_ms);

/* Would a new leader for this route be rejected right now? (the verdict) */
bool slots_would_reject(const struct slots *s, const struct route *route);

/* Seconds a rejected client should wait before retrying. */
int slots_retry_after(const struct slots *s, const struct route *route);

/* The origin's health as fills see it: a fetch it failed (refused, timed
 * out, cut, a 5xx) marks it failing for hold_ms; any answer below 500
 * clears that. While it is failing, stale metadata that may be served on
 * error is served without asking it (serve/meta.c). */
void slots_origin_seen(struct slots *s, const struct route *route, bool ok, int64_t hold_ms);
bool slots_origin_failing(const struct slots *s, const struct route *route);

/* The adaptive limit's inputs. A response head came `head_ms` after its
 * slot was granted (redirects followed included): a fast one with leaders
 * waiting grows the limit (and grants one more of them), a 429/5xx or a
 * slow one cuts it, and its Retry-After (`retry_after_ms`, 0 if none)
 * stretches the hold after the cut. A transfer failed on the origin's side
 * (could not connect, stalled, cut mid-body; `header_timeout`: no head in
 * time): cut. */
void slots_origin_head(struct slots *s, const struct route *route, int status, int64_t head_ms,
                       int64_t retry_after_ms);
void slots_origin_error(struct slots *s, const struct route *route, bool header_timeout);

#endif
