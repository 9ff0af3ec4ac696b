/*
 * admin_objects.c - DELETE /objects/<route>/<path>: purge what a client
 * request for "<route prefix><path>" would be served from (serve/purge.h).
 *
 * The key is derived exactly as for a client: canon_request on the route's
 * prefix followed by <path> (and the query, for ecosystems that key on
 * it), so the same ambiguities are refused (400 with canon_strerror). A
 * document with representations (npm's full and abbreviated packument,
 * PyPI's HTML and JSON simple page) is purged in every one of them
 * (eco->variants); a name the ecosystem redirects to its normal form
 * (PyPI's "Demo_A") purges that form, where the object is stored.
 *
 * A path ending in '*' purges every object whose key starts with the
 * canonical form of what precedes it ("npm/@types/" then "*", or just "*" after "npm/" for the
 * whole route); a literal trailing '*' of a single object is spelled %2A.
 *
 * Answers: 200 {"purged": n}, 404 {"purged": 0} when nothing matched,
 * 400 {"error": "..."} for an unknown route or a bad path. The answer waits
 * for the purge (a worker unlinks, a prefix scans the store); a client that
 * leaves meanwhile does not stop it.
 */
#include <string.h>

#include "core/common.h"
#include "core/log.h"
#include "http/httpx.h"
#include "route/canon.h"
#include "serve/admin_impl.h"
#include "serve/purge.h"

#define OBJECTS_PREFIX "/objects/"
#define LATER_MAGIC 0x4c415452u   /* "LATR" */

/* A purge's answer, sent when the purge is done. */
struct later {
    struct http_response r;
    unsigned magic;
    struct http_conn *c;
    struct purge *p;                  /* NULL once done */
    char what[KEY_MAX + 8];           /* the key or prefix, for the log */
    int status;
    char body[64];
    size_t len;
};

static struct later *later_of(struct http_response *r)
{
    struct later *l = (struct later *)r;
    SL_CHECK_OBJ(l, LATER_MAGIC);
    return l;
}

static enum http_head_result later_head(struct http_response *r, struct http_head *out)
{
    struct later *l = later_of(r);
    if (l->p)
        return HTTP_HEAD_WAIT;
    bool ok = http_head_printf(out, "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: application/json\r\n"
                                    "Cache-Control: no-store\r\nContent-Length: %zu\r\n\r\n",
                               l->status, http_status_text(l->status), httpx_date_now(), l->len);
    out->mode = HTTP_BODY_LENGTH;
    out->length = l->len;
    out->inline_body = (const uint8_t *)l->body;
    out->inline_len = l->len;
    return ok ? HTTP_HEAD_READY : HTTP_HEAD_ABORT;
}

static enum http_body_result later_body(struct http_response *r, struct http_piece *out)
{
    SL_UNUSED(r);
    SL_UNUSED(out);
    return HTTP_PIECE_END;   /* the body went inline with the head */
}

static void later_consumed(struct http_response *r, size_t n)
{
    SL_UNUSED(r);
    SL_UNUSED(n);
}

static void later_finish(struct http_response *r, bool completed)
{
    SL_UNUSED(completed);
    struct later *l = later_of(r);
    if (l->p)
        purge_detach(l->p);   /* the client left: the purge completes anyway */
    l->magic = 0;
    free(l);
}

static void purged(void *ctx, long n)
{
    struct later *l = ctx;
    SL_CHECK_OBJ(l, LATER_MAGIC);
    l->p = NULL;
    l->status = n > 0 ? 200 : 404;
    l->len = (size_t)snprintf(l->body, sizeof(l->body), "{\"purged\": %ld}\n", n);
    log_info("admin: purge %s: %ld object%s", l->what, n, n == 1 ? "" : "s");
    http_conn_wake(l->c);
}

static void bad_request(struct http_conn *c, const char *why)
{
    struct sl_buf b = { 0 };
    sl_buf_append_str(&b, "{\"error\": ");
    admin_json_str(&b, why);
    sl_buf_append_str(&b, "}\n");
    log_info("admin: purge refused: %s", why);
    admin_respond_json(c, 400, &b);
}

/* The key of <route prefix><rest>?<query> in representation `variant`
 * (NULL: the default one, as a request without Accept). */
static int derive(const struct route *r, const char *rest, size_t rest_len, const struct http_request *req,
                  const char *variant, struct canon *out)
{
    char path[ROUTE_PREFIX_MAX + HTTP_URL_MAX];
    if (r->prefix_len + rest_len >= sizeof(path))
        return CANON_ERR_TOO_LONG;
    memcpy(path, r->prefix, r->prefix_len);
    memcpy(path + r->prefix_len, rest, rest_len);
    const char *accept = NULL;
    if (variant) {
        struct canon asked = *out;   /* the default form: variant_accept reads its path */
        asked.variant = variant;
        accept = r->eco->variant_accept(&asked);
    }
    return canon_request(r, path, r->prefix_len + rest_len, req->query, req->query ? req->query_len : 0, accept,
                         accept ? strlen(accept) : 0, out);
}

