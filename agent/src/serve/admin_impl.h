/*
 * admin_impl.h - the admin listener's endpoints, shared by the files that
 * make it up (serve.h's serve_admin dispatches to them):
 *
 *   admin.c          dispatch, /metrics, /healthz, /readyz, /debug/fills, /debug/config
 *   admin_objects.c  DELETE /objects/<route>/<path>[*] (serve/purge.h)
 *   admin_status.c   GET / (the status page) and GET /status.json
 *
 * Every handler answers its request exactly once (http_server.h); all run
 * on the loop thread.
 */
#ifndef SLUICE_ADMIN_IMPL_H
#define SLUICE_ADMIN_IMPL_H

#include "core/agent.h"
#include "core/buf.h"
#include "http/http_server.h"

void admin_delete_object(struct agent *a, struct http_conn *c, const struct http_request *req);
void admin_status_page(struct agent *a, struct http_conn *c);
void admin_status_json(struct agent *a, struct http_conn *c);

/* JSON pieces: a string literal with escapes, printf into a buffer. */
void admin_json_str(struct sl_buf *b, const char *s);
void admin_printf(struct sl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Answer with the buffer as application/json, and free it. */
void admin_respond_json(struct http_conn *c, int status, struct sl_buf *b);

#endif
