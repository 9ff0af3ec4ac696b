/*
 * test_origin_head.c - an origin response's header block, line by line
 * (origin/origin_head.c): framing verdicts, sharing facts, what is kept.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "origin/origin_head.h"

/* Feeds a whole head ("\n"-separated lines, as libcurl hands them over);
 * returns how many blocks ended. */
static int feed(struct origin_head *h, const char *text)
{
    int ends = 0;
    while (*text) {
        const char *nl = strchr(text, '\n');
        size_t len = nl ? (size_t)(nl - text) + 1 : strlen(text);
        ends += origin_head_line(h, text, len) == ORIGIN_HEAD_END;
        text += len;
    }
    return ends;
}

static enum origin_bad verdict_of(const char *text)
{
    struct origin_head h;
    origin_head_init(&h);
    assert_int_equal(feed(&h, text), 1);
    enum origin_bad bad = origin_head_framing(&h);
    origin_head_free(&h);
    return bad;
}

static void test_a_plain_head_keeps_its_status_headers_and_length(void **state)
{
    (void)state;
    struct origin_head h;
    origin_head_init(&h);
    assert_int_equal(feed(&h, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nETag:  \"x\" \t\r\n\r\n"), 1);
    assert_int_equal(h.status, 200);
    assert_int_equal(h.hdrs.n, 2);
    assert_string_equal(h.hdrs.h[1].name, "ETag");
    assert_string_equal(h.hdrs.h[1].value, "\"x\"");
    assert_int_equal(h.hdrs.content_length, 1000);
    assert_int_equal(origin_head_framing(&h), ORIGIN_BAD_NONE);
    origin_head_free(&h);
}

static void test_ambiguous_lengths_are_named(void **state)
{
    (void)state;
    assert_int_equal(verdict_of("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
                     ORIGIN_BAD_CL_TE);
    assert_int_equal(verdict_of("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 10\r\n\r\n"),
                     ORIGIN_BAD_CL_CONFLICT);
    assert_int_equal(verdict_of("HTTP/1.1 200 OK\r\nContent-Length: 5, 10\r\n\r\n"), ORIGIN_BAD_CL_CONFLICT);
    assert_int_equal(verdict_of("HTTP/1.1 200 OK\r\nContent-Length: 10x\r\n\r\n"), ORIGIN_BAD_CL_INVALID);
    assert_int_equal(verdict_of("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5, 5\r\n\r\n"),
                     ORIGIN_BAD_NONE);
}

static void test_a_line_that_is_not_a_field_refuses_the_block(void **state)
{
    (void)state;
    assert_int_equal(verdict_of("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n"), ORIGIN_BAD_FIELD);
    assert_int_equal(verdict_of("HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n"), ORIGIN_BAD_FIELD);
    assert_int_equal(verdict_of("HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n"), ORIGIN_BAD_FIELD);
    assert_int_equal(verdict_of("HTTP/1.1 200 OK\r\n: empty name\r\n\r\n"), ORIGIN_BAD_FIELD);
    struct origin_head h;
    origin_head_init(&h);
    assert_int_equal(origin_head_line(&h, "HTTP/1.1 200 OK\r\n", 17), ORIGIN_HEAD_MORE);
    assert_int_equal(origin_head_line(&h, "X-A: b\0c\r\n", 10), ORIGIN_HEAD_MORE);   /* a NUL inside */
    assert_int_equal(origin_head_line(&h, "\r\n", 2), ORIGIN_HEAD_END);
    assert_int_equal(origin_head_framing(&h), ORIGIN_BAD_FIELD);
    assert_int_equal(h.hdrs.n, 0);   /* nothing of it kept */
    origin_head_free(&h);
}

static void test_padding_cannot_hide_what_the_cache_must_know(void **state)
{
    (void)state;
    struct origin_head h;
    origin_head_init(&h);
    feed(&h, "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i < ORIGIN_MAX_HEADERS + 8; i++)
        feed(&h, "X-Pad: y\r\n");
    feed(&h, "Cache-Control: public, no-store\r\nVary: Accept, *\r\nSet-Cookie: a=b\r\nLocation: /x\r\n\r\n");
    assert_int_equal(h.hdrs.n, ORIGIN_MAX_HEADERS);
    assert_true(h.hdrs.no_store);
    assert_true(h.hdrs.vary_star);
    assert_int_equal(h.hdrs.set_cookies, 1);
    assert_true(h.saw_location);
    assert_null(origin_head_location(&h));   /* seen, but past what is kept */
    origin_head_free(&h);
}

static void test_a_status_line_starts_a_new_block(void **state)
{
    (void)state;
    struct origin_head h;
    origin_head_init(&h);
    assert_int_equal(feed(&h, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 302 Found\r\nLocation: /next\r\n"
                              "Content-Length: 0\r\n\r\n"), 2);
    assert_int_equal(h.status, 302);
    assert_string_equal(origin_head_location(&h), "/next");
    feed(&h, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_int_equal(h.status, 200);
    assert_false(h.saw_location);
    assert_int_equal(h.hdrs.content_length, -1);
    assert_int_equal(origin_head_framing(&h), ORIGIN_BAD_NONE);
    origin_head_free(&h);
}

static void test_a_malformed_status_is_zero(void **state)
{
    (void)state;
    struct origin_head h;
    origin_head_init(&h);
    feed(&h, "HTTP/1.1 2x0 OK\r\n");
    assert_int_equal(h.status, 0);
    feed(&h, "HTTP/1.1 99999999999999999999 OK\r\n");
    assert_int_equal(h.status, 0);   /* three digits, never an overflow */
    feed(&h, "HTTP/1.1 404\r\n");
    assert_int_equal(h.status, 404);
    feed(&h, "HTTP/1.1\r\n");
    assert_int_equal(h.status, 0);
    origin_head_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_plain_head_keeps_its_status_headers_and_length),
        cmocka_unit_test(test_ambiguous_lengths_are_named),
        cmocka_unit_test(test_a_line_that_is_not_a_field_refuses_the_block),
        cmocka_unit_test(test_padding_cannot_hide_what_the_cache_must_know),
        cmocka_unit_test(test_a_status_line_starts_a_new_block),
        cmocka_unit_test(test_a_malformed_status_is_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
