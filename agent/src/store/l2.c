/*
 * l2.c - the tiers after L1 and their upload queue (see l2.h).
 */
#include "store/l2.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/common.h"
#include "core/log.h"
#include "store/s3.h"
#include "store/tier.h"

#define UPLOAD_MAGIC 0x4c32555au   /* "L2UZ" */

struct l2_upload {
    unsigned magic;
    struct agent *a;
    struct sl_list link;     /* on a->l2_queue while queued */
    int tier;                /* agent tier index */
    char *key;
    uint8_t hash[KEY_HASH_LEN];
    int fd;                  /* the object's dup, the queue's until started */
};

static int append_tier(struct agent *a, struct tier *t)
{
    SL_ASSERT(a->n_tiers < TIER_MAX);
    a->tiers[a->n_tiers++] = t;
    return 0;
}

/* L2 must not be L1's own directory: its objects would be scanned and
 * evicted as L1's, and every commit would copy a file onto itself. */
static bool same_dir(const char *x, const char *y)
{
    char rx[PATH_MAX], ry[PATH_MAX];
    return realpath(x, rx) && realpath(y, ry) && strcmp(rx, ry) == 0;
}

/* The S3 tier, when s3_bucket is set (store/s3.h). */
static int open_s3(struct agent *a, char *err, size_t errlen)
{
    struct s3_settings s;
    char endpoint[CONFIG_URL_MAX];
    if (!s3_settings_from_config(&a->cfg, &s, endpoint, sizeof(endpoint)))
        return 0;
    struct tier *t = tier_s3_new(a->loop, a->workers, &s, err, errlen);
    if (!t)
        return -1;
    append_tier(a, t);
    log_info("l2: s3 bucket %s at %s, prefix '%s'", s.bucket, s.endpoint, s.prefix);
    return 0;
}

int l2_open(struct agent *a, char *err, size_t errlen)
{
    list_init(&a->l2_queue);
    if (a->cfg.l2_dir[0] && same_dir(a->cfg.l2_dir, a->cfg.cache_dir)) {
        snprintf(err, errlen, "l2_dir %s is cache_dir: L2 must be another directory", a->cfg.l2_dir);
        return -1;
    }
    if (a->cfg.l2_dir[0]) {
        char why[256];
        struct tier *t = tier_disk_new(a->loop, a->workers, a->cfg.l2_dir, why, sizeof(why));
        if (!t) {
            snprintf(err, errlen, "l2_dir %s: %s", a->cfg.l2_dir, why);
            return -1;
        }
        append_tier(a, t);
        log_info("l2: shared directory %s", a->cfg.l2_dir);
    }
    /* The S3 tier after the directory (lookup order). */
    return open_s3(a, err, errlen);
}

void l2_skip_once(struct agent *a, const uint8_t hash[KEY_HASH_LEN])
{
    memcpy(a->l2_skip[a->l2_skip_next], hash, KEY_HASH_LEN);
    a->l2_skip_next = (a->l2_skip_next + 1) % L2_SKIP_MAX;
    if (a->l2_skip_n < L2_SKIP_MAX)
        a->l2_skip_n++;
}

bool l2_take_skip(struct agent *a, const uint8_t hash[KEY_HASH_LEN])
{
    for (int i = 0; i < a->l2_skip_n; i++) {
        if (memcmp(a->l2_skip[i], hash, KEY_HASH_LEN) != 0)
            continue;
        /* the last entry takes its place; the ring's order is irrelevant */
        memcpy(a->l2_skip[i], a->l2_skip[a->l2_skip_n - 1], KEY_HASH_LEN);
        a->l2_skip_n--;
        a->l2_skip_next = a->l2_skip_n % L2_SKIP_MAX;
        return true;
    }
    return false;
}

static void upload_free(struct l2_upload *u)
{
    SL_ASSERT(!list_linked(&u->link) && u->fd < 0);
    u->magic = 0;
    free(u->key);
    free(u);
}

static void pump(struct agent *a);

static void upload_done(void *ctx, int rc)
{
    struct l2_upload *u = ctx;
    SL_CHECK_OBJ(u, UPLOAD_MAGIC);
    struct agent *a = u->a;
    SL_ASSERT(a->l2_uploads_running > 0);
    a->l2_uploads_running--;
    a->m.tier[u->tier].uploads[rc == 0 ? L2_UP_OK : L2_UP_FAILED]++;
    if (rc != 0)
        log_warn("l2: copy of key=%s to tier %s failed: %s", u->key, a->tiers[u->tier]->name, strerror(-rc));
    upload_free(u);
    pump(a);
}

/* Start queued uploads while fewer than l2_uploads_max run. */
static void pump(struct agent *a)
{
    while (!a->stopping && !list_empty(&a->l2_queue) && a->l2_uploads_running < a->cfg.l2_uploads_max) {
        struct l2_upload *u = SL_CONTAINER_OF(a->l2_queue.next, struct l2_upload, link);
        list_remove(&u->link);
        a->m.tier[u->tier].upload_queued--;
        a->l2_uploads_queued--;
        a->l2_uploads_running++;
        int fd = u->fd;
        u->fd = -1;   /* the tier's now */
        tier_write(a->tiers[u->tier], u->key, u->hash, fd, upload_done, u);
    }
}

static void queue_one(struct agent *a, int tier, const uint8_t hash[KEY_HASH_LEN], const char *key, int fd)
{
    bool room = a->l2_uploads_queued < a->cfg.l2_upload_queue_max ||
                (list_empty(&a->l2_queue) && a->l2_uploads_running < a->cfg.l2_uploads_max);
    int copy = room ? dup(fd) : -1;
    if (copy < 0) {
        a->m.tier[tier].uploads[L2_UP_DROPPED]++;
        log_debug("l2: upload queue full, not copying key=%s to tier %s", key, a->tiers[tier]->name);
        return;
    }
    struct l2_upload *u = sl_calloc(1, sizeof(*u));
    *u = (struct l2_upload){ .magic = UPLOAD_MAGIC, .a = a, .tier = tier, .key = sl_strdup(key), .fd = copy };
    memcpy(u->hash, hash, KEY_HASH_LEN);
    list_push_back(&a->l2_queue, &u->link);
    a->m.tier[tier].upload_queued++;
    a->l2_uploads_queued++;
}

void l2_upload(struct agent *a, const uint8_t hash[KEY_HASH_LEN], const char *key, int fd, int source)
{
    if (a->stopping)
        return;
    int end = source >= 0 && source < a->n_tiers ? source : a->n_tiers;
    for (int i = 0; i < end; i++)
        if (tier_is_sink(a->tiers[i]))
            queue_one(a, i, hash, key, fd);
    pump(a);
}

void l2_drop_queue(struct agent *a)
{
    while (!list_empty(&a->l2_queue)) {
        struct l2_upload *u = SL_CONTAINER_OF(a->l2_queue.next, struct l2_upload, link);
        list_remove(&u->link);
        a->m.tier[u->tier].upload_queued--;
        a->m.tier[u->tier].uploads[L2_UP_DROPPED]++;
        a->l2_uploads_queued--;
        close(u->fd);
        u->fd = -1;
        upload_free(u);
    }
}

void l2_close(struct agent *a)
{
    l2_drop_queue(a);
    SL_ASSERT(a->l2_uploads_running == 0);
    for (int i = 0; i < a->n_tiers; i++)
        tier_destroy(a->tiers[i]);
    a->n_tiers = 0;
}
