/*
 * spop_server.c - the SPOP agent listener on libev (see spop_server.h).
 *
 * Each connection goes HELLO -> READY -> CLOSING:
 *  - HELLO: only HAPROXY-HELLO (or HAPROXY-DISCONNECT) is acceptable; the
 *    reply negotiates max-frame-size and capabilities.
 *  - READY: NOTIFY frames are answered with one ACK each, synchronously,
 *    in arrival order; unknown frame types are skipped.
 *  - CLOSING: the last frame (AGENT-DISCONNECT, or the AGENT-HELLO of a
 *    health check) is flushed, the write side is shut, and the socket is
 *    closed when the peer closes or after CLOSE_GRACE_S. Input is read and
 *    dropped meanwhile, so unread bytes never turn our close into a reset
 *    that could destroy the frame we just sent.
 *
 * Limits (struct spop_limits): one timer per connection holds its one
 * deadline, measured from c->since: in HELLO the connect (the HELLO must be
 * whole within frame_timeout); in READY with a partial frame, the arrival
 * of that frame's first byte (frame_timeout); in READY with nothing
 * pending, the end of the last frame (idle_timeout, if any); in CLOSING the
 * same timer is the close grace. A connection past max_connections gets a
 * DISCONNECT and is closed before anything is allocated for it.
 *
 * Invariants:
 *  - Frames are decoded in place from the connection's read buffer; the
 *    pointers handed to the verdict callback die when the read buffer is
 *    compacted after the batch.
 *  - Outgoing frames are appended whole to the output buffer and flushed
 *    with send(); a frame is only split across send() calls when the
 *    kernel takes part of it (pitfall P9 in the protocol notes). The
 *    output buffer is freed once everything in it was sent.
 *  - The read buffer never exceeds max-frame + 4 bytes and the output
 *    buffer never exceeds OBUF_LIMIT; a peer that would push past either
 *    is disconnected. It grows with the bytes that arrived (doubling when
 *    full), never with what a length prefix promises: a half frame costs
 *    what was sent, not the frame size. Past the HELLO, a read that fills
 *    it doubles it up to RBUF_INITIAL, for batches of NOTIFYs.
 *  - Only conn_destroy() frees a connection, and it is only reached from
 *    event callbacks after all use of the connection is over, or from
 *    spop_server_stop().
 */
#include "spop/spop_server.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/common.h"
#include "core/list.h"
#include "core/log.h"
#include "core/net.h"
#include "spop/spop_codec.h"

/* A busy connection's reads grow to this much: about 140 lookup NOTIFYs. A burst of requests
 * (a stampede) queues its NOTIFYs on a few connections, and a 4 KiB read
 * answered only ~35 of them per loop pass; the rest waited a pass each,
 * behind everything else the pass did (accepts, fill fan-out). */
#define RBUF_INITIAL (16 * 1024)
#define RBUF_HELLO 512             /* before the HELLO: HAProxy's is ~130 bytes */
#define OBUF_LIMIT (1024 * 1024)   /* peer stopped reading: give up */
#define SMALL_FRAME_MAX 1024       /* HELLO and DISCONNECT replies fit; ACKs use srv->ack */
#define CLOSE_GRACE_S 5.0
#define PEER_MAX (INET6_ADDRSTRLEN + 16)

enum conn_state { CONN_HELLO, CONN_READY, CONN_CLOSING };

#define SPOP_CONN_MAGIC 0x53504f50u   /* "SPOP" */

struct spop_conn {
    unsigned magic;
    struct spop_server *srv;
    struct sl_list link;         /* on srv->conns */
    int fd;
    ev_io read_io;
    ev_io write_io;
    ev_timer timer;      /* the deadline of the state (see the header) */
    ev_tstamp since;     /* ... measured from here */
    enum conn_state state;
    bool abort;          /* close now, without flushing */
    bool write_shut;     /* CLOSING and everything was sent */
    uint32_t max_frame;  /* limit for incoming frames */
    uint8_t *rbuf;
    size_t rcap, rlen;
    uint8_t *obuf;
    size_t ocap, olen, opos;   /* pending output is obuf[opos..olen) */
    char peer[PEER_MAX];
};

struct spop_server {
    struct ev_loop *loop;
    struct net_listener listener;
    spop_verdict_fn fn;
    void *ctx;
    struct sl_list conns;        /* every open connection */
    bool draining;               /* spop_server_drain was called */
    bool cap_warned;             /* the cap was logged since it was last left */
    struct spop_limits limits;
    struct spop_stats stats;
    uint8_t ack[SPOP_SERVER_MAX_FRAME + SPOP_FRAME_LEN_SIZE];   /* ACKs are built here */
};

