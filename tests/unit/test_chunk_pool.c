/*
 * test_chunk_pool.c - the spool's chunk memory (fill/chunk_pool.c).
 *
 * Proves: a pool without a region (a zeroed struct, or size 0) serves
 * every request from malloc and takes it back with free (the leak check
 * sees any that is not); a region serves distinct, aligned, writable slots
 * within itself until all are out, then overflows to malloc (counted);
 * given back, the last slot returned is the first handed out again (the
 * warm one) and slots are reused, not new memory; a request larger than a
 * slot comes from malloc; the prefault leaves the slots usable; free
 * unmaps after every slot came back. Under ASan a slot on the free list
 * is poisoned: test_put_slot_is_poisoned checks that with ASan's own API.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fill/chunk_pool.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

#define SLOT 1000                 /* rounded up to 1024 by the pool */

static bool inside(const struct chunk_pool *p, const void *m)
{
    const uint8_t *b = m;
    return b >= p->base && b < p->base + p->n_slots * p->slot_size;
}

static void test_no_region_is_malloc(void **state)
{
    (void)state;
    struct chunk_pool p;
    memset(&p, 0, sizeof(p));
    void *a = chunk_pool_get(&p, 4096);
    memset(a, 1, 4096);
    chunk_pool_put(&p, a);
    assert_int_equal(chunk_pool_init(&p, SLOT, 0), 0);
    assert_null(p.base);
    void *b = chunk_pool_get(&p, SLOT);
    memset(b, 2, SLOT);
    chunk_pool_put(&p, b);
    assert_int_equal(p.in_use, 0);
    chunk_pool_free(&p);
}

static void test_slots_then_overflow(void **state)
{
    (void)state;
    struct chunk_pool p;
    assert_int_equal(chunk_pool_init(&p, SLOT, 4 * 1024), 0);
    assert_non_null(p.base);
    assert_int_equal(p.slot_size, 1024);
    assert_int_equal(p.n_slots, 4);
    void *s[5];
    for (int i = 0; i < 4; i++) {
        s[i] = chunk_pool_get(&p, SLOT);
        assert_true(inside(&p, s[i]));
        assert_int_equal(((uint8_t *)s[i] - p.base) % 1024, 0);
        memset(s[i], i, SLOT);
        for (int j = 0; j < i; j++)
            assert_ptr_not_equal(s[i], s[j]);
    }
    assert_int_equal(p.in_use, 4);
    s[4] = chunk_pool_get(&p, SLOT);       /* all out: malloc */
    assert_false(inside(&p, s[4]));
    assert_int_equal(p.overflows, 1);
    memset(s[4], 4, SLOT);
    for (int i = 0; i < 4; i++)             /* nobody wrote over a neighbour */
        assert_int_equal(((uint8_t *)s[i])[SLOT - 1], i);
    for (int i = 0; i < 5; i++)
        chunk_pool_put(&p, s[i]);
    assert_int_equal(p.in_use, 0);
    chunk_pool_free(&p);
    assert_null(p.base);
}

static void test_last_returned_first_reused(void **state)
{
    (void)state;
    struct chunk_pool p;
    assert_int_equal(chunk_pool_init(&p, SLOT, 8 * 1024), 0);
    void *a = chunk_pool_get(&p, SLOT);
    void *b = chunk_pool_get(&p, SLOT);
    chunk_pool_put(&p, a);
    chunk_pool_put(&p, b);
    assert_ptr_equal(chunk_pool_get(&p, SLOT), b);
    assert_ptr_equal(chunk_pool_get(&p, SLOT), a);
    assert_int_equal(p.n_fresh, 2);         /* reuse, no new slot touched */
    for (int round = 0; round < 100; round++) {
        void *c = chunk_pool_get(&p, SLOT);
        assert_true(inside(&p, c));
        chunk_pool_put(&p, c);
    }
    assert_int_equal(p.n_fresh, 3);
    chunk_pool_put(&p, a);
    chunk_pool_put(&p, b);
    chunk_pool_free(&p);
}

static void test_larger_than_slot_is_malloc(void **state)
{
    (void)state;
    struct chunk_pool p;
    assert_int_equal(chunk_pool_init(&p, SLOT, 4 * 1024), 0);
    void *big = chunk_pool_get(&p, 2048);
    assert_false(inside(&p, big));
    memset(big, 7, 2048);
    assert_int_equal(p.in_use, 0);
    assert_int_equal(p.overflows, 0);       /* not an overflow: never a slot */
    chunk_pool_put(&p, big);
    chunk_pool_free(&p);
}

static void test_prefault_more_than_the_region_or_none(void **state)
{
    (void)state;
    struct chunk_pool p;
    assert_int_equal(chunk_pool_init(&p, 4096, 4 * 4096), 0);
    chunk_pool_prefault(&p, 0);                     /* nothing: a no-op */
    chunk_pool_free(&p);
    assert_int_equal(chunk_pool_init(&p, 4096, 4 * 4096), 0);
    chunk_pool_prefault(&p, UINT64_MAX);            /* all of it, no further */
    void *s[4];
    for (int i = 0; i < 4; i++) {
        s[i] = chunk_pool_get(&p, 4096);
        assert_true(inside(&p, s[i]));
        memset(s[i], i, 4096);
    }
    for (int i = 0; i < 4; i++)
        chunk_pool_put(&p, s[i]);
    assert_int_equal(p.overflows, 0);
    chunk_pool_free(&p);
}

static void test_prefault_then_use(void **state)
{
    (void)state;
    struct chunk_pool p;
    assert_int_equal(chunk_pool_init(&p, 256 * 1024 + 64, 4 * 1024 * 1024), 0);
    chunk_pool_prefault(&p, 1024 * 1024);   /* the first slots only */
    size_t n = p.n_slots;
    void **s = calloc(n, sizeof(*s));
    for (size_t i = 0; i < n; i++) {
        s[i] = chunk_pool_get(&p, 256 * 1024 + 64);
        assert_true(inside(&p, s[i]));
        memset(s[i], (int)i, 256 * 1024 + 64);
    }
    for (size_t i = 0; i < n; i++)
        chunk_pool_put(&p, s[i]);
    free(s);
    chunk_pool_free(&p);
}

static void test_put_slot_is_poisoned(void **state)
{
    (void)state;
#if defined(__SANITIZE_ADDRESS__)
    struct chunk_pool p;
    assert_int_equal(chunk_pool_init(&p, SLOT, 4 * 1024), 0);
    uint8_t *a = chunk_pool_get(&p, SLOT);
    assert_false(__asan_address_is_poisoned(a));
    assert_false(__asan_address_is_poisoned(a + SLOT - 1));
    chunk_pool_put(&p, a);
    assert_true(__asan_address_is_poisoned(a));
    assert_true(__asan_address_is_poisoned(a + SLOT - 1));
    assert_true(__asan_address_is_poisoned(p.base + 3 * 1024));   /* never handed out */
    chunk_pool_free(&p);
#else
    skip();
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_region_is_malloc),
        cmocka_unit_test(test_slots_then_overflow),
        cmocka_unit_test(test_last_returned_first_reused),
        cmocka_unit_test(test_larger_than_slot_is_malloc),
        cmocka_unit_test(test_prefault_then_use),
        cmocka_unit_test(test_prefault_more_than_the_region_or_none),
        cmocka_unit_test(test_put_slot_is_poisoned),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
