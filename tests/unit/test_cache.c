/*
 * test_cache.c - committed objects (store/cache.h): a hit is validated
 * before any byte (C3: a missing, corrupt or foreign file is a miss and the
 * entry is dropped), hot objects stay open and are revalidated with one
 * fstat, eviction keeps the cache under its limit without ever removing an
 * object being served, and the start-up scan rebuilds the index from disk.
 * A temp file's write-back is started once per STORE_WRITEBACK_EVERY
 * written, not per write, and what is written in pieces commits whole.
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

#include "store/cache.h"

#include "agent_fixture.h"

static int setup(void **state)
{
    (void)state;
    fixture_setup();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fixture_teardown();
    return 0;
}

/* Commit `key` with `len` bytes of `fill` straight through the store, as a
 * fill's writer does, and index it. */
static void commit(const char *key, size_t len, uint8_t fill)
{
    uint8_t hash[KEY_HASH_LEN];
    key_hash(key, strlen(key), hash);
    struct store_temp t;
    assert_int_equal(store_temp_create(&A.store, hash, &t), 0);
    uint8_t *body = sl_malloc(len + 1);
    memset(body, fill, len);
    struct iovec v = { body, len };
    if (len)
        assert_int_equal(store_temp_writev(&t, &v, 1, 0), 0);
    free(body);
    struct obj_meta m = { .key = (char *)key, .status = 200, .size = len, .stored = sl_wall_s(),
                          .etag = (char *)"\"c\"", .last_modified = 1 };
    assert_int_equal(store_temp_commit(&A.store, &t, hash, &m), 0);
    cache_committed(&A, hash, key, &m, -1, -1);
}

static struct index_entry *entry(const char *key)
{
    uint8_t hash[KEY_HASH_LEN];
    key_hash(key, strlen(key), hash);
    return index_lookup(&A.index, hash);
}

static void object_path(const char *key, char *out, size_t outlen)
{
    uint8_t hash[KEY_HASH_LEN];
    char rel[96];
    key_hash(key, strlen(key), hash);
    key_rel_path(hash, rel, sizeof(rel));
    snprintf(out, outlen, "%s/%s", fixture_dir, rel);
}

static int no_file(void *arg)
{
    return access((const char *)arg, F_OK) != 0 && workers_pending(A.workers) == 0;
}

/* ---------------------------------------------------------------- tests */

static void test_write_back_starts_once_per_writeback_every(void **state)
{
    (void)state;
    const char *key = "writeback";
    uint8_t hash[KEY_HASH_LEN];
    key_hash(key, strlen(key), hash);
    struct store_temp t;
    assert_int_equal(store_temp_create(&A.store, hash, &t), 0);
    size_t piece = STORE_WRITEBACK_EVERY / 8;
    uint8_t *body = sl_malloc(piece);
    memset(body, 'w', piece);
    struct iovec v = { body, piece };
    uint64_t off = 0;
    for (int i = 0; i < 7; i++, off += piece)
        assert_int_equal(store_temp_writev(&t, &v, 1, off), 0);
    assert_int_equal(t.written_back, 0);   /* below the step: left to the commit's fsync */
    assert_int_equal(store_temp_writev(&t, &v, 1, off), 0);
    off += piece;
    assert_int_equal(t.written_back, STORE_WRITEBACK_EVERY);
    for (int i = 0; i < 3; i++, off += piece)
        assert_int_equal(store_temp_writev(&t, &v, 1, off), 0);
    assert_int_equal(t.written_back, STORE_WRITEBACK_EVERY);
    free(body);
    struct obj_meta m = { .key = (char *)key, .status = 200, .size = off, .stored = sl_wall_s(),
                          .etag = (char *)"\"w\"", .last_modified = 1 };
    assert_int_equal(store_temp_commit(&A.store, &t, hash, &m), 0);
    cache_committed(&A, hash, key, &m, -1, -1);
    struct index_entry *e = entry(key);
    assert_non_null(e);
    char path[512];
    object_path(key, path, sizeof(path));
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    assert_int_equal((uint64_t)ftell(f), OBJ_HEADER_SIZE + off);
    fclose(f);
}

static void test_a_valid_object_is_a_hit_and_pinned(void **state)
{
    (void)state;
    commit("generic:ok", 100000, 'a');
    struct index_entry *e = entry("generic:ok");
    assert_non_null(e);
    struct cache_hit h;
    assert_true(cache_open_hit(&A, e, "generic:ok", &h));
    assert_int_equal(e->pins, 1);
    assert_int_equal(h.meta->size, 100000);
    assert_null(h.body);                  /* large: sent from the file */
    uint8_t b;
    assert_int_equal(pread(h.fd, &b, 1, OBJ_HEADER_SIZE + 99999), 1);
    assert_int_equal(b, 'a');
    cache_release_hit(&A, &h);
    assert_int_equal(e->pins, 0);
}

static void test_a_missing_object_is_a_miss_and_the_entry_goes(void **state)
{
    (void)state;
    commit("generic:gone", 10, 'b');
    char path[256];
    object_path("generic:gone", path, sizeof(path));
    assert_int_equal(unlink(path), 0);
    struct cache_hit h;
    assert_false(cache_open_hit(&A, entry("generic:gone"), "generic:gone", &h));
    assert_null(entry("generic:gone"));
    assert_int_equal(A.m.stale_index_dropped, 1);
}

