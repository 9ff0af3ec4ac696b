/*
 * http_server.c - HTTP/1.1 connections on the libev loop (see
 * http_server.h): accepting, reading and parsing requests with
 * http-parser, timers (idle keep-alive, client stall) and the listener.
 * The writing half is http_write.c; both share http_conn.h.
 */
#include "http/http_server.h"

#include <errno.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/common.h"
#include "core/log.h"
#include "http/http_conn.h"

/* ------------------------------------------------------------------ utils */

bool http_request_path_is(const struct http_request *req, const char *p)
{
    return sl_bytes_eq(req->path, req->path_len, p);
}

/* -------------------------------------------------------------- lifecycle */

void conn_close(struct http_conn *c, bool aborted)
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
    c->magic = 0;
    free(c);
}

void timer_arm(struct http_conn *c, double after_s)
{
    ev_timer_stop(c->srv->loop, &c->timer);
    ev_timer_set(&c->timer, after_s, 0.);
    ev_timer_start(c->srv->loop, &c->timer);
}

void reset_request(struct http_conn *c)
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
    c->in_message = false;
    memset(&c->req, 0, sizeof(c->req));
}

/* ------------------------------------------------------------ the parser */

static int on_message_begin(http_parser *p)
{
    struct http_conn *c = conn_of(p->data);
    reset_request(c);
    c->in_message = true;
    c->last_activity_ms = sl_now_ms();
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = conn_of(p->data);
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
    struct http_conn *c = conn_of(p->data);
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
        { "range", H_RANGE },       { "if-range", H_IF_RANGE },   { "if-none-match", H_INM },
        { "if-modified-since", H_IMS }, { "authorization", H_AUTH },
        { "cookie", H_COOKIE }, { "accept", H_ACCEPT }, { "cache-control", H_CACHE_CONTROL },
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(known); i++)
        if (strcasecmp(name, known[i].name) == 0)
            return known[i].kind;
    return H_OTHER;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = conn_of(p->data);
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
    struct http_conn *c = conn_of(p->data);
    finish_value(c);
    bool deletes = p->method == HTTP_DELETE && c->srv->allow_delete;
    if (p->method != HTTP_GET && p->method != HTTP_HEAD && !deletes) {
        /* Not ours to handle; answer without reading any body. */
        c->req_error = 405;
        return 1;
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct http_conn *c = conn_of(p->data);
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
    if (!((slen == SL_LIT_LEN("http") && strncasecmp(scheme, SL_LIT("http")) == 0) ||
          (slen == SL_LIT_LEN("https") && strncasecmp(scheme, SL_LIT("https")) == 0)))
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
    r->method = c->parser.method == HTTP_GET      ? HTTP_M_GET
                : c->parser.method == HTTP_DELETE ? HTTP_M_DELETE
                                                  : HTTP_M_HEAD;
    r->method_name = http_method_str(c->parser.method);
    r->range = c->values[H_RANGE];
    r->if_range = c->values[H_IF_RANGE];
    r->if_none_match = c->values[H_INM];
    r->if_modified_since = c->values[H_IMS];
    r->has_credentials = c->values[H_AUTH] != NULL;
    r->accept = c->values[H_ACCEPT];
    r->cache_control = c->values[H_CACHE_CONTROL];
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
    c->close_after = !c->req.keep_alive || srv->draining;
    srv->handler(srv->ctx, c, &c->req);
}

void conn_parse(struct http_conn *c)
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
    struct http_conn *c = conn_of(w->data);
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

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    SL_UNUSED(loop);
    SL_UNUSED(revents);
    struct http_conn *c = conn_of(w->data);
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


/* ------------------------------------------------------------- listener */

void http_server_adopt(struct http_server *srv, int fd)
{
    struct http_conn *c = sl_calloc(1, sizeof(*c));
    c->magic = HTTP_CONN_MAGIC;
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
    ev_io_init(&c->wio, conn_on_write, fd, EV_WRITE);
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

void http_server_allow_delete(struct http_server *srv)
{
    srv->allow_delete = true;
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

void http_server_set_stall_timeout(struct http_server *srv, int64_t stall_timeout_ms)
{
    srv->stall_s = (double)stall_timeout_ms / 1000.0;
}

/* Answering a request (a half-read one is not a transfer yet). */
static bool conn_busy(const struct http_conn *c)
{
    return c->phase != P_READING;
}

void http_server_drain(struct http_server *srv)
{
    net_listener_stop(&srv->listener);
    srv->draining = true;
    struct sl_list *it = srv->conns.next;
    while (it != &srv->conns) {
        struct http_conn *c = SL_CONTAINER_OF(it, struct http_conn, link);
        it = it->next;
        c->close_after = true;
        if (!conn_busy(c) && !c->in_message && c->in_len == c->in_off)
            conn_close(c, false);
    }
}

int http_server_busy(const struct http_server *srv)
{
    int n = 0;
    for (const struct sl_list *it = srv->conns.next; it != &srv->conns; it = it->next)
        n += conn_busy(SL_CONTAINER_OF(it, const struct http_conn, link));
    return n;
}

const struct http_server_stats *http_server_stats(const struct http_server *srv)
{
    return &srv->stats;
}

