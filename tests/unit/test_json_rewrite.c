/*
 * test_json_rewrite.c - the streaming JSON rewriter (eco/json_rewrite.h)
 * on real-shaped npm and PyPI documents.
 *
 * Each document is written once as a template: "@N@" and "@P@" are the
 * npm and PyPI origins where they must stay, "@n@" and "@p@" where the
 * rewriter must replace them with the cache's URL. The input has origins
 * everywhere; the expected output has the cache's URL at the lower-case
 * markers and every other byte as in the input. Every document is run
 * whole, in 1-byte pieces and in random pieces, and all must give exactly
 * the expected bytes.
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
#include "eco/json_rewrite.h"

#define NPM_ORIGIN "https://registry.npmjs.org/"
#define NPM_LOCAL "http://127.0.0.1:8080/npm/"
#define PYPI_ORIGIN "https://files.pythonhosted.org/"
#define PYPI_LOCAL "http://127.0.0.1:8080/pypi-files/"

static const char *const npm_paths[] = { "versions.*.dist.tarball" };
static const char *const pep691_paths[] = { "files[].url" };
static const char *const pypi_json_paths[] = { "urls[].url", "releases.*[].url" };

/* ------------------------------------------------------------- helpers */

struct calls {
    int n;               /* fn calls */
    struct sl_buf seen;  /* every decoded value fn saw, each + '\n' */
    bool keep;           /* answer false to everything */
};

/* The ecosystems' rewrite: an origin prefix becomes the cache's. */
static bool to_local(void *ctx, const char *in, size_t len, struct sl_buf *out)
{
    struct calls *c = ctx;
    c->n++;
    sl_buf_append(&c->seen, in, len);
    sl_buf_append(&c->seen, "\n", 1);
    static const char *const map[][2] = { { NPM_ORIGIN, NPM_LOCAL }, { PYPI_ORIGIN, PYPI_LOCAL } };
    for (size_t i = 0; i < 2 && !c->keep; i++) {
        size_t n = strlen(map[i][0]);
        if (len >= n && memcmp(in, map[i][0], n) == 0) {
            sl_buf_append_str(out, map[i][1]);
            sl_buf_append(out, in + n, len - n);
            return true;
        }
    }
    return false;
}

static void sink(void *ctx, const uint8_t *data, size_t len)
{
    assert_true(len > 0);
    sl_buf_append(ctx, data, len);
}

/* The template with each marker replaced: the input (want_out false) or
 * the expected output. */
static char *expand(const char *t, bool want_out)
{
    struct sl_buf b = { 0 };
    for (const char *p = t; *p; p++) {
        const char *with = NULL;
        if (p[0] == '@' && p[1] && p[2] == '@') {
            switch (p[1]) {
            case 'N': with = NPM_ORIGIN; break;
            case 'n': with = want_out ? NPM_LOCAL : NPM_ORIGIN; break;
            case 'P': with = PYPI_ORIGIN; break;
            case 'p': with = want_out ? PYPI_LOCAL : PYPI_ORIGIN; break;
            }
        }
        if (with) {
            sl_buf_append_str(&b, with);
            p += 2;
        } else {
            sl_buf_append(&b, p, 1);
        }
    }
    sl_buf_append(&b, "", 0);
    return (char *)b.data;
}

/* Run one document through a new rewriter in pieces: piece 0 is the whole
 * document, piece > 0 that size, piece < 0 random sizes up to -piece.
 * Returns 0 or -1 as finish (or the first failing feed) did; the output
 * and the largest json_rw_held seen go to out and max_held. */
static int run(const char *const *paths, size_t n_paths, struct calls *c, const uint8_t *doc,
               size_t len, long piece, struct sl_buf *out, size_t *max_held)
{
    struct json_rw *rw = json_rw_new(paths, n_paths, to_local, c, sink, out);
    assert_non_null(rw);
    int rc = 0;
    size_t held = 0;
    for (size_t at = 0; at < len && rc == 0;) {
        size_t n = piece == 0 ? len : piece > 0 ? (size_t)piece : 1 + (size_t)rand() % (size_t)-piece;
        n = n < len - at ? n : len - at;
        rc = json_rw_feed(rw, doc + at, n);
        held = json_rw_held(rw) > held ? json_rw_held(rw) : held;
        at += n;
    }
    if (rc == 0)
        rc = json_rw_finish(rw);
    if (rc != 0) {
        assert_true(strncmp(json_rw_error(rw), "json: ", 6) == 0);
        assert_int_equal(json_rw_feed(rw, (const uint8_t *)" ", 1), -1);
        assert_int_equal(json_rw_finish(rw), -1);
    } else {
        assert_string_equal(json_rw_error(rw), "");
        assert_int_equal(json_rw_held(rw), 0);
    }
    if (max_held)
        *max_held = held;
    json_rw_free(rw);
    return rc;
}

