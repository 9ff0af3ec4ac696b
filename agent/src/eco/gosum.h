/*
 * gosum.h - Go's checksum-database hash ("h1:", golang.org/x/mod/sumdb/
 * dirhash Hash1 and HashZip): what go.sum and sum.golang.org record for a
 * module version's zip and its go.mod, computed here so the go route can
 * verify a zip before it is stored.
 *
 * h1 is the SHA-256 of one line per file, "<hex sha256 of its content>
 * <name>\n" (two spaces), the lines sorted by name as byte strings; a
 * zip's names keep their "module@version/" prefix. As HashZip does, every
 * entry of the zip's central directory is a file, a directory entry
 * ("dir/", no content) too: the zips Go writes have none, but where one is
 * present go hashes it, and so do we.
 *
 * Invariants of gosum_zip_h1: it reads the zip with pread only, never
 * outside [offset, offset + size), in bounded buffers (GOSUM_IO_BUF; the
 * central directory is held whole, at most GOSUM_CD_MAX); it computes a
 * hash or refuses with a reason, whatever the bytes. What it refuses, go
 * refuses too (a name with a newline; a zip or total content over 500 MiB,
 * modzip's MaxZipFile; duplicate names, which modzip.Unzip refuses), or
 * the zip is damaged (bad offsets, sizes, CRC-32, deflate data) or uses
 * what no module zip does (encryption, multiple disks, a method other than
 * stored or deflate).
 */
#ifndef SLUICE_GOSUM_H
#define SLUICE_GOSUM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GOSUM_ZIP_MAX (500ull << 20)     /* the zip, and its total content (modzip MaxZipFile) */
#define GOSUM_CD_MAX (64u << 20)         /* the central directory, held in memory to sort it */
#define GOSUM_ENTRIES_MAX 1000000u       /* entries in one zip */
#define GOSUM_NAME_MAX 4096u             /* bytes in one entry's name */
#define GOSUM_IO_BUF (64u << 10)         /* each read and inflate buffer */

/* h1 (raw 32 bytes) of the zip in fd at [offset, offset + size). 0, or -1
 * with a one-line reason in err. */
int gosum_zip_h1(int fd, uint64_t offset, uint64_t size, uint8_t out[32], char *err, size_t errlen);

/* h1 of one file called name (no newline in it) holding data: the
 * "/go.mod" form is gosum_file_h1("go.mod", mod, len, out). */
void gosum_file_h1(const char *name, const uint8_t *data, size_t len, uint8_t out[32]);

/* "h1:<base64>", exactly: 32 bytes in standard base64 with its padding and
 * no stray bits. True and out filled. */
bool gosum_parse_h1(const char *text, size_t len, uint8_t out[32]);

/* The h1 of module@version (of its go.mod when go_mod) in a sumdb
 * /lookup/ answer: "<record id>\n", go.sum lines "<module> <version>[/go.mod]
 * h1:<base64>\n", a blank line, then the signed tree note (not looked at,
 * not verified). module and version are the decoded ones, as the lines
 * carry them. True and out filled when exactly one line matches. */
bool gosum_lookup_line(const char *body, size_t len, const char *module, const char *version, bool go_mod,
                       uint8_t out[32]);

/* "h1:<base64>" of h (45 bytes with the NUL). */
#define GOSUM_H1_TEXT 48
void gosum_format_h1(const uint8_t h[32], char out[GOSUM_H1_TEXT]);

#endif
