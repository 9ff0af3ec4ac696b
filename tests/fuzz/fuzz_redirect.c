/*
 * fuzz_redirect.c - libFuzzer target for the redirect policy
 * (origin/redirect.h), which reads an origin's Location header: untrusted
 * bytes that decide where the agent fetches what it stores.
 *
 * The input is a Location (up to the first '\n'; the rest, if any, is the
 * address checked by redirect_address_private). Invariants: a followed
 * redirect is an http(s) URL of the origin's own authority or of a listed
 * host, never https to http, and within the hop limit; a refusal always
 * says why.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "core/config.h"
#include "origin/redirect.h"
#include "route/route.h"

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_redirect: invariant failed: %s\n", what);
        abort();
    }
}

static const struct route *test_route(void)
{
    static struct route_table rt;
    if (rt.n == 0) {
        static struct sluice_config cfg;
        char err[256];
        config_defaults(&cfg);
        config_set(&cfg, "origin_generic", "https://origin.example:8443/base", err, sizeof(err));
        config_set(&cfg, "origin_generic_redirect_hosts", "cdn.example, [::1]:9000", err, sizeof(err));
        check(route_table_parse(&rt, "/generic/ generic\n", &cfg, err, sizeof(err)) == 0, "map");
    }
    return &rt.routes[0];
}

/* The followed URL goes where the policy says it may. */
static void check_followed(const char *next)
{
    CURLU *u = curl_url();
    char *host = NULL, *scheme = NULL, *port = NULL;
    check(curl_url_set(u, CURLUPART_URL, next, 0) == CURLUE_OK, "followed URL parses");
    curl_url_get(u, CURLUPART_HOST, &host, 0);
    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
    check(host && scheme && port, "followed URL is complete");
    check(strcmp(scheme, "https") == 0, "never https to http");
    int p = atoi(port);
    check((strcasecmp(host, "origin.example") == 0 && p == 8443) || (strcasecmp(host, "cdn.example") == 0 && p == 443) ||
              (strcmp(host, "[::1]") == 0 && p == 9000),
          "followed host is the origin or listed");
    curl_free(host);
    curl_free(scheme);
    curl_free(port);
    curl_url_cleanup(u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t loc_len = nl ? (size_t)(nl - data) : size;
    char *location = strndup((const char *)data, loc_len);
    char next[CONFIG_URL_MAX * 2];
    int hop = (int)(size % 8);
    enum redirect_verdict v = redirect_check(test_route(), "https://origin.example:8443/base/a/b?x=1", location,
                                             hop, next, sizeof(next));
    check(strlen(next) < sizeof(next), "result is a string");
    if (v == REDIRECT_FOLLOW) {
        check(hop <= REDIRECT_MAX_HOPS, "hop limit");
        check_followed(next);
    } else {
        check(next[0] != '\0' && redirect_verdict_name(v)[0] != '\0', "a refusal says why");
    }
    free(location);
    if (nl) {
        char *ip = strndup((const char *)nl + 1, size - loc_len - 1);
        (void)redirect_address_private(ip);
        free(ip);
    }
    return 0;
}
