/*
 * hit.h - answering from a committed object: the HTTP side's hit responses
 * (200, 206, 304, 416, HEAD, with sendfile for the body) and the header
 * lines every stored representation carries, which the inline verdict and
 * fill responses reuse so that a hit looks the same whichever way it leaves.
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

/* ETag, Last-Modified and the kept origin headers of a stored object. */
bool put_meta_headers(struct http_head *h, const struct obj_meta *m);

/* Every header line of a hit after its status line: Date, the stored
 * ones, Age, Accept-Ranges and "Cache-Status: sluice; hit". */
bool put_hit_headers(struct http_head *h, const struct obj_meta *m);

/* Serve the object of index entry `e` for the canonical request `cn`.
 * False when the object was not usable (the entry was dropped, C3): the
 * caller goes on as a miss. */
bool serve_hit(struct agent *a, struct http_conn *c, const struct http_request *req, struct index_entry *e,
               const struct canon *cn);

#endif
