/*
 * classify.h - the one decision of what a request is to the cache, shared
 * by the SPOP verdict and the HTTP side so they always agree.
 *
 * Order of the checks (the first that applies wins):
 *   no route for the path                    CLASS_NO_ROUTE
 *   the route has no origin                  CLASS_ROUTE_OFF
 *   not GET/HEAD, credentials, or a route
 *   whose ecosystem caches nothing           CLASS_PASS   (HAProxy forwards it)
 *   the path and query longer, or the path
 *   in more segments, than `lim` allows      CLASS_REJECT (414), checked
 *                                            before any canonical work
 *   the path or query is ambiguous           CLASS_REJECT (400/404/414, canon.h)
 *   the ecosystem spells the name otherwise  CLASS_REDIRECT (301 to `location`)
 *   the ecosystem says never cached          CLASS_PASS
 *   otherwise (immutable or metadata)        CLASS_CACHEABLE, with the
 *                                            canonical request (key, hash,
 *                                            origin URL)
 */
#ifndef SLUICE_CLASSIFY_H
#define SLUICE_CLASSIFY_H

#include <stdbool.h>
#include <stddef.h>

#include "core/agent.h"
#include "route/canon.h"

enum request_kind {
    CLASS_CACHEABLE,
    CLASS_PASS,
    CLASS_NO_ROUTE,
    CLASS_ROUTE_OFF,
    CLASS_REJECT,
    CLASS_REDIRECT,
};

struct request_class {
    enum request_kind kind;
    const struct route *route;
    int canon_err;          /* CLASS_REJECT: the enum canon_err */
    char location[ROUTE_PREFIX_MAX + KEY_MAX + 1];   /* CLASS_REDIRECT: the edge path */
    struct canon canon;     /* CLASS_CACHEABLE (and the class for PASS after canon) */
};

/* `route` is the request's route (NULL: none); `path` the raw path with
 * its prefix, `query` the raw query (NULL: none), `accept` the Accept
 * header (NULL: none); `lim` the bounds of canon_check_size. */
void serve_classify(const struct route *route, const struct canon_limits *lim, bool get_or_head, bool has_credentials,
                    const char *path, size_t path_len, const char *query, size_t query_len,
                    const char *accept, size_t accept_len, struct request_class *out);

/* The bounds of canon_check_size from the running configuration. */
struct canon_limits serve_canon_limits(const struct sluice_config *cfg);

/* Counts a CLASS_REJECT in its route's counters (bad requests, and the
 * oversized ones apart). */
void serve_count_reject(struct agent *a, const struct request_class *rc);

#endif
