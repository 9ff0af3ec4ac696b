/*
 * admin.c - the admin listener: /metrics (Prometheus text), /healthz (the
 * agent's readiness: 503 while the start-up scan runs or while stopping),
 * and, in test builds only, /fault?<spec> (store/fault.h).
 */
#include <string.h>

#include "core/common.h"
#include "serve/serve.h"
#include "store/fault.h"

#ifdef SLUICE_TESTING
static void serve_fault(struct http_conn *c, const struct http_request *req)
{
    char spec[256], err[160];
    size_t n = SL_MIN(req->query_len, sizeof(spec) - 1);
    memcpy(spec, req->query ? req->query : "", n);
    spec[n] = '\0';
    if (fault_configure(spec, err, sizeof(err)) != 0) {
        http_respond_simple(c, 400, "text/plain", "", err, strlen(err));
        return;
    }
    http_respond_simple(c, 200, "text/plain", "", SL_LIT("armed\n"));
}
#endif

void serve_admin(void *ctx, struct http_conn *c, const struct http_request *req)
{
    struct agent *a = ctx;
    SL_CHECK_OBJ(a, AGENT_MAGIC);
    if (http_request_path_is(req, "/metrics")) {
        size_t len;
        char *text = metrics_render(a, &len);
        http_respond_simple(c, 200, "text/plain; version=0.0.4", "", text, len);
        free(text);
        return;
    }
    if (http_request_path_is(req, "/healthz")) {
        const char *state = a->stopping ? "stopping\n" : a->index_loading ? "loading\n" : "ok\n";
        http_respond_simple(c, *state == 'o' ? 200 : 503, "text/plain", "", state, strlen(state));
        return;
    }
#ifdef SLUICE_TESTING
    if (http_request_path_is(req, "/fault")) {
        serve_fault(c, req);
        return;
    }
#endif
    http_respond_simple(c, 404, "text/plain", "", SL_LIT("not found\n"));
}
