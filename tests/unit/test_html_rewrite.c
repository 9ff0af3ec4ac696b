/*
 * test_html_rewrite.c - the streaming HTML attribute rewriter and the
 * character-reference helpers (eco/html_rewrite.h): a real-shaped PEP 503
 * page rewritten as the PyPI ecosystem will (decode, rebase, escape), the
 * tokenizer cases that decide which values are rewritten (quotes, case,
 * order, other elements and attributes, comments, raw text, blanks and
 * newlines), byte preservation, chunking down to one byte, bounded holding
 * on a 10 MB page, the value limit, and the reference tables.
 *
 * Every document given to rewrite() is also fed in 1-byte and 7-byte
 * pieces, and the outputs must be the same.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "eco/html_rewrite.h"
#include "eco/link.h"

/* ------------------------------------------------------------ fixtures */

enum mode { KEEP, MARK, REBASE };

struct cb {
    enum mode mode;
    int calls;
    struct sl_buf seen;   /* "<quote>value|" per call, quote 0 written as '0' */
    const char *page, *from, *to;
};

/* Where the fragment of a raw value starts: its first '#' that is not the
 * "&#" of a numeric reference (len if none). */
static size_t raw_fragment(const char *v, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (v[i] == '#' && (i == 0 || v[i - 1] != '&'))
            return i;
    return len;
}

/* What the PyPI ecosystem does with an href: decode, rebase, escape, and
 * keep the fragment's bytes. */
static bool rebase_value(const struct cb *cb, const char *v, size_t len, char quote, struct sl_buf *out)
{
    struct sl_buf link = { 0 }, url = { 0 };
    size_t frag = raw_fragment(v, len);
    html_unescape(v, frag, &link);
    int rc = link_rebase(cb->page, link.data ? (const char *)link.data : "", link.len, cb->from, cb->to, &url);
    if (rc == 1) {
        html_escape_attr((const char *)url.data, url.len, quote, out);
        sl_buf_append(out, v + frag, len - frag);
    }
    sl_buf_free(&link);
    sl_buf_free(&url);
    return rc == 1;
}

static bool on_value(void *ctx, const char *v, size_t len, char quote, struct sl_buf *out)
{
    struct cb *cb = ctx;
    cb->calls++;
    char q = quote ? quote : '0';
    sl_buf_append(&cb->seen, &q, 1);
    sl_buf_append(&cb->seen, v, len);
    sl_buf_append_str(&cb->seen, "|");
    if (cb->mode == MARK) {
        sl_buf_append_str(out, "[");
        sl_buf_append(out, v, len);
        sl_buf_append_str(out, "]");
        return true;
    }
    return cb->mode == REBASE && rebase_value(cb, v, len, quote, out);
}

static void emit_buf(void *ctx, const uint8_t *data, size_t len)
{
    assert_true(len > 0);
    sl_buf_append(ctx, data, len);
}

/* Feed doc[0..len) in pieces of `piece` bytes (0: whole) into out. */
static void feed(struct cb *cb, const char *doc, size_t len, size_t piece, struct sl_buf *out)
{
    struct html_rw *rw = html_rw_new("a", "href", on_value, cb, emit_buf, out);
    if (piece == 0)
        piece = len ? len : 1;
    for (size_t off = 0; off < len; off += piece)
        assert_int_equal(html_rw_feed(rw, (const uint8_t *)doc + off, SL_MIN(piece, len - off)), 0);
    assert_int_equal(html_rw_finish(rw), 0);
    assert_null(html_rw_error(rw));
    assert_int_equal(html_rw_held(rw), 0);
    html_rw_free(rw);
}

static struct sl_buf result;
static struct cb last;

/* The output of doc in `mode`, the same whole, in 1-byte and in 7-byte
 * pieces; `last` keeps the callback's record of the whole run. */
