/*
 * cargo.c - a Cargo sparse registry (index.crates.io, and anything that
 * speaks the sparse protocol): its index (route "cargo_index") and its
 * download host (static.crates.io, route "cargo_dl").
 *
 * Index paths after the route prefix, once canonical (lower case: cargo
 * asks for index files by the lower-cased crate name, and so does the key,
 * so "Serde" and "serde" are one object):
 *   config.json                     metadata; its "dl" is rewritten to the
 *                                   edge (below)
 *   1/<n>, 2/<nn>, 3/<c>/<nnn>,
 *   <ab>/<cd>/<name>                an index file (one JSON line per
 *                                   version): metadata
 *   anything else                   never cached
 * Download paths: "<...>/<crate>/<crate>-<version>.crate" and
 * "<...>/<crate>/<version>/download" (what cargo makes of a dl without
 * markers) are immutable; anything else is never cached.
 *
 * config.json: a "dl" under the cargo_dl origin becomes public_url + the
 * cargo_dl prefix + the rest of its path, markers ({crate}, {version},
 * {prefix}, {lowerprefix}, {sha256-checksum}) kept as they are, so cargo
 * expands them into edge URLs. "api" (publish, yank, owners, login) is
 * left pointing at the registry: the edge is a read-only cache and never
 * sees a token.
 *
 * Digests: each index line names a version and its "cksum" (the sha256 of
 * the .crate). The index rewriter, which passes every byte through
 * unchanged, notes "<crate>@<version>" -> cksum; a download names the same
 * pair when its path has one of the two forms above.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include <yajl/yajl_tree.h>

#include "core/common.h"
#include "eco/digest_notes.h"
#include "eco/eco.h"
#include "eco/json_rewrite.h"
#include "route/canon.h"

static int index_canon(const char *rest, size_t rest_len, struct canon *out)
{
    size_t from = out->key_len;
    int rc = canon_path(rest, rest_len, out);
    for (size_t i = from; rc == CANON_OK && i < out->key_len; i++)
        out->key[i] = (char)tolower((unsigned char)out->key[i]);
    return rc;
}

static bool crate_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
}

static bool crate_name(const char *p, size_t n)
{
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!crate_char(p[i]))
            return false;
    return true;
}

/* "1/a", "2/ab", "3/a/abc", "ab/cd/abcd...": the name's own place. */
static bool index_file(const char *p, size_t n)
{
    const char *name = memrchr(p, '/', n);
    if (!name)
        return false;
    name++;
    size_t len = n - (size_t)(name - p), dir = (size_t)(name - p);
    if (!crate_name(name, len))
        return false;
    if (len <= 2)
        return dir == 2 && p[0] == (char)('0' + len);
    if (len == 3)
        return dir == 4 && p[0] == '3' && p[1] == '/' && p[2] == name[0];
    return dir == 6 && memcmp(p, name, 2) == 0 && p[2] == '/' && memcmp(p + 3, name + 2, 2) == 0;
}

static enum eco_class index_classify(const struct canon *c)
{
    const char *p = c->key + c->path_off;
    size_t n = c->path_len;
    if (sl_bytes_eq(p, n, "config.json") || index_file(p, n))
        return ECO_METADATA;
    return ECO_NEVER;
}

/* The crate and version a download path names, or false. */
static bool dl_names(const char *p, size_t n, const char **crate, size_t *clen, const char **ver, size_t *vlen)
{
    const char *segs[3];
    size_t lens[3];
    int k = 0;
    size_t end = n;
    for (size_t i = n; i-- > 0 && k < 3;) {
        if (p[i] == '/' || i == 0) {
            size_t start = p[i] == '/' ? i + 1 : i;
            segs[k] = p + start;
            lens[k++] = end - start;
            end = i;
        }
    }
    if (k >= 3 && sl_bytes_eq(segs[0], lens[0], "download")) {   /* <crate>/<version>/download */
        *crate = segs[2], *clen = lens[2], *ver = segs[1], *vlen = lens[1];
        return crate_name(*crate, *clen) && *vlen > 0;
    }
    /* <crate>/<crate>-<version>.crate */
    if (k < 2 || lens[0] <= 6 || memcmp(segs[0] + lens[0] - 6, ".crate", 6) != 0)
        return false;
    *crate = segs[1], *clen = lens[1];
    if (!crate_name(*crate, *clen) || lens[0] <= *clen + 7 || strncasecmp(segs[0], *crate, *clen) != 0 ||
        segs[0][*clen] != '-')
        return false;
    *ver = segs[0] + *clen + 1;
    *vlen = lens[0] - *clen - 7;
    return true;
}

