/*
 * origin.c - libcurl multi driven by libev (see origin.h).
 *
 * The multi handle's sockets and timer are libev watchers (core/curl_ev.c).
 * libcurl forbids calling most multi functions from inside its own
 * callbacks, and our callbacks (on_headers/on_data) run inside them. So
 * every operation that may be requested from a callback - adding a
 * transfer, resuming one, aborting one - is queued on the client and carried
 * out by a zero-delay "kick" timer, outside libcurl. Completion (on_done) is
 * reported from xfer_done, which curl_ev runs outside libcurl.
 *
 * Redirects are followed here, not by libcurl: the response of a 3xx with
 * a Location is read and dropped, the target is checked by the route's
 * policy (redirect.h), and the same easy handle is started again on the new
 * URL from xfer_done. The address of every connection after a redirect
 * is checked before the request is sent (CURLOPT_PREREQFUNCTION).
 *
 * Each header block (read by origin_head.c) is judged before anything is
 * reported: its framing (one Content-Length, no Transfer-Encoding beside it) and
 * its deadline (the `head` timer, armed when the request is sent and
 * stopped at the end of the block). A refused block ends the transfer from
 * xfer_done or the timer, never from inside libcurl.
 */
#include "origin/origin.h"
#include "origin/origin_head.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "core/common.h"
#include "core/curl_ev.h"
#include "core/log.h"
#include "http/httpx.h"

#define XFER_MAGIC 0x58464552u   /* "XFER" */

/*
 * libcurl's receive buffer per transfer (its default is 16 KiB). One socket
 * read rarely brings more than 64 KiB from a real origin, and the buffer
 * is allocated per transfer: at 256 KiB a burst of 200 fills touched 50
 * MiB of fresh heap, a page fault per page on the loop (docs/performance.md
 * section 15); a single fill from a loopback origin at 400 MB/s loses
 * about 7 % of its speed at this size.
 */
#define ORIGIN_RECV_BUFFER (64L * 1024)

struct origin_xfer {
    unsigned magic;
    struct origin_client *oc;
    CURL *easy;
    struct origin_callbacks cb;
    void *ctx;
    struct origin_head block;    /* the header block being read */
    bool headers_done;
    enum origin_bad bad;         /* the block was refused for it */
    const struct route *route;   /* whose redirect policy applies */
    char *url;                   /* the URL being fetched now */
    char *location;              /* Location of the 3xx being dropped, or NULL */
    int hop;                     /* redirects followed so far */
    int origin_private;          /* the first hop's address was non-public: -1 unknown, 0, 1 */
    struct curl_slist *req_headers;   /* extra request headers, or NULL */
    enum redirect_verdict refused;   /* set by prereq_cb when it stops a hop */
    bool aborted;        /* no more user callbacks */
    bool in_multi;
    bool paused;
    bool add_pending;
    bool resume_pending;
    bool remove_pending;
    ev_timer stall;
    ev_timer head;       /* the header block's deadline */
    /* links on the client's deferred-operation lists (one per list, since a
     * transfer can be waiting to be resumed and to be removed at once) */
    struct origin_xfer *next_add, *next_resume, *next_remove;
    char errbuf[CURL_ERROR_SIZE];
};

struct origin_client {
    struct ev_loop *loop;
    struct curl_ev *ce;
    CURLM *multi;             /* curl_ev_multi(ce) */
    ev_timer kick;
    double stall_s;
    double head_s;
    long connect_timeout_ms;
    struct origin_xfer *to_add, *to_resume, *to_remove;
    struct origin_stats stats;
};


/* Every callback context libcurl or libev hands back is checked. */
static struct origin_xfer *xfer_of(void *p)
{
    struct origin_xfer *x = p;
    SL_CHECK_OBJ(x, XFER_MAGIC);
    return x;
}

const char *origin_result_name(enum origin_result r)
{
    static const char *const names[] = { "ok", "connect", "stall", "header_timeout", "truncated", "protocol",
                                         "redirect", "status", "integrity", "other" };
    _Static_assert(SL_ARRAY_LEN(names) == ORIGIN_ERR_OTHER + 1, "a name per result");
    return (unsigned)r < SL_ARRAY_LEN(names) ? names[r] : "other";
}

