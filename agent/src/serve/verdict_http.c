/*
 * verdict_http.c - the verdict over HTTP, for edges without SPOE (the Lua
 * action in lua/sluice.lua): `GET /_sluice/verdict?<args>` on the agent's
 * HTTP side asks the same decision function as the SPOP "lookup" message
 * (serve_verdict, verdict.c) with the same arguments, and answers at once,
 * from memory.
 *
 * Arguments (percent-encoded query parameters; '+' is a plus, not a space):
 *   route   required  route name (routes.map)
 *   method  required  the request's method
 *   path    required  its raw path, starting with '/'
 *   auth    required  0 or 1: it carries credentials (required so that a
 *                     caller which forgot it never gets a hit for a private
 *                     request)
 *   query   optional  its raw query without '?'; absent = no '?' at all
 *   accept  optional  its Accept header
 *   range, inm, ims   optional, 0 or 1: accepted for parity with SPOP
 * A missing required argument, a flag other than 0/1, a bad escape, a NUL
 * or a repeated argument is a 400 naming it; unknown ones are ignored (as
 * over SPOP). Only GET (and HEAD) are answered, others get a 405.
 *
 * Answer: 200, body "<verdict>\n", and headers that are trivial to read:
 *   Sluice-Verdict      hit | fill | pass | busy | reject | redirect
 *   Sluice-Retry-After  busy: seconds
 *   Sluice-Status       reject: 400, 404 or 414
 *   Sluice-Reason       reject: one line
 *   Sluice-Location     redirect: the edge path to send a 301 to
 * Never "inline": the caller cannot carry a body back, so the lookup is
 * never "plain" (verdict.c inlines only plain GETs) and a hit goes to the
 * HTTP side like any other.
 *
 * Invariant: a request is answered exactly once, at once (test builds may
 * delay the answer with the fault seam's verdict_delay, on a timer: the
 * loop never blocks).
 */
#include <string.h>

#include "core/common.h"
#include "route/canon.h"
#include "serve/hit.h"
#include "serve/serve.h"
#include "store/fault.h"

enum { ARG_ROUTE, ARG_METHOD, ARG_PATH, ARG_AUTH, ARG_QUERY, ARG_ACCEPT, ARG_RANGE, ARG_INM, ARG_IMS, ARG_COUNT };

static const struct {
    const char *name;
    bool required;
    bool flag;
} args_spec[ARG_COUNT] = {
    [ARG_ROUTE] = { "route", true, false },   [ARG_METHOD] = { "method", true, false },
    [ARG_PATH] = { "path", true, false },     [ARG_AUTH] = { "auth", true, true },
    [ARG_QUERY] = { "query", false, false },  [ARG_ACCEPT] = { "accept", false, false },
    [ARG_RANGE] = { "range", false, true },   [ARG_INM] = { "inm", false, true },
    [ARG_IMS] = { "ims", false, true },
};

/* The decoded arguments: slices of buf, NULL when absent. */
struct verdict_args {
    const char *val[ARG_COUNT];
    size_t len[ARG_COUNT];
    char buf[HTTP_URL_MAX];
    size_t used;
};

/* Percent-decode s[0..n) into the args buffer; NULL when malformed. */
static const char *decode(struct verdict_args *va, const char *s, size_t n, size_t *out_len)
{
    SL_ASSERT(va->used + n <= sizeof(va->buf));
    char *out = va->buf + va->used;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int v = (unsigned char)s[i];
        if (s[i] == '%') {
            v = canon_escape_value(s, n, i);
            i += 2;
        }
        if (v <= 0)
            return NULL;   /* a bad escape, or a NUL */
        out[o++] = (char)v;
    }
    va->used += o;
    *out_len = o;
    return out;
}

static int arg_index(const char *name, size_t len)
{
    for (int i = 0; i < ARG_COUNT; i++)
        if (sl_bytes_eq(name, len, args_spec[i].name))
            return i;
    return -1;
}

