/*
 * pypi.c - the Python package index: the index host (pypi.org, route
 * "pypi") and its files host (files.pythonhosted.org, route "pypi_files").
 *
 * Index paths after the route prefix, once canonical:
 *   simple/, simple/<project>/      PEP 503 pages: metadata, in two
 *                                   representations by Accept (HTML, and
 *                                   PEP 691 JSON, which pip asks for first)
 *   simple/<Project_Name>           301 to simple/<project-name>/ (PEP 503
 *                                   names: lower case, runs of -_. as one -)
 *   pypi/<project>/json,
 *   pypi/<project>/<version>/json   the JSON API: metadata
 *   .../<file>.whl, .tar.gz, .zip,  a distribution file the index serves
 *   .tar.bz2, .egg, + ".metadata"   itself (a mirror whose pages link
 *                                   "../../packages/..."): immutable
 *   anything else                   never cached (uploads are POSTs anyway)
 * Files paths: every file and PEP 658 .metadata file is immutable (a file
 * name can never be uploaded twice).
 *
 * Links in the index that point under the files host, or under the index
 * host itself (absolute, or relative as PEP 503 allows, resolved against
 * the page's origin URL), are re-pointed at public_url + that route's
 * prefix, so pip downloads through the edge. In HTML only the href value
 * changes: the #sha256= fragment and every other byte of the page stay as
 * they were; in JSON, the url values of files[] (PEP 691), urls[] and
 * releases.*[] (the JSON API). A simple page is rewritten as what it is
 * (JSON when it starts with '{', else HTML), whatever was asked for: a
 * static mirror answers HTML to pip's JSON Accept.
 */
#include <ctype.h>
#include <string.h>

#include "core/common.h"
#include "eco/digest_notes.h"
#include "eco/eco.h"
#include "eco/html_rewrite.h"
#include "eco/json_rewrite.h"
#include "eco/link.h"
#include "route/canon.h"

#define SIMPLE_JSON "application/vnd.pypi.simple.v1+json"

/* "simple/<project>[/]": where the project name is, or false. */
static bool simple_project(const struct canon *c, const char **name, size_t *len)
{
    const char *p = c->key + c->path_off;
    size_t n = c->path_len;
    if (!sl_starts_with(p, n, "simple/") || n == 7)
        return false;
    *name = p + 7;
    *len = n - 7 - (p[n - 1] == '/');
    return *len > 0 && !memchr(*name, '/', *len);
}

/* A distribution file name (or its PEP 658 metadata file): a name is
 * never uploaded twice, so its bytes never change. */
static bool is_distribution(const char *p, size_t n)
{
    static const char *const exts[] = { ".whl", ".tar.gz", ".zip", ".tar.bz2", ".egg" };
    if (n > 9 && sl_ends_with(p, n, ".metadata"))
        n -= 9;
    for (size_t i = 0; i < SL_ARRAY_LEN(exts); i++)
        if (n > strlen(exts[i]) && sl_ends_with(p, n, exts[i]) && p[n - strlen(exts[i]) - 1] != '/')
            return true;
    return false;
}

static enum eco_class pypi_classify(const struct canon *c)
{
    const char *p = c->key + c->path_off, *name;
    size_t n = c->path_len, len;
    if ((n == 7 && sl_starts_with(p, n, "simple/")) || simple_project(c, &name, &len))
        return ECO_METADATA;
    if (sl_starts_with(p, n, "pypi/") && n > 10 && memcmp(p + n - 5, "/json", 5) == 0)
        return ECO_METADATA;
    return is_distribution(p, n) ? ECO_IMMUTABLE : ECO_NEVER;
}

/* PEP 503: lower case, and each run of '-', '_', '.' as one '-'. A
 * percent escape in the canonical path ("%5D") is kept as it is: canon
 * writes its hex digits in upper case, so lowering them would name a path
 * that canonicalises back to this one, a redirect to itself. */
