/*
 * hit.h - answering from a committed object: the HTTP side's hit responses
 * (200, 206, 304, 416, HEAD, with sendfile for the body; a stored 404 of
 * negative caching; metadata rewritten on its way out, rewrite.h) and the
 * header lines every stored representation carries, which the inline
 * verdict and fill responses reuse so that a hit looks the same whichever
 * way it leaves.
 */
#ifndef SLUICE_HIT_H
#define SLUICE_HIT_H

#include <stdbool.h>

#include "core/agent.h"
#include "http/http_server.h"
#include "route/canon.h"
#include "store/objfile.h"

struct index_entry;

/* "HTTP/1.1 <status> <text>" and Date. False when the head is full. */
bool put_status_and_date(struct http_head *h, int status);

/* ETag (`etag`, or the stored one when NULL), Last-Modified and the kept
 * origin headers of a stored object. */
bool put_meta_headers(struct http_head *h, const struct obj_meta *m, const char *etag);

/* Every header line of a plain 200 hit after its status line: Date, the
 * stored ones, Age (counted from `validated`; the edge memory tier's lines
 * instead when `edge_ttl` > 0, edge.h), Accept-Ranges and
 * "Cache-Status: sluice; hit". */
bool put_hit_headers(struct http_head *h, const struct obj_meta *m, int64_t validated, int64_t edge_ttl);

/* "Vary: Accept" when the route's ecosystem keys on representations and
 * the object is not an artifact (an artifact has one). */
bool put_vary(struct http_head *h, const struct canon *cn);

/*
 * A response serving the object of index entry `e` for the canonical
 * request `cn`, its Cache-Status "sluice; <cache_status>" ("hit", or a
 * stale or revalidated one). NULL when the object was not usable (the
 * entry was dropped, C3): the caller goes on as a miss.
 */
struct http_response *hit_response(struct agent *a, const struct http_request *req, struct index_entry *e,
                                   const struct canon *cn, const char *cache_status);

/* hit_response with "hit", handed to the connection; false as above. */
bool serve_hit(struct agent *a, struct http_conn *c, const struct http_request *req, struct index_entry *e,
               const struct canon *cn);

#endif
