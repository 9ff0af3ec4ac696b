/*
 * test_fill.c - fills (fill/fill.h) driven without a network: the source is
 * a memory tier (store/tier.h), the spool and the cache writer are the real
 * ones on a temp directory, the loop and the worker pool are real.
 *
 * What is proven: every reader gets every byte in order, from memory or
 * from the spool file; a reader that does not read pauses the source, and
 * it resumes when the reader catches up; the writer commits exactly the
 * body and its metadata, and a committed object is copied to a sink tier;
 * a writer failure never reaches a reader (C1) and leaves nothing on disk
 * (C2); a fill nobody reads is abandoned; memory returns to zero; a body
 * verified against its digest is held one byte short until the verdict,
 * stored with the digest when it matches, and aborted for every reader
 * and never stored when it does not.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>
#include <openssl/evp.h>

#include "eco/digest_notes.h"
#include "fill/fill_impl.h"
#include "route/canon.h"

#include "store/cache.h"

#include "agent_fixture.h"
#include "object_fixture.h"

static struct tier *source;     /* where fills read from (not one of A's tiers) */
static void put_text(struct tier *t, const char *key, const char *text);
static int sink_writes(void *arg);
static int no_jobs(void *arg);

/* A client of the fill: reads at its own pace. */
struct client {
    struct fill_reader r;
    int wakes;
    uint8_t *got;
    size_t len;
    int end;                     /* 1: clean end, -1: error */
};

static void wake(void *ctx)
{
    ((struct client *)ctx)->wakes++;
}

/* ---------------------------------------------------------------- setup */

static int setup(void **state)
{
    (void)state;
    fixture_setup();
    source = tier_mem_new(A.loop, 50000);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fixture_teardown();
    tier_destroy(source);
    return 0;
}

#define run_until fixture_run_until

static void run_until_idle(void)
{
    fixture_run_until(fixture_idle, NULL);
}

static void on_put(void *ctx, int rc)
{
    int *res = ctx;
    res[0] = 1;
    res[1] = rc;
}

static int done_flag(void *arg)
{
    return *(int *)arg;
}

/* Put key -> `len` pattern bytes into tier t. */
static void put(struct tier *t, const char *key, size_t len, unsigned seed)
{
    int fd = fixture_object_fd(key, len, seed);
    uint8_t hash[KEY_HASH_LEN];
    key_hash(key, strlen(key), hash);
    int res[2] = { 0, 0 };
    tier_write(t, key, hash, fd, on_put, res);
    run_until(done_flag, &res[0]);
    assert_int_equal(res[1], 0);
}

static struct fill *start(const char *key)
{
    uint8_t hash[KEY_HASH_LEN];
    key_hash(key, strlen(key), hash);
    return fill_start_from_tier(&A, &A.routes.routes[0], key, hash, source);
}

/* ------------------------------------------------------------- clients */

static void attach(struct fill *f, struct client *c, size_t cap)
{
    memset(c, 0, sizeof(*c));
    c->got = sl_malloc(cap + 1);
    assert_true(fill_attach(f, &c->r, wake, c));
}

/* Read what is available, at most `budget` bytes; returns bytes read. */
static size_t read_some(struct client *c, size_t budget)
{
    size_t total = 0;
    while (c->end == 0 && c->r.fill && total < budget) {
        struct http_piece p = { .fd = -1 };
        enum http_body_result res = fill_read(&c->r, &p);
        if (res == HTTP_PIECE_WAIT)
            break;
        if (res != HTTP_PIECE_DATA) {
            c->end = res == HTTP_PIECE_END ? 1 : -1;
            break;
        }
        size_t n = SL_MIN(p.len, budget - total);
        if (p.data)
            memcpy(c->got + c->len, p.data, n);
        else
            assert_int_equal(pread(p.fd, c->got + c->len, n, (off_t)p.file_off), (ssize_t)n);
        c->len += n;
        total += n;
        fill_consumed(&c->r, n);
    }
    return total;
}

struct pump {
    struct client *c;
    int n;
};

static int all_ended(void *arg)
{
    struct pump *p = arg;
    int ended = 1;
    for (int i = 0; i < p->n; i++) {
        if (fill_head_state(p->c[i].r.fill) == FILL_HEAD_READY ||
            fill_head_state(p->c[i].r.fill) == FILL_HEAD_FAILED)
            read_some(&p->c[i], SIZE_MAX);
        ended = ended && p->c[i].end != 0;
    }
    return ended;
}

static void finish(struct client *c)
{
    fill_detach(&c->r);
    free(c->got);
}

static int committed(void *arg)
{
    const char *key = arg;
    uint8_t hash[KEY_HASH_LEN];
    key_hash(key, strlen(key), hash);
    return index_lookup(&A.index, hash) != NULL && workers_pending(A.workers) == 0;
}

static size_t temp_files(void)
{
    return fixture_files("tmp");
}

/* ---------------------------------------------------------------- tests */

