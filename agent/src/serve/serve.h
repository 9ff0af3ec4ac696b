/*
 * serve.h - request handling, the three entry points the listeners call:
 * the SPOP verdict (verdict.c, also asked over HTTP by verdict_http.c), the agent's HTTP side (http.c, which serves
 * hits with hit.c and fills with miss.c) and the admin listener (admin.c).
 *
 * The verdict and the HTTP side classify a request with the same function
 * (classify.h), so they agree on what is cacheable and on the key; the
 * HTTP side then re-decides hit or miss authoritatively, because the index
 * may change between the verdict and the request.
 */
#ifndef SLUICE_SERVE_H
#define SLUICE_SERVE_H

#include "core/agent.h"
#include "http/http_server.h"
#include "spop/spop_server.h"

/* SPOP verdict callback (ctx = struct agent *). */
void serve_verdict(void *ctx, const struct spop_lookup *in, struct spop_verdict *out);

/* The verdict over HTTP, GET /_sluice/verdict on the HTTP side, for the
 * Lua edge (verdict_http.c): serve_verdict's answer in response headers. */
void serve_verdict_http(struct agent *a, struct http_conn *c, const struct http_request *req);

/* Agent HTTP side handler (ctx = struct agent *). */
void serve_http(void *ctx, struct http_conn *c, const struct http_request *req);

/* Admin handler (admin.c; docs/admin-api.md): /metrics, /healthz, /readyz,
 * /debug/fills, /debug/config, the status page, DELETE /objects/..., and
 * /fault in test builds. */
void serve_admin(void *ctx, struct http_conn *c, const struct http_request *req);

#endif
