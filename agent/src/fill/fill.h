/*
 * fill.h - one origin fetch per key, streamed to every waiting client, with
 * the cache writer as the least important reader.
 *
 * A fill owns one origin transfer and a spool: the body bytes received so
 * far, held in memory chunks and (while the cache writer is healthy) in the
 * temp file the writer is filling. Readers - the HTTP responses of the
 * leader and every follower - each keep their own position and read:
 *
 *   from memory, when their position is still in the in-memory window;
 *   from the spool file (sendfile), when they are behind it, which is only
 *   possible while the file holds those bytes (writer healthy or done).
 *
 * Memory is released as soon as no one needs it: a byte leaves memory once
 * every memory reader and the writer have it. When memory reaches
 * fill_buffer_size:
 *   - if the writer is what holds it (lagging), the writer is detached
 *     (reason "lag"): the origin is never paused for the cache;
 *   - otherwise slow clients hold it and the origin is paused (ordinary
 *     flow control) until they catch up.
 *
 * Writer failures (ENOSPC, EDQUOT, EIO, short write, deadline) detach the
 * writer: its temp file is unlinked at once, nothing is committed, and the
 * readers carry on from memory (and from the bytes already in the unlinked
 * file, which stays readable through its open descriptor).
 *
 * A fill without a usable file (writer detached, or nothing stored) keeps
 * its body from byte 0 - in memory, and in the failed writer's unlinked
 * file up to where it got - while it is in the table, so that followers
 * arriving later still attach: a full disk never turns one fetch into
 * several. Those bytes are the first memory given back when the fill's
 * window or spool_memory_max is reached (never a reason to pause an
 * origin); after that, a follower that cannot start at byte 0 starts a
 * new generation (fill_retire).
 *
 * Invariants (checked with SL_ASSERT):
 *   mem_start <= received;  written <= received;
 *   while the file is usable, mem_start <= file_end (a reader behind the
 *   memory window always finds its bytes in the file);
 *   a chunk handed to a worker is never freed before the write returns.
 */
#ifndef SLUICE_FILL_H
#define SLUICE_FILL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/agent.h"
#include "http/http_server.h"
#include "eco/eco.h"
#include "origin/origin.h"
#include "store/objfile.h"

struct fill;

struct fill_reader {
    struct fill *fill;
    uint64_t pos;
    void (*wake)(void *ctx);
    void *ctx;
    struct fill_reader *prev, *next;
};

enum fill_head_state {
    FILL_HEAD_WAIT,      /* queued for an origin slot, or waiting for the origin */
    FILL_HEAD_READY,     /* the origin's head is known */
    FILL_HEAD_FAILED,    /* the origin failed before its head */
    FILL_HEAD_BUSY,      /* the queue wait expired: 503 + Retry-After */
    FILL_HEAD_NOT_MODIFIED,  /* a revalidation: the origin said 304, the stored
                                copy is current again (serve it) */
};

/* What a fill asks the origin for, beyond the URL. */
struct fill_request {
    enum eco_class cls;          /* which statuses are stored: 200, and 404
                                    for metadata (negative caching) */
    const char *accept;          /* Accept header for a representation, or NULL */
    /* A revalidation of a stored copy: the validators it sends (either may
     * be absent), and what it does with the answer: 304 -> NOT_MODIFIED,
     * 5xx -> FAILED (the caller serves its stale copy). */
    bool revalidate;
    const char *if_none_match;   /* the stored origin ETag, or NULL */
    int64_t if_modified_since;   /* the stored origin Last-Modified, or 0 */
};

/* The running fill for this key, or NULL. */
struct fill *fill_find(struct agent *a, const uint8_t hash[KEY_HASH_LEN]);

/* Start a fill (the caller becomes its first reader with fill_attach).
 * The fill first takes an origin slot (slots.h): it may wait in the queue,
 * and NULL is returned when the origin's queue is full (answer 503). */
