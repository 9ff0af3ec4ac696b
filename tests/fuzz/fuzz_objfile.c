/*
 * fuzz_objfile.c - libFuzzer target for the object header decoder.
 *
 * Each input is used three ways:
 *   1. as the block itself, at its own (usually short) length;
 *   2. zero-padded or cut to a full OBJ_HEADER_SIZE block;
 *   3. as the metadata text inside a block with a correct magic, length and
 *      CRC, so the fuzzer gets past the CRC and exercises the line parser.
 * Anything the decoder accepts must satisfy the documented invariants, and
 * must re-encode and decode back to the same metadata (the encoder refuses
 * exactly what the decoder rejects, and canonical text is never longer).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/objfile.h"

#define META_OFF 16
#define META_MAX (OBJ_HEADER_SIZE - META_OFF)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond)
        abort();
}

static int str_eq(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

static void check_invariants(const struct obj_meta *m)
{
    check(m->key != NULL && m->key[0] != '\0' && strpbrk(m->key, "\r\n") == NULL);
    check(m->etag != NULL && m->etag[0] != '\0' && strpbrk(m->etag, "\r\n") == NULL);
    check(m->status >= 100 && m->status <= 599);
    check(m->n_headers >= 0 && m->n_headers <= OBJ_MAX_HEADERS);
    for (int i = 0; i < m->n_headers; i++) {
        check(m->headers[i].name != NULL && m->headers[i].name[0] != '\0');
        check(strpbrk(m->headers[i].name, ": \t\r\n") == NULL);
        check(m->headers[i].value != NULL && strpbrk(m->headers[i].value, "\r\n") == NULL);
    }
}

static void check_same(const struct obj_meta *a, const struct obj_meta *b)
{
    check(str_eq(a->key, b->key) && str_eq(a->etag, b->etag));
    check(a->status == b->status && a->size == b->size);
    check(a->stored == b->stored && a->last_modified == b->last_modified);
    check(a->n_headers == b->n_headers);
    for (int i = 0; i < a->n_headers; i++) {
        check(str_eq(a->headers[i].name, b->headers[i].name));
        check(str_eq(a->headers[i].value, b->headers[i].value));
    }
}

/* Decode; on success check invariants and the encode/decode round trip. */
static void decode_and_check(const uint8_t *block, size_t len)
{
    struct obj_meta m, again;
    char err[96];
    uint8_t out[OBJ_HEADER_SIZE];

    if (obj_header_decode(block, len, &m, err, sizeof(err)) != 0) {
        check(m.key == NULL && m.etag == NULL && m.n_headers == 0);
        return;
    }
    check_invariants(&m);
    check(obj_header_encode(&m, out) == 0);
    check(obj_header_decode(out, sizeof(out), &again, err, sizeof(err)) == 0);
    check_same(&m, &again);
    obj_meta_free(&again);
    obj_meta_free(&m);
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t block[OBJ_HEADER_SIZE];

    /* 1. raw, at the caller's length (malloc'd so ASan sees overreads). */
    uint8_t *copy = malloc(size ? size : 1);
    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    decode_and_check(copy, size);
    free(copy);

    /* 2. raw, as a full block. */
    memset(block, 0, sizeof(block));
    memcpy(block, data, size < sizeof(block) ? size : sizeof(block));
    decode_and_check(block, sizeof(block));

    /* 3. as metadata text in a valid frame. */
    size_t n = size < META_MAX ? size : META_MAX;
    memset(block, 0, sizeof(block));
    memcpy(block, OBJ_MAGIC, 8);
    put_le32(block + 8, (uint32_t)n);
    put_le32(block + 12, obj_crc32(data, n));
    memcpy(block + META_OFF, data, n);
    decode_and_check(block, sizeof(block));
    return 0;
}