static enum eco_class dl_classify(const struct canon *c)
{
    const char *crate, *ver;
    size_t clen, vlen;
    return dl_names(c->key + c->path_off, c->path_len, &crate, &clen, &ver, &vlen) ? ECO_IMMUTABLE : ECO_NEVER;
}

/* "cargo:<crate>@<version>", the crate name in lower case. */
static void note_name(const char *crate, size_t clen, const char *ver, size_t vlen, struct sl_buf *out)
{
    sl_buf_append_str(out, "cargo:");
    for (size_t i = 0; i < clen; i++) {
        char ch = (char)tolower((unsigned char)crate[i]);
        sl_buf_append(out, &ch, 1);
    }
    sl_buf_append_str(out, "@");
    sl_buf_append(out, ver, vlen);
}

static bool dl_digest_name(const struct canon *c, struct sl_buf *out)
{
    const char *crate, *ver;
    size_t clen, vlen;
    if (!dl_names(c->key + c->path_off, c->path_len, &crate, &clen, &ver, &vlen))
        return false;
    note_name(crate, clen, ver, vlen, out);
    return true;
}

/* ------------------------------------------------------------ rewriting */

/*
 * One rewriter for the whole index route: config.json through the JSON
 * rewriter (its "dl" re-pointed), an index file byte for byte, each of its
 * lines read for the version's digest.
 */
struct cargo_rw {
    struct json_rw *json;           /* config.json, else NULL */
    char from[CONFIG_URL_MAX];      /* the cargo_dl origin, no trailing '/' ("" = route off) */
    char to[CONFIG_URL_MAX];        /* public_url + the cargo_dl prefix, no trailing '/' */
    struct digest_notes *notes;
    struct sl_buf line;             /* an index file's current line */
    bool line_too_long;
    rw_emit_fn emit;
    void *emit_ctx;
};

#define CARGO_LINE_MAX ((size_t)1 << 20)

static bool rewrite_dl(void *ctx, const char *in, size_t len, struct sl_buf *out)
{
    struct cargo_rw *rw = ctx;
    size_t n = strlen(rw->from);
    if (!n || len < n || strncasecmp(in, rw->from, n) != 0 || (len > n && in[n] != '/'))
        return false;
    sl_buf_append_str(out, rw->to);
    sl_buf_append(out, in + n, len - n);
    return true;
}

static void dl_bases(struct cargo_rw *rw, const struct eco_rewrite_ctx *ctx)
{
    const struct route *r = route_by_name(ctx->routes, "cargo_dl", 8);
    if (!r || !r->has_origin)
        return;
    origin_url_format_base(&r->url, rw->from, sizeof(rw->from));
    int n = snprintf(rw->to, sizeof(rw->to), "%s%s", ctx->public_url, r->prefix);
    while (n > 0 && rw->to[n - 1] == '/')
        rw->to[--n] = '\0';
}

static struct eco_rewriter *cargo_rw_open(const struct eco_rewrite_ctx *ctx, rw_emit_fn emit, void *emit_ctx)
{
    static const char *const paths[] = { "dl" };
    const struct canon *c = ctx->c;
    struct cargo_rw *rw = sl_calloc(1, sizeof(*rw));
    rw->notes = ctx->notes;
    rw->emit = emit;
    rw->emit_ctx = emit_ctx;
    if (sl_bytes_eq(c->key + c->path_off, c->path_len, "config.json")) {
        dl_bases(rw, ctx);
        rw->json = json_rw_new(paths, SL_ARRAY_LEN(paths), rewrite_dl, rw, emit, emit_ctx);
    }
    return (struct eco_rewriter *)rw;
}

