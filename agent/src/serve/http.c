/*
 * http.c - the agent's HTTP side: HAProxy sends the requests whose verdict
 * was hit or fill here, and this re-decides authoritatively, because the
 * index may have changed since the verdict: a usable committed artifact
 * is a hit (hit.c), anything else joins or leads a fill (miss.c); metadata
 * follows its freshness rules (meta.c). Two paths are the agent's own:
 * /_sluice/healthz (HAProxy's health check) and /_sluice/verdict (the
 * verdict for the Lua edge, verdict_http.c).
 */
#include <string.h>

#include "core/common.h"
#include "serve/classify.h"
#include "serve/hit.h"
#include "serve/meta.h"
#include "serve/miss.h"
#include "serve/serve.h"

static void respond_text(struct http_conn *c, int status, const char *text)
{
    http_respond_simple(c, status, "text/plain",
                        status >= 400 ? "Cache-Control: no-store\r\nCache-Status: sluice; fwd=bypass; detail=rejected\r\n" : "",
                        text, strlen(text));
}

/* 301 to the name in the ecosystem's normal form (PEP 503 and the like). */
static void respond_redirect(struct http_conn *c, const char *location)
{
    char *headers = sl_printf("Location: %s\r\nCache-Status: sluice; fwd=bypass; detail=normalised\r\n", location);
    http_respond_simple(c, 301, "text/plain", headers, SL_LIT("moved to the normal form of the name\n"));
    free(headers);
}

/* Every request that is not cacheable gets a clear answer and no fill. */
static void respond_not_cacheable(struct agent *a, struct http_conn *c, const struct http_request *req,
                                  const struct request_class *rc)
{
    char text[160];
    switch (rc->kind) {
    case CLASS_NO_ROUTE:
        respond_text(c, 404, "no route for this path\n");
        return;
    case CLASS_ROUTE_OFF:
        respond_text(c, 404, "this route has no origin configured\n");
        return;
    case CLASS_PASS:
        respond_text(c, req->has_credentials ? 403 : 421,
                     req->has_credentials ? "requests with credentials bypass the cache\n"
                                          : "this route is not cached by the agent\n");
        return;
    case CLASS_REJECT:
        serve_count_reject(a, rc);
        snprintf(text, sizeof(text), "%s\n", canon_strerror(rc->canon_err));
        respond_text(c, canon_err_status(rc->canon_err), text);
        return;
    case CLASS_REDIRECT:
        respond_redirect(c, rc->location);
        return;
    case CLASS_CACHEABLE:
        break;
    }
    SL_ASSERT(!"cacheable request in respond_not_cacheable");
}

void serve_http(void *ctx, struct http_conn *c, const struct http_request *req)
{
    struct agent *a = ctx;
    SL_CHECK_OBJ(a, AGENT_MAGIC);
    if (http_request_path_is(req, "/_sluice/healthz")) {
        respond_text(c, a->stopping ? 503 : 200, a->stopping ? "stopping\n" : "ok\n");
        return;
    }
    if (http_request_path_is(req, "/_sluice/verdict")) {
        serve_verdict_http(a, c, req);
        return;
    }
    const struct route *route = route_match(&a->routes, req->path, req->path_len, NULL, NULL);
    struct request_class rc;
    struct canon_limits lim = serve_canon_limits(&a->cfg);
    serve_classify(route, &lim, true, req->has_credentials, req->path, req->path_len, req->query, req->query_len,
                   req->accept, req->accept ? strlen(req->accept) : 0, &rc);
    if (rc.kind != CLASS_CACHEABLE) {
        respond_not_cacheable(a, c, req, &rc);
        return;
    }
    struct index_entry *e = index_lookup(&a->index, rc.canon.hash);
    if (rc.canon.cls == ECO_METADATA) {
        serve_metadata(a, c, req, e, &rc.canon);
        return;
    }
    if (e && serve_hit(a, c, req, e, &rc.canon))
        return;
    struct fill_request rq;
    miss_request(&rc.canon, &rq);
    serve_miss(a, c, req, &rc.canon, &(struct miss_opts){ e ? "fwd=miss" : "fwd=uri-miss", &rq, false });
}
