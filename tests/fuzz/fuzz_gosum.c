/*
 * fuzz_gosum.c - libFuzzer target for Go's h1 hash (eco/gosum.c): the zip
 * reader, which gets an origin's bytes, and the sumdb lookup and "h1:"
 * parsers.
 *
 * Each input is used as a zip (in a memfd, at offset 0; then again behind
 * a 4096-byte header of junk with junk after it, as in an object file), as
 * a lookup body and as "h1:" text. Invariants:
 *  - no crash, leak, hang or sanitizer report, whatever the bytes;
 *  - the zip gives the same answer (hash, or refusal and reason) wherever
 *    it sits in the file: nothing outside [offset, offset + size) is read;
 *  - a refusal has a one-line reason;
 *  - a lookup's answer is on a line of the body, and an h1 parsed formats
 *    back to the same text.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "eco/gosum.h"

#define PAD 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_gosum: invariant failed: %s\n", what);
        abort();
    }
}

static int file(void)
{
    static int fd = -1;
    if (fd < 0)
        fd = memfd_create("fuzz_gosum", 0);
    check(fd >= 0, "memfd_create");
    return fd;
}

/* The input at `at`, junk around it. */
static void place(int fd, const uint8_t *data, size_t size, size_t at)
{
    static uint8_t junk[PAD];
    memset(junk, 0x50, sizeof(junk));
    check(ftruncate(fd, 0) == 0, "ftruncate");
    check(pwrite(fd, junk, at, 0) == (ssize_t)at, "pwrite");
    check(pwrite(fd, data, size, (off_t)at) == (ssize_t)size, "pwrite");
    check(pwrite(fd, junk, at ? 100 : 0, (off_t)(at + size)) == (at ? 100 : 0), "pwrite");
}

static void zip(const uint8_t *data, size_t size)
{
    int fd = file();
    uint8_t h0[32], h1[32];
    char e0[256], e1[256];
    place(fd, data, size, 0);
    int r0 = gosum_zip_h1(fd, 0, size, h0, e0, sizeof(e0));
    place(fd, data, size, PAD);
    int r1 = gosum_zip_h1(fd, PAD, size, h1, e1, sizeof(e1));
    check(r0 == r1, "the same answer wherever the zip is");
    if (r0 == 0) {
        check(memcmp(h0, h1, 32) == 0, "the same hash wherever the zip is");
    } else {
        check(r0 == -1 && e0[0] && !strchr(e0, '\n'), "a one-line reason");
        check(strcmp(e0, e1) == 0, "the same reason wherever the zip is");
    }
}

static void lookup(const char *body, size_t len, const char *module, const char *version, bool go_mod)
{
    uint8_t h[32], again[32];
    char text[GOSUM_H1_TEXT], line[256];
    if (!gosum_lookup_line(body, len, module, version, go_mod, h))
        return;
    gosum_format_h1(h, text);
    check(gosum_parse_h1(text, strlen(text), again) && memcmp(h, again, 32) == 0, "h1 text round trip");
    int n = snprintf(line, sizeof(line), "\n%s %s%s %s\n", module, version, go_mod ? "/go.mod" : "", text);
    check(memmem(body, len, line, (size_t)n) != NULL, "the answer is a line of the body");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    zip(data, size);
    const char *body = (const char *)data;
    for (int go_mod = 0; go_mod < 2; go_mod++) {
        lookup(body, size, "m", "v1", go_mod);
        lookup(body, size, "github.com/Azure/sdk", "v1.0.0", go_mod);
    }
    uint8_t h[32];
    char text[GOSUM_H1_TEXT];
    if (gosum_parse_h1(body, size, h)) {
        gosum_format_h1(h, text);
        check(size == strlen(text) && memcmp(text, data, size) == 0, "a parsed h1 formats back to itself");
    }
    return 0;
}