static const long pieces[] = { 0, 1, 2, 7, -3, -50, -4096 };

/* Every chunking of `in` gives `want` and the same calls to fn. */
static void check_bytes(const char *const *paths, size_t n_paths, const char *in, size_t in_len,
                        const char *want, size_t want_len, bool keep)
{
    struct calls first = { .keep = keep };
    for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
        struct calls c = { .keep = keep };
        struct sl_buf out = { 0 };
        assert_int_equal(run(paths, n_paths, &c, (const uint8_t *)in, in_len, pieces[i], &out, NULL), 0);
        assert_int_equal(out.len, want_len);
        assert_memory_equal(out.data, want, want_len);
        sl_buf_free(&out);
        if (i == 0) {
            first = c;
            continue;
        }
        assert_int_equal(c.n, first.n);
        assert_int_equal(c.seen.len, first.seen.len);
        assert_memory_equal(c.seen.data, first.seen.data, c.seen.len);
        sl_buf_free(&c.seen);
    }
    sl_buf_free(&first.seen);
}

/* Check a template; returns the values fn saw (caller frees). */
static char *check_template(const char *const *paths, size_t n_paths, const char *t, int want_calls)
{
    char *in = expand(t, false), *want = expand(t, true);
    check_bytes(paths, n_paths, in, strlen(in), want, strlen(want), false);
    check_bytes(paths, n_paths, in, strlen(in), in, strlen(in), true);   /* fn keeps all */
    struct calls c = { 0 };
    struct sl_buf out = { 0 };
    assert_int_equal(run(paths, n_paths, &c, (const uint8_t *)in, strlen(in), 0, &out, NULL), 0);
    assert_int_equal(c.n, want_calls);
    sl_buf_free(&out);
    free(in);
    free(want);
    sl_buf_append(&c.seen, "", 0);
    return (char *)c.seen.data;
}

static void check_string(const char *const *paths, size_t n_paths, const char *in, const char *want)
{
    check_bytes(paths, n_paths, in, strlen(in), want, strlen(want), false);
}

/* ------------------------------------------------------ real documents */

static const char npm_full[] =
    "{\"_id\":\"demo\",\"_rev\":\"12-abc\",\"name\":\"demo\",\"description\":\"a demo\",\n"
    "\"dist-tags\":{\"latest\":\"1.1.0\",\"next\":\"2.0.0-beta.1\"},\n"
    "\"versions\":{\n"
    " \"1.0.0\":{\"name\":\"demo\",\"version\":\"1.0.0\",\"tarball\":\"@N@demo/-/demo-1.0.0.tgz\",\n"
    "  \"dist\":{\"shasum\":\"0123456789abcdef0123456789abcdef01234567\",\n"
    "   \"tarball\":\"@n@demo/-/demo-1.0.0.tgz\",\n"
    "   \"integrity\":\"sha512-AAAA/BBBB+CCCC==\",\"fileCount\":3,\"unpackedSize\":1234,\n"
    "   \"signatures\":[{\"keyid\":\"SHA256:jl3bwswu80PjjokCgh0o2w5c2U4LhQAE57gj9cz1kzA\",\"sig\":\"MEUC\"}]},\n"
    "  \"repository\":{\"type\":\"git\",\"url\":\"git+https://github.com/demo/demo.git\"},\n"
    "  \"_npmUser\":{\"name\":\"me\",\"email\":\"me@example.org\"}},\n"
    " \"1.1.0\":{\"name\":\"demo\",\"version\":\"1.1.0\",\"dist\":{\"integrity\":\"sha512-DDDD\",\n"
    "   \"shasum\":\"89abcdef0123456789abcdef0123456789abcdef\",\"tarball\":\"@n@demo/-/demo-1.1.0.tgz\"},\n"
    "  \"deprecated\":\"use 2\",\"dependencies\":{\"dist\":\"^1.0.0\",\"tarball\":\"@N@x\"}},\n"
    " \"2.0.0-beta.1\":{\"name\":\"demo\",\"version\":\"2.0.0-beta.1\",\"bundleDependencies\":[\"dist\"],\n"
    "  \"dist\":{\"tarball\":\"@n@demo/-/demo-2.0.0-beta.1.tgz\",\"shasum\":\"fedcba\",\n"
    "   \"integrity\":\"sha512-EEEE\",\"extra\":{\"tarball\":\"@N@nested\"}}}},\n"
    "\"time\":{\"created\":\"2020-01-01T00:00:00.000Z\",\"1.0.0\":\"2020-01-01T00:00:00.000Z\",\n"
    " \"dist\":{\"tarball\":\"@N@time-decoy\"}},\n"
    "\"dist\":{\"tarball\":\"@N@top-decoy\"},\"tarball\":\"@N@top\",\n"
    "\"maintainers\":[{\"name\":\"me\",\"email\":\"me@example.org\"}],\n"
    "\"readme\":\"# demo\\n\\nSee @N@demo and \\\"dist.tarball\\\".\\n\",\"readmeFilename\":\"README.md\",\n"
    "\"users\":{\"dist\":true},\"_attachments\":{}}\n";