static void test_readers_get_every_byte_and_the_object_is_committed(void **state)
{
    (void)state;
    const size_t len = 1000003;
    put(source, "generic:a", len, 1);
    struct fill *f = start("generic:a");
    uint8_t hash[KEY_HASH_LEN];
    key_hash("generic:a", 9, hash);
    assert_ptr_equal(fill_find(&A, hash), f);   /* singleflight: the one fill of the key */
    struct client c[3];
    for (int i = 0; i < 3; i++)
        attach(f, &c[i], len);
    struct pump p = { c, 3 };
    run_until(all_ended, &p);
    uint8_t *want = fixture_pattern(len, 1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(c[i].end, 1);
        assert_int_equal(c[i].len, len);
        assert_memory_equal(c[i].got, want, len);
    }
    const struct obj_meta *m = fill_meta(f);
    assert_string_equal(m->etag, "\"e1\"");   /* the tier's metadata, kept */
    assert_int_equal(fill_content_length(f), (int64_t)len);
    for (int i = 0; i < 3; i++)
        finish(&c[i]);
    run_until(committed, "generic:a");
    assert_null(fill_find(&A, hash));           /* out of the table once committed */
    /* what L1 has is the body and its metadata */
    struct cache_hit hit;
    assert_true(cache_open_hit(&A, index_lookup(&A.index, hash), "generic:a", &hit));
    assert_int_equal(hit.meta->size, len);
    assert_string_equal(hit.meta->etag, "\"e1\"");
    uint8_t *body = sl_malloc(len);
    assert_int_equal(pread(hit.fd, body, len, OBJ_HEADER_SIZE), (ssize_t)len);
    assert_memory_equal(body, want, len);
    cache_release_hit(&A, &hit);
    free(body);
    free(want);
    assert_int_equal(metrics_route(&A, &A.routes.routes[0])->fills_committed, 1);
    assert_int_equal(temp_files(), 0);
}

static int paused_fill(void *arg)
{
    (void)arg;
    return !list_empty(&A.paused);
}

static void test_a_reader_that_stops_pauses_the_source_until_it_reads(void **state)
{
    (void)state;
    const size_t len = 3 * 1024 * 1024;
    char err[128];
    /* Too large to store: no writer, so no spool file a reader could fall
     * back on; only memory, and the reader holds it. */
    assert_int_equal(config_set(&A.cfg, "object_max_size", "1M", err, sizeof(err)), 0);
    assert_int_equal(A.cfg.fill_buffer_size, 256 * 1024);
    put(source, "generic:slow", len, 2);
    struct fill *f = start("generic:slow");
    struct client c;
    attach(f, &c, len);
    run_until(paused_fill, f);                /* nobody read: the window filled */
    assert_true(A.spool_bytes <= A.cfg.fill_buffer_size + 256 * 1024);
    struct pump p = { &c, 1 };
    run_until(all_ended, &p);                 /* reading resumes the source */
    assert_int_equal(c.end, 1);
    uint8_t *want = fixture_pattern(len, 2);
    assert_memory_equal(c.got, want, len);
    free(want);
    finish(&c);
    run_until_idle();
    assert_int_equal(A.index.count, 0);
    assert_int_equal(metrics_route(&A, &A.routes.routes[0])->fills_not_cacheable, 1);
}

static void test_a_late_follower_reads_the_start_from_the_spool_file(void **state)
{
    (void)state;
    const size_t len = 2 * 1024 * 1024;
    put(source, "generic:late", len, 3);
    struct fill *f = start("generic:late");
    struct client first, late;
    attach(f, &first, len);
    struct pump p1 = { &first, 1 };
    run_until(all_ended, &p1);                /* the first reader is done ... */
    attach(f, &late, len);                    /* ... the second starts at byte 0 */
    struct pump p2 = { &late, 1 };
    run_until(all_ended, &p2);
    uint8_t *want = fixture_pattern(len, 3);
    assert_int_equal(late.end, 1);
    assert_memory_equal(late.got, want, len);
    free(want);
    finish(&first);
    finish(&late);
    run_until(committed, "generic:late");
}

static void test_a_tier_miss_fails_the_fill_before_its_head(void **state)
{
    (void)state;
    struct fill *f = start("generic:absent");
    struct client c;
    attach(f, &c, 16);
    struct pump p = { &c, 1 };
    run_until(all_ended, &p);
    assert_int_equal(fill_head_state(f), FILL_HEAD_FAILED);
    uint8_t hash[KEY_HASH_LEN];
    key_hash("generic:absent", 14, hash);
    assert_null(fill_find(&A, hash));         /* out of the table: the next request starts afresh */
    finish(&c);
    run_until_idle();
    assert_int_equal(A.index.count, 0);
    assert_int_equal(temp_files(), 0);
}

/* ------------------------------------------------- L2 lookup fallback */

/* A tier that answers each read with `mode` from the loop (or never:
 * STUB_HANG), counting the reads it aborted. */
enum stub_mode { STUB_MISS, STUB_ERROR, STUB_HANG, STUB_CUT };
#define STUB_CUT_SIZE 1000   /* STUB_CUT: a head of this size, half the body, an error */

struct stub_tier {
    struct tier base;
    enum stub_mode mode;
    int reads, aborted;
};

