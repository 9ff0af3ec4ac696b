/*
 * origin_head.h - one origin response's header block, read line by line as
 * libcurl hands the lines over (status line, header lines, the blank line
 * that ends the block).
 *
 * It keeps the status, the first ORIGIN_MAX_HEADERS headers (what a fill
 * may store), what the cache must know of every header however many there
 * are (Cache-Control no-store/private, Vary: *, Set-Cookie: padding cannot
 * hide them), and the block's framing (RFC 9112 section 6): the
 * Content-Length, whether a Transfer-Encoding came with it, and whether the
 * lengths were ambiguous, or any line was not a field at all (no colon, a
 * name that is not a token, a NUL, CR or LF inside). origin.c judges the block with
 * origin_head_framing before reporting it.
 *
 * Pure: no I/O and nothing global, so fuzz_origin_head can feed it any
 * bytes. Invariants after every line: hdrs.n <= ORIGIN_MAX_HEADERS; every
 * kept name is non-empty and holds no ':'; no kept value starts or ends
 * with a blank; status is 0 or 100..999; framing.cl is -1 or >= 0.
 */
#ifndef SLUICE_ORIGIN_HEAD_H
#define SLUICE_ORIGIN_HEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "origin/origin.h"

/* What a header block says about its body's length. */
struct origin_framing {
    int64_t cl;          /* the Content-Length, -1 when none */
    bool te;             /* a Transfer-Encoding was sent */
    bool cl_conflict;    /* Content-Lengths that differ */
    bool cl_invalid;     /* a Content-Length that is not a number */
    bool bad_field;      /* a line that is not a field (nothing of it is kept) */
};

struct origin_head {
    struct origin_headers hdrs;
    struct origin_framing framing;
    int status;           /* of the last status line; 0 before one or when malformed */
    bool saw_location;    /* a Location header came (a redirect to follow?) */
};

enum origin_head_line {
    ORIGIN_HEAD_MORE,     /* a status or header line: the block goes on */
    ORIGIN_HEAD_END,      /* the blank line: the block is complete */
};

/* An empty block (status 0, no headers, no length). */
void origin_head_init(struct origin_head *h);
/* Frees the kept headers and empties the block (a new block begins). */
void origin_head_free(struct origin_head *h);
/* One line as libcurl gives it (with or without its CRLF). A status line
 * ("HTTP/...") starts a new block: what the previous one kept is freed. */
enum origin_head_line origin_head_line(struct origin_head *h, const char *line, size_t len);
/* ORIGIN_BAD_NONE, or why the block's body length is ambiguous. */
enum origin_bad origin_head_framing(const struct origin_head *h);
/* The kept Location value, or NULL. */
const char *origin_head_location(const struct origin_head *h);

#endif