static void test_npm_full_packument(void **state)
{
    (void)state;
    char *seen = check_template(npm_paths, 1, npm_full, 3);
    assert_string_equal(seen, NPM_ORIGIN "demo/-/demo-1.0.0.tgz\n" NPM_ORIGIN "demo/-/demo-1.1.0.tgz\n"
                              NPM_ORIGIN "demo/-/demo-2.0.0-beta.1.tgz\n");
    free(seen);
}

static const char npm_corgi[] =
    "{\"name\":\"@scope/pkg\",\"modified\":\"2024-05-01T10:00:00.000Z\",\"dist-tags\":{\"latest\":\"0.2.0\"},"
    "\"versions\":{\"0.1.0\":{\"name\":\"@scope/pkg\",\"version\":\"0.1.0\",\"dist\":{\"integrity\":\"sha512-x\","
    "\"shasum\":\"aa\",\"tarball\":\"@n@@scope/pkg/-/pkg-0.1.0.tgz\"},\"engines\":{\"node\":\">=18\"}},"
    "\"0.2.0\":{\"name\":\"@scope/pkg\",\"version\":\"0.2.0\",\"dependencies\":{\"left-pad\":\"^1.3.0\"},"
    "\"dist\":{\"integrity\":\"sha512-y\",\"shasum\":\"bb\",\"tarball\":\"@n@@scope/pkg/-/pkg-0.2.0.tgz\","
    "\"fileCount\":2,\"unpackedSize\":100},\"_hasShrinkwrap\":false}}}";

static void test_npm_corgi(void **state)
{
    (void)state;
    free(check_template(npm_paths, 1, npm_corgi, 2));
}

static const char pep691[] =
    "{\"meta\":{\"api-version\":\"1.1\",\"_last-serial\":123},\"name\":\"demo\",\"versions\":[\"1.0\",\"1.1\"],\n"
    "\"files\":[{\"filename\":\"demo-1.0.tar.gz\",\"url\":\"@p@packages/ab/cd/demo-1.0.tar.gz\",\n"
    "\"hashes\":{\"sha256\":\"0123abcd\"},\"requires-python\":\">=3.7\",\"yanked\":false,\"size\":1000,\n"
    "\"upload-time\":\"2024-01-01T00:00:00.000000Z\"},\n"
    "{\"filename\":\"demo-1.1-py3-none-any.whl\",\"url\":\"@p@packages/ef/01/demo-1.1-py3-none-any.whl\",\n"
    "\"hashes\":{\"sha256\":\"4567ef00\"},\"requires-python\":null,\"core-metadata\":{\"sha256\":\"99\"},\n"
    "\"data-dist-info-metadata\":{\"sha256\":\"99\"},\"yanked\":\"broken \\\"wheel\\\"\"}],\n"
    "\"url\":\"@P@decoy\",\"meta2\":{\"files\":[{\"url\":\"@P@nested\"}]}}";

static void test_pep691_page(void **state)
{
    (void)state;
    free(check_template(pep691_paths, 1, pep691, 2));
}

static const char pypi_json[] =
    "{\n  \"info\": {\n    \"name\": \"demo\",\n    \"version\": \"1.1\",\n"
    "    \"download_url\": \"@P@info\",\n    \"project_urls\": {\"url\": \"@P@x\"},\n"
    "    \"requires_dist\": null,\n    \"yanked\": false\n  },\n"
    "  \"last_serial\": 123,\n"
    "  \"releases\": {\n"
    "    \"1.0\": [\n      {\n        \"digests\": {\"md5\": \"aa\", \"sha256\": \"bb\"},\n"
    "        \"filename\": \"demo-1.0.tar.gz\",\n        \"packagetype\": \"sdist\",\n"
    "        \"size\": 1000,\n        \"url\": \"@p@packages/ab/demo-1.0.tar.gz\",\n"
    "        \"yanked_reason\": null\n      }\n    ],\n"
    "    \"1.1\": [\n      {\"url\": \"@p@packages/cd/demo-1.1.tar.gz\", \"size\": 2.5e3},\n"
    "      {\"url\": \"@p@packages/ef/demo-1.1-py3-none-any.whl\", \"has_sig\": true}\n    ],\n"
    "    \"2.0a1\": []\n  },\n"
    "  \"urls\": [\n    {\"filename\": \"demo-1.1.tar.gz\", \"url\": \"@p@packages/cd/demo-1.1.tar.gz\"}\n  ],\n"
    "  \"vulnerabilities\": [{\"url\": \"@P@vuln\"}]\n}\n";

