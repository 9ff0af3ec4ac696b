/*
 * http_server.c - HTTP/1.1 connections on the libev loop (see http_server.h).
 *
 * A connection is always in one of three phases:
 *   idle/reading  parser running, waiting for a complete request
 *   responding    a response is being produced (head, body, end)
 *   closing       gone; the struct is freed before returning to the loop
 *
 * Writes are pull-based: the writer (conn_write) drains the output buffer,
 * then asks the response for its head or its next body piece. Whenever the
 * response has nothing yet it returns WAIT and the writer stops until
 * http_conn_wake. This keeps every callback short and never re-enters a
 * response from inside its own callbacks.
 */
#include "http/http_server.h"

#include <errno.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/common.h"
#include "http/httpx.h"
#include "core/list.h"
#include "core/log.h"
#include "core/net.h"

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

enum hdr_kind { H_OTHER, H_RANGE, H_INM, H_IMS, H_AUTH, H_COOKIE };

struct http_server {
    struct ev_loop *loop;
    struct net_listener listener;     /* fd < 0: no listener (adopt only) */
    http_handler_fn handler;
    void *ctx;
    double stall_s;
    struct sl_list conns;        /* every open connection */
    struct http_server_stats stats;
};

struct http_conn {
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
    const char *values[6];
    int req_error;
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

static void conn_write(struct http_conn *c);
static void conn_parse(struct http_conn *c);

/*
 * Run the writer later in this loop iteration. Feeding the event instead of
 * starting the watcher saves two epoll_ctl calls per response when the
 * socket is writable, which it nearly always is; only a full socket starts
 * the watcher (block_on_socket). Stopping the watcher also clears a fed
 * event, so a connection closed meanwhile is never written to.
 */
static void schedule_write(struct http_conn *c)
{
    ev_feed_event(c->srv->loop, &c->wio, EV_WRITE);
}

/* ------------------------------------------------------------------ utils */

bool http_request_path_is(const struct http_request *req, const char *p)
{
    return req->path_len == strlen(p) && memcmp(req->path, p, req->path_len) == 0;
}

const char *http_status_text(int status)
{
    switch (status) {
    case 200: return "OK";
    case 206: return "Partial Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default:  return status < 300 ? "OK" : status < 400 ? "Redirect" : status < 500 ? "Client Error" : "Server Error";
    }
}

bool http_head_printf(struct http_head *h, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(h->buf + h->len, sizeof(h->buf) - h->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(h->buf) - h->len) {
        h->buf[h->len] = '\0';
        return false;
    }
    h->len += (size_t)n;
    return true;
}

static void out_append(struct http_conn *c, const void *data, size_t len)
{
    if (c->out_len + len > c->out_cap) {
        size_t cap = SL_MAX(c->out_cap * 2, c->out_len + len + 1024);
        c->out = sl_realloc(c->out, cap);
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
}

static void out_printf(struct http_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_printf(struct http_conn *c, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    SL_ASSERT(n >= 0 && (size_t)n < sizeof(buf));
    out_append(c, buf, (size_t)n);
}

/* -------------------------------------------------------------- lifecycle */

static void conn_close(struct http_conn *c, bool aborted)
{
    struct http_server *srv = c->srv;
    if (c->resp) {
        struct http_response *r = c->resp;
        c->resp = NULL;
        srv->stats.aborted_responses += aborted;
        r->finish(r, false);
    }
    ev_io_stop(srv->loop, &c->rio);
    ev_io_stop(srv->loop, &c->wio);
    ev_timer_stop(srv->loop, &c->timer);
    close(c->fd);
    list_remove(&c->link);
    srv->stats.connections_open--;
    free(c->out);
    free(c);
}

static void timer_arm(struct http_conn *c, double after_s)
{
    ev_timer_stop(c->srv->loop, &c->timer);
    ev_timer_set(&c->timer, after_s, 0.);
    ev_timer_start(c->srv->loop, &c->timer);
}

static void reset_request(struct http_conn *c)
{
    c->url_len = 0;
    c->hname_len = 0;
    c->in_value = false;
    c->hkind = H_OTHER;
    c->arena_len = 0;
    c->header_bytes = 0;
    memset(c->values, 0, sizeof(c->values));
    c->req_error = 0;
    c->message_complete = false;
    memset(&c->req, 0, sizeof(c->req));
}

/* ------------------------------------------------------------ the parser */

static int on_message_begin(http_parser *p)
{
    struct http_conn *c = p->data;
    reset_request(c);
    c->last_activity_ms = sl_now_ms();
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    if (c->url_len + len > HTTP_URL_MAX) {
        c->req_error = 414;
        return 1;
    }
    memcpy(c->url + c->url_len, at, len);
    c->url_len += len;
    return 0;
}

static bool header_budget(struct http_conn *c, size_t len)
{
    c->header_bytes += len;
    if (c->header_bytes > HTTP_HEADERS_MAX) {
        c->req_error = 431;
        return false;
    }
    return true;
}

static void finish_value(struct http_conn *c)
{
    if (c->in_value && c->hkind != H_OTHER) {
        c->arena[c->arena_len++] = '\0';
    }
    c->in_value = false;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    if (!header_budget(c, len))
        return 1;
    if (c->in_value) {
        finish_value(c);
        c->hname_len = 0;
    }
    size_t room = sizeof(c->hname) - 1 - c->hname_len;
    size_t n = SL_MIN(room, len);
    memcpy(c->hname + c->hname_len, at, n);
    c->hname_len += n;
    c->hname[c->hname_len] = '\0';
    return 0;
}

static enum hdr_kind classify(const char *name)
{
    static const struct { const char *name; enum hdr_kind kind; } known[] = {
        { "range", H_RANGE },       { "if-none-match", H_INM },
        { "if-modified-since", H_IMS }, { "authorization", H_AUTH },
        { "cookie", H_COOKIE },
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(known); i++)
        if (strcasecmp(name, known[i].name) == 0)
            return known[i].kind;
    return H_OTHER;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    if (!header_budget(c, len))
        return 1;
    if (!c->in_value) {
        c->in_value = true;
        c->hkind = classify(c->hname);
        if (c->hkind != H_OTHER) {
            if (c->values[c->hkind])     /* repeated header: keep the first */
                c->hkind = H_OTHER;
            else
                c->values[c->hkind] = c->arena + c->arena_len;
        }
    }
    if (c->hkind != H_OTHER) {
        SL_ASSERT(c->arena_len + len + 1 <= sizeof(c->arena));
        memcpy(c->arena + c->arena_len, at, len);
        c->arena_len += len;
    }
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct http_conn *c = p->data;
    finish_value(c);
    if (p->method != HTTP_GET && p->method != HTTP_HEAD) {
        /* Not ours to handle; answer without reading any body. */
        c->req_error = 405;
        return 1;
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct http_conn *c = p->data;
    c->message_complete = true;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_message_complete,
};

/*
 * The path of an absolute-form target ("http://host/p?q", which HAProxy
 * passes on as the client sent it): where it starts in url, or NULL when
 * the target is not an http(s) URL with a host and a path. The host is
 * not ours to judge (HAProxy routed the request here); only the path and
 * query name the object.
 */
static const char *absolute_form_path(const char *url, size_t len)
{
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (http_parser_parse_url(url, len, 0, &u) != 0 || !(u.field_set & (1 << UF_HOST)) ||
        !(u.field_set & (1 << UF_PATH)) || (u.field_set & (1 << UF_USERINFO)))
        return NULL;
    size_t slen = u.field_data[UF_SCHEMA].len;
    const char *scheme = url + u.field_data[UF_SCHEMA].off;
    if (!((slen == 4 && strncasecmp(scheme, "http", 4) == 0) || (slen == 5 && strncasecmp(scheme, "https", 5) == 0)))
        return NULL;
    return url + u.field_data[UF_PATH].off;
}

/* Split the request target (origin-form "/p?q", or absolute-form) into
 * path and query. */
static bool fill_request(struct http_conn *c)
{
    struct http_request *r = &c->req;
    c->url[c->url_len] = '\0';
    const char *target = c->url;
    if (c->url_len > 0 && c->url[0] != '/')
        target = absolute_form_path(c->url, c->url_len);
    if (!target || target[0] != '/')
        return false;
    size_t target_len = c->url_len - (size_t)(target - c->url);
    const char *q = memchr(target, '?', target_len);
    if (memchr(target, '#', target_len))
        return false;
    r->path = target;
    r->path_len = q ? (size_t)(q - target) : target_len;
    if (q) {
        r->query = q + 1;
        r->query_len = target_len - r->path_len - 1;
    }
    r->method = c->parser.method == HTTP_GET ? HTTP_M_GET : HTTP_M_HEAD;
    r->method_name = http_method_str(c->parser.method);
    r->range = c->values[H_RANGE];
    r->if_none_match = c->values[H_INM];
    r->if_modified_since = c->values[H_IMS];
    r->has_credentials = c->values[H_AUTH] != NULL;
    r->keep_alive = http_should_keep_alive(&c->parser);
    return true;
}

static void respond_error_and_close(struct http_conn *c, int status)
{
    c->srv->stats.bad_requests++;
    c->close_after = true;
    char body[64];
    int n = snprintf(body, sizeof(body), "%d %s\n", status, http_status_text(status));
    http_respond_simple(c, status, "text/plain", status == 405 ? "Allow: GET, HEAD\r\n" : "", body, (size_t)n);
}

static void dispatch(struct http_conn *c)
{
    struct http_server *srv = c->srv;
    srv->stats.requests++;
    c->phase = P_HEAD;
    if (!fill_request(c)) {
        respond_error_and_close(c, 400);
        return;
    }
    c->head_only = c->req.method == HTTP_M_HEAD;
    c->close_after = !c->req.keep_alive;
    srv->handler(srv->ctx, c, &c->req);
}

static void conn_parse(struct http_conn *c)
{
    while (c->phase == P_READING && c->in_off < c->in_len) {
        size_t n = http_parser_execute(&c->parser, &parser_settings, c->in + c->in_off,
                                       c->in_len - c->in_off);
        c->in_off += n;
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (c->req_error) {
            c->phase = P_HEAD;
            respond_error_and_close(c, c->req_error);
            return;
        }
        if (c->message_complete) {
            dispatch(c);
            return;
        }
        if (e != HPE_OK) {
            c->phase = P_HEAD;
            respond_error_and_close(c, 400);
            return;
        }
    }
    if (c->in_off == c->in_len)
        c->in_off = c->in_len = 0;
    if (c->phase == P_READING && c->in_len == sizeof(c->in)) {
        c->phase = P_HEAD;
        respond_error_and_close(c, 431);
    }
}

/* ------------------------------------------------------------- reading */

static void on_read(struct ev_loop *loop, ev_io *w, int revents)
{
    SL_UNUSED(loop);
    SL_UNUSED(revents);
    struct http_conn *c = w->data;
    if (c->in_off > 0 && c->in_off == c->in_len)
        c->in_off = c->in_len = 0;
    if (c->in_off > 0 && c->in_len == sizeof(c->in)) {
        memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
        c->in_len -= c->in_off;
        c->in_off = 0;
    }
    if (c->in_len == sizeof(c->in)) {
        /* Full while a response is running: stop reading until it ends. */
        ev_io_stop(c->srv->loop, &c->rio);
        return;
    }
    ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        /* EOF or reset: the client (HAProxy) is gone. */
        conn_close(c, c->phase != P_READING || c->in_len > 0);
        return;
    }
    c->in_len += (size_t)n;
    c->last_activity_ms = sl_now_ms();
    if (c->phase == P_READING)
        conn_parse(c);
}

/* ------------------------------------------------------------- writing */

static void progress(struct http_conn *c, size_t n)
{
    c->srv->stats.bytes_sent += n;
    c->last_progress_ms = c->last_activity_ms = sl_now_ms();
    c->blocked = false;
}

static void block_on_socket(struct http_conn *c)
{
    if (!c->blocked) {
        c->blocked = true;
        timer_arm(c, c->srv->stall_s);
    }
    ev_io_start(c->srv->loop, &c->wio);
}

/*
 * While a large file body is sent the socket is corked, so the kernel only
 * sends full segments: one sendfile call is split into many internal
 * splices, and without the cork each pushes its partial last segment out
 * on its own. On loopback every extra segment is a receive wake-up for
 * HAProxy; for 1 MiB hits the cork is worth about a third of the cost per
 * request (docs/performance.md). Uncorked whenever the body is done or must
 * wait for a fill's next bytes, so nothing sits in a corked socket.
 */
static void set_cork(struct http_conn *c, bool on)
{
    if (c->corked == on || !c->tcp)
        return;
    int v = on;
    /* A failure only costs the optimisation; the body still goes out. */
    (void)setsockopt(c->fd, IPPROTO_TCP, TCP_CORK, &v, sizeof(v));
    c->corked = on;
}

/*
 * UNIX sockets have no send-buffer autotuning (TCP grows its own up to
 * tcp_wmem), so at the default ~208 KiB a sendfile moves little before the
 * connection must wait a loop pass for HAProxy to drain it. A hit's body
 * (http_head.bulk) is a file, and the buffer then holds references to
 * page-cache pages, not copies: a large one costs little memory and gives
 * large hits about a fifth more throughput (docs/performance.md section 7).
 * Every other response goes back to the default size. A fill's followers
 * must not: with a large buffer each one writes its whole write budget per
 * loop pass, the passes grow, and the heads of the followers still
 * arriving wait behind them (measured: followers' first bytes 25-35 ms
 * after the leader's became 75-100 ms). Fill bodies from memory are copies,
 * too.
 */
static void set_bulk_sndbuf(struct http_conn *c, bool on)
{
    if (c->tcp || c->bulk_sndbuf == on || c->default_sndbuf <= 0)
        return;
    int v = on ? BULK_SNDBUF : c->default_sndbuf;
    /* A failure only costs the optimisation. */
    (void)setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
    c->bulk_sndbuf = on;
}

static void wait_for_response(struct http_conn *c)
{
    set_cork(c, false);
    c->blocked = false;
    ev_io_stop(c->srv->loop, &c->wio);
}

/* The response is complete and flushed: back to reading, or close. */
static void response_done(struct http_conn *c)
{
    struct http_response *r = c->resp;
    c->resp = NULL;
    set_cork(c, false);
    if (r)
        r->finish(r, true);
    ev_io_stop(c->srv->loop, &c->wio);
    if (c->close_after) {
        conn_close(c, false);
        return;
    }
    c->phase = P_READING;
    c->blocked = false;
    reset_request(c);
    http_parser_pause(&c->parser, 0);
    ev_io_start(c->srv->loop, &c->rio);
    timer_arm(c, IDLE_TIMEOUT_S);
    conn_parse(c);
}

static void start_head(struct http_conn *c, const struct http_head *h)
{
    set_bulk_sndbuf(c, h->bulk);
    out_append(c, h->buf, h->len);
    if (h->inline_body) {
        /* Head and body in one write: nothing left for the body phase. */
        SL_ASSERT(h->mode == HTTP_BODY_LENGTH && h->length == h->inline_len);
        if (!c->head_only)
            out_append(c, h->inline_body, h->inline_len);
        c->phase = P_END;
        return;
    }
    c->mode = h->mode;
    c->body_left = h->length;
    c->chunk_left = 0;
    c->chunk_open = false;
    c->body_ready = h->body_ready;
    /* body_ready asks for the opposite (head and body in one segment); it wins. */
    c->head_alone = h->head_alone && !h->body_ready;
    c->phase = (c->head_only || h->mode == HTTP_BODY_NONE) ? P_END : P_BODY;
}

/* Send one piece; returns bytes sent, 0 to wait for the socket, -1 on error. */
static ssize_t send_piece(struct http_conn *c, const struct http_piece *pc, size_t len)
{
    ssize_t n;
    if (pc->data) {
        n = send(c->fd, pc->data, len, MSG_NOSIGNAL);
    } else {
        if (len > CORK_MIN)
            set_cork(c, true);
        off_t off = (off_t)pc->file_off;
        n = sendfile(c->fd, pc->fd, &off, len);
        if (n == 0)
            return -1;  /* the file is shorter than promised */
    }
    if (n < 0)
        return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
    return n;
}

/* One step of the body phase; returns false when the writer must stop. */
static bool body_step(struct http_conn *c)
{
    if (c->mode == HTTP_BODY_CHUNKED && c->chunk_open && c->chunk_left == 0) {
        out_append(c, "\r\n", 2);
        c->chunk_open = false;
        return true;
    }
    struct http_piece pc = { .fd = -1 };
    switch (c->resp->body(c->resp, &pc)) {
    case HTTP_PIECE_WAIT:
        wait_for_response(c);
        return false;
    case HTTP_PIECE_ERROR:
        conn_close(c, true);
        return false;
    case HTTP_PIECE_END:
        if (c->mode == HTTP_BODY_LENGTH && c->body_left != 0) {
            conn_close(c, true);
            return false;
        }
        if (c->mode == HTTP_BODY_CHUNKED)
            out_append(c, "0\r\n\r\n", 5);
        c->phase = P_END;
        return true;
    case HTTP_PIECE_DATA:
        break;
    }
    SL_ASSERT(pc.len > 0);
    size_t len = pc.len;
    if (c->mode == HTTP_BODY_CHUNKED) {
        if (!c->chunk_open) {
            out_printf(c, "%zx\r\n", len);
            c->chunk_left = len;
            c->chunk_open = true;
            return true;   /* flush the chunk header first */
        }
        len = SL_MIN(len, c->chunk_left);
    } else {
        len = (size_t)SL_MIN((uint64_t)len, c->body_left);
        if (len == 0) {
            conn_close(c, true);   /* the source yields more than it announced */
            return false;
        }
    }
    ssize_t n = send_piece(c, &pc, len);
    if (n < 0) {
        conn_close(c, true);
        return false;
    }
    if (n == 0) {
        block_on_socket(c);
        return false;
    }
    progress(c, (size_t)n);
    c->resp->consumed(c->resp, (size_t)n);
    if (c->mode == HTTP_BODY_CHUNKED)
        c->chunk_left -= (size_t)n;
    else
        c->body_left -= (uint64_t)n;
    return true;
}

/* Out of budget for this pass: continue when the poller says writable.
 * This is a wait on the socket like any other: the stall clock runs, or a
 * client that stops reading just as the budget ran out would never be
 * timed (C4). */
static bool budget_spent(struct http_conn *c, size_t written)
{
    if (written < WRITE_BUDGET)
        return false;
    block_on_socket(c);
    return true;
}

static void conn_write(struct http_conn *c)
{
    size_t before = (size_t)c->srv->stats.bytes_sent;
    for (;;) {
        if (budget_spent(c, (size_t)c->srv->stats.bytes_sent - before))
            return;
        if (c->out_off < c->out_len) {
            /* A head whose body follows at once goes out with it. */
            int more = (c->phase == P_BODY && c->body_ready) ? MSG_MORE : 0;
            ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL | more);
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                block_on_socket(c);
                return;
            }
            if (n < 0) {
                conn_close(c, true);
                return;
            }
            progress(c, (size_t)n);
            c->out_off += (size_t)n;
            continue;
        }
        c->out_off = c->out_len = 0;
        switch (c->phase) {
        case P_READING:
            ev_io_stop(c->srv->loop, &c->wio);
            return;
        case P_HEAD: {
            if (!c->resp) {   /* simple responses are queued whole */
                c->phase = P_END;
                continue;
            }
            c->head.len = 0;
            c->head.mode = HTTP_BODY_NONE;
            c->head.length = 0;
            c->head.body_ready = false;
            c->head.inline_body = NULL;
            c->head.inline_len = 0;
            c->head.head_alone = false;
            c->head.bulk = false;
            enum http_head_result hr = c->resp->head(c->resp, &c->head);
            if (hr == HTTP_HEAD_WAIT) {
                wait_for_response(c);
                return;
            }
            if (hr == HTTP_HEAD_ABORT) {
                conn_close(c, true);
                return;
            }
            start_head(c, &c->head);
            continue;
        }
        case P_BODY:
            if (c->head_alone) {
                /* Let every connection woken in this pass send its head
                 * before this one sends body bytes (see http_head). */
                c->head_alone = false;
                block_on_socket(c);   /* a wait on the socket: stall clock runs */
                return;
            }
            if (!body_step(c))
                return;
            continue;
        case P_END:
            response_done(c);
            return;
        }
    }
}

static void on_write(struct ev_loop *loop, ev_io *w, int revents)
{
    SL_UNUSED(loop);
    SL_UNUSED(revents);
    conn_write(w->data);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    SL_UNUSED(loop);
    SL_UNUSED(revents);
    struct http_conn *c = w->data;
    int64_t now = sl_now_ms();
    if (c->phase == P_READING) {
        double idle = (double)(now - c->last_activity_ms) / 1000.0;
        if (idle >= IDLE_TIMEOUT_S)
            conn_close(c, false);
        else
            timer_arm(c, IDLE_TIMEOUT_S - idle);
        return;
    }
    if (!c->blocked)
        return;   /* waiting on the response's data is not a client stall */
    double stalled = (double)(now - c->last_progress_ms) / 1000.0;
    if (stalled >= c->srv->stall_s) {
        log_info("http: dropping client stalled for %.1fs", stalled);
        c->srv->stats.stalled_clients++;
        conn_close(c, true);
    } else {
        timer_arm(c, c->srv->stall_s - stalled);
    }
}

/* ------------------------------------------------------------ responses */

void http_respond_simple(struct http_conn *c, int status, const char *content_type,
                         const char *extra_headers, const void *body, size_t len)
{
    SL_ASSERT(c->phase == P_HEAD && !c->resp);
    char date[40];
    httpx_format_date(time(NULL), date, sizeof(date));
    out_printf(c, "HTTP/1.1 %d %s\r\nDate: %s\r\n", status, http_status_text(status), date);
    if (content_type)
        out_printf(c, "Content-Type: %s\r\n", content_type);
    out_printf(c, "Content-Length: %zu\r\n", len);
    if (extra_headers)
        out_append(c, extra_headers, strlen(extra_headers));
    if (c->close_after)
        out_append(c, "Connection: close\r\n", 19);
    out_append(c, "\r\n", 2);
    if (!c->head_only && len)
        out_append(c, body, len);
    c->phase = P_END;
    schedule_write(c);
}

void http_respond_with(struct http_conn *c, struct http_response *r)
{
    SL_ASSERT(c->phase == P_HEAD && !c->resp);
    c->resp = r;
    schedule_write(c);
}

void http_conn_wake(struct http_conn *c)
{
    if (!c->resp || (c->phase != P_HEAD && c->phase != P_BODY))
        return;
    if (!c->blocked) {
        /*
         * The response was waiting for its own data (not a stall) and may
         * have some now: the stall clock starts here and runs until the
         * socket takes a byte (progress) or the response waits again. The
         * writer only runs once the socket is writable, so without this a
         * client whose socket filled up while the response waited would
         * never be timed, and never dropped (C4).
         */
        c->blocked = true;
        c->last_progress_ms = sl_now_ms();
        timer_arm(c, c->srv->stall_s);
    }
    schedule_write(c);
}

bool http_conn_is_head(const struct http_conn *c)
{
    return c->head_only;
}

/* ------------------------------------------------------------- listener */

void http_server_adopt(struct http_server *srv, int fd)
{
    struct http_conn *c = sl_calloc(1, sizeof(*c));
    c->srv = srv;
    c->fd = fd;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    c->tcp = getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0 &&
             (ss.ss_family == AF_INET || ss.ss_family == AF_INET6);
    if (!c->tcp) {
        /* The kernel reports twice what was asked for; ask for half. */
        int v = 0;
        socklen_t vlen = sizeof(v);
        if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, &vlen) == 0)
            c->default_sndbuf = v / 2;
    }
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    ev_io_init(&c->rio, on_read, fd, EV_READ);
    ev_io_init(&c->wio, on_write, fd, EV_WRITE);
    ev_init(&c->timer, on_timer);
    c->rio.data = c->wio.data = c->timer.data = c;
    c->last_activity_ms = sl_now_ms();
    list_push_front(&srv->conns, &c->link);
    srv->stats.connections_total++;
    srv->stats.connections_open++;
    ev_io_start(srv->loop, &c->rio);
    timer_arm(c, IDLE_TIMEOUT_S);
}

