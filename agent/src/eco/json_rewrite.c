/*
 * json_rewrite.c - the streaming, byte-preserving JSON rewriter
 * (json_rewrite.h): yajl finds the tokens, this module keeps the bytes.
 *
 * Why a library: the documents come from origins, so every byte is
 * hostile until parsed, and JSON's corners (escapes, surrogates, UTF-8
 * validation, number syntax) are where hand-written parsers go wrong. It
 * must stream (npm packuments reach tens of MB) and be a Debian package, as
 * libev, libcurl and http-parser are. Why yajl (libyajl-dev): it is a
 * streaming parser with callbacks, builds no tree, takes input in pieces of
 * any size, validates strict JSON and UTF-8, and yajl_get_bytes_consumed(),
 * called inside a callback, says where in the current piece the token that
 * triggered it ends: enough to know the exact bytes of every token without
 * a second lexer.
 *
 * How: every piece is appended to `in`, which holds the input from
 * `in_off` (absolute offset) that is not emitted yet. yajl parses the part
 * it has not seen. Each callback ends an "event" (a key, a value, the
 * start or end of an object or array); `event_end` is where the last one's
 * token ended. Between two events lie only whitespace, ':' and ',', so a
 * string value's token starts at the first '"' after the previous event's
 * end. A string at a matching path is rewritten there and then: the bytes
 * before its quote are emitted, then the encoded replacement, and
 * `emitted` jumps past the token. After each parse everything up to
 * `event_end` is emitted and dropped from `in`, which keeps only the
 * token yajl is in the middle of (and the space before it).
 *
 * Invariants: in_off <= emitted <= event_end <= parsed <= in_off + in.len
 * (absolute offsets; between calls in_off == emitted == event_end); the
 * path stack holds one frame per open object or array, each with the set
 * of patterns (a bit each) that still match the path to it and to its
 * current member. yajl re-reads a token that spans pieces from its start
 * on every piece, so once the partial token is past RESCAN_MAX, a piece is
 * parsed only when the unparsed input is at least as long: a long token
 * costs linear time, and `in` holds at most about twice the token plus one
 * piece.
 */
#include <stdarg.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "eco/json_rewrite.h"

#define JSON_RW_MAGIC 0x4a535257u   /* "JSRW" */
#define RESCAN_MAX 4096             /* partial token yajl may re-read on any feed */

enum step_kind { STEP_KEY, STEP_ANY, STEP_ELEM };

struct step {
    enum step_kind kind;
    char *key;                 /* STEP_KEY only */
};

struct pattern {
    struct step *steps;
    size_t n;
};

struct frame {
    uint64_t here;             /* patterns matching the path to this container */
    uint64_t child;            /* ... and to its current member (or elements) */
    uint64_t serial;           /* which container this is (json_rw_container) */
};

enum rw_state { RW_OK, RW_FAILED, RW_DONE };

struct json_rw {
    unsigned magic;
    enum rw_state state;
    yajl_handle yajl;
    struct pattern pats[JSON_RW_PATHS_MAX];
    size_t n_pats;
    json_rw_string_fn fn;
    void *fn_ctx;
    rw_emit_fn emit;
    void *emit_ctx;
    struct sl_buf in;          /* input from in_off not emitted yet */
    uint64_t in_off, emitted, event_end, parsed;
    uint64_t base;             /* absolute offset of the piece yajl is parsing */
    struct frame *frames;
    size_t depth, frames_cap;
    uint64_t containers;       /* containers opened so far */
    size_t matched;            /* the pattern of the value fn is called for */
    struct sl_buf out, enc;    /* fn's replacement and its JSON encoding */
    char err[192];
};

/* ------------------------------------------------------------- patterns */

static void pattern_free(struct pattern *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->steps[i].key);
    free(p->steps);
    p->steps = NULL;
    p->n = 0;
}