static void test_pypi_json_api(void **state)
{
    (void)state;
    free(check_template(pypi_json_paths, 2, pypi_json, 4));
}

/* --------------------------------------------------------------- bytes */

static void test_escaped_slashes(void **state)
{
    (void)state;
    const char *in = "{\"versions\":{\"1.0.0\":{\"dist\":{\"tarball\":"
                     "\"https:\\/\\/registry.npmjs.org\\/x\\/-\\/x-1.0.0.tgz\"},"
                     "\"homepage\":\"https:\\/\\/example.org\\/\"}}}";
    const char *want = "{\"versions\":{\"1.0.0\":{\"dist\":{\"tarball\":"
                       "\"http://127.0.0.1:8080/npm/x/-/x-1.0.0.tgz\"},"
                       "\"homepage\":\"https:\\/\\/example.org\\/\"}}}";
    check_string(npm_paths, 1, in, want);
    struct calls c = { 0 };
    struct sl_buf out = { 0 };
    assert_int_equal(run(npm_paths, 1, &c, (const uint8_t *)in, strlen(in), 0, &out, NULL), 0);
    assert_int_equal(c.seen.len, strlen(NPM_ORIGIN "x/-/x-1.0.0.tgz\n"));
    assert_memory_equal(c.seen.data, NPM_ORIGIN "x/-/x-1.0.0.tgz\n", c.seen.len);
    sl_buf_free(&c.seen);
    sl_buf_free(&out);
}

/* fn answers with its ctx string, whatever the value. */
static bool constant(void *ctx, const char *in, size_t len, struct sl_buf *out)
{
    (void)in;
    (void)len;
    sl_buf_append_str(out, ctx);
    return true;
}

static void check_constant(const char *const *paths, size_t n, const char *reply, const char *in,
                           const char *want)
{
    struct sl_buf out = { 0 };
    struct json_rw *rw = json_rw_new(paths, n, constant, (void *)reply, sink, &out);
    assert_non_null(rw);
    assert_int_equal(json_rw_feed(rw, (const uint8_t *)in, strlen(in)), 0);
    assert_int_equal(json_rw_finish(rw), 0);
    sl_buf_append(&out, "", 0);
    assert_string_equal((char *)out.data, want);
    json_rw_free(rw);
    sl_buf_free(&out);
}

static void test_replacement_encoding(void **state)
{
    (void)state;
    static const char *const p[] = { "u" };
    check_constant(p, 1, "a\"b\\c/d\n\r\t\b\f\x01\x1f\x7f caf\xc3\xa9 \xf0\x9f\x98\x80", "{\"u\":\"x\"}",
                   "{\"u\":\"a\\\"b\\\\c/d\\n\\r\\t\\b\\f\\u0001\\u001f\x7f caf\xc3\xa9 \xf0\x9f\x98\x80\"}");
    check_constant(p, 1, "", "{\"u\" : \"something\" }", "{\"u\" : \"\" }");
    check_constant(p, 1, "new", "{\"u\":\"\"}", "{\"u\":\"new\"}");
}

static void test_unicode_escapes(void **state)
{
    (void)state;
    static const char *const p[] = { "a[]" };
    /* escapes elsewhere are kept; a matched one is decoded for fn */
    check_string(p, 1,
                 "{\"d\":\"caf\\u00e9 \\ud83d\\ude00 \\u0000\",\"a\":[\"\\u0068ttps://registry.npmjs.org/\\u00e9\"],"
                 "\"\\u0061\":[\"x\"]}",
                 "{\"d\":\"caf\\u00e9 \\ud83d\\ude00 \\u0000\",\"a\":[\"http://127.0.0.1:8080/npm/\xc3\xa9\"],"
                 "\"\\u0061\":[\"x\"]}");
    struct calls c = { .keep = true };
    struct sl_buf out = { 0 };
    const char *in = "[{\"a\":[\"\\ud83d\\ude00\\u0000\\\"\"]}, {\"a\":[\"x\"]}]";
    static const char *const q[] = { "[].a[]" };
    assert_int_equal(run(q, 1, &c, (const uint8_t *)in, strlen(in), 1, &out, NULL), 0);
    assert_int_equal(c.n, 2);
    assert_memory_equal(c.seen.data, "\xf0\x9f\x98\x80\0\"\nx\n", 9);
    assert_int_equal(out.len, strlen(in));
    assert_memory_equal(out.data, in, out.len);
    sl_buf_free(&c.seen);
    sl_buf_free(&out);
}