struct stub_read {
    struct tier_read base;
    ev_timer t;
    struct tier_read_cb cb;
    void *ctx;
};

static void stub_answer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct stub_read *r = w->data;
    struct stub_tier *t = (struct stub_tier *)r->base.tier;
    if (t->mode == STUB_CUT) {
        static const uint8_t half[STUB_CUT_SIZE / 2];
        struct obj_meta m = { .status = 200, .size = STUB_CUT_SIZE, .etag = (char *)"\"cut\"" };
        r->cb.on_meta(r->ctx, &m);
        assert_int_equal(r->cb.on_data(r->ctx, half, sizeof(half)), sizeof(half));
    }
    r->cb.on_done(r->ctx, t->mode == STUB_MISS ? TIER_MISS : TIER_ERROR, "stub");
    free(r);
}

static struct tier_read *stub_read(struct tier *tier, const char *key, const uint8_t hash[KEY_HASH_LEN],
                                   const struct tier_read_cb *cb, void *ctx)
{
    (void)key;
    (void)hash;
    struct stub_tier *t = (struct stub_tier *)tier;
    struct stub_read *r = sl_calloc(1, sizeof(*r));
    r->base.tier = tier;
    r->cb = *cb;
    r->ctx = ctx;
    t->reads++;
    ev_timer_init(&r->t, stub_answer, 0.001, 0.0);
    r->t.data = r;
    if (t->mode != STUB_HANG)
        ev_timer_start(A.loop, &r->t);
    return &r->base;
}

static void stub_abort(struct tier_read *base)
{
    struct stub_read *r = (struct stub_read *)base;
    ((struct stub_tier *)base->tier)->aborted++;
    ev_timer_stop(A.loop, &r->t);
    free(r);
}

static void stub_resume(struct tier_read *base)
{
    (void)base;
}

static void stub_destroy(struct tier *t)
{
    free(t);
}

static const struct tier_ops stub_ops = {
    .kind = "stub", .read = stub_read, .read_resume = stub_resume, .read_abort = stub_abort,
    .destroy = stub_destroy,
};

static struct stub_tier *add_stub(enum stub_mode mode)
{
    struct stub_tier *t = sl_calloc(1, sizeof(*t));
    t->base.ops = &stub_ops;
    strcpy(t->base.name, "stub");
    t->mode = mode;
    A.tiers[A.n_tiers++] = &t->base;
    return t;
}

/* A miss for key through the tiers, its origin refusing connections (the
 * fixture's origin is port 9): the lookup's end is the origin's failure. */
static struct fill *lookup(const char *key, const struct fill_request *rq, struct client *c)
{
    uint8_t hash[KEY_HASH_LEN];
    key_hash(key, strlen(key), hash);
    struct fill *f = fill_start_lookup(&A, &A.routes.routes[0], key, hash, "http://127.0.0.1:9/x", rq);
    assert_non_null(f);
    attach(f, c, 16);
    return f;
}

/* The fill went on to the origin, the same fill, and failed there. */
static void assert_went_to_origin(struct fill *f, struct client *c)
{
    struct pump p = { c, 1 };
    run_until(all_ended, &p);
    const char *detail;
    assert_int_equal(fill_head_state(f), FILL_HEAD_FAILED);
    assert_int_equal(fill_failure(f, &detail), ORIGIN_ERR_CONNECT);   /* the origin's failure, not the tier's */
    assert_int_equal(origin_client_stats(A.origins)->requests, 1);
    assert_int_equal(A.l2_lookups_running, 0);
    finish(c);
    run_until_idle();
}

static void test_an_l2_miss_goes_on_to_the_origin_in_the_same_fill(void **state)
{
    (void)state;
    struct stub_tier *t = add_stub(STUB_MISS);
    struct client c;
    struct fill *f = lookup("generic:l2-miss", NULL, &c);
    assert_int_equal(origin_client_stats(A.origins)->requests, 0);   /* no origin before the tier said */
    assert_ptr_equal(fill_find(&A, f->hash), f);
    assert_went_to_origin(f, &c);
    assert_int_equal(t->reads, 1);
    assert_int_equal(A.m.tier[0].lookups[L2_MISS_ABSENT], 1);
    assert_int_equal(A.m.tier[0].lookup_count, 1);
}

static void test_an_l2_error_before_the_head_goes_on_to_the_origin(void **state)
{
    (void)state;
    add_stub(STUB_ERROR);
    struct client c;
    struct fill *f = lookup("generic:l2-error", NULL, &c);
    assert_went_to_origin(f, &c);
    assert_int_equal(A.m.tier[0].lookups[L2_ERR_ERROR], 1);
}

static void test_an_l2_with_no_head_by_the_deadline_goes_on_to_the_origin(void **state)
{
    (void)state;
    char err[128];
    assert_int_equal(config_set(&A.cfg, "l2_lookup_timeout", "50ms", err, sizeof(err)), 0);
    struct stub_tier *t = add_stub(STUB_HANG);
    struct client c;
    int64_t t0 = sl_now_ms();
    struct fill *f = lookup("generic:l2-hang", NULL, &c);
    assert_went_to_origin(f, &c);
    assert_true(sl_now_ms() - t0 >= 50);
    assert_int_equal(t->aborted, 1);   /* the tier's read was cut, nothing of it runs later */
    assert_int_equal(A.m.tier[0].lookups[L2_ERR_TIMEOUT], 1);
}

