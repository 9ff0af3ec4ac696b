/*
 * test_slots.c - origin slots and the bounded leader queue (origin/slots.h).
 *
 * Proves: GRANTED up to the per-origin cap and the global cap, QUEUED
 * beyond, REJECTED past origin_queue_max (queue_max 0: no queue at all);
 * slots_would_reject agrees with slot_acquire in every state (every acquire
 * here checks it); a released slot goes to the route's oldest waiter (FIFO)
 * and, across routes, to the longest-waiting waiter of a route below its own
 * cap; exactly one of granted/expired per queued waiter, none after
 * slot_cancel; the queue timeout fires `expired` on a real ev_loop; the
 * route_<name>_ overrides apply to that route only; Retry-After stays within
 * [retry_after_min, retry_after_max] and grows with the queue and the fill
 * time; the wait histogram counts what happened; every test ends with all
 * in_flight/queued counters back at 0. The adaptive limit inside slots: a
 * fast head while leaders wait for the route's own limit grows it and grants
 * the oldest waiter at once; waiters held by the global cap do not grow it;
 * a cut (503, 429, error, header timeout, slow head, 5xx, each counted by
 * its reason, one per cool-down) lets the fetches above it finish and
 * grants nothing new until in_flight is below it; a reload lowering the cap
 * lowers the limit the same way, and adaptive off restores the cap.
 *
 * Timeouts are 50 ms, and the loop is driven until the awaited callback ran
 * or a deadline timer fired: no sleeps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ev.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "core/config.h"
#include "origin/slots.h"
#include "route/route.h"

#define TIMEOUT "50ms"
#define DEADLINE_S 2.0 /* far beyond TIMEOUT: only reached when a test fails */

struct fixture;

struct waiter {
    struct slot_wait w;
    struct fixture *fx;
    const char *route;
    int granted, expired;
    bool release_on_grant;           /* give the slot back inside `granted` */
};

struct fixture {
    struct ev_loop *loop;
    struct sluice_config *cfg;
    struct route_table *rt;
    struct slots *s;
    struct waiter *log[64];          /* waiters in the order they were granted */
    int n_log;
};

/* ------------------------------------------------------------- helpers */

static const struct route *R(struct fixture *fx, const char *name)
{
    const struct route *r = route_by_name(fx->rt, name, strlen(name));
    assert_non_null(r);
    return r;
}

static struct slot_origin *O(struct fixture *fx, const char *name)
{
    return &fx->s->origins[R(fx, name) - fx->rt->routes];
}

static void set(struct fixture *fx, const char *name, const char *value)
{
    char err[256];
    if (config_set(fx->cfg, name, value, err, sizeof(err)) != 0)
        fail_msg("config_set %s: %s", name, err);
}

static void start(struct fixture *fx)
{
    char err[256];
    const char *map = "/a/ a\n/b/ b\n/c/ c\n/go/ go\n";
    assert_int_equal(route_table_parse(fx->rt, map, fx->cfg, err, sizeof(err)), 0);
    slots_init(fx->s, fx->loop, fx->rt, fx->cfg);
}

static void release(struct fixture *fx, const char *route)
{
    slot_release(fx->s, R(fx, route), 10);
}

static void on_granted(void *ctx)
{
    struct waiter *w = ctx;
    struct fixture *fx = w->fx;
    w->granted++;
    assert_true(fx->n_log < (int)SL_ARRAY_LEN(fx->log));
    fx->log[fx->n_log++] = w;
    if (w->release_on_grant)
        release(fx, w->route);
}

static void on_expired(void *ctx)
{
    struct waiter *w = ctx;
    w->expired++;
}

/* slot_acquire, checking that slots_would_reject predicted its answer. */
static enum slot_result acquire(struct fixture *fx, const char *route, struct waiter *w)
{
    const struct route *r = R(fx, route);
    bool would_reject = slots_would_reject(fx->s, r);
    memset(w, 0, sizeof(*w));
    w->fx = fx;
    w->route = route;
    enum slot_result res = slot_acquire(fx->s, r, &w->w, on_granted, on_expired, w);
    if (would_reject != (res == SLOT_REJECTED))
        fail_msg("route %s: slots_would_reject said %d, slot_acquire answered %d", route,
                 would_reject, res);
    return res;
}

static void expect(struct fixture *fx, const char *route, struct waiter *w, enum slot_result want)
{
    assert_int_equal(acquire(fx, route, w), want);
}

static void on_deadline(struct ev_loop *loop, ev_timer *t, int revents)
{
    SL_UNUSED(loop);
    SL_UNUSED(revents);
    *(bool *)t->data = true;
}

/* Run the loop until *count reaches want (count NULL: until the deadline),
 * at most max_s seconds. Returns whether the count was reached. */
