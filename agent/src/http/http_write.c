/*
 * http_write.c - the writing half of an HTTP connection (see http_conn.h).
 *
 * Writes are pull-based: the writer (conn_write) drains the output buffer,
 * then asks the response for its head or its next body piece. Whenever the
 * response has nothing yet it returns WAIT and the writer stops until
 * http_conn_wake. This keeps every callback short and never re-enters a
 * response from inside its own callbacks. A body that fails after its head
 * was sent ends the connection without a clean end (http_server.h).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/common.h"
#include "http/http_conn.h"
#include "http/httpx.h"

static void conn_write(struct http_conn *c);


/*
 * Run the writer later in this loop iteration. Feeding the event instead of
 * starting the watcher saves two epoll_ctl calls per response when the
 * socket is writable, which it nearly always is; only a full socket starts
 * the watcher (block_on_socket). Stopping the watcher also clears a fed
 * event, so a connection closed meanwhile is never written to.
 */
void schedule_write(struct http_conn *c)
{
    ev_feed_event(c->srv->loop, &c->wio, EV_WRITE);
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

void out_append(struct http_conn *c, const void *data, size_t len)
{
    if (c->out_len + len > c->out_cap) {
        size_t cap = SL_MAX(c->out_cap * 2, c->out_len + len + 1024);
        c->out = sl_realloc(c->out, cap);
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
}

void out_printf(struct http_conn *c, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    SL_ASSERT(n >= 0 && (size_t)n < sizeof(buf));
    out_append(c, buf, (size_t)n);
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
        out_append(c, SL_LIT("\r\n"));
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
            out_append(c, SL_LIT("0\r\n\r\n"));
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

void conn_on_write(struct ev_loop *loop, ev_io *w, int revents)
{
    SL_UNUSED(loop);
    SL_UNUSED(revents);
    conn_write(conn_of(w->data));
}

/* ------------------------------------------------------------ responses */

void http_respond_simple(struct http_conn *c, int status, const char *content_type,
                         const char *extra_headers, const void *body, size_t len)
{
    SL_ASSERT(c->phase == P_HEAD && !c->resp);
    out_printf(c, "HTTP/1.1 %d %s\r\nDate: %s\r\n", status, http_status_text(status), httpx_date_now());
    if (content_type)
        out_printf(c, "Content-Type: %s\r\n", content_type);
    out_printf(c, "Content-Length: %zu\r\n", len);
    if (extra_headers)
        out_append(c, extra_headers, strlen(extra_headers));
    if (c->close_after)
        out_append(c, SL_LIT("Connection: close\r\n"));
    out_append(c, SL_LIT("\r\n"));
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

