/*
 * common.c - allocation, string and clock helpers shared by every module.
 */
#include "core/common.h"

#include <errno.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "core/log.h"

void sl_assert_fail(const char *expr, const char *file, int line, const char *func)
{
    fprintf(stderr, "sluice: assertion failed: %s (%s:%d %s)\n", expr, file, line, func);
    fflush(stderr);
    abort();
}

static void oom(size_t n)
{
    fprintf(stderr, "sluice: out of memory allocating %zu bytes\n", n);
    abort();
}

void *sl_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *sl_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom(n * size);
    return p;
}

void *sl_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

/* Requests this large or larger get a mapping of their own, which free
 * unmaps (and the next one faults in afresh); everything a request path
 * allocates is smaller. */
#define HEAP_MMAP_MIN (1024 * 1024)
#define HEAP_PIECE (256 * 1024)
#define PAGE 4096

bool sl_heap_prefault(size_t bytes)
{
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)
    if (bytes == 0 || bytes > INT32_MAX)
        return false;
    /* mallopt fails (0) where another allocator answers for glibc's (valgrind) */
    if (!mallopt(M_MMAP_THRESHOLD, HEAP_MMAP_MIN) || !mallopt(M_TOP_PAD, (int)bytes) ||
        !mallopt(M_TRIM_THRESHOLD, (int)bytes))
        return false;
    size_t n = (bytes + HEAP_PIECE - 1) / HEAP_PIECE;
    volatile char **piece = sl_calloc(n, sizeof(*piece));
    for (size_t i = 0; i < n; i++) {
        piece[i] = sl_malloc(HEAP_PIECE);
        for (size_t off = 0; off < HEAP_PIECE; off += PAGE)
            piece[i][off] = 0;   /* volatile: the compiler may not drop the touch */
    }
    for (size_t i = n; i-- > 0;)
        free((void *)piece[i]);   /* back into the heap's top, kept (M_TOP_PAD) */
    free(piece);
    return true;
#else
    SL_UNUSED(bytes);
    return false;
#endif
}

char *sl_strdup(const char *s)
{
    return sl_strndup(s, strlen(s));
}

char *sl_strndup(const char *s, size_t n)
{
    char *p = sl_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

const char *sl_find_ci(const char *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = 0; m <= n && i <= n - m; i++)
        if (strncasecmp(hay + i, needle, m) == 0)
            return hay + i;
    return NULL;
}

char *sl_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    SL_ASSERT(n >= 0);
    char *p = sl_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

bool sl_strlcpy(char *dst, const char *src, size_t dstlen)
{
    SL_ASSERT(dstlen > 0);
    size_t n = strlen(src);
    bool fits = n < dstlen;
    if (!fits)
        n = dstlen - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
    return fits;
}

int64_t sl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sl_wall_s(void)
{
    return (int64_t)time(NULL);
}

char *sl_read_text_file(const char *path, size_t max, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        sl_set_err(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = sl_malloc(max + 1);
    size_t n = fread(buf, 1, max + 1, f);
    bool failed = ferror(f);
    fclose(f);
    const char *why = failed ? "read error" : n > max ? "file too large" : memchr(buf, '\0', n) ? "contains a NUL byte" : NULL;
    if (why) {
        sl_set_err(err, errlen, "%s: %s", path, why);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

void sl_set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int sl_mkdir_p(const char *path, unsigned mode)
{
    char *buf = sl_strdup(path);
    int rc = 0;
    for (char *p = buf + 1; *p && rc == 0; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, (mode_t)mode) == -1 && errno != EEXIST)
            rc = -1;
        *p = '/';
    }
    if (rc == 0 && mkdir(buf, (mode_t)mode) == -1 && errno != EEXIST)
        rc = -1;
    int saved = errno;
    free(buf);
    errno = saved;
    return rc;
}
