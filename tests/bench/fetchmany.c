/*
 * fetchmany - start many HTTP/1.1 GETs at once and check every body.
 *
 * The load driver of the stampede and ENOSPC runs (tests/bench/run builds it
 * into the bench directory). One client per line on stdin:
 *
 *     <path> <expected-file>
 *
 * All clients connect (non-blocking) in one tight loop, so they all start
 * within a few milliseconds; one epoll loop then drives them. Each body is
 * compared, byte for byte and at its offset, with an mmap of the expected
 * file while it arrives (`memcmp`, cheap enough for 200 x 256 MiB), and its
 * length must equal the file's. With -s the body is also SHA-256 hashed and
 * compared with the file's digest (costs ~1 s of CPU per GB here, so the
 * harness uses it only when the total is small).
 *
 * One line per client on stdout, tab-separated:
 *
 *     idx status ok body_bytes ttfb_ms done_ms cache_status error
 *
 * ttfb_ms: first response byte, from the common start; done_ms: body
 * complete (or failure); ok: 1 when status 200 and the body is byte-exact;
 * cache_status: the Cache-Status (or X-Cache-Status) header, "-" if none;
 * error: "-" or a short reason (timeout, reset, truncated, mismatch@OFFSET,
 * ...). Exit status 0 when the run itself worked (not when every client
 * did; the caller judges that).
 *
 *     fetchmany -p PORT [-t TIMEOUT_S] [-s] < clients.txt
 *
 * Loop mode (-d SECONDS, the warm large-object runs): each client repeats its
 * GET on a keep-alive connection (reconnecting when the server closes) until
 * the time is up, checking every body the same way. wrk reads 8 KiB at a time
 * and tops out near 500 MB/s on the bench machine, below what the servers
 * deliver; this reads 1 MiB at a time. Prints one line:
 *
 *     LOOP requests=N ok=N errors=N bytes=B secs=S p50=MS p90=MS p99=MS
 *          max=MS ttfb_p50=MS errs=TOP-ERRORS
 *
 * bytes counts the verified body bytes received within the window,
 * including the verified prefix of responses still in flight at the end.
 *
 * List mode (-d SECONDS -c CONNS [-n MAX], the npm replay): the lines are a
 * list of requests, not clients. CONNS keep-alive connections take the
 * lines in turn from one shared cursor (request k is line k mod the line
 * count), until the time is up or MAX requests have been started; same
 * LOOP line. wrk would need a Lua script to walk a path list and cannot
 * check bodies; this checks every one.
 *
 * Every mode: a line may carry one request header after the file, as the
 * rest of the line ("<path> <file> Accept: application/json"), and -H
 * 'Name: value' (repeatable) adds a header to every request. The default
 * Accept (any type) is sent unless one of those headers is an Accept. The
 * expected file "-" means any body: only the status (200) and the framing
 * are checked. With -s and without -d, each output line gets a 9th column:
 * the body's SHA-256 (or "-"), so the caller can compare bodies it could
 * not predict.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HEAD_MAX 65536
#define RBUF (1 << 20)

struct expected {
    char *path;
    const uint8_t *data;
    uint64_t size;
    uint8_t sha[32];
    bool sha_done;
};

enum cstate { C_CONNECTING, C_HEAD, C_BODY, C_DONE };
enum framing { F_LENGTH, F_CHUNKED, F_CLOSE };
enum chunk_state { CH_SIZE, CH_DATA, CH_DATA_CRLF, CH_TRAILER };

/* One request as a line of stdin gave it. */
struct target {
    char *path;
    struct expected *exp;    /* NULL: "-", any body */
    char *req;
    size_t req_len;
};

struct client {
    int idx, fd;
    struct target *t;
    struct expected *exp;    /* t->exp of the request in progress */
    enum cstate st;
    size_t req_sent;
    char head[HEAD_MAX];
    size_t head_len;
    int status;
    enum framing framing;
    int64_t clen;
    uint64_t got;        /* body bytes */
    bool mismatch;
    uint64_t mismatch_at;
    enum chunk_state ch;
    uint64_t ch_left;
    char chline[64];
    size_t chline_len;
    double ttfb_ms, done_ms;
    char cache_status[128];
    char err[96];
    bool ok;
    bool keepalive;      /* the response allows another request */
    double t_start;      /* request start (loop mode latency) */
    EVP_MD_CTX *md;
    char sha_hex[65];    /* -s: digest of the body, "" if none */
};

