/*
 * origin_limit.h - an origin's adaptive concurrency limit: slow start, then
 * additive increase, multiplicative decrease (AIMD, as TCP and Netflix's
 * concurrency-limits do it).
 *
 * The limit is how many fetches slots.c lets run at once to one origin
 * (route). It moves between a floor (origin_limit_min) and the fixed cap
 * (origin_max_in_flight_per_origin), from origin_limit_start:
 *
 *   grow     a response head came fast (headers within origin_limit_slow_head
 *            of the request, a status that is neither 429 nor 5xx) while
 *            leaders wait in this origin's queue for want of a slot: +1 per
 *            such head below `ssthresh` (slow start: the limit doubles per
 *            round trip), +1 per `limit` such heads above it (additive);
 *   cut      a 429, a 503 or other 5xx, a connection error or reset, a header
 *            timeout, a slow head: halve (never below the floor), and
 *            `ssthresh` becomes the new limit; then it holds (no cut, no
 *            growth) for origin_limit_cooldown, or for the Retry-After of
 *            the 429/503 that cut it when longer (at most
 *            LIMIT_HOLD_MAX_MS), so one bad burst costs one halving;
 *   recover  after LIMIT_RECOVER_COOLDOWNS cooldowns without a cut, growth
 *            is slow start again, up to the cap.
 *
 * Off (origin_limit_adaptive 0) the limit is the cap and nothing moves:
 * the fixed limit of before. Growth needs waiters, so the limit never runs
 * ahead of the demand the origin has actually answered quickly.
 *
 * Invariants (asserted after every change): 1 <= min <= limit <= cap;
 * min <= ssthresh <= cap; 0 <= credit < limit.
 */
#ifndef SLUICE_ORIGIN_LIMIT_H
#define SLUICE_ORIGIN_LIMIT_H

#include <stdbool.h>
#include <stdint.h>

/* Why a limit was cut: the `reason` label of
 * sluice_origin_limit_decreases_total. */
enum limit_cut { CUT_429, CUT_503, CUT_5XX, CUT_ERROR, CUT_HEADER_TIMEOUT, CUT_SLOW_HEAD, LIMIT_CUTS };

/* What a response head says: grow (if waiters), cut, or nothing. */
enum limit_signal { SIG_FAST, SIG_CUT };

#define LIMIT_RECOVER_COOLDOWNS 10
#define LIMIT_HOLD_MAX_MS (60 * 1000)

struct limit_settings {
    bool adaptive;            /* origin_limit_adaptive */
    int cap;                  /* origin_max_in_flight_per_origin */
    int start;                /* origin_limit_start (clamped to [min, cap]) */
    int min;                  /* origin_limit_min (clamped to cap) */
    int64_t slow_head_ms;     /* origin_limit_slow_head */
    int64_t cooldown_ms;      /* origin_limit_cooldown */
};

struct origin_limit {
    struct limit_settings set;   /* min and start already clamped */
    int limit;
    int ssthresh;
    int credit;                  /* fast heads toward the next additive step */
    int64_t last_cut_ms;         /* 0: never cut */
    int64_t hold_until_ms;       /* no cut, no growth before it */
    uint64_t increases;          /* +1 steps */
    uint64_t decreases[LIMIT_CUTS];
};

/* First settings (`fresh`: a new origin, starting at `start`) or a reload's
 * (keeps the current limit, clamped into the new [min, cap]; turning
 * adaptive on starts over from `start`, off sets the cap). */
void limit_configure(struct origin_limit *l, const struct limit_settings *set, bool fresh);

/* Classify a response head: *why is set on SIG_CUT. */
enum limit_signal limit_classify(const struct origin_limit *l, int status, int64_t head_ms, enum limit_cut *why);

/* A fast head. `blocked`: leaders of this origin wait for want of its own
 * slots. Returns whether the limit grew. */
bool limit_fast(struct origin_limit *l, bool blocked, int64_t now_ms);

/* A sign of overload; `hold_ms`: the answer's Retry-After (0: none).
 * Returns whether the limit was cut (not in a hold, not already at the
 * floor, adaptive on). */
bool limit_cut(struct origin_limit *l, enum limit_cut why, int64_t now_ms, int64_t hold_ms);

/* Label value of a cut reason ("429", "503", "5xx", "error",
 * "header_timeout", "slow_head"). */
const char *limit_cut_name(enum limit_cut why);

#endif
