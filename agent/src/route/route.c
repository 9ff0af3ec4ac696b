/*
 * route.c - the route table: map file parsing, longest-prefix matching,
 * origin URLs and redirect host lists (HAProxy's backends are generated
 * from the table by haproxy_gen.c).
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
 *    then `url` is its parsed form;
 *  - eco is the ecosystem of the route's name, or &eco_unknown.
 *
 * Reload (route_table_update): a route's slot in the table belongs to its
 * name for the life of the process. Fills, origin transfers, slots and
 * metrics hold `const struct route *` (and slot indexes) across callbacks,
 * so the table is never freed or reordered: a route still in the new map
 * is overwritten in place (same name, same slot: holders see its new
 * origin and settings on their next look), a route gone from the map is
 * marked retired (no lookup returns it; holders keep valid memory), and a
 * new route takes the next free slot. A retired route that comes back gets
 * its old slot. The table only grows, up to ROUTE_MAX names ever.
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
    if (strncasecmp(url, SL_LIT("https://")) == 0) {
        out->tls = true;
        out->port = 443;
        p = url + 8;
    } else if (strncasecmp(url, SL_LIT("http://")) == 0) {
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

bool origin_url_host_is_ipv6(const struct origin_url *u)
{
    return strchr(u->host, ':') != NULL;
}

bool origin_url_host_is_ip(const struct origin_url *u)
{
    struct in_addr a4;
    return origin_url_host_is_ipv6(u) || inet_pton(AF_INET, u->host, &a4) == 1;
}

void origin_url_format_authority(const struct origin_url *u, char *out, size_t outlen)
{
    bool default_port = u->port == (u->tls ? 443 : 80);
    const char *fmt = origin_url_host_is_ipv6(u) ? "[%s]" : "%s";
    int n = snprintf(out, outlen, fmt, u->host);
    if (!default_port && n > 0 && (size_t)n < outlen)
        snprintf(out + n, outlen - (size_t)n, ":%d", u->port);
}

size_t origin_url_format_base(const struct origin_url *u, char *out, size_t outlen)
{
    char auth[sizeof(u->host) + 16];
    origin_url_format_authority(u, auth, sizeof(auth));
    int n = snprintf(out, outlen, "%s://%s%s", u->tls ? "https" : "http", auth, u->base_path);
    return (n > 0 && (size_t)n < outlen) ? (size_t)n : 0;
}

/* ------------------------------------------------------ redirect hosts */

static bool host_sep(char c)
{
    return c == ',' || isspace((unsigned char)c);
}

int route_hosts_parse(const char *list, struct route_host *out, int max, int *n, char *err,
                      size_t errlen)
{
    SL_ASSERT(list && out && n);
    *n = 0;
    const char *p = list;
    for (;;) {
        while (*p && host_sep(*p))
            p++;
        if (!*p)
            return 0;
        size_t len = 0;
        while (p[len] && !host_sep(p[len]))
            len++;
        if (*n >= max) {
            sl_set_err(err, errlen, "too many hosts (max %d)", max);
            return -1;
        }
        struct origin_url u = { .port = 0 };
        char why[128];
        if (memchr(p, '/', len) || parse_authority(p, len, &u, why, sizeof(why)) != 0) {
            sl_set_err(err, errlen, "bad host '%.*s'%s%s", (int)SL_MIN(len, 200), p,
                       memchr(p, '/', len) ? " (a host, not a URL)" : ": ", memchr(p, '/', len) ? "" : why);
            return -1;
        }
        sl_strlcpy(out[*n].host, u.host, sizeof(out[*n].host));
        out[(*n)++].port = u.port;
        p += len;
    }
}

/* ------------------------------------------------------------ map file */

bool route_name_valid(const char *s, size_t n)
{
    if (n == 0 || n >= CONFIG_ROUTE_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '_')
            return false;
    return true;
}