static void test_an_l2_read_failing_mid_body_aborts_readers_and_stores_nothing(void **state)
{
    (void)state;
    add_stub(STUB_CUT);
    struct client c;
    struct fill *f = lookup("generic:l2-cut", NULL, &c);
    free(c.got);
    c.got = sl_malloc(STUB_CUT_SIZE);
    struct pump p = { &c, 1 };
    run_until(all_ended, &p);
    assert_int_equal(c.end, -1);                  /* aborted, never a clean end */
    assert_int_equal(c.len, STUB_CUT_SIZE / 2);
    assert_int_equal(origin_client_stats(A.origins)->requests, 0);   /* past the head: no fallback */
    assert_int_equal(A.m.tier[0].lookups[L2_HIT], 1);
    assert_int_equal(A.m.tier[0].reads_failed, 1);
    assert_null(fill_find(&A, f->hash));          /* the next request starts afresh */
    finish(&c);
    run_until_idle();
    assert_int_equal(A.index.count, 0);
    assert_int_equal(temp_files(), 0);
    /* ... at the origin, once, so the bad copy gets replaced */
    struct stub_tier *t = (struct stub_tier *)A.tiers[0];
    f = lookup("generic:l2-cut", NULL, &c);
    assert_went_to_origin(f, &c);
    assert_int_equal(t->reads, 1);
    f = lookup("generic:l2-cut", NULL, &c);      /* and then L2 again */
    assert_int_equal(t->reads, 2);
    finish(&c);
}

static void test_tiers_are_asked_in_order_before_the_origin(void **state)
{
    (void)state;
    struct stub_tier *first = add_stub(STUB_MISS), *second = add_stub(STUB_ERROR);
    struct client c;
    struct fill *f = lookup("generic:l2-two", NULL, &c);
    assert_went_to_origin(f, &c);
    assert_int_equal(first->reads + second->reads, 2);
    assert_int_equal(A.m.tier[0].lookups[L2_MISS_ABSENT], 1);
    assert_int_equal(A.m.tier[1].lookups[L2_ERR_ERROR], 1);
}

static void test_past_l2_lookups_max_the_tiers_are_skipped(void **state)
{
    (void)state;
    char err[128];
    assert_int_equal(config_set(&A.cfg, "l2_lookups_max", "1", err, sizeof(err)), 0);
    struct stub_tier *t = add_stub(STUB_HANG);
    struct client c1, c2;
    struct fill *f1 = lookup("generic:l2-busy-1", NULL, &c1);
    struct fill *f2 = lookup("generic:l2-busy-2", NULL, &c2);
    assert_int_equal(t->reads, 1);
    assert_int_equal(A.m.tier[0].lookups[L2_ERR_BUSY], 1);
    assert_false(f2->lookup);   /* straight to the origin */
    finish(&c2);
    finish(&c1);
    (void)f1;
}

static void test_a_revalidation_never_asks_the_tiers(void **state)
{
    (void)state;
    struct stub_tier *t = add_stub(STUB_MISS);
    struct client c;
    struct fill_request rq = { .cls = ECO_METADATA, .revalidate = true };
    struct fill *f = lookup("generic:l2-reval", &rq, &c);
    assert_went_to_origin(f, &c);
    assert_int_equal(t->reads, 0);
}

static void test_an_l2_hit_is_served_and_stored_with_its_origin_time(void **state)
{
    (void)state;
    const size_t len = 200000;
    A.tiers[A.n_tiers++] = tier_mem_new(A.loop, 50000);   /* misses */
    A.tiers[A.n_tiers++] = tier_mem_new(A.loop, 50000);   /* has it */
    put(A.tiers[1], "generic:l2-hit", len, 3);
    struct client c;
    struct fill *f = lookup("generic:l2-hit", NULL, &c);
    free(c.got);
    c.got = sl_malloc(len);
    struct pump p = { &c, 1 };
    run_until(all_ended, &p);
    uint8_t *want = fixture_pattern(len, 3);
    assert_int_equal(c.end, 1);
    assert_memory_equal(c.got, want, len);
    free(want);
    assert_string_equal(fill_tier_name(f), "memory");
    assert_int_equal(origin_client_stats(A.origins)->requests, 0);
    assert_int_equal(A.m.tier[0].lookups[L2_MISS_ABSENT], 1);
    assert_int_equal(A.m.tier[1].lookups[L2_HIT], 1);
    assert_int_equal(A.m.tier[1].bytes_read, len);
    finish(&c);
    run_until(committed, "generic:l2-hit");
    uint8_t hash[KEY_HASH_LEN];
    key_hash("generic:l2-hit", 14, hash);
    struct index_entry *e = index_lookup(&A.index, hash);
    assert_int_equal(e->validated, 1700000000);   /* when the origin sent it, not now (metadata TTLs) */
    int one = 1;
    run_until(sink_writes, &one);   /* copied to the tier that missed it ... */
    run_until(no_jobs, NULL);
    for (int i = 0; i < L2_UP_RESULTS; i++)   /* ... never back to the one it came from */
        assert_int_equal(A.m.tier[1].uploads[i], 0);
    assert_int_equal(tier_mem_count(A.tiers[0]), 1);
}