static int n_expected;
static struct expected **expected;   /* stable pointers: clients keep them */
static bool want_sha;
static struct timespec t0;
static bool loop_mode;
static double loop_end_ms;

/* list mode (-c): connections walk the targets with one cursor */
static struct target *targets;
static size_t n_targets, cursor;
static uint64_t max_requests, n_started;   /* -n: 0 = no cap */
#define MAX_HEADERS 8
static const char *global_headers[MAX_HEADERS];
static int n_global_headers;

/* loop mode aggregates */
static double *lat_ms, *ttfb_lat_ms;
static size_t n_lat, cap_lat;
static uint64_t n_req, n_ok, n_err, bytes_ok;
#define MAX_ERR_KINDS 16
static struct { char what[96]; uint64_t n; } err_kinds[MAX_ERR_KINDS];

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0.tv_sec) * 1e3 + (double)(t.tv_nsec - t0.tv_nsec) / 1e6;
}

static struct expected *get_expected(const char *path)
{
    if (strcmp(path, "-") == 0)
        return NULL;
    for (int i = 0; i < n_expected; i++)
        if (strcmp(expected[i]->path, path) == 0)
            return expected[i];
    expected = realloc(expected, (size_t)(n_expected + 1) * sizeof(*expected));
    struct expected *e = calloc(1, sizeof(*e));
    expected[n_expected++] = e;
    e->path = strdup(path);
    int fd = open(path, O_RDONLY);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) < 0) {
        fprintf(stderr, "fetchmany: %s: %s\n", path, strerror(errno));
        exit(2);
    }
    e->size = (uint64_t)sb.st_size;
    if (e->size) {
        e->data = mmap(NULL, e->size, PROT_READ, MAP_SHARED, fd, 0);
        if (e->data == MAP_FAILED) {
            perror("mmap");
            exit(2);
        }
    }
    close(fd);
    return e;
}

static void finish(struct client *c, const char *err)
{
    if (c->st == C_DONE)
        return;
    c->done_ms = now_ms();
    c->st = C_DONE;
    if (err && !c->err[0])
        snprintf(c->err, sizeof(c->err), "%s", err);
    if (c->mismatch && !c->err[0])
        snprintf(c->err, sizeof(c->err), "mismatch@%llu", (unsigned long long)c->mismatch_at);
    if (!c->err[0] && c->exp && c->got != c->exp->size)
        snprintf(c->err, sizeof(c->err), "length %llu != %llu", (unsigned long long)c->got,
                 (unsigned long long)c->exp->size);
    if (!c->err[0] && c->status == 200 && c->md) {
        uint8_t d[32];
        unsigned int dl = 0;
        EVP_DigestFinal_ex(c->md, d, &dl);
        for (int i = 0; i < 32; i++)
            snprintf(c->sha_hex + 2 * i, 3, "%02x", d[i]);
        struct expected *e = c->exp;
        if (e && !e->sha_done) {
            EVP_Digest(e->data, e->size, e->sha, &dl, EVP_sha256(), NULL);
            e->sha_done = true;
        }
        if (e && memcmp(d, e->sha, 32) != 0)
            snprintf(c->err, sizeof(c->err), "sha256 mismatch");
    }
    c->ok = !c->err[0] && c->status == 200;
    if (c->md) {
        EVP_MD_CTX_free(c->md);
        c->md = NULL;
    }
    if (c->fd >= 0 && !(loop_mode && c->ok && c->keepalive)) {
        close(c->fd);
        c->fd = -1;
    }
}

static void body_bytes(struct client *c, const uint8_t *p, size_t n)
{
    if (n == 0)
        return;
    if (!c->mismatch && c->exp) {
        struct expected *e = c->exp;
        if (c->got + n > e->size) {
            c->mismatch = true;
            c->mismatch_at = c->got;
            if (c->got < e->size && memcmp(p, e->data + c->got, e->size - c->got) != 0) {
                for (uint64_t i = 0; i < e->size - c->got; i++)
                    if (p[i] != e->data[c->got + i]) {
                        c->mismatch_at = c->got + i;
                        break;
                    }
            } else {
                c->mismatch_at = e->size;
            }
        } else if (memcmp(p, e->data + c->got, n) != 0) {
            c->mismatch = true;
            for (size_t i = 0; i < n; i++)
                if (p[i] != e->data[c->got + i]) {
                    c->mismatch_at = c->got + i;
                    break;
                }
        }
    }
    if (c->md)
        EVP_DigestUpdate(c->md, p, n);
    c->got += n;
}

