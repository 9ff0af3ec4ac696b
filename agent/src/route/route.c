/*
 * route.c - the route table: map file parsing, longest-prefix matching,
 * origin URL parsing, and the HAProxy backends generated from all three.
 *
 * The map file is read by HAProxy (map_beg) and by the agent, so this parser
 * accepts only what both read the same way: "<prefix> <route>" per line,
 * '#' comment lines, blank lines. Inline comments are refused because
 * HAProxy would make them part of the value.
 *
 * Invariants of a loaded table:
 *  - every prefix starts with '/', is unique, and holds only path characters
 *    that need no quoting in a map file (so HAProxy sees the same prefix);
 *  - every route name is unique and matches [a-z0-9_]+ (it becomes part of a
 *    HAProxy backend name and of cache keys);
 *  - has_origin is true exactly when cfg has a non-empty origin_<route>, and
 *    then `url` is its parsed form.
 */
#include "route/route.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "core/common.h"
#include "core/net.h"

#define MAP_FILE_MAX (1024 * 1024)


/* ------------------------------------------------------ character sets */

static bool is_unreserved(int c)
{
    return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static bool is_sub_delim(int c)
{
    return c != '\0' && strchr("!$&'()*+,;=", c) != NULL;
}

/* RFC 3986 pchar plus '/', without checking what follows a '%'. */
static bool is_path_char(int c)
{
    return is_unreserved(c) || is_sub_delim(c) || c == ':' || c == '@' || c == '%' || c == '/';
}

/* A path made of path characters whose '%' always starts a %XX escape. */
static bool path_text_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!is_path_char(c))
            return false;
        if (c == '%' && (i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) ||
                         !isxdigit((unsigned char)s[i + 2])))
            return false;
    }
    return true;
}

/* ---------------------------------------------------------- origin URLs */

static int parse_port(const char *s, size_t n, int *port)
{
    if (n == 0 || n > 5)
        return -1;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > 65535)
        return -1;
    *port = v;
    return 0;
}

/* Host names: letters, digits, '-', '_' in dot-separated non-empty labels. */
static bool host_name_ok(const char *s, size_t n)
{
    if (n == 0 || s[0] == '.' || s[0] == '-' || s[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && c != '-' && c != '_' && c != '.')
            return false;
        if (c == '.' && s[i + 1] == '.')
            return false;
    }
    return true;
}

/* Authority "host[:port]" or "[v6][:port]" (no user-info) into out. */
static int parse_authority(const char *s, size_t n, struct origin_url *out, char *err,
                           size_t errlen)
{
    const char *host = s, *port = NULL;
    size_t host_len;
    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close) {
            sl_set_err(err, errlen, "unterminated IPv6 literal");
            return -1;
        }
        host = s + 1;
        host_len = (size_t)(close - host);
        const char *after = close + 1;
        if (after < s + n && *after != ':') {
            sl_set_err(err, errlen, "unexpected text after IPv6 literal");
            return -1;
        }
        if (after < s + n)
            port = after + 1;
    } else {
        const char *colon = memchr(s, ':', n);
        host_len = colon ? (size_t)(colon - s) : n;
        if (colon)
            port = colon + 1;
    }
    if (host_len == 0 || host_len >= sizeof(out->host)) {
        sl_set_err(err, errlen, host_len ? "host too long" : "missing host");
        return -1;
    }
    memcpy(out->host, host, host_len);
    out->host[host_len] = '\0';
    if (host != s) {
        struct in6_addr a;
        if (inet_pton(AF_INET6, out->host, &a) != 1) {
            sl_set_err(err, errlen, "bad IPv6 address '%s'", out->host);
            return -1;
        }
    } else if (!host_name_ok(out->host, host_len)) {
        sl_set_err(err, errlen, "bad host '%s'", out->host);
        return -1;
    }
    for (char *p = out->host; *p; p++) /* host names are case-insensitive */
        *p = (char)tolower((unsigned char)*p);
    if (port && parse_port(port, (size_t)(s + n - port), &out->port) != 0) {
        sl_set_err(err, errlen, "bad port (want 1..65535)");
        return -1;
    }
    return 0;
}

