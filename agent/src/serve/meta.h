/*
 * meta.h - serving mutable metadata (packuments, index pages): a stored
 * copy is used while fresh, served stale while one revalidation refreshes
 * it, revalidated (If-None-Match / If-Modified-Since) when older, and
 * served stale when the origin fails, within the route's freshness
 * settings (fresh.h).
 */
#ifndef SLUICE_META_H
#define SLUICE_META_H

#include "core/agent.h"
#include "http/http_server.h"
#include "route/canon.h"

struct index_entry;

/* Answer a request for metadata `cn`, whose index entry is `e` (NULL: none). */
void serve_metadata(struct agent *a, struct http_conn *c, const struct http_request *req, struct index_entry *e,
                    const struct canon *cn);

#endif