/* Returns false when the body is complete. */
static bool feed_chunked(struct client *c, const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        switch (c->ch) {
        case CH_SIZE:
        case CH_DATA_CRLF:
        case CH_TRAILER: {
            char ch = (char)p[i++];
            if (c->chline_len + 1 >= sizeof(c->chline)) {
                finish(c, "bad chunk line");
                return false;
            }
            c->chline[c->chline_len++] = ch;
            if (ch != '\n')
                break;
            c->chline[c->chline_len] = 0;
            bool empty = c->chline_len <= 2;
            c->chline_len = 0;
            if (c->ch == CH_DATA_CRLF) {
                if (!empty) {
                    finish(c, "bad chunk end");
                    return false;
                }
                c->ch = CH_SIZE;
            } else if (c->ch == CH_SIZE) {
                char *end;
                errno = 0;
                unsigned long long sz = strtoull(c->chline, &end, 16);
                if (end == c->chline || errno) {
                    finish(c, "bad chunk size");
                    return false;
                }
                if (sz == 0)
                    c->ch = CH_TRAILER;
                else {
                    c->ch = CH_DATA;
                    c->ch_left = sz;
                }
            } else if (empty) { /* CH_TRAILER: blank line ends the message */
                finish(c, NULL);
                return false;
            }
            break;
        }
        case CH_DATA: {
            size_t take = n - i;
            if (take > c->ch_left)
                take = (size_t)c->ch_left;
            body_bytes(c, p + i, take);
            i += take;
            c->ch_left -= take;
            if (c->ch_left == 0)
                c->ch = CH_DATA_CRLF;
            break;
        }
        }
    }
    return true;
}

static void feed_body(struct client *c, const uint8_t *p, size_t n)
{
    if (c->framing == F_CHUNKED) {
        feed_chunked(c, p, n);
        return;
    }
    if (c->framing == F_LENGTH) {
        uint64_t left = (uint64_t)c->clen - c->got;
        if (n > left) {
            snprintf(c->err, sizeof(c->err), "extra bytes after body");
            n = (size_t)left;
        }
        body_bytes(c, p, n);
        if (c->got == (uint64_t)c->clen)
            finish(c, NULL);
        return;
    }
    body_bytes(c, p, n);
}

static void header_value(const char *head, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);
    const char *p = strstr(head, "\r\n");
    out[0] = 0;
    while (p && p[2] != '\r') {
        p += 2;
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            const char *e = strstr(v, "\r\n");
            size_t l = e ? (size_t)(e - v) : strlen(v);
            if (l >= outlen)
                l = outlen - 1;
            memcpy(out, v, l);
            out[l] = 0;
            return;
        }
        p = strstr(p, "\r\n");
    }
}

static void on_head(struct client *c)
{
    char *end = memmem(c->head, c->head_len, "\r\n\r\n", 4);
    size_t hlen = (size_t)(end - c->head) + 4;
    char save = c->head[hlen];
    c->head[hlen] = 0;
    if (sscanf(c->head, "HTTP/1.%*d %d", &c->status) != 1) {
        finish(c, "bad status line");
        return;
    }
    char v[128];
    header_value(c->head, "Cache-Status", c->cache_status, sizeof(c->cache_status));
    if (!c->cache_status[0])
        header_value(c->head, "X-Cache-Status", c->cache_status, sizeof(c->cache_status));
    header_value(c->head, "Transfer-Encoding", v, sizeof(v));
    char cl[64];
    header_value(c->head, "Content-Length", cl, sizeof(cl));
    c->head[hlen] = save;
    char conn[64];
    header_value(c->head, "Connection", conn, sizeof(conn));
    c->keepalive = !(conn[0] && strcasestr(conn, "close"));
    if (v[0] && strcasestr(v, "chunked"))
        c->framing = F_CHUNKED;
    else if (cl[0]) {
        c->framing = F_LENGTH;
        c->clen = strtoll(cl, NULL, 10);
    } else {
        c->framing = F_CLOSE;
        c->keepalive = false;
    }
    if (c->status != 200)
        snprintf(c->err, sizeof(c->err), "status %d", c->status);
    c->st = C_BODY;
    if (want_sha && c->status == 200) {
        c->md = EVP_MD_CTX_new();
        EVP_DigestInit_ex(c->md, EVP_sha256(), NULL);
    }
    size_t rest = c->head_len - hlen;
    if (c->framing == F_LENGTH && c->clen == 0)
        finish(c, NULL);
    else if (rest)
        feed_body(c, (const uint8_t *)c->head + hlen, rest);
}