static void test_whitespace_and_numbers(void **state)
{
    (void)state;
    static const char *const p[] = { "x.*.t" };
    check_string(p, 1,
                 " \r\n\t{ \"x\" :\t{\r\n \"k\"\n:\n{ \"n\": -0.0e+10, \"m\": 1E5, \"big\": 123456789012345678901234567890,"
                 " \"t\"  :  \"https://registry.npmjs.org/a\"  ,\"z\" : [ 1 , 2.50 , true , null ] } } }\n\n ",
                 " \r\n\t{ \"x\" :\t{\r\n \"k\"\n:\n{ \"n\": -0.0e+10, \"m\": 1E5, \"big\": 123456789012345678901234567890,"
                 " \"t\"  :  \"http://127.0.0.1:8080/npm/a\"  ,\"z\" : [ 1 , 2.50 , true , null ] } } }\n\n ");
}

static void test_fn_false_keeps_bytes(void **state)
{
    (void)state;
    static const char *const p[] = { "u", "v" };
    const char *in = "{\"u\":\"http:\\/\\/x\",\"v\":\"\\u0041\\n\"}";
    check_bytes(p, 2, in, strlen(in), in, strlen(in), false);   /* no origin prefix: fn says false */
    /* no fn at all: a validating pass-through */
    struct sl_buf out = { 0 };
    struct json_rw *rw = json_rw_new(p, 2, NULL, NULL, sink, &out);
    assert_int_equal(json_rw_feed(rw, (const uint8_t *)in, strlen(in)), 0);
    assert_int_equal(json_rw_finish(rw), 0);
    assert_memory_equal(out.data, in, strlen(in));
    json_rw_free(rw);
    sl_buf_free(&out);
}

static void test_empty_strings(void **state)
{
    (void)state;
    static const char *const p[] = { "" };   /* the root value */
    check_constant(p, 1, "root", " \"\" ", " \"root\" ");
    static const char *const q[] = { "a", "b" };
    check_constant(q, 2, "", "{\"\":\"\",\"a\":\"\",\"b\":{\"a\":\"\"},\"c\":\"\"}",
                   "{\"\":\"\",\"a\":\"\",\"b\":{\"a\":\"\"},\"c\":\"\"}");
    check_constant(q, 2, "E", "{\"\":\"\",\"a\":\"\",\"b\":\"x\",\"c\":\"\"}",
                   "{\"\":\"\",\"a\":\"E\",\"b\":\"E\",\"c\":\"\"}");
}

/* ------------------------------------------------------------ patterns */

