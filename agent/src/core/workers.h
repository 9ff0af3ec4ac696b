/*
 * workers.h - a small pool of threads for blocking work (disk writes, fsync,
 * rename, unlink, eviction, the start-up scan), so the libev loop never
 * blocks on the disk.
 *
 * A job is two functions: `work` runs on a worker thread and must not touch
 * loop-owned state; `done` runs afterwards on the loop thread (woken through
 * ev_async) and may. Jobs start in FIFO order, but with several threads they
 * may finish in any order: a caller that needs ordering keeps at most one job
 * of its own in flight (the fill's cache writer does exactly that).
 *
 * The threads may be pinned to CPUs of their own (setting worker_cpus), apart
 * from the loop's: the work they do (hashing, writing) then never takes the
 * loop's time.
 *
 * A job can hang (a stuck NFS write); the pool keeps working as long as one
 * thread is free, and the caller that owns the job enforces its own deadline.
 */
#ifndef SLUICE_WORKERS_H
#define SLUICE_WORKERS_H

#include <ev.h>
#include <sched.h>

typedef void (*work_fn)(void *arg);
typedef void (*work_done_fn)(void *arg);

struct worker_pool;

/* Parse a CPU list ("" = none given, "1", "0-3,6"; CPUs below CPU_SETSIZE)
 * into *set (NULL: only check). 0 when it parses, -1 when not. */
int workers_cpus_parse(const char *list, cpu_set_t *set);

/* Start n_threads workers, pinned to the CPU list `cpus` unless it is empty.
 * NULL (and `err` filled) when the pinning is refused: a CPU this process
 * may not use. */
struct worker_pool *workers_start(struct ev_loop *loop, int n_threads, const char *cpus, char *err,
                                  size_t errlen);

/* Queue a job. `done` may be NULL. Never blocks (the queue is unbounded). */
void workers_submit(struct worker_pool *pool, work_fn work, work_done_fn done, void *arg);

/* Jobs queued or running (for metrics and for tests waiting to go idle). */
int workers_pending(const struct worker_pool *pool);

/* Finish queued jobs, run their `done` callbacks, join the threads, free. */
void workers_stop(struct worker_pool *pool);

#endif