static void test_l2_metadata_past_its_ttl_goes_to_the_origin(void **state)
{
    (void)state;
    A.tiers[A.n_tiers++] = tier_mem_new(A.loop, 0);
    put_text(A.tiers[0], "generic:l2-meta", "{}");   /* fetched in 2023 */
    struct client c;
    struct fill_request rq = { .cls = ECO_METADATA };
    struct fill *f = lookup("generic:l2-meta", &rq, &c);
    assert_went_to_origin(f, &c);
    assert_int_equal(A.m.tier[0].lookups[L2_MISS_STALE], 1);
}

#ifdef SLUICE_TESTING
static void test_a_writer_failure_never_reaches_readers(void **state)
{
    (void)state;
    char err[128];
    const size_t len = 1500000;
    put(source, "generic:enospc", len, 4);
    assert_int_equal(fault_configure("kind=enospc&after=100000", err, sizeof(err)), 0);
    struct fill *f = start("generic:enospc");
    struct client c;
    attach(f, &c, len);
    struct pump p = { &c, 1 };
    run_until(all_ended, &p);
    uint8_t *want = fixture_pattern(len, 4);
    assert_int_equal(c.end, 1);               /* C1: every byte, a clean end */
    assert_memory_equal(c.got, want, len);
    free(want);
    finish(&c);
    run_until_idle();
    assert_int_equal(A.index.count, 0);       /* nothing committed */
    assert_int_equal(temp_files(), 0);        /* C2: no debris */
    assert_int_equal(A.m.write_failures[WFAIL_ENOSPC], 1);
}
#endif

/* ------------------------------------------------------------- purge */

static bool object_on_disk(const char *key)
{
    uint8_t hash[KEY_HASH_LEN];
    key_hash(key, strlen(key), hash);
    int fd = store_object_open(&A.store, hash);
    if (fd >= 0)
        close(fd);
    return fd >= 0;
}

/* Purge a running fill, then check that its reader got every byte and
 * that nothing of it was stored. */
static void purge_and_check(struct fill *f, struct client *c, const char *key, size_t len, unsigned seed)
{
    uint8_t hash[KEY_HASH_LEN];
    key_hash(key, strlen(key), hash);
    fill_purge(f);
    assert_null(fill_find(&A, hash));          /* the next request starts afresh */
    struct pump p = { c, 1 };
    run_until(all_ended, &p);
    uint8_t *want = fixture_pattern(len, seed);
    assert_int_equal(c->end, 1);               /* the transfer is whole */
    assert_int_equal(c->len, len);
    assert_memory_equal(c->got, want, len);
    free(want);
    finish(c);
    run_until_idle();
    assert_null(index_lookup(&A.index, hash)); /* nothing committed */
    assert_false(object_on_disk(key));
    assert_int_equal(temp_files(), 0);
}

static int writing(void *arg)
{
    struct fill *f = arg;
    return f->wstate == W_ACTIVE && f->written > 0;
}

static void test_a_purged_fill_serves_its_readers_and_stores_nothing(void **state)
{
    (void)state;
    const size_t len = 1500000;
    put(source, "generic:purged", len, 8);
    struct fill *f = start("generic:purged");
    struct client c;
    attach(f, &c, len);
    fill_ref(f);
    run_until(writing, f);
    purge_and_check(f, &c, "generic:purged", len, 8);
    assert_int_equal(f->wstate, W_FAILED);
    assert_int_equal(A.m.write_failures[WFAIL_PURGED], 1);
    fill_unref(f);
}

static void test_a_fill_purged_before_its_head_never_opens_a_writer(void **state)
{
    (void)state;
    const size_t len = 100000;
    put(source, "generic:purged-early", len, 10);
    struct fill *f = start("generic:purged-early");
    struct client c;
    attach(f, &c, len);
    fill_ref(f);
    purge_and_check(f, &c, "generic:purged-early", len, 10);
    assert_int_equal(f->wstate, W_NONE);
    fill_unref(f);
}

static int committing(void *arg)
{
    struct fill *f = arg;
    return f->wstate == W_COMMITTING || f->wstate == W_COMMITTED;
}

static void test_a_purge_during_the_commit_removes_the_object_again(void **state)
{
    (void)state;
    const size_t len = 300000;
    put(source, "generic:purged-commit", len, 9);
    struct fill *f = start("generic:purged-commit");
    struct client c;
    attach(f, &c, len);
    fill_ref(f);
    run_until(committing, f);
    assert_int_equal(f->wstate, W_COMMITTING);   /* the commit job is on a worker */
    purge_and_check(f, &c, "generic:purged-commit", len, 9);
    assert_int_equal(f->wstate, W_COMMITTED);    /* readers behind could still read the file */
    fill_unref(f);
    assert_int_equal(metrics_route(&A, &A.routes.routes[0])->fills_committed, 0);
}