static bool run_until(struct fixture *fx, const int *count, int want, double max_s)
{
    bool over = false;
    ev_timer deadline;
    ev_timer_init(&deadline, on_deadline, max_s, 0.);
    deadline.data = &over;
    ev_timer_start(fx->loop, &deadline);
    while (!over && (!count || *count < want))
        ev_run(fx->loop, EVRUN_ONCE);
    ev_timer_stop(fx->loop, &deadline);
    return count && *count >= want;
}

/* The queue orders routes by arrival millisecond: let the clock tick. */
static void next_millisecond(void)
{
    int64_t t = sl_now_ms();
    while (sl_now_ms() == t)
        ;
}

static void assert_drained(struct fixture *fx)
{
    assert_int_equal(fx->s->in_flight, 0);
    assert_int_equal(fx->s->queued, 0);
    for (int i = 0; i < fx->rt->n; i++) {
        assert_int_equal(fx->s->origins[i].in_flight, 0);
        assert_int_equal(fx->s->origins[i].queued, 0);
        assert_true(list_empty(&fx->s->origins[i].queue));
    }
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    fx->loop = ev_loop_new(EVFLAG_AUTO);
    fx->cfg = calloc(1, sizeof(*fx->cfg));
    fx->rt = calloc(1, sizeof(*fx->rt));
    fx->s = calloc(1, sizeof(*fx->s));
    config_defaults(fx->cfg);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    ev_loop_destroy(fx->loop);
    free(fx->s);
    free(fx->rt);
    free(fx->cfg);
    free(fx);
    return 0;
}

/* ------------------------------------------------ granted, queued, rejected */

static void test_grants_up_to_per_origin_cap_then_queues(void **state)
{
    struct fixture *fx = *state;
    set(fx, "origin_max_in_flight_per_origin", "2");
    start(fx);
    struct waiter g1, g2, q;
    expect(fx, "a", &g1, SLOT_GRANTED);
    expect(fx, "a", &g2, SLOT_GRANTED);
    expect(fx, "a", &q, SLOT_QUEUED);
    assert_int_equal(O(fx, "a")->in_flight, 2);
    assert_int_equal(O(fx, "a")->queued, 1);
    assert_int_equal(fx->s->in_flight, 2);
    assert_int_equal(fx->s->queued, 1);
    assert_true(q.w.queued);
    assert_int_equal(g1.granted + g2.granted + q.granted, 0); /* GRANTED: no callback */
    slot_cancel(fx->s, &q.w);
    release(fx, "a");
    release(fx, "a");
    assert_drained(fx);
}

static void test_global_cap_queues_a_route_below_its_own_cap(void **state)
{
    struct fixture *fx = *state;
    set(fx, "origin_max_in_flight", "3");
    set(fx, "origin_max_in_flight_per_origin", "2");
    start(fx);
    struct waiter w[5];
    expect(fx, "a", &w[0], SLOT_GRANTED);
    expect(fx, "a", &w[1], SLOT_GRANTED);
    expect(fx, "b", &w[2], SLOT_GRANTED);
    expect(fx, "b", &w[3], SLOT_QUEUED); /* b holds 1 of 2, but 3 of 3 are out */
    expect(fx, "c", &w[4], SLOT_QUEUED);
    assert_int_equal(fx->s->in_flight, 3);
    assert_int_equal(fx->s->queued, 2);
    slot_cancel(fx->s, &w[3].w);
    slot_cancel(fx->s, &w[4].w);
    release(fx, "a");
    release(fx, "a");
    release(fx, "b");
    assert_int_equal(fx->n_log, 0);
    assert_drained(fx);
}

static void test_rejects_past_queue_max_without_callbacks(void **state)
{
    struct fixture *fx = *state;
    set(fx, "origin_max_in_flight_per_origin", "1");
    set(fx, "origin_queue_max", "2");
    start(fx);
    struct waiter g, q1, q2, r;
    expect(fx, "a", &g, SLOT_GRANTED);
    expect(fx, "a", &q1, SLOT_QUEUED);
    expect(fx, "a", &q2, SLOT_QUEUED);
    expect(fx, "a", &r, SLOT_REJECTED);
    assert_false(r.w.queued);
    assert_int_equal(O(fx, "a")->queued, 2);
    assert_int_equal(fx->s->queued, 2);
    slot_cancel(fx->s, &q1.w);
    expect(fx, "a", &r, SLOT_QUEUED); /* room again */
    slot_cancel(fx->s, &q2.w);
    slot_cancel(fx->s, &r.w);
    release(fx, "a");
    assert_int_equal(fx->n_log, 0);
    assert_int_equal(r.expired, 0);
    assert_drained(fx);
}

/* Go never retries a 503: its route waits in the queue past its size, and
 * still gets its slot in order or expires at the queue timeout. */
