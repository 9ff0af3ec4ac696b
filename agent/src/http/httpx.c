/*
 * httpx.c - pure HTTP helpers for the serving side (see httpx.h).
 *
 * Every function takes a (pointer, length) pair that comes straight from a
 * peer, so each one is total: any byte sequence, including embedded NULs and
 * a NULL pointer with length 0, gives a defined answer and never reads past
 * `len`. Nothing allocates, nothing does I/O, nothing keeps state.
 *
 * The policy is strict parsing with a safe failure mode: a value we do not
 * fully understand is treated as absent. For Range that means a 200 with the
 * full body, for If-None-Match / If-Modified-Since it means no 304. Both are
 * always correct answers; guessing what a malformed header meant is not.
 *
 * Whitespace: the grammar of RFC 9110 allows optional whitespace (OWS) only
 * around the commas of a list, and HTTP strips it around a field value. We
 * accept exactly that and nothing else ("bytes = 0-1" and "bytes=0 - 1" are
 * malformed, because the ABNF has no OWS around '=' or '-').
 */
#include "http/httpx.h"

#include <string.h>
#include <strings.h>

#include "core/common.h"

/* ------------------------------------------------------------ small helpers */

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Trim OWS at both ends of [*s, *s + *len). */
static void trim_ows(const char **s, size_t *len)
{
    while (*len > 0 && is_ows((*s)[0])) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && is_ows((*s)[*len - 1]))
        (*len)--;
}

static char ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static bool ascii_eq_nocase(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++)
        if (ascii_lower(a[i]) != ascii_lower(b[i]))
            return false;
    return true;
}

/*
 * 1*DIGIT into a uint64_t. False on an empty string, a non-digit, or a value
 * above UINT64_MAX (leading zeros are fine: they do not overflow).
 */
static bool parse_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(s[i]))
            return false;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* -------------------------------------------------------------------- Range */

/* One parsed byte-range-spec. A suffix range "-n" has is_suffix set and the
 * length in `first`; "a-" has has_last clear. */
struct byte_range_spec {
    bool is_suffix;
    bool has_last;
    uint64_t first;
    uint64_t last;
};

/* int-range = first-pos "-" [ last-pos ];  suffix-range = "-" suffix-length */
static bool parse_range_spec(const char *s, size_t len, struct byte_range_spec *spec)
{
    const char *dash = memchr(s, '-', len);
    if (!dash)
        return false;
    size_t left = (size_t)(dash - s);
    const char *rs = dash + 1;
    size_t rlen = len - left - 1;

    memset(spec, 0, sizeof(*spec));
    if (left == 0) {
        spec->is_suffix = true;
        return parse_u64(rs, rlen, &spec->first);
    }
    if (!parse_u64(s, left, &spec->first))
        return false;
    if (rlen == 0)
        return true;
    spec->has_last = true;
    if (!parse_u64(rs, rlen, &spec->last))
        return false;
    /* RFC 9110 14.1.1: last-pos < first-pos makes the spec invalid, and an
     * invalid range-set means the whole header is ignored. */
    return spec->last >= spec->first;
}

/* Resolve a syntactically valid spec against the body size. */
static enum range_result resolve_range(const struct byte_range_spec *spec, uint64_t size,
                                       uint64_t *first, uint64_t *last)
{
    if (size == 0)
        return RANGE_UNSATISFIABLE;
    if (spec->is_suffix) {
        if (spec->first == 0)
            return RANGE_UNSATISFIABLE;
        /* A suffix longer than the body selects the whole body. */
        *first = spec->first >= size ? 0 : size - spec->first;
        *last = size - 1;
        return RANGE_OK;
    }
    if (spec->first >= size)
        return RANGE_UNSATISFIABLE;
    *first = spec->first;
    *last = (!spec->has_last || spec->last >= size) ? size - 1 : spec->last;
    return RANGE_OK;
}

