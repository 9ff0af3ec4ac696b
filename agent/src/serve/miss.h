/*
 * miss.h - answering from a fill: the leader of a new origin fetch and
 * every follower of a running one read the same spool (fill.h), each at
 * its own pace. A revalidation of stored metadata is a fill too: when the
 * origin says 304, or fails while a stale copy may be served, its readers
 * are answered from the stored copy instead (hit.h).
 */
#ifndef SLUICE_MISS_H
#define SLUICE_MISS_H

#include <stdbool.h>

#include "core/agent.h"
#include "fill/fill.h"
#include "http/http_server.h"
#include "route/canon.h"

struct miss_opts {
    const char *cache_status;        /* "fwd=uri-miss", "fwd=miss" (stale index
                                        entry) or "fwd=stale" (revalidation) */
    const struct fill_request *rq;   /* what a new fill asks the origin for */
    bool stale_ok;                   /* a stored copy may be served if the
                                        origin fails or its queue is full */
};

/*
 * Attach to the running fill of `cn`, or start one (taking an origin slot,
 * maybe after a wait in the queue; 503 + Retry-After when the queue is
 * full and no stale copy may be served). `req` must stay valid until the
 * response finishes (it does: it lives in the connection).
 */
void serve_miss(struct agent *a, struct http_conn *c, const struct http_request *req, const struct canon *cn,
                const struct miss_opts *o);

/* The fill_request of a plain fetch of `cn` (its class, its representation). */
void miss_request(const struct canon *cn, struct fill_request *rq);

#endif