static void test_a_route_whose_clients_never_retry_waits_past_queue_max(void **state)
{
    struct fixture *fx = *state;
    set(fx, "origin_max_in_flight_per_origin", "1");
    set(fx, "origin_queue_max", "1");
    start(fx);
    struct waiter g, q[3];
    expect(fx, "go", &g, SLOT_GRANTED);
    for (int i = 0; i < 3; i++)
        expect(fx, "go", &q[i], SLOT_QUEUED);   /* 2 and 3 past queue_max */
    for (int i = 0; i < 3; i++) {
        release(fx, "go");
        assert_int_equal(q[i].granted, 1);
    }
    release(fx, "go");
    assert_drained(fx);
}

static void test_queue_max_zero_rejects_instead_of_queueing(void **state)
{
    struct fixture *fx = *state;
    set(fx, "origin_max_in_flight_per_origin", "1");
    set(fx, "origin_queue_max", "0");
    start(fx);
    struct waiter g, r;
    expect(fx, "a", &g, SLOT_GRANTED);
    expect(fx, "a", &r, SLOT_REJECTED);
    assert_int_equal(fx->s->queued, 0);
    release(fx, "a");
    expect(fx, "a", &g, SLOT_GRANTED); /* a free slot is still granted */
    release(fx, "a");
    assert_drained(fx);
}

/* Every acquire checks the prediction; this walks the states where it is
 * hardest: per-route full, globally full with an empty queue, queue_max 0. */
static void test_would_reject_agrees_with_acquire_in_every_state(void **state)
{
    struct fixture *fx = *state;
    set(fx, "origin_max_in_flight", "3");
    set(fx, "origin_max_in_flight_per_origin", "2");
    set(fx, "origin_queue_max", "2");
    set(fx, "route_b_origin_queue_max", "0");
    start(fx);
    struct waiter w[9];
    static const struct {
        const char *route;
        enum slot_result want;
    } steps[] = {
        { "a", SLOT_GRANTED }, { "a", SLOT_GRANTED }, { "a", SLOT_QUEUED }, { "a", SLOT_QUEUED },
        { "a", SLOT_REJECTED }, { "b", SLOT_GRANTED }, { "b", SLOT_REJECTED },
        { "c", SLOT_QUEUED },   { "c", SLOT_QUEUED },
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(steps); i++)
        expect(fx, steps[i].route, &w[i], steps[i].want);
    assert_true(slots_would_reject(fx->s, R(fx, "a")));
    assert_true(slots_would_reject(fx->s, R(fx, "b")));
    assert_true(slots_would_reject(fx->s, R(fx, "c")));
    slot_cancel(fx->s, &w[8].w);
    assert_false(slots_would_reject(fx->s, R(fx, "c")));
    for (int i = 2; i < 8; i++)
        slot_cancel(fx->s, &w[i].w);
    release(fx, "b");
    assert_false(slots_would_reject(fx->s, R(fx, "b")));
    release(fx, "a");
    release(fx, "a");
    assert_drained(fx);
}

/* ------------------------------------------------------------ dispatch */

static void test_release_grants_oldest_waiter_of_the_route_first(void **state)
{
    struct fixture *fx = *state;
    set(fx, "origin_max_in_flight_per_origin", "1");
    start(fx);
    struct waiter g, w[3];
    expect(fx, "a", &g, SLOT_GRANTED);
    for (int i = 0; i < 3; i++)
        expect(fx, "a", &w[i], SLOT_QUEUED);
    for (int i = 0; i < 3; i++) {
        release(fx, "a");
        assert_int_equal(fx->n_log, i + 1);
        assert_ptr_equal(fx->log[i], &w[i]);
        assert_false(w[i].w.queued);
        assert_int_equal(O(fx, "a")->in_flight, 1);
        assert_int_equal(O(fx, "a")->queued, 2 - i);
    }
    release(fx, "a");
    assert_int_equal(fx->n_log, 3);
    assert_drained(fx);
}

static void test_new_leader_queues_behind_existing_waiters(void **state)
{
    struct fixture *fx = *state;
    set(fx, "origin_max_in_flight_per_origin", "1");
    start(fx);
    struct waiter g, first, late;
    expect(fx, "a", &g, SLOT_GRANTED);
    expect(fx, "a", &first, SLOT_QUEUED);
    release(fx, "a"); /* first runs */
    expect(fx, "a", &late, SLOT_QUEUED);
    release(fx, "a");
    assert_int_equal(fx->n_log, 2);
    assert_ptr_equal(fx->log[0], &first);
    assert_ptr_equal(fx->log[1], &late);
    release(fx, "a");
    assert_drained(fx);
}

static void test_release_grants_longest_waiting_route_first(void **state)
{
    struct fixture *fx = *state;
    set(fx, "origin_max_in_flight", "1");
    start(fx);
    struct waiter g, wb, wa;
    expect(fx, "a", &g, SLOT_GRANTED);
    expect(fx, "b", &wb, SLOT_QUEUED);
    next_millisecond();
    expect(fx, "a", &wa, SLOT_QUEUED); /* a comes first in the table, b waited longer */
    release(fx, "a");
    assert_int_equal(fx->n_log, 1);
    assert_string_equal(fx->log[0]->route, "b");
    release(fx, "b");
    assert_int_equal(fx->n_log, 2);
    assert_string_equal(fx->log[1]->route, "a");
    release(fx, "a");
    assert_drained(fx);
}