static void normalise_name(const char *name, size_t len, struct sl_buf *out)
{
    for (size_t i = 0; i < len; i++) {
        if (name[i] == '%' && i + 2 < len) {
            sl_buf_append(out, name + i, 3);
            i += 2;
            continue;
        }
        bool sep = name[i] == '-' || name[i] == '_' || name[i] == '.';
        if (sep && out->len && out->data[out->len - 1] == '-')
            continue;
        char ch = sep ? '-' : (char)tolower((unsigned char)name[i]);
        sl_buf_append(out, &ch, 1);
    }
}

static bool pypi_redirect(const struct canon *c, struct sl_buf *to)
{
    const char *name, *p = c->key + c->path_off;
    size_t len;
    if (!simple_project(c, &name, &len))
        return false;
    sl_buf_append_str(to, "simple/");
    normalise_name(name, len, to);
    sl_buf_append_str(to, "/");
    return to->len != c->path_len || memcmp(to->data, p, c->path_len) != 0;
}

static const char *pypi_variant(const struct canon *c, const char *accept, size_t len)
{
    bool simple = sl_starts_with(c->key + c->path_off, c->path_len, "simple/");
    return simple && sl_find_ci(accept, len, SIMPLE_JSON) ? "json" : NULL;
}

static const char *const pypi_variants[] = { "json", NULL };

static const char *pypi_variant_accept(const struct canon *c)
{
    if (!sl_starts_with(c->key + c->path_off, c->path_len, "simple/"))
        return NULL;
    return c->variant ? SIMPLE_JSON : "text/html";
}

/* ------------------------------------------------------------ rewriting */

/* Where links may go: the files host and the index host, each re-pointed
 * at the edge's route for it. */
struct rebase {
    char from[CONFIG_URL_MAX];
    char to[CONFIG_URL_MAX];
};

struct pypi_rw {
    struct json_rw *json;
    struct html_rw *html;
    char page[CONFIG_URL_MAX + KEY_MAX + 2];
    struct rebase bases[2];
    int n_bases;
    struct sl_buf scratch;
    struct sl_buf lead;          /* a simple page's leading whitespace, until its format is known */
    rw_emit_fn emit;
    void *emit_ctx;
    /* digests: the file being read (JSON: its object) and where it goes */
    const struct route_table *routes;
    struct digest_notes *notes;
    size_t public_len;           /* strlen(public_url): a rewritten link minus it is the edge path */
    const char *const *paths;    /* the JSON patterns (which are urls, which digests) */
    uint64_t file;               /* json_rw_container of the file object */
    struct sl_buf edge_path, sha256;
};

/* The file just read: note its sha256 under its edge key. */
static void note_file(struct pypi_rw *rw)
{
    struct eco_digest d;
    if (rw->notes && rw->edge_path.len &&
        digest_parse_hex("SHA256", (const char *)rw->sha256.data, rw->sha256.len, &d))
        digest_notes_put_link(rw->notes, rw->routes, (const char *)rw->edge_path.data, rw->edge_path.len, &d);
    sl_buf_clear(&rw->edge_path);
    sl_buf_clear(&rw->sha256);
}

/* A link re-pointed at the edge (out[from..]): remember its edge path. */
static void keep_edge_path(struct pypi_rw *rw, const struct sl_buf *out, size_t from)
{
    sl_buf_clear(&rw->edge_path);
    if (out->len > from + rw->public_len)
        sl_buf_append(&rw->edge_path, out->data + from + rw->public_len, out->len - from - rw->public_len);
}

/* A "#sha256=<hex>" fragment (PEP 503): its digest, for the link. */
static void keep_fragment(struct pypi_rw *rw, const char *frag, size_t len)
{
    if (len > 8 && memcmp(frag, "#sha256=", 8) == 0) {
        sl_buf_clear(&rw->sha256);
        sl_buf_append(&rw->sha256, frag + 8, len - 8);
    }
}

