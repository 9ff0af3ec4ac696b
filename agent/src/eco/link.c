/*
 * link.c - re-point links from one base URL to another (see link.h).
 *
 * Both the link (resolved against the page) and from_base go through
 * libcurl's URL parser, and only the parts it returns are compared, so
 * spelling differences that curl normalises (scheme and host case, an
 * explicit default port, dot segments) do not matter, and the bytes that
 * are appended are the ones curl would fetch.
 */
#include "eco/link.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/common.h"

/* What decides whether a URL is under a base; curl strings or NULL. */
struct url_parts {
    char *scheme, *host, *port, *path, *query;
    bool login;   /* a user name or password */
};

/* Bytes whose meaning in a URL would have to be guessed. */
static bool link_bytes_ok(const char *link, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)link[i];
        if (c <= ' ' || c >= 0x7f || c == '\\')
            return false;
    }
    return true;
}

static char *get_part(CURLU *u, CURLUPart which, unsigned flags)
{
    char *v = NULL;
    if (curl_url_get(u, which, &v, flags) == CURLUE_OK)
        return v;
    curl_free(v);
    return NULL;
}

static bool read_parts(CURLU *u, struct url_parts *p)
{
    char *user = get_part(u, CURLUPART_USER, 0), *password = get_part(u, CURLUPART_PASSWORD, 0);
    p->login = user || password;
    curl_free(user);
    curl_free(password);
    p->scheme = get_part(u, CURLUPART_SCHEME, 0);
    p->host = get_part(u, CURLUPART_HOST, 0);
    p->port = get_part(u, CURLUPART_PORT, CURLU_DEFAULT_PORT);
    p->path = get_part(u, CURLUPART_PATH, 0);
    p->query = get_part(u, CURLUPART_QUERY, 0);
    return p->scheme && p->host && p->port && p->path && p->path[0] == '/';
}

static void free_parts(struct url_parts *p)
{
    curl_free(p->scheme);
    curl_free(p->host);
    curl_free(p->port);
    curl_free(p->path);
    curl_free(p->query);
}

/* Parse url, then resolve rel (if not NULL) against it, into p (which is
 * to be freed whatever the result). */
static bool parse(const char *url, const char *rel, struct url_parts *p)
{
    memset(p, 0, sizeof(*p));
    CURLU *u = curl_url();
    SL_ASSERT(u != NULL);
    bool ok = curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
              (!rel || curl_url_set(u, CURLUPART_URL, rel, 0) == CURLUE_OK) && read_parts(u, p);
    curl_url_cleanup(u);
    return ok;
}

/* Where the rest of u's path starts if u is under base, else NULL. */
static const char *rest_under(const struct url_parts *u, const struct url_parts *base)
{
    size_t n = strlen(base->path);
    if (n && base->path[n - 1] == '/')   /* curl's "/" for a base without a path */
        n--;
    if (strcasecmp(u->scheme, base->scheme) != 0 || strcasecmp(u->host, base->host) != 0 ||
        strtol(u->port, NULL, 10) != strtol(base->port, NULL, 10) || u->login)
        return NULL;
    if (strncmp(u->path, base->path, n) != 0 || (u->path[n] != '/' && u->path[n] != '\0'))
        return NULL;
    return u->path + n;
}

int link_rebase(const char *page_url, const char *link, size_t len, const char *from_base, const char *to_base,
                struct sl_buf *out)
{
    SL_ASSERT(page_url && (link || len == 0) && from_base && to_base && out);
    if (!link_bytes_ok(link, len))
        return -1;
    char *rel = sl_strndup(len ? link : "", len);
    struct url_parts u, base;
    bool parsed = parse(page_url, rel, &u);
    parsed = parse(from_base, NULL, &base) && parsed;
    int rc = -1;
    if (parsed) {
        const char *rest = rest_under(&u, &base);
        rc = rest != NULL;
        if (rest) {
            sl_buf_append_str(out, to_base);
            sl_buf_append_str(out, rest);
            if (u.query) {
                sl_buf_append(out, "?", 1);
                sl_buf_append_str(out, u.query);
            }
        }
    }
    free_parts(&u);
    free_parts(&base);
    free(rel);
    return rc;
}