static void test_patterns(void **state)
{
    (void)state;
    static const char *const root_array[] = { "[]" };
    check_constant(root_array, 1, "R", "[\"a\", [\"b\"], {\"c\":\"d\"}, \"e\"]",
                   "[\"R\", [\"b\"], {\"c\":\"d\"}, \"R\"]");
    static const char *const nested[] = { "m[][]", "*.k" };
    check_constant(nested, 2, "R", "{\"m\":[[\"a\",\"b\"],\"c\",[[\"d\"]]],\"z\":{\"k\":\"e\",\"j\":\"f\"},\"k\":\"g\"}",
                   "{\"m\":[[\"R\",\"R\"],\"c\",[[\"d\"]]],\"z\":{\"k\":\"R\",\"j\":\"f\"},\"k\":\"g\"}");
    /* keys are compared decoded; a pattern naming a container matches nothing */
    static const char *const decoded[] = { "dist", "o" };
    check_constant(decoded, 2, "R", "{\"d\\u0069st\":\"a\",\"o\":{\"dist\":\"b\"}}",
                   "{\"d\\u0069st\":\"R\",\"o\":{\"dist\":\"b\"}}");
    static const char *const bad[] = { "a..b", "a.", ".a", "a[", "a]", "a[]x", "a[x]", "[", "a.b]" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_null(json_rw_new(&bad[i], 1, constant, "", sink, NULL));
    const char *many[JSON_RW_PATHS_MAX + 1];
    for (size_t i = 0; i < JSON_RW_PATHS_MAX + 1; i++)
        many[i] = "x";
    assert_null(json_rw_new(many, JSON_RW_PATHS_MAX + 1, constant, "", sink, NULL));
    struct json_rw *rw = json_rw_new(many, JSON_RW_PATHS_MAX, constant, "", sink, NULL);
    assert_non_null(rw);
    json_rw_free(rw);
}

static void test_sixty_four_patterns(void **state)
{
    (void)state;
    static char names[JSON_RW_PATHS_MAX][16];
    const char *paths[JSON_RW_PATHS_MAX];
    for (int i = 0; i < JSON_RW_PATHS_MAX; i++) {
        snprintf(names[i], sizeof(names[i]), "k%d", i);
        paths[i] = names[i];
    }
    check_constant(paths, JSON_RW_PATHS_MAX, "R", "{\"k0\":\"a\",\"k63\":\"b\",\"k64\":\"c\"}",
                   "{\"k0\":\"R\",\"k63\":\"R\",\"k64\":\"c\"}");
}

/* -------------------------------------------------------------- sizes */

static void test_huge_string(void **state)
{
    (void)state;
    struct sl_buf t = { 0 };
    sl_buf_append_str(&t, "{\"readme\":\"");
    for (int i = 0; i < 1 << 20; i += 32)
        sl_buf_append_str(&t, i % 4096 ? "lorem ipsum dolor sit amet, cons" : "\\n\\u00e9\\/\\\"@N@ 0123456789abcdef");
    sl_buf_append_str(&t, "\",\"versions\":{\"1.0.0\":{\"dist\":{\"tarball\":\"@n@big/-/big-1.0.0.tgz\"}}}}");
    char *in = expand((char *)t.data, false), *want = expand((char *)t.data, true);
    size_t in_len = strlen(in), want_len = strlen(want);
    static const long sizes[] = { 0, 65536, 1000, -20000 };
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        struct calls c = { 0 };
        struct sl_buf out = { 0 };
        size_t held;
        assert_int_equal(run(npm_paths, 1, &c, (const uint8_t *)in, in_len, sizes[i], &out, &held), 0);
        assert_int_equal(c.n, 1);
        assert_int_equal(out.len, want_len);
        assert_memory_equal(out.data, want, want_len);
        /* about twice the token while it is being read, never the document */
        assert_true(sizes[i] == 0 || held < 2 * in_len + 65536);
        sl_buf_free(&c.seen);
        sl_buf_free(&out);
    }
    free(in);
    free(want);
    sl_buf_free(&t);
}

/* yajl re-reads a token cut across pieces from its start; the rewriter
 * must not make that quadratic: a 16 MB string in 4 KiB pieces would mean
 * some 32 GB of re-reading (over 10 s here), where it takes under half a
 * second. */
static void test_long_token_small_pieces(void **state)
{
    (void)state;
    size_t len = (size_t)16 << 20;
    uint8_t *doc = malloc(len);
    memset(doc, 'a', len);
    memcpy(doc, "[\"", 2);
    memcpy(doc + len - 2, "\"]", 2);
    struct calls c = { 0 };
    struct sl_buf out = { 0 };
    size_t held;
    int64_t t0 = sl_now_ms();
    assert_int_equal(run(npm_paths, 1, &c, doc, len, 4096, &out, &held), 0);
    int64_t ms = sl_now_ms() - t0;
    print_message("16 MB token in 4 KiB pieces: %lld ms, held at most %zu\n", (long long)ms, held);
    assert_true(ms < 5000);
    assert_true(held <= 2 * len + 4096);
    assert_int_equal(out.len, len);
    assert_memory_equal(out.data, doc, len);
    sl_buf_free(&out);
    free(doc);
}

/* What is settled is emitted at once: only the token being read, and the
 * space and punctuation since the last complete one, are held back. */
static void test_emission_is_prompt(void **state)
{
    (void)state;
    struct calls c = { 0 };
    struct sl_buf out = { 0 };
    struct json_rw *rw = json_rw_new(npm_paths, 1, to_local, &c, sink, &out);
    const char *part1 = "{\"versions\":{\"1\":{\"dist\":{\"tarball\" : \"https://registry.npmjs.org/a";
    assert_int_equal(json_rw_feed(rw, (const uint8_t *)part1, strlen(part1)), 0);
    assert_int_equal(out.len, strlen("{\"versions\":{\"1\":{\"dist\":{\"tarball\""));
    assert_int_equal(json_rw_held(rw), strlen(" : \"https://registry.npmjs.org/a"));
    assert_int_equal(json_rw_feed(rw, (const uint8_t *)".tgz\"", 5), 0);
    assert_int_equal(c.n, 1);
    assert_int_equal(json_rw_held(rw), 0);
    assert_int_equal(json_rw_feed(rw, (const uint8_t *)"}}} ,", 5), 0);
    assert_int_equal(json_rw_held(rw), 2);   /* " ," */
    assert_int_equal(json_rw_feed(rw, (const uint8_t *)"\"x\":1}\n", 7), 0);
    assert_int_equal(json_rw_held(rw), 1);   /* "\n": the document may go on */
    assert_int_equal(json_rw_finish(rw), 0);
    sl_buf_append(&out, "", 0);
    assert_string_equal((char *)out.data, "{\"versions\":{\"1\":{\"dist\":{\"tarball\" : "
                                          "\"http://127.0.0.1:8080/npm/a.tgz\"}}} ,\"x\":1}\n");
    json_rw_free(rw);
    sl_buf_free(&out);
    sl_buf_free(&c.seen);
}

