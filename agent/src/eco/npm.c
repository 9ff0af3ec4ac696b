/*
 * npm.c - the npm registry (registry.npmjs.org and anything that speaks
 * its protocol: Verdaccio, Nexus, Artifactory).
 *
 * Paths after the route prefix, once canonical:
 *   <name>, @<scope>/<name>               the packument: metadata, in two
 *                                         representations by Accept (full,
 *                                         and the abbreviated "corgi" one)
 *   <name>/-/<file>.tgz,
 *   @<scope>/<name>/-/<file>.tgz          a tarball: immutable (a version
 *                                         is never republished)
 *   -/...                                 search, login, whoami, audit,
 *                                         dist-tags...: never cached
 *   anything else (<name>/<version>, ...)  never cached
 * Clients ask for a scoped packument as "@scope%2fname"; that one encoded
 * '/' is the ecosystem's own and becomes a '/' before the shared rules run,
 * so "@scope%2fname" and "@scope/name" are one key. The origin is asked for
 * "@scope%2fname", the form every registry answers.
 *
 * Every dist.tarball of a packument (both representations) is rewritten
 * to public_url + the route prefix + the tarball's path on the registry
 * (the registry's base path taken off): clients that follow the URL as
 * published (pnpm, yarn, older npm) come back through the edge. The
 * registry is assumed to serve its tarballs at the paths it publishes, as
 * npmjs, Verdaccio and Nexus do.
 */
#include <string.h>
#include <strings.h>

#include "core/common.h"
#include "eco/digest_notes.h"
#include "eco/eco.h"
#include "eco/json_rewrite.h"
#include "route/canon.h"

#define CORGI "application/vnd.npm.install-v1+json"

/* "@scope%2fname..." -> "@scope/name...": the one encoded '/' npm defines. */
static int npm_canon(const char *rest, size_t rest_len, struct canon *out)
{
    if (rest_len > 4 && rest[0] == '@') {
        for (size_t i = 1; i + 2 < rest_len && rest[i] != '/'; i++) {
            if (rest[i] == '%' && rest[i + 1] == '2' && (rest[i + 2] == 'f' || rest[i + 2] == 'F')) {
                char *copy = sl_malloc(rest_len);
                memcpy(copy, rest, i);
                copy[i] = '/';
                memcpy(copy + i + 1, rest + i + 3, rest_len - i - 3);
                int rc = canon_path(copy, rest_len - 2, out);
                free(copy);
                return rc;
            }
        }
    }
    return canon_path(rest, rest_len, out);
}

/* Length of the package name at the start of path: "left-pad" or
 * "@scope/name"; 0 when there is none. */
static size_t name_len(const char *p, size_t n)
{
    const char *slash = memchr(p, '/', n);
    if (n == 0 || p[0] == '-' || p[0] == '.' || p[0] == '_')
        return 0;
    if (p[0] != '@')
        return slash ? (size_t)(slash - p) : n;
    if (!slash || slash == p + 1)
        return 0;
    const char *second = memchr(slash + 1, '/', n - (size_t)(slash + 1 - p));
    size_t len = second ? (size_t)(second - p) : n;
    return len > (size_t)(slash + 1 - p) ? len : 0;
}

static bool is_tarball(const char *p, size_t n)
{
    /* "-/<file>.tgz", one segment after the "-" */
    return n > 6 && p[0] == '-' && p[1] == '/' && !memchr(p + 2, '/', n - 2) && n - 2 > 4 &&
           memcmp(p + n - 4, ".tgz", 4) == 0;
}

static enum eco_class npm_classify(const struct canon *c)
{
    const char *p = c->key + c->path_off;
    size_t n = c->path_len, name = name_len(p, n);
    if (name == 0)
        return ECO_NEVER;
    if (name == n)
        return ECO_METADATA;
    if (p[name] == '/' && is_tarball(p + name + 1, n - name - 1))
        return ECO_IMMUTABLE;
    return ECO_NEVER;
}

static const char *npm_variant(const struct canon *c, const char *accept, size_t len)
{
    SL_UNUSED(c);
    return sl_find_ci(accept, len, CORGI) ? "corgi" : NULL;
}

static const char *const npm_variants[] = { "corgi", NULL };

static const char *npm_variant_accept(const struct canon *c)
{
    return c->variant ? CORGI "; q=1.0, application/json; q=0.8, */*" : "application/json";
}

/* The registry's URL: "@scope/name" packuments as "@scope%2fname". */
static int npm_origin_url(const struct canon *c, char *out, size_t outlen)
{
    const char *p = c->key + c->path_off;
    size_t n = origin_url_format_base(&c->route->url, out, outlen);
    const char *slash = p[0] == '@' ? memchr(p, '/', c->path_len) : NULL;
    int m;
    if (c->cls == ECO_METADATA && slash)
        m = snprintf(out + n, outlen - n, "/%.*s%%2f%.*s", (int)(slash - p), p,
                     (int)(c->path_len - (size_t)(slash + 1 - p)), slash + 1);
    else
        m = snprintf(out + n, outlen - n, "/%.*s", (int)c->path_len, p);
    return n > 0 && m > 0 && (size_t)m < outlen - n ? 0 : -1;
}

/* ------------------------------------------------------------ rewriting */

