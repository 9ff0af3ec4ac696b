/*
 * miss.h - answering from a fill: the leader of a new origin fetch and
 * every follower of a running one read the same spool (fill.h), each at
 * its own pace.
 */
#ifndef SLUICE_MISS_H
#define SLUICE_MISS_H

#include <stdbool.h>

#include "core/agent.h"
#include "http/http_server.h"
#include "route/canon.h"

/*
 * Attach to the running fill of `cn`, or start one (taking an origin slot,
 * maybe after a wait in the queue; 503 + Retry-After when the queue is
 * full). `stale`: the index had the key but its object was unusable
 * (Cache-Status fwd=miss rather than fwd=uri-miss).
 */
void serve_miss(struct agent *a, struct http_conn *c, const struct canon *cn, bool stale);

#endif