static void add_base(struct pypi_rw *rw, const struct route *r, const char *public_url)
{
    if (!r || !r->has_origin)
        return;
    struct rebase *b = &rw->bases[rw->n_bases++];
    origin_url_format_base(&r->url, b->from, sizeof(b->from));
    int n = snprintf(b->to, sizeof(b->to), "%s%s", public_url, r->prefix);
    while (n > 0 && b->to[n - 1] == '/')
        b->to[--n] = '\0';
}

/* link (no fragment) re-pointed at the edge, appended to out; false when
 * it points elsewhere. */
static bool rebase(struct pypi_rw *rw, const char *link, size_t len, struct sl_buf *out)
{
    for (int i = 0; i < rw->n_bases; i++)
        if (link_rebase(rw->page, link, len, rw->bases[i].from, rw->bases[i].to, out) == 1)
            return true;
    return false;
}

/* A JSON url value: the part before '#' re-pointed, the fragment kept. */
static bool rewrite_json_url(struct pypi_rw *rw, const char *in, size_t len, struct sl_buf *out)
{
    const char *hash = memchr(in, '#', len);
    size_t pre = hash ? (size_t)(hash - in) : len;
    if (!rebase(rw, in, pre, out))
        return false;
    keep_edge_path(rw, out, 0);
    keep_fragment(rw, in + pre, len - pre);
    sl_buf_append(out, in + pre, len - pre);
    return true;
}

/* A value of a file object: its url is rewritten, its sha256 kept. Both
 * are in one object (the url directly, the digest one level down). */
static bool on_json_value(void *ctx, const char *in, size_t len, struct sl_buf *out)
{
    struct pypi_rw *rw = ctx;
    const char *pattern = rw->paths[json_rw_matched(rw->json)];
    bool url = strcmp(pattern + strlen(pattern) - 4, ".url") == 0;
    uint64_t file = json_rw_container(rw->json, url ? 0 : 1);
    if (file != rw->file) {
        note_file(rw);
        rw->file = file;
    }
    if (url)
        return rewrite_json_url(rw, in, len, out);
    sl_buf_clear(&rw->sha256);
    sl_buf_append(&rw->sha256, in, len);
    return false;
}

/* An href as written: entities decoded, re-pointed, escaped for its quote;
 * the fragment's bytes kept exactly. */
static bool rewrite_href(void *ctx, const char *value, size_t len, char quote, struct sl_buf *out)
{
    struct pypi_rw *rw = ctx;
    const char *hash = memchr(value, '#', len);
    size_t pre = hash ? (size_t)(hash - value) : len;
    struct sl_buf link = { 0 };
    sl_buf_clear(&rw->scratch);
    html_unescape(value, pre, &link);
    bool ok = link.len && rebase(rw, (const char *)link.data, link.len, &rw->scratch);
    if (ok) {
        keep_edge_path(rw, &rw->scratch, 0);
        sl_buf_clear(&rw->sha256);
        keep_fragment(rw, value + pre, len - pre);
        note_file(rw);
        html_escape_attr((const char *)rw->scratch.data, rw->scratch.len, quote, out);
        sl_buf_append(out, value + pre, len - pre);
    }
    sl_buf_free(&link);
    return ok;
}

static struct eco_rewriter *pypi_rw_open(const struct eco_rewrite_ctx *ctx, rw_emit_fn emit, void *emit_ctx)
{
    static const char *const api_json[] = { "urls[].url", "releases.*[].url", "urls[].digests.sha256",
                                            "releases.*[].digests.sha256" };
    const struct canon *c = ctx->c;
    struct pypi_rw *rw = sl_calloc(1, sizeof(*rw));
    sl_strlcpy(rw->page, ctx->page_url, sizeof(rw->page));
    add_base(rw, route_by_name(ctx->routes, "pypi_files", 10), ctx->public_url);
    add_base(rw, c->route, ctx->public_url);
    rw->emit = emit;
    rw->emit_ctx = emit_ctx;
    rw->routes = ctx->routes;
    rw->notes = ctx->notes;
    rw->public_len = strlen(ctx->public_url);
    if (!sl_starts_with(c->key + c->path_off, c->path_len, "simple/")) {
        rw->paths = api_json;
        rw->json = json_rw_new(api_json, SL_ARRAY_LEN(api_json), on_json_value, rw, emit, emit_ctx);
    }
    return (struct eco_rewriter *)rw;
}

