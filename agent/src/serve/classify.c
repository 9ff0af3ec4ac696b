/*
 * classify.c - what a request is to the cache (see classify.h).
 */
#include "serve/classify.h"

#include <string.h>

#include "core/common.h"

/* The ecosystem spells this name another way: where to send the client. */
static bool wants_redirect(const struct route *route, const struct canon *c, struct request_class *out)
{
    if (!route->eco->redirect)
        return false;
    struct sl_buf to = { 0 };
    bool redirect = route->eco->redirect(c, &to) &&
                    route->prefix_len + to.len < sizeof(out->location);
    if (redirect) {
        memcpy(out->location, route->prefix, route->prefix_len);
        memcpy(out->location + route->prefix_len, to.data, to.len + 1);
    }
    sl_buf_free(&to);
    return redirect;
}

struct canon_limits serve_canon_limits(const struct sluice_config *cfg)
{
    return (struct canon_limits){ (size_t)cfg->request_target_max, (size_t)cfg->request_segments_max };
}

void serve_count_reject(struct agent *a, const struct request_class *rc)
{
    SL_ASSERT(rc->kind == CLASS_REJECT);
    struct route_counters *c = metrics_route(a, rc->route);
    c->bad_requests++;
    if (rc->canon_err == CANON_ERR_TARGET || rc->canon_err == CANON_ERR_SEGMENTS)
        c->oversized_requests++;
}

void serve_classify(const struct route *route, const struct canon_limits *lim, bool get_or_head, bool has_credentials,
                    const char *path, size_t path_len, const char *query, size_t query_len,
                    const char *accept, size_t accept_len, struct request_class *out)
{
    SL_ASSERT(out && (path || path_len == 0));
    out->route = route;
    out->canon_err = CANON_OK;
    out->canon.key[0] = '\0';   /* only a cacheable request has a key */
    out->canon.key_len = 0;
    if (!route) {
        out->kind = CLASS_NO_ROUTE;
    } else if (!route->has_origin) {
        out->kind = CLASS_ROUTE_OFF;
    } else if (!get_or_head || has_credentials || !route->eco->classify) {
        out->kind = CLASS_PASS;
    } else if (path_len < route->prefix_len || memcmp(path, route->prefix, route->prefix_len) != 0) {
        out->kind = CLASS_NO_ROUTE;   /* HAProxy named a route the path is not under */
    } else if ((out->canon_err = canon_check_size(path, path_len, query, query_len, lim)) != CANON_OK) {
        out->kind = CLASS_REJECT;
    } else {
        out->canon_err = canon_request(route, path, path_len, query, query_len, accept, accept_len, &out->canon);
        if (out->canon_err != CANON_OK)
            out->kind = CLASS_REJECT;
        else if (wants_redirect(route, &out->canon, out))
            out->kind = CLASS_REDIRECT;
        else
            out->kind = out->canon.cls == ECO_NEVER ? CLASS_PASS : CLASS_CACHEABLE;
    }
}
