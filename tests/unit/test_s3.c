/*
 * test_s3.c - the S3 tier's pure parts (store/s3.h): object URLs in both
 * addressings, query strings in S3's canonical order, the metadata header
 * round trip and its refusals, the CompleteMultipartUpload document and
 * values read from S3's XML answers, and the settings check.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/common.h"
#include "core/config.h"
#include "store/key.h"
#include "store/objfile.h"
#include "store/s3.h"

static struct s3_settings settings(const char *endpoint, bool virtual_host)
{
    return (struct s3_settings){ .endpoint = endpoint, .bucket = "edge-cache", .region = "eu-west-1",
                                 .prefix = "sluice/", .virtual_host = virtual_host,
                                 .multipart_threshold = 16 << 20, .part_size = 8 << 20 };
}

static void test_url_path_style(void **state)
{
    SL_UNUSED(state);
    struct s3_settings s = settings("http://127.0.0.1:9000", false);
    uint8_t h[KEY_HASH_LEN];
    char hex[KEY_HEX_LEN + 1], want[256], url[S3_URL_MAX];
    key_hash("npm:/left-pad", 13, h);
    key_hex(h, hex);
    assert_true(s3_object_url(&s, h, "", url, sizeof(url)) > 0);
    snprintf(want, sizeof(want), "http://127.0.0.1:9000/edge-cache/sluice/%s", hex);
    assert_string_equal(url, want);
    assert_true(s3_object_url(&s, h, "uploads=", url, sizeof(url)) > 0);
    snprintf(want, sizeof(want), "http://127.0.0.1:9000/edge-cache/sluice/%s?uploads=", hex);
    assert_string_equal(url, want);
    assert_int_equal(s3_object_url(&s, h, "", url, 40), 0);   /* does not fit: nothing */
}

static void test_url_virtual_host(void **state)
{
    SL_UNUSED(state);
    struct s3_settings s = settings("https://s3.eu-west-1.amazonaws.com", true);
    s.prefix = "";
    uint8_t h[KEY_HASH_LEN];
    char hex[KEY_HEX_LEN + 1], want[256], url[S3_URL_MAX];
    key_hash("k", 1, h);
    key_hex(h, hex);
    assert_true(s3_object_url(&s, h, NULL, url, sizeof(url)) > 0);
    snprintf(want, sizeof(want), "https://edge-cache.s3.eu-west-1.amazonaws.com/%s", hex);
    assert_string_equal(url, want);
}

static void test_queries_are_canonical(void **state)
{
    SL_UNUSED(state);
    char q[256];
    assert_true(s3_query_part(3, "abc.DEF_-~", q, sizeof(q)) > 0);
    assert_string_equal(q, "partNumber=3&uploadId=abc.DEF_-~");   /* sorted: p < u */
    assert_true(s3_query_part(1, "a/b+c=d e", q, sizeof(q)) > 0);
    assert_string_equal(q, "partNumber=1&uploadId=a%2Fb%2Bc%3Dd%20e");
    assert_true(s3_query_upload("x/y", q, sizeof(q)) > 0);
    assert_string_equal(q, "uploadId=x%2Fy");
    assert_int_equal(s3_query_part(0, "x", q, sizeof(q)), 0);
    assert_int_equal(s3_query_part(S3_MAX_PARTS + 1, "x", q, sizeof(q)), 0);
    assert_int_equal(s3_query_upload("xxxxxxxxxxxxxxxxxxxx", q, 10), 0);
}

static void block_of(const char *key, uint8_t block[OBJ_HEADER_SIZE])
{
    struct obj_meta m = { .key = (char *)key, .status = 200, .size = 1234, .stored = 1700000000,
                          .etag = (char *)"\"e1\"", .verified = (char *)"sha256:00ff" };
    m.headers[0] = (struct obj_header_field){ (char *)"Content-Type", (char *)"application/json" };
    m.n_headers = 1;
    assert_int_equal(obj_header_encode(&m, block), 0);
}

