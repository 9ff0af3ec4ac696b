/*
 * haproxy_gen.h - HAProxy's generated configuration (sluice --print-haproxy).
 *
 * haproxy_gen_print writes a `global` section with `setenv` lines for the
 * listener addresses (SLUICE_LISTEN, SLUICE_SPOP_ADDR, SLUICE_HTTP_ADDR,
 * SLUICE_ADMIN_ADDR; UNIX sockets as HAProxy's "unix@/absolute/path"; the
 * sockets HAProxy binds for the agent in haproxy_socket_dir, made here:
 * SLUICE_HAPROXY_SOCKET, its runtime API, and SLUICE_PASS_ADDR, the
 * pass-through relay; the edge memory tier's SLUICE_EDGE_TIER_OBJECT_MAX,
 * _MB and _TTL unless edge_tier_max_size is 0), a
 * `resolvers` section when an origin is a name, and one backend
 * `be_origin_<route>` per route that has an origin: server address, TLS
 * with SNI and system CA verification for https, Host header, timeouts from
 * the agent's origin settings, and the path rewrite (strip the route
 * prefix, prepend the origin's base path). Every response through these
 * backends gets `Cache-Status: sluice; fwd=bypass`. The shipped haproxy.cfg
 * is loaded after it and routes to these backends by name.
 */
#ifndef SLUICE_HAPROXY_GEN_H
#define SLUICE_HAPROXY_GEN_H

#include <stdio.h>

#include "core/config.h"
#include "route/route.h"

void haproxy_gen_print(const struct route_table *rt, const struct sluice_config *cfg, FILE *out);

#endif
