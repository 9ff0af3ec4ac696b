/*
 * common.h - small helpers every module of the agent uses.
 *
 * Invariant checks: SL_ASSERT() is always compiled in (like Varnish's
 * assert), because a cache that keeps running with a broken invariant can
 * serve wrong bytes, which is worse than a restart (HAProxy fails open while
 * the agent is down). Use it for things that must never happen whatever a
 * peer sends; peer input errors are handled as errors, never asserted.
 */
#ifndef SLUICE_COMMON_H
#define SLUICE_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define SL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define SL_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SL_MAX(a, b) ((a) > (b) ? (a) : (b))
#define SL_UNUSED(x) ((void)(x))

/* A string literal and its length, as two arguments: f(SL_LIT("ok\n")).
 * Only for literals (sizeof of a pointer would be wrong); never count by hand. */
#define SL_LIT(s) ("" s ""), (sizeof(s) - 1)
#define SL_LIT_LEN(s) (sizeof("" s "") - 1)

void sl_assert_fail(const char *expr, const char *file, int line, const char *func)
    __attribute__((noreturn));

#define SL_ASSERT(e) \
    ((e) ? (void)0 : sl_assert_fail(#e, __FILE__, __LINE__, __func__))

/*
 * Objects reached through a void * or a pointer to their embedded base
 * (struct http_response, worker job arguments, callback contexts) carry a
 * `magic` field set when they are made and cleared when they are freed;
 * every such cast checks it (as Varnish's CHECK_OBJ does), so a stale or
 * mistaken pointer stops the agent instead of serving the wrong bytes.
 */
#define SL_CHECK_OBJ(p, m) SL_ASSERT((p) != NULL && (p)->magic == (m))

/* Are the counted bytes p[0..len) exactly the C string s? */
static inline bool sl_bytes_eq(const char *p, size_t len, const char *s)
{
    size_t n = __builtin_strlen(s);
    return len == n && (n == 0 || __builtin_memcmp(p, s, n) == 0);
}

/* Do the counted bytes p[0..len) start (end) with the C string s? */
static inline bool sl_starts_with(const char *p, size_t len, const char *s)
{
    size_t n = __builtin_strlen(s);
    return len >= n && (n == 0 || __builtin_memcmp(p, s, n) == 0);
}

static inline bool sl_ends_with(const char *p, size_t len, const char *s)
{
    size_t n = __builtin_strlen(s);
    return len >= n && (n == 0 || __builtin_memcmp(p + len - n, s, n) == 0);
}

/* The first occurrence of `needle` in hay[0..n), ignoring ASCII case, or NULL. */
const char *sl_find_ci(const char *hay, size_t n, const char *needle);

/* Allocation that cannot fail: the agent treats out-of-memory as fatal. */
void *sl_malloc(size_t n);
void *sl_calloc(size_t n, size_t size);
void *sl_realloc(void *p, size_t n);
/*
 * Make `bytes` of heap resident now and have the allocator keep that much
 * after it is freed (glibc: blocks below 1 MiB from the heap, `bytes` kept
 * at its top when it shrinks). The buffers a burst allocates at once - a
 * libcurl transfer's receive buffer, a connection's input buffer - then
 * reuse warm pages instead of each taking a page fault on a fresh one.
 * Call before the agent serves anything. False when nothing was done:
 * bytes is 0, or the allocator is not glibc's (ASan, valgrind, musl).
 */
bool sl_heap_prefault(size_t bytes);
char *sl_strdup(const char *s);
char *sl_strndup(const char *s, size_t n);
/* A malloc'd formatted string (cannot fail). */
char *sl_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Copy a string into a fixed buffer; returns false (and leaves a truncated,
 * NUL-terminated copy) when it did not fit. */
bool sl_strlcpy(char *dst, const char *src, size_t dstlen);

/* Read a whole small text file (at most `max` bytes, no NUL byte) into a
 * NUL-terminated malloc'd buffer; NULL with "<path>: <why>" in err. */
char *sl_read_text_file(const char *path, size_t max, char *err, size_t errlen);

/* mkdir -p: path and every missing parent, made with `mode`. 0, or -1
 * with errno set. */
int sl_mkdir_p(const char *path, unsigned mode);

/* printf into an error buffer (err may be NULL or errlen 0: no-op). */
void sl_set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Monotonic clock in milliseconds and wall clock in seconds. */
int64_t sl_now_ms(void);
int64_t sl_wall_s(void);

#endif
