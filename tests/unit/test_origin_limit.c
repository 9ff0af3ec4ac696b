/*
 * test_origin_limit.c - an origin's adaptive limit (origin/origin_limit.h),
 * driven with an explicit clock.
 *
 * Proves: fast heads with waiters grow it by one each (slow start) up to
 * the cap, never past it; without waiters nothing grows; a 429, a 503,
 * another 5xx, an error, a header timeout and a slow head each halve it
 * once, counted by reason; a second signal inside the cool-down changes
 * nothing (and nothing grows there either); a Retry-After longer than the
 * cool-down stretches that hold, up to LIMIT_HOLD_MAX_MS; cuts stop at the floor; after
 * a cut growth is additive (+1 per `limit` fast heads) until ten quiet
 * cool-downs make it slow start again; off, the limit is the cap and never
 * moves; a reload clamps the limit into the new [min, cap], turning it on
 * starts from origin_limit_start, and start/min above the cap are clamped.
 * The invariants min <= limit <= cap are asserted inside the module on
 * every change (an ASan build aborts when they break).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/common.h"
#include "origin/origin_limit.h"

#define COOL 1000
#define SLOW 2000
#define T0 100000   /* a clock far from 0 (0 means "never cut") */

static struct limit_settings settings(int cap, int start, int min)
{
    return (struct limit_settings){ .adaptive = true, .cap = cap, .start = start, .min = min,
                                    .slow_head_ms = SLOW, .cooldown_ms = COOL };
}

static struct origin_limit fresh(int cap, int start, int min)
{
    struct origin_limit l = { 0 };
    struct limit_settings s = settings(cap, start, min);
    limit_configure(&l, &s, true);
    return l;
}

/* n fast heads, with waiters, at `now`; returns how many grew it. */
static int fast_heads(struct origin_limit *l, int n, int64_t now)
{
    int grew = 0;
    for (int i = 0; i < n; i++)
        grew += limit_fast(l, true, now);
    return grew;
}

static void test_slow_start_grows_one_per_fast_head_with_waiters(void **state)
{
    SL_UNUSED(state);
    struct origin_limit l = fresh(256, 32, 4);
    assert_int_equal(l.limit, 32);
    assert_int_equal(fast_heads(&l, 32, T0), 32);   /* one round trip: doubled */
    assert_int_equal(l.limit, 64);
    assert_int_equal(l.increases, 32);
}

static void test_no_growth_without_waiters(void **state)
{
    SL_UNUSED(state);
    struct origin_limit l = fresh(256, 32, 4);
    for (int i = 0; i < 100; i++)
        assert_false(limit_fast(&l, false, T0));
    assert_int_equal(l.limit, 32);
    assert_int_equal(l.increases, 0);
}

static void test_growth_stops_at_the_cap(void **state)
{
    SL_UNUSED(state);
    struct origin_limit l = fresh(40, 32, 4);
    assert_int_equal(fast_heads(&l, 100, T0), 8);
    assert_int_equal(l.limit, 40);
}

static void test_classify(void **state)
{
    SL_UNUSED(state);
    struct origin_limit l = fresh(256, 32, 4);
    enum limit_cut why;
    assert_int_equal(limit_classify(&l, 200, 10, &why), SIG_FAST);
    assert_int_equal(limit_classify(&l, 404, SLOW, &why), SIG_FAST);   /* at the threshold: not slow */
    assert_int_equal(limit_classify(&l, 304, 1, &why), SIG_FAST);
    assert_int_equal(limit_classify(&l, 429, 1, &why), SIG_CUT);
    assert_int_equal(why, CUT_429);
    assert_int_equal(limit_classify(&l, 503, 1, &why), SIG_CUT);
    assert_int_equal(why, CUT_503);
    assert_int_equal(limit_classify(&l, 502, 1, &why), SIG_CUT);
    assert_int_equal(why, CUT_5XX);
    assert_int_equal(limit_classify(&l, 200, SLOW + 1, &why), SIG_CUT);
    assert_int_equal(why, CUT_SLOW_HEAD);
}

static void test_each_reason_halves_once_per_cooldown(void **state)
{
    SL_UNUSED(state);
    struct origin_limit l = fresh(256, 256, 4);
    int64_t now = T0;
    int want = 256;
    for (int why = 0; why < LIMIT_CUTS; why++) {
        assert_true(limit_cut(&l, (enum limit_cut)why, now, 0));
        want /= 2;
        assert_int_equal(l.limit, want);
        assert_int_equal(l.decreases[why], 1);
        /* the rest of the burst, inside the cool-down: nothing more */
        assert_false(limit_cut(&l, CUT_503, now + COOL - 1, 0));
        assert_false(limit_fast(&l, true, now + COOL - 1));
        assert_int_equal(l.limit, want);
        now += COOL;
    }
    assert_int_equal(l.limit, 4);   /* 256 / 2^6 */
    assert_int_equal(l.decreases[CUT_503], 1);
}

