/*
 * edge.c - the edge memory tier: which hits HAProxy may keep, and emptying
 * it through HAProxy's runtime API on a purge (see edge.h).
 */
#include "serve/edge.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/common.h"
#include "eco/eco.h"

#define EDGE_MAP_NAME "/edge.map)"   /* how `show map` names our map: "<id> (<path>) ..." */
#define EDGE_IO_TIMEOUT_MS 1000
#define EDGE_REPLY_MAX 65536

int64_t edge_ttl(const struct sluice_config *cfg, const struct canon *cn, const struct obj_meta *m, int status,
                 bool whole)
{
    if (cfg->edge_tier_max_size == 0 || cn->cls != ECO_IMMUTABLE || !whole || status != 200 ||
        m->status != 200 || m->size == 0 || m->size > (uint64_t)cfg->edge_tier_max_size)
        return 0;
    return cfg->edge_tier_ttl / 1000;
}

bool edge_put_lines(struct http_head *h, int64_t ttl)
{
    SL_ASSERT(ttl > 0);
    return http_head_printf(h, "X-Sluice-Edge-TTL: %lld\r\n", (long long)ttl);
}

int64_t edge_next_generation(void)
{
    static int64_t last;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);   /* wall milliseconds: larger after a restart too */
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    last = now > last ? now : last + 1;
    return last;
}

/* A connected runtime API socket, or -1 with errno (ENOENT, ECONNREFUSED:
 * no HAProxy there). */
static int api_connect(const char *socket_dir)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/haproxy.sock", socket_dir) >=
        (int)sizeof(sa.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = { EDGE_IO_TIMEOUT_MS / 1000, (EDGE_IO_TIMEOUT_MS % 1000) * 1000 };
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int edge_api_command(const char *socket_dir, const char *cmd, char *out, size_t outlen)
{
    int fd = api_connect(socket_dir);
    if (fd < 0)
        return -1;
    size_t len = strlen(cmd), n = 0;
    /* a short command on a blocking local socket: one write takes it all */
    int rc = write(fd, cmd, len) == (ssize_t)len ? 0 : -1;
    while (rc == 0 && n + 1 < outlen) {
        ssize_t r = read(fd, out + n, outlen - 1 - n);
        if (r == 0)
            break;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            rc = -1;
        else
            n += (size_t)r;
    }
    int e = errno;
    close(fd);
    out[n] = '\0';
    errno = e;
    return rc;
}

long edge_map_id(const char *reply)
{
    for (const char *line = reply; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        const char *nl = strchr(line, '\n');
        const char *hit = strstr(line, EDGE_MAP_NAME);
        if (line[0] != '#' && hit && (!nl || hit < nl))
            return strtol(line, NULL, 10);
    }
    return -1;
}

enum edge_flush_result edge_flush(const char *socket_dir, int64_t gen, char *err, size_t errlen)
{
    char *reply = sl_malloc(EDGE_REPLY_MAX);
    enum edge_flush_result r = EDGE_FAILED;
    long id = -1;
    if (edge_api_command(socket_dir, "show map\n", reply, EDGE_REPLY_MAX) != 0) {
        bool absent = errno == ENOENT || errno == ECONNREFUSED;
        snprintf(err, errlen, "HAProxy runtime API %s/haproxy.sock: %s", socket_dir, strerror(errno));
        r = absent ? EDGE_NO_TIER : EDGE_FAILED;
    } else if ((id = edge_map_id(reply)) < 0) {
        snprintf(err, errlen, "HAProxy has no edge.map: no edge memory tier to empty");
        r = EDGE_NO_TIER;
    } else {
        char cmd[96];
        snprintf(cmd, sizeof(cmd), "set map #%ld gen %lld\n", id, (long long)gen);
        bool sent = edge_api_command(socket_dir, cmd, reply, EDGE_REPLY_MAX) == 0;
        bool quiet = sent && strspn(reply, "\r\n") == strlen(reply);   /* success is an empty reply */
        r = quiet ? EDGE_FLUSHED : EDGE_FAILED;
        if (!quiet)
            snprintf(err, errlen, "HAProxy refused the new generation: %.200s", sent ? reply : strerror(errno));
    }
    free(reply);
    return r;
}

/* Field `i` (0-based) of a CSV line: its start and length, or false. */
static bool csv_field(const char *line, const char *end, int i, const char **f, size_t *len)
{
    const char *p = line;
    for (; i > 0 && p < end; i--) {
        const char *c = memchr(p, ',', (size_t)(end - p));
        if (!c)
            return false;
        p = c + 1;
    }
    if (i > 0 || p > end)
        return false;
    const char *c = memchr(p, ',', (size_t)(end - p));
    *f = p;
    *len = (size_t)((c ? c : end) - p);
    return true;
}

/* The index of column `name` in the header line ("# pxname,svname,..."). */
static int csv_column(const char *line, const char *end, const char *name)
{
    size_t want = strlen(name);
    const char *f;
    size_t len;
    for (int i = 0; csv_field(line, end, i, &f, &len); i++)
        if (len == want && memcmp(f, name, want) == 0)
            return i;
    return -1;
}

static bool csv_u64(const char *line, const char *end, int i, uint64_t *out)
{
    const char *f;
    size_t len;
    if (i < 0 || !csv_field(line, end, i, &f, &len) || len == 0 || len > 20)
        return false;
    uint64_t v = 0;
    for (size_t k = 0; k < len; k++) {
        if (f[k] < '0' || f[k] > '9' || v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(f[k] - '0');
    }
    *out = v;
    return true;
}

bool edge_parse_stats(const char *csv, const char *frontend, struct edge_counts *out)
{
    const char *nl = strchr(csv, '\n');
    if (strncmp(csv, "# ", 2) != 0 || !nl)
        return false;
    const char *hdr = csv + 2;
    int px = csv_column(hdr, nl, "pxname"), sv = csv_column(hdr, nl, "svname");
    int lk = csv_column(hdr, nl, "cache_lookups"), ht = csv_column(hdr, nl, "cache_hits");
    if (px < 0 || sv < 0 || lk < 0 || ht < 0)
        return false;
    size_t want = strlen(frontend);
    for (const char *line = nl + 1; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        const char *end = nl ? nl : line + strlen(line);
        const char *f, *s;
        size_t flen, slen;
        if (csv_field(line, end, px, &f, &flen) && flen == want && memcmp(f, frontend, want) == 0 &&
            csv_field(line, end, sv, &s, &slen) && slen == 8 && memcmp(s, "FRONTEND", 8) == 0)
            return csv_u64(line, end, lk, &out->lookups) && csv_u64(line, end, ht, &out->hits);
        if (!nl)
            break;
    }
    return false;
}

const char *edge_flush_result_name(enum edge_flush_result r)
{
    static const char *const names[] = { "flushed", "no_tier", "failed" };
    SL_ASSERT((unsigned)r < SL_ARRAY_LEN(names));
    return names[r];
}
