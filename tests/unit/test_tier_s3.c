/*
 * test_tier_s3.c - the S3 tier's failure paths, against a scripted HTTP
 * server on loopback (a thread answering each connection with the next
 * canned response, or holding it silent): a store that refuses
 * connections or never answers costs at most the header deadline; 404,
 * metadata of another key and error statuses are decided before any body
 * byte; a body shorter or longer than the object is never TIER_OK; a
 * failed PutObject reports failure, and a multipart upload whose part or
 * completion fails (a 200 with an <Error> body too) is aborted (DELETE
 * ?uploadId=), a failed abort still ending the write. The contract suite against a real
 * S3 server is in test_tier.c.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <ev.h>

#include "core/common.h"
#include "core/log.h"
#include "core/workers.h"
#include "store/key.h"
#include "store/objfile.h"
#include "store/s3.h"
#include "store/tier.h"

#include "object_fixture.h"

#define MAX_RESPONSES 8
#define HEADER_DEADLINE_MS 300

/* A server answering connection i with responses[i] (then closing it);
 * silent: holds the first connection open without a byte. */
struct script {
    int lfd, port;
    bool silent;
    const char *responses[MAX_RESPONSES];
    size_t lens[MAX_RESPONSES];
    int n;
    char requests[MAX_RESPONSES][2048];  /* request line and headers seen */
    int seen;
    pthread_t th;
};

struct env {
    struct ev_loop *loop;
    struct worker_pool *workers;
    struct tier *tier;
    struct script srv;
    const char *token;   /* AWS_SESSION_TOKEN of the tier, or NULL */
};

/* Read one request: headers, then Content-Length bytes of body. */
static bool read_request(int fd, char *line, size_t linelen)
{
    char *buf = sl_malloc(64 * 1024);
    size_t have = 0;
    char *end = NULL;
    while (!end && have < 64 * 1024 - 1) {
        ssize_t n = recv(fd, buf + have, 64 * 1024 - 1 - have, 0);
        if (n <= 0)
            break;
        have += (size_t)n;
        buf[have] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    if (!end) {
        free(buf);
        return false;
    }
    snprintf(line, linelen, "%.*s", (int)(end + 2 - buf), buf);
    const char *cl = strcasestr(buf, "\ncontent-length:");
    long long body = cl && cl < end ? atoll(cl + 16) : 0;
    long long left = body - (long long)(have - (size_t)(end + 4 - buf));
    while (left > 0) {
        ssize_t n = recv(fd, buf, (size_t)SL_MIN(left, 64 * 1024), 0);
        if (n <= 0)
            break;
        left -= n;
    }
    free(buf);
    return left <= 0;
}

static void *serve(void *arg)
{
    struct script *s = arg;
    for (int i = 0; i < (s->silent ? 1 : s->n); i++) {
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0)
            return NULL;
        char scratch[64];
        if (s->silent) {
            while (recv(fd, scratch, sizeof(scratch), 0) > 0) {
            }
        } else if (read_request(fd, s->requests[s->seen], sizeof(s->requests[0]))) {
            s->seen++;
            ssize_t w = send(fd, s->responses[i], s->lens[i], MSG_NOSIGNAL);
            SL_UNUSED(w);
        }
        close(fd);
    }
    return NULL;
}

static void script_start(struct script *s)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof(a);
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->lfd >= 0);
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->lfd, 8), 0);
    assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &alen), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->th, NULL, serve, s), 0);
}

static void script_add(struct script *s, const char *response, size_t len)
{
    SL_ASSERT(s->n < MAX_RESPONSES);
    s->responses[s->n] = response;
    s->lens[s->n++] = len;
}

static void make_tier(struct env *e, int port)
{
    char endpoint[64], err[256];
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", port);
    struct s3_settings s = {
        .endpoint = endpoint, .bucket = "sluice-test", .region = "us-east-1", .prefix = "t/",
        .tls_verify = true, .connect_timeout_ms = 1000, .header_timeout_ms = HEADER_DEADLINE_MS,
        .stall_timeout_ms = 1000, .request_timeout_ms = 1000,
        .multipart_threshold = S3_MIN_PART_SIZE, .part_size = S3_MIN_PART_SIZE,
        .access_key = "AKIDEXAMPLE", .secret_key = "secret", .session_token = e->token,
    };
    e->tier = tier_s3_new(e->loop, e->workers, &s, err, sizeof(err));
    if (!e->tier)
        fail_msg("tier_s3_new: %s", err);
}

