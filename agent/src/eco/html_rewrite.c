/*
 * html_rewrite.c - the streaming attribute rewriter and the character
 * reference helpers (see html_rewrite.h).
 *
 * Why hand-written rather than an HTML library: PEP 503 pages use a tiny,
 * fixed subset of HTML (a few tags, <a href=...> with data-* attributes),
 * and what the cache must give back is the origin's page byte for byte
 * except the rewritten link values. Parsers that build a tree and
 * serialise it again (libxml2's HTML parser, for one) normalise quotes,
 * case, entities, whitespace and broken markup on the way, so their output
 * is a different document. Finding attribute values needs only the
 * tokenizer's tag-level states: some 300 lines of one-state functions,
 * which the fuzzer (tests/fuzz/fuzz_html_rewrite.c) covers in full.
 *
 * The states follow the WHATWG HTML tokenizer where it matters for finding
 * start-tag attribute values: text; '<' + a letter starts a tag name;
 * attribute names, '=', values double-quoted, single-quoted or unquoted,
 * attributes without values, '/' and '>'; end tags (never rewritten);
 * comments "<!--" to "-->" (also "--!>", and the abrupt "<!-->" and
 * "<!--->"); "<!DOCTYPE ...>", "<?...>" and other bogus comments to '>';
 * the raw text of <script> and <style>, which ends only at "</script" or
 * "</style" followed by a blank, '/' or '>'. Blanks are space, tab, LF, FF
 * and CR. Left out as PEP 503 pages never need them: character references
 * in text, RCDATA elements, foreign content, CDATA sections.
 *
 * Where the HTML standard and Python's html.parser (what pip reads pages
 * with) differ, the reading that rewrites more is taken, since a rewritten
 * link that no client reads costs nothing while a missed one bypasses the
 * cache: so a self-closing <script/> does not start raw text (pip's parser
 * does not treat it as one either).
 *
 * Invariants: every input byte is emitted exactly once and in order,
 * except the value bytes of a matched attribute, which are replaced by
 * the callback's bytes or emitted as they came; the state after a byte
 * depends only on the bytes before it, so the output does not depend on
 * how the input is cut; at most HTML_RW_VALUE_MAX bytes are held.
 */
#include "eco/html_rewrite.h"

#include <string.h>

#define HTML_RW_MAGIC 0x48545257u   /* "HTRW" */

enum state {
    S_DATA,           /* text */
    S_TAG_OPEN,       /* after '<' */
    S_END_TAG_OPEN,   /* after "</" */
    S_TAG_NAME,
    S_BEFORE_ATTR,    /* blanks before an attribute name */
    S_ATTR_NAME,
    S_AFTER_ATTR,     /* blanks after an attribute name: '=' or the next name */
    S_BEFORE_VALUE,   /* after '=' */
    S_VALUE_DQ,
    S_VALUE_SQ,
    S_VALUE_UNQ,
    S_SELF_CLOSING,   /* after '/' in a tag */
    S_MARKUP,         /* after "<!" */
    S_MARKUP_DASH,    /* after "<!-" */
    S_COMMENT,        /* after "<!--" */
    S_COMMENT_BANG,   /* after "--!" in a comment */
    S_BOGUS,          /* "<!DOCTYPE", "<?", "</1"...: until '>' */
    S_RAW,            /* the text of <script> or <style> */
    S_RAW_LT,         /* after '<' in raw text */
    S_RAW_END,        /* after "</" in raw text, matching the element's name */
};

/* The tag names the tokenizer tells apart (bits of name_mask). */
enum { NAME_TAG, NAME_SCRIPT, NAME_STYLE, NAMES };

struct html_rw {
    unsigned magic;
    enum state state;
    char tag[HTML_RW_NAME_MAX + 1], attr[HTML_RW_NAME_MAX + 1];   /* lower case */
    const char *names[NAMES];   /* tag, "script", "style" */
    html_rw_attr_fn fn;
    void *fn_ctx;
    rw_emit_fn emit;
    void *emit_ctx;

