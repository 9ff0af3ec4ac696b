/*
 * rewrite.h - metadata bodies rewritten on their way out: the stored bytes
 * are the origin's (so a new public_url, or a revalidation, keeps working),
 * and every response that serves them - a hit or a fill - passes them
 * through the ecosystem's rewriter (eco.h), which points the links they
 * hold (npm tarballs, PyPI files) at the edge.
 *
 * A rewritten response has no Content-Length (the length changes): it is
 * chunked, takes no Range, and carries an ETag of its own (the stored one
 * with the public URL folded in), so a client's copy made for another
 * public_url never matches. A hit whose rewrite was kept in memory
 * (rwcache.h, from a tee of an earlier pipe) has the same bytes and ETag,
 * sent with a Content-Length.
 *
 * An rw_pipe sits between a response's raw body (memory or file pieces)
 * and the socket: it pulls raw pieces at most RW_READ_MAX bytes at a time
 * (file pieces are read on the loop thread, like a hit's header), feeds
 * them to the rewriter and hands out what came out. A rewriter error is a
 * body error: the transfer is aborted, never ended cleanly.
 */
#ifndef SLUICE_REWRITE_H
#define SLUICE_REWRITE_H

#include <stdbool.h>

#include "core/agent.h"
#include "http/http_server.h"
#include "route/canon.h"

#define RW_READ_MAX (64 * 1024)

/* Does a response with this status for this request get rewritten? */
bool rewrite_applies(const struct canon *cn, int status);

/* The ETag of the rewritten representation of stored `etag`. */
void rewrite_etag(const struct agent *a, const char *etag, char *out, size_t outlen);

/* A fill of a document that gets rewritten is checked before it is stored:
 * the ecosystem's rewriter, its output discarded, refuses what would fail
 * every later hit (fill_set_check). Nothing for other fills. */
struct fill;
void rewrite_check_fill(struct agent *a, struct fill *f, const struct canon *cn);

struct rw_pipe;

/* The raw body a pipe pulls from (a response's own body functions). */
struct rw_source {
    enum http_body_result (*body)(void *ctx, struct http_piece *out);
    void (*consumed)(void *ctx, size_t n);
    void *ctx;
};

struct rw_pipe *rw_pipe_new(struct agent *a, const struct canon *cn, const struct rw_source *src);
enum http_body_result rw_pipe_body(struct rw_pipe *p, struct http_piece *out);
void rw_pipe_consumed(struct rw_pipe *p, size_t n);
void rw_pipe_free(struct rw_pipe *p);

/* Keep a copy of the whole output while it is at most `max` bytes, and
 * record the digest notes the rewriter puts (digest_notes_record); call
 * before the first rw_pipe_body. */
void rw_pipe_tee(struct rw_pipe *p, size_t max);

/* The tee's output and notes records (ownership passes to the caller),
 * once the rewriter finished cleanly and the tee stayed within its limit;
 * false otherwise (a failed, unfinished or too large rewrite). Once. */
struct sl_buf;
bool rw_pipe_take_tee(struct rw_pipe *p, struct sl_buf *out, struct sl_buf *notes);

#endif
