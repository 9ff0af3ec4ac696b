/*
 * test_tier.c - the storage tier contract (store/tier.h), one suite run on
 * every implementation: the memory tier, the disk tier and, when
 * SLUICE_TEST_S3_ENDPOINT names an S3-compatible server (with
 * SLUICE_TEST_S3_BUCKET, SLUICE_TEST_S3_KEY, SLUICE_TEST_S3_SECRET and
 * optionally SLUICE_TEST_S3_REGION), the S3 tier; without it the S3 group
 * is skipped. Small parts and threshold make the large objects multipart.
 *
 * Each test writes objects through the sink side, as the agent does after
 * an L1 commit, and reads them through the source side, driving the real
 * libev loop (and the worker pool) until a condition holds or a deadline
 * passes; nothing sleeps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <ev.h>

#include "core/common.h"
#include "core/log.h"
#include "core/workers.h"
#include "store/key.h"
#include "store/objfile.h"
#include "store/s3.h"
#include "store/tier.h"

#include "object_fixture.h"

struct env {
    struct ev_loop *loop;
    struct worker_pool *workers;
    struct tier *tier;
    char dir[64];
};

/* What one read saw. */
struct seen {
    int metas, dones;
    enum tier_result result;
    struct obj_meta meta;
    uint8_t *body;
    size_t len;
    int pause_at;             /* pause (once) at this on_data call; -1: never */
    int abort_at;             /* abort from inside this on_data call; -1: never */
    int calls;
    int paused;
    struct tier_read *r;
};

/* ---------------------------------------------------------------- setup */

typedef struct tier *(*tier_maker)(struct env *e);

static struct tier *make_mem(struct env *e)
{
    return tier_mem_new(e->loop, 1000);   /* small pieces: many on_data calls */
}

static struct tier *make_disk(struct env *e)
{
    char err[256];
    struct tier *t = tier_disk_new(e->loop, e->workers, e->dir, err, sizeof(err));
    if (!t)
        fail_msg("tier_disk_new: %s", err);
    return t;
}

/* A prefix of its own per test, so objects of one test never meet another's. */
static struct tier *make_s3(struct env *e)
{
    static int n;
    char prefix[64], err[256];
    snprintf(prefix, sizeof(prefix), "unit-%d-%d/", (int)getpid(), n++);
    const char *region = getenv("SLUICE_TEST_S3_REGION");
    struct s3_settings s = {
        .endpoint = getenv("SLUICE_TEST_S3_ENDPOINT"),
        .bucket = getenv("SLUICE_TEST_S3_BUCKET"),
        .region = region && region[0] ? region : "us-east-1",
        .prefix = prefix,
        .tls_verify = true,
        .connect_timeout_ms = 2000,
        .header_timeout_ms = 3000,
        .stall_timeout_ms = 3000,
        .request_timeout_ms = 4000,
        .multipart_threshold = S3_MIN_PART_SIZE,
        .part_size = S3_MIN_PART_SIZE,
        .access_key = getenv("SLUICE_TEST_S3_KEY"),
        .secret_key = getenv("SLUICE_TEST_S3_SECRET"),
        .session_token = getenv("SLUICE_TEST_S3_TOKEN"),
    };
    struct tier *t = tier_s3_new(e->loop, e->workers, &s, err, sizeof(err));
    if (!t)
        fail_msg("tier_s3_new: %s", err);
    return t;
}

