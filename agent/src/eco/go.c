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
 * Integrity: a module zip (and a go.mod) is verified against the "h1:"
 * line of its module@version in the checksum database, fetched through the
 * same route beside it (sumdb/sum.golang.org/lookup/<module>@<version>,
 * stored as metadata, so go's own lookup right after is a hit). h1 hashes
 * the files inside the zip (eco/gosum.h), so it is computed once the zip
 * is complete, the last byte held meanwhile. The lookup's signature is not
 * checked here (go does that with the key in its GOSUMDB): this catches a
 * zip that differs from what the database published, not a lying
 * database.
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
#include "eco/gosum.h"

/* The checksum database module zips are verified against, as the origin
 * proxies it ("<origin>/sumdb/sum.golang.org/..."; proxy.golang.org does). */
#define GOSUM_DB "sum.golang.org"
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

/* ----------------------------------------------------------- integrity */

/* Go's case encoding undone: "!a" is "A" (what the checksum database's
 * lines carry). */
static void decode_case(const char *p, size_t n, struct sl_buf *out)
{
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (ch == '!' && i + 1 < n && islower((unsigned char)p[i + 1]))
            ch = (char)toupper((unsigned char)p[++i]);
        sl_buf_append(out, &ch, 1);
    }
}

/* A module zip or go.mod: its module and version (case-encoded, as in the
 * path) and which of the two it is; false for anything else. */
static bool module_file(const struct canon *c, const char **mod, size_t *mlen, const char **ver, size_t *vlen,
                        bool *go_mod)
{
    const char *p = c->key + c->path_off, *at = memmem(p, c->path_len, "/@v/", 4);
    size_t n = c->path_len;
    bool zip = sl_ends_with(p, n, ".zip");
    *go_mod = sl_ends_with(p, n, ".mod");
    if (c->cls != ECO_IMMUTABLE || !at || (!zip && !*go_mod))
        return false;
    *mod = p, *mlen = (size_t)(at - p), *ver = at + 4;
    *vlen = n - (size_t)(*ver - p) - 4;   /* ".zip", ".mod" */
    return true;
}

/* A module zip or go.mod is verified against its line in the checksum
 * database, as the origin proxies it (GOSUM_DB); the lookup is a route path
 * like any other, cached as metadata. */
static bool go_sidecar(const struct canon *c, struct eco_sidecar *out)
{
    const char *mod, *ver;
    size_t mlen, vlen;
    bool go_mod;
    if (!module_file(c, &mod, &mlen, &ver, &vlen, &go_mod))
        return false;
    out->algorithm = go_mod ? "H1MOD" : "H1";
    sl_buf_append_str(&out->path, "sumdb/" GOSUM_DB "/lookup/");
    sl_buf_append(&out->path, mod, mlen);
    sl_buf_append_str(&out->path, "@");
    sl_buf_append(&out->path, ver, vlen);
    return true;
}

/* The h1 line of the module@version (decoded, as the database writes it). */
static bool go_sidecar_digest(const struct canon *c, const char *text, size_t len, struct eco_digest *out)
{
    const char *mod, *ver;
    size_t mlen, vlen;
    bool go_mod;
    struct sl_buf m = { 0 }, v = { 0 };
    if (!module_file(c, &mod, &mlen, &ver, &vlen, &go_mod))
        return false;
    decode_case(mod, mlen, &m);
    decode_case(ver, vlen, &v);
    sl_buf_append(&m, "", 1);
    sl_buf_append(&v, "", 1);
    bool ok = gosum_lookup_line(text, len, (const char *)m.data, (const char *)v.data, go_mod, out->value);
    sl_buf_free(&m);
    sl_buf_free(&v);
    out->algorithm = go_mod ? "H1MOD" : "H1";
    out->len = 32;
    return ok;
}

const struct eco eco_go = {
    .name = "go",
    .default_origin = "https://proxy.golang.org",
    .canon = go_canon,
    .classify = go_classify,
    .wait_when_full = true,
    .digests = true,
    .sidecar = go_sidecar,
    .sidecar_digest = go_sidecar_digest,
};