/* FIFO across routes must not depend on the clock's resolution: a burst of
 * leaders arrives within one millisecond (a cold-cache stampede). */
static void test_same_millisecond_waiters_across_routes_granted_in_arrival_order(void **state)
{
    struct fixture *fx = *state;
    set(fx, "origin_max_in_flight", "1");
    start(fx);
    assert_true(R(fx, "a") < R(fx, "b"));
    struct waiter g, wb, wa;
    expect(fx, "c", &g, SLOT_GRANTED);
    bool same_ms = false;
    for (int attempt = 0; attempt < 1000 && !same_ms; attempt++) {
        expect(fx, "b", &wb, SLOT_QUEUED);
        expect(fx, "a", &wa, SLOT_QUEUED);
        same_ms = wb.w.enqueued_ms == wa.w.enqueued_ms;
        if (!same_ms) {
            slot_cancel(fx->s, &wb.w);
            slot_cancel(fx->s, &wa.w);
        }
    }
    assert_true(same_ms);
    release(fx, "c");
    assert_int_equal(fx->n_log, 1);
    const char *first = fx->log[0]->route;
    slot_cancel(fx->s, &wa.w);
    slot_cancel(fx->s, &wb.w);
    release(fx, first);
    assert_drained(fx);
    if (strcmp(first, "b") != 0)
        fail_msg("route %s's waiter was granted first, but route b's was queued before it "
                 "in the same millisecond", first);
}

static void test_release_skips_waiters_of_routes_at_their_own_cap(void **state)
{
    struct fixture *fx = *state;
    set(fx, "origin_max_in_flight", "2");
    set(fx, "route_a_origin_max_in_flight_per_origin", "1");
    start(fx);
    struct waiter ga, gb, wa, wb;
    expect(fx, "a", &ga, SLOT_GRANTED);
    expect(fx, "b", &gb, SLOT_GRANTED);
    expect(fx, "a", &wa, SLOT_QUEUED);
    next_millisecond();
    expect(fx, "b", &wb, SLOT_QUEUED);
    release(fx, "b"); /* a's waiter is older, but a is at its own cap */
    assert_int_equal(fx->n_log, 1);
    assert_ptr_equal(fx->log[0], &wb);
    release(fx, "a");
    assert_int_equal(fx->n_log, 2);
    assert_ptr_equal(fx->log[1], &wa);
    release(fx, "a");
    release(fx, "b");
    assert_drained(fx);
}

static void test_release_inside_granted_callback_passes_slot_on(void **state)
{
    struct fixture *fx = *state;
    set(fx, "origin_max_in_flight_per_origin", "1");
    start(fx);
    struct waiter g, quick, next;
    expect(fx, "a", &g, SLOT_GRANTED);
    expect(fx, "a", &quick, SLOT_QUEUED);
    expect(fx, "a", &next, SLOT_QUEUED);
    quick.release_on_grant = true; /* e.g. the fetch fails at once */
    release(fx, "a");
    assert_int_equal(fx->n_log, 2);
    assert_ptr_equal(fx->log[0], &quick);
    assert_ptr_equal(fx->log[1], &next);
    assert_int_equal(fx->s->in_flight, 1);
    release(fx, "a");
    assert_drained(fx);
}

/* ----------------------------------------------- timeout and cancel */

static void test_queue_timeout_calls_expired_once(void **state)
{
    struct fixture *fx = *state;
    set(fx, "origin_max_in_flight_per_origin", "1");
    set(fx, "origin_queue_timeout", TIMEOUT);
    start(fx);
    struct waiter g, w;
    expect(fx, "a", &g, SLOT_GRANTED);
    int64_t t0 = sl_now_ms();
    expect(fx, "a", &w, SLOT_QUEUED);
    assert_true(run_until(fx, &w.expired, 1, DEADLINE_S));
    assert_true(sl_now_ms() - t0 >= 40); /* not long before the 50 ms */
    assert_int_equal(w.granted, 0);
    assert_false(w.w.queued);
    assert_int_equal(fx->s->queued, 0);
    release(fx, "a"); /* nobody left to grant */
    run_until(fx, NULL, 0, 0.1);
    assert_int_equal(w.expired, 1);
    assert_int_equal(w.granted, 0);
    assert_drained(fx);
}

static void test_granted_waiter_never_expires(void **state)
{
    struct fixture *fx = *state;
    set(fx, "origin_max_in_flight_per_origin", "1");
    set(fx, "origin_queue_timeout", TIMEOUT);
    start(fx);
    struct waiter g, w;
    expect(fx, "a", &g, SLOT_GRANTED);
    expect(fx, "a", &w, SLOT_QUEUED);
    release(fx, "a");
    assert_int_equal(w.granted, 1);
    run_until(fx, NULL, 0, 0.15); /* three timeouts long */
    assert_int_equal(w.granted, 1);
    assert_int_equal(w.expired, 0);
    release(fx, "a");
    assert_drained(fx);
}

