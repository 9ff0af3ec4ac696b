/*
 * redirect.c - the redirect policy of origin fetches (see redirect.h).
 *
 * Relative Locations are resolved against the current URL with libcurl's
 * URL API, the same parser that then fetches the result, so what is
 * checked is exactly what is fetched.
 */
#include "origin/redirect.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <string.h>
#include <strings.h>

#include "core/common.h"

static const char *const verdict_names[REDIRECT_VERDICTS] = {
    "followed", "location", "scheme", "host", "address", "hops",
};

const char *redirect_verdict_name(enum redirect_verdict v)
{
    return (unsigned)v < REDIRECT_VERDICTS ? verdict_names[v] : "location";
}

/* The parts of a resolved redirect target that the policy looks at. */
struct target {
    char scheme[8];
    char host[256];   /* lower case, IPv6 without brackets */
    int port;         /* explicit or the scheme's default */
};

static bool get_part(CURLU *u, CURLUPart part, unsigned flags, char *out, size_t outlen)
{
    char *v = NULL;
    bool ok = curl_url_get(u, part, &v, flags) == CURLUE_OK && v && sl_strlcpy(out, v, outlen);
    curl_free(v);
    return ok;
}

static bool read_target(CURLU *u, struct target *t)
{
    char port[8];
    if (!get_part(u, CURLUPART_SCHEME, 0, t->scheme, sizeof(t->scheme)) ||
        !get_part(u, CURLUPART_HOST, 0, t->host, sizeof(t->host)) ||
        !get_part(u, CURLUPART_PORT, CURLU_DEFAULT_PORT, port, sizeof(port)))
        return false;
    size_t n = strlen(t->host);
    if (n >= 2 && t->host[0] == '[' && t->host[n - 1] == ']') {
        memmove(t->host, t->host + 1, n - 2);
        t->host[n - 2] = '\0';
    }
    for (char *p = t->host; *p; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
    t->port = atoi(port);
    return t->port > 0;
}

/* Resolve location against from into t and next; false when unusable. */
static bool resolve(const char *from_url, const char *location, struct target *t, char *next, size_t nextlen)
{
    CURLU *u = curl_url();
    SL_ASSERT(u != NULL);
    bool ok = curl_url_set(u, CURLUPART_URL, from_url, 0) == CURLUE_OK &&
              curl_url_set(u, CURLUPART_URL, location, 0) == CURLUE_OK && read_target(u, t) &&
              get_part(u, CURLUPART_URL, 0, next, nextlen);
    curl_url_cleanup(u);
    return ok;
}

static bool host_allowed(const struct route *r, const struct target *t)
{
    int scheme_port = strcmp(t->scheme, "https") == 0 ? 443 : 80;
    if (strcmp(t->host, r->url.host) == 0 && t->port == r->url.port)
        return true;
    for (int i = 0; i < r->n_redirect_hosts; i++) {
        const struct route_host *h = &r->redirect_hosts[i];
        if (strcmp(t->host, h->host) == 0 && t->port == (h->port ? h->port : scheme_port))
            return true;
    }
    return false;
}

enum redirect_verdict redirect_check(const struct route *r, const char *from_url, const char *location,
                                     int hop, char *next, size_t nextlen)
{
    SL_ASSERT(r && from_url && location && next && nextlen > 0);
    struct target t;
    enum redirect_verdict v = REDIRECT_FOLLOW;
    char resolved[CONFIG_URL_MAX * 2];
    if (hop > REDIRECT_MAX_HOPS)
        v = REDIRECT_REFUSE_HOPS;
    else if (!resolve(from_url, location, &t, resolved, sizeof(resolved)))
        v = REDIRECT_REFUSE_LOCATION;
    else if ((strcmp(t.scheme, "http") != 0 && strcmp(t.scheme, "https") != 0) ||
             (strncasecmp(from_url, SL_LIT("https:")) == 0 && strcmp(t.scheme, "http") == 0))
        v = REDIRECT_REFUSE_SCHEME;
    else if (!host_allowed(r, &t))
        v = REDIRECT_REFUSE_HOST;
    else if (!sl_strlcpy(next, resolved, nextlen))
        v = REDIRECT_REFUSE_LOCATION;
    if (v == REDIRECT_REFUSE_HOPS)
        sl_set_err(next, nextlen, "more than %d redirects", REDIRECT_MAX_HOPS);
    else if (v == REDIRECT_REFUSE_LOCATION)
        sl_set_err(next, nextlen, "no usable URL in Location");
    else if (v == REDIRECT_REFUSE_SCHEME)
        sl_set_err(next, nextlen, "redirect to %s: only http(s), never https to http", t.scheme);
    else if (v == REDIRECT_REFUSE_HOST)
        sl_set_err(next, nextlen, "redirect to %s port %d: not the origin, not in origin_%s_redirect_hosts",
                   t.host, t.port, r->name);
    return v;
}

static bool v4_private(const uint8_t a[4])
{
    return a[0] == 0 || a[0] == 10 || a[0] == 127 || (a[0] == 169 && a[1] == 254) ||
           (a[0] == 172 && (a[1] & 0xf0) == 16) || (a[0] == 192 && a[1] == 168) ||
           (a[0] == 100 && (a[1] & 0xc0) == 64) || a[0] >= 224;
}

bool redirect_address_private(const char *ip)
{
    uint8_t a[16];
    if (inet_pton(AF_INET, ip, a) == 1)
        return v4_private(a);
    if (inet_pton(AF_INET6, ip, a) != 1)
        return true;
    static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    if (memcmp(a, mapped, 12) == 0)
        return v4_private(a + 12);
    bool zero_prefix = true;   /* :: and ::1 */
    for (int i = 0; i < 15; i++)
        zero_prefix = zero_prefix && a[i] == 0;
    return zero_prefix || a[0] == 0xff || (a[0] & 0xfe) == 0xfc || (a[0] == 0xfe && (a[1] & 0xc0) == 0x80);
}
