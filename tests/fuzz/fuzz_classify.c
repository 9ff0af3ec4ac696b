/*
 * fuzz_classify.c - libFuzzer target for what the serving path makes of a
 * client's request line and headers, per ecosystem (serve/classify.h over
 * route/canon.c and each eco's canon, classify, variant, redirect,
 * digest_name, sidecar and origin_url), and for the client's Cache-Control
 * (serve/fresh.h, fresh_client_no_cache) with the freshness verdict.
 *
 * Input: byte 0 picks the route (npm, pypi, pypi_files, cargo_index,
 * cargo_dl, maven, go, generic, or one the path is not under), byte 1 the
 * method and credential flags; the rest is split at '\n' into the path
 * after the route prefix, the query (absent when there is no second line),
 * the Accept value and the Cache-Control value. Invariants:
 *  - no crash or sanitizer report, whatever the bytes;
 *  - a cacheable request has a key "<route>:<path>[?query]" of printable
 *    bytes within KEY_MAX, an origin URL, and its hooks answer;
 *  - a refusal says why with a 4xx status and leaves no key;
 *  - a redirect goes under the same route prefix, to a path that is itself
 *    in normal form: classifying it again gives no second redirect;
 *  - fresh_judge gives one of its four answers, and FRESH never for a
 *    client's no-cache when the route honours it.
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
#include "serve/classify.h"
#include "serve/fresh.h"

static struct route_table rt;

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_classify: invariant failed: %s\n", what);
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
    config_defaults(&cfg);
    check(config_set(&cfg, "origin_npm", "https://registry.example/npm-proxy", err, sizeof(err)) == 0, err);
    check(config_set(&cfg, "origin_pypi", "https://index.example/root", err, sizeof(err)) == 0, err);
    check(config_set(&cfg, "origin_pypi_files", "https://files.example", err, sizeof(err)) == 0, err);
    check(config_set(&cfg, "origin_cargo_index", "https://index.example", err, sizeof(err)) == 0, err);
    check(config_set(&cfg, "origin_cargo_dl", "https://static.example", err, sizeof(err)) == 0, err);
    check(config_set(&cfg, "origin_maven", "https://repo.example/maven2", err, sizeof(err)) == 0, err);
    check(config_set(&cfg, "origin_go", "https://proxy.example", err, sizeof(err)) == 0, err);
    check(config_set(&cfg, "origin_generic", "http://127.0.0.1:9000/base", err, sizeof(err)) == 0, err);
    check(route_table_parse(&rt,
                            "/npm/ npm\n/pypi/files/ pypi_files\n/pypi/ pypi\n/crates/dl/ cargo_dl\n"
                            "/crates/ cargo_index\n/maven/ maven\n/go/ go\n/generic/ generic\n",
                            &cfg, err, sizeof(err)) == 0,
          err);
}

/* The i-th '\n'-separated field of [p, end), or NULL when there is none. */
static const char *field(const char *p, const char *end, int i, size_t *len)
{
    for (; i > 0; i--) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            return NULL;
        p = nl + 1;
    }
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    *len = (size_t)((nl ? nl : end) - p);
    return p;
}

static void check_cacheable(const struct canon *c)
{
    const struct eco *eco = c->route->eco;
    size_t name_len = strlen(c->route->name);
    check(c->key_len > name_len && c->key_len <= KEY_MAX && c->key_len == strlen(c->key), "key length");
    check(memcmp(c->key, c->route->name, name_len) == 0 && c->key[name_len] == ':', "key starts with the route");
    for (size_t i = 0; i < c->key_len; i++) {
        unsigned char ch = (unsigned char)c->key[i];
        check(ch > 0x20 && ch < 0x7f, "key is printable, without blanks");
    }
    check(c->path_off + c->path_len <= c->key_len && c->query_off + c->query_len <= c->key_len, "key parts");
    static char url[KEY_MAX + CONFIG_URL_MAX + 8];
    int rc = eco->origin_url ? eco->origin_url(c, url, sizeof(url)) : canon_origin_url(c, url, sizeof(url));
    check(rc == 0 && strncmp(url, "http", 4) == 0, "origin URL");
    struct sl_buf b = { 0 };
    (void)digest_notes_name(c, &b);
    sl_buf_free(&b);
    if (eco->sidecar) {
        struct eco_sidecar sc = { 0 };
        if (eco->sidecar(c, &sc))
            check(sc.algorithm != NULL && sc.path.len > 0, "a sidecar has a path");
        sl_buf_free(&sc.path);
    }
    if (eco->variant_accept)
        (void)eco->variant_accept(c);
}