/* Base path: path characters only; trailing '/' dropped ("/" -> ""). */
static int parse_base_path(const char *s, size_t n, struct origin_url *out, char *err,
                           size_t errlen)
{
    if (!path_text_ok(s, n)) {
        sl_set_err(err, errlen, "bad character or escape in path");
        return -1;
    }
    while (n > 0 && s[n - 1] == '/')
        n--;
    if (n >= sizeof(out->base_path)) {
        sl_set_err(err, errlen, "path too long");
        return -1;
    }
    memcpy(out->base_path, s, n);
    out->base_path[n] = '\0';
    return 0;
}

static int check_url_chars(const char *url, char *err, size_t errlen)
{
    for (const unsigned char *p = (const unsigned char *)url; *p; p++) {
        if (*p <= 0x20 || *p >= 0x7f) {
            sl_set_err(err, errlen, "space, control or non-ASCII character in URL");
            return -1;
        }
        if (*p == '?' || *p == '#') {
            sl_set_err(err, errlen, "origin URL must not have a %s",
                    *p == '?' ? "query" : "fragment");
            return -1;
        }
    }
    return 0;
}

int origin_url_parse(const char *url, struct origin_url *out, char *err, size_t errlen)
{
    SL_ASSERT(url && out);
    memset(out, 0, sizeof(*out));
    if (check_url_chars(url, err, errlen) != 0)
        return -1;
    const char *p;
    if (strncasecmp(url, "https://", 8) == 0) {
        out->tls = true;
        out->port = 443;
        p = url + 8;
    } else if (strncasecmp(url, "http://", 7) == 0) {
        out->port = 80;
        p = url + 7;
    } else {
        sl_set_err(err, errlen, "origin URL must start with http:// or https://");
        return -1;
    }
    const char *slash = strchr(p, '/');
    size_t auth_len = slash ? (size_t)(slash - p) : strlen(p);
    if (memchr(p, '@', auth_len)) {
        sl_set_err(err, errlen, "origin URL must not carry user-info");
        return -1;
    }
    if (parse_authority(p, auth_len, out, err, errlen) != 0)
        return -1;
    return slash ? parse_base_path(slash, strlen(slash), out, err, errlen) : 0;
}

/* ------------------------------------------------------------ map file */

static bool route_name_ok(const char *s, size_t n)
{
    if (n == 0 || n >= CONFIG_ROUTE_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '_')
            return false;
    return true;
}

static enum route_policy policy_for(const char *name)
{
    /* Only generic is safe to cache as immutable today; the ecosystems get
     * their policies (metadata TTLs, digests) from their own issues. */
    return strcmp(name, "generic") == 0 ? ROUTE_IMMUTABLE : ROUTE_PASS;
}

static const struct route *find_prefix(const struct route_table *rt, const char *prefix)
{
    for (int i = 0; i < rt->n; i++)
        if (strcmp(rt->routes[i].prefix, prefix) == 0)
            return &rt->routes[i];
    return NULL;
}

/* Attach policy and origin to a freshly named route. */
static int attach_origin(struct route *r, const struct sluice_config *cfg, char *err,
                         size_t errlen)
{
    r->policy = policy_for(r->name);
    const char *url = cfg ? config_origin(cfg, r->name) : NULL;
    r->has_origin = url != NULL;
    if (!url)
        return 0;
    char why[256];
    if (origin_url_parse(url, &r->url, why, sizeof(why)) != 0) {
        sl_set_err(err, errlen, "origin_%s: %s", r->name, why);
        return -1;
    }
    sl_strlcpy(r->origin, url, sizeof(r->origin));
    return 0;
}

