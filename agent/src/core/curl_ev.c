/*
 * curl_ev.c - a libcurl multi handle on the libev loop (see curl_ev.h).
 *
 * libcurl tells us which sockets to watch (sock_cb) and when to call it
 * back (timer_cb); each socket gets an ev_io whose callback hands the
 * readiness to curl_multi_socket_action, the timer an ev_timer doing the
 * same for CURL_SOCKET_TIMEOUT. After either, finished transfers are
 * reported to the owner (curl_ev_check), outside libcurl's callbacks.
 */
#include "core/curl_ev.h"

#include "core/common.h"

struct curl_ev {
    struct ev_loop *loop;
    CURLM *multi;
    ev_timer timer;
    curl_ev_done_fn on_done;
    void *ctx;
};

struct sock_watch {
    ev_io io;
    struct curl_ev *ce;
};

void curl_ev_check(struct curl_ev *ce)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(ce->multi, &left)) != NULL)
        if (m->msg == CURLMSG_DONE)
            ce->on_done(ce->ctx, m->easy_handle, m->data.result);
}

static void on_sock(struct ev_loop *loop, ev_io *w, int revents)
{
    SL_UNUSED(loop);
    /* sock_cb may free the watch during socket_action: keep what we need. */
    struct curl_ev *ce = ((struct sock_watch *)w)->ce;
    int action = (revents & EV_READ ? CURL_CSELECT_IN : 0) | (revents & EV_WRITE ? CURL_CSELECT_OUT : 0);
    int running;
    curl_multi_socket_action(ce->multi, w->fd, action, &running);
    curl_ev_check(ce);
}

static int sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    SL_UNUSED(e);
    struct curl_ev *ce = userp;
    struct sock_watch *sw = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (sw) {
            ev_io_stop(ce->loop, &sw->io);
            free(sw);
        }
        curl_multi_assign(ce->multi, s, NULL);
        return 0;
    }
    if (!sw) {
        sw = sl_calloc(1, sizeof(*sw));
        sw->ce = ce;
        ev_init(&sw->io, on_sock);
        curl_multi_assign(ce->multi, s, sw);
    } else {
        ev_io_stop(ce->loop, &sw->io);
    }
    int events = (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
    ev_io_set(&sw->io, s, events);
    ev_io_start(ce->loop, &sw->io);
    return 0;
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    SL_UNUSED(loop);
    SL_UNUSED(revents);
    struct curl_ev *ce = w->data;
    int running;
    curl_multi_socket_action(ce->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    curl_ev_check(ce);
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
    SL_UNUSED(m);
    struct curl_ev *ce = userp;
    ev_timer_stop(ce->loop, &ce->timer);
    if (timeout_ms >= 0) {
        ev_timer_set(&ce->timer, (double)timeout_ms / 1000.0, 0.);
        ev_timer_start(ce->loop, &ce->timer);
    }
    return 0;
}

struct curl_ev *curl_ev_new(struct ev_loop *loop, curl_ev_done_fn on_done, void *ctx)
{
    SL_ASSERT(loop && on_done);
    struct curl_ev *ce = sl_calloc(1, sizeof(*ce));
    ce->loop = loop;
    ce->on_done = on_done;
    ce->ctx = ctx;
    ce->multi = curl_multi_init();
    SL_ASSERT(ce->multi != NULL);
    curl_multi_setopt(ce->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(ce->multi, CURLMOPT_SOCKETDATA, ce);
    curl_multi_setopt(ce->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(ce->multi, CURLMOPT_TIMERDATA, ce);
    curl_multi_setopt(ce->multi, CURLMOPT_MAXCONNECTS, 64L);
    ev_init(&ce->timer, on_timer);
    ce->timer.data = ce;
    return ce;
}

CURLM *curl_ev_multi(struct curl_ev *ce)
{
    return ce->multi;
}

void curl_ev_free(struct curl_ev *ce)
{
    if (!ce)
        return;
    ev_timer_stop(ce->loop, &ce->timer);
    curl_multi_cleanup(ce->multi);
    free(ce);
}
