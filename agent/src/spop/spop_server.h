/*
 * spop_server.h - the SPOP (HAProxy SPOE protocol v2.0) agent listener.
 *
 * Accepts HAProxy's agent connections on the libev loop, performs the HELLO
 * handshake (including health-check HELLOs), decodes NOTIFY frames carrying
 * the "lookup" message, asks the verdict callback (which answers from memory
 * only, synchronously) and replies with an ACK that sets txn-scope variables.
 * Protocol errors get an AGENT-DISCONNECT with the matching status code and
 * the connection is closed; nothing a peer sends can crash the agent or leak
 * a descriptor. The wire codec lives in spop_codec.h.
 *
 * The "lookup" message args (names as in haproxy/spoe.conf):
 *   route  STRING  route name from the map (missing/NULL = no route)
 *   method STRING  request method
 *   path   STRING  raw path (no query)
 *   query  STRING  raw query without '?' (NULL when none)
 *   accept STRING  the Accept header (NULL when none): ecosystems whose
 *                  origins answer by representation key on it
 *   auth   BOOL    the request carries credentials (Authorization/Cookie)
 *   range  BOOL    the request carries a Range header
 *   inm    BOOL    the request carries If-None-Match
 *   ims    BOOL    the request carries If-Modified-Since
 * Unknown args are ignored; missing ones are treated as empty/false, except
 * that the request counts as "plain" (no Range, no conditional: a full 200
 * is the right answer) only when range, inm and ims were all sent and all
 * false. Other messages are acknowledged with verdict "pass".
 *
 * ACK actions (always at least one): set-var txn "verdict" STRING, and when
 * retry_after >= 0, set-var txn "retry_after" INT32; a rejected request
 * (verdict "reject") also gets set-var txn "status" INT32 (400, 404, 414)
 * and "reason" STRING, which HAProxy sends back as the answer; a request
 * for a name the ecosystem spells another way (verdict "redirect") gets
 * set-var txn "location" STRING, which HAProxy answers with a 301. An inline answer (verdict
 * "inline": HAProxy sends the response itself, haproxy/sluice.lua) adds
 * set-var txn "hdrs" STRING ("Name: value\r\n" lines) and "body" BINARY;
 * when that does not fit in one frame of the negotiated size the ACK carries
 * the verdict's fallback instead (an inline answer is an optimisation, never
 * the only way to serve a request).
 */
#ifndef SLUICE_SPOP_SERVER_H
#define SLUICE_SPOP_SERVER_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct spop_lookup {
    const char *route;   size_t route_len;   /* route == NULL: arg missing or NULL */
    const char *method;  size_t method_len;
    const char *path;    size_t path_len;
    const char *query;   size_t query_len;   /* query == NULL: no query */
    const char *accept;  size_t accept_len;  /* accept == NULL: no Accept */
    bool has_auth;
    bool has_range;
    bool plain;          /* range, inm and ims all present and false */
};

struct spop_verdict {
    const char *verdict;   /* "hit", "fill", "pass", "busy", "inline", "reject" (static) */
    int64_t retry_after;   /* seconds, or -1 for none */
    /* verdict "reject" only: the HTTP status HAProxy answers and why */
    int status;                      /* 0: none */
    const char *reason;              /* static text, or NULL */
    /* verdict "redirect" only: where to (valid until the callback runs again) */
    const char *location;
    /* verdict "inline" only; the pointers stay valid until the callback
     * runs again (the callback owns the storage). */
    const char *fallback;            /* sent instead when the frame is too small */
    const char *hdrs;   size_t hdrs_len;
    const uint8_t *body; size_t body_len;
};

typedef void (*spop_verdict_fn)(void *ctx, const struct spop_lookup *in,
                                struct spop_verdict *out);

/* Largest frame the agent accepts before and after HELLO, and the most it
 * announces as max-frame-size (it answers min(HAProxy's value, this)). */
#define SPOP_SERVER_MAX_FRAME 65536

/* Why the server closed a connection on its own (label `reason`):
 *   cap            accepted past max_connections: DISCONNECT 13, closed
 *   hello_timeout  no whole HELLO within frame_timeout of the connect
 *   frame_timeout  a frame begun but not whole within frame_timeout
 *   idle_timeout   no frame at all for idle_timeout after the HELLO
 * The three timeouts say DISCONNECT 2 ("timeout") and close at once. */
enum spop_drop_reason { SPOP_DROP_CAP, SPOP_DROP_HELLO_TIMEOUT, SPOP_DROP_FRAME_TIMEOUT, SPOP_DROP_IDLE_TIMEOUT,
                        SPOP_DROP_REASONS };

extern const char *const spop_drop_reason_names[SPOP_DROP_REASONS];

/* What a peer may cost. HAProxy's own connections are idle between
 * requests by design (2.6 closes them after `timeout idle`, 3.1+ after the
 * backend's `timeout server`), so idle_ms must be longer than those; a
 * frame, and the HELLO counted from the connect, has no such excuse. */
struct spop_limits {
    int64_t frame_timeout_ms;   /* > 0 */
    int64_t idle_timeout_ms;    /* 0: an idle connection after its HELLO stays */
    int64_t max_connections;    /* 0: no cap */
};

/* What spop_server_start begins with, until spop_server_set_limits. */
#define SPOP_LIMITS_DEFAULT ((struct spop_limits){ 5000, 0, 0 })

/* Counters for /metrics. Owned by the server, read by the metrics module.
 * hellos counts every HELLO answered with an AGENT-HELLO, health checks
 * included; healthchecks counts the health-check ones alone. */
struct spop_stats {
    uint64_t connections_total;
    uint64_t connections_open;
    uint64_t hellos;
    uint64_t healthchecks;
    uint64_t notifies;
    uint64_t inline_too_large;   /* inline answers sent as their fallback */
    uint64_t acks;
    uint64_t disconnects_received;
    uint64_t protocol_errors;   /* connections closed with a status != 0 */
    uint64_t dropped[SPOP_DROP_REASONS];   /* closed by a limit (not counted as protocol errors) */
    uint64_t buffer_bytes;      /* gauge: read and write buffers of every connection */
};

struct spop_server;

/*
 * Listen on addr (core/net.h: "host:port", "[v6]:port", "unix:PATH"), with
 * SPOP_LIMITS_DEFAULT. Returns NULL with a message in
 * err when the address is bad or cannot be bound.
 */
struct spop_server *spop_server_start(struct ev_loop *loop, const char *addr,
                                      spop_verdict_fn fn, void *ctx,
                                      char *err, size_t errlen);

/* Applies new limits to every connection, open ones included (a reload). */
void spop_server_set_limits(struct spop_server *srv, const struct spop_limits *lim);

/*
 * Graceful stop: stop accepting, send AGENT-DISCONNECT status 0 ("normal") on
 * every connection, close them, free everything. Safe with NULL.
 * Best effort: each connection gets one non-blocking send of what it is
 * owed; the loop is not run. Must not be called from the verdict callback.
 */
void spop_server_stop(struct spop_server *srv);

/*
 * Shutdown, first step: stop accepting; every connection says
 * AGENT-DISCONNECT status 0 as soon as it has no NOTIFY unanswered and no
 * partial frame (at once for most: NOTIFYs are answered as they arrive),
 * then closes as in CLOSING. HAProxy fails open for the NOTIFYs it sends
 * later. spop_server_stop still has to be called.
 */
void spop_server_drain(struct spop_server *srv);

const struct spop_stats *spop_server_stats(const struct spop_server *srv);

/* The port actually bound (useful when started on port 0). */
int spop_server_port(const struct spop_server *srv);

#endif