static const char *rewrite_as(const char *doc, enum mode mode, const char *page, const char *from, const char *to)
{
    size_t len = strlen(doc);
    struct sl_buf one = { 0 }, seven = { 0 };
    sl_buf_free(&last.seen);
    struct cb a = { .mode = mode, .page = page, .from = from, .to = to }, b = a, c = a;
    sl_buf_free(&result);
    feed(&a, doc, len, 0, &result);
    feed(&b, doc, len, 1, &one);
    feed(&c, doc, len, 7, &seven);
    assert_int_equal(one.len, result.len);
    assert_memory_equal(one.data, result.data, result.len);
    assert_int_equal(seven.len, result.len);
    assert_memory_equal(seven.data, result.data, result.len);
    assert_int_equal(b.calls, a.calls);
    sl_buf_free(&one);
    sl_buf_free(&seven);
    sl_buf_free(&b.seen);
    sl_buf_free(&c.seen);
    last = a;
    return result.len ? (const char *)result.data : "";
}

static const char *rewrite(const char *doc)
{
    return rewrite_as(doc, MARK, NULL, NULL, NULL);
}

static const char *seen(void)
{
    return last.seen.len ? (const char *)last.seen.data : "";
}

static int teardown(void **state)
{
    (void)state;
    sl_buf_free(&result);
    sl_buf_free(&last.seen);
    return 0;
}

/* -------------------------------------------------------- PEP 503 pages */

#define FILES "https://files.pythonhosted.org"
#define CACHE "http://127.0.0.1:8080/pypi-files"

#define PAGE(base)                                                                                               \
    "<!DOCTYPE html>\n<html>\n  <head>\n"                                                                         \
    "    <meta name=\"pypi:repository-version\" content=\"1.1\">\n"                                               \
    "    <title>Links for demo</title>\n  </head>\n  <body>\n    <h1>Links for demo</h1>\n"                       \
    "    <a href=\"" base "/packages/ab/cd/0123abcd/demo-1.0-py3-none-any.whl#sha256=1111\" "                     \
    "data-requires-python=\"&gt;=3.7\" data-dist-info-metadata=\"sha256=2222\" "                                 \
    "data-core-metadata=\"sha256=2222\">demo-1.0-py3-none-any.whl</a><br/>\n"                                    \
    "    <a data-requires-python=\"&gt;=3.7\" href=\"" base "/packages/ef/01/4567/demo-1.0.tar.gz#sha256=3333\">" \
    "demo-1.0.tar.gz</a><br/>\n"                                                                                  \
    "    <a href=\"" base "/packages/x/demo-1.1.tar.gz?a=1&amp;b=2#md5=44\">demo-1.1.tar.gz</a><br/>\n"           \
    "    <a href=\"https://mirror.example/packages/demo-0.9.tar.gz\">demo-0.9.tar.gz</a><br/>\n"                  \
    "  </body>\n</html>\n<!--SERIAL 123456-->\n"

static void test_pep503_page(void **state)
{
    (void)state;
    const char *out = rewrite_as(PAGE(FILES), REBASE, "https://pypi.org/simple/demo/", FILES, CACHE);
    assert_string_equal(out, PAGE(CACHE));
    assert_int_equal(last.calls, 4);
}

static void test_relative_links(void **state)
{
    (void)state;
    const char *page = "http://127.0.0.1:9000/simple/demo/";
    const char *in = "<a href=\"../../packages/x.whl#sha256=ab\">x</a>\n"
                     "<a href='../../packages/y.whl'>y</a>\n"
                     "<a href=../../packages/z.whl>z</a>\n"
                     "<a href=\"demo-1.0.tar.gz\">here</a>\n"
                     "<a href=\"/packages/a%20b.whl?x=&quot;\">quoted</a>\n";
    const char *want = "<a href=\"http://127.0.0.1:8080/pypi-files/x.whl#sha256=ab\">x</a>\n"
                       "<a href='http://127.0.0.1:8080/pypi-files/y.whl'>y</a>\n"
                       "<a href=http://127.0.0.1:8080/pypi-files/z.whl>z</a>\n"
                       "<a href=\"demo-1.0.tar.gz\">here</a>\n"
                       "<a href=\"http://127.0.0.1:8080/pypi-files/a%20b.whl?x=&quot;\">quoted</a>\n";
    assert_string_equal(rewrite_as(in, REBASE, page, "http://127.0.0.1:9000/packages", CACHE), want);
    assert_int_equal(last.calls, 5);
}

/* ------------------------------------------------------ tokenizer cases */

