/*
 * fill_log.h - the one log line every fill ends with (docs/logs.md):
 *
 *   fill route=npm key=npm:left-pad/-/left-pad-1.3.0.tgz origin_status=200
 *     bytes=2417 duration_ms=41 followers=3 outcome=stored integrity=verified
 *
 * (one line), with " reason=<token>" after it when the outcome is
 * not-stored or origin-error, and " source=<tier>" last when the body came
 * from a storage tier (an L2 hit: "disk", "s3"; absent: the origin). Field names and order, and the values of
 * outcome, integrity and reason, are an interface: operators' queries and
 * the runbooks in docs/ cite them. Every value goes through log_value, so a
 * key (it comes from a client's path) can neither end the line nor forge a
 * field.
 */
#ifndef SLUICE_FILL_LOG_H
#define SLUICE_FILL_LOG_H

#include <stdint.h>

struct sl_buf;

struct fill_summary {
    const char *route;
    const char *key;
    int origin_status;           /* 0: no answer (logged as "-") */
    uint64_t bytes;              /* body bytes received */
    int64_t duration_ms;         /* from the start to the end of the source */
    int followers;               /* readers that attached, the leader included */
    const char *outcome;         /* stored, not-stored, not-cacheable, origin-error,
                                    integrity-failure, aborted */
    const char *integrity;       /* verified, failed, unknown, none, off */
    const char *reason;          /* NULL, or a token for not-stored and origin-error */
    const char *source;          /* NULL (the origin), or the tier the body came from */
};

/* Append the line's message (without time, level or newline) to out. */
void fill_summary_format(const struct fill_summary *s, struct sl_buf *out);

#endif