const char *origin_bad_name(enum origin_bad why)
{
    static const char *const names[] = { "none", "cl-te", "cl-conflict", "cl-invalid", "bad-field" };
    _Static_assert(SL_ARRAY_LEN(names) == ORIGIN_BAD_REASONS, "a name per reason");
    return (unsigned)why < SL_ARRAY_LEN(names) ? names[why] : "none";
}

/* What the log line and the client's 502 say. */
static const char *bad_text(enum origin_bad why)
{
    switch (why) {
    case ORIGIN_BAD_CL_TE: return "both Content-Length and Transfer-Encoding";
    case ORIGIN_BAD_CL_CONFLICT: return "Content-Length values differ";
    case ORIGIN_BAD_CL_INVALID: return "invalid Content-Length";
    case ORIGIN_BAD_FIELD: return "a header line that is not a field";
    default: return "bad framing";
    }
}

/* ------------------------------------------------------------ transfers */

static void unlink_add(struct origin_client *oc, struct origin_xfer *x)
{
    for (struct origin_xfer **pp = &oc->to_add; *pp; pp = &(*pp)->next_add)
        if (*pp == x) {
            *pp = x->next_add;
            break;
        }
    x->add_pending = false;
}

static void unlink_resume(struct origin_client *oc, struct origin_xfer *x)
{
    for (struct origin_xfer **pp = &oc->to_resume; *pp; pp = &(*pp)->next_resume)
        if (*pp == x) {
            *pp = x->next_resume;
            break;
        }
    x->resume_pending = false;
}

static void xfer_free(struct origin_xfer *x)
{
    struct origin_client *oc = x->oc;
    if (x->add_pending)
        unlink_add(oc, x);
    if (x->resume_pending)
        unlink_resume(oc, x);
    ev_timer_stop(oc->loop, &x->stall);
    ev_timer_stop(oc->loop, &x->head);
    if (x->in_multi) {
        curl_multi_remove_handle(oc->multi, x->easy);
        oc->stats.in_flight--;
    }
    curl_easy_cleanup(x->easy);
    origin_head_free(&x->block);
    free(x->url);
    free(x->location);
    curl_slist_free_all(x->req_headers);
    x->magic = 0;
    free(x);
}

static void kick(struct origin_client *oc)
{
    if (!ev_is_active(&oc->kick)) {
        ev_timer_set(&oc->kick, 0., 0.);
        ev_timer_start(oc->loop, &oc->kick);
    }
}

static void stall_touch(struct origin_xfer *x)
{
    if (!x->paused && !x->aborted)
        ev_timer_again(x->oc->loop, &x->stall);
}

static void remember_location(struct origin_xfer *x)
{
    free(x->location);
    const char *loc = origin_head_location(&x->block);
    x->location = loc ? sl_strdup(loc) : NULL;
}

/* A header block whose body length is ambiguous is never relayed: two
 * parsers (ours, a client's, a cache's) could read two bodies in it. */
static bool refuse_framing(struct origin_xfer *x)
{
    x->bad = origin_head_framing(&x->block);
    if (x->bad == ORIGIN_BAD_NONE)
        return false;
    log_warn("origin: refusing the response of %s: %s (status %d)", x->url, bad_text(x->bad), x->block.status);
    return true;
}