static void test_quotes(void **state)
{
    (void)state;
    assert_string_equal(rewrite("<a href=\"x y\">"), "<a href=\"[x y]\">");
    assert_string_equal(rewrite("<a href='x\"y'>"), "<a href='[x\"y]'>");
    assert_string_equal(rewrite("<a href=x>"), "<a href=[x]>");
    assert_string_equal(rewrite("<a href=x/>"), "<a href=[x/]>");   /* as HTML reads it */
    assert_string_equal(rewrite("<a href = \"x\" >"), "<a href = \"[x]\" >");
    assert_string_equal(rewrite("<a href=\"\">"), "<a href=\"[]\">");
    assert_string_equal(seen(), "\"|");
    assert_string_equal(rewrite("<a href=x'\"=`<y z>"), "<a href=[x'\"=`<y] z>");
    assert_string_equal(rewrite("<a href=\"a\"href='b'href=c>"), "<a href=\"[a]\"href='[b]'href=[c]>");
    assert_string_equal(seen(), "\"a|'b|0c|");
}

static void test_case_and_order(void **state)
{
    (void)state;
    assert_string_equal(rewrite("<A HREF=\"x\">"), "<A HREF=\"[x]\">");
    assert_string_equal(rewrite("<a HrEf=x>"), "<a HrEf=[x]>");
    assert_string_equal(rewrite("<a class=\"c\" data-x=1 href=\"x\" title='t'>"),
                        "<a class=\"c\" data-x=1 href=\"[x]\" title='t'>");
    assert_string_equal(rewrite("<a download href=x hidden>"), "<a download href=[x] hidden>");
    assert_string_equal(rewrite("<a href=\"x\"/>"), "<a href=\"[x]\"/>");
    assert_string_equal(rewrite("<a/href=x>"), "<a/href=[x]>");
}

static void test_other_elements_and_attributes(void **state)
{
    (void)state;
    const char *same[] = {
        "<link href=\"x\">", "<area href=x>", "<base href=x>", "<abbr href=x>", "<a2 href=x>",
        "<a data-href=\"x\">", "<a hreff=x>", "<a xhref=x>", "<a href>", "<a href >x", "<a href/>",
        "<a href\">", "</a href=x>", "< a href=x>", "<ahref=x>",
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(same); i++) {
        const char *out = rewrite(same[i]);
        if (strcmp(out, same[i]) != 0 || last.calls != 0)
            fail_msg("%s: rewritten as %s", same[i], out);
    }
    assert_string_equal(rewrite("<a href=>x"), "<a href=>x");   /* no value: nothing to rewrite */
    assert_string_equal(rewrite("a < b <<a href=x>"), "a < b <<a href=[x]>");
    assert_string_equal(rewrite("<a name=x></a><a href=y>"), "<a name=x></a><a href=[y]>");
}

static void test_comments_and_declarations(void **state)
{
    (void)state;
    const char *same[] = {
        "<!-- <a href=\"x\"> -->",
        "<!--<a href=x>-->",
        "<!-- -- > <a href=x> -->",
        "<!-- --!x <a href=x> -->",
        "<!---!> <a href=x> -->",
        "<!--!> <a href=x> -->",
        "<!DOCTYPE html <a href=x>",
        "<?xml <a href=x ?>",
        "<![CDATA[ <a href=x ]]>",
        "</1 <a href=x>",
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(same); i++) {
        const char *out = rewrite(same[i]);
        if (strcmp(out, same[i]) != 0 || last.calls != 0)
            fail_msg("%s: rewritten as %s", same[i], out);
    }
    assert_string_equal(rewrite("<!-- x --><a href=y>"), "<!-- x --><a href=[y]>");
    assert_string_equal(rewrite("<!-- x ---><a href=y>"), "<!-- x ---><a href=[y]>");
    assert_string_equal(rewrite("<!-- x --!><a href=y>"), "<!-- x --!><a href=[y]>");
    assert_string_equal(rewrite("<!--><a href=y>"), "<!--><a href=[y]>");
    assert_string_equal(rewrite("<!---><a href=y>"), "<!---><a href=[y]>");
    assert_string_equal(rewrite("<!----><a href=y>"), "<!----><a href=[y]>");
    assert_string_equal(rewrite("<!DOCTYPE html><a href=y>"), "<!DOCTYPE html><a href=[y]>");
    assert_string_equal(rewrite("<!><a href=y>"), "<!><a href=[y]>");
    assert_string_equal(rewrite("<!-x><a href=y>"), "<!-x><a href=[y]>");
    assert_string_equal(rewrite("</><a href=y>"), "</><a href=[y]>");
}

