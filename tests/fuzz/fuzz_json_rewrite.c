/*
 * fuzz_json_rewrite.c - libFuzzer target for the streaming JSON rewriter
 * (eco/json_rewrite.h).
 *
 * The input is the document (the seed corpus is plain JSON); the paths are
 * the ecosystems' and a few wildcards, so that many strings match. fn
 * keeps every third value and rewrites the others to the value plus
 * characters that need escaping. Invariants:
 *  - no crash, leak or sanitizer report, whatever the bytes;
 *  - the document is accepted or refused the same whether it is fed whole,
 *    in 1-byte pieces or in pseudo-random pieces (cut where a hash of the
 *    input says), and when accepted the output is identical;
 *  - with fn always keeping, an accepted document comes out byte for byte;
 *  - the output of an accepted document is itself accepted, and the string
 *    values at the paths decode to what fn answered (or to the originals
 *    where it kept them): the encoding round-trips.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "eco/json_rewrite.h"

static const char *const paths[] = {
    "versions.*.dist.tarball", "files[].url", "urls[].url", "releases.*[].url",
    "[]", "*", "[].*[]", "a.*.*", "",
};

struct run {
    struct sl_buf out;      /* what was emitted */
    struct sl_buf values;   /* each final value at a path, length-prefixed */
    int keep;               /* 0: rewrite some, 1: keep all, 2: keep all and record */
    int calls;
};

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_json_rewrite: invariant failed: %s\n", what);
        abort();
    }
}

static void record(struct run *r, const void *p, size_t len)
{
    uint64_t n = len;
    sl_buf_append(&r->values, &n, sizeof(n));
    sl_buf_append(&r->values, p, len);
}

static bool fn(void *ctx, const char *in, size_t len, struct sl_buf *out)
{
    static const char more[] = "\"\\/\n\x1f\x7f\xc3\xa9";
    struct run *r = ctx;
    check(out->len == 0, "out is empty on entry");
    if (r->keep || r->calls++ % 3 == 0) {
        record(r, in, len);
        return false;
    }
    sl_buf_append(out, in, len);
    sl_buf_append(out, more, sizeof(more) - 1);
    record(r, out->data, out->len);
    return true;
}

static void emit(void *ctx, const uint8_t *data, size_t len)
{
    struct run *r = ctx;
    check(len > 0, "emit is never called with 0 bytes");
    sl_buf_append(&r->out, data, len);
}

/* piece: 0 whole, 1 one byte at a time, otherwise the seed of random cuts. */
static int run(struct run *r, int keep, const uint8_t *data, size_t size, uint64_t piece)
{
    memset(r, 0, sizeof(*r));
    r->keep = keep;
    struct json_rw *rw = json_rw_new(paths, sizeof(paths) / sizeof(paths[0]), fn, r, emit, r);
    check(rw != NULL, "the paths parse");
    int rc = 0;
    for (size_t at = 0; at < size && rc == 0;) {
        size_t n = size - at;
        if (piece == 1) {
            n = 1;
        } else if (piece) {
            piece ^= piece << 13, piece ^= piece >> 7, piece ^= piece << 17;
            n = SL_MIN(n, 1 + piece % 67);
        }
        rc = json_rw_feed(rw, data + at, n);
        at += n;
    }
    if (rc == 0)
        rc = json_rw_finish(rw);
    if (rc != 0) {
        check(strncmp(json_rw_error(rw), "json: ", 6) == 0, "an error says what");
        check(json_rw_feed(rw, (const uint8_t *)"{}", 2) == -1, "feed after an error fails");
        check(json_rw_finish(rw) == -1, "finish after an error fails");
    } else {
        check(json_rw_held(rw) == 0, "finish emits everything");
    }
    json_rw_free(rw);
    return rc;
}

static void done(struct run *r)
{
    sl_buf_free(&r->out);
    sl_buf_free(&r->values);
}

static bool same(const struct sl_buf *a, const struct sl_buf *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h | 2;   /* never 0 or 1: those are whole and 1-byte */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct run whole, bytes, cuts, kept, again;
    int rc = run(&whole, 0, data, size, 0);
    check(run(&bytes, 0, data, size, 1) == rc, "1-byte pieces: same verdict");
    check(run(&cuts, 0, data, size, fnv1a(data, size)) == rc, "random pieces: same verdict");
    check(run(&kept, 1, data, size, 0) == rc, "keeping: same verdict");
    if (rc == 0) {
        check(same(&whole.out, &bytes.out), "1-byte pieces: same output");
        check(same(&whole.out, &cuts.out), "random pieces: same output");
        check(same(&whole.values, &bytes.values), "1-byte pieces: same values");
        check(kept.out.len == size && memcmp(kept.out.data, data, size) == 0, "keeping: output == input");
        check(run(&again, 2, whole.out.data, whole.out.len, 0) == 0, "the output is accepted");
        check(same(&again.values, &whole.values), "the replacements decode back");
        done(&again);
    }
    done(&whole);
    done(&bytes);
    done(&cuts);
    done(&kept);
    return 0;
}
