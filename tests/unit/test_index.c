/*
 * test_index.c - the in-memory index of committed objects (store/index.h).
 *
 * Proves: lookup/put/replace/remove; count and total_bytes always equal the
 * sum over the entries (checked by walking the LRU list after every
 * operation sequence, replaces with a different size included); every entry
 * is in its hash bucket and on the LRU list; LRU order (put, replace and
 * touch make an entry most recent; index_oldest_unpinned skips pinned
 * entries and is NULL when all are pinned); 100k entries grow the table and
 * stay findable; the open-file list (attach, count, LRU order, pinned
 * entries skipped, release closes the fd and frees meta and body, an entry
 * is on the list iff fd >= 0, remove and replace close a stale file, a
 * pinned entry keeps its file); index_free closes and frees everything.
 * Ownership of meta/body moving to the index is checked by ASan's leak check.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/common.h"
#include "store/index.h"

/* ------------------------------------------------------------- helpers */

/* A well-spread digest for n (the index buckets by the first 8 bytes). */
static void hash_of(uint64_t n, uint8_t out[KEY_HASH_LEN])
{
    uint64_t x = n;
    for (size_t i = 0; i < KEY_HASH_LEN; i += 8) {
        x += 0x9e3779b97f4a7c15ULL; /* splitmix64 */
        uint64_t z = x;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        z ^= z >> 31;
        memcpy(out + i, &z, 8);
    }
}

static struct index_entry *put(struct index *ix, uint64_t n, uint64_t disk_bytes)
{
    uint8_t h[KEY_HASH_LEN];
    hash_of(n, h);
    struct index_entry *e = index_put(ix, h, disk_bytes, disk_bytes / 2, (int64_t)n);
    assert_non_null(e);
    return e;
}

static struct index_entry *find(struct index *ix, uint64_t n)
{
    uint8_t h[KEY_HASH_LEN];
    hash_of(n, h);
    return index_lookup(ix, h);
}

/* The invariants of index.h, by walking both lists. */
static void check_invariants(struct index *ix)
{
    size_t count = 0, open = 0;
    uint64_t bytes = 0;
    for (struct sl_list *n = ix->lru.next; n != &ix->lru; n = n->next) {
        struct index_entry *e = SL_CONTAINER_OF(n, struct index_entry, lru);
        count++;
        bytes += e->disk_bytes;
        if (e->purged)
            assert_true(e->pins > 0 && index_lookup(ix, e->hash) != e);
        else
            assert_ptr_equal(index_lookup(ix, e->hash), e);
        assert_int_equal(list_linked(&e->open), e->fd >= 0);
        if (e->fd >= 0)
            assert_non_null(e->meta);
    }
    for (struct sl_list *n = ix->open_lru.next; n != &ix->open_lru; n = n->next)
        open++;
    assert_int_equal(count, ix->count);
    assert_int_equal(bytes, ix->total_bytes);
    assert_int_equal(open, ix->open_files);
}

/* The LRU list from most to least recent is exactly want[0..n). */
static void assert_lru(struct index *ix, struct index_entry *const *want, size_t n)
{
    size_t i = 0;
    for (struct sl_list *l = ix->lru.next; l != &ix->lru; l = l->next, i++) {
        assert_true(i < n);
        assert_ptr_equal(SL_CONTAINER_OF(l, struct index_entry, lru), want[i]);
    }
    assert_int_equal(i, n);
}

static bool fd_closed(int fd)
{
    errno = 0;
    return fcntl(fd, F_GETFD) == -1 && errno == EBADF;
}

/* Attach a real fd and a heap meta (with a strdup'd key) to e; returns the fd. */
static int attach(struct index *ix, struct index_entry *e)
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    struct obj_meta *meta = sl_calloc(1, sizeof(*meta));
    meta->key = sl_strdup("npm/some/key");
    meta->etag = sl_strdup("\"etag\"");
    index_fd_attach(ix, e, fd, meta, &st);
    return fd;
}

