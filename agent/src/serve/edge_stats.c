/*
 * edge_stats.c - HAProxy's counts for the edge memory tier into the
 * agent's metrics (see edge_stats.h).
 */
#include "serve/edge_stats.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/agent.h"
#include "core/common.h"
#include "core/log.h"
#include "core/workers.h"
#include "serve/edge.h"

#define STATS_REPLY_MAX (256 * 1024)   /* `show stat` of the frontends: a few KiB each */
#define STATS_JOB_MAGIC 0x45535441u    /* "ESTA" */

struct stats_job {
    unsigned magic;
    struct agent *a;
    char socket_dir[CONFIG_PATH_MAX];
    struct edge_counts counts;
    bool ok;
    int err;                 /* errno of a failed command, 0: the reply did not parse */
};

/* Worker: one `show stat` of the frontends, parsed. */
static void read_work(void *arg)
{
    struct stats_job *j = arg;
    SL_CHECK_OBJ(j, STATS_JOB_MAGIC);
    char *reply = sl_malloc(STATS_REPLY_MAX);
    /* -1 1 -1: every proxy, frontends only, every server */
    if (edge_api_command(j->socket_dir, "show stat -1 1 -1\n", reply, STATS_REPLY_MAX) != 0)
        j->err = errno;
    else
        j->ok = edge_parse_stats(reply, EDGE_STATS_FRONTEND, &j->counts);
    free(reply);
}

static void arm(struct agent *a, double after)
{
    ev_timer_set(&a->edge_stats.timer, after, 0.);
    ev_timer_start(a->loop, &a->edge_stats.timer);
}

/* Loop: the counts into the metrics; the next read. */
static void read_done(void *arg)
{
    struct stats_job *j = arg;
    SL_CHECK_OBJ(j, STATS_JOB_MAGIC);
    struct agent *a = j->a;
    a->edge_stats.reading = false;
    if (j->ok) {
        a->m.edge_lookups = j->counts.lookups;
        a->m.edge_hits = j->counts.hits;
    } else if (j->err == ENOENT || j->err == ECONNREFUSED) {
        /* no HAProxy there (not started yet, or the agent runs without
         * one): nothing to read, nothing wrong */
    } else {
        if (a->m.edge_stats_failures++ == 0)   /* once: a scrape shows the count */
            log_warn("edge tier: cannot read HAProxy's counts from %s/haproxy.sock: %s", j->socket_dir,
                     j->err ? strerror(j->err) : "no cache counts for frontend " EDGE_STATS_FRONTEND);
    }
    j->magic = 0;
    free(j);
    if (!a->stopping)
        arm(a, EDGE_STATS_PERIOD_S);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    SL_UNUSED(loop);
    SL_UNUSED(revents);
    struct agent *a = w->data;
    SL_CHECK_OBJ(a, AGENT_MAGIC);
    SL_ASSERT(!a->edge_stats.reading);   /* re-armed only when a read is done */
    if (a->stopping)
        return;
    if (a->cfg.edge_tier_max_size == 0 || a->cfg.haproxy_socket_dir[0] == '\0') {
        arm(a, EDGE_STATS_PERIOD_S);   /* off for now; a reload may turn it on */
        return;
    }
    struct stats_job *j = sl_calloc(1, sizeof(*j));
    j->magic = STATS_JOB_MAGIC;
    j->a = a;
    sl_strlcpy(j->socket_dir, a->cfg.haproxy_socket_dir, sizeof(j->socket_dir));
    a->edge_stats.reading = true;
    workers_submit(a->workers, read_work, read_done, j);
}

void edge_stats_start(struct agent *a)
{
    ev_init(&a->edge_stats.timer, on_timer);
    a->edge_stats.timer.data = a;
    arm(a, EDGE_STATS_PERIOD_S / 2);
}

void edge_stats_stop(struct agent *a)
{
    ev_timer_stop(a->loop, &a->edge_stats.timer);
}
