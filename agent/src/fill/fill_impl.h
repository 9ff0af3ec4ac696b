/*
 * fill_impl.h - the inside of a fill, shared by the files that make
 * it up and by nothing else (fill.h is the interface):
 *
 *   fill.c    the table, lifetime, the source (origin or tier) and the API
 *   spool.c   memory chunks, the spool file, budgets, pausing, readers' reads
 *   writer.c  the cache writer: temp file, writes, deadline, commit
 *   verify.c  integrity: the body hashed as it arrives, held one byte short
 *             until it matches its published digest
 *   fill_log.c the line every fill ends with (fill_log.h)
 *
 * The invariants of fill.h hold between any two loop callbacks; the
 * functions below may be called from any of these files, on the loop
 * thread only.
 */
#ifndef SLUICE_FILL_IMPL_H
#define SLUICE_FILL_IMPL_H

#include <sys/uio.h>

#include "fill/fill.h"
#include "origin/origin.h"
#include "origin/slots.h"
#include "store/store.h"
#include "store/tier.h"

#define FILL_MAGIC 0x46494c4cu   /* "FILL" */
#define CHUNK_SIZE (256 * 1024)
/* One write job takes everything received and not yet written, up to this:
 * the writer keeps pace with a fast origin by writing large batches. */
#define WRITE_MAX (16 * 1024 * 1024)

/*
 * A spool chunk. The spool list holds one reference; a write job in flight
 * holds one on each chunk it writes, so a write that hangs keeps only its
 * own chunks alive and never stops the spool from releasing memory (the
 * loop thread alone touches refs; the worker only reads data).
 */
struct chunk {
    struct chunk *next;
    struct chunk_pool *pool;       /* where its memory goes back to */
    uint64_t off;
    size_t len;
    size_t cap;
    int refs;
    uint8_t data[];
};

/* The spool file as readers see it: a dup of the writer's temp file, kept
 * open (and readable even once unlinked) as long as the fill lives. */
struct spool_file {
    int fd;
};

enum writer_state { W_NONE, W_OPENING, W_ACTIVE, W_COMMITTING, W_COMMITTED, W_FAILED };

/* Where a fill's bytes come from while they come: an origin transfer
 * (origin.h) or a tier read (tier.h). Both pause and resume the same way. */
struct fill_source {
    void *h;                       /* NULL: nothing running */
    void (*resume)(void *h);
    void (*abort)(void *h);
};

struct fill {
    unsigned magic;
    struct agent *a;
    uint8_t hash[KEY_HASH_LEN];
    char *key;
    char *url;                   /* the origin URL ("" for a tier's fill) */
    struct fill_request rq;      /* its strings owned by the fill */
    char *headers[5];            /* the extra request headers, NULL-terminated */
    const struct route *route;
    int refs;
    bool in_table;
    struct fill *table_next;
    int64_t started_wall;
    bool ran;                    /* it was in the table: it ends with a log line */
    int64_t start_ms, ended_ms;  /* sl_now_ms(): started; source over (0: not yet) */
    double body_end_time;        /* ev_time() when the source ended: the commit window's start */
    int attached;                /* readers that ever attached */
    bool aborted;                /* the source was cut: no client left, shutdown */

    /* origin slot: queued for one, or holding one while the transfer runs */
    struct slot_wait wait;
    bool queued;
    bool has_slot;
    int64_t slot_start_ms;

    /* source */
    struct fill_source src;
    bool paused;
    struct sl_list paused_link;  /* on a->paused while paused */
    int retry_after;             /* FILL_HEAD_BUSY: seconds */
    bool origin_done;            /* the source has finished (or failed) */
    enum origin_result origin_result;
    int answer_status;           /* the origin's (or a tier's 200), 0 before any */
    char origin_detail[160];     /* why the source failed, for the client */
    enum fill_head_state head;
    struct obj_meta meta;
    int64_t content_length;

