/*
 * digest_notes.h - what the metadata said an artifact's digest is, kept
 * until the artifact is filled: "integrity while filling" (fill.h,
 * fill_verify) needs the digest before the artifact's first byte, and the
 * metadata that publishes it (an npm packument's dist.integrity, a PyPI
 * link's #sha256=, a Cargo index line's cksum) went by earlier, through
 * the ecosystem's rewriter.
 *
 * A note is "<name> -> <algorithm, digest>", the name chosen by the
 * ecosystem (eco.h, digest_name): an artifact's cache key where the
 * metadata links to it, or a name both sides can form ("cargo:serde@1.0.0").
 *
 * The table is a fixed array (integrity_notes entries, set-associative, two
 * ways): a note costs one slot whatever the name's length, putting never
 * allocates, and when a set is full the older note gives way. A note that
 * was overwritten is simply not found: that artifact is stored unverified,
 * as one whose ecosystem publishes no digest (never refused). Rewriters
 * note again every time a client reads the metadata, which is just before
 * it asks for the artifacts.
 *
 * Invariants: a note holds the first DIGEST_NOTE_MAX bytes of the digest
 * (all of SHA-1 and SHA-256; half of SHA-512, 256 bits, still beyond any
 * collision); names are compared by their key_hash.
 */
#ifndef SLUICE_DIGEST_NOTES_H
#define SLUICE_DIGEST_NOTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "eco/eco.h"

#define DIGEST_NOTE_MAX 32

struct digest_notes;

/* A table of about `entries` notes (rounded up to an even number, at
 * least 2). Its memory is touched only as notes arrive. */
struct digest_notes *digest_notes_new(size_t entries);
void digest_notes_free(struct digest_notes *t);

/* Note d (its algorithm must be one of digest_algorithms) under name. */
void digest_notes_put(struct digest_notes *t, const char *name, size_t len, const struct eco_digest *d);

/* The same from the forms metadata publishes: hex ("SHA256", "ab12...")
 * and Subresource Integrity ("sha512-<base64>", several separated by
 * blanks: the strongest is kept). False, and nothing noted, when the text
 * is not a digest of that algorithm. */
bool digest_notes_put_hex(struct digest_notes *t, const char *name, size_t len, const char *algorithm,
                          const char *hex, size_t hex_len);
bool digest_notes_put_sri(struct digest_notes *t, const char *name, size_t len, const char *sri, size_t sri_len);

/* While `into` is set (NULL: stop), every note put is also appended to
 * it, as records digest_notes_replay puts again without hashing a name
 * (a rewritten body served from memory, serve/rwcache.h, notes what its
 * rewrite noted). Records are valid for this table only. */
void digest_notes_record(struct digest_notes *t, struct sl_buf *into);
void digest_notes_replay(struct digest_notes *t, const uint8_t *rec, size_t len);

/* The note for name: true and *out filled (out->len <= DIGEST_NOTE_MAX). */
bool digest_notes_get(const struct digest_notes *t, const char *name, size_t len, struct eco_digest *out);

/* The name an artifact's digest is noted under: its ecosystem's
 * digest_name, else its cache key. False when it has none. */
struct canon;
bool digest_notes_name(const struct canon *c, struct sl_buf *out);

/* Note d for the artifact a client gets at `path` on the edge (starting
 * with a route's prefix: what a rewritten link points at), under that
 * request's digest_notes_name, if the path is an artifact of its route. */
struct route_table;
void digest_notes_put_link(struct digest_notes *t, const struct route_table *rt, const char *path, size_t len,
                           const struct eco_digest *d);

/* Notes put and overwritten so far (metrics). */
uint64_t digest_notes_puts(const struct digest_notes *t);

/* The digest length of an algorithm name ("SHA1" 20, "SHA256" 32, "SHA512"
 * 64), 0 for one we do not verify. */
size_t digest_length(const char *algorithm);

/* Parse text as a digest: hex of the algorithm's length, or (sri) an SRI
 * list. True and *out filled. */
bool digest_parse_hex(const char *algorithm, const char *hex, size_t len, struct eco_digest *out);
bool digest_parse_sri(const char *sri, size_t len, struct eco_digest *out);

/* "sha256:<hex>" of d (the form objects record what they were verified
 * against in, objfile.h "verified:"); out must hold 8 + 2 * 64 + 1. */
void digest_format(const struct eco_digest *d, char *out, size_t outlen);

#endif
