/*
 * haproxy_gen.c - HAProxy's part of the configuration, generated from the
 * route table and the agent's settings (`sluice --print-haproxy`), so the
 * two never disagree about addresses, routes or origins (see
 * haproxy_gen.h for what is written).
 */
#include "route/haproxy_gen.h"

#include <string.h>
#include <unistd.h>
#include <sys/un.h>

#include "core/common.h"
#include "core/net.h"

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
        memcpy(out + n, SL_LIT("/?"));
        n += SL_LIT_LEN("/?");
    }
    out[n] = '\0';
}

static void print_server_line(FILE *out, const struct origin_url *u)
{
    if (origin_url_host_is_ipv6(u))
        fprintf(out, "    server origin [%s]:%d", u->host, u->port);
    else
        fprintf(out, "    server origin %s:%d", u->host, u->port);
    /* Names are resolved by HAProxy's resolvers once it runs, and kept
     * fresh (CDN addresses move); start-up never waits for DNS, and a name
     * that does not resolve leaves the server down instead of refusing to
     * start, so hits keep being served while DNS is down. */
    if (!origin_url_host_is_ip(u))
        fputs(" resolvers sluice_dns resolve-prefer ipv4 init-addr none", out);
    if (u->tls) {
        fputs(" ssl verify required ca-file @system-ca", out);
        if (!origin_url_host_is_ip(u)) /* SNI carries names only (RFC 6066) */
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
    origin_url_format_authority(&r->url, host, sizeof(host));

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
        if (rt->routes[i].has_origin && !origin_url_host_is_ip(&rt->routes[i].url))
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

/* "unix:<haproxy_socket_dir>/<name>", printed as HAProxy's address. */
static void print_haproxy_socket(FILE *out, const char *var, const struct sluice_config *cfg, const char *name)
{
    char addr[CONFIG_PATH_MAX + 64];
    snprintf(addr, sizeof(addr), "%s%s/%s", NET_UNIX_PREFIX, cfg->haproxy_socket_dir, name);
    print_address(out, var, addr);
}

/* The sockets HAProxy binds for the agent, and the edge memory tier's
 * sizes (none when it is off: haproxy.cfg then declares no cache). The
 * directory is made here, before HAProxy needs it. */
static void print_edge(FILE *out, const struct sluice_config *cfg)
{
    (void)sl_mkdir_p(cfg->haproxy_socket_dir, 0750);   /* else HAProxy says it cannot bind */
    print_haproxy_socket(out, "SLUICE_HAPROXY_SOCKET", cfg, "haproxy.sock");
    print_haproxy_socket(out, "SLUICE_PASS_ADDR", cfg, "pass.sock");
    if (cfg->edge_tier_max_size == 0)
        return;
    fprintf(out, "    setenv SLUICE_EDGE_TIER_OBJECT_MAX %lld\n", (long long)cfg->edge_tier_max_size);
    fprintf(out, "    setenv SLUICE_EDGE_TIER_MB %lld\n", (long long)((cfg->edge_tier_size + (1 << 20) - 1) >> 20));
    fprintf(out, "    setenv SLUICE_EDGE_TIER_TTL %lld\n", (long long)(cfg->edge_tier_ttl / 1000));
}

void haproxy_gen_print(const struct route_table *rt, const struct sluice_config *cfg,
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
    print_edge(out, cfg);
    if (any_named_origin(rt)) {
        fputs("\nresolvers sluice_dns\n", out);
        fputs("    parse-resolv-conf\n", out);
        fputs("    hold valid 10s\n", out);
    }
    for (int i = 0; i < rt->n; i++)
        if (rt->routes[i].has_origin)
            print_backend(out, &rt->routes[i], cfg);
}
