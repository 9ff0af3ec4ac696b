/*
 * eco.h - package ecosystems as data: one table of operations per
 * ecosystem, which everything else reads instead of testing route names.
 *
 * A route of the map (route.h) belongs to the ecosystem of the same name
 * ("generic", "npm", "pypi_files", ...). The ecosystem says:
 *
 *   - where its public origin is (the default of origin_<route>) and which
 *     hosts that origin may redirect to (CDNs);
 *   - how the path after the route prefix becomes canonical (canon.h; most
 *     use the shared rules, an ecosystem with its own encodings, such as
 *     npm's "@scope%2fname", wraps them);
 *   - which class a canonical path is in: an immutable artifact (cached
 *     forever, never revalidated), mutable metadata (cached with a TTL and
 *     revalidated), or never cached (passed through by HAProxy);
 *   - whether the query is part of the object (and so of its key and of
 *     its origin URL);
 *   - optionally, a streaming rewriter for metadata bodies (which also
 *     notes the digests the metadata publishes for its artifacts) and where
 *     an artifact's expected digest is found (digest_notes.h, or a sidecar
 *     file beside it).
 * How long metadata stays fresh is per route (route.h: route_freshness,
 * from the metadata_* settings), the same mechanism for every ecosystem.
 *
 * Adding an ecosystem is one file under eco/ that defines its `struct eco`,
 * one entry in eco.c's table (its extern line and its place in the array)
 * and one line in haproxy/routes.map (docs/architecture.md, "How to add an
 * ecosystem").
 *
 * Invariants: names are unique, [a-z0-9_]+ and at most
 * CONFIG_ROUTE_NAME_MAX - 1 bytes (they become route names, HAProxy
 * backend names and the first part of cache keys); an ecosystem without a
 * classify operation caches nothing and its requests are never
 * canonicalised by the agent (HAProxy passes them on).
 */
#ifndef SLUICE_ECO_H
#define SLUICE_ECO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

struct canon;

enum eco_class {
    ECO_IMMUTABLE,   /* an artifact that never changes once published */
    ECO_METADATA,    /* changes over time: TTL, revalidation, stale rules */
    ECO_NEVER,       /* writes, search, login...: always passed through */
};

/* The digest an artifact's bytes must have, when the ecosystem publishes
 * one: the algorithm's OpenSSL name ("SHA256", "SHA512", "SHA1") and the
 * raw digest. */
struct eco_digest {
    const char *algorithm;
    uint8_t value[64];
    size_t len;
};

/* Where an artifact's digest is published apart from it (eco.sidecar). */
struct eco_sidecar {
    const char *algorithm;   /* as in eco_digest, or "H1" / "H1MOD": Go's
                                hash of the files in a module zip, of a
                                go.mod (eco/gosum.h) */
    struct sl_buf path;      /* the file's path after the route prefix */
};

#ifndef SLUICE_RW_EMIT_FN
#define SLUICE_RW_EMIT_FN
/* Where a streaming rewriter puts its output. */
typedef void (*rw_emit_fn)(void *ctx, const uint8_t *data, size_t len);
#endif

/* What a rewriter knows about the document it rewrites: valid while its
 * open operation runs (copy what it keeps; routes and notes live as long
 * as the agent). */
struct route_table;
struct digest_notes;
struct eco_rewrite_ctx {
    const struct canon *c;              /* the document's canonical request */
    const char *page_url;               /* the URL it came from (relative links) */
    const struct route_table *routes;   /* the edge's routes (where links go) */
    const char *public_url;             /* the edge as clients reach it, no '/' */
    struct digest_notes *notes;         /* where published digests go, or NULL */
};

/*
 * A streaming rewriter of metadata bodies (for example the tarball URLs of
 * an npm packument): fed the stored bytes in pieces, it emits the bytes a
 * client gets. feed and finish return 0, or -1 when the input is not what
 * the ecosystem publishes (the response is then failed, never cut short).
 */
struct eco_rewriter;
struct eco_rewriter_ops {
    struct eco_rewriter *(*open)(const struct eco_rewrite_ctx *ctx, rw_emit_fn emit, void *emit_ctx);
    int (*feed)(struct eco_rewriter *rw, const uint8_t *data, size_t len);
    int (*finish)(struct eco_rewriter *rw);
    void (*close)(struct eco_rewriter *rw);
};