/* One non-comment line: "[<ws>]<prefix><ws><route>[<ws>]". */
static int parse_map_line(struct route_table *rt, const char *line, size_t len,
                          const struct sluice_config *cfg, char *err, size_t errlen)
{
    size_t i = 0;
    while (i < len && isspace((unsigned char)line[i]))
        i++;
    size_t pstart = i;
    while (i < len && !isspace((unsigned char)line[i]))
        i++;
    size_t plen = i - pstart;
    while (i < len && isspace((unsigned char)line[i]))
        i++;
    size_t nstart = i;
    while (i < len && !isspace((unsigned char)line[i]))
        i++;
    size_t nlen = i - nstart;
    while (i < len && isspace((unsigned char)line[i]))
        i++;

    if (nlen == 0 || i < len) {
        sl_set_err(err, errlen, "expected '<prefix> <route>'");
        return -1;
    }
    const char *prefix = line + pstart, *name = line + nstart;
    if (prefix[0] != '/' || !path_text_ok(prefix, plen)) {
        sl_set_err(err, errlen, "bad prefix '%.*s' (must start with '/', path characters only)",
                (int)SL_MIN(plen, 200), prefix);
        return -1;
    }
    if (plen >= ROUTE_PREFIX_MAX) {
        sl_set_err(err, errlen, "prefix too long (max %d bytes)", ROUTE_PREFIX_MAX - 1);
        return -1;
    }
    if (!route_name_ok(name, nlen)) {
        sl_set_err(err, errlen, "bad route name '%.*s' (want [a-z0-9_], at most %d characters)",
                (int)SL_MIN(nlen, 200), name, CONFIG_ROUTE_NAME_MAX - 1);
        return -1;
    }
    if (rt->n >= ROUTE_MAX) {
        sl_set_err(err, errlen, "too many routes (max %d)", ROUTE_MAX);
        return -1;
    }

    struct route *r = &rt->routes[rt->n];
    memset(r, 0, sizeof(*r));
    memcpy(r->prefix, prefix, plen);
    r->prefix_len = plen;
    memcpy(r->name, name, nlen);
    if (find_prefix(rt, r->prefix)) {
        sl_set_err(err, errlen, "duplicate prefix '%s'", r->prefix);
        return -1;
    }
    if (route_by_name(rt, r->name, nlen)) {
        sl_set_err(err, errlen, "route '%s' already has a prefix", r->name);
        return -1;
    }
    if (attach_origin(r, cfg, err, errlen) != 0)
        return -1;
    rt->n++;
    return 0;
}

static bool blank_or_comment(const char *line, size_t len)
{
    size_t i = 0;
    while (i < len && isspace((unsigned char)line[i]))
        i++;
    return i == len || line[i] == '#';
}

static int parse_map(struct route_table *rt, const char *text, const char *source,
                     const struct sluice_config *cfg, char *err, size_t errlen)
{
    memset(rt, 0, sizeof(*rt));
    const char *line = text;
    for (int lineno = 1; *line; lineno++) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (len > 0 && line[len - 1] == '\r')
            len--;
        if (!blank_or_comment(line, len) &&
            parse_map_line(rt, line, len, cfg, err, errlen) != 0) {
            if (err && errlen) {
                char *why = sl_strdup(err);
                sl_set_err(err, errlen, "%s:%d: %s", source, lineno, why);
                free(why);
            }
            memset(rt, 0, sizeof(*rt));
            return -1;
        }
        if (!nl)
            break;
        line = nl + 1;
    }
    return 0;
}

int route_table_parse(struct route_table *rt, const char *map_text,
                      const struct sluice_config *cfg, char *err, size_t errlen)
{
    SL_ASSERT(rt && map_text);
    return parse_map(rt, map_text, "map", cfg, err, errlen);
}

int route_table_load(struct route_table *rt, const char *map_path,
                     const struct sluice_config *cfg, char *err, size_t errlen)
{
    SL_ASSERT(rt && map_path);
    FILE *f = fopen(map_path, "r");
    if (!f) {
        sl_set_err(err, errlen, "%s: %s", map_path, strerror(errno));
        return -1;
    }
    char *buf = sl_malloc(MAP_FILE_MAX + 1);
    size_t n = fread(buf, 1, MAP_FILE_MAX + 1, f);
    bool failed = ferror(f);
    fclose(f);
    int rc = -1;
    if (failed || n > MAP_FILE_MAX)
        sl_set_err(err, errlen, "%s: %s", map_path, failed ? "read error" : "file too large");
    else if (memchr(buf, '\0', n))
        sl_set_err(err, errlen, "%s: contains a NUL byte", map_path);
    else {
        buf[n] = '\0';
        rc = parse_map(rt, buf, map_path, cfg, err, errlen);
    }
    free(buf);
    return rc;
}

