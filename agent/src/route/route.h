/*
 * route.h - routes as data: which path prefix belongs to which ecosystem,
 * where its origin is, and how its objects may be cached.
 *
 * The prefix -> route mapping is the HAProxy map file (haproxy/routes.map),
 * read by both HAProxy (`map_beg`) and the agent, so the two can never
 * disagree. Each line: "<prefix> <route>", e.g. "/npm/ npm"; '#' comments and
 * blank lines ignored. Longest prefix wins (HAProxy's map_beg takes the first
 * match in file order, so the shipped map lists longer prefixes first; the
 * agent does not depend on the order).
 *
 * Each route's origin URL comes from the config (`origin_<route>`, default
 * from its ecosystem), and so do the hosts that origin may redirect to
 * (`origin_<route>_redirect_hosts`). What may be cached, and how, comes from
 * the route's ecosystem (eco/eco.h), the one of the same name; a route name
 * that is no ecosystem's gets eco_unknown, which caches nothing.
 */
#ifndef SLUICE_ROUTE_H
#define SLUICE_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"
#include "eco/eco.h"

#define ROUTE_PREFIX_MAX 128
#define ROUTE_MAX 64
#define ROUTE_REDIRECT_HOSTS_MAX 16

/* A parsed origin URL: scheme://host[:port][/base] */
struct origin_url {
    bool tls;                 /* https */
    char host[256];           /* hostname or IPv4/IPv6 literal (no brackets) */
    int port;                 /* explicit or 80/443 */
    char base_path[512];      /* "" or "/some/base" without trailing '/' */
};

/* A host an origin may redirect to: name or address, and a port (0: the
 * default port of the redirect's scheme). */
struct route_host {
    char host[256];
    int port;
};

/* How long this route's metadata is fresh, and stale but usable (ms);
 * from the per-route settings metadata_* (config.h). */
struct route_freshness {
    int64_t ttl;
    int64_t stale_while_revalidate;
    int64_t stale_if_error;
    int64_t error_hold;
    int64_t negative_ttl;
    bool honor_no_cache;
};

struct route {
    char name[CONFIG_ROUTE_NAME_MAX];
    char prefix[ROUTE_PREFIX_MAX];  /* as in the map, e.g. "/npm/" */
    size_t prefix_len;
    const struct eco *eco;          /* never NULL (eco_unknown for other names) */
    bool has_origin;                /* false: route off */
    char origin[CONFIG_URL_MAX];    /* the URL as configured */
    struct origin_url url;
    struct route_host redirect_hosts[ROUTE_REDIRECT_HOSTS_MAX];
    int n_redirect_hosts;
    struct route_freshness fresh;
    bool retired;                   /* gone from the map at a reload (route.c) */
};

struct route_table {
    struct route routes[ROUTE_MAX];
    int n;
};

/*
 * Parse "scheme://host[:port][/path]". Only http and https; no user-info, no
 * query, no fragment. Returns 0 or -1 with a message in err.
 */
int origin_url_parse(const char *url, struct origin_url *out, char *err, size_t errlen);

/* "scheme://host[:port]<base_path>" (port only when not the scheme's
 * default, IPv6 in brackets). Returns the length written, or 0 when it does
 * not fit in outlen. */
size_t origin_url_format_base(const struct origin_url *u, char *out, size_t outlen);

/* "host[:port]" (IPv6 in brackets), port only when not the default. */
void origin_url_format_authority(const struct origin_url *u, char *out, size_t outlen);

/*
 * Parse a list of hosts separated by commas or blanks, each "name[:port]",
 * "a.b.c.d[:port]" or "[v6][:port]" (names lower-cased), into out[0..max).
 * Sets *n. Returns 0, or -1 with a message in err. An empty list is fine.
 */
int route_hosts_parse(const char *list, struct route_host *out, int max, int *n, char *err,
                      size_t errlen);

/* Is s[0..n) a valid route name: [a-z0-9_]+, shorter than
 * CONFIG_ROUTE_NAME_MAX? (it becomes part of keys and backend names) */
bool route_name_valid(const char *s, size_t n);

/* Load the map file and attach origins/policies from cfg. 0 or -1 + err. */
int route_table_load(struct route_table *rt, const char *map_path,
                     const struct sluice_config *cfg, char *err, size_t errlen);

/* Same from a string holding the map's text (tests, fuzzing). */
int route_table_parse(struct route_table *rt, const char *map_text,
                      const struct sluice_config *cfg, char *err, size_t errlen);

/*
 * Reload: make `live` route as `fresh` does without moving any route (see
 * route.c: a slot belongs to one name for the life of the process; routes
 * gone from the map are retired, not removed). Pointers into `live` stay
 * valid. Fails, changing nothing, when the names would not fit in
 * ROUTE_MAX slots. 0 or -1 + err.
 */
int route_table_update(struct route_table *live, const struct route_table *fresh, char *err, size_t errlen);

/* Longest-prefix match of a raw request path (retired routes never match). On success returns the route and
 * sets *rest to the part after the prefix (never starting with '/'). */
const struct route *route_match(const struct route_table *rt, const char *path,
                                size_t path_len, const char **rest, size_t *rest_len);

/* The route of that name, unless retired. */
const struct route *route_by_name(const struct route_table *rt, const char *name,
                                  size_t name_len);

/* Is the origin's host an IP literal (v4 or v6), not a name? */
bool origin_url_host_is_ip(const struct origin_url *u);
bool origin_url_host_is_ipv6(const struct origin_url *u);

#endif