struct eco {
    const char *name;
    /* Public origin URL, or NULL: the route is off until origin_<name> is set. */
    const char *default_origin;
    /* Hosts (comma separated) the origin may redirect to, or NULL. */
    const char *default_redirect_hosts;
    /* The query is part of the object: kept in the key and the origin URL.
     * When false it is dropped from both. */
    bool key_query;
    /* Canonical path from the raw path after the prefix; NULL = canon_path. */
    int (*canon)(const char *rest, size_t rest_len, struct canon *out);
    /* Class of a canonical request; NULL = nothing of this route is cached. */
    enum eco_class (*classify)(const struct canon *c);
    /* Optional: a request for a name the ecosystem spells another way (PyPI's
     * "Demo_A" for "demo-a", PEP 503) is redirected (301) to its normal
     * form: append the normal path (after the route prefix) to `to` and
     * return true; false when the request is already in normal form. */
    bool (*redirect)(const struct canon *c, struct sl_buf *to);
    /* Optional: when the origin's body depends on the request's Accept
     * header (npm's abbreviated packument, PyPI's PEP 691 JSON), the
     * representation asked for: a short static name that becomes part of
     * the key ("|<name>"), or NULL for the default representation. */
    const char *(*variant)(const struct canon *c, const char *accept, size_t len);
    /* The Accept header sent to the origin for c (c->variant set, or NULL
     * for the default representation); NULL: none. */
    const char *(*variant_accept)(const struct canon *c);
    /* Every name variant() may return, NULL-terminated (NULL: none): a
     * purge of a document removes each representation of it. */
    const char *const *variants;
    /* Optional: the origin URL of a canonical request, for an origin whose
     * layout differs from its clients' paths; a function of the canonical
     * form alone (so key and URL still cannot disagree). NULL = the route's
     * origin followed by the canonical path and query (canon.h). Returns 0,
     * or -1 when it does not fit. */
    int (*origin_url)(const struct canon *c, char *out, size_t outlen);
    /* Optional: rewriter of metadata bodies, NULL = served as stored. */
    const struct eco_rewriter_ops *rewriter;
    /* Its metadata publishes its artifacts' digests (noted by its
     * rewriter, or in a sidecar): a new artifact fill is verified against
     * one while it streams (serve/integrity.h). */
    bool digests;
    /* Optional: the name under which an artifact's expected digest is
     * noted (digest_notes.h), when metadata cannot name it by its cache
     * key: append it to out and return true, or false when this path names
     * none. NULL: the artifact's cache key, which the metadata's rewriter
     * notes its links under (npm's tarballs, PyPI's files). */
    bool (*digest_name)(const struct canon *c, struct sl_buf *out);
    /* Optional: the artifact's digest is published in another file of the
     * route (Maven's "<path>.sha1", Go's checksum-database lookup): fill
     * *out and return true, or false when c has none (it is a checksum
     * file itself). A cold artifact's fill fetches the sidecar too (or
     * reads it from the cache) and verifies against it. */
    bool (*sidecar)(const struct canon *c, struct eco_sidecar *out);
    /* With sidecar: the digest artifact c must have, read from its
     * sidecar's body text[0..len) (a peer's bytes: parse strictly). */
    bool (*sidecar_digest)(const struct canon *c, const char *text, size_t len, struct eco_digest *out);
    /* Its clients never retry a 503 (Go): a fill that finds its origin's
     * queue full waits in it anyway, up to origin_queue_timeout. */
    bool wait_when_full;
};

/* The ecosystem named `name` (a route name), or NULL when none is. */
const struct eco *eco_find(const char *name, size_t len);

/* The ecosystem of a route name that is no ecosystem's: its requests pass
 * through, nothing is cached (a custom route is not assumed to be safe to
 * cache forever). */
extern const struct eco eco_unknown;

/* Every ecosystem, for the config defaults and the docs: eco_at(0) ...
 * eco_at(eco_count() - 1). */
size_t eco_count(void);
const struct eco *eco_at(size_t i);

#endif