static void on_readable(struct client *c, uint8_t *buf)
{
    for (;;) {
        if (c->st == C_DONE)
            return;
        ssize_t r;
        if (c->st == C_HEAD)
            r = recv(c->fd, c->head + c->head_len, HEAD_MAX - 1 - c->head_len, 0);
        else
            r = recv(c->fd, buf, RBUF, 0);
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            finish(c, errno == ECONNRESET ? "reset" : strerror(errno));
            return;
        }
        if (r == 0) {
            if (c->st == C_HEAD)
                finish(c, c->head_len ? "closed in head" : "closed before response");
            else if (c->framing == F_CLOSE)
                finish(c, NULL);
            else
                finish(c, "truncated");
            return;
        }
        if (c->st == C_HEAD) {
            if (c->head_len == 0)
                c->ttfb_ms = now_ms();
            c->head_len += (size_t)r;
            c->head[c->head_len] = 0;
            if (memmem(c->head, c->head_len, "\r\n\r\n", 4))
                on_head(c);
            else if (c->head_len >= HEAD_MAX - 1)
                finish(c, "head too large");
        } else {
            feed_body(c, buf, (size_t)r);
        }
    }
}

static void on_writable(struct client *c, int ep)
{
    if (c->st == C_CONNECTING) {
        int err = 0;
        socklen_t l = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) {
            finish(c, strerror(err));
            return;
        }
        c->st = C_HEAD;
    }
    while (c->req_sent < c->t->req_len) {
        ssize_t w = send(c->fd, c->t->req + c->req_sent, c->t->req_len - c->req_sent, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN)
                return;
            finish(c, strerror(errno));
            return;
        }
        c->req_sent += (size_t)w;
    }
    struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = c };
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pctl(double *v, size_t n, double p)
{
    if (!n)
        return -1;
    double k = (double)(n - 1) * p / 100.0;
    size_t lo = (size_t)k, hi = lo + 1 < n ? lo + 1 : lo;
    return v[lo] + (v[hi] - v[lo]) * (k - (double)lo);
}

static void count_error(const char *what)
{
    char w[96];
    snprintf(w, sizeof(w), "%s", what);
    char *at = strchr(w, '@');
    if (at)
        *at = 0;   /* mismatch@OFFSET -> mismatch */
    for (int i = 0; i < MAX_ERR_KINDS; i++) {
        if (!err_kinds[i].what[0])
            snprintf(err_kinds[i].what, sizeof(err_kinds[i].what), "%s", w);
        if (strcmp(err_kinds[i].what, w) == 0) {
            err_kinds[i].n++;
            return;
        }
    }
}

static void record(struct client *c)
{
    n_req++;
    if (c->ok) {
        n_ok++;
        bytes_ok += c->got;
        if (n_lat == cap_lat) {
            cap_lat = cap_lat ? cap_lat * 2 : 1024;
            lat_ms = realloc(lat_ms, cap_lat * sizeof(double));
            ttfb_lat_ms = realloc(ttfb_lat_ms, cap_lat * sizeof(double));
        }
        lat_ms[n_lat] = c->done_ms - c->t_start;
        ttfb_lat_ms[n_lat++] = c->ttfb_ms - c->t_start;
    } else {
        n_err++;
        count_error(c->err[0] ? c->err : "not ok");
    }
}

static bool start_connect(struct client *c, int ep, const struct sockaddr_in *sa)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->st = C_CONNECTING;
    if (connect(c->fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0 && errno != EINPROGRESS) {
        finish(c, strerror(errno));
        return false;
    }
    struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    return true;
}

/* Loop mode: the next request of a client, on its connection if it is
 * still open, else on a new one. */