struct fill *fill_start(struct agent *a, const struct route *route, const char *key,
                        const uint8_t hash[KEY_HASH_LEN], const char *url, const struct fill_request *rq);

/* Start a fill whose bytes come from a storage tier (store/tier.h) rather
 * than the origin: no origin slot is taken (an L2 hit never waits behind
 * origin fetches); followers attach and the writer fills L1 as with any
 * fill. A tier miss or error fails the fill before its head (the caller
 * then goes to the origin). Never NULL. */
struct tier;
struct fill *fill_start_from_tier(struct agent *a, const struct route *route, const char *key,
                                  const uint8_t hash[KEY_HASH_LEN], struct tier *tier);

/*
 * Start a fill for a miss, looking in the storage tiers first (store/l2.h:
 * a->tiers[] in order), then at the origin: the lookup order after L1 and
 * the running fills. A tier read takes no origin slot; at most
 * l2_lookups_max run (beyond it the tiers are skipped, counted `busy`).
 * A tier that says miss, fails, or gives no head within l2_lookup_timeout
 * hands the SAME fill on to the next tier and finally to the origin
 * (taking an origin slot then): the readers see one fill and never the
 * tier's failure. A copy of metadata past its TTL, or a stored 404, is not
 * taken from a tier (counted `stale`). A read that fails after its head
 * aborts the readers and commits nothing, as any fill's source, and the
 * key's next lookup skips the tiers once (store/l2.h). A revalidation
 * (rq->revalidate) or an agent without tiers is fill_start.
 * NULL only as fill_start: no tiers tried and the origin's queue is full
 * (with tiers tried, a full queue later is FILL_HEAD_BUSY).
 */
struct fill *fill_start_lookup(struct agent *a, const struct route *route, const char *key,
                               const uint8_t hash[KEY_HASH_LEN], const char *url, const struct fill_request *rq);

/* The tier this fill's head and body came from, or NULL (the origin, or
 * not known yet). */
const char *fill_tier_name(const struct fill *f);

/* A check of the body before it is stored (a metadata document must parse
 * as its ecosystem publishes it): `check` is fed every byte of a 200 as it
 * arrives and finished once the body is complete, before the commit. A
 * refusal detaches the writer (reason "invalid"): nothing is stored, the
 * readers carry on (each judges the bytes itself). Ownership of `check`
 * passes to the fill, which closes it. Call right after fill_start, before
 * the loop runs again. A background refetch (refetch_after_lag) runs
 * without one. */
void fill_set_check(struct fill *f, const struct eco_rewriter_ops *ops, struct eco_rewriter *check);

/*
 * Integrity while filling (fill/verify.c): hash every byte of a 200 with
 * `algorithm` ("SHA1", "SHA256", "SHA512") as it arrives and compare the
 * complete body with `expect`. Readers never get the body's last byte
 * before the comparison. On a mismatch the fill fails
 * (ORIGIN_ERR_INTEGRITY): every reader's transfer is aborted (never a
 * clean end), nothing is committed, sluice_integrity_failures_total moves
 * and the key is logged with both digests; on a match the object records
 * the digest (objfile.h, "verified:"). expect NULL: the expected digest is
 * still coming (a sidecar being fetched): fill_verify_expect gives it, or
 * NULL for none after all (the body is then released unverified). Call
 * right after fill_start, before the loop runs again.
 */
void fill_verify(struct fill *f, const char *algorithm, const struct eco_digest *expect);
void fill_verify_expect(struct fill *f, const struct eco_digest *expect);
/* The expected digest is in the text of another fill's body, a sidecar
 * file such as Maven's ".sha1" or Go's checksum-database lookup: f reads
 * it as one more reader and, when it ends, passes what the artifact's
 * ecosystem reads in it (eco.h, sidecar_digest, for `artifact`: f's own
 * canonical request) to fill_verify_expect (NULL when it fails, is not a
 * 200, or has no such digest). After fill_verify(f, alg, NULL).
 * "H1"/"H1MOD" (Go's hash of a module zip's files, of a go.mod) is not a
 * stream hash: it is computed by a worker over the written body once it is
 * complete, the last byte held meanwhile; with no spool file to read (the
 * writer was detached) the body is released unverified. */
