/*
 * test_rwcache.c - rewritten metadata bodies kept in memory
 * (serve/rwcache.c).
 *
 * Proves: a put is found by its exact identity, and a lookup with any one
 * field of the identity different (another stored copy: inode, size,
 * mtime, ctime, stored time, ETag; another configuration generation)
 * misses and drops the old entry for good; bytes and entries always equal
 * the sums over what is kept; the byte budget evicts least recently used
 * first (a get makes an entry recent); a body over the per-object limit or
 * a budget of 0 keeps nothing; a put replaces the hash's entry; drop (a
 * purge, an eviction or a commit of the object) and configure (a reload)
 * remove entries; an entry dropped while a response holds it stays
 * readable until released (ASan checks the frees and the leak check the
 * ownership of bodies and notes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "serve/rwcache.h"

static struct rwcache_id id_of(unsigned n)
{
    struct rwcache_id id;
    memset(&id, 0, sizeof(id));
    memset(id.hash, 0, KEY_HASH_LEN);
    memcpy(id.hash, &n, sizeof(n));
    id.hash[KEY_HASH_LEN - 1] = (uint8_t)n;
    id.generation = 1;
    id.dev = 8;
    id.ino = 1000 + n;
    id.file_size = 4096 + 100;
    id.mtime_ns = 1700000000000000000LL;
    id.ctime_ns = 1700000000000000001LL;
    id.stored = 1700000000;
    id.body_size = 100;
    id.etag_crc = 0xabcd;
    return id;
}

static uint8_t *body_of(size_t len, int fill)
{
    uint8_t *b = malloc(len);
    memset(b, fill, len);
    return b;
}

static bool put(struct rwcache *c, unsigned n, size_t len)
{
    struct rwcache_id id = id_of(n);
    return rwcache_put(c, &id, body_of(len, (int)n), len, NULL, 0);
}

/* A get of n's id: true when found (and released again). */
static bool has(struct rwcache *c, unsigned n)
{
    struct rwcache_id id = id_of(n);
    struct rwc_entry *e = rwcache_get(c, &id);
    if (e)
        rwcache_release(c, e);
    return e != NULL;
}

static void test_found_by_exact_identity(void **state)
{
    (void)state;
    struct rwcache c;
    rwcache_init(&c, 1 << 20, 1 << 20);
    struct rwcache_id id = id_of(1);
    uint8_t *notes = body_of(58, 7);
    assert_true(rwcache_put(&c, &id, body_of(100, 'x'), 100, notes, 58));
    assert_int_equal(c.bytes, 158);
    assert_int_equal(c.entries, 1);
    struct rwc_entry *e = rwcache_get(&c, &id);
    assert_non_null(e);
    assert_int_equal(e->len, 100);
    assert_int_equal(e->body[99], 'x');
    assert_int_equal(e->notes_len, 58);
    rwcache_release(&c, e);
    assert_int_equal(c.hits, 1);
    assert_int_equal(c.insertions, 1);
    assert_false(has(&c, 2));
    assert_int_equal(c.misses, 1);
    rwcache_free(&c);
}

/* Each field changed alone: a miss, and the old rewrite is gone. */
static void test_another_copy_never_matches(void **state)
{
    (void)state;
    for (int field = 0; field < 9; field++) {
        struct rwcache c;
        rwcache_init(&c, 1 << 20, 1 << 20);
        assert_true(put(&c, 1, 100));
        struct rwcache_id other = id_of(1);
        switch (field) {
        case 0: other.generation++; break;
        case 1: other.dev++; break;
        case 2: other.ino++; break;
        case 3: other.file_size++; break;
        case 4: other.mtime_ns++; break;
        case 5: other.ctime_ns++; break;
        case 6: other.stored++; break;
        case 7: other.body_size++; break;
        default: other.etag_crc++; break;
        }
        assert_null(rwcache_get(&c, &other));
        assert_int_equal(c.entries, 0);
        assert_int_equal(c.bytes, 0);
        assert_false(has(&c, 1));   /* the old copy's rewrite went for good */
        rwcache_free(&c);
    }
}

