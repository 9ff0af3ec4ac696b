/*
 * edge_stats.h - HAProxy's own counts for the edge memory tier, mirrored
 * into the agent's metrics.
 *
 * A hit HAProxy answers from the tier never reaches the agent, so the
 * agent's hit counters cannot see it; HAProxy counts the tier's lookups and
 * hits on the `edge` frontend (`show stat`: cache_lookups, cache_hits).
 * Every EDGE_STATS_PERIOD_S a worker reads them through the runtime API
 * (edge.h) and the loop copies them into sluice_edge_lookups_total and
 * sluice_edge_hits_total. No HAProxy on the socket (not started yet, or
 * none) is not an error: nothing is read. A read that fails otherwise (no
 * edge frontend, a timeout) keeps the last values and counts
 * sluice_edge_stats_failures_total. The values are HAProxy's: they
 * restart at 0 when HAProxy restarts or reloads.
 *
 * Invariants: at most one read in flight; the worker touches only its own
 * job (the socket directory is copied on the loop: a reload replaces cfg);
 * reads are skipped while edge_tier_max_size is 0; once the agent stops,
 * no new read starts (one in flight is finished by workers_stop).
 */
#ifndef SLUICE_EDGE_STATS_H
#define SLUICE_EDGE_STATS_H

#include <ev.h>
#include <stdbool.h>

#define EDGE_STATS_PERIOD_S 2.0
#define EDGE_STATS_FRONTEND "edge"   /* haproxy/haproxy.cfg's frontend */

struct agent;

struct edge_stats {
    ev_timer timer;
    bool reading;            /* a read is on a worker (the timer is not armed then) */
};

/* Start reading every EDGE_STATS_PERIOD_S (the first read soon after). */
void edge_stats_start(struct agent *a);

/* Stop the timer (a read in flight still lands). */
void edge_stats_stop(struct agent *a);

#endif