static void test_meta_round_trip(void **state)
{
    SL_UNUSED(state);
    uint8_t block[OBJ_HEADER_SIZE];
    char v[S3_META_MAX + 1];
    block_of("npm:/left-pad\x01 \xff", block);
    size_t n = s3_meta_encode(block, v, sizeof(v));
    assert_true(n > 0 && n == strlen(v));
    assert_null(strpbrk(v, " \r\n:"));   /* a safe header value */
    struct obj_meta m;
    char err[128];
    assert_int_equal(s3_meta_decode(v, n, &m, err, sizeof(err)), 0);
    assert_string_equal(m.key, "npm:/left-pad\x01 \xff");
    assert_int_equal(m.size, 1234);
    assert_int_equal(m.stored, 1700000000);   /* freshness travels with the object */
    assert_string_equal(m.verified, "sha256:00ff");
    assert_string_equal(m.headers[0].value, "application/json");
    obj_meta_free(&m);
}

static void test_meta_refusals(void **state)
{
    SL_UNUSED(state);
    uint8_t block[OBJ_HEADER_SIZE];
    char v[S3_META_MAX + 1], err[128];
    struct obj_meta m;
    block_of("generic:x", block);
    size_t n = s3_meta_encode(block, v, sizeof(v));
    v[10] = v[10] == 'A' ? 'B' : 'A';   /* one bit off: the CRC says no */
    assert_int_equal(s3_meta_decode(v, n, &m, err, sizeof(err)), -1);
    assert_null(m.key);
    assert_int_equal(s3_meta_decode(" QUJD", 5, &m, err, sizeof(err)), -1);   /* blanks */
    assert_int_equal(s3_meta_decode("QUJD", 4, &m, err, sizeof(err)), -1);    /* too short */
    assert_int_equal(s3_meta_decode("QUJ", 3, &m, err, sizeof(err)), -1);
    assert_int_equal(s3_meta_decode("", 0, &m, err, sizeof(err)), -1);
    char big[KEY_MAX + 1];
    memset(big, 'k', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    block_of(big, block);   /* fits a header block, not S3's 2 KB of metadata */
    assert_int_equal(s3_meta_encode(block, v, sizeof(v)), 0);
}

static void test_complete_xml(void **state)
{
    SL_UNUSED(state);
    char *etags[] = { (char *)"\"a1\"", (char *)"b<&>" };
    char *x = s3_complete_xml(etags, 2);
    assert_string_equal(x, "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                           "<Part><PartNumber>1</PartNumber><ETag>&quot;a1&quot;</ETag></Part>"
                           "<Part><PartNumber>2</PartNumber><ETag>b&lt;&amp;&gt;</ETag></Part>"
                           "</CompleteMultipartUpload>");
    char back[32];
    assert_int_equal(s3_xml_value(x, strlen(x), "ETag", back, sizeof(back)), 4);
    assert_string_equal(back, "\"a1\"");
    free(x);
}

static void test_xml_values(void **state)
{
    SL_UNUSED(state);
    static const char create[] = "<?xml version=\"1.0\"?><InitiateMultipartUploadResult><Bucket>b</Bucket>"
                                 "<Key>k</Key><UploadId>VXBsb2Fk&amp;1</UploadId></InitiateMultipartUploadResult>";
    static const char error[] = "<Error><Code>NoSuchKey</Code><Message>The specified key does not exist."
                                "</Message></Error>";
    char v[64];
    assert_int_equal(s3_xml_value(create, strlen(create), "UploadId", v, sizeof(v)), 10);
    assert_string_equal(v, "VXBsb2Fk&1");
    assert_false(s3_xml_is_error(create, strlen(create)));
    assert_true(s3_xml_is_error(error, strlen(error)));
    assert_true(s3_xml_value(error, strlen(error), "Code", v, sizeof(v)) > 0);
    assert_string_equal(v, "NoSuchKey");
    assert_int_equal(s3_xml_value(error, strlen(error), "UploadId", v, sizeof(v)), -1);
    assert_int_equal(s3_xml_value(error, strlen(error), "Message", v, 8), -1);            /* too long */
    assert_int_equal(s3_xml_value("<a>x&bogus;</a>", 15, "a", v, sizeof(v)), -1);        /* entity */
    assert_int_equal(s3_xml_value("<a>x<b>y</b></a>", 16, "a", v, sizeof(v)), -1);       /* markup */
    assert_int_equal(s3_xml_value("<a>unterminated", 15, "a", v, sizeof(v)), -1);
    assert_int_equal(s3_xml_value("<Code>cut", 6, "Code", v, sizeof(v)), -1);            /* bound kept */
}

static void test_response_headers(void **state)
{
    SL_UNUSED(state);
    const char *v;
    size_t n;
    static const char line[] = "Content-Length: \t 1234 ";
    assert_true(s3_header_match(line, strlen(line), "content-length", &v, &n));
    assert_int_equal(s3_parse_length(v, n), 1234);
    assert_false(s3_header_match(line, strlen(line), "content-len", &v, &n));
    assert_false(s3_header_match("ETag", 4, "etag", &v, &n));
    assert_true(s3_header_match("etag:", 5, "etag", &v, &n));
    assert_int_equal(n, 0);
    assert_int_equal(s3_parse_length("", 0), -1);
    assert_int_equal(s3_parse_length("12a", 3), -1);
    assert_int_equal(s3_parse_length("-1", 2), -1);
    assert_int_equal(s3_parse_length("9999999999999999999", 19), -1);   /* past int64: refused */
}

static void test_settings_check(void **state)
{
    SL_UNUSED(state);
    struct s3_settings s = settings("http://127.0.0.1:9000", false);
    assert_null(s3_settings_check(&s));
    s.part_size = (5 << 20) - 1;
    assert_non_null(s3_settings_check(&s));
    s = settings("ftp://x", false);
    assert_non_null(s3_settings_check(&s));
    s = settings("http://h", false);
    s.region = "";
    assert_non_null(s3_settings_check(&s));
    s = settings("http://h", false);
    s.bucket = "Bad_Bucket";
    assert_non_null(s3_settings_check(&s));
    s = settings("http://h", false);
    s.prefix = "a?b";
    assert_non_null(s3_settings_check(&s));
    s = settings("http://127.0.0.1:9000", true);   /* <bucket>.127.0.0.1 names nothing */
    assert_non_null(s3_settings_check(&s));
}

static void test_settings_from_config(void **state)
{
    SL_UNUSED(state);
    struct sluice_config *cfg = sl_calloc(1, sizeof(*cfg));
    struct s3_settings s;
    char endpoint[CONFIG_URL_MAX], err[256];
    config_defaults(cfg);
    assert_false(s3_settings_from_config(cfg, &s, endpoint, sizeof(endpoint)));   /* no bucket: off */
    assert_int_equal(config_set(cfg, "s3_bucket", "edge-cache", err, sizeof(err)), 0);
    assert_int_equal(config_set(cfg, "s3_region", "eu-north-1", err, sizeof(err)), 0);
    assert_int_equal(config_set(cfg, "s3_addressing", "virtual", err, sizeof(err)), 0);
    assert_int_equal(config_set(cfg, "s3_addressing", "dns", err, sizeof(err)), -1);
    assert_int_equal(config_set(cfg, "s3_part_size", "4M", err, sizeof(err)), -1);
    assert_int_equal(config_set(cfg, "s3_prefix", "a b", err, sizeof(err)), -1);
    assert_true(s3_settings_from_config(cfg, &s, endpoint, sizeof(endpoint)));
    assert_string_equal(s.endpoint, "https://s3.eu-north-1.amazonaws.com");
    assert_true(s.virtual_host && s.tls_verify);
    assert_null(s3_settings_check(&s));
    free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_path_style),
        cmocka_unit_test(test_url_virtual_host),
        cmocka_unit_test(test_queries_are_canonical),
        cmocka_unit_test(test_meta_round_trip),
        cmocka_unit_test(test_meta_refusals),
        cmocka_unit_test(test_complete_xml),
        cmocka_unit_test(test_xml_values),
        cmocka_unit_test(test_response_headers),
        cmocka_unit_test(test_settings_check),
        cmocka_unit_test(test_settings_from_config),
    };
    return cmocka_run_group_tests_name("s3", tests, NULL, NULL);
}