/* One '.'-separated segment: a key, "*" or nothing, then any "[]"s. */
static bool parse_segment(struct pattern *p, const char *s, size_t len)
{
    size_t name = strcspn(s, "[]");
    name = SL_MIN(name, len);
    if (len == 0 || (len - name) % 2 != 0)
        return false;
    if (name == 1 && s[0] == '*')
        p->steps[p->n++] = (struct step){ .kind = STEP_ANY };
    else if (name > 0)
        p->steps[p->n++] = (struct step){ .kind = STEP_KEY, .key = sl_strndup(s, name) };
    for (size_t i = name; i < len; i += 2) {
        if (s[i] != '[' || s[i + 1] != ']')
            return false;
        p->steps[p->n++] = (struct step){ .kind = STEP_ELEM };
    }
    return true;
}

static bool parse_pattern(struct pattern *p, const char *s)
{
    size_t len = strlen(s);
    p->steps = sl_calloc(len + 1, sizeof(*p->steps));
    p->n = 0;
    if (len == 0)
        return true;   /* the root value */
    for (;;) {
        size_t seg = strcspn(s, ".");
        if (!parse_segment(p, s, seg))
            return false;
        if (s[seg] == '\0')
            return true;
        s += seg + 1;
    }
}

/* The patterns of `m` whose step `d` matches key (or, key NULL, an array
 * element). */
static uint64_t step_mask(const struct json_rw *rw, uint64_t m, size_t d, const char *key,
                          size_t key_len)
{
    uint64_t r = 0;
    for (size_t i = 0; i < rw->n_pats && (m >> i) != 0; i++) {
        if (!((m >> i) & 1) || rw->pats[i].n <= d)
            continue;
        const struct step *s = &rw->pats[i].steps[d];
        bool hit = key ? s->kind == STEP_ANY || (s->kind == STEP_KEY && sl_bytes_eq(key, key_len, s->key))
                       : s->kind == STEP_ELEM;
        if (hit)
            r |= (uint64_t)1 << i;
    }
    return r;
}

/* The patterns that match the path to the value being parsed so far. */
static uint64_t value_mask(const struct json_rw *rw)
{
    if (rw->depth == 0)
        return rw->n_pats == 64 ? ~(uint64_t)0 : ((uint64_t)1 << rw->n_pats) - 1;
    return rw->frames[rw->depth - 1].child;
}

/* Does a pattern end exactly at the value being parsed? Which one (the
 * first) goes in rw->matched. */
static bool value_matches(struct json_rw *rw)
{
    uint64_t m = value_mask(rw);
    for (size_t i = 0; i < rw->n_pats && (m >> i) != 0; i++)
        if (((m >> i) & 1) && rw->pats[i].n == rw->depth) {
            rw->matched = i;
            return true;
        }
    return false;
}

/* --------------------------------------------------------------- errors */

static int fail(struct json_rw *rw, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct json_rw *rw, const char *fmt, ...)
{
    if (rw->state == RW_FAILED)
        return -1;   /* keep the first error */
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(rw->err, sizeof(rw->err), "json: ");
    vsnprintf(rw->err + n, sizeof(rw->err) - (size_t)n, fmt, ap);
    va_end(ap);
    rw->state = RW_FAILED;
    return -1;
}

static uint64_t total_in(const struct json_rw *rw)
{
    return rw->in_off + rw->in.len;
}

/* Where yajl is: the end of the token it just read, or its error. While
 * finishing it parses one virtual ' ' past the input: clamped. */
static uint64_t yajl_at(const struct json_rw *rw)
{
    return SL_MIN(rw->base + yajl_get_bytes_consumed(rw->yajl), total_in(rw));
}

