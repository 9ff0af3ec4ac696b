/*
 * agent_fixture.h - a whole struct agent for unit tests of the modules that
 * need one (fill, cache): the real loop, worker pool, disk store in a temp
 * directory, index, origin slots and a route table with one "generic"
 * route, but no listeners and no network. Include it in one test file; it
 * defines static state (the agent A and its directory).
 *
 *   fixture_setup()      fresh agent, cache under /tmp/sluice-unit-XXXXXX,
 *                        a spool chunk pool of four slots (more overflows
 *                        to malloc: both paths run)
 *   fixture_run_until()  drive the loop until a condition, 5 s deadline
 *   fixture_teardown()   abort what runs, wait for the workers, check that
 *                        memory and counters are back to zero, remove all
 */
#ifndef SLUICE_TEST_AGENT_FIXTURE_H
#define SLUICE_TEST_AGENT_FIXTURE_H

#include <dirent.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/agent.h"
#include "core/common.h"
#include "core/log.h"
#include "core/workers.h"
#include "fill/fill.h"
#include "origin/origin.h"
#include "store/fault.h"
#include "store/tier.h"

static struct agent A;
static char fixture_dir[64];

static inline void fixture_setup(void)
{
    char err[256];
    log_set_level(LOG_ERROR);
    memset(&A, 0, sizeof(A));
    A.magic = AGENT_MAGIC;
    config_defaults(&A.cfg);
    strcpy(fixture_dir, "/tmp/sluice-unit-XXXXXX");
    assert_non_null(mkdtemp(fixture_dir));
    assert_int_equal(config_set(&A.cfg, "cache_dir", fixture_dir, err, sizeof(err)), 0);
    assert_int_equal(config_set(&A.cfg, "fill_buffer_size", "256K", err, sizeof(err)), 0);
    assert_int_equal(config_set(&A.cfg, "origin_generic", "http://127.0.0.1:9", err, sizeof(err)), 0);
    assert_int_equal(route_table_parse(&A.routes, "/generic/ generic\n", &A.cfg, err, sizeof(err)), 0);
    assert_int_equal(store_init(&A.store, fixture_dir, err, sizeof(err)), 0);
    A.loop = ev_loop_new(EVFLAG_AUTO);
    index_init(&A.index);
    list_init(&A.paused);
    list_init(&A.l2_queue);
    A.workers = workers_start(A.loop, 2, NULL, NULL, 0);
    A.origins = origin_client_new(A.loop, 1000, 1000);
    slots_init(&A.slots, A.loop, &A.routes, &A.cfg);
    assert_int_equal(chunk_pool_init(&A.chunks, spool_chunk_size(), 4 * spool_chunk_size()), 0);
}

static inline void fixture_run_until(int (*cond)(void *), void *arg)
{
    int64_t end = sl_now_ms() + 5000;
    while (!cond(arg) && sl_now_ms() < end)
        ev_run(A.loop, EVRUN_ONCE);
    if (!cond(arg))
        fail_msg("deadline passed: fills %llu, jobs %d, spool %llu, readers %llu",
                 (unsigned long long)A.m.fills_in_flight, workers_pending(A.workers),
                 (unsigned long long)A.spool_bytes, (unsigned long long)A.m.followers_attached);
}

static inline int fixture_idle(void *arg)
{
    (void)arg;
    return workers_pending(A.workers) == 0 && A.m.fills_in_flight == 0 && !A.evicting;
}

/* Files in <cache_dir>/<sub> (tmp: temp files; objects/ab/cd: one level). */
static inline size_t fixture_files(const char *sub)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", fixture_dir, sub);
    DIR *d = opendir(path);
    size_t n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL)
        n += de->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static inline void fixture_teardown(void)
{
    fill_abort_all(&A);
    fixture_run_until(fixture_idle, NULL);
    assert_int_equal(A.spool_bytes, 0);            /* every chunk released */
    assert_int_equal(A.chunks.in_use, 0);          /* ... and back in the pool */
    chunk_pool_free(&A.chunks);
    assert_int_equal(A.m.fills_in_flight, 0);
    assert_int_equal(A.m.followers_attached, 0);
    assert_int_equal(A.l2_lookups_running, 0);     /* every L2 lookup ended */
    for (int i = 0; i < A.n_tiers; i++)
        tier_destroy(A.tiers[i]);
    workers_stop(A.workers);
    origin_client_free(A.origins);
    index_free(&A.index);
    store_close(&A.store);
    ev_loop_destroy(A.loop);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", fixture_dir);
    assert_int_equal(system(cmd), 0);
#ifdef SLUICE_TESTING
    char ferr[64];
    fault_configure("kind=none", ferr, sizeof(ferr));
#endif
}

#endif
