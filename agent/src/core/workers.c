/*
 * workers.c - the blocking-work thread pool (see workers.h).
 *
 * Two lists protected by one mutex: `queue` (submitted, not started) and
 * `finished` (work ran, done not yet called). Workers wait on a condition
 * variable; the loop is woken through one ev_async and drains `finished`.
 */
#include "core/workers.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"

struct job {
    work_fn work;
    work_done_fn done;
    void *arg;
    struct job *next;
};

struct job_list {
    struct job *head, *tail;
};

struct worker_pool {
    struct ev_loop *loop;
    ev_async wake;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job_list queue;
    struct job_list finished;
    bool stopping;
    int pending;            /* queued + running + finished-not-done */
    int n_threads;
    pthread_t *threads;
};

static void list_push(struct job_list *l, struct job *j)
{
    j->next = NULL;
    if (l->tail)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
}

static struct job *list_pop(struct job_list *l)
{
    struct job *j = l->head;
    if (j) {
        l->head = j->next;
        if (!l->head)
            l->tail = NULL;
    }
    return j;
}

static void *worker_main(void *arg)
{
    struct worker_pool *pool = arg;
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        struct job *j = list_pop(&pool->queue);
        if (!j) {
            if (pool->stopping)
                break;
            pthread_cond_wait(&pool->cv, &pool->mu);
            continue;
        }
        pthread_mutex_unlock(&pool->mu);
        j->work(j->arg);
        pthread_mutex_lock(&pool->mu);
        list_push(&pool->finished, j);
        ev_async_send(pool->loop, &pool->wake);
    }
    pthread_mutex_unlock(&pool->mu);
    return NULL;
}

static void drain_finished(struct worker_pool *pool)
{
    for (;;) {
        pthread_mutex_lock(&pool->mu);
        struct job *j = list_pop(&pool->finished);
        pthread_mutex_unlock(&pool->mu);
        if (!j)
            return;
        if (j->done)
            j->done(j->arg);
        pool->pending--;
        free(j);
    }
}

static void on_wake(struct ev_loop *loop, ev_async *w, int revents)
{
    SL_UNUSED(loop);
    SL_UNUSED(revents);
    drain_finished(w->data);
}

/* One CPU number at *p (decimal, below CPU_SETSIZE); advances *p. */
static int parse_cpu(const char **p, long *cpu)
{
    if (**p < '0' || **p > '9')
        return -1;
    char *end;
    errno = 0;
    *cpu = strtol(*p, &end, 10);
    if (errno || *cpu >= CPU_SETSIZE)
        return -1;
    *p = end;
    return 0;
}

/* One item of a CPU list at *p: "N" or "N-M"; advances *p. */
static int parse_cpu_range(const char **p, long *lo, long *hi)
{
    if (parse_cpu(p, lo) != 0)
        return -1;
    *hi = *lo;
    if (**p != '-')
        return 0;
    (*p)++;
    return parse_cpu(p, hi) == 0 && *hi >= *lo ? 0 : -1;
}

int workers_cpus_parse(const char *list, cpu_set_t *set)
{
    if (set)
        CPU_ZERO(set);
    for (const char *p = list; *p; p++) {
        long lo, hi;
        if (parse_cpu_range(&p, &lo, &hi) != 0)
            return -1;
        for (long c = lo; set && c <= hi; c++)
            CPU_SET((int)c, set);
        if (*p == '\0')
            return 0;
        if (*p != ',' || p[1] == '\0')
            return -1;
    }
    return 0;
}

/* Pin every thread of the pool to `cpus` (not empty). */
static int pin_threads(struct worker_pool *pool, const char *cpus, char *err, size_t errlen)
{
    cpu_set_t set;
    SL_ASSERT(workers_cpus_parse(cpus, &set) == 0); /* checked with the configuration */
    for (int i = 0; i < pool->n_threads; i++) {
        int rc = pthread_setaffinity_np(pool->threads[i], sizeof(set), &set);
        if (rc != 0) {
            sl_set_err(err, errlen, "worker_cpus '%s': cannot pin the worker threads there: %s", cpus,
                       strerror(rc));
            return -1;
        }
    }
    return 0;
}

struct worker_pool *workers_start(struct ev_loop *loop, int n_threads, const char *cpus, char *err,
                                  size_t errlen)
{
    SL_ASSERT(n_threads > 0);
    struct worker_pool *pool = sl_calloc(1, sizeof(*pool));
    pool->loop = loop;
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->cv, NULL);
    ev_async_init(&pool->wake, on_wake);
    /* Completions first: a cache writer waiting for its next job must not
     * queue behind a loop pass full of client writes. */
    ev_set_priority(&pool->wake, EV_MAXPRI);
    pool->wake.data = pool;
    ev_async_start(loop, &pool->wake);
    ev_unref(loop); /* an idle pool must not keep the loop alive */
    pool->n_threads = n_threads;
    pool->threads = sl_calloc((size_t)n_threads, sizeof(pthread_t));
    for (int i = 0; i < n_threads; i++) {
        int rc = pthread_create(&pool->threads[i], NULL, worker_main, pool);
        SL_ASSERT(rc == 0);
    }
    if (cpus && *cpus && pin_threads(pool, cpus, err, errlen) != 0) {
        workers_stop(pool);
        return NULL;
    }
    return pool;
}

void workers_submit(struct worker_pool *pool, work_fn work, work_done_fn done, void *arg)
{
    struct job *j = sl_malloc(sizeof(*j));
    j->work = work;
    j->done = done;
    j->arg = arg;
    pool->pending++;
    pthread_mutex_lock(&pool->mu);
    SL_ASSERT(!pool->stopping);
    list_push(&pool->queue, j);
    pthread_cond_signal(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
}

int workers_pending(const struct worker_pool *pool)
{
    return pool->pending;
}

void workers_stop(struct worker_pool *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->mu);
    pool->stopping = true;
    pthread_cond_broadcast(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
    for (int i = 0; i < pool->n_threads; i++)
        pthread_join(pool->threads[i], NULL);
    drain_finished(pool);
    SL_ASSERT(pool->pending == 0);
    ev_ref(pool->loop);
    ev_async_stop(pool->loop, &pool->wake);
    pthread_mutex_destroy(&pool->mu);
    pthread_cond_destroy(&pool->cv);
    free(pool->threads);
    free(pool);
}