static size_t header_cb(char *buf, size_t size, size_t nitems, void *userdata)
{
    struct origin_xfer *x = xfer_of(userdata);
    size_t len = size * nitems;
    if (x->aborted)
        return 0;
    stall_touch(x);
    if (x->headers_done)
        return len;   /* trailers: ignored */
    if (origin_head_line(&x->block, buf, len) == ORIGIN_HEAD_MORE)
        return len;
    /* End of a header block: interim, refused for its framing, a redirect
     * (its body is dropped and xfer_done decides whether to follow it), or
     * final. */
    if (x->block.status < 200)
        return len;
    ev_timer_stop(x->oc->loop, &x->head);
    if (refuse_framing(x))
        return 0;   /* xfer_done reports it */
    if (x->block.status >= 300 && x->block.status < 400 && x->block.saw_location) {
        remember_location(x);
        return len;
    }
    x->headers_done = true;
    x->cb.on_headers(x->ctx, x->block.status, &x->block.hdrs);
    return x->aborted ? 0 : len;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
    struct origin_xfer *x = xfer_of(userdata);
    size_t len = size * nmemb;
    if (x->aborted)
        return 0;
    stall_touch(x);
    if (x->location)
        return len;   /* the body of a redirect: dropped */
    if (!x->headers_done) {
        /* A body without a final header block: treat what we have as final. */
        x->headers_done = true;
        x->cb.on_headers(x->ctx, x->block.status, &x->block.hdrs);
        if (x->aborted)
            return 0;
    }
    size_t took = x->cb.on_data(x->ctx, (const uint8_t *)data, len);
    if (x->aborted)
        return 0;
    if (took == ORIGIN_PAUSE) {
        x->paused = true;
        ev_timer_stop(x->oc->loop, &x->stall);
        return CURL_WRITEFUNC_PAUSE;
    }
    SL_ASSERT(took == len);
    x->oc->stats.bytes += len;
    return len;
}

static enum origin_result map_result(const struct origin_xfer *x, CURLcode rc)
{
    switch (rc) {
    case CURLE_OK:
        return ORIGIN_OK;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
        return ORIGIN_ERR_CONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        return x->headers_done ? ORIGIN_ERR_STALL : ORIGIN_ERR_CONNECT;
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
        return x->headers_done ? ORIGIN_ERR_TRUNCATED : ORIGIN_ERR_CONNECT;
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_BAD_CONTENT_ENCODING:
        return ORIGIN_ERR_PROTOCOL;
    case CURLE_ABORTED_BY_CALLBACK:
        return x->refused != REDIRECT_FOLLOW ? ORIGIN_ERR_REDIRECT : ORIGIN_ERR_OTHER;
    default:
        return ORIGIN_ERR_OTHER;
    }
}

static void finish_xfer(struct origin_xfer *x, enum origin_result res, const char *detail)
{
    struct origin_client *oc = x->oc;
    if (res != ORIGIN_OK)
        oc->stats.errors[res]++;
    bool report = !x->aborted;
    x->aborted = true;
    enum origin_bad bad = x->bad;
    struct origin_callbacks cb = x->cb;
    void *ctx = x->ctx;
    char msg[CURL_ERROR_SIZE];
    sl_strlcpy(msg, detail ? detail : "", sizeof(msg));
    xfer_free(x);
    if (report && bad != ORIGIN_BAD_NONE && cb.on_bad)
        cb.on_bad(ctx, bad);
    if (report)
        cb.on_done(ctx, res, msg);
}

/*
 * A redirect's response is complete: follow it with the same easy handle,
 * or end the transfer when the route's policy refuses it. Runs outside
 * libcurl's callbacks (xfer_done), where removing and re-adding a handle
 * is allowed.
 */
static void follow_redirect(struct origin_xfer *x)
{
    struct origin_client *oc = x->oc;
    char next[CONFIG_URL_MAX * 2];
    enum redirect_verdict v = redirect_check(x->route, x->url, x->location, x->hop + 1, next, sizeof(next));
    if (v != REDIRECT_FOLLOW) {
        oc->stats.redirects[v]++;
        log_warn("origin: refusing redirect from %s to %s: %s", x->url, x->location, next);
        finish_xfer(x, ORIGIN_ERR_REDIRECT, next);
        return;
    }
    log_debug("origin: following redirect %s -> %s", x->url, next);
    curl_multi_remove_handle(oc->multi, x->easy);
    x->hop++;
    free(x->url);
    x->url = sl_strdup(next);
    free(x->location);
    x->location = NULL;
    origin_head_free(&x->block);
    curl_easy_setopt(x->easy, CURLOPT_URL, x->url);
    stall_touch(x);
    curl_multi_add_handle(oc->multi, x->easy);
}

