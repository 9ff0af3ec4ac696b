/*
 * fuzz_html_rewrite.c - libFuzzer target for the HTML attribute rewriter
 * (eco/html_rewrite.h), the character-reference helpers and link_rebase
 * (eco/link.h): what turns an origin's page into the page clients get.
 *
 * The input is a document. It is rewritten three times:
 *  - whole, with a callback that keeps every value: the output is the
 *    input, byte for byte;
 *  - whole, with a callback that rewrites some values (as the PyPI
 *    ecosystem does: decode, rebase, escape; or into other bytes of
 *    another length) and keeps others: putting each value's original bytes
 *    back where its replacement was emitted gives the input again, so the
 *    output length is the input's - the values + the replacements; each
 *    value is bounded as its quote says (no quote inside a quoted value, no
 *    blank or '>' in an unquoted one);
 *  - in pieces of random sizes (from 1 byte), seeded by the input: the
 *    same output and the same values.
 * Held bytes never pass HTML_RW_VALUE_MAX. On each value, and on the whole
 * input: html_unescape never grows its input; html_escape_attr leaves no
 * byte that would end the value, and html_unescape gives the original
 * back; a link that link_rebase re-points is to_base + a path and query
 * without blanks, control bytes or '#', and re-pointing it back and forth
 * gives the same link.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "eco/html_rewrite.h"
#include "eco/link.h"

#define PAGE "http://127.0.0.1:9000/simple/demo/"
#define FROM "http://127.0.0.1:9000/packages"
#define TO "http://127.0.0.1:8080/pypi-files"

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_html_rewrite: invariant failed: %s\n", what);
        abort();
    }
}

static const char *text(const struct sl_buf *b)
{
    return b->data ? (const char *)b->data : "";
}

/* ------------------------------------------------- references and links */

static bool is_blank(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
}

static void check_escape(const char *v, size_t len, char quote)
{
    struct sl_buf esc = { 0 }, back = { 0 };
    html_escape_attr(v, len, quote, &esc);
    for (size_t i = 0; i < esc.len; i++) {
        uint8_t c = esc.data[i];
        check(c != '<' && c != '>', "no < or > after escaping");
        check(quote ? c != (uint8_t)quote : !is_blank(c) && !memchr("\"'`=", c, 4), "nothing ends the value");
    }
    html_unescape(text(&esc), esc.len, &back);
    check(back.len == len && (len == 0 || memcmp(back.data, v, len) == 0), "unescape(escape(x)) == x");
    sl_buf_free(&esc);
    sl_buf_free(&back);
}

static void check_references(const char *v, size_t len)
{
    struct sl_buf out = { 0 };
    html_unescape(v, len, &out);
    check(out.len <= len, "unescape never grows");
    sl_buf_free(&out);
    check_escape(v, len, '"');
    check_escape(v, len, '\'');
    check_escape(v, len, 0);
}

/* Re-point link from `from` to `to` into out (cleared first). */
static int rebase(const char *link, size_t len, const char *from, const char *to, struct sl_buf *out)
{
    sl_buf_clear(out);
    return link_rebase(PAGE, link, len, from, to, out);
}

static void check_link(const char *link, size_t len, struct sl_buf *out)
{
    int rc = rebase(link, len, FROM, TO, out);
    check(rc >= -1 && rc <= 1 && (rc == 1 || out->len == 0), "result and output agree");
    if (rc != 1)
        return;
    check(strncmp(text(out), TO, strlen(TO)) == 0, "starts with to_base");
    const char *rest = text(out) + strlen(TO);
    check(rest[0] == '\0' || rest[0] == '/' || rest[0] == '?', "then a path or query");
    for (const char *p = rest; *p; p++)
        check((uint8_t)*p > ' ' && (uint8_t)*p < 0x7f && *p != '#', "no blank, control byte or '#'");
    struct sl_buf back = { 0 }, again = { 0 };
    check(rebase(text(out), out->len, TO, FROM, &back) == 1, "re-pointed back");
    check(rebase(text(&back), back.len, FROM, TO, &again) == 1, "and forth");
    check(again.len == out->len && memcmp(again.data, out->data, out->len) == 0, "to the same link");
    sl_buf_free(&back);
    sl_buf_free(&again);
}

/* ---------------------------------------------------------- the rewriter */

/* One run of the rewriter: its output and what the callback saw. */
struct run {
    bool rewrite;              /* false: keep every value */
    struct sl_buf out;
    struct sl_buf calls;       /* per value: struct call, then value and replacement bytes */
    size_t n_calls;
};

struct call {
    size_t out_pos;            /* where the value's bytes (or replacement) start in out */
    size_t value_len, repl_len;
    char quote;
};

static void emit(void *ctx, const uint8_t *data, size_t len)
{
    struct run *r = ctx;
    check(len > 0, "no empty emit");
    sl_buf_append(&r->out, data, len);
}

/* The PyPI way: decode, rebase, escape, then the fragment's raw bytes. */
static bool pypi_way(const char *v, size_t len, char quote, struct sl_buf *out)
{
    struct sl_buf link = { 0 }, url = { 0 };
    size_t frag = 0;   /* the first '#' not of a "&#" reference */
    while (frag < len && (v[frag] != '#' || (frag > 0 && v[frag - 1] == '&')))
        frag++;
    html_unescape(v, frag, &link);
    check_link(text(&link), link.len, &url);
    bool done = url.len > 0;
    if (done) {
        html_escape_attr(text(&url), url.len, quote, out);
        sl_buf_append(out, v + frag, len - frag);
    }
    sl_buf_free(&link);
    sl_buf_free(&url);
    return done;
}

