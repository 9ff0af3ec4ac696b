/*
 * s3.h - the parts of the S3 protocol the S3 tier (tier_s3.c) speaks that
 * need no network: object URLs, the sub-resource query strings, the
 * object's metadata header, the CompleteMultipartUpload document and the
 * few values read out of S3's XML answers. Pure functions, so the unit
 * tests and the fuzzers (tests/fuzz/fuzz_s3.c) reach them directly.
 *
 * Object names: <prefix><64 hex of the key's SHA-256> (store/key.h), so a
 * name is bounded and URL-safe whatever the key holds; the key itself
 * travels in the metadata and is compared on every read.
 *
 * Metadata: one header, x-amz-meta-sluice, whose value is the standard
 * base64 of the object's objfile header (objfile.h) without its zero
 * padding: magic, length, CRC and the metadata text. Reading it back goes
 * through obj_header_decode, the same strict check an L1 hit passes.
 *
 * Query strings are written as S3 canonicalises them (SigV4 signs the
 * query as written by libcurl 7.88): parameters sorted by name, every
 * value percent-encoded (RFC 3986 unreserved characters kept), and a
 * parameter without a value written "name=".
 */
#ifndef SLUICE_S3_H
#define SLUICE_S3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/key.h"
#include "store/objfile.h"

#define S3_META_HEADER "x-amz-meta-sluice"
/* S3 allows 2 KB of user metadata (names and values); keep below it. */
#define S3_META_MAX 2000
#define S3_MIN_PART_SIZE (5 * 1024 * 1024)
#define S3_MAX_PARTS 10000
#define S3_URL_MAX 2048

/* Where and how the S3 tier stores (the s3_* settings, config.h). */
struct s3_settings {
    const char *endpoint;        /* "https://s3.eu-west-1.amazonaws.com" */
    const char *bucket;
    const char *region;
    const char *prefix;          /* prepended to every object name; [A-Za-z0-9._/-]* */
    bool virtual_host;           /* <bucket>.<host> instead of <host>/<bucket> */
    bool tls_verify;
    int64_t connect_timeout_ms;
    int64_t header_timeout_ms;   /* a read's response headers, from its start */
    int64_t stall_timeout_ms;    /* a read that receives nothing while not paused */
    int64_t request_timeout_ms;  /* each request of a write, whole */
    uint64_t multipart_threshold;
    uint64_t part_size;
    const char *access_key;      /* AWS_ACCESS_KEY_ID */
    const char *secret_key;      /* AWS_SECRET_ACCESS_KEY */
    const char *session_token;   /* AWS_SESSION_TOKEN, or NULL / "" */
};

struct sluice_config;

/* cfg's S3 tier into *s (strings point into cfg and the environment; the
 * credentials come only from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
 * AWS_SESSION_TOKEN); an empty s3_endpoint becomes
 * https://s3.<region>.amazonaws.com, written into endpoint[0..len).
 * false when s3_bucket is empty: no S3 tier. */
bool s3_settings_from_config(const struct sluice_config *cfg, struct s3_settings *s, char *endpoint, size_t len);

/* NULL when the endpoint, bucket, region, prefix and sizes make a usable
 * tier; else why not (for --check and tier_s3_new). */
const char *s3_settings_check(const struct s3_settings *s);

/* The URL of object `hash` with `query` ("" or "uploads=" ...): path-style
 * or virtual-host. The length written, or 0 when it does not fit. */
size_t s3_object_url(const struct s3_settings *s, const uint8_t hash[KEY_HASH_LEN], const char *query,
                     char *out, size_t outlen);

/* "partNumber=<n>&uploadId=<id>" and "uploadId=<id>", id percent-encoded.
 * The length written, or 0 when it does not fit. */
size_t s3_query_part(int part, const char *upload_id, char *out, size_t outlen);
size_t s3_query_upload(const char *upload_id, char *out, size_t outlen);

/* The header value for an encoded objfile header block. The length
 * written (NUL-terminated), or 0 when it exceeds S3_META_MAX or outlen. */
size_t s3_meta_encode(const uint8_t block[OBJ_HEADER_SIZE], char *out, size_t outlen);

/* Decode and validate a header value into *meta (obj_meta_free it).
 * 0, or -1 with a reason in err. */
int s3_meta_decode(const char *value, size_t len, struct obj_meta *meta, char *err, size_t errlen);

/* The CompleteMultipartUpload body for etags[0..n) (parts 1..n), as a
 * malloc'd NUL-terminated string. */
char *s3_complete_xml(char *const *etags, int n);

/* The text of the first <tag>...</tag> in xml[0..len), entities
 * (&quot; &amp; &lt; &gt; &apos;) decoded, into out. The length, or -1
 * when absent, malformed or longer than outlen - 1. */
int s3_xml_value(const char *xml, size_t len, const char *tag, char *out, size_t outlen);

/* Is line[0..len) (a response header without its CRLF) the header
 * `name` (any case)? Then *v, *vlen: its value without surrounding blanks. */
bool s3_header_match(const char *line, size_t len, const char *name, const char **v, size_t *vlen);

/* A Content-Length value: 1 to 18 decimal digits, nothing else; -1 if not. */
int64_t s3_parse_length(const char *v, size_t len);

/* An <Error> document (a 200 CompleteMultipartUpload can be one). */
bool s3_xml_is_error(const char *xml, size_t len);

#endif