/* One "name=value" pair; false with a reason in err. */
static bool take_pair(struct verdict_args *va, const char *p, size_t n, char *err, size_t errlen)
{
    const char *eq = memchr(p, '=', n);
    if (!eq) {
        sl_set_err(err, errlen, "'%.*s' is not name=value", (int)SL_MIN(n, 64), p);
        return false;
    }
    int i = arg_index(p, (size_t)(eq - p));
    if (i < 0)
        return true;   /* unknown: ignored, as over SPOP */
    if (va->val[i]) {
        sl_set_err(err, errlen, "argument '%s' given twice", args_spec[i].name);
        return false;
    }
    va->val[i] = decode(va, eq + 1, n - (size_t)(eq + 1 - p), &va->len[i]);
    if (!va->val[i])
        sl_set_err(err, errlen, "argument '%s': bad percent-escape or NUL", args_spec[i].name);
    return va->val[i] != NULL;
}

/* Every argument present is well formed, and every required one is there. */
static bool check_args(const struct verdict_args *va, char *err, size_t errlen)
{
    for (int i = 0; i < ARG_COUNT; i++) {
        const char *v = va->val[i];
        if (!v && args_spec[i].required) {
            sl_set_err(err, errlen, "missing argument '%s'", args_spec[i].name);
            return false;
        }
        if (v && args_spec[i].flag && !sl_bytes_eq(v, va->len[i], "0") && !sl_bytes_eq(v, va->len[i], "1")) {
            sl_set_err(err, errlen, "argument '%s' must be 0 or 1", args_spec[i].name);
            return false;
        }
    }
    if (va->len[ARG_PATH] == 0 || va->val[ARG_PATH][0] != '/') {
        sl_set_err(err, errlen, "argument 'path' must start with '/'");
        return false;
    }
    return true;
}

static bool parse_args(const struct http_request *req, struct verdict_args *va, char *err, size_t errlen)
{
    memset(va->val, 0, sizeof(va->val));
    va->used = 0;
    const char *q = req->query ? req->query : "";
    size_t n = req->query ? req->query_len : 0;
    SL_ASSERT(n <= sizeof(va->buf));
    for (size_t start = 0; start < n;) {
        const char *amp = memchr(q + start, '&', n - start);
        size_t end = amp ? (size_t)(amp - q) : n;
        if (end > start && !take_pair(va, q + start, end - start, err, errlen))
            return false;
        start = end + 1;
    }
    return check_args(va, err, errlen);
}

static bool flag(const struct verdict_args *va, int i)
{
    return va->val[i] && va->val[i][0] == '1';
}

static void to_lookup(const struct verdict_args *va, struct spop_lookup *in)
{
    *in = (struct spop_lookup){
        .route = va->val[ARG_ROUTE],   .route_len = va->len[ARG_ROUTE],
        .method = va->val[ARG_METHOD], .method_len = va->len[ARG_METHOD],
        .path = va->val[ARG_PATH],     .path_len = va->len[ARG_PATH],
        .query = va->val[ARG_QUERY],   .query_len = va->len[ARG_QUERY],
        .accept = va->val[ARG_ACCEPT], .accept_len = va->len[ARG_ACCEPT],
        .has_auth = flag(va, ARG_AUTH),
        .has_range = flag(va, ARG_RANGE),
        .plain = false,   /* never inline over HTTP (see the header) */
    };
}

/* "Sluice-...: ...\r\n" lines of a verdict (malloc'd). */
static char *verdict_headers(const struct spop_verdict *out)
{
    SL_ASSERT(out->verdict && strcmp(out->verdict, "inline") != 0);
    char extra[64] = "";
    if (out->retry_after >= 0)
        snprintf(extra, sizeof(extra), "Sluice-Retry-After: %lld\r\n", (long long)out->retry_after);
    else if (out->status)
        snprintf(extra, sizeof(extra), "Sluice-Status: %d\r\n", out->status);
    return sl_printf("Cache-Control: no-store\r\nSluice-Verdict: %s\r\n%s%s%s%s%s%s%s", out->verdict, extra,
                     out->reason ? "Sluice-Reason: " : "", out->reason ? out->reason : "", out->reason ? "\r\n" : "",
                     out->location ? "Sluice-Location: " : "", out->location ? out->location : "",
                     out->location ? "\r\n" : "");
}