static int setup(void **state)
{
    struct env *e = sl_calloc(1, sizeof(*e));
    log_set_level(LOG_ERROR);
    e->loop = ev_loop_new(EVFLAG_AUTO);
    e->workers = workers_start(e->loop, 2, NULL, NULL, 0);
    e->srv.lfd = -1;
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    tier_destroy(e->tier);
    if (e->srv.lfd >= 0) {
        shutdown(e->srv.lfd, SHUT_RDWR);
        pthread_join(e->srv.th, NULL);
        close(e->srv.lfd);
    }
    workers_stop(e->workers);
    ev_loop_destroy(e->loop);
    free(e);
    return 0;
}

static void run_until(struct env *e, const int *flag, int64_t ms)
{
    int64_t end = sl_now_ms() + ms;
    while (!*flag && sl_now_ms() < end)
        ev_run(e->loop, EVRUN_ONCE);
    if (!*flag)
        fail_msg("deadline passed");
}

/* -------------------------------------------------------------- reading */

struct seen {
    int metas, dones;
    enum tier_result result;
    uint64_t bytes;
};

static void on_meta(void *ctx, const struct obj_meta *m)
{
    SL_UNUSED(m);
    ((struct seen *)ctx)->metas++;
}

static size_t on_data(void *ctx, const uint8_t *data, size_t len)
{
    SL_UNUSED(data);
    ((struct seen *)ctx)->bytes += len;
    return len;
}

static void on_done(void *ctx, enum tier_result res, const char *detail)
{
    struct seen *s = ctx;
    assert_non_null(detail);
    s->dones++;
    s->result = res;
}

static const struct tier_read_cb read_cb = { on_meta, on_data, on_done };

static struct seen read_key(struct env *e, const char *key, int64_t deadline_ms)
{
    struct seen s = { 0 };
    uint8_t h[KEY_HASH_LEN];
    key_hash(key, strlen(key), h);
    tier_read(e->tier, key, h, &read_cb, &s);
    run_until(e, &s.dones, deadline_ms);
    assert_int_equal(s.dones, 1);
    return s;
}

/* A 200 answer carrying `key`'s metadata for `size` bytes, with the given
 * Content-Length and `body_len` body bytes (malloc'd; *len set). */
static char *answer_200(const char *key, uint64_t size, uint64_t content_length, size_t body_len, size_t *len)
{
    struct obj_meta m = { .key = (char *)key, .status = 200, .size = size, .stored = 1700000000,
                          .etag = (char *)"\"e1\"" };
    uint8_t block[OBJ_HEADER_SIZE];
    char meta[S3_META_MAX + 1];
    assert_int_equal(obj_header_encode(&m, block), 0);
    assert_true(s3_meta_encode(block, meta, sizeof(meta)) > 0);
    char *head = sl_printf("HTTP/1.1 200 OK\r\nContent-Length: %llu\r\n" S3_META_HEADER ": %s\r\n"
                           "Connection: close\r\n\r\n",
                           (unsigned long long)content_length, meta);
    size_t hl = strlen(head);
    char *out = sl_malloc(hl + body_len + 1);
    memcpy(out, head, hl);
    memset(out + hl, 'x', body_len);
    free(head);
    *len = hl + body_len;
    return out;
}

#define LIT(s) s, sizeof(s) - 1

static void test_refused_connection_is_an_error_before_meta(void **state)
{
    struct env *e = *state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);   /* a port nothing listens on */
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    make_tier(e, ntohs(a.sin_port));
    close(fd);
    struct seen s = read_key(e, "generic:x", 2000);
    assert_int_equal(s.result, TIER_ERROR);
    assert_int_equal(s.metas, 0);
}

static void test_silent_store_costs_the_header_deadline(void **state)
{
    struct env *e = *state;
    e->srv.silent = true;
    script_start(&e->srv);
    make_tier(e, e->srv.port);
    int64_t start = sl_now_ms();
    struct seen s = read_key(e, "generic:x", 3000);
    int64_t took = sl_now_ms() - start;
    assert_int_equal(s.result, TIER_ERROR);
    assert_int_equal(s.metas, 0);
    assert_true(took >= HEADER_DEADLINE_MS - 50 && took < HEADER_DEADLINE_MS + 700);
}