static int setup(void **state)
{
    struct index *ix = calloc(1, sizeof(*ix));
    index_init(ix);
    *state = ix;
    return 0;
}

static int teardown(void **state)
{
    struct index *ix = *state;
    index_free(ix);
    free(ix);
    return 0;
}

/* ------------------------------------------------- lookup, put, remove */

static void test_empty_index_finds_nothing(void **state)
{
    struct index *ix = *state;
    assert_null(find(ix, 1));
    assert_null(index_oldest_unpinned(ix));
    assert_null(index_fd_oldest_unpinned(ix));
    assert_int_equal(ix->count, 0);
    assert_int_equal(ix->total_bytes, 0);
    assert_int_equal(ix->open_files, 0);
    assert_true(ix->n_buckets > 0 && (ix->n_buckets & (ix->n_buckets - 1)) == 0);
    check_invariants(ix);
}

static void test_put_then_lookup_returns_entry_with_its_fields(void **state)
{
    struct index *ix = *state;
    uint8_t h[KEY_HASH_LEN];
    hash_of(7, h);
    struct index_entry *e = index_put(ix, h, 4096 + 10, 10, 1700000000);
    assert_ptr_equal(index_lookup(ix, h), e);
    assert_memory_equal(e->hash, h, KEY_HASH_LEN);
    assert_int_equal(e->disk_bytes, 4106);
    assert_int_equal(e->body_size, 10);
    assert_int_equal(e->stored, 1700000000);
    assert_int_equal(e->pins, 0);
    assert_int_equal(e->fd, -1);
    assert_null(e->meta);
    assert_null(find(ix, 8));
    check_invariants(ix);
}

static void test_put_same_hash_replaces_in_place_and_adjusts_total(void **state)
{
    struct index *ix = *state;
    struct index_entry *a = put(ix, 1, 100);
    put(ix, 2, 50);
    assert_int_equal(ix->total_bytes, 150);
    assert_ptr_equal(put(ix, 1, 300), a); /* bigger */
    assert_int_equal(ix->count, 2);
    assert_int_equal(ix->total_bytes, 350);
    assert_int_equal(a->disk_bytes, 300);
    assert_int_equal(a->body_size, 150);
    check_invariants(ix);
    assert_ptr_equal(put(ix, 1, 20), a); /* smaller */
    assert_int_equal(ix->count, 2);
    assert_int_equal(ix->total_bytes, 70);
    check_invariants(ix);
}

static void test_remove_forgets_entry_and_subtracts_bytes(void **state)
{
    struct index *ix = *state;
    for (uint64_t n = 0; n < 5; n++)
        put(ix, n, 100 + n);
    index_remove(ix, find(ix, 2));
    assert_null(find(ix, 2));
    for (uint64_t n = 0; n < 5; n++)
        if (n != 2)
            assert_non_null(find(ix, n));
    assert_int_equal(ix->count, 4);
    assert_int_equal(ix->total_bytes, 100 + 101 + 103 + 104);
    check_invariants(ix);
    for (uint64_t n = 0; n < 5; n++)
        if (n != 2)
            index_remove(ix, find(ix, n));
    assert_int_equal(ix->count, 0);
    assert_int_equal(ix->total_bytes, 0);
    assert_null(index_oldest_unpinned(ix));
    put(ix, 2, 9); /* a removed key can come back */
    assert_int_equal(find(ix, 2)->disk_bytes, 9);
    check_invariants(ix);
}