static bool on_value(void *ctx, const char *v, size_t len, char quote, struct sl_buf *out)
{
    struct run *r = ctx;
    check(quote == '"' || quote == '\'' || quote == 0, "quote is one of three");
    for (size_t i = 0; i < len; i++)
        check(quote ? v[i] != quote : !is_blank((uint8_t)v[i]) && v[i] != '>', "value within its quotes");
    check_references(v, len);
    bool done = false;
    if (r->rewrite && len % 3 == 0)
        done = pypi_way(v, len, quote, out);
    else if (r->rewrite && len % 3 == 1) {
        for (size_t i = 0; i < len % 7; i++)   /* other bytes, another length */
            sl_buf_append(out, "<>\"'", 4);
        done = true;
    }
    const struct sl_buf *repl = done ? out : NULL;
    struct call c;
    memset(&c, 0, sizeof(c));   /* calls are compared with memcmp, padding too */
    c.out_pos = r->out.len;
    c.value_len = len;
    c.repl_len = repl ? repl->len : len;
    c.quote = quote;
    sl_buf_append(&r->calls, &c, sizeof(c));
    sl_buf_append(&r->calls, v, len);
    sl_buf_append(&r->calls, repl ? repl->data : (const uint8_t *)v, c.repl_len);
    r->n_calls++;
    return done;
}

/* A small PRNG (xorshift64) for piece sizes. */
static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Rewrite data in pieces (seed 0: whole); 0 or -1 as html_rw_feed. */
static int rewrite(const uint8_t *data, size_t size, uint64_t seed, struct run *r)
{
    struct html_rw *rw = html_rw_new("a", "href", on_value, r, emit, r);
    int rc = 0;
    for (size_t off = 0; off < size && rc == 0;) {
        size_t n = seed ? 1 + next_rand(&seed) % (next_rand(&seed) % 4 ? 16 : 512) : size;
        n = n < size - off ? n : size - off;
        rc = html_rw_feed(rw, data + off, n);
        check(html_rw_held(rw) <= HTML_RW_VALUE_MAX, "held bytes bounded");
        off += n;
    }
    int fin = html_rw_finish(rw);
    check((rc == 0) == (fin == 0) && (rc == 0) == (html_rw_error(rw) == NULL), "errors agree");
    check(html_rw_held(rw) == 0 || rc != 0, "nothing held after finish");
    html_rw_free(rw);
    return rc;
}

/* Put the original values back: the input again. */
static void check_reconstruction(const struct run *r, const uint8_t *data, size_t size)
{
    struct sl_buf back = { 0 };
    size_t from = 0, values = 0, repls = 0;
    const uint8_t *p = r->calls.data, *out = (const uint8_t *)text(&r->out);
    for (size_t i = 0; i < r->n_calls; i++) {
        struct call c;
        memcpy(&c, p, sizeof(c));
        p += sizeof(c);
        check(c.out_pos >= from && c.out_pos + c.repl_len <= r->out.len, "replacement within output");
        check(c.repl_len == 0 || memcmp(out + c.out_pos, p + c.value_len, c.repl_len) == 0,
              "replacement emitted where the value was");
        sl_buf_append(&back, out + from, c.out_pos - from);
        size_t at = back.len;   /* where the value is in the input */
        check(at + c.value_len < size, "a value is followed by what ends it");
        uint8_t after = data[at + c.value_len];
        check(c.quote ? at > 0 && data[at - 1] == (uint8_t)c.quote && after == (uint8_t)c.quote
                      : at > 0 && (is_blank(after) || after == '>'),
              "a value is what its quotes or its end enclose");
        sl_buf_append(&back, p, c.value_len);
        from = c.out_pos + c.repl_len;
        values += c.value_len;
        repls += c.repl_len;
        p += c.value_len + c.repl_len;
    }
    sl_buf_append(&back, out + from, r->out.len - from);
    check(r->out.len == size - values + repls, "output length: input - values + replacements");
    check(back.len == size && (size == 0 || memcmp(back.data, data, size) == 0), "values put back give the input");
    sl_buf_free(&back);
}

static void free_run(struct run *r)
{
    sl_buf_free(&r->out);
    sl_buf_free(&r->calls);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t seed = 0xcbf29ce484222325u;   /* FNV-1a of the input */
    for (size_t i = 0; i < size; i++)
        seed = (seed ^ data[i]) * 0x100000001b3u;
    seed |= 1;

    struct run keep = { .rewrite = false }, whole = { .rewrite = true }, pieces = { .rewrite = true };
    int rc = rewrite(data, size, 0, &keep);
    check(rc != 0 || (keep.out.len == size && (size == 0 || memcmp(keep.out.data, data, size) == 0)),
          "kept values: output is the input");
    check(rewrite(data, size, 0, &whole) == rc, "same result");
    check(rewrite(data, size, seed, &pieces) == rc, "same result in pieces");
    if (rc == 0) {
        check_reconstruction(&whole, data, size);
        check(pieces.out.len == whole.out.len &&
                  (whole.out.len == 0 || memcmp(pieces.out.data, whole.out.data, whole.out.len) == 0),
              "pieces give the same output");
        check(pieces.calls.len == whole.calls.len &&
                  (whole.calls.len == 0 || memcmp(pieces.calls.data, whole.calls.data, whole.calls.len) == 0),
              "and the same values");
    }
    free_run(&keep);
    free_run(&whole);
    free_run(&pieces);

    struct sl_buf out = { 0 };
    check_references((const char *)data, size);
    check_link((const char *)data, size, &out);
    sl_buf_free(&out);
    return 0;
}