/* The agent's defaults (request_target_max, request_segments_max): inputs
 * past them are rejected with a 414 before any canonical work. */
static const struct canon_limits limits = { 8192, 128 };

static void check_redirect(const struct request_class *rc, const char *query, size_t query_len, const char *accept,
                           size_t accept_len)
{
    static struct request_class again;
    const struct route *r = rc->route;
    size_t len = strlen(rc->location);
    check(len > r->prefix_len && memcmp(rc->location, r->prefix, r->prefix_len) == 0, "redirect under the route");
    serve_classify(r, &limits, true, false, rc->location, len, query, query_len, accept, accept_len, &again);
    check(again.kind != CLASS_REDIRECT, "a redirect's target is in normal form");
}

static void fuzz_request(const struct route *r, uint8_t flags, const char *p, const char *end)
{
    static struct request_class rc;
    static char path[ROUTE_PREFIX_MAX + KEY_MAX * 4];
    size_t rest_len = 0, query_len = 0, accept_len = 0;
    const char *rest = field(p, end, 0, &rest_len);
    const char *query = field(p, end, 1, &query_len);
    const char *accept = field(p, end, 2, &accept_len);
    const char *prefix = (flags & 4) ? "/elsewhere/" : r->prefix;
    size_t prefix_len = strlen(prefix);
    if (prefix_len + rest_len > sizeof(path))
        return;
    memcpy(path, prefix, prefix_len);
    memcpy(path + prefix_len, rest, rest_len);
    serve_classify(r, &limits, !(flags & 1), flags & 2, path, prefix_len + rest_len, query, query_len, accept, accept_len,
                   &rc);
    switch (rc.kind) {
    case CLASS_CACHEABLE:
        check_cacheable(&rc.canon);
        break;
    case CLASS_REJECT:
        check(rc.canon_err < 0 && canon_strerror(rc.canon_err) != NULL, "a refusal says why");
        check(canon_err_status(rc.canon_err) >= 400 && canon_err_status(rc.canon_err) < 500, "4xx");
        check(rc.canon.key[0] == '\0', "a refusal leaves no key");
        break;
    case CLASS_REDIRECT:
        check_redirect(&rc, query, query_len, accept, accept_len);
        break;
    default:
        break;
    }
}

static void fuzz_fresh(const char *p, const char *end, uint8_t flags)
{
    size_t len = 0;
    const char *cc = field(p, end, 3, &len);
    if (!cc)
        return;
    char *text = strndup(cc, len);
    check(text != NULL, "strndup");
    bool no_cache = fresh_client_no_cache(text);
    struct route_freshness rf = { 600000, 60000, 3600000, 1000, 30000, (flags & 8) != 0 };
    int64_t now = 1767225600, validated = now - (int64_t)(len * 37 % 5000);
    enum freshness f = fresh_judge(&rf, (flags & 16) ? 404 : 200, validated, now, no_cache);
    check(strcmp(freshness_name(f), "?") != 0, "a freshness answer");
    if (no_cache && rf.honor_no_cache && !(flags & 16))
        check(f != FRESH, "no-cache is never fresh");
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    if (size < 2)
        return 0;
    const struct route *r = &rt.routes[data[0] % rt.n];
    const char *p = (const char *)data + 2, *end = (const char *)data + size;
    fuzz_request(r, data[1], p, end);
    fuzz_fresh(p, end, data[1]);
    return 0;
}
