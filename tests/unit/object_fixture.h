/*
 * object_fixture.h - cached objects made up for unit tests: a body of
 * pattern bytes anyone can recompute, and a file holding an object in the
 * on-disk format (store/objfile.h), as a committed object is handed to a
 * tier. The object's ETag is "e1", its Content-Type application/x-test.
 */
#ifndef SLUICE_TEST_OBJECT_FIXTURE_H
#define SLUICE_TEST_OBJECT_FIXTURE_H

#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/common.h"
#include "store/objfile.h"

/* `len` bytes that depend on the seed and the offset (malloc'd). */
static inline uint8_t *fixture_pattern(size_t len, unsigned seed)
{
    uint8_t *b = sl_malloc(len + 1);
    for (size_t i = 0; i < len; i++)
        b[i] = (uint8_t)(i * 31 + seed + (i >> 11));
    return b;
}

/* An unlinked temp file holding `key` with `len` pattern bytes, as an fd. */
static inline int fixture_object_fd(const char *key, size_t len, unsigned seed)
{
    char path[] = "/tmp/sluice-unit-obj-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    struct obj_meta m = { .key = (char *)key, .status = 200, .size = len, .stored = 1700000000,
                          .etag = (char *)"\"e1\"", .last_modified = 1600000000 };
    m.headers[0] = (struct obj_header_field){ (char *)"Content-Type", (char *)"application/x-test" };
    m.n_headers = 1;
    uint8_t block[OBJ_HEADER_SIZE];
    assert_int_equal(obj_header_encode(&m, block), 0);
    assert_int_equal(pwrite(fd, block, sizeof(block), 0), (ssize_t)sizeof(block));
    uint8_t *body = fixture_pattern(len, seed);
    assert_int_equal(pwrite(fd, body, len, OBJ_HEADER_SIZE), (ssize_t)len);
    free(body);
    return fd;
}

#endif