    bool end_tag;         /* the tag being read is an end tag */
    unsigned name_mask;   /* names[] its name still matches */
    size_t name_len;
    bool tag_hit;         /* it is a start tag named `tag` */
    unsigned attr_mask;   /* 1 while the attribute name matches `attr` */
    size_t attr_len;

    unsigned dashes;      /* '-' just read in a comment */
    bool comment_fresh;   /* nothing but '-' read since "<!--" */
    const char *raw_end;  /* in raw text: the name of the end tag ending it */
    size_t raw_pos;       /* bytes of raw_end matched after "</" */

    bool holding;         /* in a matched value: its bytes go to `value` */
    struct sl_buf value, repl;
    const uint8_t *run;   /* during feed: first byte of the piece not emitted yet */
    const char *error;
};

static bool is_blank(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
}

static bool is_alpha(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static uint8_t lower(uint8_t c)
{
    return c >= 'A' && c <= 'Z' ? (uint8_t)(c - 'A' + 'a') : c;
}

/* ---------------------------------------------------------- name matching */

/* The names of `mask` still matched once byte c is at position pos. */
static unsigned match_step(unsigned mask, const char *const *names, size_t pos, uint8_t c)
{
    for (unsigned i = 0; mask >> i; i++)
        if (((mask >> i) & 1u) && (names[i][pos] == '\0' || (uint8_t)names[i][pos] != lower(c)))
            mask &= ~(1u << i);
    return mask;
}

/* The names of `mask` that are exactly len bytes long. */
static unsigned match_end(unsigned mask, const char *const *names, size_t len)
{
    for (unsigned i = 0; mask >> i; i++)
        if (((mask >> i) & 1u) && names[i][len] != '\0')
            mask &= ~(1u << i);
    return mask;
}

/* ------------------------------------------------------------- emission */

/* Emit the bytes of the current piece up to (not including) upto. */
static void flush(struct html_rw *rw, const uint8_t *upto)
{
    if (upto > rw->run)
        rw->emit(rw->emit_ctx, rw->run, (size_t)(upto - rw->run));
    rw->run = upto;
}

/* Hold p[0..n) of a matched value instead of emitting it. */
static void hold(struct html_rw *rw, const uint8_t *p, size_t n)
{
    if (rw->value.len + n > HTML_RW_VALUE_MAX) {
        rw->error = "an attribute value to rewrite is longer than 64 KiB";
        return;
    }
    sl_buf_append(&rw->value, p, n);
    rw->run = p + n;
}

/* The matched value ended: emit the callback's bytes or the original. */
static void release(struct html_rw *rw, char quote)
{
    const char *v = rw->value.data ? (const char *)rw->value.data : "";
    sl_buf_clear(&rw->repl);
    const struct sl_buf *out = rw->fn(rw->fn_ctx, v, rw->value.len, quote, &rw->repl) ? &rw->repl : &rw->value;
    if (out->len)
        rw->emit(rw->emit_ctx, out->data, out->len);
    sl_buf_clear(&rw->value);
    rw->holding = false;
}

/* -------------------------------------------------------------- states */

static void on_data(struct html_rw *rw, const uint8_t *p)
{
    if (*p == '<')
        rw->state = S_TAG_OPEN;
}

static void tag_name_byte(struct html_rw *rw, uint8_t c)
{
    rw->name_mask = match_step(rw->name_mask, rw->names, rw->name_len++, c);
}

static void start_tag_name(struct html_rw *rw, const uint8_t *p, bool end_tag)
{
    rw->end_tag = end_tag;
    rw->name_mask = (1u << NAMES) - 1;
    rw->name_len = 0;
    tag_name_byte(rw, *p);
    rw->state = S_TAG_NAME;
}

static void on_tag_open(struct html_rw *rw, const uint8_t *p)
{
    if (is_alpha(*p))
        start_tag_name(rw, p, false);
    else if (*p == '!')
        rw->state = S_MARKUP;
    else if (*p == '/')
        rw->state = S_END_TAG_OPEN;
    else if (*p == '?')
        rw->state = S_BOGUS;
    else {
        rw->state = S_DATA;   /* a '<' of text: read this byte as text */
        on_data(rw, p);
    }
}

static void on_end_tag_open(struct html_rw *rw, const uint8_t *p)
{
    if (is_alpha(*p))
        start_tag_name(rw, p, true);
    else
        rw->state = *p == '>' ? S_DATA : S_BOGUS;
}

static void tag_name_done(struct html_rw *rw)
{
    rw->name_mask = match_end(rw->name_mask, rw->names, rw->name_len);
    rw->tag_hit = !rw->end_tag && (rw->name_mask & 1u << NAME_TAG);
}

/* '>': back to text, or to the raw text of <script> and <style>. */
static void tag_end(struct html_rw *rw, bool self_closing)
{
    rw->state = S_DATA;
    rw->raw_end = NULL;
    if (rw->end_tag || self_closing)
        return;
    if (rw->name_mask & 1u << NAME_SCRIPT)
        rw->raw_end = rw->names[NAME_SCRIPT];
    else if (rw->name_mask & 1u << NAME_STYLE)
        rw->raw_end = rw->names[NAME_STYLE];
    if (rw->raw_end)
        rw->state = S_RAW;
}

static void on_tag_name(struct html_rw *rw, const uint8_t *p)
{
    if (is_blank(*p) || *p == '/' || *p == '>') {
        tag_name_done(rw);
        if (*p == '>')
            tag_end(rw, false);
        else
            rw->state = *p == '/' ? S_SELF_CLOSING : S_BEFORE_ATTR;
    } else
        tag_name_byte(rw, *p);
}

static void attr_name_byte(struct html_rw *rw, uint8_t c)
{
    const char *const attr[1] = { rw->attr };
    rw->attr_mask = match_step(rw->attr_mask, attr, rw->attr_len++, c);
}

static void start_attr(struct html_rw *rw, const uint8_t *p)
{
    rw->attr_mask = 1;
    rw->attr_len = 0;
    attr_name_byte(rw, *p);
    rw->state = S_ATTR_NAME;
}

static void on_before_attr(struct html_rw *rw, const uint8_t *p)
{
    if (*p == '/')
        rw->state = S_SELF_CLOSING;
    else if (*p == '>')
        tag_end(rw, false);
    else if (!is_blank(*p))
        start_attr(rw, p);   /* even '=': it starts a name */
}

static void on_attr_name(struct html_rw *rw, const uint8_t *p)
{
    if (is_blank(*p))
        rw->state = S_AFTER_ATTR;
    else if (*p == '/')
        rw->state = S_SELF_CLOSING;
    else if (*p == '>')
        tag_end(rw, false);
    else if (*p == '=')
        rw->state = S_BEFORE_VALUE;
    else
        attr_name_byte(rw, *p);
}

static void on_after_attr(struct html_rw *rw, const uint8_t *p)
{
    if (*p == '=')
        rw->state = S_BEFORE_VALUE;
    else
        on_before_attr(rw, p);
}

/* Is the value starting now one to rewrite? */
static bool value_hit(const struct html_rw *rw)
{
    const char *const attr[1] = { rw->attr };
    return rw->tag_hit && match_end(rw->attr_mask, attr, rw->attr_len);
}

static void on_before_value(struct html_rw *rw, const uint8_t *p)
{
    if (is_blank(*p))
        return;
    if (*p == '>') {
        tag_end(rw, false);
        return;
    }
    rw->holding = value_hit(rw);
    if (*p == '"' || *p == '\'') {
        rw->state = *p == '"' ? S_VALUE_DQ : S_VALUE_SQ;
        if (rw->holding)
            flush(rw, p + 1);   /* the opening quote is not the value's */
    } else {
        rw->state = S_VALUE_UNQ;
        if (rw->holding) {
            flush(rw, p);
            hold(rw, p, 1);
        }
    }
}

static void on_value_quoted(struct html_rw *rw, const uint8_t *p, char quote)
{
    if (*p == (uint8_t)quote) {
        if (rw->holding)
            release(rw, quote);
        rw->state = S_BEFORE_ATTR;   /* a name right after the quote starts too */
    } else if (rw->holding)
        hold(rw, p, 1);
}

static void on_value_unquoted(struct html_rw *rw, const uint8_t *p)
{
    if (!is_blank(*p) && *p != '>') {
        if (rw->holding)
            hold(rw, p, 1);
        return;
    }
    if (rw->holding)
        release(rw, 0);
    if (*p == '>')
        tag_end(rw, false);
    else
        rw->state = S_BEFORE_ATTR;
}

static void on_self_closing(struct html_rw *rw, const uint8_t *p)
{
    if (*p == '>')
        tag_end(rw, true);
    else {
        rw->state = S_BEFORE_ATTR;
        on_before_attr(rw, p);
    }
}

static void on_markup(struct html_rw *rw, const uint8_t *p, bool dash_seen)
{
    if (*p == '-' && !dash_seen) {
        rw->state = S_MARKUP_DASH;
    } else if (*p == '-') {
        rw->state = S_COMMENT;
        rw->dashes = 0;
        rw->comment_fresh = true;
    } else
        rw->state = *p == '>' ? S_DATA : S_BOGUS;
}

static void on_comment(struct html_rw *rw, const uint8_t *p)
{
    if (*p == '-') {
        rw->dashes++;
        return;
    }
    if (*p == '>' && (rw->dashes >= 2 || rw->comment_fresh))
        rw->state = S_DATA;
    else if (*p == '!' && rw->dashes >= 2)
        rw->state = S_COMMENT_BANG;
    rw->dashes = 0;
    rw->comment_fresh = false;
}

static void on_comment_bang(struct html_rw *rw, const uint8_t *p)
{
    rw->state = *p == '>' ? S_DATA : S_COMMENT;
    rw->dashes = *p == '-';
}

static void on_raw(struct html_rw *rw, const uint8_t *p)
{
    if (*p == '<')
        rw->state = S_RAW_LT;
}

static void on_raw_lt(struct html_rw *rw, const uint8_t *p)
{
    if (*p == '/') {
        rw->state = S_RAW_END;
        rw->raw_pos = 0;
    } else {
        rw->state = S_RAW;
        on_raw(rw, p);
    }
}

static void on_raw_end(struct html_rw *rw, const uint8_t *p)
{
    size_t n = strlen(rw->raw_end);
    if (rw->raw_pos < n && lower(*p) == (uint8_t)rw->raw_end[rw->raw_pos]) {
        rw->raw_pos++;
    } else if (rw->raw_pos == n && (is_blank(*p) || *p == '/' || *p == '>')) {
        rw->end_tag = true;   /* "</script": its end tag, read as any other */
        rw->name_mask = 0;
        rw->name_len = n;
        rw->state = S_TAG_NAME;
        on_tag_name(rw, p);
    } else {
        rw->state = S_RAW;
        on_raw(rw, p);
    }
}

static void step(struct html_rw *rw, const uint8_t *p)
{
    switch (rw->state) {
    case S_DATA: on_data(rw, p); break;
    case S_TAG_OPEN: on_tag_open(rw, p); break;
    case S_END_TAG_OPEN: on_end_tag_open(rw, p); break;
    case S_TAG_NAME: on_tag_name(rw, p); break;
    case S_BEFORE_ATTR: on_before_attr(rw, p); break;
    case S_ATTR_NAME: on_attr_name(rw, p); break;
    case S_AFTER_ATTR: on_after_attr(rw, p); break;
    case S_BEFORE_VALUE: on_before_value(rw, p); break;
    case S_VALUE_DQ: on_value_quoted(rw, p, '"'); break;
    case S_VALUE_SQ: on_value_quoted(rw, p, '\''); break;
    case S_VALUE_UNQ: on_value_unquoted(rw, p); break;
    case S_SELF_CLOSING: on_self_closing(rw, p); break;
    case S_MARKUP: on_markup(rw, p, false); break;
    case S_MARKUP_DASH: on_markup(rw, p, true); break;
    case S_COMMENT: on_comment(rw, p); break;
    case S_COMMENT_BANG: on_comment_bang(rw, p); break;
    case S_BOGUS: rw->state = *p == '>' ? S_DATA : S_BOGUS; break;
    case S_RAW: on_raw(rw, p); break;
    case S_RAW_LT: on_raw_lt(rw, p); break;
    case S_RAW_END: on_raw_end(rw, p); break;
    }
}

/* In states that only one byte value can leave, skip to it at once (the
 * bytes skipped stay in the run to emit, or are held). */
static const uint8_t *skip(struct html_rw *rw, const uint8_t *p, const uint8_t *end)
{
    int stop = rw->state == S_DATA || rw->state == S_RAW ? '<'
             : rw->state == S_VALUE_DQ                   ? '"'
             : rw->state == S_VALUE_SQ                   ? '\''
             : rw->state == S_BOGUS                      ? '>'
                                                         : -1;
    if (stop < 0)
        return p;
    const uint8_t *q = memchr(p, stop, (size_t)(end - p));
    if (!q)
        q = end;
    if (rw->holding)
        hold(rw, p, (size_t)(q - p));
    return q;
}

/* ------------------------------------------------------------------ API */

static void copy_lower(char *dst, const char *src)
{
    size_t n = strlen(src);
    SL_ASSERT(n > 0 && n <= HTML_RW_NAME_MAX);
    for (size_t i = 0; i <= n; i++)
        dst[i] = (char)lower((uint8_t)src[i]);
}

struct html_rw *html_rw_new(const char *tag, const char *attr, html_rw_attr_fn fn, void *fn_ctx, rw_emit_fn emit,
                            void *emit_ctx)
{
    SL_ASSERT(tag && attr && fn && emit);
    struct html_rw *rw = sl_calloc(1, sizeof(*rw));
    rw->magic = HTML_RW_MAGIC;
    copy_lower(rw->tag, tag);
    copy_lower(rw->attr, attr);
    rw->names[NAME_TAG] = rw->tag;
    rw->names[NAME_SCRIPT] = "script";
    rw->names[NAME_STYLE] = "style";
    rw->fn = fn;
    rw->fn_ctx = fn_ctx;
    rw->emit = emit;
    rw->emit_ctx = emit_ctx;
    rw->state = S_DATA;
    return rw;
}

int html_rw_feed(struct html_rw *rw, const uint8_t *data, size_t len)
{
    SL_CHECK_OBJ(rw, HTML_RW_MAGIC);
    if (rw->error)
        return -1;
    if (len == 0)
        return 0;
    const uint8_t *p = data, *end = data + len;
    rw->run = data;
    while (p < end && !rw->error) {
        p = skip(rw, p, end);
        if (p < end && !rw->error)
            step(rw, p++);
    }
    if (!rw->error)
        flush(rw, end);
    rw->run = NULL;
    return rw->error ? -1 : 0;
}

int html_rw_finish(struct html_rw *rw)
{
    SL_CHECK_OBJ(rw, HTML_RW_MAGIC);
    if (rw->error)
        return -1;
    if (rw->holding && rw->value.len)   /* cut off: no client reads it as a link */
        rw->emit(rw->emit_ctx, rw->value.data, rw->value.len);
    sl_buf_clear(&rw->value);
    rw->holding = false;
    rw->state = S_DATA;
    return 0;
}

const char *html_rw_error(const struct html_rw *rw)
{
    SL_CHECK_OBJ(rw, HTML_RW_MAGIC);
    return rw->error;
}

size_t html_rw_held(const struct html_rw *rw)
{
    SL_CHECK_OBJ(rw, HTML_RW_MAGIC);
    return rw->value.len;
}

void html_rw_free(struct html_rw *rw)
{
    if (!rw)
        return;
    SL_CHECK_OBJ(rw, HTML_RW_MAGIC);
    sl_buf_free(&rw->value);
    sl_buf_free(&rw->repl);
    rw->magic = 0;
    free(rw);
}

/* ------------------------------------------------- character references */

/* The named references decoded: what PyPI-style pages write in links. A
 * legacy name is also decoded without its ';' (as Python's html.unescape,
 * which pip applies to attribute values, does). */
static const struct named_ref {
    const char *name;
    char ch;
    bool legacy;
} named_refs[] = {
    { "amp", '&', true }, { "AMP", '&', true }, { "lt", '<', true },    { "LT", '<', true },
    { "gt", '>', true },  { "GT", '>', true },  { "quot", '"', true }, { "QUOT", '"', true },
    { "apos", '\'', false },
};

static void put_utf8(struct sl_buf *out, uint32_t cp)
{
    uint8_t b[4];
    size_t n;
    if (cp == 0 || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        cp = 0xfffd;
    if (cp < 0x80) {
        b[0] = (uint8_t)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (uint8_t)(0xc0 | cp >> 6);
        b[1] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (uint8_t)(0xe0 | cp >> 12);
        b[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
        b[2] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        b[0] = (uint8_t)(0xf0 | cp >> 18);
        b[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3f));
        b[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
        b[3] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 4;
    }
    sl_buf_append(out, b, n);
}

static int digit_value(char c, bool hex)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)lower((uint8_t)c);
    return hex && c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* A numeric reference at s[0..n) (s[0] == '#'): bytes used, 0 if none. */
static size_t numeric_ref(const char *s, size_t n, struct sl_buf *out)
{
    bool hex = n > 1 && (s[1] == 'x' || s[1] == 'X');
    size_t i = hex ? 2 : 1, first = i;
    uint32_t cp = 0;
    for (int d; i < n && (d = digit_value(s[i], hex)) >= 0; i++)
        cp = cp > 0x10ffff ? cp : cp * (hex ? 16 : 10) + (uint32_t)d;   /* past U+10FFFF: stays past */
    if (i == first)
        return 0;
    put_utf8(out, cp);
    return i < n && s[i] == ';' ? i + 1 : i;
}

/* A named reference at s[0..n): bytes used, 0 if none. */
static size_t named_ref(const char *s, size_t n, struct sl_buf *out)
{
    for (size_t k = 0; k < SL_ARRAY_LEN(named_refs); k++) {
        const struct named_ref *r = &named_refs[k];
        size_t len = strlen(r->name);
        if (n < len || memcmp(s, r->name, len) != 0)
            continue;
        bool semi = n > len && s[len] == ';';
        if (!semi && !r->legacy)
            return 0;
        sl_buf_append(out, &r->ch, 1);
        return len + semi;
    }
    return 0;
}

void html_unescape(const char *value, size_t len, struct sl_buf *out)
{
    size_t i = 0;
    while (i < len) {
        const char *amp = memchr(value + i, '&', len - i);
        size_t plain = amp ? (size_t)(amp - (value + i)) : len - i;
        sl_buf_append(out, value + i, plain);
        i += plain;
        if (i == len)
            break;
        const char *s = value + i + 1;
        size_t n = len - i - 1;
        size_t used = n && s[0] == '#' ? numeric_ref(s, n, out) : named_ref(s, n, out);
        if (used == 0)
            sl_buf_append(out, "&", 1);
        i += 1 + used;
    }
}

/* What c becomes in a value quoted with quote (0: unquoted); NULL: itself. */
static const char *attr_escape(char c, char quote)
{
    switch (c) {
    case '&': return "&amp;";
    case '<': return "&lt;";
    case '>': return "&gt;";
    case '"': return quote != '\'' ? "&quot;" : NULL;
    case '\'': return quote != '"' ? "&#39;" : NULL;
    }
    if (quote)
        return NULL;
    switch (c) {
    case '`': return "&#96;";
    case '=': return "&#61;";
    case ' ': return "&#32;";
    case '\t': return "&#9;";
    case '\n': return "&#10;";
    case '\f': return "&#12;";
    case '\r': return "&#13;";
    }
    return NULL;
}

void html_escape_attr(const char *value, size_t len, char quote, struct sl_buf *out)
{
    SL_ASSERT(quote == '"' || quote == '\'' || quote == 0);
    size_t from = 0;
    for (size_t i = 0; i < len; i++) {
        const char *e = attr_escape(value[i], quote);
        if (!e)
            continue;
        sl_buf_append(out, value + from, i - from);
        sl_buf_append_str(out, e);
        from = i + 1;
    }
    sl_buf_append(out, value + from, len - from);
}