static int setup(void **state, tier_maker make)
{
    struct env *e = sl_calloc(1, sizeof(*e));
    log_set_level(LOG_ERROR);
    e->loop = ev_loop_new(EVFLAG_AUTO);
    e->workers = workers_start(e->loop, 2, NULL, NULL, 0);
    strcpy(e->dir, "/tmp/sluice-tier-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    e->tier = make(e);
    *state = e;
    return 0;
}

static int setup_mem(void **state) { return setup(state, make_mem); }
static int setup_disk(void **state) { return setup(state, make_disk); }
static int setup_s3(void **state) { return setup(state, make_s3); }

static int teardown(void **state)
{
    struct env *e = *state;
    tier_destroy(e->tier);
    workers_stop(e->workers);
    ev_loop_destroy(e->loop);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", e->dir);
    assert_int_equal(system(cmd), 0);
    free(e);
    return 0;
}

/* Run the loop until *flag, with a deadline of about ten seconds. */
static void run_until(struct env *e, const int *flag)
{
    int64_t end = sl_now_ms() + 10000;
    while (!*flag && sl_now_ms() < end)
        ev_run(e->loop, EVRUN_ONCE);
    if (!*flag)
        fail_msg("deadline passed");
}

/* Run the loop for a while (a condition that must stay false). */
static void run_idle(struct env *e, int passes)
{
    for (int i = 0; i < passes; i++)
        ev_run(e->loop, EVRUN_NOWAIT);
}

static void on_written(void *ctx, int rc)
{
    int *out = ctx;
    out[0] = 1;
    out[1] = rc;
}

static int put(struct env *e, const char *key, size_t len, unsigned seed)
{
    uint8_t hash[KEY_HASH_LEN];
    int res[2] = { 0, 0 };
    key_hash(key, strlen(key), hash);
    tier_write(e->tier, key, hash, fixture_object_fd(key, len, seed), on_written, res);
    assert_int_equal(res[0], 0);   /* never reported from inside the call */
    run_until(e, &res[0]);
    return res[1];
}

/* -------------------------------------------------------------- reading */

static void on_meta(void *ctx, const struct obj_meta *m)
{
    struct seen *s = ctx;
    s->metas++;
    obj_meta_copy(&s->meta, m);
    s->body = sl_malloc((size_t)m->size + 1);
}

static size_t on_data(void *ctx, const uint8_t *data, size_t len)
{
    struct seen *s = ctx;
    int call = s->calls++;
    if (call == s->pause_at && !s->paused) {
        s->paused = 1;
        return TIER_PAUSE;
    }
    assert_true(s->len + len <= s->meta.size);
    memcpy(s->body + s->len, data, len);
    s->len += len;
    if (call == s->abort_at)
        tier_read_abort(s->r);
    return len;
}

static void on_done(void *ctx, enum tier_result res, const char *detail)
{
    struct seen *s = ctx;
    assert_non_null(detail);
    s->dones++;
    s->result = res;
}

static const struct tier_read_cb read_cb = { on_meta, on_data, on_done };

static void start_read(struct env *e, const char *key, struct seen *s)
{
    uint8_t hash[KEY_HASH_LEN];
    memset(s, 0, sizeof(*s));
    s->pause_at = s->abort_at = -1;
    key_hash(key, strlen(key), hash);
    s->r = tier_read(e->tier, key, hash, &read_cb, s);
    assert_int_equal(s->metas + s->dones + s->calls, 0);   /* nothing from inside the call */
}

static void seen_free(struct seen *s)
{
    obj_meta_free(&s->meta);
    free(s->body);
}

static void expect_object(const struct seen *s, const char *key, size_t len, unsigned seed)
{
    assert_int_equal(s->dones, 1);
    assert_int_equal(s->result, TIER_OK);
    assert_int_equal(s->metas, 1);
    assert_string_equal(s->meta.key, key);
    assert_int_equal(s->meta.size, len);
    assert_string_equal(s->meta.etag, "\"e1\"");
    assert_int_equal(s->meta.last_modified, 1600000000);
    assert_int_equal(s->meta.n_headers, 1);
    assert_string_equal(s->meta.headers[0].value, "application/x-test");
    assert_int_equal(s->len, len);
    uint8_t *want = fixture_pattern(len, seed);
    assert_memory_equal(s->body, want, len);
    free(want);
}

/* ---------------------------------------------------------------- tests */

static void test_unknown_key_is_a_miss(void **state)
{
    struct env *e = *state;
    struct seen s;
    start_read(e, "generic:nothing", &s);
    run_until(e, &s.dones);
    assert_int_equal(s.result, TIER_MISS);
    assert_int_equal(s.metas, 0);
    assert_int_equal(s.calls, 0);
}

static void test_written_object_reads_back_whole(void **state)
{
    struct env *e = *state;
    static const size_t sizes[] = { 0, 1, 999, 1000, 1001, 300000, 3 * 1024 * 1024 + 7,
                                    11 * 1024 * 1024 + 3 };   /* S3: three parts */
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        char key[64];
        snprintf(key, sizeof(key), "generic:obj-%zu", sizes[i]);
        assert_int_equal(put(e, key, sizes[i], (unsigned)i), 0);
        struct seen s;
        start_read(e, key, &s);
        run_until(e, &s.dones);
        expect_object(&s, key, sizes[i], (unsigned)i);
        seen_free(&s);
    }
}

static void test_pause_holds_the_rest_until_resume(void **state)
{
    struct env *e = *state;
    assert_int_equal(put(e, "generic:p", 600000, 3), 0);   /* several pieces in every tier */
    struct seen s;
    start_read(e, "generic:p", &s);
    s.pause_at = 1;
    run_until(e, &s.paused);
    size_t len = s.len;
    int calls = s.calls;
    run_idle(e, 50);
    assert_int_equal(s.len, len);       /* nothing while paused */
    assert_int_equal(s.calls, calls);
    assert_int_equal(s.dones, 0);
    tier_read_resume(s.r);
    run_until(e, &s.dones);
    expect_object(&s, "generic:p", 600000, 3);   /* the paused piece came again, nothing lost */
    seen_free(&s);
}

static void test_abort_stops_every_callback(void **state)
{
    struct env *e = *state;
    assert_int_equal(put(e, "generic:a", 600000, 4), 0);
    struct seen s;
    start_read(e, "generic:a", &s);
    s.abort_at = 1;                     /* from inside on_data */
    int calls_seen = 0;
    while (s.calls < 2 && calls_seen++ < 100000)
        ev_run(e->loop, EVRUN_ONCE);
    run_idle(e, 50);
    assert_int_equal(s.calls, 2);
    assert_int_equal(s.dones, 0);
    seen_free(&s);
    /* and before anything was delivered */
    start_read(e, "generic:a", &s);
    tier_read_abort(s.r);
    run_idle(e, 50);
    assert_int_equal(s.metas + s.calls + s.dones, 0);
}

