/*
 * go.c - the Go module proxy protocol (proxy.golang.org, Athens, any
 * GOPROXY) and the checksum database it proxies (sum.golang.org).
 *
 * Paths after the route prefix, once canonical:
 *   <module>/@v/list, <module>/@latest     metadata (new versions appear)
 *   <module>/@v/<v>.info, .mod, .zip       immutable when <v> is a
 *                                          canonical semantic version; an
 *                                          .info for a query (master, a
 *                                          commit) is metadata, a .mod or
 *                                          .zip for one is never cached
 *   sumdb/<db>/supported                   metadata (whether the proxy
 *                                          serves the checksum database)
 *   sumdb/<db>/lookup/<module>@<v>         metadata (a signed answer)
 *   sumdb/<db>/tile/...                    immutable (a tile, or a
 *                                          partial tile of a given width,
 *                                          never changes)
 *   sumdb/<db>/latest and anything else    never cached
 * Module paths and versions are case-encoded by Go ("!azure" for "Azure")
 * and sent with the '!' escaped ("%21azure"): both spellings, and a raw
 * capital letter, become the '!' form, so one module is one key.
 *
 * A 404 or 410 is relayed as it is (Go then tries the next proxy in
 * GOPROXY); an artifact's is never remembered (eco.h: only metadata 404s
 * are). Go never retries a 503, so a fill that finds the origin's queue
 * full waits in it instead (wait_when_full).
 */
#include <ctype.h>
#include <string.h>

#include "core/common.h"
#include "eco/eco.h"
#include "route/canon.h"

/* The canonical path with Go's case encoding applied: "%21" and a capital
 * letter become '!' + the lower-case letter. */
static int go_canon(const char *rest, size_t rest_len, struct canon *out)
{
    int rc = canon_path(rest, rest_len, out);
    if (rc != CANON_OK)
        return rc;
    char tmp[KEY_MAX + 1];
    size_t n = 0, from = out->path_off, end = out->path_off + out->path_len;
    for (size_t i = from; i < end; i++) {
        const char *k = out->key;
        bool bang = k[i] == '%' && i + 2 < end && k[i + 1] == '2' && k[i + 2] == '1';
        bool upper = isupper((unsigned char)k[i]);
        if (n + 2 > KEY_MAX - from)
            return CANON_ERR_TOO_LONG;
        if (bang || upper)
            tmp[n++] = '!';
        if (!bang)
            tmp[n++] = upper ? (char)tolower((unsigned char)k[i]) : k[i];
        else
            i += 2;
    }
    memcpy(out->key + from, tmp, n);
    out->path_len = n;
    out->key_len = from + n;
    return CANON_OK;
}

/* Digits without a leading zero; advances *i. */
static bool number(const char *p, size_t n, size_t *i)
{
    size_t start = *i;
    while (*i < n && isdigit((unsigned char)p[*i]))
        (*i)++;
    return *i > start && (p[start] != '0' || *i == start + 1);
}

/* vMAJOR.MINOR.PATCH[-prerelease][+incompatible], case-encoded. */
static bool canonical_version(const char *p, size_t n)
{
    size_t i = 1;
    if (n < 6 || p[0] != 'v' || !number(p, n, &i) || i >= n || p[i++] != '.' || !number(p, n, &i) || i >= n ||
        p[i++] != '.' || !number(p, n, &i))
        return false;
    if (i < n && p[i] == '-') {
        size_t start = ++i;
        while (i < n && (isalnum((unsigned char)p[i]) || p[i] == '-' || p[i] == '.' || p[i] == '!'))
            i++;
        if (i == start)
            return false;
    }
    return i == n || (n - i == 13 && memcmp(p + i, "+incompatible", 13) == 0);
}

static enum eco_class sumdb_classify(const char *p, size_t n)
{
    const char *slash = memchr(p, '/', n);   /* after the database's name */
    if (!slash || slash == p)
        return ECO_NEVER;
    size_t off = (size_t)(slash + 1 - p);
    const char *r = p + off;
    size_t m = n - off;
    if ((m == 9 && memcmp(r, "supported", 9) == 0) || (sl_starts_with(r, m, "lookup/") && m > 7))
        return ECO_METADATA;
    return sl_starts_with(r, m, "tile/") && m > 5 ? ECO_IMMUTABLE : ECO_NEVER;
}

static enum eco_class go_classify(const struct canon *c)
{
    const char *p = c->key + c->path_off;
    size_t n = c->path_len;
    if (sl_starts_with(p, n, "sumdb/"))
        return sumdb_classify(p + 6, n - 6);
    if (sl_ends_with(p, n, "/@latest") && n > 8)
        return ECO_METADATA;
    const char *at = memmem(p, n, "/@v/", 4);
    if (!at || at == p)
        return ECO_NEVER;
    const char *file = at + 4;
    size_t len = n - (size_t)(file - p);
    if (memchr(file, '/', len))
        return ECO_NEVER;
    if (len == 4 && memcmp(file, "list", 4) == 0)
        return ECO_METADATA;
    bool info = sl_ends_with(file, len, ".info"), mod = sl_ends_with(file, len, ".mod"),
         zip = sl_ends_with(file, len, ".zip");
    size_t vlen = len - (info ? 5 : 4);
    if (!info && !mod && !zip)
        return ECO_NEVER;
    if (canonical_version(file, vlen))
        return ECO_IMMUTABLE;
    return info ? ECO_METADATA : ECO_NEVER;
}

const struct eco eco_go = {
    .name = "go",
    .default_origin = "https://proxy.golang.org",
    .canon = go_canon,
    .classify = go_classify,
    .wait_when_full = true,
};
