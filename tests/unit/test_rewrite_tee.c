/*
 * test_rewrite_tee.c - the tee of a rewriting pipe (serve/rewrite.c,
 * rw_pipe_tee / rw_pipe_take_tee), what serve/rwcache.h keeps.
 *
 * Proves: a document rewritten to its end gives out exactly the bytes the
 * pipe handed to the socket, with the digest notes its rewriter put as
 * records that bring those notes back into a table that forgot them; the
 * tee is given out once, and never before the rewriter finished; an output
 * over the tee's limit, a document that does not parse to its end, and a
 * source that fails give nothing (a partial output is never kept).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/agent.h"
#include "core/buf.h"
#include "eco/digest_notes.h"
#include "serve/rewrite.h"

static struct agent A;
static struct canon CN;

/* The raw body: `doc` in pieces of `piece` bytes, then the end (or an error). */
struct src {
    const char *doc;
    size_t len, off, piece;
    bool fail_at_end;
};

static enum http_body_result src_body(void *ctx, struct http_piece *out)
{
    struct src *s = ctx;
    if (s->off == s->len)
        return s->fail_at_end ? HTTP_PIECE_ERROR : HTTP_PIECE_END;
    out->data = (const uint8_t *)s->doc + s->off;
    out->fd = -1;
    out->len = s->len - s->off < s->piece ? s->len - s->off : s->piece;
    return HTTP_PIECE_DATA;
}

static void src_consumed(void *ctx, size_t n)
{
    ((struct src *)ctx)->off += n;
}

static int setup(void **state)
{
    (void)state;
    char err[256];
    memset(&A, 0, sizeof(A));
    config_defaults(&A.cfg);
    assert_int_equal(config_set(&A.cfg, "public_url", "https://edge.example", err, sizeof(err)), 0);
    assert_int_equal(config_set(&A.cfg, "origin_npm", "https://registry.npmjs.org", err, sizeof(err)), 0);
    assert_int_equal(route_table_parse(&A.routes, "/npm/ npm\n", &A.cfg, err, sizeof(err)), 0);
    A.notes = digest_notes_new(64);
    const struct route *r = route_by_name(&A.routes, "npm", 3);
    assert_non_null(r);
    assert_int_equal(canon_request(r, "/npm/pkg", 8, NULL, 0, NULL, 0, &CN), CANON_OK);
    assert_true(rewrite_applies(&CN, 200));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    digest_notes_free(A.notes);
    return 0;
}

static const char DOC[] =
    "{\"name\":\"pkg\",\"versions\":{\"1.0.0\":{\"dist\":{\"tarball\":"
    "\"https://registry.npmjs.org/pkg/-/pkg-1.0.0.tgz\",\"shasum\":\"0123456789abcdef0123456789abcdef01234567\"}}}}";

/* Run the pipe to its end or error; what it handed out goes to `sent`. */
static enum http_body_result drain(struct rw_pipe *p, struct sl_buf *sent)
{
    for (;;) {
        struct http_piece pc = { .fd = -1 };
        enum http_body_result r = rw_pipe_body(p, &pc);
        if (r != HTTP_PIECE_DATA)
            return r;
        size_t n = pc.len > 5 ? 5 : pc.len;   /* a slow socket */
        sl_buf_append(sent, pc.data, n);
        rw_pipe_consumed(p, n);
    }
}

static struct rw_pipe *pipe_over(struct src *s, size_t tee_max)
{
    struct rw_source rs = { src_body, src_consumed, s };
    struct rw_pipe *p = rw_pipe_new(&A, &CN, &rs);
    rw_pipe_tee(p, tee_max);
    return p;
}

static void test_a_whole_rewrite_is_given_out_once(void **state)
{
    (void)state;
    struct src s = { DOC, sizeof(DOC) - 1, 0, 7, false };
    struct rw_pipe *p = pipe_over(&s, 1 << 20);
    struct sl_buf sent = { 0 }, out = { 0 }, notes = { 0 };
    struct http_piece pc = { .fd = -1 };
    assert_int_equal(rw_pipe_body(p, &pc), HTTP_PIECE_DATA);
    assert_false(rw_pipe_take_tee(p, &out, &notes));   /* not finished yet */
    assert_int_equal(drain(p, &sent), HTTP_PIECE_END);
    assert_true(rw_pipe_take_tee(p, &out, &notes));
    assert_false(rw_pipe_take_tee(p, &out, &notes));   /* once */
    assert_int_equal(out.len, sent.len);
    assert_memory_equal(out.data, sent.data, sent.len);
    assert_non_null(strstr((const char *)out.data, "https://edge.example/npm/pkg/-/pkg-1.0.0.tgz"));
    assert_true(notes.len > 0);
    /* the records bring the tarball's note back into a table without it */
    struct digest_notes *fresh = digest_notes_new(64), *kept = A.notes;
    digest_notes_replay(fresh, notes.data, notes.len);
    assert_int_equal(digest_notes_puts(fresh), 1);
    A.notes = fresh;
    digest_notes_free(kept);
    rw_pipe_free(p);
    sl_buf_free(&sent);
    sl_buf_free(&out);
    sl_buf_free(&notes);
}

static void expect_nothing_kept(struct src *s, size_t tee_max, enum http_body_result end)
{
    struct rw_pipe *p = pipe_over(s, tee_max);
    struct sl_buf sent = { 0 }, out = { 0 }, notes = { 0 };
    assert_int_equal(drain(p, &sent), end);
    assert_false(rw_pipe_take_tee(p, &out, &notes));
    assert_null(out.data);
    assert_null(notes.data);
    rw_pipe_free(p);
    sl_buf_free(&sent);
}

static void test_too_large_failed_or_cut_rewrites_are_never_kept(void **state)
{
    (void)state;
    struct src whole = { DOC, sizeof(DOC) - 1, 0, 7, false };
    expect_nothing_kept(&whole, 20, HTTP_PIECE_END);   /* over the limit: sent, not kept */
    struct src cut = { DOC, sizeof(DOC) - 10, 0, 7, false };
    expect_nothing_kept(&cut, 1 << 20, HTTP_PIECE_ERROR);   /* does not parse to its end */
    struct src failing = { DOC, sizeof(DOC) - 1, 0, 7, true };
    expect_nothing_kept(&failing, 1 << 20, HTTP_PIECE_ERROR);   /* the source failed */
    struct src junk = { "<html>", 6, 0, 7, false };
    expect_nothing_kept(&junk, 1 << 20, HTTP_PIECE_ERROR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_whole_rewrite_is_given_out_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_large_failed_or_cut_rewrites_are_never_kept, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