/* A sink that only counts and checks against the expected output. */
struct compare {
    const char *want;
    size_t len, at;
};

static void compare_sink(void *ctx, const uint8_t *data, size_t len)
{
    struct compare *c = ctx;
    assert_true(len > 0 && c->at + len <= c->len);
    assert_memory_equal(data, c->want + c->at, len);
    c->at += len;
}

static void test_30mb_bounded_holding(void **state)
{
    (void)state;
    struct sl_buf t = { 0 };
    sl_buf_append_str(&t, "{\"name\":\"big\",\"versions\":{");
    int n;
    for (n = 0; t.len < (size_t)30 << 20; n++) {
        char v[600];
        snprintf(v, sizeof(v),
                 "%s\n  \"1.0.%d\": {\"name\":\"big\",\"version\":\"1.0.%d\",\"description\":\"%0300d\","
                 "\"dist\":{\"shasum\":\"%040d\",\"tarball\":\"@n@big/-/big-1.0.%d.tgz\",\"integrity\":\"sha512-%d\"}}",
                 n ? "," : "", n, n, n, n, n, n);
        sl_buf_append_str(&t, v);
    }
    sl_buf_append_str(&t, "},\"time\":{}}");
    char *in = expand((char *)t.data, false), *want = expand((char *)t.data, true);
    sl_buf_free(&t);
    struct calls c = { .keep = false };
    struct compare cmp = { .want = want, .len = strlen(want) };
    struct json_rw *rw = json_rw_new(npm_paths, 1, to_local, &c, compare_sink, &cmp);
    size_t len = strlen(in), max_held = 0;
    for (size_t at = 0; at < len; at += 65536) {
        assert_int_equal(json_rw_feed(rw, (const uint8_t *)in + at, SL_MIN(65536, len - at)), 0);
        max_held = SL_MAX(max_held, json_rw_held(rw));
    }
    assert_int_equal(json_rw_finish(rw), 0);
    assert_int_equal(cmp.at, cmp.len);
    assert_int_equal(c.n, n);
    /* one piece plus the token cut at its end, not the document */
    assert_true(max_held <= 65536 + 1024);
    json_rw_free(rw);
    sl_buf_free(&c.seen);
    free(in);
    free(want);
}

static void test_token_limit(void **state)
{
    (void)state;
    struct sl_buf out = { 0 };
    struct json_rw *rw = json_rw_new(npm_paths, 1, to_local, NULL, sink, &out);
    size_t piece = 1 << 20;
    uint8_t *a = malloc(piece);
    memset(a, 'a', piece);
    int rc = json_rw_feed(rw, (const uint8_t *)"[\"", 2);
    size_t fed = 0;
    for (; rc == 0 && fed <= 3 * JSON_RW_TOKEN_MAX; fed += piece)
        rc = json_rw_feed(rw, a, piece);
    assert_int_equal(rc, -1);
    assert_true(fed > JSON_RW_TOKEN_MAX && fed <= 2 * JSON_RW_TOKEN_MAX + piece);
    assert_non_null(strstr(json_rw_error(rw), "exceed"));
    assert_int_equal(json_rw_finish(rw), -1);
    assert_int_equal(out.len, 1);   /* the '[' */
    json_rw_free(rw);
    free(a);
    sl_buf_free(&out);
}

/* ------------------------------------------------------------- errors */

/* Whole, in 1-byte and in 2-byte pieces, the document is refused with an
 * error that says error_part, and so is everything after. */
static void expect_error(const char *in, size_t len, const char *error_part)
{
    static const long sizes[] = { 1 << 30, 1, 2 };
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        struct calls c = { 0 };
        struct sl_buf out = { 0 };
        struct json_rw *rw = json_rw_new(npm_paths, 1, to_local, &c, sink, &out);
        int rc = 0;
        for (size_t at = 0; at < len && rc == 0; at += (size_t)sizes[i])
            rc = json_rw_feed(rw, (const uint8_t *)in + at, SL_MIN((size_t)sizes[i], len - at));
        if (rc == 0)
            rc = json_rw_finish(rw);
        assert_int_equal(rc, -1);
        if (!strstr(json_rw_error(rw), error_part))
            fail_msg("%s: error \"%s\" has no \"%s\"", in, json_rw_error(rw), error_part);
        assert_int_equal(json_rw_feed(rw, (const uint8_t *)"{}", 2), -1);
        assert_int_equal(json_rw_finish(rw), -1);
        json_rw_free(rw);
        sl_buf_free(&c.seen);
        sl_buf_free(&out);
    }
}

