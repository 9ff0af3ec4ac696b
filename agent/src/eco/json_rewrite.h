/*
 * json_rewrite.h - a streaming, byte-preserving JSON rewriter: replaces the
 * string values found at given paths (download URLs inside npm and PyPI
 * metadata) and passes every other byte through untouched.
 *
 * The document arrives in pieces of any size (down to one byte) and is
 * never held whole: output is emitted as soon as it is known, lagging the
 * input by at most the token being read and the whitespace and punctuation
 * before it (plus, while a long token is being read, about as many bytes
 * again: see json_rw_held). No tree is built.
 *
 * Invariants:
 *  - every input byte is emitted once, unchanged and in order, except the
 *    bytes of a rewritten string token (opening quote to closing quote),
 *    which are replaced by the JSON encoding of the replacement: '"', the
 *    value with '"', '\' and control characters escaped ("\n", "\u001f"),
 *    '/' and non-ASCII bytes as they are, '"';
 *  - the output does not depend on how the input was cut into pieces;
 *  - the input must be one strict JSON document (RFC 8259 as yajl checks
 *    it: strings valid UTF-8, no comments, nothing after the value; yajl
 *    also takes '\v' and '\f' as whitespace, which pass through like the
 *    rest); anything else, or a token longer than JSON_RW_TOKEN_MAX, or
 *    nesting deeper than JSON_RW_DEPTH_MAX, is an error: -1, a line in
 *    json_rw_error, and -1 from every later call. An error may be reported
 *    by a later call than the feed that brought the bad byte (at the latest
 *    by json_rw_finish). After an error part of the output may have been
 *    emitted already; the caller must not use it as a complete document.
 */
#ifndef SLUICE_JSON_REWRITE_H
#define SLUICE_JSON_REWRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* One token (with the whitespace and punctuation before it) may be at most
 * this long; the rewriter and yajl each hold at most about this much. */
#define JSON_RW_TOKEN_MAX ((size_t)64 << 20)
/* Objects and arrays may nest this deep. */
#define JSON_RW_DEPTH_MAX 1024
/* json_rw_new accepts at most this many path patterns. */
#define JSON_RW_PATHS_MAX 64

typedef void (*rw_emit_fn)(void *ctx, const uint8_t *data, size_t len);

/* Called for each string value at a matching path. `in` is the DECODED
 * value (JSON escapes resolved, UTF-8, not NUL-terminated). Append the
 * replacement (decoded; the rewriter JSON-encodes it) to `out` and return
 * true, or return false to keep the original token's bytes exactly as they
 * were. `out` is empty on entry. */
typedef bool (*json_rw_string_fn)(void *ctx, const char *in, size_t len, struct sl_buf *out);

struct json_rw;

/*
 * paths: patterns of where string values are rewritten, e.g.
 * "versions.*.dist.tarball" (npm), "files[].url" (PEP 691), "urls[].url",
 * "releases.*[].url" (PyPI JSON API). Segments are separated by '.'; a
 * segment is a key (compared with the decoded key), "*" is any key, and
 * "[]" after a segment (or alone) means every element of the array at that
 * place ("[][]" an array of arrays). Patterns are matched from the
 * document's root; "" is the root value itself. Only string values are
 * rewritten; a pattern that names an object, array, number... matches
 * nothing. The patterns are copied.
 *
 * fn may be NULL (nothing is rewritten: a validating pass-through); emit
 * receives the output, in order, never with len 0.
 *
 * Returns NULL when a pattern does not parse (an empty segment, a key with
 * '[' or ']') or n_paths > JSON_RW_PATHS_MAX: a programming error.
 */
struct json_rw *json_rw_new(const char *const *paths, size_t n_paths, json_rw_string_fn fn,
                            void *fn_ctx, rw_emit_fn emit, void *emit_ctx);

/* 0, or -1 when the input is not valid JSON (or a limit was hit): see
 * json_rw_error. Calls fn and emit zero or more times before it returns;
 * neither may call back into this rewriter. */
int json_rw_feed(struct json_rw *rw, const uint8_t *data, size_t len);

/* 0 when the input was one complete JSON document; everything not yet
 * emitted is emitted (and fn called for what was not parsed yet) before it
 * returns 0. Feeding after finish is an error; a second finish returns
 * what the first did. */
int json_rw_finish(struct json_rw *rw);

/* For fn, while it runs: the index (in `paths`) of the pattern the value
 * matched (the first, when several do), and which container holds it:
 * json_rw_container(rw, 0) is the object or array the value is in, 1 its
 * parent, ... (0 past the root). Containers are numbered in document
 * order, from 1, so two values are in one object exactly when their
 * numbers are equal: what lets a caller pair a download URL with the
 * digest beside it. */
size_t json_rw_matched(const struct json_rw *rw);
uint64_t json_rw_container(const struct json_rw *rw, size_t up);

/* One line, for logs: "" while there is no error. */
const char *json_rw_error(const struct json_rw *rw);

/* Input bytes received but not emitted yet (the token being read and what
 * precedes it): what the bounded-holding tests watch. */
size_t json_rw_held(const struct json_rw *rw);

void json_rw_free(struct json_rw *rw);

#endif