/* ------------------------------------------------------------- lookups */

const struct route *route_match(const struct route_table *rt, const char *path,
                                size_t path_len, const char **rest, size_t *rest_len)
{
    SL_ASSERT(rt && (path || path_len == 0));
    const struct route *best = NULL;
    for (int i = 0; i < rt->n; i++) {
        const struct route *r = &rt->routes[i];
        if (r->prefix_len <= path_len && memcmp(path, r->prefix, r->prefix_len) == 0 &&
            (!best || r->prefix_len > best->prefix_len))
            best = r;
    }
    if (!best)
        return NULL;
    size_t off = best->prefix_len;
    while (off < path_len && path[off] == '/')
        off++;
    if (rest)
        *rest = path + off;
    if (rest_len)
        *rest_len = path_len - off;
    return best;
}

const struct route *route_by_name(const struct route_table *rt, const char *name,
                                  size_t name_len)
{
    SL_ASSERT(rt && (name || name_len == 0));
    for (int i = 0; i < rt->n; i++) {
        const struct route *r = &rt->routes[i];
        if (strlen(r->name) == name_len && memcmp(r->name, name, name_len) == 0)
            return r;
    }
    return NULL;
}

/* ------------------------------------------------- HAProxy generation */

/*
 * HAProxy reads a converter argument through two layers: the config line
 * tokenizer (we are inside a double-quoted word: '\\', '\"' and '\$' are
 * escapes, "$NAME" expands) and the argument parser (we wrap the argument in
 * single quotes, inside which everything is literal; a quote itself is
 * written as '\'' outside them). Checked against haproxy 2.6 at runtime.
 */
static void print_hap_arg(FILE *out, const char *s)
{
    fputc('\'', out);
    for (; *s; s++) {
        switch (*s) {
        case '\\': fputs("\\\\", out); break;
        case '"': fputs("\\\"", out); break;
        case '$': fputs("\\$", out); break;
        case '\'': fputs("'\\\\''", out); break;
        default: fputc(*s, out);
        }
    }
    fputc('\'', out);
}

/* "^<prefix>" with regex metacharacters escaped; a prefix without a
 * trailing '/' also eats the slash that follows it, so the rewritten path
 * never holds "//" after the base. */
static void build_prefix_regex(const struct route *r, char *out, size_t outlen)
{
    size_t n = 0;
    SL_ASSERT(outlen > 2 * ROUTE_PREFIX_MAX + 4);
    out[n++] = '^';
    for (const char *p = r->prefix; *p; p++) {
        if (strchr(".^$*+?()[]{}|\\", *p))
            out[n++] = '\\';
        out[n++] = *p;
    }
    if (r->prefix[r->prefix_len - 1] != '/') {
        memcpy(out + n, "/?", 2);
        n += 2;
    }
    out[n] = '\0';
}

static bool host_is_ipv6(const struct origin_url *u)
{
    return strchr(u->host, ':') != NULL;
}

static bool host_is_ip(const struct origin_url *u)
{
    struct in_addr a4;
    return host_is_ipv6(u) || inet_pton(AF_INET, u->host, &a4) == 1;
}

/* host, or [v6], plus ":port" when not the scheme's default. */
static void format_host_header(const struct origin_url *u, char *out, size_t outlen)
{
    bool default_port = u->port == (u->tls ? 443 : 80);
    const char *fmt = host_is_ipv6(u) ? "[%s]" : "%s";
    int n = snprintf(out, outlen, fmt, u->host);
    if (!default_port && n > 0 && (size_t)n < outlen)
        snprintf(out + n, outlen - (size_t)n, ":%d", u->port);
}