static int fail_yajl(struct json_rw *rw)
{
    if (rw->state == RW_FAILED)
        return -1;   /* a callback stopped the parse and said why */
    unsigned char *msg = yajl_get_error(rw->yajl, 0, NULL, 0);
    const char *text = msg ? (const char *)msg : "parse error";
    int len = (int)strcspn(text, "\n");
    while (len > 0 && (text[len - 1] == '.' || text[len - 1] == ' '))
        len--;
    fail(rw, "%.*s, at byte %llu", len, text, (unsigned long long)yajl_at(rw));
    if (msg)
        yajl_free_error(rw->yajl, msg);
    return -1;
}

static int fail_token_size(struct json_rw *rw, uint64_t at)
{
    return fail(rw, "a token and the space before it exceed %zu bytes, at byte %llu",
                JSON_RW_TOKEN_MAX, (unsigned long long)at);
}

/* ------------------------------------------------------------- emitting */

/* Emit the input bytes [from, to) (absolute offsets, inside `in`). */
static void emit_range(struct json_rw *rw, uint64_t from, uint64_t to)
{
    SL_ASSERT(from >= rw->in_off && to <= total_in(rw));
    if (to > from)
        rw->emit(rw->emit_ctx, rw->in.data + (from - rw->in_off), (size_t)(to - from));
}

/* Emit what is known up to the last event and forget it. */
static void flush(struct json_rw *rw)
{
    emit_range(rw, rw->emitted, rw->event_end);
    rw->emitted = rw->event_end;
    size_t drop = (size_t)(rw->event_end - rw->in_off);
    if (drop == 0)
        return;
    memmove(rw->in.data, rw->in.data + drop, rw->in.len - drop);
    rw->in.len -= drop;
    rw->in.data[rw->in.len] = '\0';
    rw->in_off = rw->event_end;
}

static void append_escape(struct sl_buf *b, uint8_t c)
{
    static const char hex[] = "0123456789abcdef";
    char e[6] = { '\\', (char)c };
    size_t n = 2;
    switch (c) {
    case '"': case '\\': break;
    case '\b': e[1] = 'b'; break;
    case '\f': e[1] = 'f'; break;
    case '\n': e[1] = 'n'; break;
    case '\r': e[1] = 'r'; break;
    case '\t': e[1] = 't'; break;
    default:
        memcpy(e + 1, "u00", 3);
        e[4] = hex[c >> 4];
        e[5] = hex[c & 15];
        n = 6;
    }
    sl_buf_append(b, e, n);
}

/* A JSON string token for s: '"', '\' and controls escaped, the rest as is. */
static void json_encode(struct sl_buf *b, const uint8_t *s, size_t n)
{
    sl_buf_clear(b);
    sl_buf_append(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] >= 0x20 && s[i] != '"' && s[i] != '\\')
            continue;
        sl_buf_append(b, s + run, i - run);
        append_escape(b, s[i]);
        run = i + 1;
    }
    sl_buf_append(b, s + run, n - run);
    sl_buf_append(b, "\"", 1);
}

/* The string token that ended at `end`, after the event that ended at
 * `from`: ask fn, and if it answers, emit up to the token's opening quote,
 * then the replacement in its place. */
static void rewrite(struct json_rw *rw, uint64_t from, uint64_t end, const unsigned char *s,
                    size_t len)
{
    sl_buf_clear(&rw->out);
    if (!rw->fn(rw->fn_ctx, (const char *)s, len, &rw->out))
        return;
    const uint8_t *at = rw->in.data + (from - rw->in_off);
    const uint8_t *quote = memchr(at, '"', (size_t)(end - from));
    SL_ASSERT(quote != NULL && rw->in.data[end - 1 - rw->in_off] == '"');
    emit_range(rw, rw->emitted, from + (uint64_t)(quote - at));
    json_encode(&rw->enc, rw->out.data, rw->out.len);
    rw->emit(rw->emit_ctx, rw->enc.data, rw->enc.len);
    rw->emitted = end;
}

/* ---------------------------------------------------- parser callbacks */

static struct json_rw *rw_of(void *ctx)
{
    struct json_rw *rw = ctx;
    SL_CHECK_OBJ(rw, JSON_RW_MAGIC);
    return rw;
}

