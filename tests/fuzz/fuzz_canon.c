/*
 * fuzz_canon.c - libFuzzer target for everything that parses operator or
 * request text in the canonical-request, route and config modules.
 *
 * One input feeds four parsers:
 *  - canon_request: the input split at the first two '\n' into a route
 *    selector, the path after the prefix and the query; checks that a key
 *    is one printable line within KEY_MAX, that canonicalising its own path
 *    and query gives the same key, and that the origin URL is the origin's
 *    base followed by exactly the key's path and query;
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
#include "eco/eco.h"
#include "route/canon.h"
#include "route/haproxy_gen.h"
#include "route/route.h"

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_canon: invariant failed: %s\n", what);
        abort();
    }
}

static void check_key_text(const struct canon *c)
{
    check(c->key_len > 0 && c->key_len <= KEY_MAX && c->key_len == strlen(c->key), "key length");
    for (size_t i = 0; i < c->key_len; i++) {
        unsigned char ch = (unsigned char)c->key[i];
        check(ch > 0x20 && ch < 0x7f && ch != '#', "key is printable, without blanks or '#'");
    }
    check(c->path_off > 0 && c->key[c->path_off - 1] == ':', "key has a route");
    check(c->path_len > 0 && c->key[c->path_off] != '/', "path is not empty and relative");
}

/* The origin URL is the base, '/', the key's path, and '?' + its query. */
static void check_origin_url(const struct canon *c)
{
    static char url[KEY_MAX + CONFIG_URL_MAX + 8], want[KEY_MAX + CONFIG_URL_MAX + 8];
    check(canon_origin_url(c, url, sizeof(url)) == 0, "origin URL fits");
    size_t n = origin_url_format_base(&c->route->url, want, sizeof(want));
    snprintf(want + n, sizeof(want) - n, "/%.*s%s%.*s", (int)c->path_len, c->key + c->path_off,
             c->query_len ? "?" : "", (int)c->query_len, c->key + c->query_off);
    check(strcmp(url, want) == 0, "origin URL derives from the key");
}

static enum eco_class all_immutable(const struct canon *c)
{
    (void)c;
    return ECO_IMMUTABLE;
}

static void fuzz_canon(const uint8_t *data, size_t size)
{
    static struct route_table rt;
    static const struct eco no_query = { .name = "noq", .classify = all_immutable };
    if (rt.n == 0) {
        static struct sluice_config cfg;
        char err[256];
        config_defaults(&cfg);
        config_set(&cfg, "origin_generic", "http://127.0.0.1:9000/base", err, sizeof(err));
        config_set(&cfg, "origin_noq", "https://[::1]:8443", err, sizeof(err));
        check(route_table_parse(&rt, "/generic/ generic\n/noq/ noq\n", &cfg, err, sizeof(err)) == 0, "map");
        rt.routes[1].eco = &no_query;
    }
    const char *p = (const char *)data;
    const char *nl1 = memchr(p, '\n', size);
    if (!nl1)
        return;
    const struct route *r = &rt.routes[(nl1 - p) & 1];
    const char *rest = nl1 + 1;
    size_t left = size - (size_t)(rest - p);
    const char *nl2 = memchr(rest, '\n', left);
    size_t rest_len = nl2 ? (size_t)(nl2 - rest) : left;
    const char *query = nl2 ? nl2 + 1 : NULL;
    size_t query_len = nl2 ? left - rest_len - 1 : 0;

    static char path[KEY_MAX * 8];
    if (r->prefix_len + rest_len > sizeof(path))
        return;
    memcpy(path, r->prefix, r->prefix_len);
    memcpy(path + r->prefix_len, rest, rest_len);
    static struct canon c, again;
    int rc = canon_request(r, path, r->prefix_len + rest_len, query, query_len, NULL, 0, &c);
    if (rc != CANON_OK) {
        check(canon_strerror(rc) != NULL && c.key[0] == '\0', "a refusal leaves no key");
        return;
    }
    check_key_text(&c);
    check_origin_url(&c);
    /* idempotence: the key's own path (and query) canonicalise to themselves */
    memcpy(path + r->prefix_len, c.key + c.path_off, c.path_len);
    rc = canon_request(r, path, r->prefix_len + c.path_len, c.key + c.query_off, c.query_len, NULL, 0, &again);
    check(rc == CANON_OK && strcmp(c.key, again.key) == 0, "canonical form is idempotent");
    check(memcmp(c.hash, again.hash, KEY_HASH_LEN) == 0, "same key, same hash");
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
        haproxy_gen_print(&rt, cfg, devnull);
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
    fuzz_canon(data, size);

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
