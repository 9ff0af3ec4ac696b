/*
 * fuzz_s3.c - libFuzzer target for everything the S3 tier reads from an
 * object store (store/s3.h): the x-amz-meta-sluice metadata value, the XML
 * answers (UploadId, Error Code and Message), response header lines and
 * Content-Length values.
 *
 * Invariants checked: metadata the decoder accepts is a valid object
 * header (it re-encodes, and the re-encoded value decodes to the same key
 * and size); an XML value fits its buffer, terminated; a header
 * match points inside the line with no surrounding blanks; a length is
 * -1 or a non-negative number.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/objfile.h"
#include "store/s3.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond)
        abort();
}

static void fuzz_meta(const char *text, size_t len)
{
    struct obj_meta m, back;
    char err[128], v[S3_META_MAX + 1];
    uint8_t block[OBJ_HEADER_SIZE];
    if (s3_meta_decode(text, len, &m, err, sizeof(err)) != 0) {
        check(m.key == NULL);
        return;
    }
    check(m.key != NULL && m.etag != NULL);
    check(obj_header_encode(&m, block) == 0);
    size_t n = s3_meta_encode(block, v, sizeof(v));
    if (n > 0) {
        check(s3_meta_decode(v, n, &back, err, sizeof(err)) == 0);
        check(strcmp(back.key, m.key) == 0 && back.size == m.size);
        obj_meta_free(&back);
    }
    obj_meta_free(&m);
}

static void fuzz_xml(const char *text, size_t len)
{
    static const char *const tags[] = { "UploadId", "Code", "Message", "ETag" };
    char v[256];
    for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++) {
        int n = s3_xml_value(text, len, tags[i], v, sizeof(v));
        check(n >= -1 && n < (int)sizeof(v));
        if (n >= 0)
            check(strlen(v) <= (size_t)n);   /* NUL-terminated within the buffer */
    }
    (void)s3_xml_is_error(text, len);
}

static void fuzz_header(const char *text, size_t len)
{
    const char *v;
    size_t n;
    if (s3_header_match(text, len, "content-length", &v, &n)) {
        check(v >= text && v + n <= text + len);
        check(n == 0 || (v[0] != ' ' && v[0] != '\t' && v[n - 1] != ' ' && v[n - 1] != '\t'));
        check(s3_parse_length(v, n) >= -1);
    }
    check(s3_parse_length(text, len) >= -1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly `size` bytes, so reads past it are caught. */
    char *text = malloc(size ? size : 1);
    memcpy(text, data, size);
    fuzz_meta(text, size);
    fuzz_xml(text, size);
    fuzz_header(text, size);
    free(text);
    return 0;
}
