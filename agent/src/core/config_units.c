/*
 * config_units.c - durations and sizes as settings write them: exact
 * parsing ("1.5s" is 1500 ms; "1.5ms" is refused rather than rounded) and
 * the shortest exact spelling back (see config.h for the syntax).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/common.h"
#include "core/config_impl.h"

#define MS_HOUR (3600 * 1000LL)

/*
 * Parse "<digits>[.<digits>]<unit>" exactly: unit_of maps the text after the
 * number to a multiplier (0 = not a unit), and the fraction must come out as
 * a whole number of base units ("1.5s" is 1500 ms; "1.5ms" is refused rather
 * than rounded).
 */
static enum num_err parse_decimal(const char *s, uint64_t (*unit_of)(const char *),
                                  uint64_t *out)
{
    const char *p = s;
    if (*p == '-')
        return NUM_NEGATIVE;
    if (!isdigit((unsigned char)*p))
        return *p ? NUM_GARBAGE : NUM_EMPTY;

    uint64_t whole = 0;
    for (; isdigit((unsigned char)*p); p++)
        if (__builtin_mul_overflow(whole, 10, &whole) ||
            __builtin_add_overflow(whole, (uint64_t)(*p - '0'), &whole))
            return NUM_OVERFLOW;

    uint64_t frac = 0, frac_scale = 1;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return NUM_GARBAGE;
        for (; isdigit((unsigned char)*p); p++) {
            if (frac_scale >= 1000000000000ULL) /* more digits than any unit needs */
                return NUM_INEXACT;
            frac = frac * 10 + (uint64_t)(*p - '0');
            frac_scale *= 10;
        }
    }

    uint64_t unit = unit_of(p);
    if (unit == 0)
        return NUM_GARBAGE;

    /* frac < 10^12 and unit <= 2^40: the product needs 128 bits. */
    uint64_t value;
    unsigned __int128 frac_units = (unsigned __int128)frac * unit;
    if (__builtin_mul_overflow(whole, unit, &value))
        return NUM_OVERFLOW;
    if (frac_units % frac_scale != 0)
        return NUM_INEXACT;
    if (__builtin_add_overflow(value, (uint64_t)(frac_units / frac_scale), &value))
        return NUM_OVERFLOW;
    *out = value;
    return NUM_OK;
}

/* Milliseconds per duration unit, or 0 when `u` is not a whole unit. */
static uint64_t duration_unit(const char *u)
{
    if (*u == '\0' || strcasecmp(u, "s") == 0)
        return 1000;
    if (strcasecmp(u, "ms") == 0)
        return 1;
    if (strcasecmp(u, "m") == 0)
        return 60 * 1000;
    if (strcasecmp(u, "h") == 0)
        return 3600 * 1000;
    return 0;
}

/* Bytes per size unit ("", "B", "K", "KB", "KiB", ... "TiB"), or 0. */
static uint64_t size_unit(const char *u)
{
    static const char prefixes[] = "KMGT";
    if (*u == '\0' || strcasecmp(u, "b") == 0)
        return 1;
    const char *at = strchr(prefixes, toupper((unsigned char)u[0]));
    if (!at)
        return 0;
    const char *suffix = u + 1;
    if (*suffix && strcasecmp(suffix, "b") != 0 && strcasecmp(suffix, "ib") != 0)
        return 0;
    return 1ULL << (10 * (at - prefixes + 1));
}

enum num_err units_parse_duration(const char *s, int64_t *out_ms)
{
    uint64_t v;
    enum num_err e = parse_decimal(s, duration_unit, &v);
    if (e != NUM_OK)
        return e;
    if (v > INT64_MAX)
        return NUM_OVERFLOW;
    *out_ms = (int64_t)v;
    return NUM_OK;
}

enum num_err units_parse_size(const char *s, uint64_t *out)
{
    return parse_decimal(s, size_unit, out);
}

int config_parse_duration_ms(const char *s, int64_t *out_ms)
{
    SL_ASSERT(s && out_ms);
    return units_parse_duration(s, out_ms) == NUM_OK ? 0 : -1;
}

int config_parse_size(const char *s, uint64_t *out_bytes)
{
    SL_ASSERT(s && out_bytes);
    return units_parse_size(s, out_bytes) == NUM_OK ? 0 : -1;
}

const char *units_err_text(enum num_err e)
{
    switch (e) {
    case NUM_OK: return "ok";
    case NUM_EMPTY: return "empty value";
    case NUM_NEGATIVE: return "must not be negative";
    case NUM_GARBAGE: return "not a number with a known unit";
    case NUM_OVERFLOW: return "too large";
    case NUM_INEXACT: return "too precise for its unit";
    }
    return "?";
}

/* Largest unit that represents ms exactly: "1h", "90s", "1500ms". */
void units_format_duration(int64_t ms, char *out, size_t outlen)
{
    if (ms != 0 && ms % MS_HOUR == 0)
        snprintf(out, outlen, "%lldh", (long long)(ms / MS_HOUR));
    else if (ms != 0 && ms % 60000 == 0)
        snprintf(out, outlen, "%lldm", (long long)(ms / 60000));
    else if (ms % 1000 == 0)
        snprintf(out, outlen, "%llds", (long long)(ms / 1000));
    else
        snprintf(out, outlen, "%lldms", (long long)ms);
}

void units_format_size(uint64_t bytes, char *out, size_t outlen)
{
    static const char units[] = "TGMK";
    for (int i = 0; i < 4; i++) {
        uint64_t unit = 1ULL << (10 * (4 - i));
        if (bytes != 0 && bytes % unit == 0) {
            snprintf(out, outlen, "%llu%c", (unsigned long long)(bytes / unit), units[i]);
            return;
        }
    }
    snprintf(out, outlen, "%llu", (unsigned long long)bytes);
}