static void test_canceled_waiter_gets_no_callback(void **state)
{
    struct fixture *fx = *state;
    set(fx, "origin_max_in_flight_per_origin", "1");
    set(fx, "origin_queue_timeout", TIMEOUT);
    start(fx);
    struct waiter g, w;
    expect(fx, "a", &g, SLOT_GRANTED);
    expect(fx, "a", &w, SLOT_QUEUED);
    slot_cancel(fx->s, &w.w);
    assert_false(w.w.queued);
    assert_int_equal(fx->s->queued, 0);
    slot_cancel(fx->s, &w.w); /* twice is harmless */
    run_until(fx, NULL, 0, 0.15);
    release(fx, "a");
    assert_int_equal(w.granted, 0);
    assert_int_equal(w.expired, 0);
    assert_int_equal(fx->s->wait_count[QWAIT_CANCELED], 1);
    assert_drained(fx);
}

static void test_each_queued_waiter_gets_exactly_one_outcome(void **state)
{
    struct fixture *fx = *state;
    set(fx, "origin_max_in_flight_per_origin", "1");
    set(fx, "origin_queue_timeout", TIMEOUT);
    start(fx);
    struct waiter g, w[6];
    expect(fx, "a", &g, SLOT_GRANTED);
    for (int i = 0; i < 6; i++)
        expect(fx, "a", &w[i], SLOT_QUEUED);
    slot_cancel(fx->s, &w[1].w);
    release(fx, "a"); /* -> w[0] */
    release(fx, "a"); /* -> w[2]; w[1] is gone */
    assert_ptr_equal(fx->log[1], &w[2]);
    int expired = 0;
    for (int i = 3; i < 6; i++)
        assert_true(run_until(fx, &w[i].expired, 1, DEADLINE_S));
    for (int i = 0; i < 6; i++) {
        assert_true(w[i].granted + w[i].expired <= 1);
        expired += w[i].expired;
    }
    assert_int_equal(w[0].granted + w[2].granted, 2);
    assert_int_equal(w[1].granted + w[1].expired, 0);
    assert_int_equal(expired, 3);
    release(fx, "a");
    assert_int_equal(fx->n_log, 2);
    assert_drained(fx);
}

/* ------------------------------------------------------------- reload */

/* A reload that raises a cap grants queued waiters at once; one that
 * lowers it lets the fetches above it finish and starts none until below;
 * a route new to the (in-place updated) table gets its queue and limits. */
static void test_reconfigure_changes_caps_live(void **state)
{
    struct fixture *fx = *state;
    char err[256];
    set(fx, "origin_max_in_flight_per_origin", "1");
    start(fx);
    struct waiter g, q, late;
    expect(fx, "a", &g, SLOT_GRANTED);
    expect(fx, "a", &q, SLOT_QUEUED);
    set(fx, "origin_max_in_flight_per_origin", "2");
    slots_reconfigure(fx->s, fx->cfg);
    assert_int_equal(q.granted, 1);
    assert_int_equal(O(fx, "a")->in_flight, 2);
    set(fx, "origin_max_in_flight_per_origin", "1");
    slots_reconfigure(fx->s, fx->cfg);
    expect(fx, "a", &late, SLOT_QUEUED);
    release(fx, "a");
    assert_int_equal(late.granted, 0);   /* 1 in flight: at the new cap */
    release(fx, "a");
    assert_int_equal(late.granted, 1);
    release(fx, "a");

    struct route_table *fresh = calloc(1, sizeof(*fresh));
    assert_int_equal(route_table_parse(fresh, "/a/ a\n/n/ newcomer\n", fx->cfg, err, sizeof(err)), 0);
    assert_int_equal(route_table_update(fx->rt, fresh, err, sizeof(err)), 0);
    free(fresh);
    set(fx, "route_newcomer_origin_queue_max", "0");
    slots_reconfigure(fx->s, fx->cfg);
    struct waiter n1, n2;
    expect(fx, "newcomer", &n1, SLOT_GRANTED);
    expect(fx, "newcomer", &n2, SLOT_REJECTED);
    release(fx, "newcomer");
    assert_drained(fx);
}

/* --------------------------------------------------- per-route overrides */

