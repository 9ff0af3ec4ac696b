/*
 * origin.h - fetching from origins: libcurl's multi interface on the libev
 * loop.
 *
 * One origin_client owns a curl multi handle whose sockets and timer are
 * libev watchers, so transfers never block the loop. A transfer reports:
 *
 *   on_headers(status, headers)  once, for the final response (redirects
 *                                the route's policy allows, redirect.h, are
 *                                followed and never reported; one it refuses
 *                                ends the transfer with ORIGIN_ERR_REDIRECT)
 *   on_data(bytes)               body bytes as they arrive; returning
 *                                ORIGIN_PAUSE keeps them at the origin side
 *                                (flow control) until origin_resume
 *   on_done(result)              once, at the end, unless aborted first
 *
 * Callbacks may call origin_abort (on this or any transfer) and
 * origin_resume; they must not free the transfer any other way. After
 * origin_abort no callback of that transfer runs again and its connection
 * is closed (an unfinished transfer's connection is never reused).
 *
 * Stall window (C4): a transfer that receives nothing for stall_timeout_ms
 * while not paused fails with ORIGIN_ERR_STALL.
 *
 * Header deadline (C8): each request's whole header block must arrive
 * within header_timeout_ms of the request being sent (a trickling origin
 * touches the stall window with every byte, so that alone never ends it);
 * past it the transfer fails with ORIGIN_ERR_HEADER_TIMEOUT.
 *
 * Ambiguous framing (C8): a response with both Content-Length and
 * Transfer-Encoding, Content-Lengths that differ, or one that is not a
 * number, or a header line that is not a well-formed field (RFC 9112
 * section 5: a recipient must not guess at it; nginx refuses it the same
 * way), is refused before on_headers: on_bad(reason), then on_done with
 * ORIGIN_ERR_PROTOCOL. Content-Length values that are all equal ("5, 5",
 * or the same field twice) are one length (RFC 9112 section 6.3).
 */
#ifndef SLUICE_ORIGIN_H
#define SLUICE_ORIGIN_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "origin/redirect.h"

#define ORIGIN_PAUSE ((size_t)-1)
#define ORIGIN_MAX_HEADERS 32

enum origin_result {
    ORIGIN_OK = 0,
    ORIGIN_ERR_CONNECT,     /* could not connect / resolve / TLS */
    ORIGIN_ERR_STALL,       /* nothing received for the stall window */
    ORIGIN_ERR_HEADER_TIMEOUT, /* the header block took longer than its deadline */
    ORIGIN_ERR_TRUNCATED,   /* body shorter than announced, or reset mid-body */
    ORIGIN_ERR_PROTOCOL,    /* malformed response */
    ORIGIN_ERR_REDIRECT,    /* a redirect the route's policy refuses */
    ORIGIN_ERR_STATUS,      /* the origin answered an error status where the
                               caller has better to serve (revalidations) */
    ORIGIN_ERR_INTEGRITY,   /* the body does not match its published digest
                               (set by the fill, never by a transfer) */
    ORIGIN_ERR_OTHER,
};

/* Why a response was refused for its framing (label `reason`). */
enum origin_bad {
    ORIGIN_BAD_NONE,
    ORIGIN_BAD_CL_TE,         /* Content-Length and Transfer-Encoding */
    ORIGIN_BAD_CL_CONFLICT,   /* Content-Lengths that differ */
    ORIGIN_BAD_CL_INVALID,    /* a Content-Length that is not a number */
    ORIGIN_BAD_FIELD,         /* a header line that is not a field: no colon, a
                                 name that is not a token, NUL/CR/LF inside */
    ORIGIN_BAD_REASONS
};

struct origin_header {
    char *name;
    char *value;
};

/* The first ORIGIN_MAX_HEADERS headers, and what the cache must know of
 * all of them (a hostile origin's padding cannot hide a no-store). */
struct origin_headers {
    struct origin_header h[ORIGIN_MAX_HEADERS];
    int n;
    int64_t content_length;   /* -1 when not announced */
    bool no_store;            /* Cache-Control: no-store */
    bool private_;            /* Cache-Control: private (with or without fields) */
    bool vary_star;           /* Vary: * */
    int set_cookies;          /* Set-Cookie fields */
};

struct origin_callbacks {
    void (*on_headers)(void *ctx, int status, const struct origin_headers *hdrs);
    size_t (*on_data)(void *ctx, const uint8_t *data, size_t len);
    void (*on_done)(void *ctx, enum origin_result result, const char *detail);
    /* Optional: the response was refused for its framing (then on_done). */
    void (*on_bad)(void *ctx, enum origin_bad why);
};

struct origin_client;
struct origin_xfer;

struct origin_stats {
    uint64_t requests;
    uint64_t in_flight;
    uint64_t errors[ORIGIN_ERR_OTHER + 1];
    uint64_t bytes;
    uint64_t redirects[REDIRECT_VERDICTS];   /* [REDIRECT_FOLLOW]: followed; others: refused, by why */
};

/* The header deadline is ORIGIN_HEADER_TIMEOUT_MS until set. */
#define ORIGIN_HEADER_TIMEOUT_MS 10000
struct origin_client *origin_client_new(struct ev_loop *loop, int64_t connect_timeout_ms,
                                        int64_t stall_timeout_ms);
void origin_client_free(struct origin_client *oc);
/* Reload: transfers started from now on use these (running ones keep theirs). */
void origin_client_set_timeouts(struct origin_client *oc, int64_t connect_timeout_ms, int64_t stall_timeout_ms);
void origin_client_set_header_timeout(struct origin_client *oc, int64_t header_timeout_ms);
const struct origin_stats *origin_client_stats(const struct origin_client *oc);

/* Start a GET of `url` for `route` (whose redirect policy applies), with
 * `headers` ("Name: value" lines, NULL-terminated, copied; may be NULL):
 * Accept for a representation, If-None-Match / If-Modified-Since for a
 * revalidation. Never fails synchronously: errors arrive in on_done. */
struct origin_xfer *origin_fetch(struct origin_client *oc, const struct route *route, const char *url,
                                 const char *const *headers, const struct origin_callbacks *cb, void *ctx);
void origin_abort(struct origin_xfer *x);
void origin_resume(struct origin_xfer *x);

const char *origin_result_name(enum origin_result r);
/* Label value of a framing refusal ("cl-te", "cl-conflict", "cl-invalid"). */
const char *origin_bad_name(enum origin_bad why);

#endif