static const struct route *find_prefix(const struct route_table *rt, const char *prefix)
{
    for (int i = 0; i < rt->n; i++)
        if (!rt->routes[i].retired && strcmp(rt->routes[i].prefix, prefix) == 0)
            return &rt->routes[i];
    return NULL;
}

/* Attach ecosystem, origin and redirect hosts to a freshly named route. */
static int attach_origin(struct route *r, const struct sluice_config *cfg, char *err,
                         size_t errlen)
{
    const struct eco *eco = eco_find(r->name, strlen(r->name));
    r->eco = eco ? eco : &eco_unknown;
    if (cfg)
        r->fresh = (struct route_freshness){
            config_route_int(cfg, "metadata_ttl", r->name),
            config_route_int(cfg, "metadata_stale_while_revalidate", r->name),
            config_route_int(cfg, "metadata_stale_if_error", r->name),
            config_route_int(cfg, "metadata_error_hold", r->name),
            config_route_int(cfg, "metadata_negative_ttl", r->name),
            config_route_int(cfg, "metadata_honor_no_cache", r->name) != 0,
        };
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
    const char *hosts = config_origin_redirect_hosts(cfg, r->name);
    if (!hosts)
        hosts = r->eco->default_redirect_hosts ? r->eco->default_redirect_hosts : "";
    if (route_hosts_parse(hosts, r->redirect_hosts, ROUTE_REDIRECT_HOSTS_MAX, &r->n_redirect_hosts, why,
                          sizeof(why)) != 0) {
        sl_set_err(err, errlen, "origin_%s_redirect_hosts: %s", r->name, why);
        return -1;
    }
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
    if (!route_name_valid(name, nlen)) {
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
    char *text = sl_read_text_file(map_path, MAP_FILE_MAX, err, errlen);
    if (!text)
        return -1;
    int rc = parse_map(rt, text, map_path, cfg, err, errlen);
    free(text);
    return rc;
}

/* -------------------------------------------------------------- reload */

static int slot_of(const struct route_table *rt, const char *name)
{
    for (int i = 0; i < rt->n; i++)
        if (strcmp(rt->routes[i].name, name) == 0)
            return i;
    return -1;
}

/* Names of `fresh` that have no slot in `live` yet. */
static int count_new_names(const struct route_table *live, const struct route_table *fresh)
{
    int n = 0;
    for (int j = 0; j < fresh->n; j++)
        n += slot_of(live, fresh->routes[j].name) < 0;
    return n;
}

int route_table_update(struct route_table *live, const struct route_table *fresh, char *err, size_t errlen)
{
    SL_ASSERT(live && fresh && live != fresh);
    int added = count_new_names(live, fresh);
    if (live->n + added > ROUTE_MAX) {
        sl_set_err(err, errlen, "the map adds %d route name(s) to the %d this process has known; at most %d "
                   "until a restart", added, live->n, ROUTE_MAX);
        return -1;
    }
    for (int i = 0; i < live->n; i++)
        live->routes[i].retired = true;
    for (int j = 0; j < fresh->n; j++) {
        int i = slot_of(live, fresh->routes[j].name);
        if (i < 0)
            i = live->n++;
        live->routes[i] = fresh->routes[j];
        SL_ASSERT(!live->routes[i].retired);
    }
    return 0;
}

/* ------------------------------------------------------------- lookups */

const struct route *route_match(const struct route_table *rt, const char *path,
                                size_t path_len, const char **rest, size_t *rest_len)
{
    SL_ASSERT(rt && (path || path_len == 0));
    const struct route *best = NULL;
    for (int i = 0; i < rt->n; i++) {
        const struct route *r = &rt->routes[i];
        if (!r->retired && r->prefix_len <= path_len && memcmp(path, r->prefix, r->prefix_len) == 0 &&
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
        if (!r->retired && strlen(r->name) == name_len && memcmp(r->name, name, name_len) == 0)
            return r;
    }
    return NULL;
}