static void test_raw_text(void **state)
{
    (void)state;
    assert_string_equal(rewrite("<script>var s = '<a href=\"x\">';</script><a href=y>"),
                        "<script>var s = '<a href=\"x\">';</script><a href=[y]>");
    assert_string_equal(rewrite("<style>a::after{content:'<a href=x>'}</style ><a href=y>"),
                        "<style>a::after{content:'<a href=x>'}</style ><a href=[y]>");
    assert_string_equal(rewrite("<SCRIPT type=x><a href=x></scripts><a href=x></ScRiPt\n><a href=y>"),
                        "<SCRIPT type=x><a href=x></scripts><a href=x></ScRiPt\n><a href=[y]>");
    assert_string_equal(rewrite("<script><a href=x></script/><a href=y>"),
                        "<script><a href=x></script/><a href=[y]>");
    assert_string_equal(rewrite("<script><</<a href=x></style><a href=x>"),
                        "<script><</<a href=x></style><a href=x>");
    assert_string_equal(rewrite("<scripts><a href=y>"), "<scripts><a href=[y]>");
    assert_string_equal(rewrite("<script/><a href=y>"), "<script/><a href=[y]>");   /* as pip reads it */
    assert_string_equal(rewrite("</script><a href=y>"), "</script><a href=[y]>");
}

static void test_blanks_and_newlines(void **state)
{
    (void)state;
    assert_string_equal(rewrite("<a\nhref\n=\n\"x\"\n>"), "<a\nhref\n=\n\"[x]\"\n>");
    assert_string_equal(rewrite("<a\r\n\thref\f=\r'x'\r\n>"), "<a\r\n\thref\f=\r'[x]'\r\n>");
    assert_string_equal(rewrite("<a href=x\ny=z>"), "<a href=[x]\ny=z>");
    assert_string_equal(rewrite("<a href=\"x\ny\">"), "<a href=\"[x\ny]\">");
    assert_string_equal(rewrite("<a\vhref=x>"), "<a\vhref=x>");   /* VT is not a blank */
}

static void test_end_of_input(void **state)
{
    (void)state;
    assert_string_equal(rewrite("<a href=\"abc"), "<a href=\"abc");
    assert_int_equal(last.calls, 0);
    assert_string_equal(rewrite("<a href=abc"), "<a href=abc");
    assert_string_equal(rewrite("<a href=\"x\" "), "<a href=\"[x]\" ");
    assert_string_equal(rewrite("<a hr"), "<a hr");
    assert_string_equal(rewrite(""), "");
}

/* ------------------------------------------------ preservation, chunking */

static const char *const documents[] = {
    PAGE(FILES),
    "<a href=x>a < b <<a href='y'><!-- <a href=z> --><script><a href=w></script><A HREF = v />",
    "<!DOCTYPE html><p title=\"a>b\">t</p><a\nhref\n=\n\"x\"\n>&amp;</a><style></style><a href=\"\"",
};

static void test_callback_false_keeps_bytes(void **state)
{
    (void)state;
    for (size_t i = 0; i < SL_ARRAY_LEN(documents); i++) {
        const char *out = rewrite_as(documents[i], KEEP, NULL, NULL, NULL);
        assert_string_equal(out, documents[i]);
        assert_true(last.calls >= 1);
    }
}

static void test_every_piece_size(void **state)
{
    (void)state;
    for (size_t i = 0; i < SL_ARRAY_LEN(documents); i++) {
        size_t len = strlen(documents[i]);
        struct sl_buf whole = { 0 };
        struct cb cb = { .mode = MARK };
        feed(&cb, documents[i], len, 0, &whole);
        for (size_t piece = 1; piece <= len; piece++) {
            struct sl_buf out = { 0 };
            struct cb c = { .mode = MARK };
            feed(&c, documents[i], len, piece, &out);
            if (out.len != whole.len || memcmp(out.data, whole.data, out.len) != 0)
                fail_msg("document %zu in %zu-byte pieces differs", i, piece);
            sl_buf_free(&out);
            sl_buf_free(&c.seen);
        }
        sl_buf_free(&whole);
        sl_buf_free(&cb.seen);
    }
}