static void on_accept(void *ctx, int fd, const struct sockaddr *peer, socklen_t peerlen)
{
    SL_UNUSED(peer);
    SL_UNUSED(peerlen);
    http_server_adopt(ctx, fd);
}

struct http_server *http_server_new(struct ev_loop *loop, http_handler_fn handler, void *ctx,
                                    int64_t stall_timeout_ms)
{
    struct http_server *srv = sl_calloc(1, sizeof(*srv));
    list_init(&srv->conns);
    srv->loop = loop;
    srv->listener.fd = -1;
    srv->handler = handler;
    srv->ctx = ctx;
    srv->stall_s = (double)stall_timeout_ms / 1000.0;
    return srv;
}

struct http_server *http_server_start(struct ev_loop *loop, const char *addr,
                                      http_handler_fn handler, void *ctx,
                                      int64_t stall_timeout_ms, char *err, size_t errlen)
{
    struct http_server *srv = http_server_new(loop, handler, ctx, stall_timeout_ms);
    if (net_listener_start(&srv->listener, loop, "http", addr, on_accept, srv, err, errlen) != 0) {
        free(srv);
        return NULL;
    }
    return srv;
}

void http_server_stop(struct http_server *srv)
{
    if (!srv)
        return;
    net_listener_stop(&srv->listener);
    while (!list_empty(&srv->conns))
        conn_close(SL_CONTAINER_OF(srv->conns.next, struct http_conn, link), true);
    free(srv);
}

const struct http_server_stats *http_server_stats(const struct http_server *srv)
{
    return &srv->stats;
}