static void test_per_route_caps_apply_to_that_route_only(void **state)
{
    struct fixture *fx = *state;
    set(fx, "origin_max_in_flight_per_origin", "3");
    set(fx, "origin_queue_max", "2");
    set(fx, "route_a_origin_max_in_flight_per_origin", "1");
    set(fx, "route_a_origin_queue_max", "1");
    start(fx);
    struct waiter a[3], b[6];
    static const enum slot_result want_a[] = { SLOT_GRANTED, SLOT_QUEUED, SLOT_REJECTED };
    static const enum slot_result want_b[] = { SLOT_GRANTED, SLOT_GRANTED, SLOT_GRANTED,
                                               SLOT_QUEUED,  SLOT_QUEUED,  SLOT_REJECTED };
    for (int i = 0; i < 3; i++)
        expect(fx, "a", &a[i], want_a[i]);
    for (int i = 0; i < 6; i++)
        expect(fx, "b", &b[i], want_b[i]);
    assert_int_equal(O(fx, "c")->max_in_flight, 3);
    assert_int_equal(O(fx, "c")->queue_max, 2);
    slot_cancel(fx->s, &a[1].w);
    slot_cancel(fx->s, &b[3].w);
    slot_cancel(fx->s, &b[4].w);
    release(fx, "a");
    for (int i = 0; i < 3; i++)
        release(fx, "b");
    assert_drained(fx);
}

static void test_per_route_queue_timeout_applies_to_that_route_only(void **state)
{
    struct fixture *fx = *state;
    set(fx, "origin_max_in_flight_per_origin", "1");
    set(fx, "route_a_origin_queue_timeout", TIMEOUT); /* the others keep 30 s */
    start(fx);
    struct waiter ga, gb, wa, wb;
    expect(fx, "a", &ga, SLOT_GRANTED);
    expect(fx, "b", &gb, SLOT_GRANTED);
    expect(fx, "b", &wb, SLOT_QUEUED);
    expect(fx, "a", &wa, SLOT_QUEUED);
    assert_true(run_until(fx, &wa.expired, 1, DEADLINE_S));
    run_until(fx, NULL, 0, 0.1);
    assert_int_equal(wb.expired, 0);
    assert_true(wb.w.queued);
    slot_cancel(fx->s, &wb.w);
    release(fx, "a");
    release(fx, "b");
    assert_drained(fx);
}

/* ---------------------------------------------------------- Retry-After */

/* Fill durations of `ms` until the moving average is about that. */
static void prime_fill_time(struct fixture *fx, int64_t ms)
{
    for (int i = 0; i < 40; i++) {
        struct waiter g;
        expect(fx, "c", &g, SLOT_GRANTED);
        slot_release(fx->s, R(fx, "c"), ms);
    }
}

static void test_retry_after_within_bounds_and_grows_with_queue(void **state)
{
    struct fixture *fx = *state;
    set(fx, "origin_max_in_flight_per_origin", "1");
    set(fx, "retry_after_min", "2s");
    set(fx, "retry_after_max", "6s");
    start(fx);
    prime_fill_time(fx, 1000);
    struct waiter g, w[20];
    expect(fx, "a", &g, SLOT_GRANTED);
    int prev = 0;
    for (int q = 0; q <= 20; q++) {
        int r = slots_retry_after(fx->s, R(fx, "a"));
        assert_in_range(r, 2, 6);
        assert_true(r >= prev);
        if (q == 0)
            assert_int_equal(r, 2); /* ~1 s estimated: clamped up */
        if (q == 3)
            assert_int_equal(r, 4); /* 4 waiters ahead per slot * 1 s */
        if (q == 20)
            assert_int_equal(r, 6); /* ~21 s estimated: clamped down */
        prev = r;
        if (q < 20)
            expect(fx, "a", &w[q], SLOT_QUEUED);
    }
    for (int q = 0; q < 20; q++)
        slot_cancel(fx->s, &w[q].w);
    release(fx, "a");
    assert_drained(fx);
}

static void test_retry_after_grows_with_fill_duration(void **state)
{
    struct fixture *fx = *state;
    set(fx, "retry_after_max", "60s");
    set(fx, "origin_max_in_flight_per_origin", "16");
    start(fx);
    prime_fill_time(fx, 1000);
    int quick = slots_retry_after(fx->s, R(fx, "a"));
    prime_fill_time(fx, 20000);
    int slow = slots_retry_after(fx->s, R(fx, "a"));
    assert_in_range(quick, 1, 60);
    assert_in_range(slow, 1, 60);
    assert_true(slow > quick);
    prime_fill_time(fx, 3600 * 1000);
    assert_int_equal(slots_retry_after(fx->s, R(fx, "a")), 60);
    assert_drained(fx);
}

/* ------------------------------------------------------- wait histogram */

static void assert_histogram(struct slots *s, enum queue_outcome o, uint64_t count)
{
    assert_int_equal(s->wait_count[o], count);
    for (int b = 1; b < QWAIT_BUCKETS; b++) /* cumulative buckets */
        assert_true(s->wait_buckets[o][b] >= s->wait_buckets[o][b - 1]);
    assert_int_equal(s->wait_buckets[o][QWAIT_BUCKETS - 1], count); /* all < 30 s */
}