static void test_budget_evicts_least_recently_used(void **state)
{
    (void)state;
    struct rwcache c;
    rwcache_init(&c, 1000, 1000);
    assert_true(put(&c, 1, 400));
    assert_true(put(&c, 2, 400));
    assert_true(has(&c, 1));   /* 1 is now the most recent */
    assert_true(put(&c, 3, 400));   /* 2 goes */
    assert_int_equal(c.evictions, 1);
    assert_false(has(&c, 2));
    assert_true(has(&c, 1));
    assert_true(has(&c, 3));
    assert_int_equal(c.bytes, 800);
    assert_int_equal(c.entries, 2);
    assert_true(put(&c, 4, 1000));   /* the whole budget: everything else goes */
    assert_int_equal(c.entries, 1);
    assert_int_equal(c.bytes, 1000);
    assert_true(c.bytes <= c.budget);
    rwcache_free(&c);
}

static void test_limits_keep_nothing(void **state)
{
    (void)state;
    struct rwcache c;
    rwcache_init(&c, 1000, 300);
    assert_false(put(&c, 1, 301));   /* over the per-object limit */
    assert_true(put(&c, 2, 300));
    struct rwcache_id id = id_of(3);
    assert_false(rwcache_put(&c, &id, body_of(200, 1), 200, body_of(900, 2), 900));   /* over the budget */
    assert_int_equal(c.entries, 1);
    assert_true(has(&c, 2));
    rwcache_configure(&c, 0, 300);   /* off */
    assert_false(rwcache_enabled(&c));
    assert_false(put(&c, 4, 10));
    assert_int_equal(c.entries, 0);
    rwcache_free(&c);
}

static void test_put_replaces_and_drop_removes(void **state)
{
    (void)state;
    struct rwcache c;
    rwcache_init(&c, 1 << 20, 1 << 20);
    assert_true(put(&c, 1, 100));
    assert_true(put(&c, 1, 250));   /* the same hash again: replaced */
    assert_int_equal(c.entries, 1);
    assert_int_equal(c.bytes, 250);
    assert_true(put(&c, 2, 100));
    struct rwcache_id id1 = id_of(1);
    rwcache_drop(&c, id1.hash);   /* a purge, eviction or commit */
    assert_false(has(&c, 1));
    assert_true(has(&c, 2));
    rwcache_drop(&c, id1.hash);   /* nothing kept: nothing happens */
    assert_int_equal(c.entries, 1);
    assert_int_equal(c.bytes, 100);
    rwcache_configure(&c, 1 << 20, 1 << 20);   /* a reload */
    assert_false(has(&c, 2));
    assert_int_equal(c.entries, 0);
    assert_int_equal(c.bytes, 0);
    rwcache_free(&c);
}

/* Many hashes in few buckets: each found, sums right after drops. */
static void test_many_entries(void **state)
{
    (void)state;
    struct rwcache c;
    rwcache_init(&c, 1 << 30, 1 << 20);
    for (unsigned n = 0; n < 5000; n++)
        assert_true(put(&c, n, 10 + n % 7));
    for (unsigned n = 0; n < 5000; n += 2) {
        struct rwcache_id id = id_of(n);
        rwcache_drop(&c, id.hash);
    }
    uint64_t bytes = 0;
    for (unsigned n = 0; n < 5000; n++) {
        assert_int_equal(has(&c, n), n % 2 == 1);
        bytes += n % 2 ? 10 + n % 7 : 0;
    }
    assert_int_equal(c.entries, 2500);
    assert_int_equal(c.bytes, bytes);
    rwcache_free(&c);
}

static void test_dropped_while_held_stays_readable(void **state)
{
    (void)state;
    struct rwcache c;
    rwcache_init(&c, 1000, 1000);
    assert_true(put(&c, 1, 500));
    struct rwcache_id id = id_of(1);
    struct rwc_entry *held = rwcache_get(&c, &id);   /* a response sending it */
    assert_non_null(held);
    rwcache_drop(&c, id.hash);
    assert_int_equal(c.bytes, 0);
    assert_false(has(&c, 1));
    assert_int_equal(held->body[499], 1);   /* still there for its response */
    assert_true(put(&c, 1, 600));   /* a newer rewrite of the same hash meanwhile */
    assert_true(has(&c, 1));
    rwcache_release(&c, held);
    assert_true(has(&c, 1));
    rwcache_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_found_by_exact_identity),
        cmocka_unit_test(test_another_copy_never_matches),
        cmocka_unit_test(test_budget_evicts_least_recently_used),
        cmocka_unit_test(test_limits_keep_nothing),
        cmocka_unit_test(test_put_replaces_and_drop_removes),
        cmocka_unit_test(test_many_entries),
        cmocka_unit_test(test_dropped_while_held_stays_readable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