struct npm_rw {
    struct json_rw *json;
    struct sl_buf to_base;       /* public_url + the route prefix, no trailing '/' */
    const char *from_path;       /* the registry's base path ("" or "/npm-proxy") */
    /* the dist object being read: its tarball's edge path and its digests */
    const struct route_table *routes;   /* the rewrite context's (long-lived) */
    const struct route *route;
    struct digest_notes *notes;
    uint64_t dist;               /* json_rw_container of the dist object */
    struct sl_buf edge_path, integrity, shasum;
};

/* The dist object just read: note its tarball's digest (the SRI
 * integrity, else the sha1 shasum) under the tarball's edge key. */
static void note_dist(struct npm_rw *rw)
{
    struct eco_digest d;
    bool ok = rw->edge_path.len &&
              (digest_parse_sri((const char *)rw->integrity.data, rw->integrity.len, &d) ||
               digest_parse_hex("SHA1", (const char *)rw->shasum.data, rw->shasum.len, &d));
    if (ok && rw->notes)
        digest_notes_put_link(rw->notes, rw->routes, (const char *)rw->edge_path.data, rw->edge_path.len, &d);
    sl_buf_clear(&rw->edge_path);
    sl_buf_clear(&rw->integrity);
    sl_buf_clear(&rw->shasum);
}

/* dist.tarball: keep the path on the registry, put the edge in front. */
static bool rewrite_tarball(struct npm_rw *rw, const char *in, size_t len, struct sl_buf *out)
{
    const char *scheme_end = sl_find_ci(in, len, "://");
    if (!scheme_end)
        return false;
    const char *path = memchr(scheme_end + 3, '/', len - (size_t)(scheme_end + 3 - in));
    if (!path)
        return false;
    size_t plen = len - (size_t)(path - in), base = strlen(rw->from_path);
    if (base && plen > base && memcmp(path, rw->from_path, base) == 0 && path[base] == '/') {
        path += base;
        plen -= base;
    }
    sl_buf_append(out, rw->to_base.data, rw->to_base.len);
    sl_buf_append(out, path, plen);
    const struct route *r = rw->route;
    sl_buf_append(&rw->edge_path, r->prefix, r->prefix_len - (r->prefix[r->prefix_len - 1] == '/'));
    sl_buf_append(&rw->edge_path, path, plen);
    return true;
}

/* A value of a dist object: the tarball is rewritten, the digests kept. */
static bool on_dist_value(void *ctx, const char *in, size_t len, struct sl_buf *out)
{
    struct npm_rw *rw = ctx;
    uint64_t dist = json_rw_container(rw->json, 0);
    if (dist != rw->dist) {
        note_dist(rw);
        rw->dist = dist;
    }
    switch (json_rw_matched(rw->json)) {
    case 0:
        return rewrite_tarball(rw, in, len, out);
    case 1:
        sl_buf_append(&rw->integrity, in, len);
        return false;
    default:
        sl_buf_append(&rw->shasum, in, len);
        return false;
    }
}

static void npm_rw_base(struct npm_rw *rw, const struct eco_rewrite_ctx *ctx)
{
    const struct route *r = ctx->c->route;
    sl_buf_append_str(&rw->to_base, ctx->public_url);
    sl_buf_append(&rw->to_base, r->prefix, r->prefix_len);
    while (rw->to_base.len && rw->to_base.data[rw->to_base.len - 1] == '/')
        rw->to_base.data[--rw->to_base.len] = '\0';
    rw->from_path = r->url.base_path;
}

static struct eco_rewriter *npm_rw_open(const struct eco_rewrite_ctx *ctx, rw_emit_fn emit, void *emit_ctx)
{
    /* the order is on_dist_value's */
    static const char *const paths[] = { "versions.*.dist.tarball", "versions.*.dist.integrity",
                                         "versions.*.dist.shasum" };
    struct npm_rw *rw = sl_calloc(1, sizeof(*rw));
    npm_rw_base(rw, ctx);
    rw->routes = ctx->routes;
    rw->route = ctx->c->route;
    rw->notes = ctx->notes;
    rw->json = json_rw_new(paths, SL_ARRAY_LEN(paths), on_dist_value, rw, emit, emit_ctx);
    return (struct eco_rewriter *)rw;
}

static int npm_rw_feed(struct eco_rewriter *p, const uint8_t *data, size_t len)
{
    return json_rw_feed(((struct npm_rw *)p)->json, data, len);
}

static int npm_rw_finish(struct eco_rewriter *p)
{
    struct npm_rw *rw = (struct npm_rw *)p;
    int rc = json_rw_finish(rw->json);
    if (rc == 0)
        note_dist(rw);
    return rc;
}

static void npm_rw_close(struct eco_rewriter *p)
{
    struct npm_rw *rw = (struct npm_rw *)p;
    json_rw_free(rw->json);
    sl_buf_free(&rw->to_base);
    sl_buf_free(&rw->edge_path);
    sl_buf_free(&rw->integrity);
    sl_buf_free(&rw->shasum);
    free(rw);
}

static const struct eco_rewriter_ops npm_rewriter = { npm_rw_open, npm_rw_feed, npm_rw_finish, npm_rw_close };

const struct eco eco_npm = {
    .name = "npm",
    .default_origin = "https://registry.npmjs.org",
    .canon = npm_canon,
    .classify = npm_classify,
    .variant = npm_variant,
    .variants = npm_variants,
    .variant_accept = npm_variant_accept,
    .origin_url = npm_origin_url,
    .rewriter = &npm_rewriter,
    .digests = true,
};