static void test_wait_histogram_counts_each_outcome(void **state)
{
    struct fixture *fx = *state;
    set(fx, "origin_max_in_flight_per_origin", "1");
    set(fx, "origin_queue_max", "2");
    set(fx, "origin_queue_timeout", TIMEOUT);
    start(fx);
    struct waiter g, w1, w2, r, w3;
    expect(fx, "a", &g, SLOT_GRANTED);    /* admitted, 0 s */
    expect(fx, "a", &w1, SLOT_QUEUED);    /* will time out */
    expect(fx, "a", &w2, SLOT_QUEUED);    /* will be canceled */
    expect(fx, "a", &r, SLOT_REJECTED);   /* rejected, 0 s */
    slot_cancel(fx->s, &w2.w);
    assert_true(run_until(fx, &w1.expired, 1, DEADLINE_S));
    expect(fx, "a", &w3, SLOT_QUEUED);
    release(fx, "a");                     /* w3 admitted after a wait */
    release(fx, "a");
    struct slots *s = fx->s;
    assert_histogram(s, QWAIT_ADMITTED, 2);
    assert_histogram(s, QWAIT_TIMEOUT, 1);
    assert_histogram(s, QWAIT_CANCELED, 1);
    assert_histogram(s, QWAIT_REJECTED, 1);
    assert_int_equal(s->wait_buckets[QWAIT_REJECTED][0], 1); /* <= 5 ms */
    assert_true(s->wait_sum[QWAIT_REJECTED] == 0.0);
    assert_int_equal(s->wait_buckets[QWAIT_TIMEOUT][2], 0);  /* waited > 25 ms */
    assert_true(s->wait_sum[QWAIT_TIMEOUT] >= 0.04);
    assert_drained(fx);
}

static void test_queue_outcome_names(void **state)
{
    SL_UNUSED(state);
    assert_string_equal(queue_outcome_name(QWAIT_ADMITTED), "admitted");
    assert_string_equal(queue_outcome_name(QWAIT_TIMEOUT), "timeout");
    assert_string_equal(queue_outcome_name(QWAIT_CANCELED), "canceled");
    assert_string_equal(queue_outcome_name(QWAIT_REJECTED), "rejected");
    assert_string_equal(queue_outcome_name(QWAIT_OUTCOMES), "unknown");
}

/* ------------------------------------------------------ adaptive limit */

static void head(struct fixture *fx, const char *route, int status, int64_t ms)
{
    slots_origin_head(fx->s, R(fx, route), status, ms, 0);
}

static void test_fast_heads_with_waiters_grow_the_limit_and_grant(void **state)
{
    struct fixture *fx = *state;
    set(fx, "origin_limit_start", "2");
    set(fx, "origin_limit_min", "1");
    start(fx);
    struct waiter g[2], q[2];
    expect(fx, "a", &g[0], SLOT_GRANTED);
    expect(fx, "a", &g[1], SLOT_GRANTED);
    expect(fx, "a", &q[0], SLOT_QUEUED);
    expect(fx, "a", &q[1], SLOT_QUEUED);
    head(fx, "a", 200, 5);                 /* +1: the oldest waiter runs now */
    assert_int_equal(O(fx, "a")->lim.limit, 3);
    assert_int_equal(q[0].granted, 1);
    assert_int_equal(q[1].granted, 0);
    head(fx, "a", 404, 5);                 /* any fast answer below 500 but 429 */
    assert_int_equal(q[1].granted, 1);
    head(fx, "a", 200, 5);                 /* nobody waits: no growth */
    assert_int_equal(O(fx, "a")->lim.limit, 4);
    assert_int_equal(O(fx, "a")->lim.increases, 2);
    for (int i = 0; i < 4; i++)
        release(fx, "a");
    assert_drained(fx);
}

static void test_waiters_held_by_the_global_cap_do_not_grow_it(void **state)
{
    struct fixture *fx = *state;
    set(fx, "origin_max_in_flight", "2");
    set(fx, "origin_limit_start", "4");
    start(fx);
    struct waiter g[2], q;
    expect(fx, "a", &g[0], SLOT_GRANTED);
    expect(fx, "a", &g[1], SLOT_GRANTED);
    expect(fx, "a", &q, SLOT_QUEUED);
    head(fx, "a", 200, 5);
    assert_int_equal(O(fx, "a")->lim.limit, 4);
    assert_int_equal(q.granted, 0);
    slot_cancel(fx->s, &q.w);
    release(fx, "a");
    release(fx, "a");
    assert_drained(fx);
}

