/*
 * fuzz_digest.c - libFuzzer target for the digest forms metadata and
 * sidecars publish (eco/digest_notes.h): hex of each algorithm
 * (digest_parse_hex), Subresource Integrity lists (digest_parse_sri), the
 * notes table they go into, and the sidecar readers of the ecosystems that
 * have one (Maven's .sha1 beside an artifact, Go's checksum-database lookup
 * for a module zip and a go.mod), called directly on the input.
 *
 * Invariants:
 *  - no crash or sanitizer report, whatever the bytes;
 *  - a parsed digest has its algorithm's length; digest_format gives
 *    "<sri name>:<hex>", and that hex parses back to the same digest;
 *  - a parsed SRI list gives the strongest digest in it: re-encoded as
 *    "<alg>-<base64>" it parses back to the same value;
 *  - a note put under the input as its name is found again, with the
 *    first DIGEST_NOTE_MAX bytes of the digest;
 *  - a sidecar digest has its algorithm's length.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "core/config.h"
#include "eco/digest_notes.h"
#include "eco/eco.h"
#include "route/canon.h"
#include "route/route.h"

static const char *const algs[] = { "SHA1", "SHA256", "SHA512", "H1", "H1MOD", "MD5", "" };

static struct digest_notes *notes;
static struct route_table rt;

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_digest: invariant failed: %s\n", what);
        abort();
    }
}

static void setup(void)
{
    static int done;
    static struct sluice_config cfg;
    char err[256];
    if (done++)
        return;
    notes = digest_notes_new(64);
    config_defaults(&cfg);
    check(config_set(&cfg, "origin_maven", "https://repo.example/maven2", err, sizeof(err)) == 0, err);
    check(config_set(&cfg, "origin_go", "https://proxy.example", err, sizeof(err)) == 0, err);
    check(route_table_parse(&rt, "/maven/ maven\n/go/ go\n", &cfg, err, sizeof(err)) == 0, err);
}

static void check_noted(const char *name, size_t len, const struct eco_digest *d)
{
    struct eco_digest got;
    digest_notes_put(notes, name, len, d);
    check(digest_notes_get(notes, name, len, &got), "a note just put is found");
    check(strcmp(got.algorithm, d->algorithm) == 0, "same algorithm");
    check(got.len == (d->len < DIGEST_NOTE_MAX ? d->len : DIGEST_NOTE_MAX), "note length");
    check(memcmp(got.value, d->value, got.len) == 0, "same digest");
}

/* digest_format's hex parses back to d. */
static void check_format(const struct eco_digest *d)
{
    char text[8 + 2 * 64 + 1];
    struct eco_digest back;
    digest_format(d, text, sizeof(text));
    const char *colon = strchr(text, ':');
    check(colon != NULL && strlen(colon + 1) == 2 * d->len, "formatted as <name>:<hex>");
    check(digest_parse_hex(d->algorithm, colon + 1, 2 * d->len, &back), "formatted hex parses");
    check(back.len == d->len && memcmp(back.value, d->value, d->len) == 0, "hex round trip");
}

static void fuzz_hex(const char *text, size_t len)
{
    for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
        struct eco_digest d;
        if (!digest_parse_hex(algs[i], text, len, &d))
            continue;
        check(d.len == digest_length(algs[i]) && d.len > 0 && 2 * d.len == len, "hex digest length");
        check_format(&d);
        check_noted(text, len, &d);
    }
}

static void fuzz_sri(const char *text, size_t len)
{
    struct eco_digest d, back;
    if (!digest_parse_sri(text, len, &d))
        return;
    check(d.len == digest_length(d.algorithm) && d.len > 0, "SRI digest length");
    check_format(&d);
    check_noted(text, len, &d);
    char sri[8 + 2 * 64 + 1];   /* digest_format's, then "<alg>-<base64>" (88 + 8) */
    char *colon;
    digest_format(&d, sri, sizeof(sri));
    colon = strchr(sri, ':');
    size_t name_len = (size_t)(colon - sri);
    sri[name_len] = '-';
    int n = EVP_EncodeBlock((unsigned char *)sri + name_len + 1, d.value, (int)d.len);
    check(digest_parse_sri(sri, name_len + 1 + (size_t)n, &back), "re-encoded SRI parses");
    check(back.len == d.len && memcmp(back.value, d.value, d.len) == 0, "SRI round trip");
}

static void fuzz_sidecars(const char *text, size_t len)
{
    static const struct {
        const char *route, *path;
    } artifacts[] = {
        { "maven", "/maven/com/example/a/1.0/a-1.0.jar" },
        { "go", "/go/github.com/!azure/sdk/@v/v1.0.0.zip" },
        { "go", "/go/m/@v/v1.mod" },
    };
    for (size_t i = 0; i < sizeof(artifacts) / sizeof(artifacts[0]); i++) {
        static struct canon c;
        struct eco_digest d;
        const struct route *r = route_by_name(&rt, artifacts[i].route, strlen(artifacts[i].route));
        check(canon_request(r, artifacts[i].path, strlen(artifacts[i].path), NULL, 0, NULL, 0, &c) == CANON_OK,
              "artifact canonical");
        if (r->eco->sidecar_digest(&c, text, len, &d))
            check(d.len == digest_length(d.algorithm) && d.len > 0, "sidecar digest length");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    /* A copy of exactly `size` bytes, so reads past it are caught. */
    char *text = malloc(size ? size : 1);
    check(text != NULL, "malloc");
    memcpy(text, data, size);
    fuzz_hex(text, size);
    fuzz_sri(text, size);
    fuzz_sidecars(text, size);
    free(text);
    return 0;
}