static void test_retry_after_stretches_the_hold(void **state)
{
    SL_UNUSED(state);
    struct origin_limit l = fresh(256, 256, 4);
    assert_true(limit_cut(&l, CUT_429, T0, 5 * COOL));        /* Retry-After: 5 cool-downs */
    assert_false(limit_cut(&l, CUT_429, T0 + 5 * COOL - 1, 0));
    assert_false(limit_fast(&l, true, T0 + 5 * COOL - 1));
    assert_true(limit_cut(&l, CUT_429, T0 + 5 * COOL, 0));
    assert_int_equal(l.limit, 64);
    int64_t t = T0 + 10 * COOL;
    assert_true(limit_cut(&l, CUT_503, t, 3600 * 1000));      /* an hour: held at most LIMIT_HOLD_MAX_MS */
    assert_false(limit_cut(&l, CUT_503, t + LIMIT_HOLD_MAX_MS - 1, 0));
    assert_true(limit_cut(&l, CUT_503, t + LIMIT_HOLD_MAX_MS, 0));
    assert_true(limit_cut(&l, CUT_5XX, t + LIMIT_HOLD_MAX_MS + COOL, 1));   /* shorter than the cool-down */
    assert_false(limit_cut(&l, CUT_5XX, t + LIMIT_HOLD_MAX_MS + 2 * COOL - 1, 0));
    assert_int_equal(l.limit, 8);
}

static void test_cuts_stop_at_the_floor(void **state)
{
    SL_UNUSED(state);
    struct origin_limit l = fresh(256, 32, 10);
    assert_true(limit_cut(&l, CUT_ERROR, T0, 0));
    assert_int_equal(l.limit, 16);
    assert_true(limit_cut(&l, CUT_ERROR, T0 + COOL, 0));
    assert_int_equal(l.limit, 10);
    assert_false(limit_cut(&l, CUT_ERROR, T0 + 2 * COOL, 0));   /* at the floor: no change, not counted */
    assert_int_equal(l.limit, 10);
    assert_int_equal(l.decreases[CUT_ERROR], 2);
}

static void test_after_a_cut_growth_is_additive_until_quiet(void **state)
{
    SL_UNUSED(state);
    struct origin_limit l = fresh(256, 64, 4);
    assert_true(limit_cut(&l, CUT_429, T0, 0));
    assert_int_equal(l.limit, 32);
    int64_t now = T0 + COOL;
    assert_int_equal(fast_heads(&l, 31, now), 0);   /* 32 heads for +1 */
    assert_int_equal(fast_heads(&l, 1, now), 1);
    assert_int_equal(l.limit, 33);
    now = T0 + LIMIT_RECOVER_COOLDOWNS * COOL;     /* quiet long enough */
    assert_int_equal(fast_heads(&l, 10, now), 10);
    assert_int_equal(l.limit, 43);
}

static void test_off_is_the_fixed_cap(void **state)
{
    SL_UNUSED(state);
    struct origin_limit l = { 0 };
    struct limit_settings s = settings(16, 4, 2);
    s.adaptive = false;
    limit_configure(&l, &s, true);
    assert_int_equal(l.limit, 16);
    assert_false(limit_cut(&l, CUT_503, T0, 0));
    assert_false(limit_fast(&l, true, T0));
    assert_int_equal(l.limit, 16);
}

static void test_start_and_min_are_clamped_to_the_cap(void **state)
{
    SL_UNUSED(state);
    struct origin_limit l = fresh(2, 32, 4);
    assert_int_equal(l.limit, 2);
    assert_int_equal(l.set.min, 2);
    assert_false(limit_cut(&l, CUT_503, T0, 0));
    assert_int_equal(l.limit, 2);
}

static void test_reload_clamps_and_restarts(void **state)
{
    SL_UNUSED(state);
    struct origin_limit l = fresh(256, 32, 4);
    fast_heads(&l, 68, T0);
    assert_int_equal(l.limit, 100);
    struct limit_settings s = settings(64, 32, 4);   /* a lower cap */
    limit_configure(&l, &s, false);
    assert_int_equal(l.limit, 64);
    s = settings(256, 32, 80);                       /* a higher floor */
    limit_configure(&l, &s, false);
    assert_int_equal(l.limit, 80);
    s.adaptive = false;                              /* off: the cap */
    limit_configure(&l, &s, false);
    assert_int_equal(l.limit, 256);
    s = settings(256, 20, 4);                        /* on again: from start */
    limit_configure(&l, &s, false);
    assert_int_equal(l.limit, 20);
}

static void test_cut_names(void **state)
{
    SL_UNUSED(state);
    assert_string_equal(limit_cut_name(CUT_429), "429");
    assert_string_equal(limit_cut_name(CUT_HEADER_TIMEOUT), "header_timeout");
    assert_string_equal(limit_cut_name(CUT_SLOW_HEAD), "slow_head");
    assert_string_equal(limit_cut_name(LIMIT_CUTS), "other");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slow_start_grows_one_per_fast_head_with_waiters),
        cmocka_unit_test(test_no_growth_without_waiters),
        cmocka_unit_test(test_growth_stops_at_the_cap),
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_each_reason_halves_once_per_cooldown),
        cmocka_unit_test(test_retry_after_stretches_the_hold),
        cmocka_unit_test(test_cuts_stop_at_the_floor),
        cmocka_unit_test(test_after_a_cut_growth_is_additive_until_quiet),
        cmocka_unit_test(test_off_is_the_fixed_cap),
        cmocka_unit_test(test_start_and_min_are_clamped_to_the_cap),
        cmocka_unit_test(test_reload_clamps_and_restarts),
        cmocka_unit_test(test_cut_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