static void test_a_cut_lets_running_fetches_finish_and_holds_new_ones(void **state)
{
    struct fixture *fx = *state;
    set(fx, "origin_limit_start", "8");
    set(fx, "origin_limit_min", "2");
    start(fx);
    struct waiter g[8], q;
    for (int i = 0; i < 8; i++)
        expect(fx, "a", &g[i], SLOT_GRANTED);
    head(fx, "a", 503, 5);                 /* 8 -> 4 */
    head(fx, "a", 429, 5);                 /* same burst: inside the cool-down */
    slots_origin_error(fx->s, R(fx, "a"), false);
    assert_int_equal(O(fx, "a")->lim.limit, 4);
    assert_int_equal(O(fx, "a")->lim.decreases[CUT_503], 1);
    assert_int_equal(O(fx, "a")->lim.decreases[CUT_429] + O(fx, "a")->lim.decreases[CUT_ERROR], 0);
    expect(fx, "a", &q, SLOT_QUEUED);
    for (int i = 0; i < 4; i++)
        release(fx, "a");                  /* 4 left: still at the limit */
    assert_int_equal(q.granted, 0);
    release(fx, "a");
    assert_int_equal(q.granted, 1);
    for (int i = 0; i < 4; i++)
        release(fx, "a");
    assert_drained(fx);
}

static void test_errors_and_slow_heads_cut_with_their_reason(void **state)
{
    struct fixture *fx = *state;
    set(fx, "origin_limit_start", "64");
    set(fx, "origin_limit_cooldown", "1ms");
    set(fx, "origin_limit_slow_head", "100ms");
    start(fx);
    struct origin_limit *l = &O(fx, "a")->lim;
    slots_origin_error(fx->s, R(fx, "a"), true);
    next_millisecond();
    slots_origin_error(fx->s, R(fx, "a"), false);
    next_millisecond();
    head(fx, "a", 200, 101);
    next_millisecond();
    head(fx, "a", 500, 1);
    assert_int_equal(l->limit, 4);
    assert_int_equal(l->decreases[CUT_HEADER_TIMEOUT], 1);
    assert_int_equal(l->decreases[CUT_ERROR], 1);
    assert_int_equal(l->decreases[CUT_SLOW_HEAD], 1);
    assert_int_equal(l->decreases[CUT_5XX], 1);
    assert_int_equal(O(fx, "b")->lim.limit, 64);   /* another origin: untouched */
    assert_drained(fx);
}

static void test_reload_lowering_the_cap_lowers_the_limit(void **state)
{
    struct fixture *fx = *state;
    set(fx, "origin_limit_start", "6");
    start(fx);
    struct waiter g[6], q;
    for (int i = 0; i < 6; i++)
        expect(fx, "a", &g[i], SLOT_GRANTED);
    set(fx, "route_a_origin_max_in_flight_per_origin", "2");
    slots_reconfigure(fx->s, fx->cfg);
    assert_int_equal(O(fx, "a")->lim.limit, 2);
    assert_int_equal(O(fx, "b")->lim.limit, 6);
    expect(fx, "a", &q, SLOT_QUEUED);
    for (int i = 0; i < 4; i++)
        release(fx, "a");
    assert_int_equal(q.granted, 0);
    release(fx, "a");                      /* 1 left: below 2 */
    assert_int_equal(q.granted, 1);
    release(fx, "a");
    release(fx, "a");
    set(fx, "origin_limit_adaptive", "0"); /* off: the cap is the limit */
    slots_reconfigure(fx->s, fx->cfg);
    assert_int_equal(O(fx, "b")->lim.limit, 256);
    assert_drained(fx);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_grants_up_to_per_origin_cap_then_queues),
        T(test_global_cap_queues_a_route_below_its_own_cap),
        T(test_rejects_past_queue_max_without_callbacks),
        T(test_queue_max_zero_rejects_instead_of_queueing),
        T(test_would_reject_agrees_with_acquire_in_every_state),
        T(test_release_grants_oldest_waiter_of_the_route_first),
        T(test_new_leader_queues_behind_existing_waiters),
        T(test_release_grants_longest_waiting_route_first),
        T(test_same_millisecond_waiters_across_routes_granted_in_arrival_order),
        T(test_a_route_whose_clients_never_retry_waits_past_queue_max),
        T(test_release_skips_waiters_of_routes_at_their_own_cap),
        T(test_release_inside_granted_callback_passes_slot_on),
        T(test_queue_timeout_calls_expired_once),
        T(test_granted_waiter_never_expires),
        T(test_canceled_waiter_gets_no_callback),
        T(test_each_queued_waiter_gets_exactly_one_outcome),
        T(test_reconfigure_changes_caps_live),
        T(test_per_route_caps_apply_to_that_route_only),
        T(test_per_route_queue_timeout_applies_to_that_route_only),
        T(test_retry_after_within_bounds_and_grows_with_queue),
        T(test_retry_after_grows_with_fill_duration),
        T(test_wait_histogram_counts_each_outcome),
        T(test_fast_heads_with_waiters_grow_the_limit_and_grant),
        T(test_waiters_held_by_the_global_cap_do_not_grow_it),
        T(test_a_cut_lets_running_fetches_finish_and_holds_new_ones),
        T(test_errors_and_slow_heads_cut_with_their_reason),
        T(test_reload_lowering_the_cap_lowers_the_limit),
        cmocka_unit_test(test_queue_outcome_names),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
