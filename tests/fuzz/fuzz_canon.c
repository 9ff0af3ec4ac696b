/*
 * fuzz_key.c - libFuzzer target for everything that parses operator or
 * request text in the key, route and config modules.
 *
 * One input feeds four parsers:
 *  - key_build: the input split at the first two '\n' into route, rest and
 *    query; checks that a built key is one printable line within KEY_MAX and
 *    that building it again from its own path and query gives the same key;
 *  - route_table_parse: the input as a map; every route's own prefix must
 *    match that route, and the HAProxy output must not crash;
 *  - config_parse_duration_ms / config_parse_size: the input as a value;
 *  - config_parse_text: the input as a config file; what parses must print
 *    and parse back to the same text.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "store/key.h"
#include "route/route.h"

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_key: invariant failed: %s\n", what);
        abort();
    }
}

static void check_key_text(const char *key, int n)
{
    check(n > 0 && n <= KEY_MAX && (size_t)n == strlen(key), "key length");
    for (int i = 0; i < n; i++) {
        unsigned char c = (unsigned char)key[i];
        check(c >= 0x20 && c != 0x7f && c != '#', "key has a control character or '#'");
    }
    check(strchr(key, ':') != NULL, "key has a route");
}

static void fuzz_key_build(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    const char *nl1 = memchr(p, '\n', size);
    if (!nl1)
        return;
    size_t route_len = (size_t)(nl1 - p);
    if (route_len >= 64)
        return;
    char route[64];
    memcpy(route, p, route_len);
    route[route_len] = '\0';
    const char *rest = nl1 + 1;
    size_t left = size - route_len - 1;
    const char *nl2 = memchr(rest, '\n', left);
    size_t rest_len = nl2 ? (size_t)(nl2 - rest) : left;
    const char *query = nl2 ? nl2 + 1 : NULL;
    size_t query_len = nl2 ? left - rest_len - 1 : 0;
    int with_query = route_len > 0 && (route[0] & 1);

    static char key[KEY_MAX + 1];
    int n = key_build(route, rest, rest_len, query, query_len, with_query, key);
    if (n < 0) {
        check(key_strerror(n) != NULL, "strerror");
        return;
    }
    check_key_text(key, n);

    /* idempotence: the key's own path (and query) normalise to themselves */
    static char again[KEY_MAX + 1];
    const char *path = strchr(key, ':') + 1;
    const char *q = with_query ? strchr(path, '?') : NULL;
    size_t path_len = q ? (size_t)(q - path) : strlen(path);
    int m = key_build(route, path, path_len, q ? q + 1 : NULL, q ? strlen(q + 1) : 0,
                      with_query, again);
    check(m == n && strcmp(key, again) == 0, "key normalisation is idempotent");

    uint8_t hash[KEY_HASH_LEN];
    char rel[96];
    key_hash(key, (size_t)n, hash);
    key_rel_path(hash, rel, sizeof(rel));
    check(strlen(rel) == 78, "rel path length");
}

static void fuzz_route_table(const char *text, const struct sluice_config *cfg)
{
    static struct route_table rt;
    char err[512];
    if (route_table_parse(&rt, text, cfg, err, sizeof(err)) != 0)
        return;
    for (int i = 0; i < rt.n; i++) {
        const struct route *r = &rt.routes[i];
        const char *rest;
        size_t rest_len;
        const struct route *m = route_match(&rt, r->prefix, r->prefix_len, &rest, &rest_len);
        check(m == r, "a route's prefix matches that route");
        check(rest_len == 0 || rest[0] != '/', "rest never starts with '/'");
        check(route_by_name(&rt, r->name, strlen(r->name)) == r, "route_by_name");
    }
    FILE *devnull = fopen("/dev/null", "w");
    if (devnull) {
        route_table_print_haproxy(&rt, cfg, devnull);
        fclose(devnull);
    }
}

static char *print_config(const struct sluice_config *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    check(f != NULL, "open_memstream");
    config_print(cfg, f);
    fclose(f);
    return buf;
}

static void fuzz_config_text(const char *text)
{
    static struct sluice_config cfg, again;
    char err[512];
    config_defaults(&cfg);
    if (config_parse_text(&cfg, text, "fuzz", err, sizeof(err)) != 0)
        return;
    char *first = print_config(&cfg);
    config_defaults(&again);
    int rc = config_parse_text(&again, first, "printed", err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "printed config does not parse: %s\n%s", err, first);
    check(rc == 0, "printed config parses");
    char *second = print_config(&again);
    check(strcmp(first, second) == 0, "config print/parse round trip");
    free(first);
    free(second);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct sluice_config defaults;
    static int ready;
    if (!ready) {
        config_defaults(&defaults);
        ready = 1;
    }
    fuzz_key_build(data, size);

    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    fuzz_route_table(text, &defaults);

    int64_t ms;
    uint64_t bytes;
    if (config_parse_duration_ms(text, &ms) == 0)
        check(ms >= 0, "duration is not negative");
    (void)config_parse_size(text, &bytes);

    struct origin_url url;
    char err[256];
    if (origin_url_parse(text, &url, err, sizeof(err)) == 0)
        check(url.port >= 1 && url.port <= 65535 && url.host[0], "parsed URL is complete");

    fuzz_config_text(text);
    free(text);
    return 0;
}
