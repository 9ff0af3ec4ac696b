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
    int one = 1, two = 2;
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
    run_until(sink_writes, &two);   /* committed again, copied again */
    source = keep;
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
