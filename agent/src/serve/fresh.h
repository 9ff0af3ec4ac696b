/*
 * fresh.h - how a stored copy of metadata may be used now: the one place
 * that reads the route's freshness settings (route.h: route_freshness).
 *
 *   age < ttl                          FRESH: serve it, ask nobody
 *   age < ttl + stale_while_revalidate STALE_SERVE: serve it at once, and
 *                                      refresh it in the background (one
 *                                      revalidation per key)
 *   age < ttl + stale_if_error         STALE_ON_ERROR: revalidate first;
 *                                      serve it only if the origin fails
 *   older                              EXPIRED: revalidate first; if the
 *                                      origin fails, so does the request
 *
 * Age counts from when the copy was fetched or last confirmed by the
 * origin (index_entry.validated). A stored 404 (negative caching) is fresh
 * for negative_ttl and is never served stale. A client's no-cache /
 * max-age=0 makes a fresh copy STALE_ON_ERROR when the route honours it.
 */
#ifndef SLUICE_FRESH_H
#define SLUICE_FRESH_H

#include <stdbool.h>
#include <stdint.h>

#include "route/route.h"

enum freshness { FRESH, STALE_SERVE, STALE_ON_ERROR, EXPIRED };

/* `validated` and `now` in wall seconds; `status` the stored status. */
enum freshness fresh_judge(const struct route_freshness *rf, int status, int64_t validated, int64_t now,
                           bool client_no_cache);

/* Does this Cache-Control header value ask for revalidation (no-cache,
 * max-age=0)? NULL is no. */
bool fresh_client_no_cache(const char *cache_control);

const char *freshness_name(enum freshness f);

#endif
