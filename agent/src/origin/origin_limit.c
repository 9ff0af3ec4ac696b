/*
 * origin_limit.c - an origin's adaptive concurrency limit (see
 * origin_limit.h). Pure state: the caller passes the clock, so unit tests
 * drive it without a loop.
 */
#include "origin/origin_limit.h"

#include "core/common.h"

static void check(const struct origin_limit *l)
{
    const struct limit_settings *s = &l->set;
    SL_ASSERT(1 <= s->min && s->min <= l->limit && l->limit <= s->cap);
    SL_ASSERT(s->min <= l->ssthresh && l->ssthresh <= s->cap);
    SL_ASSERT(0 <= l->credit && l->credit < l->limit);
}

static int clamp(int v, int lo, int hi)
{
    return SL_MAX(lo, SL_MIN(hi, v));
}

void limit_configure(struct origin_limit *l, const struct limit_settings *set, bool fresh)
{
    bool was_adaptive = !fresh && l->set.adaptive;
    SL_ASSERT(set->cap >= 1 && set->min >= 1 && set->start >= 1);
    l->set = *set;
    l->set.min = SL_MIN(set->min, set->cap);
    l->set.start = clamp(set->start, l->set.min, set->cap);
    if (!set->adaptive)
        l->limit = set->cap;
    else if (!was_adaptive)
        l->limit = l->set.start;
    else
        l->limit = clamp(l->limit, l->set.min, set->cap);
    if (fresh || !was_adaptive)
        l->ssthresh = set->cap;
    l->ssthresh = clamp(l->ssthresh, l->set.min, set->cap);
    l->credit = 0;
    check(l);
}

enum limit_signal limit_classify(const struct origin_limit *l, int status, int64_t head_ms, enum limit_cut *why)
{
    if (status == 429)
        *why = CUT_429;
    else if (status == 503)
        *why = CUT_503;
    else if (status >= 500)
        *why = CUT_5XX;
    else if (head_ms > l->set.slow_head_ms)
        *why = CUT_SLOW_HEAD;
    else
        return SIG_FAST;
    return SIG_CUT;
}

static bool cooling(const struct origin_limit *l, int64_t now_ms)
{
    return now_ms < l->hold_until_ms;
}

/* Long without a cut: the origin coped with what we sent since. */
static void maybe_recover(struct origin_limit *l, int64_t now_ms)
{
    if (l->last_cut_ms == 0 || now_ms - l->last_cut_ms >= LIMIT_RECOVER_COOLDOWNS * l->set.cooldown_ms)
        l->ssthresh = l->set.cap;
}

bool limit_fast(struct origin_limit *l, bool blocked, int64_t now_ms)
{
    if (!l->set.adaptive || !blocked || l->limit >= l->set.cap || cooling(l, now_ms))
        return false;
    maybe_recover(l, now_ms);
    if (l->limit >= l->ssthresh && ++l->credit < l->limit) {
        check(l);
        return false;
    }
    l->credit = 0;
    l->limit++;
    l->increases++;
    check(l);
    return true;
}

bool limit_cut(struct origin_limit *l, enum limit_cut why, int64_t now_ms, int64_t hold_ms)
{
    SL_ASSERT((unsigned)why < LIMIT_CUTS && hold_ms >= 0);
    if (!l->set.adaptive || cooling(l, now_ms))
        return false;
    l->last_cut_ms = now_ms;
    l->hold_until_ms = now_ms + SL_MAX(l->set.cooldown_ms, SL_MIN(hold_ms, LIMIT_HOLD_MAX_MS));
    int to = SL_MAX(l->set.min, l->limit / 2);
    l->ssthresh = to;
    l->credit = 0;
    bool cut = to < l->limit;
    if (cut)
        l->decreases[why]++;
    l->limit = to;
    check(l);
    return cut;
}

const char *limit_cut_name(enum limit_cut why)
{
    static const char *const names[LIMIT_CUTS] = { "429", "503", "5xx", "error", "header_timeout", "slow_head" };
    return (unsigned)why < LIMIT_CUTS ? names[why] : "other";
}