/* --------------------------------------------------------------- limits */

#define LINE(base, i) "<a href=\"" base "/packages/%02x/%06d/demo-%d.0-py3-none-any.whl#sha256=%064d\" " \
                      "data-requires-python=\"&gt;=3.%d\">demo-%d.0-py3-none-any.whl</a><br/>\n"

static void page_lines(struct sl_buf *b, int i, bool cached)
{
    char line[512];
    int n = cached ? snprintf(line, sizeof(line), LINE(CACHE, i), i & 0xff, i, i, i, i % 13, i)
                   : snprintf(line, sizeof(line), LINE(FILES, i), i & 0xff, i, i, i, i % 13, i);
    sl_buf_append(b, line, (size_t)n);
}

static void test_huge_page_bounded(void **state)
{
    (void)state;
    struct sl_buf in = { 0 }, want = { 0 }, out = { 0 };
    int links = 0;
    while (in.len < 10 * 1000 * 1000) {
        page_lines(&in, links, false);
        page_lines(&want, links++, true);
    }
    struct cb cb = { .mode = REBASE, .page = "https://pypi.org/simple/demo/", .from = FILES, .to = CACHE };
    struct html_rw *rw = html_rw_new("A", "HREF", on_value, &cb, emit_buf, &out);
    size_t most = 0;
    for (size_t off = 0; off < in.len; off += 4093) {
        assert_int_equal(html_rw_feed(rw, in.data + off, SL_MIN(4093, in.len - off)), 0);
        most = SL_MAX(most, html_rw_held(rw));
    }
    assert_int_equal(html_rw_finish(rw), 0);
    assert_true(most > 0 && most < 200);   /* never more than one value */
    assert_int_equal(cb.calls, links);
    assert_int_equal(out.len, want.len);
    assert_memory_equal(out.data, want.data, want.len);
    html_rw_free(rw);
    sl_buf_free(&in);
    sl_buf_free(&want);
    sl_buf_free(&out);
    sl_buf_free(&cb.seen);
}

/* A document of `head`, n times 'x', `tail`, fed in 1000-byte pieces. */
static int feed_long(const char *head, size_t n, const char *tail, struct html_rw **rwp, struct sl_buf *out)
{
    static struct cb cb = { .mode = MARK };
    struct sl_buf doc = { 0 };
    sl_buf_append_str(&doc, head);
    sl_buf_reserve(&doc, n);
    memset(doc.data + doc.len, 'x', n);
    doc.len += n;
    sl_buf_append_str(&doc, tail);
    struct html_rw *rw = html_rw_new("a", "href", on_value, &cb, emit_buf, out);
    int rc = 0;
    for (size_t off = 0; off < doc.len && rc == 0; off += 1000)
        rc = html_rw_feed(rw, doc.data + off, SL_MIN(1000, doc.len - off));
    sl_buf_free(&doc);
    sl_buf_free(&cb.seen);
    *rwp = rw;
    return rc;
}

static void test_value_limit(void **state)
{
    (void)state;
    struct html_rw *rw;
    struct sl_buf out = { 0 };
    assert_int_equal(feed_long("<a href=\"", HTML_RW_VALUE_MAX, "\">", &rw, &out), 0);
    assert_int_equal(html_rw_finish(rw), 0);
    assert_int_equal(out.len, HTML_RW_VALUE_MAX + 13);   /* "<a href=\"[" ... "]\">" */
    html_rw_free(rw);

    sl_buf_clear(&out);
    assert_int_equal(feed_long("<p>text</p><a href=", HTML_RW_VALUE_MAX + 1, ">", &rw, &out), -1);
    assert_non_null(html_rw_error(rw));
    assert_non_null(strstr(html_rw_error(rw), "64 KiB"));
    assert_int_equal(html_rw_feed(rw, (const uint8_t *)"more", 4), -1);
    assert_int_equal(html_rw_finish(rw), -1);
    assert_true(html_rw_held(rw) <= HTML_RW_VALUE_MAX);
    html_rw_free(rw);

    /* nothing is held for what is not rewritten: long tags stream through */
    sl_buf_clear(&out);
    assert_int_equal(feed_long("<a title=\"", 1 << 20, "\" href=x>", &rw, &out), 0);
    assert_int_equal(html_rw_held(rw), 0);
    assert_int_equal(html_rw_finish(rw), 0);
    assert_int_equal(out.len, (1 << 20) + 19 + 2);   /* x became [x] */
    html_rw_free(rw);
    sl_buf_free(&out);
}