/* Derive the default form of <rest>; a name the ecosystem spells
 * otherwise (PyPI's "Demo_A" for "demo-a") is what a client is redirected
 * from, and the object is stored under its normal form: so it is purged.
 * *rest then points into `normal`. */
static int derive_normal(const struct route *r, const char **rest, size_t *rest_len, const struct http_request *req,
                         struct canon *out, struct sl_buf *normal)
{
    int rc = derive(r, *rest, *rest_len, req, NULL, out);
    if (rc != CANON_OK || !r->eco->redirect || !r->eco->redirect(out, normal))
        return rc;
    *rest = (const char *)normal->data;
    *rest_len = normal->len;
    return derive(r, *rest, *rest_len, req, NULL, out);
}

/* The hashes of every representation of the object named. */
static int object_hashes(const struct route *r, const char *rest, size_t rest_len, const struct http_request *req,
                         uint8_t (*hashes)[KEY_HASH_LEN], char *what, size_t what_len)
{
    struct canon *cn = sl_malloc(sizeof(*cn));
    struct sl_buf normal = { 0 };
    int rc = derive_normal(r, &rest, &rest_len, req, cn, &normal);
    int n = 0;
    if (rc == CANON_OK) {
        memcpy(hashes[n++], cn->hash, KEY_HASH_LEN);
        snprintf(what, what_len, "%s", cn->key);
        const char *const *v = cn->cls == ECO_METADATA ? r->eco->variants : NULL;
        struct canon *alt = sl_malloc(sizeof(*alt));
        for (; v && *v && n < PURGE_HASHES_MAX; v++) {
            *alt = *cn;
            if (derive(r, rest, rest_len, req, *v, alt) == CANON_OK && alt->variant)
                memcpy(hashes[n++], alt->hash, KEY_HASH_LEN);
        }
        free(alt);
    }
    sl_buf_free(&normal);
    free(cn);
    return rc == CANON_OK ? n : rc;
}

/* The key prefix of "<rest>*": the canonical form of rest, without query
 * or representation; "<route>:" for the whole route. */
static int key_prefix(const struct route *r, const char *rest, size_t rest_len, const struct http_request *req,
                      char *out, size_t outlen)
{
    if (req->query)
        return CANON_ERR_CHAR;
    if (rest_len == 0) {
        snprintf(out, outlen, "%s:", r->name);
        return CANON_OK;
    }
    struct canon *cn = sl_malloc(sizeof(*cn));
    int rc = derive(r, rest, rest_len, req, NULL, cn);
    if (rc == CANON_OK)
        snprintf(out, outlen, "%.*s", (int)(cn->path_off + cn->path_len), cn->key);
    free(cn);
    return rc;
}

static void start(struct agent *a, struct http_conn *c, const uint8_t (*hashes)[KEY_HASH_LEN], int n,
                  const char *prefix, const char *what)
{
    struct later *l = sl_calloc(1, sizeof(*l));
    l->r = (struct http_response){ later_head, later_body, later_consumed, later_finish };
    l->magic = LATER_MAGIC;
    l->c = c;
    snprintf(l->what, sizeof(l->what), "%s%s", what, prefix ? "*" : "");
    http_respond_with(c, &l->r);
    l->p = purge_start(a, hashes, n, prefix, purged, l);
}

void admin_delete_object(struct agent *a, struct http_conn *c, const struct http_request *req)
{
    const char *name = req->path + SL_LIT_LEN(OBJECTS_PREFIX);
    size_t left = req->path_len - SL_LIT_LEN(OBJECTS_PREFIX);
    const char *slash = memchr(name, '/', left);
    const struct route *r = slash ? route_by_name(&a->routes, name, (size_t)(slash - name)) : NULL;
    if (!r) {
        bad_request(c, slash ? "no route of that name" : "expected /objects/<route>/<path>");
        return;
    }
    if (!r->eco->classify) {
        bad_request(c, "this route caches nothing");
        return;
    }
    const char *rest = slash + 1;
    size_t rest_len = left - (size_t)(rest - name);
    bool is_prefix = rest_len > 0 && rest[rest_len - 1] == '*';
    char what[KEY_MAX + 1];
    uint8_t hashes[PURGE_HASHES_MAX][KEY_HASH_LEN];
    int rc = is_prefix ? key_prefix(r, rest, rest_len - 1, req, what, sizeof(what))
                       : object_hashes(r, rest, rest_len, req, hashes, what, sizeof(what));
    if (rc < 0) {
        bad_request(c, is_prefix && req->query ? "a prefix purge takes no query" : canon_strerror(rc));
        return;
    }
    start(a, c, (const uint8_t (*)[KEY_HASH_LEN])hashes, is_prefix ? 0 : rc, is_prefix ? what : NULL, what);
}
