/*
 * slots.c - origin slots and the leader queue (see slots.h).
 */
#include "origin/slots.h"

#include <string.h>

#include "core/common.h"
#include "core/config.h"
#include "core/log.h"

const double slots_wait_bounds[QWAIT_BUCKETS] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                  0.5,   1,    2.5,   5,    10,  30 };

const char *queue_outcome_name(enum queue_outcome o)
{
    static const char *const names[QWAIT_OUTCOMES] = { "admitted", "timeout", "canceled", "rejected" };
    return (unsigned)o < QWAIT_OUTCOMES ? names[o] : "unknown";
}

static int origin_index(const struct slots *s, const struct route *route)
{
    int i = (int)(route - s->routes->routes);
    SL_ASSERT(i >= 0 && i < s->n_origins);
    return i;
}

void slots_origin_seen(struct slots *s, const struct route *route, bool ok, int64_t hold_ms)
{
    struct slot_origin *o = &s->origins[origin_index(s, route)];
    o->failing_until_ms = ok ? 0 : sl_now_ms() + hold_ms;
}

bool slots_origin_failing(const struct slots *s, const struct route *route)
{
    return s->origins[origin_index(s, route)].failing_until_ms > sl_now_ms();
}

static void observe_wait(struct slots *s, enum queue_outcome o, double seconds)
{
    s->wait_count[o]++;
    s->wait_sum[o] += seconds;
    for (int b = 0; b < QWAIT_BUCKETS; b++)
        if (seconds <= slots_wait_bounds[b])
            s->wait_buckets[o][b]++;
}

static void set_origin_limit(struct slot_origin *o, const struct sluice_config *cfg, const char *name, bool fresh)
{
    struct limit_settings ls = {
        .adaptive = config_route_int(cfg, "origin_limit_adaptive", name) != 0,
        .cap = o->max_in_flight,
        .start = (int)config_route_int(cfg, "origin_limit_start", name),
        .min = (int)config_route_int(cfg, "origin_limit_min", name),
        .slow_head_ms = config_route_int(cfg, "origin_limit_slow_head", name),
        .cooldown_ms = config_route_int(cfg, "origin_limit_cooldown", name),
    };
    limit_configure(&o->lim, &ls, fresh);
}

/* Limits from cfg; the queues of routes not seen before start empty. */
static void set_limits(struct slots *s, const struct sluice_config *cfg)
{
    s->max_in_flight = (int)cfg->origin_max_in_flight;
    s->retry_after_min = (int)(cfg->retry_after_min / 1000);
    s->retry_after_max = (int)(cfg->retry_after_max / 1000);
    SL_ASSERT(s->n_origins <= s->routes->n);
    for (int i = 0; i < s->routes->n; i++) {
        struct slot_origin *o = &s->origins[i];
        if (i >= s->n_origins)
            list_init(&o->queue);
        const char *name = s->routes->routes[i].name;
        o->max_in_flight = (int)config_route_int(cfg, "origin_max_in_flight_per_origin", name);
        o->queue_max = (int)config_route_int(cfg, "origin_queue_max", name);
        o->queue_timeout_ms = config_route_int(cfg, "origin_queue_timeout", name);
        set_origin_limit(o, cfg, name, i >= s->n_origins);
    }
    s->n_origins = s->routes->n;
}

void slots_init(struct slots *s, struct ev_loop *loop, const struct route_table *routes,
                const struct sluice_config *cfg)
{
    memset(s, 0, sizeof(*s));
    s->loop = loop;
    s->routes = routes;
    s->avg_fill_s = 1.0;
    set_limits(s, cfg);
}

static void dispatch(struct slots *s);

void slots_reconfigure(struct slots *s, const struct sluice_config *cfg)
{
    set_limits(s, cfg);
    dispatch(s);
}

static bool can_run(const struct slots *s, const struct slot_origin *o)
{
    return s->in_flight < s->max_in_flight && o->in_flight < o->lim.limit;
}

static void take(struct slots *s, struct slot_origin *o)
{
    s->in_flight++;
    o->in_flight++;
    SL_ASSERT(s->in_flight <= s->max_in_flight && o->in_flight <= o->lim.limit);
    SL_ASSERT(o->lim.limit <= o->max_in_flight);
}

static void unqueue(struct slots *s, struct slot_wait *w)
{
    SL_ASSERT(w->queued);
    struct slot_origin *o = &s->origins[w->origin];
    list_remove(&w->link);
    w->queued = false;
    o->queued--;
    s->queued--;
    ev_timer_stop(s->loop, &w->timer);
}

static double waited_s(const struct slot_wait *w)
{
    return (double)(sl_now_ms() - w->enqueued_ms) / 1000.0;
}

static void on_queue_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    SL_UNUSED(loop);
    SL_UNUSED(revents);
    struct slot_wait *w = t->data;
    struct slots *s = w->owner;
    observe_wait(s, QWAIT_TIMEOUT, waited_s(w));
    unqueue(s, w);
    w->expired(w->ctx);
}

