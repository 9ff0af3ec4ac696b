/*
 * redirect.h - which origin redirects a fill may follow.
 *
 * An origin's redirect decides where the agent fetches bytes that it then
 * stores under the original key and serves to every client, so following
 * one is a trust decision, made here and nowhere else:
 *
 *   - at most REDIRECT_MAX_HOPS redirects per fetch;
 *   - only http and https, and never from https down to http;
 *   - only to the origin's own authority (host and port as configured), or
 *     to a host listed in origin_<route>_redirect_hosts (a registry's CDN;
 *     a listed host without a port means the default port of the redirect's
 *     scheme);
 *   - never to a loopback, link-local, private or otherwise non-public
 *     address unless the origin itself is at one (checked on the address
 *     actually connected to, so a public name resolving to 127.0.0.1 is
 *     caught too: redirect_address_private, used by origin.c).
 *
 * A refused redirect ends the fetch with ORIGIN_ERR_REDIRECT: the client
 * gets a 502 naming the reason, nothing is stored.
 */
#ifndef SLUICE_REDIRECT_H
#define SLUICE_REDIRECT_H

#include <stdbool.h>
#include <stddef.h>

#include "route/route.h"

#define REDIRECT_MAX_HOPS 5

enum redirect_verdict {
    REDIRECT_FOLLOW = 0,
    REDIRECT_REFUSE_LOCATION,   /* no usable URL in Location */
    REDIRECT_REFUSE_SCHEME,     /* not http(s), or https -> http */
    REDIRECT_REFUSE_HOST,       /* not the origin, not a listed host */
    REDIRECT_REFUSE_ADDRESS,    /* a non-public address the origin is not at */
    REDIRECT_REFUSE_HOPS,       /* more than REDIRECT_MAX_HOPS */
    REDIRECT_VERDICTS
};

/*
 * May the fetch of route `r`, now at `from_url`, follow `location` (the
 * Location header as sent: absolute or relative) as its redirect number
 * `hop` (1 for the first)? On REDIRECT_FOLLOW the absolute URL to fetch is
 * written to next (NUL-terminated); otherwise next holds a short reason.
 */
enum redirect_verdict redirect_check(const struct route *r, const char *from_url, const char *location,
                                     int hop, char *next, size_t nextlen);

/* Is the numeric address `ip` (v4 or v6 text) loopback, private,
 * link-local, unique-local, shared (CGNAT), unspecified, multicast or
 * broadcast? Unparseable text counts as private (refused). */
bool redirect_address_private(const char *ip);

/* Label of a refusal for metrics and Cache-Status ("host", "address", ...). */
const char *redirect_verdict_name(enum redirect_verdict v);

#endif
