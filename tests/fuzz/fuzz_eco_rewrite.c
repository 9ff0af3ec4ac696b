/*
 * fuzz_eco_rewrite.c - libFuzzer target for the ecosystems' rewriters as
 * the serving path runs them (eco/npm.c, eco/pypi.c, eco/cargo.c over
 * json_rewrite, html_rewrite and link): the URL handling of each rewritten
 * value, PyPI's choice of JSON or HTML by the page's first byte, Cargo's
 * index lines, the digests each notes (eco/digest_notes.c), and the
 * wrappers' own buffering; and the sidecar readers (Maven's .sha1, Go's
 * checksum-database lookup), which read an origin's bytes too.
 *
 * The first input byte picks the document (npm full or abbreviated
 * packument, PyPI simple page asked as HTML or as JSON, PyPI JSON API,
 * Cargo's config.json or an index file, a Maven or Go sidecar); the rest
 * is its body. Invariants:
 *  - no crash, leak or sanitizer report, whatever the bytes;
 *  - accepted or refused the same, with the same output, whether fed whole,
 *    in 1-byte pieces or in pseudo-random pieces.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/config.h"
#include "eco/digest_notes.h"
#include "eco/eco.h"
#include "route/canon.h"
#include "route/route.h"

static struct route_table rt;

static const struct {
    const char *route, *path, *accept;
} docs[] = {
    { "npm", "/npm/@scope%2fname", NULL },
    { "npm", "/npm/left-pad", "application/vnd.npm.install-v1+json" },
    { "pypi", "/pypi/simple/demo-a/", "text/html" },
    { "pypi", "/pypi/simple/demo-a/", "application/vnd.pypi.simple.v1+json" },
    { "pypi", "/pypi/pypi/demo-a/json", NULL },
    { "cargo_index", "/crates/config.json", NULL },
    { "cargo_index", "/crates/se/rd/serde", NULL },
    { "maven", "/maven/com/example/a/1.0/a-1.0.jar", NULL },
    { "go", "/go/github.com/!azure/sdk/@v/v1.0.0.zip", NULL },
    { "go", "/go/m/@v/v1.mod", NULL },
};

static struct digest_notes *notes;

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_eco_rewrite: invariant failed: %s\n", what);
        abort();
    }
}

static void collect(void *ctx, const uint8_t *data, size_t len)
{
    check(len > 0, "emit is never called with nothing");
    sl_buf_append(ctx, data, len);
}

static void setup(void)
{
    static int done;
    struct sluice_config cfg;
    char err[256];
    if (done++)
        return;
    config_defaults(&cfg);
    check(config_set(&cfg, "origin_npm", "https://registry.example/npm-proxy", err, sizeof(err)) == 0, err);
    check(config_set(&cfg, "origin_pypi", "https://index.example/root", err, sizeof(err)) == 0, err);
    check(config_set(&cfg, "origin_pypi_files", "https://files.example", err, sizeof(err)) == 0, err);
    check(config_set(&cfg, "origin_cargo_index", "https://index.example", err, sizeof(err)) == 0, err);
    check(config_set(&cfg, "origin_cargo_dl", "https://static.example", err, sizeof(err)) == 0, err);
    check(config_set(&cfg, "origin_maven", "https://repo.example/maven2", err, sizeof(err)) == 0, err);
    check(config_set(&cfg, "origin_go", "https://proxy.example", err, sizeof(err)) == 0, err);
    check(route_table_parse(&rt,
                            "/npm/ npm\n/pypi/files/ pypi_files\n/pypi/ pypi\n/crates/dl/ cargo_dl\n"
                            "/crates/ cargo_index\n/maven/ maven\n/go/ go\n",
                            &cfg, err, sizeof(err)) == 0,
          err);
    notes = digest_notes_new(4096);
}

/* piece: 0 whole, 1 one byte at a time, otherwise the seed of random cuts. */
static int run(const struct canon *cn, const uint8_t *data, size_t size, uint64_t piece, struct sl_buf *out)
{
    char page[CONFIG_URL_MAX + KEY_MAX + 2];
    check(canon_origin_url(cn, page, sizeof(page)) == 0, "origin URL");
    struct eco_rewrite_ctx ctx = { cn, page, &rt, "http://127.0.0.1:8080", notes };
    const struct eco_rewriter_ops *ops = cn->route->eco->rewriter;
    struct eco_rewriter *rw = ops->open(&ctx, collect, out);
    int rc = 0;
    for (size_t off = 0; off < size && rc == 0;) {
        size_t n = size - off;
        if (piece == 1) {
            n = 1;
        } else if (piece) {
            piece ^= piece << 13, piece ^= piece >> 7, piece ^= piece << 17;
            n = n < 1 + piece % 67 ? n : 1 + piece % 67;
        }
        rc = ops->feed(rw, data + off, n);
        off += n;
    }
    if (rc == 0)
        rc = ops->finish(rw);
    ops->close(rw);
    return rc;
}

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h | 2;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct canon cn;
    setup();
    if (size == 0)
        return 0;
    size_t which = data[0] % (sizeof(docs) / sizeof(docs[0]));
    const struct route *r = route_by_name(&rt, docs[which].route, strlen(docs[which].route));
    const char *accept = docs[which].accept;
    check(canon_request(r, docs[which].path, strlen(docs[which].path), NULL, 0, accept, accept ? strlen(accept) : 0,
                        &cn) == CANON_OK, "canonical");
    if (!r->eco->rewriter) {   /* a sidecar: what its ecosystem reads in it */
        struct eco_digest d;
        if (r->eco->sidecar_digest(&cn, (const char *)data + 1, size - 1, &d))
            check(d.len > 0 && d.len <= 64, "a digest of a known length");
        return 0;
    }
    struct sl_buf whole = { 0 }, bytes = { 0 }, cuts = { 0 };
    int rc = run(&cn, data + 1, size - 1, 0, &whole);
    check(run(&cn, data + 1, size - 1, 1, &bytes) == rc, "1-byte pieces: same verdict");
    check(run(&cn, data + 1, size - 1, fnv1a(data, size), &cuts) == rc, "random pieces: same verdict");
    if (rc == 0) {
        check(whole.len == bytes.len && (whole.len == 0 || memcmp(whole.data, bytes.data, whole.len) == 0),
              "1-byte pieces: same output");
        check(whole.len == cuts.len && (whole.len == 0 || memcmp(whole.data, cuts.data, whole.len) == 0),
              "random pieces: same output");
    }
    sl_buf_free(&whole);
    sl_buf_free(&bytes);
    sl_buf_free(&cuts);
    return 0;
}