static void test_a_fill_nobody_reads_is_abandoned(void **state)
{
    (void)state;
    char err[128];
    assert_int_equal(config_set(&A.cfg, "fill_background_max_size", "0", err, sizeof(err)), 0);
    assert_int_equal(config_set(&A.cfg, "object_max_size", "1M", err, sizeof(err)), 0);   /* paused for sure */
    put(source, "generic:gone", 2 * 1024 * 1024, 5);
    struct fill *f = start("generic:gone");
    struct client c;
    attach(f, &c, 2 * 1024 * 1024);
    run_until(paused_fill, f);
    fill_detach(&c.r);                        /* the client leaves mid-body */
    free(c.got);
    run_until_idle();
    assert_int_equal(A.index.count, 0);
    assert_int_equal(temp_files(), 0);
    assert_int_equal(metrics_route(&A, &A.routes.routes[0])->fills_failed, 1);
}

static int sink_writes(void *arg)
{
    return A.m.tier[0].uploads[L2_UP_OK] == (uint64_t)*(int *)arg;
}

static void test_a_committed_object_is_copied_to_the_sink_tier(void **state)
{
    (void)state;
    const size_t len = 300000;
    A.tiers[A.n_tiers++] = tier_mem_new(A.loop, 0);
    put(source, "generic:copy", len, 6);
    struct fill *f = start("generic:copy");
    struct client c;
    attach(f, &c, len);
    struct pump p = { &c, 1 };
    run_until(all_ended, &p);
    finish(&c);
    int one = 1;
    run_until(sink_writes, &one);
    assert_int_equal(tier_mem_count(A.tiers[0]), 1);
    /* the copy reads back as the object: a fill from the sink serves it */
    struct tier *keep = source;
    source = A.tiers[0];
    struct fill *g = NULL;
    uint8_t hash[KEY_HASH_LEN];
    key_hash("generic:copy", 12, hash);
    index_remove(&A.index, index_lookup(&A.index, hash));
    g = start("generic:copy");
    attach(g, &c, len);
    run_until(all_ended, &p);
    uint8_t *want = fixture_pattern(len, 6);
    assert_memory_equal(c.got, want, len);
    free(want);
    finish(&c);
    source = keep;
    run_until(committed, "generic:copy");   /* committed again, but read from */
    run_until(no_jobs, NULL);               /* the sink: not copied back to it */
    assert_true(sink_writes(&one));
}

/* ------------------------------------------------------------ integrity */

/* The sha256 (sha1) of the pattern body (seed), as fill_verify wants it. */
static struct eco_digest pattern_digest(size_t len, unsigned seed, bool spoil, bool sha1)
{
    struct eco_digest d = { .algorithm = sha1 ? "SHA1" : "SHA256", .len = sha1 ? 20 : 32 };
    uint8_t *body = fixture_pattern(len, seed);
    unsigned n = 0;
    assert_int_equal(EVP_Digest(body, len, d.value, &n, sha1 ? EVP_sha1() : EVP_sha256(), NULL), 1);
    free(body);
    if (spoil)
        d.value[d.len - 1] ^= 1;
    return d;
}

static struct eco_digest pattern_sha256(size_t len, unsigned seed, bool spoil)
{
    return pattern_digest(len, seed, spoil, false);
}

/* Every reader got the whole body and a clean end. */
static void assert_whole(struct client *c, int n, size_t len, unsigned seed)
{
    uint8_t *want = fixture_pattern(len, seed);
    for (int i = 0; i < n; i++) {
        assert_int_equal(c[i].end, 1);
        assert_int_equal(c[i].len, len);
        assert_memory_equal(c[i].got, want, len);
    }
    free(want);
}

/* A fill of key (len pattern bytes of seed) verified against d, read by
 * n clients to their end. */
static void read_verified(const char *key, size_t len, unsigned seed, const struct eco_digest *d,
                          struct client *c, int n)
{
    put(source, key, len, seed);
    struct fill *f = start(key);
    fill_verify(f, "SHA256", d);
    for (int i = 0; i < n; i++)
        attach(f, &c[i], len);
    struct pump p = { c, n };
    run_until(all_ended, &p);
}

static void test_a_body_matching_its_digest_is_served_and_stored_with_it(void **state)
{
    (void)state;
    const size_t len = 700001;
    struct eco_digest d = pattern_sha256(len, 7, false);
    struct client c[2];
    read_verified("generic:good", len, 7, &d, c, 2);
    assert_whole(c, 2, len, 7);
    for (int i = 0; i < 2; i++)
        finish(&c[i]);
    run_until(committed, "generic:good");
    uint8_t hash[KEY_HASH_LEN];
    key_hash("generic:good", 12, hash);
    struct cache_hit hit;
    assert_true(cache_open_hit(&A, index_lookup(&A.index, hash), "generic:good", &hit));
    char want[80];
    digest_format(&d, want, sizeof(want));
    assert_string_equal(hit.meta->verified, want);   /* what it was checked against */
    cache_release_hit(&A, &hit);
    assert_int_equal(metrics_route(&A, &A.routes.routes[0])->integrity_verified, 1);
}