static void test_a_read_keeps_its_version_when_rewritten(void **state)
{
    struct env *e = *state;
    assert_int_equal(put(e, "generic:v", 600000, 1), 0);
    struct seen s;
    start_read(e, "generic:v", &s);
    s.pause_at = 1;
    run_until(e, &s.paused);
    assert_int_equal(put(e, "generic:v", 600000, 2), 0);
    tier_read_resume(s.r);
    run_until(e, &s.dones);
    expect_object(&s, "generic:v", 600000, 1);
    seen_free(&s);
    start_read(e, "generic:v", &s);
    run_until(e, &s.dones);
    expect_object(&s, "generic:v", 600000, 2);
    seen_free(&s);
}

static void test_many_reads_at_once(void **state)
{
    struct env *e = *state;
    assert_int_equal(put(e, "generic:m", 20000, 5), 0);
    struct seen s[16];
    for (int i = 0; i < 16; i++)
        start_read(e, "generic:m", &s[i]);
    int all = 0;
    int64_t end = sl_now_ms() + 10000;
    while (!all && sl_now_ms() < end) {
        ev_run(e->loop, EVRUN_ONCE);
        all = 1;
        for (int i = 0; i < 16; i++)
            all = all && s[i].dones == 1;
    }
    for (int i = 0; i < 16; i++) {
        expect_object(&s[i], "generic:m", 20000, 5);
        seen_free(&s[i]);
    }
}

static void test_bad_object_is_refused_and_not_visible(void **state)
{
    struct env *e = *state;
    uint8_t hash[KEY_HASH_LEN];
    int res[2] = { 0, 0 };
    key_hash("generic:bad", 11, hash);
    int fd = fixture_object_fd("generic:other", 10, 0);   /* a file of another key */
    tier_write(e->tier, "generic:bad", hash, fd, on_written, res);
    run_until(e, &res[0]);
    assert_true(res[1] < 0);
    struct seen s;
    start_read(e, "generic:bad", &s);
    run_until(e, &s.dones);
    assert_int_equal(s.result, TIER_MISS);
}

static void test_same_hash_other_key_is_not_served(void **state)
{
    struct env *e = *state;
    assert_int_equal(put(e, "generic:k1", 10, 0), 0);
    uint8_t hash[KEY_HASH_LEN];
    key_hash("generic:k1", 10, hash);
    struct seen s;
    memset(&s, 0, sizeof(s));
    s.pause_at = s.abort_at = -1;
    s.r = tier_read(e->tier, "generic:k2", hash, &read_cb, &s);   /* k1's hash, another key */
    run_until(e, &s.dones);
    assert_int_not_equal(s.result, TIER_OK);
    assert_int_equal(s.calls, 0);
}

#define SUITE(kind, setup_fn)                                                                    \
    cmocka_unit_test_setup_teardown(test_unknown_key_is_a_miss, setup_fn, teardown),             \
    cmocka_unit_test_setup_teardown(test_written_object_reads_back_whole, setup_fn, teardown),   \
    cmocka_unit_test_setup_teardown(test_pause_holds_the_rest_until_resume, setup_fn, teardown), \
    cmocka_unit_test_setup_teardown(test_abort_stops_every_callback, setup_fn, teardown),        \
    cmocka_unit_test_setup_teardown(test_a_read_keeps_its_version_when_rewritten, setup_fn, teardown), \
    cmocka_unit_test_setup_teardown(test_many_reads_at_once, setup_fn, teardown),                \
    cmocka_unit_test_setup_teardown(test_bad_object_is_refused_and_not_visible, setup_fn, teardown), \
    cmocka_unit_test_setup_teardown(test_same_hash_other_key_is_not_served, setup_fn, teardown)

int main(void)
{
    const struct CMUnitTest memory[] = { SUITE("memory", setup_mem) };
    const struct CMUnitTest disk[] = { SUITE("disk", setup_disk) };
    const struct CMUnitTest s3[] = { SUITE("s3", setup_s3) };
    int failed = cmocka_run_group_tests_name("tier: memory", memory, NULL, NULL);
    failed += cmocka_run_group_tests_name("tier: disk", disk, NULL, NULL);
    const char *endpoint = getenv("SLUICE_TEST_S3_ENDPOINT");
    if (!endpoint || !endpoint[0]) {
        printf("[  SKIPPED ] tier: s3 (set SLUICE_TEST_S3_ENDPOINT, _BUCKET, _KEY, _SECRET to run it)\n");
        return failed;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    failed += cmocka_run_group_tests_name("tier: s3", s3, NULL, NULL);
    curl_global_cleanup();
    return failed;
}
