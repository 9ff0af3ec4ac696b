/*
 * test_workers.c - the blocking-work pool (core/workers.h): work runs on a
 * worker thread and its done on the loop thread, jobs start in submission
 * order, the pending count covers queued, running and finished-not-done
 * jobs, and stopping the pool runs every done callback still owed; the
 * worker_cpus list parses strictly, and pinned workers run only on its CPUs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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
    struct worker_pool *p = workers_start(loop, 1, "", NULL, 0); /* one thread: a strict order */
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
    struct worker_pool *p = workers_start(loop, 3, NULL, NULL, 0);
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

static void test_cpu_list_parses_strictly(void **state)
{
    (void)state;
    cpu_set_t set;
    assert_int_equal(workers_cpus_parse("", &set), 0);
    assert_int_equal(CPU_COUNT(&set), 0);
    assert_int_equal(workers_cpus_parse("0-3,6", &set), 0);
    assert_int_equal(CPU_COUNT(&set), 5);
    assert_true(CPU_ISSET(3, &set) && CPU_ISSET(6, &set) && !CPU_ISSET(4, &set));
    assert_int_equal(workers_cpus_parse("1,1", &set), 0);
    assert_int_equal(CPU_COUNT(&set), 1);
    assert_int_equal(workers_cpus_parse("1023", NULL), 0);
    const char *bad[] = { "a", "1-", "3-1", "1,", ",1", "1 ", " 1", "-1", "1024", "1;2", "1--2",
                          "99999999999999999999" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(workers_cpus_parse(bad[i], &set), -1);
}

static void where(void *arg)
{
    int *cpu = arg;
    *cpu = sched_getcpu();
}

static void test_pinned_workers_run_on_their_cpu(void **state)
{
    (void)state;
    cpu_set_t mine;
    assert_int_equal(sched_getaffinity(0, sizeof(mine), &mine), 0);
    int last = -1;                                    /* the last CPU this process may use */
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &mine))
            last = c;
    char list[16];
    snprintf(list, sizeof(list), "%d", last);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char err[256] = "";
    struct worker_pool *p = workers_start(loop, 2, list, err, sizeof(err));
    assert_non_null(p);
    int cpus[8];
    for (int i = 0; i < 8; i++) {
        cpus[i] = -2;
        workers_submit(p, where, NULL, &cpus[i]);
    }
    workers_stop(p);
    for (int i = 0; i < 8; i++)
        assert_int_equal(cpus[i], last);
    ev_loop_destroy(loop);
}

static void test_a_cpu_out_of_reach_is_refused(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char err[256] = "";
    assert_null(workers_start(loop, 2, "1023", err, sizeof(err)));
    assert_non_null(strstr(err, "worker_cpus '1023'"));
    ev_loop_destroy(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_work_off_the_loop_done_on_it_in_order),
        cmocka_unit_test(test_stop_runs_every_done_still_owed),
        cmocka_unit_test(test_cpu_list_parses_strictly),
        cmocka_unit_test(test_pinned_workers_run_on_their_cpu),
        cmocka_unit_test(test_a_cpu_out_of_reach_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
