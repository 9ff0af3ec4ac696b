/*
 * eco_fixture.h - shared by the ecosystem tests (test_npm.c, test_pypi.c):
 * a route table from a map and settings, canonicalising a request on one of
 * its routes, and running an ecosystem's rewriter over a document fed in
 * pieces of a given size, collecting what it emits.
 */
#ifndef SLUICE_TEST_ECO_FIXTURE_H
#define SLUICE_TEST_ECO_FIXTURE_H

#include <string.h>

#include "core/buf.h"
#include "core/config.h"
#include "eco/digest_notes.h"
#include "eco/eco.h"
#include "route/canon.h"
#include "route/route.h"

static struct route_table fx_rt;
static struct canon fx_cn;
static struct digest_notes *fx_notes;   /* what the rewriters noted (fx_noted) */

/* settings: "name=value" pairs, NULL-terminated. */
static inline void fx_routes(const char *map, const char *const *settings)
{
    struct sluice_config cfg;
    char err[256];
    config_defaults(&cfg);
    for (size_t i = 0; settings && settings[i]; i++) {
        char name[64];
        const char *eq = strchr(settings[i], '=');
        assert_non_null(eq);
        snprintf(name, sizeof(name), "%.*s", (int)(eq - settings[i]), settings[i]);
        if (config_set(&cfg, name, eq + 1, err, sizeof(err)) != 0)
            fail_msg("%s: %s", settings[i], err);
    }
    if (route_table_parse(&fx_rt, map, &cfg, err, sizeof(err)) != 0)
        fail_msg("map: %s", err);
}

/* Canonicalise the full request path (prefix included) on route `name`. */
static inline int fx_canon(const char *name, const char *path, const char *accept)
{
    const struct route *r = route_by_name(&fx_rt, name, strlen(name));
    assert_non_null(r);
    return canon_request(r, path, strlen(path), NULL, 0, accept, accept ? strlen(accept) : 0, &fx_cn);
}

/* A path (prefix included) on a route, and the class it must be in. */
struct fx_class {
    const char *route, *path;
    enum eco_class cls;
};

static inline void fx_assert_classes(const struct fx_class *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (fx_canon(cases[i].route, cases[i].path, NULL) != CANON_OK)
            fail_msg("%s: not canonical", cases[i].path);
        if (fx_cn.cls != cases[i].cls)
            fail_msg("%s: class %d, want %d", cases[i].path, fx_cn.cls, cases[i].cls);
    }
}

static inline const char *fx_origin_url(void)
{
    static char buf[CONFIG_URL_MAX + KEY_MAX + 2];
    assert_int_equal(canon_origin_url(&fx_cn, buf, sizeof(buf)), 0);
    return buf;
}

static inline void fx_collect(void *ctx, const uint8_t *data, size_t len)
{
    sl_buf_append(ctx, data, len);
}

/* Rewrite `doc` for the last fx_canon, fed `piece` bytes at a time; the
 * output goes to *out (NUL-terminated). Returns 0, or -1 when the rewriter
 * refused the document. */
static inline int fx_rewrite(const char *doc, size_t piece, const char *public_url, struct sl_buf *out)
{
    const struct eco_rewriter_ops *ops = fx_cn.route->eco->rewriter;
    if (!fx_notes)
        fx_notes = digest_notes_new(1024);
    struct eco_rewrite_ctx ctx = { &fx_cn, fx_origin_url(), &fx_rt, public_url, fx_notes };
    assert_non_null(ops);
    sl_buf_clear(out);
    struct eco_rewriter *rw = ops->open(&ctx, fx_collect, out);
    size_t len = strlen(doc);
    int rc = 0;
    for (size_t off = 0; off < len && rc == 0; off += piece)
        rc = ops->feed(rw, (const uint8_t *)doc + off, len - off < piece ? len - off : piece);
    if (rc == 0)
        rc = ops->finish(rw);
    ops->close(rw);
    sl_buf_append(out, "", 0);   /* NUL-terminated even when nothing came */
    return rc;
}

/* fx_rewrite, whole and one byte at a time: the two must agree. */
static inline const char *fx_rewritten(const char *doc, const char *public_url)
{
    static struct sl_buf whole, bytes;
    assert_int_equal(fx_rewrite(doc, strlen(doc) + 1, public_url, &whole), 0);
    assert_int_equal(fx_rewrite(doc, 1, public_url, &bytes), 0);
    assert_string_equal((const char *)whole.data, (const char *)bytes.data);
    return (const char *)whole.data;
}

/* The digest noted for the artifact a client gets at `path` (prefix
 * included) on route `name`, as hex ("" when none): what its fill would be
 * verified against. Leaves fx_cn on that artifact. */
static inline const char *fx_noted(const char *name, const char *path)
{
    static char hex[2 * 64 + 1];
    struct sl_buf key = { 0 };
    struct eco_digest d;
    hex[0] = '\0';
    assert_int_equal(fx_canon(name, path, NULL), 0);
    if (fx_notes && digest_notes_name(&fx_cn, &key) &&
        digest_notes_get(fx_notes, (const char *)key.data, key.len, &d))
        for (size_t i = 0; i < d.len; i++)
            snprintf(hex + 2 * i, 3, "%02x", d.value[i]);
    sl_buf_free(&key);
    return hex;
}

#endif
