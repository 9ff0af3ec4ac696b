/*
 * origin_head.c - an origin response's header block, line by line (see
 * origin_head.h).
 */
#include "origin/origin_head.h"

#include <string.h>
#include <strings.h>

#include "core/common.h"
#include "http/httpx.h"

void origin_head_init(struct origin_head *h)
{
    *h = (struct origin_head){ .framing = { .cl = -1 } };
    h->hdrs.content_length = -1;
}

void origin_head_free(struct origin_head *h)
{
    for (int i = 0; i < h->hdrs.n; i++) {
        free(h->hdrs.h[i].name);
        free(h->hdrs.h[i].value);
    }
    origin_head_init(h);
}

/* "HTTP/1.1 200 OK": the three digits after the first space (then a space
 * or the end), else 0. */
static int parse_status(const char *line, size_t len)
{
    const char *sp = memchr(line, ' ', len);
    size_t rest = sp ? (size_t)(line + len - sp) : 0;
    if (rest < 4 || (rest > 4 && sp[4] != ' '))
        return 0;
    int st = 0;
    for (int i = 1; i <= 3; i++) {
        if (sp[i] < '0' || sp[i] > '9')
            return 0;
        st = st * 10 + (sp[i] - '0');
    }
    return st >= 100 ? st : 0;
}

/* A Content-Length field: its lengths must all be equal, and equal to any
 * seen before in the block. */
static void note_content_length(struct origin_framing *fr, const char *v, size_t n)
{
    int64_t cl = httpx_content_length(v, n);
    if (cl == HTTPX_CL_INVALID)
        fr->cl_invalid = true;
    else if (cl == HTTPX_CL_CONFLICT || (fr->cl >= 0 && fr->cl != cl))
        fr->cl_conflict = true;
    else
        fr->cl = cl;
}

/* What the origin says about sharing the answer (RFC 9111 section 3). */
static void note_sharing(struct origin_headers *h, const char *name, size_t nlen, const char *v, size_t vlen)
{
    if (nlen == SL_LIT_LEN("cache-control") && strncasecmp(name, SL_LIT("cache-control")) == 0) {
        h->no_store = h->no_store || httpx_list_has(v, vlen, "no-store", false);
        h->private_ = h->private_ || httpx_list_has(v, vlen, "private", true);
    } else if (nlen == SL_LIT_LEN("vary") && strncasecmp(name, SL_LIT("vary")) == 0) {
        h->vary_star = h->vary_star || httpx_list_has(v, vlen, "*", false);
    } else if (nlen == SL_LIT_LEN("set-cookie") && strncasecmp(name, SL_LIT("set-cookie")) == 0) {
        h->set_cookies++;
    }
}

static bool is_name(const char *name, size_t nlen, const char *lit, size_t litlen)
{
    return nlen == litlen && strncasecmp(name, lit, litlen) == 0;
}

static void add_header(struct origin_head *h, const char *line, size_t len)
{
    const char *colon = memchr(line, ':', len);
    size_t nlen = colon ? (size_t)(colon - line) : 0;
    if (!colon || !httpx_header_name_ok(line, nlen) || memchr(line, '\0', len) || memchr(line, '\r', len) ||
        memchr(line, '\n', len)) {
        h->framing.bad_field = true;
        return;
    }
    const char *v = colon + 1;
    const char *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t vlen = (size_t)(end - v);
    if (is_name(line, nlen, SL_LIT("location")))
        h->saw_location = true;
    if (is_name(line, nlen, SL_LIT("content-length")))
        note_content_length(&h->framing, v, vlen);
    if (is_name(line, nlen, SL_LIT("transfer-encoding")))
        h->framing.te = true;
    note_sharing(&h->hdrs, line, nlen, v, vlen);
    if (h->hdrs.n < ORIGIN_MAX_HEADERS) {
        h->hdrs.h[h->hdrs.n].name = sl_strndup(line, nlen);
        h->hdrs.h[h->hdrs.n].value = sl_strndup(v, vlen);
        h->hdrs.n++;
    }
}

enum origin_head_line origin_head_line(struct origin_head *h, const char *line, size_t len)
{
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    if (len >= SL_LIT_LEN("HTTP/") && strncmp(line, SL_LIT("HTTP/")) == 0) {
        origin_head_free(h);
        h->status = parse_status(line, len);
        return ORIGIN_HEAD_MORE;
    }
    if (len == 0) {
        h->hdrs.content_length = h->framing.cl;
        return ORIGIN_HEAD_END;
    }
    add_header(h, line, len);
    return ORIGIN_HEAD_MORE;
}

enum origin_bad origin_head_framing(const struct origin_head *h)
{
    const struct origin_framing *fr = &h->framing;
    if (fr->bad_field)
        return ORIGIN_BAD_FIELD;
    if (fr->cl_invalid)
        return ORIGIN_BAD_CL_INVALID;
    if (fr->cl_conflict)
        return ORIGIN_BAD_CL_CONFLICT;
    if (fr->te && fr->cl >= 0)
        return ORIGIN_BAD_CL_TE;
    return ORIGIN_BAD_NONE;
}

const char *origin_head_location(const struct origin_head *h)
{
    for (int i = 0; i < h->hdrs.n; i++)
        if (strcasecmp(h->hdrs.h[i].name, "location") == 0)
            return h->hdrs.h[i].value;
    return NULL;
}