static void print_server_line(FILE *out, const struct origin_url *u)
{
    if (host_is_ipv6(u))
        fprintf(out, "    server origin [%s]:%d", u->host, u->port);
    else
        fprintf(out, "    server origin %s:%d", u->host, u->port);
    /* Names are resolved by HAProxy's resolvers once it runs, and kept
     * fresh (CDN addresses move); start-up never waits for DNS, and a name
     * that does not resolve leaves the server down instead of refusing to
     * start, so hits keep being served while DNS is down. */
    if (!host_is_ip(u))
        fputs(" resolvers sluice_dns resolve-prefer ipv4 init-addr none", out);
    if (u->tls) {
        fputs(" ssl verify required ca-file @system-ca", out);
        if (!host_is_ip(u)) /* SNI carries names only (RFC 6066) */
            fprintf(out, " sni str(%s)", u->host);
    }
    fputc('\n', out);
}

static void print_backend(FILE *out, const struct route *r, const struct sluice_config *cfg)
{
    char regex[2 * ROUTE_PREFIX_MAX + 8];
    char subst[sizeof(r->url.base_path) + 2];
    char host[sizeof(r->url.host) + 16];
    build_prefix_regex(r, regex, sizeof(regex));
    snprintf(subst, sizeof(subst), "%s/", r->url.base_path);
    format_host_header(&r->url, host, sizeof(host));

    fprintf(out, "\nbackend be_origin_%s\n", r->name);
    fputs("    mode http\n", out);
    /* Own timeouts, from the agent's origin settings: the fragment is loaded
     * before haproxy.cfg (its setenv lines must come first), so these
     * backends inherit no defaults section. */
    fprintf(out, "    timeout connect %lldms\n", (long long)cfg->origin_connect_timeout);
    fprintf(out, "    timeout server %lldms\n", (long long)cfg->origin_stall_timeout);
    fputs("    http-request set-path \"%[path,regsub(", out);
    print_hap_arg(out, regex);
    fputc(',', out);
    print_hap_arg(out, subst);
    fputs(")]\"\n", out);
    fprintf(out, "    http-request set-header Host %s\n", host);
    fputs("    http-response add-header Cache-Status \"sluice; fwd=bypass\"\n", out);
    print_server_line(out, &r->url);
}

static bool any_named_origin(const struct route_table *rt)
{
    for (int i = 0; i < rt->n; i++)
        if (rt->routes[i].has_origin && !host_is_ip(&rt->routes[i].url))
            return true;
    return false;
}

/* HAProxy spells a UNIX socket address "unix@PATH", the agent "unix:PATH".
 * A relative PATH is made absolute, so HAProxy finds the socket whatever
 * its own working directory (kept relative only if the absolute form would
 * not fit a socket address). */
static void print_address(FILE *out, const char *var, const char *addr)
{
    size_t n = strlen(NET_UNIX_PREFIX);
    if (strncmp(addr, NET_UNIX_PREFIX, n) != 0) {
        fprintf(out, "    setenv %s %s\n", var, addr);
        return;
    }
    const char *path = addr + n;
    char cwd[4096];
    if (path[0] != '/' && getcwd(cwd, sizeof(cwd)) &&
        strlen(cwd) + 1 + strlen(path) < sizeof(((struct sockaddr_un *)0)->sun_path))
        fprintf(out, "    setenv %s unix@%s/%s\n", var, cwd, path);
    else
        fprintf(out, "    setenv %s unix@%s\n", var, path);
}

void route_table_print_haproxy(const struct route_table *rt, const struct sluice_config *cfg,
                               FILE *out)
{
    SL_ASSERT(rt && cfg && out);
    fputs("# Generated by sluice from the route map and the agent's config; do not edit.\n",
          out);
    fputs("global\n", out);
    print_address(out, "SLUICE_LISTEN", cfg->listen);
    print_address(out, "SLUICE_SPOP_ADDR", cfg->spop_listen);
    print_address(out, "SLUICE_HTTP_ADDR", cfg->http_listen);
    print_address(out, "SLUICE_ADMIN_ADDR", cfg->admin_listen);
    if (any_named_origin(rt)) {
        fputs("\nresolvers sluice_dns\n", out);
        fputs("    parse-resolv-conf\n", out);
        fputs("    hold valid 10s\n", out);
    }
    for (int i = 0; i < rt->n; i++)
        if (rt->routes[i].has_origin)
            print_backend(out, &rt->routes[i], cfg);
}
