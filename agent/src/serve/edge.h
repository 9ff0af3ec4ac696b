/*
 * edge.h - the edge memory tier: HAProxy's own `cache` in front of the
 * agent, which answers repeated hits of small immutable objects without an
 * SPOP exchange or a second hop (haproxy/haproxy.cfg, "edge memory tier").
 *
 * The agent decides what may go there: a hit response carries the mark
 * "X-Sluice-Edge-TTL: <ttl>" instead of Age when its object is an
 * immutable artifact (eco class ECO_IMMUTABLE), a plain 200 sent as stored
 * (not rewritten), at most edge_tier_max_size bytes (ttl = edge_tier_ttl).
 * HAProxy stores only the agent's own answers with that mark, takes the
 * mark off first, and keeps them for its cache's max-age, which
 * --print-haproxy sets to edge_tier_ttl: a stored object has no
 * Cache-Control or Expires of the origin's (fill.c's kept headers) to say
 * otherwise. Without Age, HAProxy counts the entry's age from its store.
 * Everything else (metadata, ranges, conditionals it cannot answer, stale
 * copies, fills) keeps going to the agent.
 *
 * A purge empties the tier: HAProxy keys its entries under a generation it
 * reads from a map (haproxy/edge.map, entry "gen"), and edge_flush sets a
 * new generation through HAProxy's runtime API (SLUICE_HAPROXY_SOCKET), so
 * no entry stored before is ever found again. Generations are wall-clock
 * milliseconds, so they keep growing across agent restarts.
 *
 * Invariant: a purge answers only after edge_flush ran, and edge_flush runs
 * only after the agent forgot the purged objects (purge.c), so an entry
 * stored under the new generation never holds a purged object.
 */
#ifndef SLUICE_EDGE_H
#define SLUICE_EDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "http/http_server.h"
#include "route/canon.h"
#include "store/objfile.h"

/* Seconds the edge tier may keep this response (status `status` of the
 * stored object `m`, sent unrewritten when `whole`), 0 when it may not. */
int64_t edge_ttl(const struct sluice_config *cfg, const struct canon *cn, const struct obj_meta *m, int status,
                 bool whole);

/* The mark of a hit the tier may keep `ttl` (> 0) seconds; false when the
 * head is full. */
bool edge_put_lines(struct http_head *h, int64_t ttl);

/* A new generation, larger than every earlier one of this process. Loop
 * thread only. */
int64_t edge_next_generation(void);

enum edge_flush_result {
    EDGE_FLUSHED,     /* HAProxy took the new generation */
    EDGE_NO_TIER,     /* no HAProxy on the socket, or one without the tier: nothing to empty */
    EDGE_FAILED,      /* HAProxy is there but did not take it: err says why */
};

/* Set generation `gen` in the HAProxy whose runtime API socket is
 * <socket_dir>/haproxy.sock (haproxy_socket_dir: a copy taken on the loop,
 * a reload replaces cfg). Blocking, bounded by a short timeout per step:
 * call it from a worker. */
enum edge_flush_result edge_flush(const char *socket_dir, int64_t gen, char *err, size_t errlen);

/* One runtime API command (newline-terminated) to <socket_dir>/haproxy.sock;
 * HAProxy's whole reply into out, NUL-terminated (cut at outlen - 1).
 * 0, or -1 with errno (ENOENT, ECONNREFUSED: no HAProxy there). Blocking,
 * a second per step at most: workers only. */
int edge_api_command(const char *socket_dir, const char *cmd, char *out, size_t outlen);

/* HAProxy's counts for the tier: the frontend's cache lookups and hits. */
struct edge_counts {
    uint64_t lookups;
    uint64_t hits;
};

/* The counts of frontend `frontend` in a reply to `show stat` (CSV whose
 * first line names the columns); false when the reply has no such
 * frontend or columns, or a count is not a number. */
bool edge_parse_stats(const char *csv, const char *frontend, struct edge_counts *out);

const char *edge_flush_result_name(enum edge_flush_result r);

/* The id of edge.map in a reply to the runtime API's `show map`, or -1. */
long edge_map_id(const char *show_map_reply);

#endif