#ifdef SLUICE_TESTING
/* The answer held back by the fault seam's verdict_delay. */
struct delayed {
    struct http_response base;
    struct http_conn *c;
    struct agent *a;
    ev_timer timer;
    bool due;
    char *headers;
    char body[32];
    size_t body_len;
};

static void delayed_due(struct ev_loop *loop, ev_timer *t, int revents)
{
    SL_UNUSED(loop);
    SL_UNUSED(revents);
    struct delayed *d = t->data;
    d->due = true;
    http_conn_wake(d->c);
}

static enum http_head_result delayed_head(struct http_response *r, struct http_head *out)
{
    struct delayed *d = (struct delayed *)r;
    if (!d->due)
        return HTTP_HEAD_WAIT;
    bool ok = put_status_and_date(out, 200) &&
              http_head_printf(out, "Content-Type: text/plain\r\nContent-Length: %zu\r\n%s\r\n", d->body_len,
                               d->headers);
    out->mode = HTTP_BODY_LENGTH;
    out->length = out->inline_len = d->body_len;
    out->inline_body = (const uint8_t *)d->body;
    return ok ? HTTP_HEAD_READY : HTTP_HEAD_ABORT;
}

static void delayed_finish(struct http_response *r, bool completed)
{
    SL_UNUSED(completed);
    struct delayed *d = (struct delayed *)r;
    ev_timer_stop(d->a->loop, &d->timer);
    free(d->headers);
    free(d);
}

/* Answer `delay_ms` later (the headers are taken over). */
static void respond_delayed(struct agent *a, struct http_conn *c, char *headers, const char *body, int64_t delay_ms)
{
    struct delayed *d = sl_calloc(1, sizeof(*d));
    d->base = (struct http_response){ .head = delayed_head, .finish = delayed_finish };
    d->c = c;
    d->a = a;
    d->headers = headers;
    d->body_len = (size_t)snprintf(d->body, sizeof(d->body), "%s", body);
    ev_timer_init(&d->timer, delayed_due, (double)delay_ms / 1000.0, 0);
    d->timer.data = d;
    ev_timer_start(a->loop, &d->timer);
    http_respond_with(c, &d->base);
}
#endif

static void respond_verdict(struct agent *a, struct http_conn *c, const struct spop_verdict *out)
{
    char *headers = verdict_headers(out);
    char body[32];
    snprintf(body, sizeof(body), "%s\n", out->verdict);
#ifdef SLUICE_TESTING
    if (fault_verdict_delay_ms() > 0) {
        respond_delayed(a, c, headers, body, fault_verdict_delay_ms());
        return;
    }
#endif
    SL_UNUSED(a);
    http_respond_simple(c, 200, "text/plain", headers, body, strlen(body));
    free(headers);
}

void serve_verdict_http(struct agent *a, struct http_conn *c, const struct http_request *req)
{
    if (req->method != HTTP_M_GET && req->method != HTTP_M_HEAD) {
        http_respond_simple(c, 405, "text/plain", "Allow: GET, HEAD\r\nCache-Control: no-store\r\n",
                            SL_LIT("the verdict endpoint answers GET\n"));
        return;
    }
    struct verdict_args *va = sl_malloc(sizeof(*va));
    char err[160];
    if (!parse_args(req, va, err, sizeof(err))) {
        sl_strlcpy(err + strlen(err), "\n", sizeof(err) - strlen(err));
        http_respond_simple(c, 400, "text/plain", "Cache-Control: no-store\r\n", err, strlen(err));
        free(va);
        return;
    }
    struct spop_lookup in;
    struct spop_verdict out = { 0 };
    to_lookup(va, &in);
    serve_verdict(a, &in, &out);
    respond_verdict(a, c, &out);
    free(va);
}
