/*
 * http_server.h - a small HTTP/1.1 server on the libev loop.
 *
 * Used twice: for the agent's HTTP side (HAProxy sends `hit` and `fill`
 * requests there) and for the admin listener (docs/admin-api.md; the only
 * one that lets DELETE through, http_server_allow_delete). Requests
 * are parsed with the system's http-parser library (docs/architecture.md
 * says why); this module owns sockets, keep-alive, limits, timeouts and
 * response framing, and knows nothing about caching.
 *
 * One request at a time per connection (HAProxy does not pipeline to
 * servers, but pipelined bytes are kept and parsed after the response). The
 * handler must answer every request exactly once, either at once
 * (http_respond_simple) or through a response object (http_respond_with)
 * whose callbacks the connection pulls from as the socket drains:
 *
 *   head()     -> status line + headers, or "not ready yet" (the response
 *                 calls http_conn_wake when it is), or "abort"
 *   body()     -> the next piece of body: memory bytes or a file range (sent
 *                 with sendfile), or wait / end / error
 *   consumed() -> that many bytes of the piece left for the client
 *   finish()   -> called exactly once, when the response completed or the
 *                 connection died; the response frees itself there
 *
 * A body error after the head was sent is never turned into a clean end: the
 * connection is closed without the terminating chunk (chunked) or before
 * Content-Length bytes, so the client sees an aborted transfer (C2).
 *
 * Stall window (C4): while the connection has bytes to send and the socket
 * accepts none for `stall_timeout_ms`, the client is dropped. Waiting for
 * the response's own data (origin slow) is not a client stall.
 */
#ifndef SLUICE_HTTP_SERVER_H
#define SLUICE_HTTP_SERVER_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_URL_MAX 8192
#define HTTP_HEADERS_MAX 16384
#define HTTP_HEAD_MAX 8192

struct http_conn;
struct http_server;

enum http_method_kind { HTTP_M_GET, HTTP_M_HEAD, HTTP_M_POST, HTTP_M_DELETE, HTTP_M_OTHER };

struct http_request {
    enum http_method_kind method;
    const char *method_name;
    const char *path;  size_t path_len;    /* raw, percent-encoded, no query */
    const char *query; size_t query_len;   /* NULL when no '?' */
    const char *range;                     /* header values, NULL when absent */
    const char *if_range;
    const char *if_none_match;
    const char *if_modified_since;
    const char *accept;                    /* representations (ecosystems with variants) */
    const char *cache_control;             /* no-cache / max-age=0 (metadata_honor_no_cache) */
    bool has_credentials;                  /* Authorization present */
    bool keep_alive;
};

enum http_body_mode { HTTP_BODY_NONE, HTTP_BODY_LENGTH, HTTP_BODY_CHUNKED };

struct http_head {
    char buf[HTTP_HEAD_MAX];
    size_t len;
    enum http_body_mode mode;
    uint64_t length;          /* HTTP_BODY_LENGTH: bytes that body() will yield */
    bool body_ready;          /* hint: body() has data at once (lets the head
                                 share a TCP segment with the body) */
    const uint8_t *inline_body;   /* small bodies: the whole body, sent with the
                                     head in one write (body() is not called) */
    size_t inline_len;
    bool head_alone;          /* send the head in a write pass of its own, the
                                 body from the next poll on: when one event
                                 wakes hundreds of responses (a fill's
                                 followers), every head then leaves before
                                 any body, rather than head N waiting behind
                                 N-1 bodies' write budgets */
    bool bulk;                /* a complete body from a file (a hit): over a
                                 UNIX socket it is sent with a large send
                                 buffer; fills fanned out to many followers
                                 are not (see set_bulk_sndbuf) */
};

enum http_body_result { HTTP_PIECE_DATA, HTTP_PIECE_WAIT, HTTP_PIECE_END, HTTP_PIECE_ERROR };

struct http_piece {
    const uint8_t *data;      /* memory bytes, or NULL for a file range */
    int fd;                   /* file range: fd and offset (not consumed) */
    uint64_t file_off;
    size_t len;               /* > 0 */
};

enum http_head_result { HTTP_HEAD_READY, HTTP_HEAD_WAIT, HTTP_HEAD_ABORT };

struct http_response {
    enum http_head_result (*head)(struct http_response *r, struct http_head *out);
    enum http_body_result (*body)(struct http_response *r, struct http_piece *out);
    void (*consumed)(struct http_response *r, size_t n);
    void (*finish)(struct http_response *r, bool completed);
};

/* Is the request's path exactly `p`? */
bool http_request_path_is(const struct http_request *req, const char *p);

typedef void (*http_handler_fn)(void *ctx, struct http_conn *c, const struct http_request *req);

struct http_server_stats {
    uint64_t connections_total;
    uint64_t connections_open;
    uint64_t requests;
    uint64_t bad_requests;      /* 400/414/431 answered by the parser layer */
    uint64_t stalled_clients;   /* dropped after the stall window */
    uint64_t aborted_responses; /* connection closed before the response completed */
    uint64_t bytes_sent;
};

struct http_server *http_server_start(struct ev_loop *loop, const char *addr,
                                      http_handler_fn handler, void *ctx,
                                      int64_t stall_timeout_ms, char *err, size_t errlen);
void http_server_stop(struct http_server *srv);

/* Let DELETE requests through to the handler (the admin listener's purge);
 * otherwise every method but GET and HEAD is answered 405 by the server. */
void http_server_allow_delete(struct http_server *srv);

/*
 * Shutdown, first step: stop accepting and close the idle keep-alive
 * connections; a connection answering a request finishes it and then
 * closes (one holding part of a request may still complete it and is then
 * answered the same way). http_server_busy counts the connections
 * answering a request; when it is 0 the server may be stopped without
 * cutting a transfer.
 */
void http_server_drain(struct http_server *srv);
int http_server_busy(const struct http_server *srv);

/* Reload: the stall window from now on. */
void http_server_set_stall_timeout(struct http_server *srv, int64_t stall_timeout_ms);

/* A server with no listener, fed with http_server_adopt (tests, fuzzing). */
struct http_server *http_server_new(struct ev_loop *loop, http_handler_fn handler, void *ctx,
                                    int64_t stall_timeout_ms);
/* Serve an already-connected, non-blocking socket. */
void http_server_adopt(struct http_server *srv, int fd);
const struct http_server_stats *http_server_stats(const struct http_server *srv);

/* Answer with a complete small response. `extra_headers` is "" or lines
 * each ending in "\r\n". The body is copied. */
void http_respond_simple(struct http_conn *c, int status, const char *content_type,
                         const char *extra_headers, const void *body, size_t len);

/* Answer through a response object (see above). */
void http_respond_with(struct http_conn *c, struct http_response *r);

/* The response has something new (head ready, data, end or error). Cheap and
 * safe to call from anywhere, including from inside origin callbacks: it only
 * schedules the connection's writer. */
void http_conn_wake(struct http_conn *c);

/* The request being answered asked for HEAD. */
bool http_conn_is_head(const struct http_conn *c);

const char *http_status_text(int status);

/* Append "Date: ...\r\n" style helpers into a head buffer; return false when
 * the head would overflow (the response is then not sent). */
bool http_head_printf(struct http_head *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
