/*
 * chunk_pool.h - the memory of the spool's chunks (fill_impl.h), kept for
 * reuse instead of returned to the C library after every fill.
 *
 * A burst of fills needs tens of MiB of spool at once (each origin may
 * send megabytes before any client drains them). Taken from malloc, that
 * memory is fresh pages every time the allocator has given it back to the
 * kernel: one page fault per 4 KiB, on the loop thread, while clients wait
 * for their first byte. The pool instead reserves one region of address
 * space as large as spool_memory_max at start (nothing resident yet), asks
 * for transparent huge pages on it (one fault per 2 MiB where the kernel
 * allows them), and hands out fixed-size slots from it, LIFO so the
 * warmest slot goes first. A slot once used stays resident: the agent's
 * spool memory is at most spool_memory_max plus what overflows it. Only
 * the start of the region (spool_memory_prefault) is made resident before
 * the first fill; the rest when the largest burst so far first needs it.
 *
 * Invariants: only the loop thread takes and gives back slots (workers
 * read chunk data, never free it); a slot is on the free list or handed
 * out, never both; a request the pool cannot serve (no region, all slots
 * out) comes from malloc and goes back to free - chunk_pool_put tells
 * them apart by address. A zeroed struct is a valid pool with no region
 * (unit tests' agents), so every chunk then comes from malloc.
 */
#ifndef SLUICE_CHUNK_POOL_H
#define SLUICE_CHUNK_POOL_H

#include <stddef.h>
#include <stdint.h>

struct chunk_pool {
    uint8_t *base;          /* the region's first slot; NULL: no region */
    size_t slot_size;       /* bytes per slot */
    size_t n_slots;         /* slots in the region */
    size_t n_fresh;         /* slots below this were handed out at least once */
    void *free_list;        /* slots given back, last first (link in the slot) */
    size_t in_use;          /* slots handed out now */
    void *map;              /* the mapping as mmap returned it (for munmap) */
    size_t map_len;
    uint64_t overflows;     /* requests served by malloc because all slots were out */
};

/* Reserve room for at least `bytes` of slots of `slot_size` each. Returns
 * 0, or -1 (errno) when the region could not be mapped: the pool then
 * has no region and every chunk comes from malloc. */
int chunk_pool_init(struct chunk_pool *p, size_t slot_size, uint64_t bytes);

/* Make the first `bytes` of the region (whole slots; all of it when it is
 * smaller) resident now: the first slots handed out then find their pages
 * faulted in and zeroed. Before any slot is handed out only. */
void chunk_pool_prefault(struct chunk_pool *p, uint64_t bytes);

/* A slot of slot_size bytes (a malloc'd block when none is free). Never
 * NULL (malloc failure aborts, as sl_malloc does). */
void *chunk_pool_get(struct chunk_pool *p, size_t size);

/* Give back what chunk_pool_get returned. */
void chunk_pool_put(struct chunk_pool *p, void *mem);

/* Unmap the region. Every slot must have been given back. */
void chunk_pool_free(struct chunk_pool *p);

#endif