static void test_a_body_not_matching_its_digest_is_aborted_for_everyone_and_never_stored(void **state)
{
    (void)state;
    const size_t len = 700001;
    struct eco_digest d = pattern_sha256(len, 8, true);
    struct client c[3];
    read_verified("generic:bad", len, 8, &d, c, 3);
    uint8_t *want = fixture_pattern(len, 8);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(c[i].end, -1);          /* an aborted transfer ... */
        assert_true(c[i].len < len);             /* ... never the whole body */
        assert_memory_equal(c[i].got, want, c[i].len);
        finish(&c[i]);
    }
    free(want);
    run_until_idle();
    assert_int_equal(A.index.count, 0);
    assert_int_equal(temp_files(), 0);
    uint8_t hash[KEY_HASH_LEN];
    key_hash("generic:bad", 11, hash);
    assert_null(fill_find(&A, hash));           /* the next request fetches again */
    const struct route_counters *rc = metrics_route(&A, &A.routes.routes[0]);
    assert_int_equal(rc->integrity_failures, 1);
    assert_int_equal(rc->fills_committed, 0);
    assert_int_equal(A.m.write_failures[WFAIL_INTEGRITY], 1);
}

static int no_jobs(void *arg)
{
    (void)arg;
    return workers_pending(A.workers) == 0;
}

/* Has the client read all but the last byte (of len)? */
struct hold {
    struct client *c;
    size_t len;
};

static int read_to_last(void *arg)
{
    struct hold *h = arg;
    struct pump p = { h->c, 1 };
    all_ended(&p);
    return h->c->len + 1 == h->len;
}

static void test_a_late_digest_holds_the_last_byte_until_it_comes(void **state)
{
    (void)state;
    const size_t len = 300001;
    put(source, "generic:late-digest", len, 9);
    struct fill *f = start("generic:late-digest");
    fill_verify(f, "SHA256", NULL);
    struct client c;
    attach(f, &c, len);
    struct hold hold = { &c, len };
    run_until(read_to_last, &hold);             /* everything but the last byte */
    run_until(no_jobs, NULL);                   /* the writer has it all too */
    read_some(&c, SIZE_MAX);
    assert_int_equal(c.len, len - 1);           /* still held: no verdict yet */
    assert_int_equal(c.end, 0);
    assert_int_equal(A.index.count, 0);         /* and nothing committed */
    struct eco_digest d = pattern_sha256(len, 9, false);
    fill_verify_expect(f, &d);
    struct pump p = { &c, 1 };
    run_until(all_ended, &p);
    assert_whole(&c, 1, len, 9);
    finish(&c);
    run_until(committed, "generic:late-digest");
}

/* A job that holds a worker thread until released. */
struct blocker {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool released;
};

static void block_work(void *arg)
{
    struct blocker *b = arg;
    pthread_mutex_lock(&b->mu);
    while (!b->released)
        pthread_cond_wait(&b->cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
}

static void release(struct blocker *b)
{
    pthread_mutex_lock(&b->mu);
    b->released = true;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

static int read_until_paused(void *arg)
{
    read_some(arg, SIZE_MAX);
    return !list_empty(&A.paused);
}

static void test_a_hash_behind_the_stream_gets_the_writers_slack_then_pauses_the_origin(void **state)
{
    (void)state;
    const size_t len = 3 * 1024 * 1024;
    char err[128];
    /* Not stored (no writer pins anything), a 256K window, 1M of lag. */
    assert_int_equal(config_set(&A.cfg, "object_max_size", "1M", err, sizeof(err)), 0);
    assert_int_equal(config_set(&A.cfg, "cache_write_lag_max", "1M", err, sizeof(err)), 0);
    static struct blocker b = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false };
    put(source, "generic:hash-lag", len, 11);
    workers_submit(A.workers, block_work, NULL, &b);   /* both threads busy: */
    workers_submit(A.workers, block_work, NULL, &b);   /* no hash job can run */
    struct fill *f = start("generic:hash-lag");
    struct eco_digest d = pattern_sha256(len, 11, false);
    fill_verify(f, "SHA256", &d);
    struct client c;
    attach(f, &c, len);
    run_until(read_until_paused, &c);
    /* Past the window, the client kept reading what the hash had not seen,
     * up to the lag; there the origin waits for the hash. */
    assert_true(f->received > 3 * A.cfg.fill_buffer_size);
    assert_true(f->received <= A.cfg.cache_write_lag_max + 64 * 1024);
    assert_true(f->received >= A.cfg.cache_write_lag_max - 64 * 1024);
    assert_int_equal(c.len, f->received - 1);  /* all it may: the last byte waits for the verdict */
    assert_int_equal(c.end, 0);
    release(&b);
    struct pump p = { &c, 1 };
    run_until(all_ended, &p);                 /* the hash catches up, the origin resumes */
    assert_whole(&c, 1, len, 11);
    finish(&c);
    run_until_idle();
    assert_int_equal(metrics_route(&A, &A.routes.routes[0])->integrity_verified, 1);
}

static void test_no_digest_after_all_releases_the_body_unverified(void **state)
{
    (void)state;
    const size_t len = 1000;
    put(source, "generic:none", len, 10);
    struct fill *f = start("generic:none");
    fill_verify(f, "SHA1", NULL);
    struct client c;
    attach(f, &c, len);
    fill_verify_expect(f, NULL);
    struct pump p = { &c, 1 };
    run_until(all_ended, &p);
    assert_whole(&c, 1, len, 10);
    finish(&c);
    run_until(committed, "generic:none");
    assert_int_equal(metrics_route(&A, &A.routes.routes[0])->integrity_unknown, 1);
}

/* key -> text, as a tier object. */
static void put_text(struct tier *t, const char *key, const char *text)
{
    char path[] = "/tmp/sluice-unit-obj-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    struct obj_meta m = { .key = (char *)key, .status = 200, .size = strlen(text), .stored = 1700000000,
                          .etag = (char *)"\"t\"" };
    uint8_t block[OBJ_HEADER_SIZE];
    assert_int_equal(obj_header_encode(&m, block), 0);
    assert_int_equal(pwrite(fd, block, sizeof(block), 0), (ssize_t)sizeof(block));
    assert_int_equal(pwrite(fd, text, strlen(text), OBJ_HEADER_SIZE), (ssize_t)strlen(text));
    uint8_t hash[KEY_HASH_LEN];
    key_hash(key, strlen(key), hash);
    int res[2] = { 0, 0 };
    tier_write(t, key, hash, fd, on_put, res);
    run_until(done_flag, &res[0]);
    assert_int_equal(res[1], 0);
}

