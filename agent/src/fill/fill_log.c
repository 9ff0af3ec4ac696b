/*
 * fill_log.c - the line a fill ends with (see fill_log.h): what became of
 * it, read from its final state when it is freed (fill.c, fill_free), the
 * one place every fill passes once whatever its end - stored, not
 * cacheable, origin error, integrity failure, aborted.
 *
 * The outcome is decided in this order, the first that holds:
 *   integrity-failure  the body did not match its published digest
 *   stored             committed, or a revalidation answered 304
 *   origin-error       a 5xx, or the source failed or was cut (reason)
 *   aborted            no client left (or shutdown) before the end
 *   not-cacheable      an answer that is never stored (status, size)
 *   not-stored         the cache writer was detached (reason)
 */
#include "fill/fill_log.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "core/common.h"
#include "core/log.h"
#include "fill/fill_impl.h"

_Static_assert(4 * KEY_MAX + 512 <= LOG_LINE_MAX, "a fill line holds a key escaped at worst");

static void field(struct sl_buf *out, const char *name, const char *value)
{
    sl_buf_append(out, " ", 1);
    sl_buf_append_str(out, name);
    sl_buf_append(out, "=", 1);
    log_value(out, value);
}

static void field_u64(struct sl_buf *out, const char *name, uint64_t value)
{
    char num[24];
    snprintf(num, sizeof(num), "%" PRIu64, value);
    field(out, name, num);
}

void fill_summary_format(const struct fill_summary *s, struct sl_buf *out)
{
    char status[8];
    snprintf(status, sizeof(status), "%d", s->origin_status);
    sl_buf_append_str(out, "fill");
    field(out, "route", s->route);
    field(out, "key", s->key);
    field(out, "origin_status", s->origin_status > 0 ? status : "-");
    field_u64(out, "bytes", s->bytes);
    field_u64(out, "duration_ms", (uint64_t)SL_MAX(s->duration_ms, 0));
    field_u64(out, "followers", (uint64_t)SL_MAX(s->followers, 0));
    field(out, "outcome", s->outcome);
    field(out, "integrity", s->integrity);
    if (s->reason)
        field(out, "reason", s->reason);
    if (s->source)
        field(out, "source", s->source);
}

/* ------------------------------------------------------- from a fill */

static const char *write_reason(enum write_fail_reason r)
{
    static const char *const names[WFAIL_REASONS] = {
        [WFAIL_ENOSPC] = "disk-full", [WFAIL_EDQUOT] = "quota", [WFAIL_EIO] = "io-error",
        [WFAIL_SHORT] = "short-write", [WFAIL_TIMEOUT] = "write-timeout", [WFAIL_LAG] = "lag",
        [WFAIL_TOO_LARGE] = "too-large", [WFAIL_ORIGIN] = "origin", [WFAIL_INVALID] = "invalid",
        [WFAIL_INTEGRITY] = "integrity", [WFAIL_OTHER] = "other",
    };
    return (unsigned)r < WFAIL_REASONS ? names[r] : "other";
}

static const char *origin_reason(const struct fill *f)
{
    if (f->head == FILL_HEAD_BUSY)
        return "queue-timeout";
    if (!f->url[0] || f->from_tier)
        return "tier";
    switch (f->origin_result) {
    case ORIGIN_ERR_CONNECT: return "connect";
    case ORIGIN_ERR_STALL: return "stall";
    case ORIGIN_ERR_HEADER_TIMEOUT: return "header-timeout";
    case ORIGIN_ERR_TRUNCATED: return "truncated";
    case ORIGIN_ERR_PROTOCOL: return "protocol";
    case ORIGIN_ERR_REDIRECT: return "redirect";
    case ORIGIN_ERR_STATUS: return "5xx";
    default: return "other";
    }
}

/* The outcome (the order of the header comment), and its reason. */
static const char *outcome_of(const struct fill *f, const char **reason)
{
    const char *verdict = verify_log_name(f);
    *reason = NULL;
    if (f->origin_result == ORIGIN_ERR_INTEGRITY || (verdict && strcmp(verdict, "failed") == 0))
        return "integrity-failure";
    if (f->head == FILL_HEAD_NOT_MODIFIED || f->wstate == W_COMMITTED)
        return "stored";
    if (f->answer_status >= 500 || f->origin_result == ORIGIN_ERR_STATUS) {
        *reason = "5xx";
        return "origin-error";
    }
    if (f->aborted)
        return "aborted";
    if (f->head == FILL_HEAD_BUSY || f->origin_result != ORIGIN_OK) {
        *reason = origin_reason(f);
        return "origin-error";
    }
    if (f->wstate == W_NONE)
        return "not-cacheable";
    *reason = f->wstate == W_FAILED ? write_reason(f->wfail) : "other";
    return "not-stored";
}

static const char *integrity_name(const struct fill *f)
{
    const char *verdict = verify_log_name(f);
    if (verdict)
        return verdict;
    return config_route_int(&f->a->cfg, "integrity_verify", f->route->name) ? "none" : "off";
}

void fill_log_end(const struct fill *f)
{
    SL_ASSERT(f->ran && f->route && f->key);
    int64_t end = f->ended_ms ? f->ended_ms : sl_now_ms();
    struct fill_summary s = {
        .route = f->route->name, .key = f->key, .origin_status = f->answer_status, .bytes = f->received,
        .duration_ms = end - f->start_ms, .followers = f->attached, .integrity = integrity_name(f),
        .source = fill_tier_name(f),
    };
    s.outcome = outcome_of(f, &s.reason);
    struct sl_buf line = { 0 };
    fill_summary_format(&s, &line);
    log_info("%s", (const char *)line.data);
    sl_buf_free(&line);
}