static void test_a_corrupt_object_is_a_miss_and_is_removed(void **state)
{
    (void)state;
    commit("generic:bad", 10, 'c');
    char path[256];
    object_path("generic:bad", path, sizeof(path));
    FILE *f = fopen(path, "r+");
    assert_non_null(f);
    fputs("XXXXXXXX", f);                 /* the magic */
    fclose(f);
    struct cache_hit h;
    assert_false(cache_open_hit(&A, entry("generic:bad"), "generic:bad", &h));
    assert_null(entry("generic:bad"));
    fixture_run_until(no_file, path);     /* removed on a worker */
}

static void test_a_truncated_object_is_a_miss(void **state)
{
    (void)state;
    commit("generic:short", 5000, 'd');
    char path[256];
    object_path("generic:short", path, sizeof(path));
    assert_int_equal(truncate(path, OBJ_HEADER_SIZE + 100), 0);
    struct cache_hit h;
    assert_false(cache_open_hit(&A, entry("generic:short"), "generic:short", &h));
    assert_null(entry("generic:short"));
}

static void test_another_keys_object_is_never_served(void **state)
{
    (void)state;
    commit("generic:mine", 10, 'e');
    struct cache_hit h;
    /* the entry of "mine", asked for with another key (a hash collision) */
    assert_false(cache_open_hit(&A, entry("generic:mine"), "generic:theirs", &h));
}

static void test_hot_objects_stay_open_and_are_revalidated_when_replaced(void **state)
{
    (void)state;
    commit("generic:hot", 1000, 'f');
    struct cache_hit h;
    assert_true(cache_open_hit(&A, entry("generic:hot"), "generic:hot", &h));
    assert_non_null(h.body);              /* small: kept in memory */
    assert_int_equal(h.body[0], 'f');
    cache_release_hit(&A, &h);
    assert_int_equal(A.index.open_files, 1);
    int fd = entry("generic:hot")->fd;
    assert_true(cache_open_hit(&A, entry("generic:hot"), "generic:hot", &h));
    assert_int_equal(h.fd, fd);           /* the same open file */
    cache_release_hit(&A, &h);
    commit("generic:hot", 1000, 'g');     /* replaced on disk */
    assert_true(cache_open_hit(&A, entry("generic:hot"), "generic:hot", &h));
    assert_int_equal(h.body ? h.body[0] : 0, 'g');
    cache_release_hit(&A, &h);
}

static void test_eviction_keeps_the_limit_and_spares_pinned_objects(void **state)
{
    (void)state;
    char err[128];
    assert_int_equal(config_set(&A.cfg, "cache_max_size", "64K", err, sizeof(err)), 0);
    commit("generic:e0", 20000, '0');
    struct cache_hit pinned;
    assert_true(cache_open_hit(&A, entry("generic:e0"), "generic:e0", &pinned));
    for (int i = 1; i <= 6; i++) {
        char key[32];
        snprintf(key, sizeof(key), "generic:e%d", i);
        commit(key, 20000, (uint8_t)('0' + i));
        fixture_run_until(fixture_idle, NULL);
    }
    assert_true(A.index.total_bytes <= A.cfg.cache_max_size);
    assert_non_null(entry("generic:e0"));   /* the oldest, but being served */
    assert_null(entry("generic:e1"));       /* the next oldest went */
    assert_non_null(entry("generic:e6"));
    assert_true(A.m.evictions >= 3);
    char path[256];
    object_path("generic:e1", path, sizeof(path));
    assert_int_not_equal(access(path, F_OK), 0);
    cache_release_hit(&A, &pinned);
}

static int scanned(void *arg)
{
    (void)arg;
    return !A.index_loading;
}

static void test_the_scan_rebuilds_the_index_and_removes_invalid_files(void **state)
{
    (void)state;
    commit("generic:s1", 10, '1');
    commit("generic:s2", 20000, '2');
    char path[256];
    object_path("generic:s2", path, sizeof(path));
    char junk[300];
    snprintf(junk, sizeof(junk), "%.*s/0000000000000000000000000000000000000000000000000000000000000000",
             (int)(strrchr(path, '/') - path), path);
    FILE *f = fopen(junk, "w");           /* a file that is no object */
    assert_non_null(f);
    fputs("junk", f);
    fclose(f);
    index_free(&A.index);                 /* a restart: the index is gone */
    index_init(&A.index);
    cache_start_scan(&A);
    assert_true(A.index_loading);
    fixture_run_until(scanned, NULL);
    assert_int_equal(A.index.count, 2);
    assert_non_null(entry("generic:s1"));
    assert_int_equal(A.index.total_bytes, 2 * OBJ_HEADER_SIZE + 10 + 20000);
    assert_int_not_equal(access(junk, F_OK), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_valid_object_is_a_hit_and_pinned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_back_starts_once_per_writeback_every, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_missing_object_is_a_miss_and_the_entry_goes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_corrupt_object_is_a_miss_and_is_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_truncated_object_is_a_miss, setup, teardown),
        cmocka_unit_test_setup_teardown(test_another_keys_object_is_never_served, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hot_objects_stay_open_and_are_revalidated_when_replaced, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_eviction_keeps_the_limit_and_spares_pinned_objects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_the_scan_rebuilds_the_index_and_removes_invalid_files, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
