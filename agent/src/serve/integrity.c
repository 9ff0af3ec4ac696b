/*
 * integrity.c - the expected digest of a new artifact fill (see
 * integrity.h).
 */
#include "serve/integrity.h"

#include <string.h>
#include <unistd.h>

#include "core/common.h"
#include "eco/digest_notes.h"
#include "serve/miss.h"
#include "store/cache.h"
#include "store/index.h"

/* The stored sidecar's body (it is small), as NUL-terminated text. */
static bool stored_text(struct agent *a, struct index_entry *e, const char *key, char *out, size_t outlen)
{
    struct cache_hit h;
    if (!cache_open_hit(a, e, key, &h))
        return false;
    size_t n = (size_t)SL_MIN(h.meta->size, (uint64_t)outlen - 1);
    bool ok = h.meta->status == 200;
    if (ok && h.body)
        memcpy(out, h.body, n);
    else if (ok)
        ok = pread(h.fd, out, n, OBJ_HEADER_SIZE) == (ssize_t)n;
    out[ok ? n : 0] = '\0';
    cache_release_hit(a, &h);
    return ok;
}

/* The canonical request of cn's sidecar (its path on the same route). */
static bool sidecar_canon(const struct canon *cn, const struct eco_sidecar *side, struct canon *sc)
{
    const struct route *r = cn->route;
    char path[ROUTE_PREFIX_MAX + KEY_MAX + 16];
    int n = snprintf(path, sizeof(path), "%s%.*s", r->prefix, (int)side->path.len, (const char *)side->path.data);
    return n > 0 && (size_t)n < sizeof(path) && canon_request(r, path, (size_t)n, NULL, 0, NULL, 0, sc) == CANON_OK &&
           sc->cls != ECO_NEVER;
}

/* The running fill of the sidecar, or a new one; NULL when there is no
 * origin slot for it now. */
static struct fill *sidecar_fill(struct agent *a, const struct canon *sc)
{
    struct fill *f = fill_find(a, sc->hash);
    if (f)
        return f;
    char url[CONFIG_URL_MAX + KEY_MAX + 2];
    struct fill_request rq;
    if (canon_origin_url(sc, url, sizeof(url)) != 0)
        return NULL;
    miss_request(sc, &rq);
    /* Its 404 is never remembered (as an artifact's): it was asked for
     * because of an artifact that may not exist yet either, and a client
     * must not meet a remembered 404 once both are published. */
    rq.cls = ECO_IMMUTABLE;
    return fill_start_lookup(a, sc->route, sc->key, sc->hash, url, &rq);   /* L2 first, as the artifact */
}

static void arm_from_sidecar(struct agent *a, struct fill *f, const struct canon *cn, const struct eco_sidecar *side)
{
    struct canon *sc = sl_malloc(sizeof(*sc));
    struct eco_digest d;
    char text[FILL_SIDECAR_MAX + 1];
    struct index_entry *e;
    struct fill *src;
    const struct eco *eco = cn->route->eco;
    if (!sidecar_canon(cn, side, sc)) {
        metrics_route(a, cn->route)->integrity_unknown++;
    } else if ((e = index_lookup(&a->index, sc->hash)) != NULL && stored_text(a, e, sc->key, text, sizeof(text))) {
        if (eco->sidecar_digest(cn, text, strlen(text), &d))
            fill_verify(f, side->algorithm, &d);
        else
            metrics_route(a, cn->route)->integrity_unknown++;
    } else if ((src = sidecar_fill(a, sc)) != NULL) {
        fill_verify(f, side->algorithm, NULL);
        fill_verify_from(f, src, cn);
    } else {
        metrics_route(a, cn->route)->integrity_unknown++;
    }
    free(sc);
}

void integrity_arm(struct agent *a, struct fill *f, const struct canon *cn)
{
    const struct eco *eco = cn->route->eco;
    if (cn->cls != ECO_IMMUTABLE || !eco->digests ||
        !config_route_int(&a->cfg, "integrity_verify", cn->route->name))
        return;
    struct eco_sidecar side = { 0 };
    bool has_side = eco->sidecar && eco->sidecar(cn, &side);
    if (has_side)
        arm_from_sidecar(a, f, cn, &side);
    sl_buf_free(&side.path);
    if (has_side || eco->sidecar)
        return;   /* an ecosystem with sidecars notes nothing */
    struct sl_buf name = { 0 };
    struct eco_digest d;
    if (digest_notes_name(cn, &name) && digest_notes_get(a->notes, (const char *)name.data, name.len, &d))
        fill_verify(f, d.algorithm, &d);
    else
        metrics_route(a, cn->route)->integrity_unknown++;
    sl_buf_free(&name);
}