/* A simple page is JSON (PEP 691) or HTML by what it is, not by what was
 * asked: a static mirror answers HTML whatever the Accept. Whitespace is
 * held until the first other byte says which ('{' is JSON). */
static bool pick_format(struct pypi_rw *rw, const uint8_t *data, size_t len, size_t *ws)
{
    static const char *const simple_json[] = { "files[].url", "files[].hashes.sha256" };
    size_t i = 0;
    while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n'))
        i++;
    *ws = i;
    if (i == len)
        return false;
    if (data[i] == '{') {
        rw->paths = simple_json;
        rw->json = json_rw_new(simple_json, SL_ARRAY_LEN(simple_json), on_json_value, rw, rw->emit, rw->emit_ctx);
    }
    else
        rw->html = html_rw_new("a", "href", rewrite_href, rw, rw->emit, rw->emit_ctx);
    return true;
}

static int feed_picked(struct pypi_rw *rw, const uint8_t *data, size_t len)
{
    return rw->json ? json_rw_feed(rw->json, data, len) : html_rw_feed(rw->html, data, len);
}

static int pypi_rw_feed(struct eco_rewriter *p, const uint8_t *data, size_t len)
{
    struct pypi_rw *rw = (struct pypi_rw *)p;
    size_t ws;
    if (rw->json || rw->html)
        return feed_picked(rw, data, len);
    bool picked = pick_format(rw, data, len, &ws);
    sl_buf_append(&rw->lead, data, ws);
    if (!picked)
        return 0;
    int rc = rw->lead.len ? feed_picked(rw, rw->lead.data, rw->lead.len) : 0;
    sl_buf_free(&rw->lead);
    return rc == 0 ? feed_picked(rw, data + ws, len - ws) : rc;
}

static int pypi_rw_finish(struct eco_rewriter *p)
{
    struct pypi_rw *rw = (struct pypi_rw *)p;
    if (!rw->json && !rw->html) {   /* empty or blank: an (empty) HTML page */
        rw->html = html_rw_new("a", "href", rewrite_href, rw, rw->emit, rw->emit_ctx);
        if (rw->lead.len && html_rw_feed(rw->html, rw->lead.data, rw->lead.len) != 0)
            return -1;
    }
    int rc = rw->json ? json_rw_finish(rw->json) : html_rw_finish(rw->html);
    if (rc == 0)
        note_file(rw);
    return rc;
}

static void pypi_rw_close(struct eco_rewriter *p)
{
    struct pypi_rw *rw = (struct pypi_rw *)p;
    if (rw->json)
        json_rw_free(rw->json);
    if (rw->html)
        html_rw_free(rw->html);
    sl_buf_free(&rw->scratch);
    sl_buf_free(&rw->lead);
    sl_buf_free(&rw->edge_path);
    sl_buf_free(&rw->sha256);
    free(rw);
}

static const struct eco_rewriter_ops pypi_rewriter = { pypi_rw_open, pypi_rw_feed, pypi_rw_finish, pypi_rw_close };

const struct eco eco_pypi = {
    .name = "pypi",
    .default_origin = "https://pypi.org",
    .classify = pypi_classify,
    .redirect = pypi_redirect,
    .variant = pypi_variant,
    .variants = pypi_variants,
    .variant_accept = pypi_variant_accept,
    .rewriter = &pypi_rewriter,
    .digests = true,
};

/* ------------------------------------------------------------ the files */

static enum eco_class files_classify(const struct canon *c)
{
    SL_UNUSED(c);
    return ECO_IMMUTABLE;
}

const struct eco eco_pypi_files = {
    .name = "pypi_files",
    .default_origin = "https://files.pythonhosted.org",
    .classify = files_classify,
    .digests = true,
};