/* A transfer ended (curl_ev.h: outside libcurl's callbacks). */
static void xfer_done(void *ctx, CURL *easy, CURLcode rc)
{
    SL_UNUSED(ctx);
    struct origin_xfer *x = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
    SL_ASSERT(x != NULL);
    if (x->remove_pending)
        return;   /* aborted; the kick frees it */
    if (x->bad != ORIGIN_BAD_NONE) {
        char why[96];
        snprintf(why, sizeof(why), "bad response: %s", bad_text(x->bad));
        finish_xfer(x, ORIGIN_ERR_PROTOCOL, why);
        return;
    }
    if (rc == CURLE_OK && x->location && !x->aborted) {
        follow_redirect(x);
        return;
    }
    enum origin_result res = map_result(x, rc);
    if (res == ORIGIN_ERR_REDIRECT) {
        x->oc->stats.redirects[x->refused]++;
        finish_xfer(x, res, "redirect to a non-public address the origin is not at");
        return;
    }
    if (res == ORIGIN_OK && !x->headers_done && !x->aborted) {
        x->headers_done = true;
        x->cb.on_headers(x->ctx, x->block.status, &x->block.hdrs);
    }
    finish_xfer(x, res, rc == CURLE_OK ? "" : (x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc)));
}

static void on_stall(struct ev_loop *loop, ev_timer *w, int revents)
{
    SL_UNUSED(loop);
    SL_UNUSED(revents);
    struct origin_xfer *x = xfer_of(w->data);
    if (x->paused)
        return;
    log_warn("origin: no bytes for %.1fs, abandoning transfer", x->oc->stall_s);
    finish_xfer(x, ORIGIN_ERR_STALL, "origin stalled");
}

static void on_head_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    SL_UNUSED(loop);
    SL_UNUSED(revents);
    struct origin_xfer *x = xfer_of(w->data);
    char why[96];
    snprintf(why, sizeof(why), "no complete header block within %.1fs", x->oc->head_s);
    log_warn("origin: %s from %s, abandoning transfer", why, x->url);
    finish_xfer(x, ORIGIN_ERR_HEADER_TIMEOUT, why);
}

static void on_kick(struct ev_loop *loop, ev_timer *w, int revents)
{
    SL_UNUSED(loop);
    SL_UNUSED(revents);
    struct origin_client *oc = w->data;
    while (oc->to_remove) {
        struct origin_xfer *x = oc->to_remove;
        oc->to_remove = x->next_remove;
        xfer_free(x);
    }
    while (oc->to_add) {
        struct origin_xfer *x = oc->to_add;
        oc->to_add = x->next_add;
        x->add_pending = false;
        x->in_multi = true;
        oc->stats.in_flight++;
        curl_multi_add_handle(oc->multi, x->easy);
    }
    while (oc->to_resume) {
        struct origin_xfer *x = oc->to_resume;
        oc->to_resume = x->next_resume;
        x->resume_pending = false;
        if (x->aborted || !x->paused)
            continue;
        x->paused = false;
        ev_timer_again(oc->loop, &x->stall);
        curl_easy_pause(x->easy, CURLPAUSE_CONT);
    }
    curl_ev_check(oc->ce);
}

/*
 * Every request's connection, new or reused, just before it is sent: the
 * first hop tells whether the origin is at a non-public address; after a
 * redirect, a non-public address is refused unless the origin is at one.
 */
static int prereq_cb(void *clientp, char *primary_ip, char *local_ip, int primary_port, int local_port)
{
    SL_UNUSED(local_ip);
    SL_UNUSED(primary_port);
    SL_UNUSED(local_port);
    struct origin_xfer *x = xfer_of(clientp);
    ev_timer_stop(x->oc->loop, &x->head);   /* this request's header block starts now */
    ev_timer_set(&x->head, x->oc->head_s, 0.);
    ev_timer_start(x->oc->loop, &x->head);
    bool private_ip = redirect_address_private(primary_ip);
    if (x->hop == 0) {
        x->origin_private = private_ip;
        return CURL_PREREQFUNC_OK;
    }
    if (private_ip && x->origin_private != 1) {
        log_warn("origin: refusing redirect to %s (%s): a non-public address, the origin is not at one",
                 x->url, primary_ip);
        x->refused = REDIRECT_REFUSE_ADDRESS;
        return CURL_PREREQFUNC_ABORT;
    }
    x->oc->stats.redirects[REDIRECT_FOLLOW]++;
    return CURL_PREREQFUNC_OK;
}

