/*
 * maven.c - a Maven 2 repository (Maven Central, Nexus, Artifactory, a
 * file tree behind a web server).
 *
 * Paths after the route prefix, once canonical ("<g>" is the group with
 * '.' as '/'):
 *   .../maven-metadata.xml[.sha1|.md5|...]   metadata (versions move; its
 *                                            checksums move with it)
 *   <g>/<a>/<v>-SNAPSHOT/<a>-<v>-SNAPSHOT*   metadata (the name of the
 *                                            latest snapshot build)
 *   <g>/<a>/<v>-SNAPSHOT/<a>-<v>-<timestamp>-<n>*
 *                                            immutable (a timestamped
 *                                            build never changes)
 *   archetype-catalog.xml, .index/...        metadata
 *   any other file (a release's .jar, .pom, and their .sha1, .md5,
 *   .sha256, .sha512, .asc)                  immutable
 *   a directory ("/" at the end)             never cached
 * Maven sends `Cache-Control: no-cache` with every request: an immutable
 * artifact is served from the cache whatever the client says (eco.h), and
 * metadata too unless metadata_honor_no_cache is set.
 *
 * Digests: an artifact's ".sha1" beside it (Central publishes one for
 * every file; ".sha256" only sometimes). Maven asks for the artifact
 * first, then its checksum, so a cold artifact's fill fetches the sidecar
 * beside it (serve/miss.c) and verifies against it.
 */
#include <ctype.h>
#include <string.h>

#include "core/common.h"
#include "eco/digest_notes.h"
#include "eco/eco.h"
#include "route/canon.h"

static const char *const checksum_exts[] = { ".sha1", ".md5", ".sha256", ".sha512", ".asc" };

/* The length of name without a checksum or signature extension. */
static size_t base_len(const char *name, size_t n)
{
    for (size_t i = 0; i < SL_ARRAY_LEN(checksum_exts); i++)
        if (sl_ends_with(name, n, checksum_exts[i]))
            return n - strlen(checksum_exts[i]);
    return n;
}

/* A file in a "<v>-SNAPSHOT" directory named with "-SNAPSHOT": it is
 * re-pointed at each new build. */
static bool moving_snapshot(const char *p, size_t n, const char *name)
{
    size_t dir_end = (size_t)(name - p) - 1;
    const char *dir = memrchr(p, '/', dir_end);
    dir = dir ? dir + 1 : p;
    size_t dlen = (size_t)(p + dir_end - dir);
    return sl_ends_with(dir, dlen, "-SNAPSHOT") && memmem(name, n - (size_t)(name - p), "-SNAPSHOT", 9) != NULL;
}

static enum eco_class maven_classify(const struct canon *c)
{
    const char *p = c->key + c->path_off;
    size_t n = c->path_len;
    if (n == 0 || p[n - 1] == '/')
        return ECO_NEVER;
    const char *slash = memrchr(p, '/', n);
    const char *name = slash ? slash + 1 : p;
    size_t len = n - (size_t)(name - p), base = base_len(name, len);
    if ((base == 18 && memcmp(name, "maven-metadata.xml", 18) == 0) ||
        (base == 21 && memcmp(name, "archetype-catalog.xml", 21) == 0) || memmem(p, n, ".index/", 7) == p ||
        memmem(p, n, "/.index/", 8))
        return ECO_METADATA;
    if (slash && moving_snapshot(p, n, name))
        return ECO_METADATA;
    return ECO_IMMUTABLE;
}

static bool maven_sidecar(const struct canon *c, struct eco_sidecar *out)
{
    const char *p = c->key + c->path_off;
    size_t n = c->path_len;
    if (c->cls != ECO_IMMUTABLE || base_len(p, n) != n)
        return false;
    out->algorithm = "SHA1";
    sl_buf_append(&out->path, p, n);
    sl_buf_append_str(&out->path, ".sha1");
    return true;
}

/* A .sha1 file: the hex digest, then maybe blanks and the file's name. */
static bool maven_sidecar_digest(const struct canon *c, const char *text, size_t len, struct eco_digest *out)
{
    SL_UNUSED(c);
    size_t n = 0;
    while (n < len && !isspace((unsigned char)text[n]))
        n++;
    return digest_parse_hex("SHA1", text, n, out);
}

const struct eco eco_maven = {
    .name = "maven",
    .default_origin = "https://repo.maven.apache.org/maven2",
    .classify = maven_classify,
    .digests = true,
    .sidecar = maven_sidecar,
    .sidecar_digest = maven_sidecar_digest,
};
