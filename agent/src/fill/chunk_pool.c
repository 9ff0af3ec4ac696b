/*
 * chunk_pool.c - reusable memory for spool chunks (see chunk_pool.h).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/common.h"
#include "fill/chunk_pool.h"

/*
 * A slot on the free list is no one's memory: the sanitizer builds (ASan)
 * and valgrind's memcheck are told so, and report any access to it as
 * they would a use after free(). The hooks are no-ops elsewhere. The one
 * word the pool itself keeps in a free slot, the link to the next, is made
 * accessible (and, for valgrind, defined: it was written before the slot
 * was closed) just long enough to read it.
 */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POOL_NOACCESS(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define POOL_UNDEFINED(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#define POOL_DEFINED(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#elif defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define POOL_NOACCESS(p, n) (void)VALGRIND_MAKE_MEM_NOACCESS(p, n)
#define POOL_UNDEFINED(p, n) (void)VALGRIND_MAKE_MEM_UNDEFINED(p, n)
#define POOL_DEFINED(p, n) (void)VALGRIND_MAKE_MEM_DEFINED(p, n)
#endif
#endif
#ifndef POOL_NOACCESS
#define POOL_NOACCESS(p, n) ((void)(p), (void)(n))
#define POOL_UNDEFINED(p, n) ((void)(p), (void)(n))
#define POOL_DEFINED(p, n) ((void)(p), (void)(n))
#endif

#define HUGE_PAGE (2u * 1024 * 1024)

static size_t round_up(size_t n, size_t to)
{
    return (n + to - 1) / to * to;
}

int chunk_pool_init(struct chunk_pool *p, size_t slot_size, uint64_t bytes)
{
    memset(p, 0, sizeof(*p));
    SL_ASSERT(slot_size >= sizeof(void *));
    p->slot_size = round_up(slot_size, 64);
    p->n_slots = (size_t)((bytes + p->slot_size - 1) / p->slot_size);
    if (p->n_slots == 0)
        return 0;
    /* One huge page more, to start the slots on a huge page boundary. */
    size_t len = round_up(p->n_slots * p->slot_size, HUGE_PAGE) + HUGE_PAGE;
    void *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (map == MAP_FAILED) {
        p->n_slots = 0;
        return -1;
    }
    p->map = map;
    p->map_len = len;
    p->base = (uint8_t *)round_up((size_t)map, HUGE_PAGE);
    POOL_NOACCESS(p->base, p->n_slots * p->slot_size);
#ifdef MADV_HUGEPAGE
    /* Advice only: without THP (or with it off) the pool still works. */
    (void)madvise(p->base, round_up(p->n_slots * p->slot_size, HUGE_PAGE), MADV_HUGEPAGE);
#endif
    return 0;
}

void chunk_pool_prefault(struct chunk_pool *p, uint64_t bytes)
{
    SL_ASSERT(p->n_fresh == 0);
    if (!p->base || bytes == 0)
        return;
    /* Fresh slots are handed out from the start of the region. */
    size_t len = p->n_slots * p->slot_size;
    if (bytes < len)
        len = round_up((size_t)bytes, p->slot_size);
#ifdef MADV_POPULATE_WRITE
    if (madvise(p->base, len, MADV_POPULATE_WRITE) == 0)
        return;
#endif
    /* Older kernels: write each page once (the region is unused, zero). */
    POOL_UNDEFINED(p->base, len);
    for (size_t off = 0; off < len; off += 4096)
        p->base[off] = 0;
    POOL_NOACCESS(p->base, len);
}

static bool in_region(const struct chunk_pool *p, const void *mem)
{
    const uint8_t *m = mem;
    return p->base && m >= p->base && m < p->base + p->n_slots * p->slot_size;
}

void *chunk_pool_get(struct chunk_pool *p, size_t size)
{
    if (!p->base || size > p->slot_size)
        return sl_malloc(size);
    void *slot = p->free_list;
    if (slot) {
        POOL_DEFINED(slot, sizeof(void *));
        p->free_list = *(void **)slot;
    } else if (p->n_fresh < p->n_slots) {
        slot = p->base + p->n_fresh++ * p->slot_size;
    } else {
        p->overflows++;
        return sl_malloc(size);
    }
    POOL_UNDEFINED(slot, p->slot_size);
    p->in_use++;
    return slot;
}

void chunk_pool_put(struct chunk_pool *p, void *mem)
{
    if (!in_region(p, mem)) {
        free(mem);
        return;
    }
    SL_ASSERT(((uint8_t *)mem - p->base) % p->slot_size == 0);
    SL_ASSERT(p->in_use > 0);
    p->in_use--;
    *(void **)mem = p->free_list;
    p->free_list = mem;
    POOL_NOACCESS(mem, p->slot_size);
}

void chunk_pool_free(struct chunk_pool *p)
{
    SL_ASSERT(p->in_use == 0);
    if (p->map) {
        POOL_UNDEFINED(p->base, p->n_slots * p->slot_size);
        munmap(p->map, p->map_len);
    }
    memset(p, 0, sizeof(*p));
}
