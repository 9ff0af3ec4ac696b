/*
 * admin.c - the admin listener (loopback by default): what an operator
 * asks the agent. docs/admin-api.md is the reference; this file
 * dispatches and serves the small read-only endpoints:
 *
 *   GET /metrics        Prometheus text (core/metrics.h)
 *   GET /healthz        liveness: 200 while the process serves requests,
 *                       also during the start-up scan and while stopping
 *   GET /readyz         readiness: 503 while the start-up scan runs or
 *                       while stopping, else 200 (what HAProxy and the
 *                       tests wait on)
 *   GET /debug/fills    the fills in flight (JSON)
 *   GET /debug/config   the effective settings, secrets redacted (text,
 *                       the --print-config format)
 *   GET /, /status.json the status page and its data (admin_status.c)
 *   DELETE /objects/... purge (admin_objects.c)
 *   /fault?<spec>       test builds only (store/fault.h)
 *
 * Nothing here blocks the loop: a purge's disk work runs on the worker
 * pool and its answer waits for it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/common.h"
#include "core/config.h"
#include "fill/fill.h"
#include "serve/admin_impl.h"
#include "serve/serve.h"
#include "store/fault.h"

void admin_printf(struct sl_buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    SL_ASSERT(n >= 0 && (size_t)n < sizeof(tmp));   /* numbers and short words only */
    sl_buf_append(b, tmp, (size_t)n);
}

void admin_json_str(struct sl_buf *b, const char *s)
{
    sl_buf_append_str(b, "\"");
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\')
            admin_printf(b, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            admin_printf(b, "\\u%04x", *p);
        else
            sl_buf_append(b, p, 1);
    }
    sl_buf_append_str(b, "\"");
}

void admin_respond_json(struct http_conn *c, int status, struct sl_buf *b)
{
    http_respond_simple(c, status, "application/json", "Cache-Control: no-store\r\n", b->data ? (char *)b->data : "",
                        b->len);
    sl_buf_free(b);
}

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

static void serve_metrics(struct agent *a, struct http_conn *c)
{
    size_t len;
    char *text = metrics_render(a, &len);
    http_respond_simple(c, 200, "text/plain; version=0.0.4", "", text, len);
    free(text);
}

static void serve_healthz(struct agent *a, struct http_conn *c)
{
    SL_UNUSED(a);
    http_respond_simple(c, 200, "text/plain", "", SL_LIT("alive\n"));
}

static void serve_readyz(struct agent *a, struct http_conn *c)
{
    const char *state = a->stopping ? "stopping\n" : a->index_loading ? "loading\n" : "ok\n";
    http_respond_simple(c, *state == 'o' ? 200 : 503, "text/plain", "", state, strlen(state));
}

static void fill_json(void *ctx, const struct fill_info *fi)
{
    struct sl_buf *b = ctx;
    char url[CONFIG_URL_MAX + HTTP_URL_MAX];
    config_redact("", fi->url, url, sizeof(url));
    sl_buf_append_str(b, b->len > 1 ? ",\n {\"key\": " : "\n {\"key\": ");
    admin_json_str(b, fi->key);
    sl_buf_append_str(b, ", \"route\": ");
    admin_json_str(b, fi->route);
    admin_printf(b, ", \"received\": %llu, \"content_length\": %lld, \"readers\": %d, \"age_ms\": %lld, "
                    "\"queued\": %s, \"writer\": \"%s\"",
                 (unsigned long long)fi->received, (long long)fi->content_length, fi->readers,
                 (long long)fi->age_ms, fi->queued ? "true" : "false", fi->writer);
    if (fi->writer_detached_why)
        admin_printf(b, ", \"writer_detached\": \"%s\"", fi->writer_detached_why);
    sl_buf_append_str(b, ", \"origin_url\": ");
    admin_json_str(b, url);
    sl_buf_append_str(b, "}");
}

static void serve_fills(struct agent *a, struct http_conn *c)
{
    struct sl_buf b = { 0 };
    sl_buf_append_str(&b, "[");
    fill_each(a, fill_json, &b);
    sl_buf_append_str(&b, "]\n");
    admin_respond_json(c, 200, &b);
}

static void serve_config(struct agent *a, struct http_conn *c)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        http_respond_simple(c, 500, "text/plain", "", SL_LIT("out of memory\n"));
        return;
    }
    config_print_redacted(&a->cfg, f);
    fclose(f);
    http_respond_simple(c, 200, "text/plain", "Cache-Control: no-store\r\n", text, len);
    free(text);
}

struct endpoint {
    const char *path;
    void (*serve)(struct agent *a, struct http_conn *c);
};

static const struct endpoint gets[] = {
    { "/metrics", serve_metrics },
    { "/healthz", serve_healthz },
    { "/readyz", serve_readyz },
    { "/debug/fills", serve_fills },
    { "/debug/config", serve_config },
    { "/status.json", admin_status_json },
    { "/", admin_status_page },
};

static bool is_objects(const struct http_request *req)
{
    return sl_starts_with(req->path, req->path_len, "/objects/");
}

void serve_admin(void *ctx, struct http_conn *c, const struct http_request *req)
{
    struct agent *a = ctx;
    SL_CHECK_OBJ(a, AGENT_MAGIC);
    if (req->method == HTTP_M_DELETE) {
        if (is_objects(req))
            admin_delete_object(a, c, req);
        else
            http_respond_simple(c, 405, "text/plain", "Allow: GET, HEAD\r\n", SL_LIT("method not allowed\n"));
        return;
    }
    for (size_t i = 0; i < SL_ARRAY_LEN(gets); i++)
        if (http_request_path_is(req, gets[i].path)) {
            gets[i].serve(a, c);
            return;
        }
    if (is_objects(req)) {
        http_respond_simple(c, 405, "text/plain", "Allow: DELETE\r\n", SL_LIT("method not allowed\n"));
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