static bool restart(struct client *c, int ep, const struct sockaddr_in *sa)
{
    c->head_len = 0;
    c->status = 0;
    c->clen = 0;
    c->got = 0;
    c->mismatch = false;
    c->ch = CH_SIZE;
    c->chline_len = 0;
    c->ttfb_ms = c->done_ms = 0;
    c->cache_status[0] = 0;
    c->err[0] = 0;
    c->ok = false;
    c->sha_hex[0] = 0;
    c->req_sent = 0;
    if (n_targets) {
        c->t = &targets[cursor++ % n_targets];
        c->exp = c->t->exp;
    }
    n_started++;
    c->t_start = now_ms();
    if (c->fd >= 0) {
        c->st = C_HEAD;
        struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        return true;
    }
    return start_connect(c, ep, sa);
}

static bool names_accept(const char *h)
{
    return strncasecmp(h, "Accept:", 7) == 0;
}

/* The request of a line: path, the line's own header (or ""), the -H ones. */
static void build_request(struct target *t, const char *path, const char *hdr, int port)
{
    size_t cap = strlen(path) + strlen(hdr) + 256;
    bool accept = names_accept(hdr);
    for (int i = 0; i < n_global_headers; i++) {
        cap += strlen(global_headers[i]) + 2;
        accept = accept || names_accept(global_headers[i]);
    }
    t->req = malloc(cap);
    int k = snprintf(t->req, cap, "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: sluice-bench/fetchmany\r\n%s",
                     path, port, accept ? "" : "Accept: */*\r\n");
    for (int i = 0; i < n_global_headers; i++)
        k += snprintf(t->req + k, cap - (size_t)k, "%s\r\n", global_headers[i]);
    if (hdr[0])
        k += snprintf(t->req + k, cap - (size_t)k, "%s\r\n", hdr);
    k += snprintf(t->req + k, cap - (size_t)k, "%s\r\n", loop_mode ? "" : "Connection: close\r\n");
    t->req_len = (size_t)k;
}

/* One target per line of stdin: "<path> <file> [Header: value]". */
static size_t read_targets(int port)
{
    size_t cap = 16, n = 0;
    targets = malloc(cap * sizeof(*targets));
    char line[8192];
    while (fgets(line, sizeof(line), stdin)) {
        char path[4096], file[4096];
        int used = 0;
        if (sscanf(line, "%4095s %4095s %n", path, file, &used) != 2)
            continue;
        char *hdr = line + used;
        hdr[strcspn(hdr, "\r\n")] = 0;
        if (n == cap)
            targets = realloc(targets, (cap *= 2) * sizeof(*targets));
        struct target *t = &targets[n++];
        t->path = strdup(path);
        t->exp = get_expected(file);
        build_request(t, path, hdr, port);
    }
    return n;
}