static void test_not_found_is_a_miss(void **state)
{
    struct env *e = *state;
    script_add(&e->srv, LIT("HTTP/1.1 404 Not Found\r\nContent-Type: application/xml\r\n"
                            "Connection: close\r\n\r\n<Error><Code>NoSuchKey</Code><Message>gone</Message></Error>"));
    script_add(&e->srv, LIT("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"));
    script_add(&e->srv, LIT("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"));
    script_start(&e->srv);
    make_tier(e, e->srv.port);
    struct seen s = read_key(e, "generic:x", 2000);
    assert_int_equal(s.result, TIER_MISS);
    assert_int_equal(s.metas, 0);
    s = read_key(e, "generic:x", 2000);
    assert_int_equal(s.result, TIER_ERROR);
    assert_int_equal(s.metas, 0);
    s = read_key(e, "generic:x", 2000);
    assert_int_equal(s.result, TIER_ERROR);
    char hex[KEY_HEX_LEN + 1], want[160];
    uint8_t h[KEY_HASH_LEN];
    key_hash("generic:x", 9, h);
    key_hex(h, hex);
    snprintf(want, sizeof(want), "GET /sluice-test/t/%s HTTP/1.1\r\n", hex);   /* path-style, hashed name */
    assert_true(strncmp(e->srv.requests[0], want, strlen(want)) == 0);
}

static void test_other_key_and_bad_sizes_are_never_served(void **state)
{
    struct env *e = *state;
    size_t l1, l2, l3, l4;
    char *other = answer_200("generic:other", 10, 10, 10, &l1);
    char *shorter = answer_200("generic:x", 100000, 100000, 50000, &l2);
    char *longer = answer_200("generic:x", 10, 20, 20, &l3);
    char *whole = answer_200("generic:x", 10, 10, 10, &l4);
    script_add(&e->srv, other, l1);
    script_add(&e->srv, shorter, l2);
    script_add(&e->srv, longer, l3);
    script_add(&e->srv, whole, l4);
    script_start(&e->srv);
    make_tier(e, e->srv.port);
    struct seen s = read_key(e, "generic:x", 2000);
    assert_int_equal(s.result, TIER_MISS);   /* another key's object: a miss, before on_meta */
    assert_int_equal(s.metas, 0);
    s = read_key(e, "generic:x", 3000);
    assert_int_equal(s.result, TIER_ERROR);  /* cut short after on_meta */
    assert_int_equal(s.metas, 1);
    assert_true(s.bytes < 100000);
    s = read_key(e, "generic:x", 2000);
    assert_int_equal(s.result, TIER_ERROR);  /* Content-Length is not the object's size */
    assert_int_equal(s.metas, 0);
    s = read_key(e, "generic:x", 2000);
    assert_int_equal(s.result, TIER_OK);     /* and the same server serves a whole one */
    assert_int_equal(s.bytes, 10);
    free(other);
    free(shorter);
    free(longer);
    free(whole);
}

/* -------------------------------------------------------------- writing */

static void on_written(void *ctx, int rc)
{
    int *out = ctx;
    out[0] = 1;
    out[1] = rc;
}

static int write_object(struct env *e, const char *key, size_t len)
{
    uint8_t h[KEY_HASH_LEN];
    int res[2] = { 0, 0 };
    key_hash(key, strlen(key), h);
    tier_write(e->tier, key, h, fixture_object_fd(key, len, 1), on_written, res);
    assert_int_equal(res[0], 0);
    run_until(e, &res[0], 5000);
    return res[1];
}

/* The request's header `name` (lower case, as libcurl writes ours), or "". */
static void header_of(const char *request, const char *name, char *out, size_t outlen)
{
    char needle[64];
    snprintf(needle, sizeof(needle), "\r\n%s: ", name);
    const char *p = strcasestr(request, needle);
    out[0] = '\0';
    if (p)
        snprintf(out, outlen, "%.*s", (int)strcspn(p + strlen(needle), "\r"), p + strlen(needle));
}