/* A token ended where yajl is: the new event end, unless the token (with
 * the space before it) is too long. */
static bool event(struct json_rw *rw)
{
    uint64_t end = yajl_at(rw);
    if (end - rw->event_end > JSON_RW_TOKEN_MAX) {
        fail_token_size(rw, end);
        return false;
    }
    rw->event_end = end;
    return true;
}

static int on_scalar(void *ctx)
{
    return event(rw_of(ctx));
}

static int on_boolean(void *ctx, int value)
{
    SL_UNUSED(value);
    return on_scalar(ctx);
}

static int on_number(void *ctx, const char *text, size_t len)
{
    SL_UNUSED(text);
    SL_UNUSED(len);
    return on_scalar(ctx);
}

static int on_string(void *ctx, const unsigned char *s, size_t len)
{
    struct json_rw *rw = rw_of(ctx);
    uint64_t from = rw->event_end;
    if (!event(rw))
        return 0;
    if (rw->fn && value_matches(rw))
        rewrite(rw, from, rw->event_end, s, len);
    return 1;
}

static int push(struct json_rw *rw, bool array)
{
    if (!event(rw))
        return 0;
    if (rw->depth == JSON_RW_DEPTH_MAX) {
        fail(rw, "nesting deeper than %d, at byte %llu", JSON_RW_DEPTH_MAX,
             (unsigned long long)rw->event_end);
        return 0;
    }
    if (rw->depth == rw->frames_cap) {
        rw->frames_cap = rw->frames_cap ? rw->frames_cap * 2 : 16;
        rw->frames = sl_realloc(rw->frames, rw->frames_cap * sizeof(*rw->frames));
    }
    uint64_t here = value_mask(rw);
    rw->frames[rw->depth] = (struct frame){
        .here = here,
        .child = array && here ? step_mask(rw, here, rw->depth, NULL, 0) : 0,
        .serial = ++rw->containers,
    };
    rw->depth++;
    return 1;
}

static int on_start_map(void *ctx)
{
    return push(rw_of(ctx), false);
}

static int on_start_array(void *ctx)
{
    return push(rw_of(ctx), true);
}

static int on_map_key(void *ctx, const unsigned char *key, size_t len)
{
    struct json_rw *rw = rw_of(ctx);
    if (!event(rw))
        return 0;
    SL_ASSERT(rw->depth > 0);
    struct frame *f = &rw->frames[rw->depth - 1];
    f->child = f->here ? step_mask(rw, f->here, rw->depth - 1, (const char *)key, len) : 0;
    return 1;
}

static int on_end(void *ctx)
{
    struct json_rw *rw = rw_of(ctx);
    if (!event(rw))
        return 0;
    SL_ASSERT(rw->depth > 0);
    rw->depth--;
    return 1;
}

static const yajl_callbacks callbacks = {
    .yajl_null = on_scalar,
    .yajl_boolean = on_boolean,
    .yajl_number = on_number,   /* raw text: no integer or double overflow */
    .yajl_string = on_string,
    .yajl_start_map = on_start_map,
    .yajl_map_key = on_map_key,
    .yajl_end_map = on_end,
    .yajl_start_array = on_start_array,
    .yajl_end_array = on_end,
};

/* ------------------------------------------------------------------ API */

struct json_rw *json_rw_new(const char *const *paths, size_t n_paths, json_rw_string_fn fn,
                            void *fn_ctx, rw_emit_fn emit, void *emit_ctx)
{
    SL_ASSERT(emit != NULL && (paths != NULL || n_paths == 0));
    if (n_paths > JSON_RW_PATHS_MAX)
        return NULL;
    struct json_rw *rw = sl_calloc(1, sizeof(*rw));
    rw->magic = JSON_RW_MAGIC;
    rw->fn = fn;
    rw->fn_ctx = fn_ctx;
    rw->emit = emit;
    rw->emit_ctx = emit_ctx;
    for (; rw->n_pats < n_paths; rw->n_pats++) {
        if (!parse_pattern(&rw->pats[rw->n_pats], paths[rw->n_pats])) {
            rw->n_pats++;
            json_rw_free(rw);
            return NULL;
        }
    }
    rw->yajl = yajl_alloc(&callbacks, NULL, rw);   /* strict JSON: no options */
    SL_ASSERT(rw->yajl != NULL);
    return rw;
}