/* Random puts, replaces (new sizes) and removes against a shadow table. */
static void test_totals_equal_sum_of_entries_through_mixed_operations(void **state)
{
    struct index *ix = *state;
    enum { KEYS = 300 };
    uint64_t shadow[KEYS] = { 0 }; /* 0 = absent */
    uint64_t rnd = 12345;
    for (int step = 0; step < 6000; step++) {
        rnd = rnd * 6364136223846793005ULL + 1442695040888963407ULL;
        uint64_t k = (rnd >> 33) % KEYS, size = 1 + (rnd >> 13) % 100000;
        if ((rnd >> 60) < 5 && shadow[k]) {
            index_remove(ix, find(ix, k));
            shadow[k] = 0;
        } else {
            put(ix, k, size);
            shadow[k] = size;
        }
        if (step % 97 == 0)
            check_invariants(ix);
    }
    size_t count = 0;
    uint64_t bytes = 0;
    for (uint64_t k = 0; k < KEYS; k++) {
        struct index_entry *e = find(ix, k);
        assert_int_equal(e != NULL, shadow[k] != 0);
        if (e)
            assert_int_equal(e->disk_bytes, shadow[k]);
        count += shadow[k] != 0;
        bytes += shadow[k];
    }
    assert_int_equal(ix->count, count);
    assert_int_equal(ix->total_bytes, bytes);
    check_invariants(ix);
}

static void test_many_entries_grow_table_and_all_stay_findable(void **state)
{
    struct index *ix = *state;
    enum { N = 100000 };
    size_t initial = ix->n_buckets;
    for (uint64_t n = 0; n < N; n++)
        put(ix, n, n % 4096 + 4096);
    assert_true(ix->n_buckets > initial);
    assert_true(ix->n_buckets >= N / 2);
    assert_int_equal(ix->n_buckets & (ix->n_buckets - 1), 0);
    assert_int_equal(ix->count, N);
    for (uint64_t n = 0; n < N; n++) {
        struct index_entry *e = find(ix, n);
        assert_non_null(e);
        assert_int_equal(e->stored, (int64_t)n);
    }
    assert_null(find(ix, N));
    check_invariants(ix);
    for (uint64_t n = 0; n < N; n += 2)
        index_remove(ix, find(ix, n));
    for (uint64_t n = 0; n < N; n++)
        assert_int_equal(find(ix, n) != NULL, n % 2 == 1);
    check_invariants(ix);
}

/* --------------------------------------------------------------- LRU */

static void test_put_and_touch_make_an_entry_most_recent(void **state)
{
    struct index *ix = *state;
    struct index_entry *a = put(ix, 1, 10), *b = put(ix, 2, 10), *c = put(ix, 3, 10);
    assert_lru(ix, (struct index_entry *[]){ c, b, a }, 3);
    assert_ptr_equal(index_oldest_unpinned(ix), a);
    index_touch(ix, a);
    assert_lru(ix, (struct index_entry *[]){ a, c, b }, 3);
    assert_ptr_equal(index_oldest_unpinned(ix), b);
    put(ix, 2, 20); /* a replace is a use too */
    assert_lru(ix, (struct index_entry *[]){ b, a, c }, 3);
    assert_ptr_equal(index_oldest_unpinned(ix), c);
    index_touch(ix, b); /* already the front: unchanged */
    assert_lru(ix, (struct index_entry *[]){ b, a, c }, 3);
    check_invariants(ix);
}

static void test_oldest_unpinned_skips_pinned_and_is_null_when_all_pinned(void **state)
{
    struct index *ix = *state;
    struct index_entry *a = put(ix, 1, 10), *b = put(ix, 2, 10), *c = put(ix, 3, 10);
    a->pins = 1;
    assert_ptr_equal(index_oldest_unpinned(ix), b);
    b->pins = 2;
    assert_ptr_equal(index_oldest_unpinned(ix), c);
    c->pins = 1;
    assert_null(index_oldest_unpinned(ix));
    b->pins = 0;
    assert_ptr_equal(index_oldest_unpinned(ix), b);
    a->pins = c->pins = 0;
    assert_ptr_equal(index_oldest_unpinned(ix), a);
}

/* ---------------------------------------------------- open-file cache */

