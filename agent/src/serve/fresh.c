/*
 * fresh.c - freshness of stored metadata (see fresh.h).
 */
#include "serve/fresh.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "core/common.h"

enum freshness fresh_judge(const struct route_freshness *rf, int status, int64_t validated, int64_t now,
                           bool client_no_cache)
{
    int64_t age_ms = (now - validated) * 1000;
    if (age_ms < 0)
        age_ms = 0;   /* the clock went back: as fresh as can be */
    if (status != 200)
        return age_ms < rf->negative_ttl ? FRESH : EXPIRED;
    if (age_ms < rf->ttl && !(client_no_cache && rf->honor_no_cache))
        return FRESH;
    if (age_ms < rf->ttl + rf->stale_while_revalidate && !(client_no_cache && rf->honor_no_cache))
        return STALE_SERVE;
    return age_ms < rf->ttl + rf->stale_if_error ? STALE_ON_ERROR : EXPIRED;
}

/* Is the directive `name` (no value, or "=0" for max-age) in the list? */
static bool has_directive(const char *v, const char *name, bool zero_value)
{
    size_t n = strlen(name);
    for (const char *p = v; (p = strcasestr(p, name)) != NULL; p += n) {
        bool starts = p == v || p[-1] == ',' || isspace((unsigned char)p[-1]);
        const char *after = p + n;
        bool ends = zero_value ? after[0] == '=' && after[1] == '0' && (after[2] == '\0' || after[2] == ',' ||
                                                                         isspace((unsigned char)after[2]))
                               : *after == '\0' || *after == ',' || isspace((unsigned char)*after);
        if (starts && ends)
            return true;
    }
    return false;
}

bool fresh_client_no_cache(const char *cache_control)
{
    return cache_control && (has_directive(cache_control, "no-cache", false) ||
                             has_directive(cache_control, "max-age", true));
}

const char *freshness_name(enum freshness f)
{
    static const char *const names[] = { "fresh", "stale", "stale-on-error", "expired" };
    return (unsigned)f < SL_ARRAY_LEN(names) ? names[f] : "?";
}