/* ------------------------------------------------ character references */

static void test_unescape_table(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        { "plain", "plain" },
        { "a=1&amp;b=2", "a=1&b=2" },
        { "&lt;&gt;&quot;&apos;&#39;&#34;", "<>\"''\"" },
        { "&AMP;&LT;&GT;&QUOT;", "&<>\"" },
        { "&amp&lt&gt&quot", "&<>\"" },              /* legacy names without ';' */
        { "&ampb=2&ltx", "&b=2<x" },                 /* as Python's html.unescape */
        { "&apos", "&apos" },                        /* not legacy: needs ';' */
        { "&Amp;&nbsp;&foo;&;&", "&Amp;&nbsp;&foo;&;&" },   /* unknown: kept */
        { "&#65;&#x42;&#X43;&#0068;&#x0045", "ABCDE" },
        { "&#;&#x;&#xg;&#a", "&#;&#x;&#xg;&#a" },
        { "&#233;&#x20AC;&#x1F600;", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80" },
        { "&#0;&#xD800;&#x110000;&#99999999999999999999;", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
        { "&amp;amp;", "&amp;" },
        { "&&amp;#38;", "&&#38;" },
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        struct sl_buf out = { 0 };
        html_unescape(cases[i][0], strlen(cases[i][0]), &out);
        const char *got = out.len ? (const char *)out.data : "";
        if (strcmp(got, cases[i][1]) != 0)
            fail_msg("unescape(%s) = %s, want %s", cases[i][0], got, cases[i][1]);
        sl_buf_free(&out);
    }
}

static void test_escape_table(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        char quote;
        const char *want;
    } cases[] = {
        { "https://x/a.whl", '"', "https://x/a.whl" },
        { "a=1&b=<2>", '"', "a=1&amp;b=&lt;2&gt;" },
        { "\"'", '"', "&quot;'" },
        { "\"'", '\'', "\"&#39;" },
        { "a b=`c`\"'\t\n\r\f", 0, "a&#32;b&#61;&#96;c&#96;&quot;&#39;&#9;&#10;&#13;&#12;" },
        { "", 0, "" },
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        struct sl_buf out = { 0 }, back = { 0 };
        html_escape_attr(cases[i].in, strlen(cases[i].in), cases[i].quote, &out);
        const char *got = out.len ? (const char *)out.data : "";
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("escape(%s, %c) = %s, want %s", cases[i].in, cases[i].quote ? cases[i].quote : '0', got,
                     cases[i].want);
        html_unescape(got, out.len, &back);
        assert_int_equal(back.len, strlen(cases[i].in));
        assert_memory_equal(back.len ? (const char *)back.data : "", cases[i].in, back.len);
        sl_buf_free(&out);
        sl_buf_free(&back);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pep503_page),
        cmocka_unit_test(test_relative_links),
        cmocka_unit_test(test_quotes),
        cmocka_unit_test(test_case_and_order),
        cmocka_unit_test(test_other_elements_and_attributes),
        cmocka_unit_test(test_comments_and_declarations),
        cmocka_unit_test(test_raw_text),
        cmocka_unit_test(test_blanks_and_newlines),
        cmocka_unit_test(test_end_of_input),
        cmocka_unit_test(test_callback_false_keeps_bytes),
        cmocka_unit_test(test_every_piece_size),
        cmocka_unit_test(test_huge_page_bounded),
        cmocka_unit_test(test_value_limit),
        cmocka_unit_test(test_unescape_table),
        cmocka_unit_test(test_escape_table),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
