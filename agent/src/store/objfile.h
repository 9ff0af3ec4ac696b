/*
 * objfile.h - the on-disk format of one cached object.
 *
 * Every object file is a fixed 4096-byte header block followed by the body:
 *
 *   offset 0   8 bytes  magic "SLUICE01"
 *   offset 8   4 bytes  little-endian length n of the metadata text
 *   offset 12  4 bytes  little-endian CRC-32 (IEEE) of the metadata text
 *   offset 16  n bytes  metadata text, "name: value\n" lines
 *   ...        zero padding up to OBJ_HEADER_SIZE
 *   offset 4096         body (exactly `size` bytes, so the file is
 *                        OBJ_HEADER_SIZE + size long)
 *
 * Metadata lines, in this order:
 *   key: <key text>
 *   status: <HTTP status, 200>
 *   size: <body bytes>
 *   stored: <unix seconds when committed, or last revalidated>
 *   etag: <strong ETag sent to clients, quoted>
 *   last-modified: <unix seconds>  (omitted when 0 = unknown)
 *   origin-etag: <the origin's ETag as sent, weak or strong> (optional)
 *   origin-last-modified: <unix seconds of the origin's Last-Modified> (optional)
 *     (the validators a revalidation sends back: If-None-Match and
 *     If-Modified-Since; absent when the origin sent none)
 *   verified: <alg>:<hex digest>    (optional) the published digest the body
 *     was checked against while it was filled (digest_notes.h); a hit is
 *     never hashed again
 *   h: <Header-Name>: <value>       (zero or more kept response headers)
 *
 * Keeping the header a fixed size means the body can be streamed into the
 * temp file at its final offset while the fill runs, and the header written
 * last (at commit, when size and digest are known); it also keeps the body
 * page-aligned for sendfile. The CRC plus the key and size checks let a hit
 * be validated with one pread of 4096 bytes and one fstat before any
 * response byte is written.
 */
#ifndef SLUICE_OBJFILE_H
#define SLUICE_OBJFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define OBJ_HEADER_SIZE 4096
#define OBJ_MAX_HEADERS 16
#define OBJ_MAGIC "SLUICE01"

struct obj_header_field {
    char *name;
    char *value;
};

struct obj_meta {
    char *key;
    int status;
    uint64_t size;
    int64_t stored;
    char *etag;
    int64_t last_modified;
    char *origin_etag;             /* NULL: the origin sent none */
    int64_t origin_last_modified;  /* 0: the origin sent none */
    char *verified;                /* "sha256:<hex>": checked against it, or NULL */
    struct obj_header_field headers[OBJ_MAX_HEADERS];
    int n_headers;
};

/*
 * Encode meta into a full OBJ_HEADER_SIZE block (zero padded). Returns 0, or
 * -1 when the metadata does not fit (the caller then does not cache).
 */
int obj_header_encode(const struct obj_meta *meta, uint8_t block[OBJ_HEADER_SIZE]);

/*
 * Decode and validate a header block: magic, length, CRC, every line well
 * formed, required fields present. Allocates the strings in *meta (free with
 * obj_meta_free). Returns 0, or -1 with a reason in err (for logs/metrics).
 */
int obj_header_decode(const uint8_t *block, size_t len, struct obj_meta *meta,
                      char *err, size_t errlen);

/* Will meta encode once it is complete: with any size and a `verified`
 * digest of the longest kind (a fill asks before it stores anything)? */
bool obj_meta_fits(const struct obj_meta *meta);

void obj_meta_free(struct obj_meta *meta);

/* A deep copy of src into dst (which must be empty or freed). */
void obj_meta_copy(struct obj_meta *dst, const struct obj_meta *src);

/* Add a kept header (copies the strings). Returns -1 when full. */
int obj_meta_add_header(struct obj_meta *meta, const char *name, const char *value);

uint32_t obj_crc32(const uint8_t *data, size_t len);

#endif
