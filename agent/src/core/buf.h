/*
 * buf.h - a growable byte buffer: what rewriters and other producers of
 * output of unknown length append to. Growth is by doubling; allocation
 * cannot fail (sl_realloc). data is NUL-terminated after len bytes (so a
 * buffer of text can be used as a C string), which the capacity allows for.
 */
#ifndef SLUICE_BUF_H
#define SLUICE_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/common.h"

struct sl_buf {
    uint8_t *data;     /* NULL until the first append */
    size_t len, cap;
};

static inline void sl_buf_reserve(struct sl_buf *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more + 1)
        cap *= 2;
    b->data = sl_realloc(b->data, cap);
    b->cap = cap;
}

static inline void sl_buf_append(struct sl_buf *b, const void *p, size_t n)
{
    sl_buf_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static inline void sl_buf_append_str(struct sl_buf *b, const char *s)
{
    sl_buf_append(b, s, strlen(s));
}

/* Forget the contents, keep the memory. */
static inline void sl_buf_clear(struct sl_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

static inline void sl_buf_free(struct sl_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

#endif
