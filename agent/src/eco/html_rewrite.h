/*
 * html_rewrite.h - a streaming HTML attribute rewriter that preserves
 * every byte it does not rewrite, and the character-reference helpers that
 * go with it.
 *
 * Made for PEP 503 "simple" index pages: the PyPI ecosystem rewrites the
 * href of every <a> so that pip downloads the files through the cache.
 *
 * A rewriter is fed a document in pieces of any size and emits, in order,
 * every input byte unchanged except the raw value bytes of each attribute
 * `attr` on a start tag `tag` (both matched ASCII case-insensitively),
 * which the callback may replace (the quotes around a value are kept; an
 * unquoted value is just its bytes). The output does not depend on how the
 * input was cut.
 *
 * Held back: only the value bytes of the matched attribute being read (at
 * most HTML_RW_VALUE_MAX); all other bytes are emitted before feed
 * returns. A longer value makes feed fail with an error, and the rewriter
 * stays failed; the output so far is then incomplete and must be dropped.
 * Malformed HTML is never an error: it is passed through as it came.
 */
#ifndef SLUICE_HTML_REWRITE_H
#define SLUICE_HTML_REWRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* Where a rewriter's output goes (shared with json_rewrite.h). */
#ifndef SLUICE_RW_EMIT_FN
#define SLUICE_RW_EMIT_FN
typedef void (*rw_emit_fn)(void *ctx, const uint8_t *data, size_t len);
#endif

/* The most value bytes a rewriter holds back (one attribute value). */
#define HTML_RW_VALUE_MAX (64 * 1024)

/* The longest tag or attribute name html_rw_new accepts. */
#define HTML_RW_NAME_MAX 31

/*
 * Called for each value of attribute `attr` on a start tag `tag`. `value`
 * is the attribute's raw bytes as written (character references not
 * decoded, without the quotes); `quote` is the quote character used ('"',
 * '\'' or 0 for an unquoted value), so the callback can escape for it.
 * Append the replacement raw bytes to `out` (empty on entry) and return
 * true, or return false to keep the original bytes.
 */
typedef bool (*html_rw_attr_fn)(void *ctx, const char *value, size_t len, char quote, struct sl_buf *out);

struct html_rw;

/* tag and attr: 1 to HTML_RW_NAME_MAX bytes, copied. */
struct html_rw *html_rw_new(const char *tag, const char *attr, html_rw_attr_fn fn, void *fn_ctx, rw_emit_fn emit,
                            void *emit_ctx);

/* 0, or -1 once a limit is hit (see html_rw_error); then every later call
 * returns -1 without emitting anything. */
int html_rw_feed(struct html_rw *rw, const uint8_t *data, size_t len);

/* The end of the document: emits everything still held (a value cut off by
 * the end is emitted as it came). 0, or -1 if the rewriter had failed. */
int html_rw_finish(struct html_rw *rw);

/* Why the rewriter failed, or NULL while it has not. */
const char *html_rw_error(const struct html_rw *rw);

/* How many input bytes are held back right now (for tests and metrics). */
size_t html_rw_held(const struct html_rw *rw);

void html_rw_free(struct html_rw *rw);

/*
 * Decode the character references of value[0..len) into out: &amp; &lt;
 * &gt; &quot; &apos; (the first four also without ';' when not followed by
 * a letter, digit or '=', as HTML does in attribute values), &#NN; and
 * &#xHH; (';' optional; 0, surrogates and values past U+10FFFF become
 * U+FFFD). Anything else is kept as written.
 */
void html_unescape(const char *value, size_t len, struct sl_buf *out);

/*
 * Escape value[0..len) for an attribute value quoted with `quote` ('"',
 * '\'' or 0) into out: & < > and the quote always; when unquoted also
 * " ' ` = and blanks, which would end or change an unquoted value.
 */
void html_escape_attr(const char *value, size_t len, char quote, struct sl_buf *out);

#endif