/* One index line: note its version's cksum. A line that is not JSON is
 * the document's fault, not ours: the whole file is refused. */
static int index_line(struct cargo_rw *rw)
{
    char err[64];
    sl_buf_append(&rw->line, "", 1);   /* NUL for yajl */
    yajl_val v = yajl_tree_parse((const char *)rw->line.data, err, sizeof(err));
    sl_buf_clear(&rw->line);
    if (!v)
        return -1;
    static const char *name_path[] = { "name", NULL }, *vers_path[] = { "vers", NULL },
                      *ck_path[] = { "cksum", NULL };
    const char *name = YAJL_GET_STRING(yajl_tree_get(v, name_path, yajl_t_string));
    const char *vers = YAJL_GET_STRING(yajl_tree_get(v, vers_path, yajl_t_string));
    const char *ck = YAJL_GET_STRING(yajl_tree_get(v, ck_path, yajl_t_string));
    int rc = v->type == yajl_t_object ? 0 : -1;
    if (rc == 0 && name && vers && ck && rw->notes) {
        struct sl_buf key = { 0 };
        note_name(name, strlen(name), vers, strlen(vers), &key);
        digest_notes_put_hex(rw->notes, (const char *)key.data, key.len, "SHA256", ck, strlen(ck));
        sl_buf_free(&key);
    }
    yajl_tree_free(v);
    return rc;
}

static bool blank(const struct sl_buf *b)
{
    for (size_t i = 0; i < b->len; i++)
        if (!isspace(b->data[i]))
            return false;
    return true;
}

static int index_feed(struct cargo_rw *rw, const uint8_t *data, size_t len)
{
    rw->emit(rw->emit_ctx, data, len);
    for (size_t i = 0; i < len; i++) {
        if (data[i] != '\n') {
            if (rw->line.len < CARGO_LINE_MAX)
                sl_buf_append(&rw->line, &data[i], 1);
            else
                rw->line_too_long = true;
            continue;
        }
        if (rw->line_too_long)
            return -1;
        if (!blank(&rw->line) && index_line(rw) != 0)
            return -1;
        sl_buf_clear(&rw->line);
    }
    return 0;
}

static int cargo_rw_feed(struct eco_rewriter *p, const uint8_t *data, size_t len)
{
    struct cargo_rw *rw = (struct cargo_rw *)p;
    if (len == 0)
        return 0;
    return rw->json ? json_rw_feed(rw->json, data, len) : index_feed(rw, data, len);
}

static int cargo_rw_finish(struct eco_rewriter *p)
{
    struct cargo_rw *rw = (struct cargo_rw *)p;
    if (rw->json)
        return json_rw_finish(rw->json);
    if (rw->line_too_long)
        return -1;
    return blank(&rw->line) ? 0 : index_line(rw);
}

static void cargo_rw_close(struct eco_rewriter *p)
{
    struct cargo_rw *rw = (struct cargo_rw *)p;
    if (rw->json)
        json_rw_free(rw->json);
    sl_buf_free(&rw->line);
    free(rw);
}

static const struct eco_rewriter_ops cargo_rewriter = { cargo_rw_open, cargo_rw_feed, cargo_rw_finish,
                                                        cargo_rw_close };

const struct eco eco_cargo_index = {
    .name = "cargo_index",
    .default_origin = "https://index.crates.io",
    .canon = index_canon,
    .classify = index_classify,
    .rewriter = &cargo_rewriter,
};

const struct eco eco_cargo_dl = {
    .name = "cargo_dl",
    .default_origin = "https://static.crates.io",
    .classify = dl_classify,
    .digests = true,
    .digest_name = dl_digest_name,
};
