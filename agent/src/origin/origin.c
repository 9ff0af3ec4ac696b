/*
 * origin.c - libcurl multi driven by libev (see origin.h).
 *
 * libcurl forbids calling most multi functions from inside its own
 * callbacks, and our callbacks (on_headers/on_data) run inside them. So
 * every operation that may be requested from a callback - adding a
 * transfer, resuming one, aborting one - is queued on the client and carried
 * out by a zero-delay "kick" timer, outside libcurl. Completion (on_done) is
 * reported from check_done, which also runs outside libcurl.
 *
 * Redirects are followed here, not by libcurl: the response of a 3xx with
 * a Location is read and dropped, the target is checked by the route's
 * policy (redirect.h), and the same easy handle is started again on the new
 * URL from check_done. The address of every connection after a redirect
 * is checked before the request is sent (CURLOPT_PREREQFUNCTION).
 */
#include "origin/origin.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "core/common.h"
#include "core/log.h"

#define XFER_MAGIC 0x58464552u   /* "XFER" */

struct origin_xfer {
    unsigned magic;
    struct origin_client *oc;
    CURL *easy;
    struct origin_callbacks cb;
    void *ctx;
    struct origin_headers hdrs;
    int status;
    bool headers_done;
    bool saw_location;
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
    /* links on the client's deferred-operation lists (one per list, since a
     * transfer can be waiting to be resumed and to be removed at once) */
    struct origin_xfer *next_add, *next_resume, *next_remove;
    char errbuf[CURL_ERROR_SIZE];
};

struct origin_client {
    struct ev_loop *loop;
    CURLM *multi;
    ev_timer curl_timer;
    ev_timer kick;
    double stall_s;
    long connect_timeout_ms;
    struct origin_xfer *to_add, *to_resume, *to_remove;
    struct origin_stats stats;
};

struct sock_watch {
    ev_io io;
    struct origin_client *oc;
};

static void check_done(struct origin_client *oc);

/* Every callback context libcurl or libev hands back is checked. */
static struct origin_xfer *xfer_of(void *p)
{
    struct origin_xfer *x = p;
    SL_CHECK_OBJ(x, XFER_MAGIC);
    return x;
}

const char *origin_result_name(enum origin_result r)
{
    static const char *const names[] = { "ok", "connect", "stall", "truncated", "protocol", "redirect", "status", "integrity", "other" };
    return (unsigned)r < SL_ARRAY_LEN(names) ? names[r] : "other";
}

/* ------------------------------------------------------- libev <-> curl */

static void on_sock(struct ev_loop *loop, ev_io *w, int revents)
{
    SL_UNUSED(loop);
    /* sock_cb may free the watch during socket_action: keep what we need. */
    struct origin_client *oc = ((struct sock_watch *)w)->oc;
    int action = (revents & EV_READ ? CURL_CSELECT_IN : 0) | (revents & EV_WRITE ? CURL_CSELECT_OUT : 0);
    int running;
    curl_multi_socket_action(oc->multi, w->fd, action, &running);
    check_done(oc);
}

static int sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    SL_UNUSED(e);
    struct origin_client *oc = userp;
    struct sock_watch *sw = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (sw) {
            ev_io_stop(oc->loop, &sw->io);
            free(sw);
        }
        curl_multi_assign(oc->multi, s, NULL);
        return 0;
    }
    if (!sw) {
        sw = sl_calloc(1, sizeof(*sw));
        sw->oc = oc;
        ev_init(&sw->io, on_sock);
        curl_multi_assign(oc->multi, s, sw);
    } else {
        ev_io_stop(oc->loop, &sw->io);
    }
    int events = (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
    ev_io_set(&sw->io, s, events);
    ev_io_start(oc->loop, &sw->io);
    return 0;
}

static void on_curl_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    SL_UNUSED(loop);
    SL_UNUSED(revents);
    struct origin_client *oc = w->data;
    int running;
    curl_multi_socket_action(oc->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(oc);
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
    SL_UNUSED(m);
    struct origin_client *oc = userp;
    ev_timer_stop(oc->loop, &oc->curl_timer);
    if (timeout_ms >= 0) {
        ev_timer_set(&oc->curl_timer, (double)timeout_ms / 1000.0, 0.);
        ev_timer_start(oc->loop, &oc->curl_timer);
    }
    return 0;
}

/* ------------------------------------------------------------ transfers */

static void free_headers(struct origin_headers *h)
{
    for (int i = 0; i < h->n; i++) {
        free(h->h[i].name);
        free(h->h[i].value);
    }
    h->n = 0;
    h->content_length = -1;
}

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
    if (x->in_multi) {
        curl_multi_remove_handle(oc->multi, x->easy);
        oc->stats.in_flight--;
    }
    curl_easy_cleanup(x->easy);
    free_headers(&x->hdrs);
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