/* How much of a sidecar's body is read as its text (a digest file, a
 * checksum-database record: a few hundred bytes). */
#define FILL_SIDECAR_MAX 8192
struct canon;
void fill_verify_from(struct fill *f, struct fill *sidecar, const struct canon *artifact);

/* Take a fill out of the table: it goes on serving its readers, and the
 * next request for its key starts a new fill (a new generation). Used when
 * a running fill can no longer take a follower from byte 0 (its writer
 * failed and its early bytes are gone), so that late arrivals share one new
 * origin fetch instead of each making their own. */
void fill_retire(struct fill *f);

/* The object of this running fill was purged (the admin API): its
 * transfer goes on for the readers attached, but nothing is committed -
 * the writer is detached (reason "purged"), or, when the commit is already
 * under way, the committed object is unlinked and never indexed - and the
 * fill leaves the table, so the next request fetches afresh. */
void fill_purge(struct fill *f);

/* fill_purge every fill in the table whose key starts with `prefix`;
 * returns how many. */
int fill_purge_prefix(struct agent *a, const char *prefix);

/* What the admin API shows of a fill in the table (GET /debug/fills). The
 * strings belong to the fill: valid during the callback only. */
struct fill_info {
    const char *key, *route;
    const char *url;              /* the origin URL, "" for a tier's fill */
    uint64_t received;            /* body bytes received so far */
    int64_t content_length;       /* -1 when unknown */
    int readers;                  /* client responses attached */
    int64_t age_ms;
    bool queued;                  /* waiting for an origin slot */
    const char *writer;           /* none, opening, writing, committing, committed, detached */
    const char *writer_detached_why;   /* detached: the reason (metrics.h), else NULL */
};
void fill_each(struct agent *a, void (*fn)(void *ctx, const struct fill_info *fi), void *ctx);

/* Attach a reader at byte 0. False when the fill can no longer serve from
 * the start (its early bytes are gone and there is no file holding them:
 * its memory window was needed for later bytes, see above). */
bool fill_attach(struct fill *f, struct fill_reader *r, void (*wake)(void *ctx), void *ctx);
void fill_detach(struct fill_reader *r);

enum fill_head_state fill_head_state(const struct fill *f);
/* Valid once the head is READY. */
const struct obj_meta *fill_meta(const struct fill *f);
int64_t fill_content_length(const struct fill *f);   /* -1 when unknown */
int fill_retry_after(const struct fill *f);          /* FILL_HEAD_BUSY */
/* Is this fill a revalidation of a stored copy? */
bool fill_is_revalidation(const struct fill *f);
/* FILL_HEAD_FAILED: why, with the origin's detail (valid while attached). */
enum origin_result fill_failure(const struct fill *f, const char **detail);
bool fill_is_storing(const struct fill *f);            /* writer attached */
/* False once the origin marked the answer private to its request (no-store,
 * private, Vary: *, a Set-Cookie on the generic route): it is out of the
 * table (nobody joins it) and its followers fetch their own. */
bool fill_is_shared(const struct fill *f);
/* The whole body has arrived: the fill is in its commit window (writing
 * its last bytes, committing), and a follower attaching now is served from
 * the finished spool at once. */
bool fill_body_complete(const struct fill *f);

/* Next piece for a reader (see http_server.h for the result meanings). */
enum http_body_result fill_read(struct fill_reader *r, struct http_piece *out);
void fill_consumed(struct fill_reader *r, size_t n);

/* Shutdown: abort every fill (transfers closed, temp files removed). */
void fill_abort_all(struct agent *a);

/* The bytes of one spool chunk, header included: the slot size of the
 * agent's chunk pool (fill/chunk_pool.h). */
size_t spool_chunk_size(void);

#endif