static const char empty_string[] = "";

const char *const spop_drop_reason_names[SPOP_DROP_REASONS] = { "cap", "hello_timeout", "frame_timeout",
                                                                 "idle_timeout" };

/* ------------------------------------------------------------ helpers */

static bool errno_is_transient(int err)
{
    return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

static void format_peer(const struct sockaddr *sa, socklen_t len, char *out, size_t outlen)
{
    char host[INET6_ADDRSTRLEN], port[8];
    if (sa->sa_family == AF_UNIX) {
        snprintf(out, outlen, "unix");
        return;
    }
    if (getnameinfo(sa, len, host, sizeof(host), port, sizeof(port),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        snprintf(out, outlen, "?");
        return;
    }
    if (sa->sa_family == AF_INET6)
        snprintf(out, outlen, "[%s]:%s", host, port);
    else
        snprintf(out, outlen, "%s:%s", host, port);
}

/* ------------------------------------------------------- connections */

static void conn_stop(struct spop_conn *c, uint32_t status);
static void conn_arm_deadline(struct spop_conn *c);

static void conn_destroy(struct spop_conn *c)
{
    struct spop_server *srv = c->srv;
    ev_io_stop(srv->loop, &c->read_io);
    ev_io_stop(srv->loop, &c->write_io);
    ev_timer_stop(srv->loop, &c->timer);
    close(c->fd);
    list_remove(&c->link);
    SL_ASSERT(srv->stats.connections_open > 0);
    srv->stats.connections_open--;
    SL_ASSERT(srv->stats.buffer_bytes >= c->rcap + c->ocap);
    srv->stats.buffer_bytes -= c->rcap + c->ocap;
    log_debug("spop %s: closed", c->peer);
    free(c->rbuf);
    free(c->obuf);
    c->magic = 0;
    free(c);
}

static void conn_begin_close(struct spop_conn *c)
{
    if (c->state == CONN_CLOSING)
        return;
    c->state = CONN_CLOSING;
    c->rlen = 0;   /* whatever else the peer sent is moot now */
    ev_timer_stop(c->srv->loop, &c->timer);
    ev_timer_set(&c->timer, CLOSE_GRACE_S, 0.0);
    ev_timer_start(c->srv->loop, &c->timer);
}

/* Appends one whole frame to the output buffer. */
static void conn_queue(struct spop_conn *c, const uint8_t *frame, size_t n)
{
    if (c->abort)
        return;
    if (c->olen - c->opos + n > OBUF_LIMIT) {
        log_warn("spop %s: peer is not reading (%zu bytes pending), closing",
                 c->peer, c->olen - c->opos);
        c->abort = true;
        conn_begin_close(c);
        return;
    }
    if (c->opos > 0 && c->olen + n > c->ocap) {
        memmove(c->obuf, c->obuf + c->opos, c->olen - c->opos);
        c->olen -= c->opos;
        c->opos = 0;
    }
    if (c->olen + n > c->ocap) {
        size_t cap = SL_MAX(SL_MAX(c->ocap * 2, c->olen + n), (size_t)4096);
        c->obuf = sl_realloc(c->obuf, cap);
        c->srv->stats.buffer_bytes += cap - c->ocap;
        c->ocap = cap;
    }
    memcpy(c->obuf + c->olen, frame, n);
    c->olen += n;
}

/* Our frames are bounded by what we may send: the negotiated size. */
static size_t conn_frame_cap(const struct spop_conn *c)
{
    return SL_MIN((size_t)SMALL_FRAME_MAX, (size_t)c->max_frame + SPOP_FRAME_LEN_SIZE);
}

static void conn_send_disconnect(struct spop_conn *c, uint32_t status)
{
    uint8_t frame[SMALL_FRAME_MAX];
    size_t n = spop_build_agent_disconnect(frame, conn_frame_cap(c), status,
                                           spop_status_text(status));
    SL_ASSERT(n > 0);   /* status texts are short, frames >= 256 bytes */
    conn_queue(c, frame, n);
}

/* A protocol error: tell HAProxy why, then close. */
static void conn_fail(struct spop_conn *c, uint32_t status, const char *why)
{
    log_warn("spop %s: %s; disconnecting with status %u (%s)", c->peer, why, status,
             spop_status_text(status));
    c->srv->stats.protocol_errors++;
    conn_send_disconnect(c, status);
    conn_begin_close(c);
}

static void conn_grow_rbuf(struct spop_conn *c, size_t cap)
{
    if (cap <= c->rcap)
        return;
    c->rbuf = sl_realloc(c->rbuf, cap);
    c->srv->stats.buffer_bytes += cap - c->rcap;
    c->rcap = cap;
}

/* ------------------------------------------------------------ HELLO */

static void conn_handle_hello(struct spop_conn *c, const struct spop_frame *f)
{
    struct spop_hello h;
    if (!spop_hello_decode(f->payload, f->payload_len, &h)) {
        conn_fail(c, SPOP_STATUS_INVALID, "malformed HELLO");
        return;
    }
    if (!h.versions) {
        conn_fail(c, SPOP_STATUS_NO_VERSION, "HELLO without supported-versions");
        return;
    }
    if (!spop_list_has(h.versions, h.versions_len, "2.0")) {
        conn_fail(c, SPOP_STATUS_BAD_VERSION, "HELLO does not offer version 2.0");
        return;
    }
    if (!h.has_max_frame_size) {
        conn_fail(c, SPOP_STATUS_NO_FRAME_SIZE, "HELLO without max-frame-size");
        return;
    }
    if (h.max_frame_size < SPOP_MIN_MAX_FRAME) {
        conn_fail(c, SPOP_STATUS_BAD_FRAME_SIZE, "HELLO max-frame-size below 256");
        return;
    }
    uint32_t max_frame = (uint32_t)SL_MIN(h.max_frame_size, (uint64_t)SPOP_SERVER_MAX_FRAME);
    /* Announce only what HAProxy offered; never async (pitfall P11). */
    bool pipelining = h.capabilities &&
                      spop_list_has(h.capabilities, h.capabilities_len, "pipelining");
    uint8_t frame[SMALL_FRAME_MAX];
    size_t n = spop_build_agent_hello(frame, sizeof(frame), max_frame,
                                      pipelining ? "pipelining" : "");
    SL_ASSERT(n > 0 && n <= (size_t)max_frame + SPOP_FRAME_LEN_SIZE);
    conn_queue(c, frame, n);
    c->max_frame = max_frame;
    c->state = CONN_READY;
    c->srv->stats.hellos++;
    if (h.healthcheck) {
        c->srv->stats.healthchecks++;
        conn_begin_close(c);   /* reply, then close: that is the whole check */
    }
    log_debug("spop %s: HELLO ok, max-frame-size %u%s%s", c->peer, max_frame,
              pipelining ? ", pipelining" : "", h.healthcheck ? ", health check" : "");
}

/* ------------------------------------------------------- DISCONNECT */

static void conn_handle_disconnect(struct spop_conn *c, const struct spop_frame *f)
{
    struct spop_disconnect d;
    c->srv->stats.disconnects_received++;
    if (spop_disconnect_decode(f->payload, f->payload_len, &d) && d.message)
        log_debug("spop %s: HAProxy disconnects, status %u (%.*s)", c->peer, d.status,
                  (int)d.message_len, d.message);
    else
        log_debug("spop %s: HAProxy disconnects", c->peer);
    conn_send_disconnect(c, SPOP_STATUS_NORMAL);
    conn_begin_close(c);
}

/* ----------------------------------------------------------- NOTIFY */

static void take_string(const struct spop_data *v, const char **p, size_t *len)
{
    if (v->type == SPOP_DATA_STRING || v->type == SPOP_DATA_BINARY) {
        *p = v->u.str.ptr;
        *len = v->u.str.len;
    }
}

/* BOOL as sent, or any integer taken as "non-zero" (e.g. a header count). */
static bool data_truthy(const struct spop_data *v)
{
    switch (v->type) {
    case SPOP_DATA_BOOL:
        return v->u.boolean;
    case SPOP_DATA_INT32:
        return v->u.int32 != 0;
    case SPOP_DATA_UINT32:
        return v->u.uint32 != 0;
    case SPOP_DATA_INT64:
        return v->u.int64 != 0;
    case SPOP_DATA_UINT64:
        return v->u.uint64 != 0;
    default:
        return false;
    }
}

/* Args that decide whether the request is "plain" (see spop_server.h). */
enum { PLAIN_RANGE = 1, PLAIN_INM = 2, PLAIN_IMS = 4, PLAIN_ALL = 7 };

/* Takes one arg. *plain has the PLAIN_* bit of each of those args sent
 * and false, so "sent and false" differs from "missing"; an arg sent again
 * overrides its earlier value there as everywhere else (once set, a bit
 * stayed set: range=false then range=true was "plain" with a Range). */
static void lookup_take_arg(struct spop_lookup *in, const struct spop_arg *a, unsigned *plain)
{
    static const struct { const char *name; unsigned bit; } plain_args[] = {
        { "range", PLAIN_RANGE }, { "inm", PLAIN_INM }, { "ims", PLAIN_IMS },
    };
    if (sl_bytes_eq(a->name, a->name_len, "route"))
        take_string(&a->value, &in->route, &in->route_len);
    else if (sl_bytes_eq(a->name, a->name_len, "method"))
        take_string(&a->value, &in->method, &in->method_len);
    else if (sl_bytes_eq(a->name, a->name_len, "path"))
        take_string(&a->value, &in->path, &in->path_len);
    else if (sl_bytes_eq(a->name, a->name_len, "query"))
        take_string(&a->value, &in->query, &in->query_len);
    else if (sl_bytes_eq(a->name, a->name_len, "accept"))
        take_string(&a->value, &in->accept, &in->accept_len);
    else if (sl_bytes_eq(a->name, a->name_len, "auth"))
        in->has_auth = data_truthy(&a->value);
    for (size_t i = 0; i < SL_ARRAY_LEN(plain_args); i++) {
        if (!sl_bytes_eq(a->name, a->name_len, plain_args[i].name))
            continue;
        bool set = data_truthy(&a->value);
        if (plain_args[i].bit == PLAIN_RANGE)
            in->has_range = set;
        *plain = set ? *plain & ~plain_args[i].bit : *plain | plain_args[i].bit;
    }
}

static void lookup_decode(struct spop_message *msg, struct spop_lookup *in)
{
    struct spop_arg arg;
    unsigned plain = 0;
    memset(in, 0, sizeof(*in));
    in->method = empty_string;
    in->path = empty_string;
    while (spop_arg_next(msg, &arg) == 1)
        lookup_take_arg(in, &arg, &plain);
    in->plain = plain == PLAIN_ALL;
}

/* Finds the "lookup" message. The whole list is walked first so a
 * malformed frame is refused before the verdict function runs. Returns -1
 * when malformed, 1 when found, 0 when absent. */
static int notify_find_lookup(const struct spop_frame *f, struct spop_message *lookup)
{
    struct spop_msg_iter it;
    struct spop_message msg;
    int rc, found = 0;
    spop_msg_iter_init(&it, f->payload, f->payload_len);
    while ((rc = spop_msg_next(&it, &msg)) == 1) {
        if (!found && sl_bytes_eq(msg.name, msg.name_len, "lookup")) {
            *lookup = msg;
            found = 1;
        }
    }
    return rc < 0 ? -1 : found;
}

static size_t build_verdict_ack(uint8_t *buf, size_t cap, const struct spop_frame *f,
                                const struct spop_verdict *v)
{
    struct spop_action acts[8];
    size_t n = 0;
    acts[n++] = (struct spop_action){ SPOP_ACTION_SET_VAR, SPOP_SCOPE_TXN, SL_LIT("verdict"),
                                      spop_data_cstr(v->verdict) };
    if (v->retry_after >= 0) {
        int32_t secs = (int32_t)SL_MIN(v->retry_after, (int64_t)INT32_MAX);
        acts[n++] = (struct spop_action){ SPOP_ACTION_SET_VAR, SPOP_SCOPE_TXN, SL_LIT("retry_after"),
                                          spop_data_int32(secs) };
    }
    if (v->location) {
        acts[n++] = (struct spop_action){ SPOP_ACTION_SET_VAR, SPOP_SCOPE_TXN, SL_LIT("location"),
                                          spop_data_cstr(v->location) };
    }
    if (v->status > 0) {
        acts[n++] = (struct spop_action){ SPOP_ACTION_SET_VAR, SPOP_SCOPE_TXN, SL_LIT("status"),
                                          spop_data_int32(v->status) };
        acts[n++] = (struct spop_action){ SPOP_ACTION_SET_VAR, SPOP_SCOPE_TXN, SL_LIT("reason"),
                                          spop_data_cstr(v->reason ? v->reason : "bad request") };
    }
    if (v->fallback) {
        SL_ASSERT(n + 2 <= SL_ARRAY_LEN(acts));
        acts[n++] = (struct spop_action){ SPOP_ACTION_SET_VAR, SPOP_SCOPE_TXN, SL_LIT("hdrs"),
                                          spop_data_string(v->hdrs, v->hdrs_len) };
        acts[n++] = (struct spop_action){ SPOP_ACTION_SET_VAR, SPOP_SCOPE_TXN, SL_LIT("body"),
                                          spop_data_binary(v->body, v->body_len) };
    }
    return spop_build_ack(buf, cap, f->stream_id, f->frame_id, acts, n);
}

static void conn_handle_notify(struct spop_conn *c, const struct spop_frame *f)
{
    struct spop_server *srv = c->srv;
    struct spop_message msg;
    struct spop_verdict out = { .verdict = "pass", .retry_after = -1 };
    int found = notify_find_lookup(f, &msg);
    if (found < 0) {
        conn_fail(c, SPOP_STATUS_INVALID, "malformed NOTIFY");
        return;
    }
    srv->stats.notifies++;
    if (found) {
        struct spop_lookup in;
        lookup_decode(&msg, &in);
        srv->fn(srv->ctx, &in, &out);
        if (!out.verdict)
            out.verdict = "pass";
    }
    size_t cap = SL_MIN(sizeof(srv->ack), (size_t)c->max_frame + SPOP_FRAME_LEN_SIZE);
    size_t n = build_verdict_ack(srv->ack, cap, f, &out);
    if (n == 0 && out.fallback) {
        /* The inline answer does not fit the negotiated frame size. */
        srv->stats.inline_too_large++;
        out = (struct spop_verdict){ .verdict = out.fallback, .retry_after = out.retry_after };
        n = build_verdict_ack(srv->ack, cap, f, &out);
    }
    if (n == 0) {
        /* Only a verdict string longer than any sane one gets here; still
         * answer, since HAProxy would otherwise wait out its timeout. */
        log_error("spop %s: verdict \"%.40s...\" does not fit in an ACK", c->peer, out.verdict);
        out = (struct spop_verdict){ .verdict = "pass", .retry_after = -1 };
        n = build_verdict_ack(srv->ack, cap, f, &out);
        SL_ASSERT(n > 0);
    }
    conn_queue(c, srv->ack, n);
    srv->stats.acks++;
}

/* ----------------------------------------------------------- frames */

static void conn_handle_frame(struct spop_conn *c, const struct spop_frame *f)
{
    if (!(f->flags & SPOP_FLAG_FIN)) {
        conn_fail(c, SPOP_STATUS_FRAG_UNSUPPORTED, "fragmented frame");
        return;
    }
    if (c->state == CONN_HELLO) {
        if (f->type == SPOP_FRAME_HAPROXY_HELLO)
            conn_handle_hello(c, f);
        else if (f->type == SPOP_FRAME_HAPROXY_DISCONNECT)
            conn_handle_disconnect(c, f);
        else
            conn_fail(c, SPOP_STATUS_INVALID, "expected HELLO as the first frame");
        return;
    }
    if (f->flags & SPOP_FLAG_ABORT) {
        log_debug("spop %s: aborted frame (type %u) skipped", c->peer, f->type);
        return;
    }
    switch (f->type) {
    case SPOP_FRAME_NOTIFY:
        conn_handle_notify(c, f);
        return;
    case SPOP_FRAME_HAPROXY_DISCONNECT:
        conn_handle_disconnect(c, f);
        return;
    case SPOP_FRAME_HAPROXY_HELLO:
        conn_fail(c, SPOP_STATUS_INVALID, "second HELLO");
        return;
    default:
        log_debug("spop %s: frame type %u ignored", c->peer, f->type);
        return;
    }
}

/* A full read buffer holds a partial frame (whole ones were taken):
 * make room for more of it, doubling, up to the frame's size. */
static void conn_reserve_frame(struct spop_conn *c)
{
    uint32_t len;
    if (c->rlen < c->rcap)
        return;
    bool peeked = spop_frame_peek_length(c->rbuf, c->rlen, &len);
    SL_ASSERT(peeked && len <= c->max_frame);   /* checked by spop_frame_decode() */
    size_t need = (size_t)len + SPOP_FRAME_LEN_SIZE;
    SL_ASSERT(need > c->rcap);   /* else the frame would be whole */
    conn_grow_rbuf(c, SL_MIN(need, c->rcap * 2));
}

/* The frame at buf cannot be taken: say why. */
static void conn_fail_framing(struct spop_conn *c, const uint8_t *buf, size_t avail)
{
    char why[96];
    uint32_t len = 0;
    spop_frame_peek_length(buf, avail, &len);
    if (len > c->max_frame) {
        snprintf(why, sizeof(why), "frame length %u over max-frame-size %u", len, c->max_frame);
        conn_fail(c, SPOP_STATUS_TOO_BIG, why);
    } else if (len < SPOP_FRAME_HDR_MIN) {
        snprintf(why, sizeof(why), "frame length %u below %d", len, SPOP_FRAME_HDR_MIN);
        conn_fail(c, SPOP_STATUS_INVALID, why);
    } else {
        conn_fail(c, SPOP_STATUS_INVALID, "malformed frame header");
    }
}

/* ------------------------------------------------------------ limits */

/* How long c may stay as it is from c->since, in seconds (0: no limit). */
static double conn_allowance(const struct spop_conn *c)
{
    SL_ASSERT(c->state != CONN_CLOSING);
    const struct spop_limits *l = &c->srv->limits;
    int64_t ms = c->state == CONN_HELLO || c->rlen > 0 ? l->frame_timeout_ms : l->idle_timeout_ms;
    return (double)ms / 1000.0;
}

static enum spop_drop_reason conn_timeout_reason(const struct spop_conn *c)
{
    if (c->state == CONN_HELLO)
        return SPOP_DROP_HELLO_TIMEOUT;
    return c->rlen > 0 ? SPOP_DROP_FRAME_TIMEOUT : SPOP_DROP_IDLE_TIMEOUT;
}

/* (Re)sets the one timer to the deadline of c's state. */
static void conn_arm_deadline(struct spop_conn *c)
{
    struct ev_loop *loop = c->srv->loop;
    double allowance = conn_allowance(c);
    if (allowance <= 0) {
        ev_timer_stop(loop, &c->timer);
        return;
    }
    double left = c->since + allowance - ev_now(loop);
    c->timer.repeat = left > 0.001 ? left : 0.001;
    ev_timer_again(loop, &c->timer);
}

/* Draining: a READY connection with every NOTIFY it sent answered (they
 * are answered as they arrive) and no partial frame pending says
 * AGENT-DISCONNECT "normal" and closes; HAProxy then fails open. */
static void conn_drain_if_idle(struct spop_conn *c)
{
    if (!c->srv->draining || c->state != CONN_READY || c->rlen > 0)
        return;
    log_debug("spop %s: draining, disconnecting", c->peer);
    conn_send_disconnect(c, SPOP_STATUS_NORMAL);
    conn_begin_close(c);
}

/* Handles every whole frame in the read buffer, then compacts it;
 * `filled`: the last read filled the buffer. */
static void conn_process(struct spop_conn *c, bool filled)
{
    size_t pos = 0;
    while (c->state != CONN_CLOSING) {
        struct spop_frame f;
        size_t wire = 0;
        switch (spop_frame_decode(c->rbuf + pos, c->rlen - pos, c->max_frame, &f, &wire)) {
        case SPOP_DECODE_OK:
            conn_handle_frame(c, &f);
            pos += wire;
            continue;
        case SPOP_DECODE_NEED_MORE:
            break;
        case SPOP_DECODE_TOO_BIG:
        case SPOP_DECODE_INVALID:
            conn_fail_framing(c, c->rbuf + pos, c->rlen - pos);
            break;
        }
        break;
    }
    if (c->state == CONN_CLOSING)
        return;   /* conn_begin_close() dropped the input */
    memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
    c->rlen -= pos;
    /* A frame ended: what is left (if anything) began in this read. */
    if (c->state == CONN_READY && (pos > 0 || c->rlen == 0))
        c->since = ev_now(c->srv->loop);
    /* A read that filled the buffer may have left more behind: past the
     * HELLO, read NOTIFYs in bigger batches from now on. */
    if (filled && c->state == CONN_READY && c->rcap < RBUF_INITIAL)
        conn_grow_rbuf(c, SL_MIN(c->rcap * 2, (size_t)RBUF_INITIAL));
    conn_reserve_frame(c);
    conn_drain_if_idle(c);
    if (c->state != CONN_CLOSING)
        conn_arm_deadline(c);
}

/* ------------------------------------------------------------- I/O */

enum send_result { SEND_DONE, SEND_BLOCKED, SEND_FAILED };

static enum send_result conn_send_pending(struct spop_conn *c)
{
    while (c->opos < c->olen) {
        ssize_t n = send(c->fd, c->obuf + c->opos, c->olen - c->opos, MSG_NOSIGNAL);
        if (n > 0) {
            c->opos += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return SEND_BLOCKED;
        /* EPIPE/ECONNRESET: HAProxy went away (e.g. on reload); not news. */
        log_debug("spop %s: send: %s", c->peer, strerror(errno));
        return SEND_FAILED;
    }
    /* All sent: the buffer goes too (an idle connection holds none). */
    c->srv->stats.buffer_bytes -= c->ocap;
    free(c->obuf);
    c->obuf = NULL;
    c->opos = c->olen = c->ocap = 0;
    return SEND_DONE;
}

/* Sends what is pending; returns false when the connection was destroyed. */
static bool conn_flush(struct spop_conn *c)
{
    struct ev_loop *loop = c->srv->loop;
    if (c->abort) {
        conn_destroy(c);
        return false;
    }
    switch (conn_send_pending(c)) {
    case SEND_BLOCKED:
        ev_io_start(loop, &c->write_io);
        return true;
    case SEND_FAILED:
        conn_destroy(c);
        return false;
    case SEND_DONE:
        break;
    }
    ev_io_stop(loop, &c->write_io);
    if (c->state == CONN_CLOSING && !c->write_shut) {
        /* Our last frame is out: send FIN and wait for the peer's. */
        shutdown(c->fd, SHUT_WR);
        c->write_shut = true;
    }
    return true;
}

/* CLOSING: read and drop until the peer closes. */
static void conn_drain_input(struct spop_conn *c)
{
    uint8_t sink[4096];
    for (;;) {
        ssize_t n = recv(c->fd, sink, sizeof(sink), 0);
        if (n > 0)
            continue;
        if (n < 0 && errno_is_transient(errno))
            return;
        conn_destroy(c);
        return;
    }
}

static void conn_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct spop_conn *c = w->data;
    SL_CHECK_OBJ(c, SPOP_CONN_MAGIC);
    SL_UNUSED(loop);
    SL_UNUSED(revents);
    if (c->state == CONN_CLOSING) {
        conn_drain_input(c);
        return;
    }
    SL_ASSERT(c->rlen < c->rcap);   /* conn_reserve_frame() left room */
    ssize_t n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
    if (n < 0 && errno_is_transient(errno))
        return;
    if (n <= 0) {
        if (n < 0)
            log_debug("spop %s: recv: %s", c->peer, strerror(errno));
        conn_destroy(c);
        return;
    }
    c->rlen += (size_t)n;
    conn_process(c, c->rlen == c->rcap);
    conn_flush(c);
}

static void conn_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    SL_UNUSED(loop);
    SL_UNUSED(revents);
    conn_flush(w->data);
}

/* A limit ran out: say so, then close at once (no grace: a peer that let
 * a deadline pass is not waited for again). */
static void conn_expire(struct spop_conn *c)
{
    enum spop_drop_reason why = conn_timeout_reason(c);
    c->srv->stats.dropped[why]++;
    log_debug("spop %s: %s, disconnecting", c->peer, spop_drop_reason_names[why]);
    conn_stop(c, SPOP_STATUS_TIMEOUT);
}

static void conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct spop_conn *c = w->data;
    SL_CHECK_OBJ(c, SPOP_CONN_MAGIC);
    SL_UNUSED(revents);
    if (c->state == CONN_CLOSING) {
        log_debug("spop %s: peer did not close in time", c->peer);
        conn_destroy(c);
        return;
    }
    double allowance = conn_allowance(c);
    if (allowance > 0 && ev_now(loop) - c->since >= allowance - 0.001)
        conn_expire(c);
    else
        conn_arm_deadline(c);
}