enum slot_result slot_acquire(struct slots *s, const struct route *route, struct slot_wait *w,
                              void (*granted)(void *ctx), void (*expired)(void *ctx), void *ctx)
{
    int i = origin_index(s, route);
    struct slot_origin *o = &s->origins[i];
    memset(w, 0, sizeof(*w));
    w->owner = s;
    w->origin = i;
    if (o->queued == 0 && can_run(s, o)) {
        take(s, o);
        observe_wait(s, QWAIT_ADMITTED, 0);
        return SLOT_GRANTED;
    }
    /* Clients that never retry a 503 (eco.h) wait past the queue's size. */
    if (o->queued >= o->queue_max && !route->eco->wait_when_full) {
        observe_wait(s, QWAIT_REJECTED, 0);
        return SLOT_REJECTED;
    }
    w->granted = granted;
    w->expired = expired;
    w->ctx = ctx;
    w->enqueued_ms = sl_now_ms();
    w->seq = s->next_seq++;
    w->queued = true;
    list_push_back(&o->queue, &w->link);
    o->queued++;
    s->queued++;
    ev_timer_init(&w->timer, on_queue_timeout, (double)o->queue_timeout_ms / 1000.0, 0.);
    w->timer.data = w;
    ev_timer_start(s->loop, &w->timer);
    return SLOT_QUEUED;
}

void slot_cancel(struct slots *s, struct slot_wait *w)
{
    if (!w->queued)
        return;
    observe_wait(s, QWAIT_CANCELED, waited_s(w));
    unqueue(s, w);
}

/* Grant free slots to the longest-waiting eligible waiters. */
static void dispatch(struct slots *s)
{
    while (s->queued > 0 && s->in_flight < s->max_in_flight) {
        struct slot_wait *best = NULL;
        for (int i = 0; i < s->n_origins; i++) {
            struct slot_origin *o = &s->origins[i];
            if (list_empty(&o->queue) || !can_run(s, o))
                continue;
            struct slot_wait *head = SL_CONTAINER_OF(o->queue.next, struct slot_wait, link);
            if (!best || head->seq < best->seq)
                best = head;
        }
        if (!best)
            return;
        observe_wait(s, QWAIT_ADMITTED, waited_s(best));
        unqueue(s, best);
        take(s, &s->origins[best->origin]);
        best->granted(best->ctx);
    }
}

void slot_release(struct slots *s, const struct route *route, int64_t held_ms)
{
    struct slot_origin *o = &s->origins[origin_index(s, route)];
    SL_ASSERT(o->in_flight > 0 && s->in_flight > 0);
    o->in_flight--;
    s->in_flight--;
    /* Moving average with a short memory: recent fills predict the queue. */
    s->avg_fill_s = 0.8 * s->avg_fill_s + 0.2 * ((double)held_ms / 1000.0);
    dispatch(s);
}

bool slots_would_reject(const struct slots *s, const struct route *route)
{
    const struct slot_origin *o = &s->origins[origin_index(s, route)];
    return o->queued >= o->queue_max && !(o->queued == 0 && can_run(s, o)) && !route->eco->wait_when_full;
}

int slots_retry_after(const struct slots *s, const struct route *route)
{
    const struct slot_origin *o = &s->origins[origin_index(s, route)];
    int slots = SL_MAX(1, SL_MIN(s->max_in_flight, o->lim.limit));
    double estimate = s->avg_fill_s * (double)(o->queued + 1) / (double)slots;
    int secs = (int)(estimate + 0.999);
    return SL_MAX(s->retry_after_min, SL_MIN(s->retry_after_max, secs));
}

/* ------------------------------------------------------ adaptive limit */

/* Leaders of this origin wait because its own limit is reached. */
static bool blocked(const struct slot_origin *o)
{
    return o->queued > 0 && o->in_flight >= o->lim.limit;
}

static void cut(struct slots *s, const struct route *route, enum limit_cut why, int64_t hold_ms)
{
    struct slot_origin *o = &s->origins[origin_index(s, route)];
    int before = o->lim.limit;
    if (limit_cut(&o->lim, why, sl_now_ms(), hold_ms))
        log_info("slots: origin limit cut route=%s reason=%s limit=%d->%d in_flight=%d queued=%d hold_ms=%lld",
                 route->name, limit_cut_name(why), before, o->lim.limit, o->in_flight, o->queued,
                 (long long)(o->lim.hold_until_ms - o->lim.last_cut_ms));
}

void slots_origin_head(struct slots *s, const struct route *route, int status, int64_t head_ms,
                       int64_t retry_after_ms)
{
    struct slot_origin *o = &s->origins[origin_index(s, route)];
    enum limit_cut why;
    if (limit_classify(&o->lim, status, head_ms, &why) == SIG_CUT)
        cut(s, route, why, why == CUT_429 || why == CUT_503 ? retry_after_ms : 0);
    else if (limit_fast(&o->lim, blocked(o), sl_now_ms()))
        dispatch(s);
}

void slots_origin_error(struct slots *s, const struct route *route, bool header_timeout)
{
    cut(s, route, header_timeout ? CUT_HEADER_TIMEOUT : CUT_ERROR, 0);
}