static void test_invalid_documents(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        { "", "premature EOF" },
        { "   ", "premature EOF, at byte 3" },
        { "{\"a\"", "premature EOF, at byte 4" },
        { "{\"versions\":{\"1\":{\"dist\":{\"tarball\":\"https://registry.npmjs.org/x", "premature EOF" },
        { "{\"a\":1} x", "trailing garbage, at byte 9" },
        { "{\"a\":1}{}", "trailing garbage" },
        { "{\"a\":\"\\q\"}", "'\\' occurs before a character which it may not, at byte 7" },
        { "{\"a\":\"\\u12G4\"}", "invalid (non-hex) character" },
        { "{\"a\":\"\xff\"}", "invalid bytes in UTF8 string" },
        { "{\"a\":\"\xc3\"}", "invalid bytes in UTF8 string" },
        { "{\"a\":\"x\ny\"}", "invalid character inside string" },
        { "{\"a\":1,}", "invalid object key" },
        { "[1 2]", "after array element" },
        { "{'a':1}", "invalid char" },
        { "nul", "invalid string" },
        { "nulL", "invalid string" },
        { "[1.]", "malformed number" },
        { "[-]", "malformed number" },
        { "{\"a\":1 // c\n}", "comments are not enabled" },
        { "{1:2}", "invalid object key" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_error(cases[i][0], strlen(cases[i][0]), cases[i][1]);
    expect_error("[\"a\0\"]", 5, "invalid character inside string");
    char deep[JSON_RW_DEPTH_MAX + 2];
    memset(deep, '[', sizeof(deep) - 1);
    deep[sizeof(deep) - 1] = '\0';
    expect_error(deep, strlen(deep), "nesting deeper than 1024, at byte 1025");
}

static void test_depth_limit_is_exact(void **state)
{
    (void)state;
    struct sl_buf d = { 0 };
    for (int i = 0; i < JSON_RW_DEPTH_MAX; i++)
        sl_buf_append(&d, "[", 1);
    for (int i = 0; i < JSON_RW_DEPTH_MAX; i++)
        sl_buf_append(&d, "]", 1);
    check_bytes(npm_paths, 1, (char *)d.data, d.len, (char *)d.data, d.len, false);
    sl_buf_free(&d);
}

static void test_after_finish(void **state)
{
    (void)state;
    struct sl_buf out = { 0 };
    struct json_rw *rw = json_rw_new(npm_paths, 1, to_local, NULL, sink, &out);
    assert_int_equal(json_rw_feed(rw, (const uint8_t *)"{} ", 3), 0);
    assert_int_equal(json_rw_feed(rw, (const uint8_t *)"", 0), 0);
    assert_int_equal(json_rw_finish(rw), 0);
    assert_int_equal(json_rw_finish(rw), 0);
    assert_int_equal(out.len, 3);
    assert_int_equal(json_rw_feed(rw, (const uint8_t *)" ", 1), -1);
    assert_string_equal(json_rw_error(rw), "json: input after the end of the document");
    assert_int_equal(json_rw_finish(rw), -1);
    json_rw_free(rw);
    json_rw_free(NULL);
    sl_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_npm_full_packument),
        cmocka_unit_test(test_npm_corgi),
        cmocka_unit_test(test_pep691_page),
        cmocka_unit_test(test_pypi_json_api),
        cmocka_unit_test(test_escaped_slashes),
        cmocka_unit_test(test_replacement_encoding),
        cmocka_unit_test(test_unicode_escapes),
        cmocka_unit_test(test_whitespace_and_numbers),
        cmocka_unit_test(test_fn_false_keeps_bytes),
        cmocka_unit_test(test_empty_strings),
        cmocka_unit_test(test_patterns),
        cmocka_unit_test(test_sixty_four_patterns),
        cmocka_unit_test(test_huge_string),
        cmocka_unit_test(test_long_token_small_pieces),
        cmocka_unit_test(test_emission_is_prompt),
        cmocka_unit_test(test_30mb_bounded_holding),
        cmocka_unit_test(test_token_limit),
        cmocka_unit_test(test_invalid_documents),
        cmocka_unit_test(test_depth_limit_is_exact),
        cmocka_unit_test(test_after_finish),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