enum range_result httpx_parse_range(const char *value, size_t len, uint64_t size,
                                    uint64_t *first, uint64_t *last)
{
    SL_ASSERT(first != NULL && last != NULL);
    if (value == NULL)
        return RANGE_NONE;
    trim_ows(&value, &len);

    /* range-unit "=" range-set, no whitespace around '='. */
    const char *eq = memchr(value, '=', len);
    if (!eq || !ascii_eq_nocase(value, (size_t)(eq - value), "bytes"))
        return RANGE_NONE;
    const char *set = eq + 1;
    const char *end = value + len;

    /* range-set = 1#range-spec. Elements cannot contain commas, so split on
     * them; empty elements are legal list syntax and are skipped. OWS may
     * only touch a comma: "bytes= 0-1" is malformed, "bytes=0-1, 2-3" not. */
    struct byte_range_spec spec = { 0 };
    int count = 0;
    for (const char *p = set;;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *elem = p;
        size_t elen = (size_t)((comma ? comma : end) - elem);
        trim_ows(&elem, &elen);
        if (elen > 0 && p == set && elem != p)
            return RANGE_NONE;
        if (elen > 0) {
            /* We honour one range only; more means "ignore Range". */
            if (++count > 1 || !parse_range_spec(elem, elen, &spec))
                return RANGE_NONE;
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    if (count != 1)
        return RANGE_NONE;
    return resolve_range(&spec, size, first, last);
}

/* -------------------------------------------------------------------- Dates */

static const char *const day_short[7] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
static const char *const day_long[7] = { "Sunday", "Monday", "Tuesday", "Wednesday",
                                         "Thursday", "Friday", "Saturday" };
static const char *const month_short[12] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                             "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

/* 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the years that fit the
 * 4DIGIT year of an IMF-fixdate. */
#define DATE_MIN_T INT64_C(-62167219200)
#define DATE_MAX_T INT64_C(253402300799)

static char *put_digits(char *p, int v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + width;
}

static char *put_str(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

/*
 * Written by hand rather than with strftime: strftime's names follow the
 * locale, and the wire format must not. Times outside years 0..9999 are
 * clamped so the output is always a well-formed 29-character date.
 */
void httpx_format_date(time_t t, char *out, size_t outlen)
{
    SL_ASSERT(out != NULL && outlen >= 30);
    int64_t v = (int64_t)t;
    if (v < DATE_MIN_T)
        v = DATE_MIN_T;
    if (v > DATE_MAX_T)
        v = DATE_MAX_T;
    time_t c = (time_t)v;
    struct tm tm;
    if (gmtime_r(&c, &tm) == NULL)
        memset(&tm, 0, sizeof(tm)); /* cannot happen in range; stay defined */

    char *p = out;
    p = put_str(p, day_short[tm.tm_wday]);
    p = put_str(p, ", ");
    p = put_digits(p, tm.tm_mday, 2);
    *p++ = ' ';
    p = put_str(p, month_short[tm.tm_mon]);
    *p++ = ' ';
    p = put_digits(p, tm.tm_year + 1900, 4);
    *p++ = ' ';
    p = put_digits(p, tm.tm_hour, 2);
    *p++ = ':';
    p = put_digits(p, tm.tm_min, 2);
    *p++ = ':';
    p = put_digits(p, tm.tm_sec, 2);
    p = put_str(p, " GMT");
    *p = '\0';
    SL_ASSERT(p - out == 29);
}

const char *httpx_date_now(void)
{
    static time_t formatted_at = -1;
    static char date[40];
    time_t now = time(NULL);
    if (now != formatted_at) {
        httpx_format_date(now, date, sizeof(date));
        formatted_at = now;
    }
    return date;
}

/* A cursor over the date text; every reader fails rather than overrun. */
struct cursor {
    const char *p;
    const char *end;
};

static bool cur_lit(struct cursor *c, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0)
        return false;
    c->p += n;
    return true;
}

/* Exactly `width` digits. */
static bool cur_digits(struct cursor *c, int width, int *out)
{
    int v = 0;
    if (c->end - c->p < width)
        return false;
    for (int i = 0; i < width; i++) {
        if (!is_digit(c->p[i]))
            return false;
        v = v * 10 + (c->p[i] - '0');
    }
    c->p += width;
    *out = v;
    return true;
}

/* One of `names` (case-sensitive, as RFC 9110 5.6.7 specifies); its index. */
static bool cur_name(struct cursor *c, const char *const *names, int count, int *out)
{
    for (int i = 0; i < count; i++) {
        if (cur_lit(c, names[i])) {
            *out = i;
            return true;
        }
    }
    return false;
}

/* time-of-day = hour ":" minute ":" second */
static bool cur_time(struct cursor *c, struct tm *tm)
{
    return cur_digits(c, 2, &tm->tm_hour) && cur_lit(c, ":") &&
           cur_digits(c, 2, &tm->tm_min) && cur_lit(c, ":") &&
           cur_digits(c, 2, &tm->tm_sec);
}

/* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
static bool parse_imf(struct cursor c, struct tm *tm)
{
    int wday, year;
    if (!(cur_name(&c, day_short, 7, &wday) && cur_lit(&c, ", ") &&
          cur_digits(&c, 2, &tm->tm_mday) && cur_lit(&c, " ") &&
          cur_name(&c, month_short, 12, &tm->tm_mon) && cur_lit(&c, " ") &&
          cur_digits(&c, 4, &year) && cur_lit(&c, " ") &&
          cur_time(&c, tm) && cur_lit(&c, " GMT") && c.p == c.end))
        return false;
    tm->tm_year = year - 1900;
    return true;
}

/* Place a two-digit year in the century window (now - 50, now + 50]. */
static int rfc850_year(int yy, time_t now)
{
    struct tm ntm;
    int now_year = 2000;
    if (gmtime_r(&now, &ntm) != NULL)
        now_year = ntm.tm_year + 1900;
    int year = now_year - now_year % 100 + yy;
    if (year > now_year + 50)
        year -= 100;
    else if (year <= now_year - 50)
        year += 100;
    return year;
}

/* rfc850-date: "Sunday, 06-Nov-94 08:49:37 GMT" */
static bool parse_rfc850(struct cursor c, time_t now, struct tm *tm)
{
    int wday, yy;
    if (!(cur_name(&c, day_long, 7, &wday) && cur_lit(&c, ", ") &&
          cur_digits(&c, 2, &tm->tm_mday) && cur_lit(&c, "-") &&
          cur_name(&c, month_short, 12, &tm->tm_mon) && cur_lit(&c, "-") &&
          cur_digits(&c, 2, &yy) && cur_lit(&c, " ") &&
          cur_time(&c, tm) && cur_lit(&c, " GMT") && c.p == c.end))
        return false;
    tm->tm_year = rfc850_year(yy, now) - 1900;
    return true;
}

/* asctime-date: "Sun Nov  6 08:49:37 1994" (day is 2DIGIT or SP DIGIT) */
static bool parse_asctime(struct cursor c, struct tm *tm)
{
    int wday, year;
    if (!(cur_name(&c, day_short, 7, &wday) && cur_lit(&c, " ") &&
          cur_name(&c, month_short, 12, &tm->tm_mon) && cur_lit(&c, " ")))
        return false;
    if (!(cur_digits(&c, 2, &tm->tm_mday) ||
          (cur_lit(&c, " ") && cur_digits(&c, 1, &tm->tm_mday))))
        return false;
    if (!(cur_lit(&c, " ") && cur_time(&c, tm) && cur_lit(&c, " ") &&
          cur_digits(&c, 4, &year) && c.p == c.end))
        return false;
    tm->tm_year = year - 1900;
    return true;
}

static bool is_leap(int year)
{
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

/* Reject what timegm would silently normalise ("31 Feb", "25:00:00").
 * Second 60 is allowed: the grammar permits a leap second. */
static bool tm_fields_valid(const struct tm *tm)
{
    static const int mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int year = tm->tm_year + 1900;
    int dim = mdays[tm->tm_mon] + (tm->tm_mon == 1 && is_leap(year));
    return tm->tm_mday >= 1 && tm->tm_mday <= dim && tm->tm_hour <= 23 &&
           tm->tm_min <= 59 && tm->tm_sec <= 60;
}

/*
 * The day name is checked to be a day name but not cross-checked against the
 * date: RFC 9110 does not ask for it, and a wrong weekday still names one
 * unambiguous instant.
 */
int httpx_parse_date_at(const char *s, size_t len, time_t now, time_t *out)
{
    SL_ASSERT(out != NULL);
    if (s == NULL)
        return -1;
    trim_ows(&s, &len);
    struct cursor c = { s, s + len };
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (!parse_imf(c, &tm) && !parse_rfc850(c, now, &tm) && !parse_asctime(c, &tm))
        return -1;
    if (!tm_fields_valid(&tm))
        return -1;
    tm.tm_isdst = 0;
    *out = timegm(&tm);
    return 0;
}

int httpx_parse_date(const char *s, size_t len, time_t *out)
{
    return httpx_parse_date_at(s, len, time(NULL), out);
}

/* -------------------------------------------------------- Conditional GETs */

/* etagc = %x21 / %x23-7E / obs-text */
static bool is_etagc(unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c <= 0x7E) || c >= 0x80;
}

/*
 * entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE, read at *p. On success
 * [*tag, *tag + *tlen) is the opaque-tag (quotes included) and *p moves past
 * it. The W/ flag is dropped: If-None-Match uses the weak comparison.
 */
static bool parse_entity_tag(const char **p, const char *end, const char **tag, size_t *tlen)
{
    const char *s = *p;
    if (end - s >= 2 && s[0] == 'W' && s[1] == '/')
        s += 2;
    if (s >= end || *s != '"')
        return false;
    const char *q = s + 1;
    while (q < end && is_etagc((unsigned char)*q))
        q++;
    if (q >= end || *q != '"')
        return false;
    *tag = s;
    *tlen = (size_t)(q + 1 - s);
    *p = q + 1;
    return true;
}

bool httpx_if_range_matches(const char *value, size_t len, const char *etag, time_t last_modified)
{
    if (value == NULL)
        return false;
    trim_ows(&value, &len);
    if (len > 0 && (value[0] == '"' || value[0] == 'W')) {
        size_t elen = etag ? strlen(etag) : 0;
        return elen >= 2 && etag[0] == '"' && len == elen && memcmp(value, etag, len) == 0 &&
               httpx_etag_matches(value, len, etag);   /* both well formed, neither weak */
    }
    time_t t;
    return httpx_parse_date(value, len, &t) == 0 && t == last_modified;
}

bool httpx_etag_matches(const char *value, size_t len, const char *etag)
{
    if (value == NULL)
        return false;
    trim_ows(&value, &len);
    if (len == 1 && value[0] == '*')
        return true;

    /* Our own tag must be a well-formed entity-tag too. */
    if (etag == NULL)
        return false;
    const char *ours, *ep = etag, *eend = etag + strlen(etag);
    size_t ours_len;
    if (!parse_entity_tag(&ep, eend, &ours, &ours_len) || ep != eend)
        return false;

    /* #entity-tag: validate the whole list; a malformed one is ignored
     * entirely, which means "no match" and a full response. */
    const char *p = value, *end = value + len;
    bool matched = false;
    for (;;) {
        while (p < end && (is_ows(*p) || *p == ','))
            p++; /* OWS and empty list elements */
        if (p == end)
            break;
        const char *tag;
        size_t tlen;
        if (!parse_entity_tag(&p, end, &tag, &tlen))
            return false;
        if (tlen == ours_len && memcmp(tag, ours, tlen) == 0)
            matched = true;
        while (p < end && is_ows(*p))
            p++;
        if (p < end && *p != ',')
            return false;
    }
    return matched;
}

bool httpx_not_modified_since(const char *value, size_t len, time_t last_modified)
{
    time_t since;
    if (httpx_parse_date(value, len, &since) != 0)
        return false;
    return last_modified <= since;
}

/* ----------------------------------------------------------- Header hygiene */

bool httpx_header_value_ok(const char *value, size_t len, size_t max_len)
{
    if (len > max_len || (value == NULL && len > 0))
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)value[i];
        if ((c < 0x20 && c != '\t') || c == 0x7F)
            return false;
    }
    return true;
}

/* tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
 *         "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA */
static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

bool httpx_header_name_ok(const char *name, size_t len)
{
    if (name == NULL || len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!is_tchar((unsigned char)name[i]))
            return false;
    return true;
}

/* The next element of a comma-separated list, OWS trimmed: [*b, *e). */
static const char *list_next(const char *p, const char *end, const char **b, const char **e)
{
    const char *comma = memchr(p, ',', (size_t)(end - p));
    const char *stop = comma ? comma : end;
    while (p < stop && (*p == ' ' || *p == '\t'))
        p++;
    while (stop > p && (stop[-1] == ' ' || stop[-1] == '\t'))
        stop--;
    *b = p;
    *e = stop;
    return comma ? comma + 1 : end;
}

int64_t httpx_parse_digits(const char *v, size_t len)
{
    if (len == 0 || len > 18)
        return -1;
    int64_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        n = n * 10 + (v[i] - '0');
    }
    return n;
}

int64_t httpx_retry_after(const char *value, size_t len, time_t now)
{
    int64_t secs = httpx_parse_digits(value, len);
    time_t at;
    if (secs >= 0)
        return secs;
    if (httpx_parse_date_at(value, len, now, &at) != 0)
        return -1;
    return at > now ? (int64_t)(at - now) : 0;
}

int64_t httpx_content_length(const char *value, size_t len)
{
    const char *end = value + len;
    int64_t cl = HTTPX_CL_INVALID;
    const char *p = value;
    do {
        const char *b, *e;
        p = list_next(p, end, &b, &e);
        int64_t one = httpx_parse_digits(b, (size_t)(e - b));
        if (one < 0)
            return HTTPX_CL_INVALID;
        if (cl >= 0 && one != cl)
            return HTTPX_CL_CONFLICT;
        cl = one;
    } while (p < end);
    return cl;
}

bool httpx_list_has(const char *value, size_t len, const char *token, bool arg_ok)
{
    size_t n = strlen(token);
    const char *end = value + len;
    for (const char *p = value; p < end;) {
        const char *b, *e;
        p = list_next(p, end, &b, &e);
        if ((size_t)(e - b) < n || strncasecmp(b, token, n) != 0)
            continue;
        if (b + n == e || (arg_ok && b[n] == '='))
            return true;
    }
    return false;
}
