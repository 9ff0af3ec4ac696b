/*
 * fuzz_origin_head.c - libFuzzer target for an origin response's header
 * block (origin/origin_head.c), the bytes a hostile or broken origin
 * chooses.
 *
 * Input layout: the whole input is a response head; it is cut at each
 * '\n' into the lines libcurl would hand over one by one (with their CRLF).
 * Besides "no crash, no UB, no leak", it checks origin_head.h's
 * invariants after every line, and that a block judged unambiguous has at
 * most one length and no Transfer-Encoding beside a Content-Length.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "origin/origin_head.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond)
        abort();
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static void check_invariants(const struct origin_head *h)
{
    check(h->hdrs.n >= 0 && h->hdrs.n <= ORIGIN_MAX_HEADERS);
    check(h->status == 0 || (h->status >= 100 && h->status <= 999));
    check(h->framing.cl >= -1);
    for (int i = 0; i < h->hdrs.n; i++) {
        const char *name = h->hdrs.h[i].name, *v = h->hdrs.h[i].value;
        size_t vl = strlen(v);
        check(name[0] != '\0' && strchr(name, ':') == NULL);
        check(vl == 0 || (!is_blank(v[0]) && !is_blank(v[vl - 1])));
    }
}

static void check_end(const struct origin_head *h)
{
    enum origin_bad bad = origin_head_framing(h);
    check(bad >= ORIGIN_BAD_NONE && bad < ORIGIN_BAD_REASONS);
    if (bad == ORIGIN_BAD_NONE) {
        check(!h->framing.cl_invalid && !h->framing.cl_conflict && !h->framing.bad_field);
        check(!(h->framing.te && h->framing.cl >= 0));
        check(h->hdrs.content_length == h->framing.cl);
    }
    const char *loc = origin_head_location(h);
    check(loc == NULL || h->saw_location);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct origin_head h;
    origin_head_init(&h);
    size_t at = 0;
    while (at < size) {
        const uint8_t *nl = memchr(data + at, '\n', size - at);
        size_t len = nl ? (size_t)(nl - (data + at)) + 1 : size - at;
        /* libcurl's lines are not NUL-terminated: give an exact copy so
         * ASan sees any read past the end. */
        char *line = malloc(len ? len : 1);
        check(line != NULL);
        memcpy(line, data + at, len);
        if (origin_head_line(&h, line, len) == ORIGIN_HEAD_END)
            check_end(&h);
        free(line);
        check_invariants(&h);
        at += len;
    }
    origin_head_free(&h);
    return 0;
}