    /* spool */
    struct chunk *head_chunk, *tail_chunk;
    uint64_t mem_start;
    uint64_t received;
    size_t mem_bytes;
    bool head_dropped;           /* no longer keeps its body from byte 0 for
                                    followers to come (spool.c, over budget) */

    /* readers */
    struct fill_reader *readers;
    int n_readers;

    /* writer */
    enum writer_state wstate;
    struct store_temp temp;
    bool wbusy;
    int64_t wop_start_ms;
    uint64_t written;
    uint64_t file_end;           /* bytes readable from sf */
    struct spool_file *sf;
    ev_timer wtimer;
    enum write_fail_reason wfail;  /* why the writer was detached (W_FAILED) */
    const struct eco_rewriter_ops *check_ops;   /* fill_set_check, or NULL */
    struct eco_rewriter *check;
    bool refetch;                  /* started by refetch_after_lag */
    bool not_shared;               /* the origin marked its answer private (fill_is_shared) */
    bool purged;                   /* fill_purge: never commit (a commit under
                                      way is undone in commit_done) */
    struct fill_verify *verify;    /* fill_verify, or NULL */

    /* tiers (fill_start_lookup, fill_start_from_tier) */
    bool lookup;                   /* a tier miss, error or deadline goes on
                                      to the next tier, then the origin */
    bool from_tier;                /* the head and body came from a tier */
    bool l2_slot;                  /* counted in a->l2_lookups_running */
    int tier_idx;                  /* the agent tier being read, -1: none
                                      (or one the agent does not hold) */
    int64_t lookup_start_ms;
    ev_timer lookup_timer;         /* l2_lookup_timeout, until the head */
};

/* Spool bytes handed to a worker (a write, a hash): the pieces from a
 * position on, each chunk referenced until spool_give_back. */
struct spool_pieces {
    struct iovec iov[STORE_IOV_MAX];
    struct chunk *chunks[STORE_IOV_MAX];
    int n;
    size_t len;
};

/* fill.c */
void fill_ref(struct fill *f);
void fill_unref(struct fill *f);
void fill_wake_readers(struct fill *f);
void fill_table_remove(struct fill *f);

void fill_verdict_reached(struct fill *f);

/* fill_log.c: the fill's last line (fill_log.h), once, as it is freed. */
void fill_log_end(const struct fill *f);

/* verify.c */
void verify_pump(struct fill *f);
void verify_body_complete(struct fill *f);
bool verify_settled(const struct fill *f);
/* The integrity verdict for the fill's log line: "verified", "failed",
 * "unknown" (armed, but no verdict: no digest came, or the body never
 * completed), or NULL when it was not armed or its answer is not a 200. */
const char *verify_log_name(const struct fill *f);
uint64_t fill_readable(const struct fill *f);
uint64_t verify_pin(const struct fill *f);
void verify_free(struct fill *f);
bool verify_when_written(struct fill *f);
/* A background refetch of f's object is verified as f was (when f's
 * expected digest was known). */
void verify_inherit(struct fill *g, const struct fill *f);

/* spool.c */
void spool_chunk_unref(struct chunk *c);
const struct chunk *spool_chunk_at(const struct fill *f, uint64_t pos);
void spool_append(struct fill *f, const uint8_t *data, size_t len);
void spool_reclaim(struct fill *f);
bool spool_must_pause(struct fill *f, size_t incoming);
void spool_pause(struct fill *f);
void spool_unpause(struct fill *f);
void spool_free(struct fill *f);
void spool_check(const struct fill *f);
/* Take the bytes from pos (which must be in memory) to what was received,
 * at most about max_len; returns how many. */
size_t spool_take(struct fill *f, uint64_t pos, struct spool_pieces *out, size_t max_len);
void spool_give_back(struct spool_pieces *p);

/* writer.c */
void writer_init(struct fill *f);
void writer_open(struct fill *f);
void writer_pump(struct fill *f);
void writer_fail(struct fill *f, enum write_fail_reason why);
bool writer_file_usable(const struct fill *f);
/* The writer is opening or writing: it still pins what it has not written. */
bool writer_attached(const struct fill *f);

#endif