static void test_fd_attach_puts_entry_on_open_list(void **state)
{
    struct index *ix = *state;
    struct index_entry *e = put(ix, 1, 10);
    put(ix, 2, 10);
    int fd = attach(ix, e);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(e->fd, fd);
    assert_string_equal(e->meta->key, "npm/some/key");
    assert_int_equal(e->st.st_ino, st.st_ino);
    assert_int_equal(e->st.st_dev, st.st_dev);
    assert_int_equal(ix->open_files, 1);
    assert_ptr_equal(index_fd_oldest_unpinned(ix), e);
    assert_false(fd_closed(fd));
    check_invariants(ix);
}

static void test_fd_oldest_unpinned_follows_use_and_skips_pinned(void **state)
{
    struct index *ix = *state;
    struct index_entry *a = put(ix, 1, 10), *b = put(ix, 2, 10), *c = put(ix, 3, 10);
    put(ix, 4, 10); /* never opened: never offered */
    attach(ix, a);
    attach(ix, b);
    attach(ix, c);
    assert_int_equal(ix->open_files, 3);
    assert_ptr_equal(index_fd_oldest_unpinned(ix), a);
    index_touch(ix, a);
    assert_ptr_equal(index_fd_oldest_unpinned(ix), b);
    b->pins = 1;
    assert_ptr_equal(index_fd_oldest_unpinned(ix), c);
    c->pins = 1;
    a->pins = 1;
    assert_null(index_fd_oldest_unpinned(ix));
    a->pins = b->pins = c->pins = 0;
    check_invariants(ix);
}

static void test_fd_release_closes_fd_and_frees_meta_and_body(void **state)
{
    struct index *ix = *state;
    struct index_entry *e = put(ix, 1, 10);
    int fd = attach(ix, e);
    e->body = sl_malloc(5); /* a small object's body, owned by the entry */
    memcpy(e->body, "hello", 5);
    index_fd_release(ix, e);
    assert_true(fd_closed(fd));
    assert_int_equal(e->fd, -1);
    assert_null(e->meta);
    assert_null(e->body);
    assert_int_equal(ix->open_files, 0);
    assert_null(index_fd_oldest_unpinned(ix));
    /* The entry itself stays committed. */
    assert_ptr_equal(find(ix, 1), e);
    assert_int_equal(ix->count, 1);
    assert_int_equal(ix->total_bytes, 10);
    check_invariants(ix);
    attach(ix, e); /* and can be opened again */
    assert_int_equal(ix->open_files, 1);
    check_invariants(ix);
}

static void test_remove_of_entry_with_open_file_closes_it(void **state)
{
    struct index *ix = *state;
    struct index_entry *a = put(ix, 1, 10), *b = put(ix, 2, 20);
    int fa = attach(ix, a);
    attach(ix, b);
    index_remove(ix, a);
    assert_true(fd_closed(fa));
    assert_int_equal(ix->open_files, 1);
    assert_ptr_equal(index_fd_oldest_unpinned(ix), b);
    assert_int_equal(ix->count, 1);
    assert_int_equal(ix->total_bytes, 20);
    check_invariants(ix);
}

static void test_replace_of_unpinned_entry_closes_its_stale_file(void **state)
{
    struct index *ix = *state;
    struct index_entry *e = put(ix, 1, 10);
    int fd = attach(ix, e);
    assert_ptr_equal(put(ix, 1, 99), e);
    assert_true(fd_closed(fd));
    assert_int_equal(e->fd, -1);
    assert_null(e->meta);
    assert_int_equal(ix->open_files, 0);
    assert_int_equal(ix->total_bytes, 99);
    check_invariants(ix);
}