static void conn_create(struct spop_server *srv, int fd, const struct sockaddr *sa,
                        socklen_t salen)
{
    struct spop_conn *c = sl_calloc(1, sizeof(*c));
    c->magic = SPOP_CONN_MAGIC;
    c->srv = srv;
    c->fd = fd;
    c->state = CONN_HELLO;
    c->max_frame = SPOP_SERVER_MAX_FRAME;
    c->rbuf = sl_malloc(RBUF_HELLO);
    c->rcap = RBUF_HELLO;
    srv->stats.buffer_bytes += RBUF_HELLO;
    format_peer(sa, salen, c->peer, sizeof(c->peer));
    ev_io_init(&c->read_io, conn_read_cb, fd, EV_READ);
    ev_io_init(&c->write_io, conn_write_cb, fd, EV_WRITE);
    ev_init(&c->timer, conn_timer_cb);
    c->read_io.data = c;
    c->write_io.data = c;
    c->timer.data = c;
    c->since = ev_now(srv->loop);
    list_push_front(&srv->conns, &c->link);
    srv->stats.connections_total++;
    srv->stats.connections_open++;
    ev_io_start(srv->loop, &c->read_io);
    conn_arm_deadline(c);
    log_debug("spop %s: connected", c->peer);
}

/* --------------------------------------------------------- listener */