int main(int argc, char **argv)
{
    int port = 0;
    double timeout_s = 120;
    int opt, conns = 0;
    while ((opt = getopt(argc, argv, "p:t:sd:c:n:H:")) != -1) {
        if (opt == 'd') {
            loop_mode = true;
            loop_end_ms = atof(optarg) * 1e3;
        } else if (opt == 'c')
            conns = atoi(optarg);
        else if (opt == 'n')
            max_requests = strtoull(optarg, NULL, 10);
        else if (opt == 'H' && n_global_headers < MAX_HEADERS)
            global_headers[n_global_headers++] = optarg;
        else if (opt == 'p')
            port = atoi(optarg);
        else if (opt == 't')
            timeout_s = atof(optarg);
        else if (opt == 's')
            want_sha = true;
        else {
            fprintf(stderr, "usage: fetchmany -p PORT [-t TIMEOUT_S] [-s] [-d LOOP_SECONDS [-c CONNS] [-n MAX]]"
                            " [-H 'Name: value']... < clients\n");
            return 2;
        }
    }
    if (!port || (conns && !loop_mode)) {
        fprintf(stderr, "fetchmany: -p PORT is required; -c needs -d\n");
        return 2;
    }
    size_t nt = read_targets(port);
    int n = conns ? conns : (int)nt;
    if (conns && nt == 0) {
        fprintf(stderr, "fetchmany: -c: no requests on stdin\n");
        return 2;
    }
    if (conns)
        n_targets = nt;   /* list mode: the connections walk the targets */
    struct client **cs = malloc((size_t)(n ? n : 1) * sizeof(*cs));
    for (int i = 0; i < n; i++) {
        struct client *c = calloc(1, sizeof(*c));
        c->idx = i;
        c->fd = -1;
        c->t = &targets[conns ? cursor++ % nt : (size_t)i];
        c->exp = c->t->exp;
        cs[i] = c;
    }
    /* Fault the expected files in before the clock starts. */
    for (int i = 0; i < n_expected; i++) {
        volatile uint8_t s = 0;
        for (uint64_t o = 0; o < expected[i]->size; o += 4096)
            s ^= expected[i]->data[o];
        (void)s;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    fprintf(stderr, "start_wall=%.6f\n", (double)wall.tv_sec + wall.tv_nsec / 1e9);
    int open_n = 0;
    for (int i = 0; i < n; i++) {
        cs[i]->t_start = now_ms();
        n_started++;
        if (start_connect(cs[i], ep, &sa))
            open_n++;
    }
    double started_ms = now_ms();
    uint8_t *buf = malloc(RBUF);
    struct epoll_event evs[256];
    double deadline = loop_mode ? loop_end_ms : timeout_s * 1e3;
    while (open_n > 0) {
        double left = deadline - now_ms();
        if (left <= 0)
            break;
        int k = epoll_wait(ep, evs, 256, left > 1000 ? 1000 : (int)left + 1);
        for (int i = 0; i < k; i++) {
            struct client *c = evs[i].data.ptr;
            if (c->st == C_DONE)
                continue;
            if (c->st == C_CONNECTING || (evs[i].events & EPOLLOUT))
                on_writable(c, ep);
            if (c->st != C_DONE && c->st != C_CONNECTING && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)))
                on_readable(c, buf);
            if (c->st == C_DONE) {
                if (loop_mode) {
                    record(c);
                    if (now_ms() < loop_end_ms && (!max_requests || n_started < max_requests) &&
                        restart(c, ep, &sa))
                        continue;
                }
                open_n--;
            }
        }
    }
    if (loop_mode) {
        double secs = now_ms() / 1e3;
        for (int i = 0; i < n; i++)   /* in flight at the end: the verified prefix counts */
            if (cs[i]->st != C_DONE && !cs[i]->mismatch && !cs[i]->err[0] && cs[i]->status == 200)
                bytes_ok += cs[i]->got;
        qsort(lat_ms, n_lat, sizeof(double), cmp_double);
        qsort(ttfb_lat_ms, n_lat, sizeof(double), cmp_double);
        printf("LOOP requests=%llu ok=%llu errors=%llu bytes=%llu secs=%.3f p50=%.3f p90=%.3f p99=%.3f max=%.3f "
               "ttfb_p50=%.3f errs=",
               (unsigned long long)n_req, (unsigned long long)n_ok, (unsigned long long)n_err,
               (unsigned long long)bytes_ok, secs, pctl(lat_ms, n_lat, 50), pctl(lat_ms, n_lat, 90),
               pctl(lat_ms, n_lat, 99), n_lat ? lat_ms[n_lat - 1] : -1, pctl(ttfb_lat_ms, n_lat, 50));
        bool any = false;
        for (int i = 0; i < MAX_ERR_KINDS && err_kinds[i].what[0]; i++) {
            printf("%s%llu x %s", any ? "; " : "", (unsigned long long)err_kinds[i].n, err_kinds[i].what);
            any = true;
        }
        printf("%s\n", any ? "" : "-");
        return 0;
    }
    for (int i = 0; i < n; i++)
        if (cs[i]->st != C_DONE)
            finish(cs[i], cs[i]->st == C_HEAD && cs[i]->head_len == 0 ? "timeout (no response)" : "timeout");
    fprintf(stderr, "fetchmany: %d clients connected within %.1f ms\n", n, started_ms);
    for (int i = 0; i < n; i++) {
        struct client *c = cs[i];
        printf("%d\t%d\t%d\t%llu\t%.3f\t%.3f\t%s\t%s", c->idx, c->status, c->ok ? 1 : 0,
               (unsigned long long)c->got, c->ttfb_ms, c->done_ms, c->cache_status[0] ? c->cache_status : "-",
               c->err[0] ? c->err : "-");
        if (want_sha)
            printf("\t%s", c->sha_hex[0] ? c->sha_hex : "-");
        printf("\n");
    }
    return 0;
}