static void test_put_is_signed_with_the_body_hash_and_the_token(void **state)
{
    struct env *e = *state;
    script_add(&e->srv, LIT("HTTP/1.1 200 OK\r\nETag: \"x\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"));
    script_start(&e->srv);
    e->token = "FwoGZXIvYXdzEXAMPLE";
    make_tier(e, e->srv.port);
    assert_int_equal(write_object(e, "generic:signed", 1000), 0);
    const char *req = e->srv.requests[0];
    char v[512], want[KEY_HEX_LEN + 1];
    uint8_t *body = fixture_pattern(1000, 1), h[KEY_HASH_LEN];
    key_hash((const char *)body, 1000, h);   /* SHA-256 of the bytes */
    key_hex(h, want);
    free(body);
    header_of(req, "x-amz-content-sha256", v, sizeof(v));
    assert_string_equal(v, want);
    header_of(req, "x-amz-security-token", v, sizeof(v));
    assert_string_equal(v, "FwoGZXIvYXdzEXAMPLE");
    header_of(req, S3_META_HEADER, v, sizeof(v));
    assert_true(v[0] != '\0');
    header_of(req, "authorization", v, sizeof(v));
    assert_true(strncmp(v, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/", 40) == 0);
    assert_non_null(strstr(v, "/us-east-1/s3/aws4_request"));
    /* every x-amz-* header we send is covered by the signature */
    assert_non_null(strstr(v, "x-amz-content-sha256;"));
    assert_non_null(strstr(v, "x-amz-meta-sluice;"));
    assert_non_null(strstr(v, "x-amz-security-token"));
    header_of(req, "expect", v, sizeof(v));
    assert_string_equal(v, "");   /* no 100-continue round trip */
}

static void test_failed_put_reports_failure(void **state)
{
    struct env *e = *state;
    script_add(&e->srv, LIT("HTTP/1.1 503 Slow Down\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"));
    script_start(&e->srv);
    make_tier(e, e->srv.port);
    assert_true(write_object(e, "generic:w", 1000) < 0);
    assert_int_equal(e->srv.seen, 1);
    assert_true(strncmp(e->srv.requests[0], "PUT /sluice-test/t/", 19) == 0);
}

/* Request i was `method` on an object with query `query`. */
static void expect_request(const struct env *e, int i, const char *method, const char *query)
{
    char want[160];
    snprintf(want, sizeof(want), "?%s HTTP/1.1", query);
    assert_true(i < e->srv.seen);
    assert_true(strncmp(e->srv.requests[i], method, strlen(method)) == 0);
    assert_non_null(strstr(e->srv.requests[i], want));
}

static void test_failed_part_aborts_the_upload(void **state)
{
    struct env *e = *state;
    script_add(&e->srv, LIT("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
                            "<InitiateMultipartUploadResult><UploadId>up/1+x</UploadId></InitiateMultipartUploadResult>"));
    script_add(&e->srv, LIT("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"));
    script_add(&e->srv, LIT("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"));
    script_start(&e->srv);
    make_tier(e, e->srv.port);
    assert_true(write_object(e, "generic:big", S3_MIN_PART_SIZE + 1) < 0);
    assert_int_equal(e->srv.seen, 3);
    expect_request(e, 0, "POST ", "uploads=");
    expect_request(e, 1, "PUT ", "partNumber=1&uploadId=up%2F1%2Bx");
    expect_request(e, 2, "DELETE ", "uploadId=up%2F1%2Bx");
}

static void test_complete_error_aborts_and_a_failed_abort_is_not_fatal(void **state)
{
    struct env *e = *state;
    script_add(&e->srv, LIT("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
                            "<InitiateMultipartUploadResult><UploadId>u2</UploadId></InitiateMultipartUploadResult>"));
    script_add(&e->srv, LIT("HTTP/1.1 200 OK\r\nETag: \"p1\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"));
    script_add(&e->srv, LIT("HTTP/1.1 200 OK\r\nETag: \"p2\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"));
    /* S3 may answer CompleteMultipartUpload 200 and put the error in the body */
    script_add(&e->srv, LIT("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
                            "<Error><Code>InternalError</Code><Message>try again</Message></Error>"));
    script_add(&e->srv, LIT("HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"));
    script_start(&e->srv);
    make_tier(e, e->srv.port);
    assert_true(write_object(e, "generic:two", S3_MIN_PART_SIZE + 1) < 0);
    assert_int_equal(e->srv.seen, 5);
    expect_request(e, 2, "PUT ", "partNumber=2&uploadId=u2");
    expect_request(e, 3, "POST ", "uploadId=u2");
    expect_request(e, 4, "DELETE ", "uploadId=u2");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_refused_connection_is_an_error_before_meta, setup, teardown),
        cmocka_unit_test_setup_teardown(test_silent_store_costs_the_header_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_found_is_a_miss, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_key_and_bad_sizes_are_never_served, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_is_signed_with_the_body_hash_and_the_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_put_reports_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_part_aborts_the_upload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_complete_error_aborts_and_a_failed_abort_is_not_fatal, setup, teardown),
    };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int failed = cmocka_run_group_tests_name("tier_s3 failures", tests, NULL, NULL);
    curl_global_cleanup();
    return failed;
}
