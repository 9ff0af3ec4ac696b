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
 * Each route's origin URL comes from the config (`origin_<route>`); its policy
 * (route_policy) comes from built-in defaults per well-known route name;
 * unknown route names get the generic policy.
 */
#ifndef SLUICE_ROUTE_H
#define SLUICE_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"

#define ROUTE_PREFIX_MAX 128
#define ROUTE_MAX 64

enum route_policy {
    ROUTE_IMMUTABLE,   /* every GET is an immutable artifact (generic) */
    ROUTE_PASS,        /* nothing cached yet (ecosystems until their issue) */
};

/* A parsed origin URL: scheme://host[:port][/base] */
struct origin_url {
    bool tls;                 /* https */
    char host[256];           /* hostname or IPv4/IPv6 literal (no brackets) */
    int port;                 /* explicit or 80/443 */
    char base_path[512];      /* "" or "/some/base" without trailing '/' */
};

struct route {
    char name[CONFIG_ROUTE_NAME_MAX];
    char prefix[ROUTE_PREFIX_MAX];  /* as in the map, e.g. "/npm/" */
    size_t prefix_len;
    enum route_policy policy;
    bool has_origin;                /* false: route off */
    char origin[CONFIG_URL_MAX];    /* the URL as configured */
    struct origin_url url;
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

/* Load the map file and attach origins/policies from cfg. 0 or -1 + err. */
int route_table_load(struct route_table *rt, const char *map_path,
                     const struct sluice_config *cfg, char *err, size_t errlen);

/* Same from a string holding the map's text (tests, fuzzing). */
int route_table_parse(struct route_table *rt, const char *map_text,
                      const struct sluice_config *cfg, char *err, size_t errlen);

/* Longest-prefix match of a raw request path. On success returns the route and
 * sets *rest to the part after the prefix (never starting with '/'). */
const struct route *route_match(const struct route_table *rt, const char *path,
                                size_t path_len, const char **rest, size_t *rest_len);

const struct route *route_by_name(const struct route_table *rt, const char *name,
                                  size_t name_len);

/*
 * Write HAProxy's generated configuration for these routes: a `global`
 * section with `setenv` lines for the listener addresses (SLUICE_LISTEN,
 * SLUICE_SPOP_ADDR, SLUICE_HTTP_ADDR, SLUICE_ADMIN_ADDR) and one backend
 * `be_origin_<route>` per route that has an origin: server address, TLS with
 * SNI and system CA verification for https, Host header, and the path
 * rewrite (strip the route prefix, prepend the origin's base path). Every
 * response through these backends gets `Cache-Status: sluice; fwd=bypass`.
 */
void route_table_print_haproxy(const struct route_table *rt, const struct sluice_config *cfg,
                               FILE *out);

#endif