/* Past max_connections: one DISCONNECT (HAProxy logs its status), then
 * close; nothing is allocated. */
static void refuse_over_cap(struct spop_server *srv, int fd)
{
    uint8_t frame[SMALL_FRAME_MAX];
    size_t n = spop_build_agent_disconnect(frame, sizeof(frame), SPOP_STATUS_RESOURCE,
                                           "too many connections");
    SL_ASSERT(n > 0);
    ssize_t sent = send(fd, frame, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    SL_UNUSED(sent);   /* best effort: the peer may be gone already */
    close(fd);
    srv->stats.dropped[SPOP_DROP_CAP]++;
    if (!srv->cap_warned)
        log_warn("spop: %llu connections open, spop_max_connections reached; refusing new ones",
                 (unsigned long long)srv->stats.connections_open);
    srv->cap_warned = true;
}

static void on_accept(void *ctx, int fd, const struct sockaddr *sa, socklen_t salen)
{
    struct spop_server *srv = ctx;
    int64_t cap = srv->limits.max_connections;
    if (cap > 0 && srv->stats.connections_open >= (uint64_t)cap) {
        refuse_over_cap(srv, fd);
        return;
    }
    srv->cap_warned = false;
    conn_create(srv, fd, sa, salen);
}

struct spop_server *spop_server_start(struct ev_loop *loop, const char *addr,
                                      spop_verdict_fn fn, void *ctx,
                                      char *err, size_t errlen)
{
    SL_ASSERT(loop && addr && fn);
    struct spop_server *srv = sl_calloc(1, sizeof(*srv));
    list_init(&srv->conns);
    srv->loop = loop;
    srv->fn = fn;
    srv->ctx = ctx;
    srv->limits = SPOP_LIMITS_DEFAULT;
    if (net_listener_start(&srv->listener, loop, "spop", addr, on_accept, srv, err, errlen) != 0) {
        free(srv);
        return NULL;
    }
    if (srv->listener.tcp)
        log_info("spop: listening on %s (port %d)", addr, srv->listener.port);
    else
        log_info("spop: listening on %s", addr);
    return srv;
}

/* Best effort on the way out: one non-blocking push of what we owe plus a
 * DISCONNECT with `status`, then close. Input is drained first so the
 * close is a FIN, not a reset that could discard the DISCONNECT at the
 * peer. */
static void conn_stop(struct spop_conn *c, uint32_t status)
{
    uint8_t sink[4096];
    if (c->state != CONN_CLOSING) {
        conn_send_disconnect(c, status);
        conn_begin_close(c);
    }
    if (!c->abort)
        conn_send_pending(c);
    while (recv(c->fd, sink, sizeof(sink), 0) > 0)
        ;
    conn_destroy(c);
}

void spop_server_drain(struct spop_server *srv)
{
    net_listener_stop(&srv->listener);
    srv->draining = true;
    struct sl_list *it = srv->conns.next;
    while (it != &srv->conns) {
        struct spop_conn *c = SL_CONTAINER_OF(it, struct spop_conn, link);
        it = it->next;
        conn_drain_if_idle(c);
        conn_flush(c);
    }
}

void spop_server_stop(struct spop_server *srv)
{
    if (!srv)
        return;
    net_listener_stop(&srv->listener);
    if (!list_empty(&srv->conns))
        log_info("spop: stopping, disconnecting %llu connection(s)",
                 (unsigned long long)srv->stats.connections_open);
    while (!list_empty(&srv->conns))
        conn_stop(SL_CONTAINER_OF(srv->conns.next, struct spop_conn, link), SPOP_STATUS_NORMAL);
    free(srv);
}

void spop_server_set_limits(struct spop_server *srv, const struct spop_limits *lim)
{
    SL_ASSERT(srv && lim && lim->frame_timeout_ms > 0 && lim->idle_timeout_ms >= 0 && lim->max_connections >= 0);
    srv->limits = *lim;
    for (struct sl_list *it = srv->conns.next; it != &srv->conns; it = it->next) {
        struct spop_conn *c = SL_CONTAINER_OF(it, struct spop_conn, link);
        if (c->state != CONN_CLOSING)
            conn_arm_deadline(c);
    }
}

const struct spop_stats *spop_server_stats(const struct spop_server *srv)
{
    return &srv->stats;
}

int spop_server_port(const struct spop_server *srv)
{
    return srv->listener.port;
}