/* A Maven .sha1 beside the artifact gives the digest: right, then wrong
 * (read by the maven ecosystem's sidecar_digest). */
static void test_a_sidecar_fill_gives_the_digest(void **state)
{
    (void)state;
    const size_t len = 5000;
    char text[2 * 32 + 16];
    struct route maven = { .eco = eco_find("maven", 5) };
    struct canon artifact = { .route = &maven };
    for (int spoil = 0; spoil < 2; spoil++) {
        struct eco_digest d = pattern_digest(len, 11, spoil, true);
        for (size_t i = 0; i < d.len; i++)
            snprintf(text + 2 * i, 3, "%02X", d.value[i]);   /* upper case is fine */
        strcat(text, "  a.jar\n");
        const char *key = spoil ? "generic:b.jar" : "generic:a.jar";
        const char *side = spoil ? "generic:b.jar.sha1" : "generic:a.jar.sha1";
        put(source, key, len, 11);
        put_text(source, side, text);
        struct fill *f = start(key), *sf = start(side);
        fill_verify(f, "SHA1", NULL);
        fill_verify_from(f, sf, &artifact);
        struct client c;
        attach(f, &c, len);
        struct pump p = { &c, 1 };
        run_until(all_ended, &p);
        if (spoil) {
            assert_int_equal(c.end, -1);
            finish(&c);
            run_until_idle();
            uint8_t hash[KEY_HASH_LEN];
            key_hash(key, strlen(key), hash);
            assert_null(index_lookup(&A.index, hash));
        } else {
            assert_whole(&c, 1, len, 11);
            finish(&c);
            run_until(committed, (char *)key);
            run_until(committed, (char *)side);  /* the sidecar is stored too */
        }
    }
    assert_int_equal(metrics_route(&A, &A.routes.routes[0])->integrity_verified, 1);
    assert_int_equal(metrics_route(&A, &A.routes.routes[0])->integrity_failures, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_readers_get_every_byte_and_the_object_is_committed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_reader_that_stops_pauses_the_source_until_it_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_late_follower_reads_the_start_from_the_spool_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_tier_miss_fails_the_fill_before_its_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_an_l2_miss_goes_on_to_the_origin_in_the_same_fill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_an_l2_error_before_the_head_goes_on_to_the_origin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_an_l2_with_no_head_by_the_deadline_goes_on_to_the_origin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_an_l2_read_failing_mid_body_aborts_readers_and_stores_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tiers_are_asked_in_order_before_the_origin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_past_l2_lookups_max_the_tiers_are_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_revalidation_never_asks_the_tiers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_an_l2_hit_is_served_and_stored_with_its_origin_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_l2_metadata_past_its_ttl_goes_to_the_origin, setup, teardown),
#ifdef SLUICE_TESTING
        cmocka_unit_test_setup_teardown(test_a_writer_failure_never_reaches_readers, setup, teardown),
#endif
        cmocka_unit_test_setup_teardown(test_a_purged_fill_serves_its_readers_and_stores_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_purge_during_the_commit_removes_the_object_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_fill_purged_before_its_head_never_opens_a_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_fill_nobody_reads_is_abandoned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_committed_object_is_copied_to_the_sink_tier, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_body_matching_its_digest_is_served_and_stored_with_it, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_body_not_matching_its_digest_is_aborted_for_everyone_and_never_stored,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_late_digest_holds_the_last_byte_until_it_comes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_digest_after_all_releases_the_body_unverified, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_hash_behind_the_stream_gets_the_writers_slack_then_pauses_the_origin,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_sidecar_fill_gives_the_digest, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