/* Give yajl the input it has not seen, then emit what is settled. */
static int parse_pending(struct json_rw *rw)
{
    size_t at = (size_t)(rw->parsed - rw->in_off), n = rw->in.len - at;
    rw->base = rw->parsed;
    if (yajl_parse(rw->yajl, rw->in.data + at, n) != yajl_status_ok)
        return fail_yajl(rw);
    rw->parsed += n;
    if (rw->parsed - rw->event_end > JSON_RW_TOKEN_MAX)
        return fail_token_size(rw, rw->parsed);
    flush(rw);
    return 0;
}

int json_rw_feed(struct json_rw *rw, const uint8_t *data, size_t len)
{
    SL_CHECK_OBJ(rw, JSON_RW_MAGIC);
    if (rw->state == RW_DONE)
        return fail(rw, "input after the end of the document");
    if (rw->state != RW_OK)
        return -1;
    if (len == 0)
        return 0;
    sl_buf_append(&rw->in, data, len);
    /* yajl re-reads a partial token from its start: past a few KiB, wait
     * until the new input is at least as long, so that a long token costs
     * linear time (a short one is parsed, and emitted, at once) */
    uint64_t partial = rw->parsed - rw->event_end;
    if (partial > RESCAN_MAX && total_in(rw) - rw->parsed < partial)
        return 0;
    return parse_pending(rw);
}

int json_rw_finish(struct json_rw *rw)
{
    SL_CHECK_OBJ(rw, JSON_RW_MAGIC);
    if (rw->state != RW_OK)
        return rw->state == RW_DONE ? 0 : -1;
    if (rw->parsed < total_in(rw) && parse_pending(rw) != 0)
        return -1;
    rw->base = rw->parsed;
    if (yajl_complete_parse(rw->yajl) != yajl_status_ok)
        return fail_yajl(rw);
    if (total_in(rw) - rw->event_end > JSON_RW_TOKEN_MAX)
        return fail_token_size(rw, total_in(rw));
    rw->event_end = total_in(rw);   /* the trailing whitespace */
    flush(rw);
    rw->state = RW_DONE;
    return 0;
}

const char *json_rw_error(const struct json_rw *rw)
{
    SL_CHECK_OBJ(rw, JSON_RW_MAGIC);
    return rw->err;
}

size_t json_rw_held(const struct json_rw *rw)
{
    SL_CHECK_OBJ(rw, JSON_RW_MAGIC);
    return rw->in.len;
}

void json_rw_free(struct json_rw *rw)
{
    if (!rw)
        return;
    SL_CHECK_OBJ(rw, JSON_RW_MAGIC);
    if (rw->yajl)
        yajl_free(rw->yajl);
    for (size_t i = 0; i < rw->n_pats; i++)
        pattern_free(&rw->pats[i]);
    free(rw->frames);
    sl_buf_free(&rw->in);
    sl_buf_free(&rw->out);
    sl_buf_free(&rw->enc);
    rw->magic = 0;
    free(rw);
}

size_t json_rw_matched(const struct json_rw *rw)
{
    SL_CHECK_OBJ(rw, JSON_RW_MAGIC);
    return rw->matched;
}

uint64_t json_rw_container(const struct json_rw *rw, size_t up)
{
    SL_CHECK_OBJ(rw, JSON_RW_MAGIC);
    return up < rw->depth ? rw->frames[rw->depth - 1 - up].serial : 0;
}
