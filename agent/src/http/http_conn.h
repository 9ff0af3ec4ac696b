/*
 * http_conn.h - the inside of the HTTP server, shared by its two files and
 * nothing else (http_server.h is the interface):
 *
 *   http_server.c  connections, the parser, reading, timers, the listener
 *   http_write.c   the writer: heads, bodies (memory, sendfile), framing,
 *                  budgets, corking, and the response calls
 *
 * A connection is always in one of three phases:
 *   idle/reading  parser running, waiting for a complete request
 *   responding    a response is being produced (head, body, end)
 *   closing       gone; the struct is freed before returning to the loop
 * Everything here runs on the loop thread.
 */
#ifndef SLUICE_HTTP_CONN_H
#define SLUICE_HTTP_CONN_H

#include <ev.h>
#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/common.h"
#include "core/list.h"
#include "core/net.h"
#include "http/http_server.h"

#define IN_CAP (HTTP_HEADERS_MAX + HTTP_URL_MAX + 1024)
/* Bytes one connection may write before letting the loop poll again: with
 * hundreds of followers on one fill, filling every empty socket in a single
 * pass would hold the loop (and the cache writer's completions) for seconds. */
#define WRITE_BUDGET (512 * 1024)
#define IDLE_TIMEOUT_S 60.0
/* File pieces larger than this are sent with the socket corked (see
 * set_cork); a smaller one goes out whole in one sendfile anyway. */
#define CORK_MIN (64 * 1024)

/* Send buffer asked for while a UNIX socket carries a hit (http_head.bulk,
 * see set_bulk_sndbuf); the kernel doubles it and caps it at
 * net.core.wmem_max. */
#define BULK_SNDBUF (1024 * 1024)

enum phase { P_READING, P_HEAD, P_BODY, P_END };

enum hdr_kind { H_OTHER, H_RANGE, H_IF_RANGE, H_INM, H_IMS, H_AUTH, H_COOKIE, H_ACCEPT, H_CACHE_CONTROL, H_KINDS };

struct http_server {
    struct ev_loop *loop;
    struct net_listener listener;     /* fd < 0: no listener (adopt only) */
    http_handler_fn handler;
    void *ctx;
    double stall_s;
    bool allow_delete;           /* http_server_allow_delete */
    struct sl_list conns;        /* every open connection */
    bool draining;               /* http_server_drain: no listener, close after each response */
    struct http_server_stats stats;
};

#define HTTP_CONN_MAGIC 0x48434f4eu   /* "HCON" */

struct http_conn {
    unsigned magic;
    struct http_server *srv;
    struct sl_list link;         /* on srv->conns */
    int fd;
    ev_io rio, wio;
    ev_timer timer;
    http_parser parser;

    /* input */
    char in[IN_CAP];
    size_t in_len, in_off;
    bool peer_closed;

    /* request being assembled */
    char url[HTTP_URL_MAX + 1];
    size_t url_len;
    char hname[32];
    size_t hname_len;
    bool in_value;
    enum hdr_kind hkind;
    char arena[HTTP_HEADERS_MAX + 16];
    size_t arena_len;
    size_t header_bytes;
    const char *values[H_KINDS];
    int req_error;
    bool in_message;           /* the parser has begun a request (part of it was read) */
    bool message_complete;
    struct http_request req;

    /* response */
    enum phase phase;
    struct http_response *resp;
    struct http_head head;
    char *out;
    size_t out_cap, out_len, out_off;
    enum http_body_mode mode;
    uint64_t body_left;
    size_t chunk_left;
    bool chunk_open;
    bool head_only;
    bool close_after;
    bool blocked;
    bool corked;
    bool tcp;                  /* a TCP socket (cork applies); not UNIX */
    bool bulk_sndbuf;          /* UNIX: SO_SNDBUF raised to BULK_SNDBUF */
    int default_sndbuf;        /* UNIX: the value to ask for to restore it */
    bool body_ready;     /* the response said its body is available at once */
    bool head_alone;     /* the head was sent; the body waits for the next poll */
    int64_t last_progress_ms;
    int64_t last_activity_ms;
};

/* The connection behind a parser or a watcher (checked). */
static inline struct http_conn *conn_of(void *p)
{
    struct http_conn *c = p;
    SL_CHECK_OBJ(c, HTTP_CONN_MAGIC);
    return c;
}

/* http_server.c */
void conn_close(struct http_conn *c, bool aborted);
void timer_arm(struct http_conn *c, double after_s);
void reset_request(struct http_conn *c);
void conn_parse(struct http_conn *c);

/* http_write.c */
void out_append(struct http_conn *c, const void *data, size_t len);
void out_printf(struct http_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void schedule_write(struct http_conn *c);
void conn_on_write(struct ev_loop *loop, ev_io *w, int revents);

#endif
