/*
 * fault.h - the fault-injection seam of the storage layer (test builds only),
 * plus a delay for the HTTP verdict (an agent slow to decide).
 *
 * Compiled in only with -DSLUICE_TESTING (the build/asan variant the test
 * suites use); release builds have no seam and no admin endpoint for it.
 *
 * A fault spec is a string, set from the SLUICE_FAULT environment variable at
 * start or with `GET /fault?<spec>` on the admin listener:
 *
 *   kind=enospc|edquot|eio|short|hang [&after=BYTES] [&count=N] [&hang=DURATION]
 *   kind=none                         (clear)
 *   verdict_delay=DURATION            (with or without a kind)
 *   tier_read_delay=DURATION          (with or without a kind)
 *   tier_write_delay=DURATION         (with or without a kind)
 *   commit_delay=DURATION             (with or without a kind)
 *
 * `after`: the fault hits the first write that would take a temp file past
 * BYTES of body (default 0). `count`: how many writes fail before the seam
 * disarms itself (default unlimited). `short` makes the write crossing
 * `after` stop there and every later write make no progress; `hang` blocks the write for the
 * given duration (default 1h) before it succeeds.
 *
 * `verdict_delay`: the HTTP verdict endpoint (serve/verdict_http.c) answers
 * that much later, without blocking the loop: an agent slow to decide, for
 * the Lua edge's verdict timeout. Every spec replaces the whole previous one,
 * so a spec without it clears it.
 *
 * `tier_read_delay`: the disk tier (tier_disk.c) reports each object it
 * opened (its head) that much later, on its worker: an L2 that is slow or
 * unreachable, for the lookup deadline (l2_lookup_timeout), or a window
 * to change the file under an open read. `tier_write_delay`: it copies each
 * committed object that much later (a slow upload, for the upload queue).
 * Both are cleared by a spec without them.
 *
 * `commit_delay`: each commit of a temp file (store_temp_commit) waits
 * that much, on its worker, before its header and fsync: a slow disk's
 * commit window, between a fill's last byte and its object in the index.
 * Cleared by a spec without it.
 *
 * Thread-safe: workers call fault_before_write concurrently.
 */
#ifndef SLUICE_FAULT_H
#define SLUICE_FAULT_H

#include <stddef.h>
#include <stdint.h>

#ifdef SLUICE_TESTING
/* Parse and arm a spec. 0, or -1 with a message in err. */
int fault_configure(const char *spec, char *err, size_t errlen);

/*
 * Called before each temp-file write of `*len` bytes at body offset `off`.
 * Returns 0 to go ahead (possibly with *len reduced: a short write), or a
 * negative errno to fail the write. May block (hang).
 */
int fault_before_write(size_t *len, uint64_t off);

/* The verdict_delay of the spec in force, 0 for none (loop thread only). */
int64_t fault_verdict_delay_ms(void);

/* The tier_read_delay (tier_write_delay) of the spec in force, 0 for none (any thread). */
int64_t fault_tier_read_delay_ms(void);
int64_t fault_tier_write_delay_ms(void);

/* The commit_delay of the spec in force, 0 for none (any thread). */
int64_t fault_commit_delay_ms(void);

/* Sleep for ms milliseconds (a worker's hang). */
void fault_sleep_ms(int64_t ms);

/* Writes that the seam has failed, shortened or hung so far. */
uint64_t fault_hits(void);
#endif

#endif