struct origin_xfer *origin_fetch(struct origin_client *oc, const struct route *route, const char *url,
                                 const char *const *headers, const struct origin_callbacks *cb, void *ctx)
{
    SL_ASSERT(route && url);
    struct origin_xfer *x = sl_calloc(1, sizeof(*x));
    x->magic = XFER_MAGIC;
    x->oc = oc;
    x->route = route;
    x->url = sl_strdup(url);
    x->origin_private = -1;
    x->cb = *cb;
    x->ctx = ctx;
    origin_head_init(&x->block);
    x->easy = curl_easy_init();
    SL_ASSERT(x->easy != NULL);
    CURL *e = x->easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, oc->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);   /* follow_redirect decides */
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, prereq_cb);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, x);
    for (const char *const *h = headers; h && *h; h++) {
        struct curl_slist *l = curl_slist_append(x->req_headers, *h);
        SL_ASSERT(l != NULL);
        x->req_headers = l;
    }
    if (x->req_headers)
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->req_headers);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "sluice/0.1");
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, ORIGIN_RECV_BUFFER);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    ev_init(&x->stall, on_stall);
    x->stall.repeat = oc->stall_s;
    x->stall.data = x;
    ev_timer_again(oc->loop, &x->stall);
    ev_init(&x->head, on_head_timeout);
    x->head.data = x;
    oc->stats.requests++;
    x->add_pending = true;
    x->next_add = oc->to_add;
    oc->to_add = x;
    kick(oc);
    return x;
}

void origin_abort(struct origin_xfer *x)
{
    if (x->aborted)
        return;
    x->aborted = true;
    x->remove_pending = true;
    ev_timer_stop(x->oc->loop, &x->stall);
    ev_timer_stop(x->oc->loop, &x->head);
    x->next_remove = x->oc->to_remove;
    x->oc->to_remove = x;
    kick(x->oc);
}

void origin_resume(struct origin_xfer *x)
{
    if (x->aborted || !x->paused || x->resume_pending)
        return;
    x->resume_pending = true;
    x->next_resume = x->oc->to_resume;
    x->oc->to_resume = x;
    kick(x->oc);
}

void origin_client_set_timeouts(struct origin_client *oc, int64_t connect_timeout_ms, int64_t stall_timeout_ms)
{
    oc->stall_s = (double)stall_timeout_ms / 1000.0;
    oc->connect_timeout_ms = (long)connect_timeout_ms;
}

void origin_client_set_header_timeout(struct origin_client *oc, int64_t header_timeout_ms)
{
    oc->head_s = (double)header_timeout_ms / 1000.0;
}

struct origin_client *origin_client_new(struct ev_loop *loop, int64_t connect_timeout_ms,
                                        int64_t stall_timeout_ms)
{
    struct origin_client *oc = sl_calloc(1, sizeof(*oc));
    oc->loop = loop;
    origin_client_set_timeouts(oc, connect_timeout_ms, stall_timeout_ms);
    origin_client_set_header_timeout(oc, ORIGIN_HEADER_TIMEOUT_MS);
    oc->ce = curl_ev_new(loop, xfer_done, oc);
    oc->multi = curl_ev_multi(oc->ce);
    ev_init(&oc->kick, on_kick);
    oc->kick.data = oc;
    return oc;
}

void origin_client_free(struct origin_client *oc)
{
    if (!oc)
        return;
    while (oc->to_remove) {
        struct origin_xfer *x = oc->to_remove;
        oc->to_remove = x->next_remove;
        xfer_free(x);
    }
    while (oc->to_add)
        xfer_free(oc->to_add);
    ev_timer_stop(oc->loop, &oc->kick);
    curl_ev_free(oc->ce);
    free(oc);
}

const struct origin_stats *origin_client_stats(const struct origin_client *oc)
{
    return &oc->stats;
}