static void add_header(struct origin_xfer *x, const char *line, size_t len)
{
    const char *colon = memchr(line, ':', len);
    if (!colon || colon == line)
        return;
    size_t nlen = (size_t)(colon - line);
    const char *v = colon + 1;
    const char *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (nlen == SL_LIT_LEN("location") && strncasecmp(line, SL_LIT("location")) == 0)
        x->saw_location = true;
    if (nlen == SL_LIT_LEN("content-length") && strncasecmp(line, SL_LIT("content-length")) == 0) {
        char buf[24];
        size_t vl = (size_t)(end - v);
        if (vl > 0 && vl < sizeof(buf)) {
            memcpy(buf, v, vl);
            buf[vl] = '\0';
            char *e;
            long long cl = strtoll(buf, &e, 10);
            if (*e == '\0' && cl >= 0)
                x->hdrs.content_length = cl;
        }
    }
    if (x->hdrs.n < ORIGIN_MAX_HEADERS) {
        x->hdrs.h[x->hdrs.n].name = sl_strndup(line, nlen);
        x->hdrs.h[x->hdrs.n].value = sl_strndup(v, (size_t)(end - v));
        x->hdrs.n++;
    }
}

static void remember_location(struct origin_xfer *x)
{
    free(x->location);
    x->location = NULL;
    for (int i = 0; i < x->hdrs.n && !x->location; i++)
        if (strcasecmp(x->hdrs.h[i].name, "location") == 0)
            x->location = sl_strdup(x->hdrs.h[i].value);
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
    size_t l = len;
    while (l > 0 && (buf[l - 1] == '\n' || buf[l - 1] == '\r'))
        l--;
    if (l >= SL_LIT_LEN("HTTP/") && strncmp(buf, SL_LIT("HTTP/")) == 0) {
        free_headers(&x->hdrs);
        x->saw_location = false;
        const char *sp = memchr(buf, ' ', l);
        x->status = sp ? atoi(sp + 1) : 0;
        return len;
    }
    if (l > 0) {
        add_header(x, buf, l);
        return len;
    }
    /* End of a header block: interim, a redirect (its body is dropped and
     * check_done decides whether to follow it), or final. */
    if (x->status < 200)
        return len;
    if (x->status >= 300 && x->status < 400 && x->saw_location) {
        remember_location(x);
        return len;
    }
    x->headers_done = true;
    x->cb.on_headers(x->ctx, x->status, &x->hdrs);
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
        x->cb.on_headers(x->ctx, x->status, &x->hdrs);
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
    struct origin_callbacks cb = x->cb;
    void *ctx = x->ctx;
    char msg[CURL_ERROR_SIZE];
    sl_strlcpy(msg, detail ? detail : "", sizeof(msg));
    xfer_free(x);
    if (report)
        cb.on_done(ctx, res, msg);
}

/*
 * A redirect's response is complete: follow it with the same easy handle,
 * or end the transfer when the route's policy refuses it. Runs outside
 * libcurl's callbacks (check_done), where removing and re-adding a handle
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
    free_headers(&x->hdrs);
    x->status = 0;
    x->saw_location = false;
    curl_easy_setopt(x->easy, CURLOPT_URL, x->url);
    stall_touch(x);
    curl_multi_add_handle(oc->multi, x->easy);
}

static void check_done(struct origin_client *oc)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(oc->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct origin_xfer *x = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        SL_ASSERT(x != NULL);
        if (x->remove_pending)
            continue;   /* aborted; the kick frees it */
        CURLcode rc = m->data.result;
        if (rc == CURLE_OK && x->location && !x->aborted) {
            follow_redirect(x);
            continue;
        }
        enum origin_result res = map_result(x, rc);
        if (res == ORIGIN_ERR_REDIRECT) {
            x->oc->stats.redirects[x->refused]++;
            finish_xfer(x, res, "redirect to a non-public address the origin is not at");
            continue;
        }
        if (res == ORIGIN_OK && !x->headers_done && !x->aborted) {
            x->headers_done = true;
            x->cb.on_headers(x->ctx, x->status, &x->hdrs);
        }
        finish_xfer(x, res, rc == CURLE_OK ? "" : (x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc)));
    }
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
    check_done(oc);
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
    x->hdrs.content_length = -1;
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
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 256L * 1024);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    ev_init(&x->stall, on_stall);
    x->stall.repeat = oc->stall_s;
    x->stall.data = x;
    ev_timer_again(oc->loop, &x->stall);
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

struct origin_client *origin_client_new(struct ev_loop *loop, int64_t connect_timeout_ms,
                                        int64_t stall_timeout_ms)
{
    struct origin_client *oc = sl_calloc(1, sizeof(*oc));
    oc->loop = loop;
    origin_client_set_timeouts(oc, connect_timeout_ms, stall_timeout_ms);
    oc->multi = curl_multi_init();
    SL_ASSERT(oc->multi != NULL);
    curl_multi_setopt(oc->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(oc->multi, CURLMOPT_SOCKETDATA, oc);
    curl_multi_setopt(oc->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(oc->multi, CURLMOPT_TIMERDATA, oc);
    curl_multi_setopt(oc->multi, CURLMOPT_MAXCONNECTS, 64L);
    ev_init(&oc->curl_timer, on_curl_timer);
    oc->curl_timer.data = oc;
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
    ev_timer_stop(oc->loop, &oc->curl_timer);
    curl_multi_cleanup(oc->multi);
    free(oc);
}

const struct origin_stats *origin_client_stats(const struct origin_client *oc)
{
    return &oc->stats;
}
