/*
 * test_workers.c - the blocking-work pool (core/workers.h): work runs on a
 * worker thread and its done on the loop thread, jobs start in submission
 * order, the pending count covers queued, running and finished-not-done
 * jobs, and stopping the pool runs every done callback still owed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <string.h>

#include <cmocka.h>
#include <ev.h>

#include "core/common.h"
#include "core/workers.h"

struct rec {
    pthread_t main;
    pthread_mutex_t mu;
    int started[64];          /* job numbers in the order their work ran */
    int n_started;
    int done[64];
    int n_done;
    int work_off_loop, done_on_loop;
};

struct job {
    struct rec *rec;
    int id;
};

static void work(void *arg)
{
    struct job *j = arg;
    pthread_mutex_lock(&j->rec->mu);
    j->rec->started[j->rec->n_started++] = j->id;
    j->rec->work_off_loop += !pthread_equal(pthread_self(), j->rec->main);
    pthread_mutex_unlock(&j->rec->mu);
}

static void done(void *arg)
{
    struct job *j = arg;
    j->rec->done[j->rec->n_done++] = j->id;
    j->rec->done_on_loop += pthread_equal(pthread_self(), j->rec->main);
}

static void init(struct rec *r)
{
    memset(r, 0, sizeof(*r));
    r->main = pthread_self();
    pthread_mutex_init(&r->mu, NULL);
}

static void test_work_off_the_loop_done_on_it_in_order(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct worker_pool *p = workers_start(loop, 1);   /* one thread: a strict order */
    struct rec r;
    struct job jobs[20];
    init(&r);
    for (int i = 0; i < 20; i++) {
        jobs[i] = (struct job){ &r, i };
        workers_submit(p, work, done, &jobs[i]);
    }
    assert_int_equal(r.n_done, 0);                    /* never from inside submit */
    assert_true(workers_pending(p) > 0);
    int64_t end = sl_now_ms() + 5000;
    while (r.n_done < 20 && sl_now_ms() < end)
        ev_run(loop, EVRUN_ONCE);
    assert_int_equal(r.n_done, 20);
    assert_int_equal(workers_pending(p), 0);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(r.started[i], i);
        assert_int_equal(r.done[i], i);
    }
    assert_int_equal(r.work_off_loop, 20);
    assert_int_equal(r.done_on_loop, 20);
    workers_stop(p);
    ev_loop_destroy(loop);
}

static void test_stop_runs_every_done_still_owed(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct worker_pool *p = workers_start(loop, 3);
    struct rec r;
    struct job jobs[40];
    init(&r);
    for (int i = 0; i < 40; i++) {
        jobs[i] = (struct job){ &r, i };
        workers_submit(p, work, i % 2 ? done : NULL, &jobs[i]);   /* done may be NULL */
    }
    workers_stop(p);                                  /* the loop never ran */
    assert_int_equal(r.n_started, 40);
    assert_int_equal(r.n_done, 20);
    assert_int_equal(r.done_on_loop, 20);
    ev_loop_destroy(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_work_off_the_loop_done_on_it_in_order),
        cmocka_unit_test(test_stop_runs_every_done_still_owed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
