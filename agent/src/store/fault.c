/*
 * fault.c - storage fault injection for test builds (see fault.h).
 */
#include "store/fault.h"

#ifdef SLUICE_TESTING

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "core/common.h"
#include "core/config.h"

enum fault_kind { FAULT_NONE, FAULT_ERRNO, FAULT_SHORT, FAULT_HANG };

static pthread_mutex_t fault_mu = PTHREAD_MUTEX_INITIALIZER;
static enum fault_kind kind = FAULT_NONE;
static int fault_errno;
static uint64_t after;
static int64_t remaining = -1;   /* -1 = unlimited */
static int64_t hang_ms = 3600 * 1000;
static uint64_t hits;
static int64_t tier_read_delay_ms, tier_write_delay_ms, commit_delay_ms;
static int64_t verdict_delay_ms;   /* loop thread only (set and read there) */

static int parse_kind(const char *v, enum fault_kind *k, int *e)
{
    static const struct { const char *name; enum fault_kind kind; int err; } kinds[] = {
        { "none", FAULT_NONE, 0 },       { "enospc", FAULT_ERRNO, ENOSPC },
        { "edquot", FAULT_ERRNO, EDQUOT }, { "eio", FAULT_ERRNO, EIO },
        { "short", FAULT_SHORT, EIO },   { "hang", FAULT_HANG, 0 },
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(kinds); i++) {
        if (strcmp(v, kinds[i].name) == 0) {
            *k = kinds[i].kind;
            *e = kinds[i].err;
            return 0;
        }
    }
    return -1;
}

int fault_configure(const char *spec, char *err, size_t errlen)
{
    enum fault_kind k = FAULT_NONE;
    int e = 0;
    uint64_t a = 0;
    int64_t count = -1, hang = 3600 * 1000, vdelay = 0, tdelay = 0, wdelay = 0, cdelay = 0;
    char buf[256];
    if (!sl_strlcpy(buf, spec, sizeof(buf))) {
        snprintf(err, errlen, "fault spec too long");
        return -1;
    }
    char *save = NULL;
    for (char *tok = strtok_r(buf, "&", &save); tok; tok = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq) {
            snprintf(err, errlen, "fault spec: '%s' is not name=value", tok);
            return -1;
        }
        *eq = '\0';
        const char *v = eq + 1;
        int bad = 0;
        if (strcmp(tok, "kind") == 0)
            bad = parse_kind(v, &k, &e);
        else if (strcmp(tok, "after") == 0)
            bad = config_parse_size(v, &a);
        else if (strcmp(tok, "count") == 0)
            count = strtoll(v, NULL, 10);
        else if (strcmp(tok, "hang") == 0)
            bad = config_parse_duration_ms(v, &hang);
        else if (strcmp(tok, "verdict_delay") == 0)
            bad = config_parse_duration_ms(v, &vdelay);
        else if (strcmp(tok, "tier_read_delay") == 0)
            bad = config_parse_duration_ms(v, &tdelay);
        else if (strcmp(tok, "tier_write_delay") == 0)
            bad = config_parse_duration_ms(v, &wdelay);
        else if (strcmp(tok, "commit_delay") == 0)
            bad = config_parse_duration_ms(v, &cdelay);
        else
            bad = -1;
        if (bad) {
            snprintf(err, errlen, "fault spec: bad '%s=%s'", tok, v);
            return -1;
        }
    }
    pthread_mutex_lock(&fault_mu);
    kind = k;
    fault_errno = e;
    after = a;
    remaining = count;
    hang_ms = hang;
    tier_read_delay_ms = tdelay;
    tier_write_delay_ms = wdelay;
    commit_delay_ms = cdelay;
    pthread_mutex_unlock(&fault_mu);
    verdict_delay_ms = vdelay;
    return 0;
}

int64_t fault_verdict_delay_ms(void)
{
    return verdict_delay_ms;
}

int64_t fault_tier_read_delay_ms(void)
{
    pthread_mutex_lock(&fault_mu);
    int64_t d = tier_read_delay_ms;
    pthread_mutex_unlock(&fault_mu);
    return d;
}

int64_t fault_tier_write_delay_ms(void)
{
    pthread_mutex_lock(&fault_mu);
    int64_t d = tier_write_delay_ms;
    pthread_mutex_unlock(&fault_mu);
    return d;
}

int64_t fault_commit_delay_ms(void)
{
    pthread_mutex_lock(&fault_mu);
    int64_t d = commit_delay_ms;
    pthread_mutex_unlock(&fault_mu);
    return d;
}

void fault_sleep_ms(int64_t ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

int fault_before_write(size_t *len, uint64_t off)
{
    pthread_mutex_lock(&fault_mu);
    bool armed = kind != FAULT_NONE && remaining != 0 && off + *len > after;
    enum fault_kind k = kind;
    int e = fault_errno;
    int64_t h = hang_ms;
    if (armed) {
        hits++;
        if (remaining > 0)
            remaining--;
    }
    pthread_mutex_unlock(&fault_mu);
    if (!armed)
        return 0;
    switch (k) {
    case FAULT_ERRNO:
        return -e;
    case FAULT_SHORT:
        /* The write crossing `after` stops there; every later one writes
         * nothing at all (a write that makes no progress). */
        *len = off < after ? (size_t)(after - off) : 0;
        return 0;
    case FAULT_HANG:
        fault_sleep_ms(h);
        return 0;
    case FAULT_NONE:
        break;
    }
    return 0;
}

uint64_t fault_hits(void)
{
    pthread_mutex_lock(&fault_mu);
    uint64_t h = hits;
    pthread_mutex_unlock(&fault_mu);
    return h;
}

#else
/* ISO C forbids an empty translation unit. */
typedef int fault_seam_disabled;
#endif