static void test_replace_of_pinned_entry_keeps_its_open_file(void **state)
{
    struct index *ix = *state;
    struct index_entry *e = put(ix, 1, 10);
    int fd = attach(ix, e);
    e->pins = 1;
    assert_ptr_equal(put(ix, 1, 99), e);
    assert_false(fd_closed(fd));
    assert_int_equal(e->fd, fd);
    assert_non_null(e->meta);
    assert_int_equal(ix->open_files, 1);
    assert_int_equal(ix->total_bytes, 99);
    check_invariants(ix);
    e->pins = 0;
    index_fd_release(ix, e);
    assert_true(fd_closed(fd));
}

static void test_free_closes_open_files_and_frees_all_entries(void **state)
{
    SL_UNUSED(state);
    struct index ix;
    index_init(&ix);
    int fds[3];
    for (uint64_t n = 0; n < 10; n++) {
        struct index_entry *e = put(&ix, n, 10);
        if (n < 3)
            fds[n] = attach(&ix, e);
    }
    find(&ix, 0)->body = sl_malloc(8);
    index_free(&ix); /* leaks would be reported by ASan */
    for (int i = 0; i < 3; i++)
        assert_true(fd_closed(fds[i]));
    assert_null(ix.buckets);
    assert_int_equal(ix.count, 0);
    assert_int_equal(ix.total_bytes, 0);
    assert_int_equal(ix.open_files, 0);
}

/* ------------------------------------------------------------- purge */

static void test_forget_of_unpinned_entry_removes_it(void **state)
{
    struct index *ix = *state;
    put(ix, 1, 100);
    put(ix, 2, 50);
    index_forget(ix, find(ix, 1));
    assert_null(find(ix, 1));
    assert_int_equal(ix->count, 1);
    assert_int_equal(ix->total_bytes, 50);
    check_invariants(ix);
}

static void test_forget_of_pinned_entry_hides_it_until_removed(void **state)
{
    struct index *ix = *state;
    struct index_entry *e = put(ix, 1, 100);
    int fd = attach(ix, e);
    e->pins = 1;   /* a hit is being served from its open file */
    index_forget(ix, e);
    assert_true(e->purged);
    assert_null(find(ix, 1));          /* lookups no longer see it */
    assert_false(fd_closed(fd));       /* the response keeps reading */
    assert_null(index_oldest_unpinned(ix));
    struct index_entry *fresh = put(ix, 1, 70);   /* a new object for the key */
    assert_ptr_not_equal(fresh, e);
    assert_ptr_equal(find(ix, 1), fresh);
    assert_int_equal(ix->count, 2);
    assert_int_equal(ix->total_bytes, 170);
    check_invariants(ix);
    e->pins = 0;   /* the response ended (cache_release_hit) */
    index_remove(ix, e);
    assert_true(fd_closed(fd));
    assert_ptr_equal(find(ix, 1), fresh);
    assert_int_equal(ix->total_bytes, 70);
    check_invariants(ix);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_empty_index_finds_nothing),
        T(test_put_then_lookup_returns_entry_with_its_fields),
        T(test_put_same_hash_replaces_in_place_and_adjusts_total),
        T(test_remove_forgets_entry_and_subtracts_bytes),
        T(test_totals_equal_sum_of_entries_through_mixed_operations),
        T(test_many_entries_grow_table_and_all_stay_findable),
        T(test_put_and_touch_make_an_entry_most_recent),
        T(test_oldest_unpinned_skips_pinned_and_is_null_when_all_pinned),
        T(test_fd_attach_puts_entry_on_open_list),
        T(test_fd_oldest_unpinned_follows_use_and_skips_pinned),
        T(test_fd_release_closes_fd_and_frees_meta_and_body),
        T(test_remove_of_entry_with_open_file_closes_it),
        T(test_replace_of_unpinned_entry_closes_its_stale_file),
        T(test_replace_of_pinned_entry_keeps_its_open_file),
        T(test_forget_of_unpinned_entry_removes_it),
        T(test_forget_of_pinned_entry_hides_it_until_removed),
        cmocka_unit_test(test_free_closes_open_files_and_frees_all_entries),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
