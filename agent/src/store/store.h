/*
 * store.h - the local disk, L1: where committed objects live, and the
 * spool of every fill. It hands out file descriptors (hits are sent with
 * sendfile, fills stream into temp files that readers read back); every
 * other storage level is a tier (tier.h) and hands out bytes.
 *
 * Every function here may block on the disk, so all of them except
 * store_open_object run on the worker pool. store_open_object is the
 * exception by design: a hit must be validated before its status line is
 * written, and doing that inline (one open, one pread of 4 KiB, one fstat on
 * a page-cache-resident file) is far cheaper than a thread hop.
 *
 * Layout under the cache directory:
 *   objects/ab/cd/<64 hex>   committed objects (objfile.h format)
 *   tmp/<hex>.<pid>.<seq>    objects being written; never read by lookups,
 *                            removed on failure and swept at start
 * Temp files live on the same filesystem as objects so commit is a rename.
 *
 * Invariants:
 *  - an object path only ever holds a complete, fsynced file (rename is the
 *    commit point), so a crash can leave temp debris but never a partial
 *    object;
 *  - a temp file is either committed or unlinked by whoever owns it.
 */
#ifndef SLUICE_STORE_H
#define SLUICE_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "store/key.h"
#include "store/objfile.h"

struct store {
    char *dir;
    int dir_fd;
    int objects_fd;
    int tmp_fd;
};

/* Why a lookup found no usable object. */
enum store_open_result {
    STORE_OPEN_OK = 0,
    STORE_OPEN_MISSING = -1,   /* no file */
    STORE_OPEN_CORRUPT = -2,   /* bad header, wrong key, wrong size */
    STORE_OPEN_ERROR = -3,     /* any other I/O error */
};

#define STORE_IOV_MAX 64

/* A temp file's write-back is started once this much has been written
 * since the last start (store_temp_writev). */
#define STORE_WRITEBACK_EVERY (8u * 1024 * 1024)

/* Returned (negated) when a write stopped making progress after writing
 * part of its bytes and then failed with EIO: counted as a short write. */
#define STORE_ESHORT 10000

/* A temp file being written by a fill. */
struct store_temp {
    int fd;
    uint64_t written_back;   /* body bytes whose write-back has been started */
    char name[KEY_HEX_LEN + 48];
};

/* Create dir, objects/ and tmp/ if needed and open them. 0 or -1 + err. */
int store_init(struct store *st, const char *dir, char *err, size_t errlen);
void store_close(struct store *st);

/* Remove everything in tmp/ (crash debris). Returns the number removed. */
int store_sweep_temp(struct store *st);

/*
 * Open a committed object and validate it against `key`: header decodes,
 * key matches, file length is exactly header + size. On STORE_OPEN_OK sets
 * *fd_out (caller closes) and fills *meta (caller frees with obj_meta_free)
 * and *st_out (the file's stat, identifying this version of it).
 * `why` gets a short reason on failure (for logs), may be NULL.
 */
enum store_open_result store_open_object(struct store *st, const uint8_t hash[KEY_HASH_LEN],
                                         const char *key, int *fd_out, struct obj_meta *meta,
                                         struct stat *st_out, const char **why);

/* Create a temp file for a fill. 0 or -errno. */
int store_temp_create(struct store *st, const uint8_t hash[KEY_HASH_LEN], struct store_temp *t);

/*
 * Write the buffers, in order, at body offset `off` (the header block is
 * skipped), as one pwritev when it can. Writes everything or fails: returns
 * 0, or -errno; a write that stops making progress after part of its bytes
 * is reported as -STORE_ESHORT. Each STORE_WRITEBACK_EVERY written starts
 * going to the disk at once (not waited for), so that a large body's
 * commit fsync finds little left; a smaller body is flushed by that fsync
 * alone.
 * Test builds route this through the fault seam (fault.h).
 */
int store_temp_writev(struct store_temp *t, const struct iovec *iov, int iovcnt, uint64_t off);

/*
 * Commit: write the header block for `meta`, fsync, rename into
 * objects/ab/cd/<hex>, close the fd. On failure the temp file is removed.
 * Returns 0 or -errno.
 */
int store_temp_commit(struct store *st, struct store_temp *t, const uint8_t hash[KEY_HASH_LEN],
                      const struct obj_meta *meta);

/* Abandon: unlink the temp file (if still named) and close the fd (if open). */
void store_temp_unlink(struct store *st, struct store_temp *t);
void store_temp_close(struct store_temp *t);

/* Open a committed object read-only, without validating it (the commit
 * that just made it hands it to the sink tiers). fd or -errno. */
int store_object_open(struct store *st, const uint8_t hash[KEY_HASH_LEN]);

/* Remove a committed object. 0 or -errno (-ENOENT is fine for callers). */
int store_remove_object(struct store *st, const uint8_t hash[KEY_HASH_LEN]);

/* Bytes free for unprivileged users on the cache filesystem, or -1. */
int64_t store_fs_free(const struct store *st);

/* Total size of the cache filesystem in bytes, or -1. */
int64_t store_fs_size(struct store *st);

/*
 * Walk objects/ calling fn for each valid object file found (hash parsed
 * from the name, disk bytes, its decoded header - valid during the call
 * only - and atime). Files whose header does not validate are removed.
 * Returns the number of objects.
 */
typedef void (*store_scan_fn)(void *ctx, const uint8_t hash[KEY_HASH_LEN], uint64_t disk_bytes,
                              const struct obj_meta *meta, int64_t atime);
long store_scan(struct store *st, store_scan_fn fn, void *ctx);

#endif
