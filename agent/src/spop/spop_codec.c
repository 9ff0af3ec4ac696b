/*
 * spop_codec.c - SPOP v2.0 wire codec (see spop_codec.h).
 *
 * Invariants:
 *  - A reader never moves past its end; every length that comes from the
 *    peer is compared with the bytes left before it is used, and a getter
 *    that fails leaves the reader where it was.
 *  - A writer never writes past cap; once something does not fit, the
 *    writer stays failed and every later put is a no-op.
 *  - Nothing here allocates, logs or asserts on peer input. SL_ASSERT only
 *    guards against misuse by our own callers.
 */
#include "spop/spop_codec.h"

#include <string.h>

#include "core/common.h"

/* ------------------------------------------------------------- helpers */

/* Two's-complement reinterpretation without implementation-defined casts. */
static int64_t u64_to_i64(uint64_t v)
{
    if (v <= (uint64_t)INT64_MAX)
        return (int64_t)v;
    return -(int64_t)(UINT64_MAX - v) - 1;
}

static uint64_t i64_to_u64(int64_t v)
{
    return (uint64_t)v;   /* well defined: reduction modulo 2^64 */
}

static bool key_is(const char *key, size_t key_len, const char *name)
{
    size_t n = strlen(name);
    return key_len == n && memcmp(key, name, n) == 0;
}

/* The integer held by any of the four integer types, when it is >= 0. */
static bool data_as_unsigned(const struct spop_data *d, uint64_t *v)
{
    switch (d->type) {
    case SPOP_DATA_INT32:
        if (d->u.int32 < 0)
            return false;
        *v = (uint64_t)d->u.int32;
        return true;
    case SPOP_DATA_UINT32:
        *v = d->u.uint32;
        return true;
    case SPOP_DATA_INT64:
        if (d->u.int64 < 0)
            return false;
        *v = (uint64_t)d->u.int64;
        return true;
    case SPOP_DATA_UINT64:
        *v = d->u.uint64;
        return true;
    default:
        return false;
    }
}

const char *spop_status_text(uint32_t status)
{
    static const char *const texts[] = {
        [SPOP_STATUS_NORMAL] = "normal",
        [SPOP_STATUS_IO] = "I/O error",
        [SPOP_STATUS_TIMEOUT] = "timeout",
        [SPOP_STATUS_TOO_BIG] = "frame too big",
        [SPOP_STATUS_INVALID] = "invalid frame",
        [SPOP_STATUS_NO_VERSION] = "version not found",
        [SPOP_STATUS_NO_FRAME_SIZE] = "max-frame-size not found",
        [SPOP_STATUS_NO_CAPABILITY] = "capabilities not found",
        [SPOP_STATUS_BAD_VERSION] = "unsupported version",
        [SPOP_STATUS_BAD_FRAME_SIZE] = "max-frame-size too big or too small",
        [SPOP_STATUS_FRAG_UNSUPPORTED] = "fragmentation not supported",
        [SPOP_STATUS_INTERLACED] = "invalid interlaced frames",
        [SPOP_STATUS_FRAME_ID_NOT_FOUND] = "frame-id not found",
        [SPOP_STATUS_RESOURCE] = "resource allocation error",
    };
    if (status < SL_ARRAY_LEN(texts) && texts[status])
        return texts[status];
    return "unknown error";
}

/* ------------------------------------------------------------- varints */

size_t spop_varint_encode(uint64_t v, uint8_t *out)
{
    if (v < 240) {
        out[0] = (uint8_t)v;
        return 1;
    }
    size_t n = 0;
    /* First byte: low 4 bits of v under a 0xF0 marker; the "- 240" makes
     * the decoder's plain addition of whole bytes come out right. */
    out[n++] = (uint8_t)(v | 0xF0);
    v = (v - 240) >> 4;
    while (v >= 128) {
        out[n++] = (uint8_t)(v | 0x80);
        v = (v - 128) >> 7;
    }
    out[n++] = (uint8_t)v;
    SL_ASSERT(n <= SPOP_VARINT_MAX_LEN);
    return n;
}

size_t spop_varint_decode(const uint8_t *buf, size_t len, uint64_t *v)
{
    if (len == 0)
        return 0;
    uint64_t value = buf[0];
    if (value < 240) {
        *v = value;
        return 1;
    }
    unsigned shift = 4;
    for (size_t i = 1; i < SPOP_VARINT_MAX_LEN && i < len; i++) {
        uint64_t b = buf[i];
        value += b << shift;   /* the whole byte, continuation bit included */
        if (b < 128) {
            *v = value;
            return i + 1;
        }
        shift += 7;
    }
    return 0;   /* truncated, or no terminating byte within 10 bytes */
}

/* ------------------------------------------------------------- reading */

void spop_reader_init(struct spop_reader *r, const uint8_t *buf, size_t len)
{
    SL_ASSERT(buf != NULL || len == 0);
    r->p = buf;
    r->end = buf ? buf + len : buf;
}

size_t spop_reader_left(const struct spop_reader *r)
{
    return (size_t)(r->end - r->p);
}

bool spop_get_u8(struct spop_reader *r, uint8_t *v)
{
    if (spop_reader_left(r) < 1)
        return false;
    *v = *r->p++;
    return true;
}

static bool get_bytes(struct spop_reader *r, size_t n, const uint8_t **p)
{
    if (spop_reader_left(r) < n)
        return false;
    *p = r->p;
    r->p += n;
    return true;
}

bool spop_get_varint(struct spop_reader *r, uint64_t *v)
{
    size_t n = spop_varint_decode(r->p, spop_reader_left(r), v);
    if (n == 0)
        return false;
    r->p += n;
    return true;
}

/* Varint length + that many bytes. */
static bool get_counted(struct spop_reader *r, const char **s, size_t *len)
{
    struct spop_reader save = *r;
    uint64_t n;
    const uint8_t *p;
    if (!spop_get_varint(r, &n) || n > spop_reader_left(r) || !get_bytes(r, (size_t)n, &p)) {
        *r = save;
        return false;
    }
    *s = (const char *)p;
    *len = (size_t)n;
    return true;
}

bool spop_get_raw_string(struct spop_reader *r, const char **s, size_t *len)
{
    return get_counted(r, s, len);
}

/* The data after the header byte, for each type. */
static bool get_data_body(struct spop_reader *r, uint8_t hdr, struct spop_data *d)
{
    uint64_t v;
    const uint8_t *p;
    unsigned type = hdr & SPOP_DATA_TYPE_MASK;
    if (type > SPOP_DATA_BINARY)
        return false;   /* types 10..15 are reserved */
    d->type = (enum spop_data_type)type;
    switch (d->type) {
    case SPOP_DATA_NULL:
        return true;
    case SPOP_DATA_BOOL:
        /* HAProxy only counts the exact flag nibble 0x10 as true. */
        d->u.boolean = (hdr & 0xF0) == SPOP_DATA_FLAG_TRUE;
        return true;
    case SPOP_DATA_INT32: {
        if (!spop_get_varint(r, &v))
            return false;
        int64_t s = u64_to_i64(v);
        if (s < INT32_MIN || s > INT32_MAX)
            return false;
        d->u.int32 = (int32_t)s;
        return true;
    }
    case SPOP_DATA_UINT32:
        if (!spop_get_varint(r, &v) || v > UINT32_MAX)
            return false;
        d->u.uint32 = (uint32_t)v;
        return true;
    case SPOP_DATA_INT64:
        if (!spop_get_varint(r, &v))
            return false;
        d->u.int64 = u64_to_i64(v);
        return true;
    case SPOP_DATA_UINT64:
        if (!spop_get_varint(r, &v))
            return false;
        d->u.uint64 = v;
        return true;
    case SPOP_DATA_IPV4:
        if (!get_bytes(r, 4, &p))
            return false;
        memcpy(d->u.ipv4, p, 4);
        return true;
    case SPOP_DATA_IPV6:
        if (!get_bytes(r, 16, &p))
            return false;
        memcpy(d->u.ipv6, p, 16);
        return true;
    case SPOP_DATA_STRING:
    case SPOP_DATA_BINARY:
        return get_counted(r, &d->u.str.ptr, &d->u.str.len);
    }
    return false;
}

bool spop_get_data(struct spop_reader *r, struct spop_data *d)
{
    struct spop_reader save = *r;
    uint8_t hdr;
    if (!spop_get_u8(r, &hdr) || !get_data_body(r, hdr, d)) {
        *r = save;
        return false;
    }
    return true;
}

/* ------------------------------------------------------------- frames */

static uint32_t read_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void write_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

bool spop_frame_peek_length(const uint8_t *buf, size_t avail, uint32_t *len)
{
    if (avail < SPOP_FRAME_LEN_SIZE)
        return false;
    *len = read_be32(buf);
    return true;
}

bool spop_frame_parse(const uint8_t *frame, size_t len, struct spop_frame *f)
{
    struct spop_reader r;
    const uint8_t *flags;
    spop_reader_init(&r, frame, len);
    if (!spop_get_u8(&r, &f->type) || !get_bytes(&r, 4, &flags) ||
        !spop_get_varint(&r, &f->stream_id) || !spop_get_varint(&r, &f->frame_id))
        return false;
    f->flags = read_be32(flags);
    f->payload = r.p;
    f->payload_len = spop_reader_left(&r);
    return true;
}

enum spop_decode_result spop_frame_decode(const uint8_t *buf, size_t avail,
                                          size_t max_frame, struct spop_frame *f,
                                          size_t *wire_len)
{
    uint32_t len;
    if (!spop_frame_peek_length(buf, avail, &len))
        return SPOP_DECODE_NEED_MORE;
    if (len > max_frame)
        return SPOP_DECODE_TOO_BIG;
    if (len < SPOP_FRAME_HDR_MIN)
        return SPOP_DECODE_INVALID;
    if (avail - SPOP_FRAME_LEN_SIZE < len)
        return SPOP_DECODE_NEED_MORE;
    if (!spop_frame_parse(buf + SPOP_FRAME_LEN_SIZE, len, f))
        return SPOP_DECODE_INVALID;
    *wire_len = SPOP_FRAME_LEN_SIZE + (size_t)len;
    return SPOP_DECODE_OK;
}

/* ------------------------------------------------------------- KV-lists */

void spop_kv_iter_init(struct spop_kv_iter *it, const uint8_t *payload, size_t len)
{
    spop_reader_init(&it->r, payload, len);
    it->failed = false;
}

int spop_kv_next(struct spop_kv_iter *it, struct spop_kv *kv)
{
    if (it->failed)
        return -1;
    if (spop_reader_left(&it->r) == 0)
        return 0;
    if (!spop_get_raw_string(&it->r, &kv->key, &kv->key_len) ||
        !spop_get_data(&it->r, &kv->value)) {
        it->failed = true;
        return -1;
    }
    return 1;
}

/* ------------------------------------------------------------ messages */

void spop_msg_iter_init(struct spop_msg_iter *it, const uint8_t *payload, size_t len)
{
    spop_reader_init(&it->r, payload, len);
    it->failed = false;
}

static bool get_arg(struct spop_reader *r, struct spop_arg *arg)
{
    struct spop_reader save = *r;
    if (!spop_get_raw_string(r, &arg->name, &arg->name_len) || !spop_get_data(r, &arg->value)) {
        *r = save;
        return false;
    }
    return true;
}

int spop_msg_next(struct spop_msg_iter *it, struct spop_message *msg)
{
    if (it->failed)
        return -1;
    if (spop_reader_left(&it->r) == 0)
        return 0;
    uint8_t nb;
    const uint8_t *args_start;
    if (!spop_get_raw_string(&it->r, &msg->name, &msg->name_len) || !spop_get_u8(&it->r, &nb))
        goto malformed;
    /* Walk the arguments now so the message's extent is known and a
     * malformed argument is reported before the caller sees the message. */
    args_start = it->r.p;
    for (unsigned i = 0; i < nb; i++) {
        struct spop_arg arg;
        if (!get_arg(&it->r, &arg))
            goto malformed;
    }
    msg->nb_args = nb;
    spop_reader_init(&msg->args, args_start, (size_t)(it->r.p - args_start));
    return 1;

malformed:
    it->failed = true;
    return -1;
}

int spop_arg_next(struct spop_message *msg, struct spop_arg *arg)
{
    if (msg->nb_args == 0)
        return 0;
    if (!get_arg(&msg->args, arg)) {
        msg->nb_args = 0;
        return -1;
    }
    msg->nb_args--;
    return 1;
}

/* ------------------------------------------------------------- actions */

void spop_action_iter_init(struct spop_action_iter *it, const uint8_t *payload, size_t len)
{
    spop_reader_init(&it->r, payload, len);
    it->failed = false;
}

static bool get_action(struct spop_reader *r, struct spop_action *act)
{
    uint8_t nb;
    if (!spop_get_u8(r, &act->type) || !spop_get_u8(r, &nb))
        return false;
    if (act->type == SPOP_ACTION_SET_VAR && nb == 3)
        return spop_get_u8(r, &act->scope) &&
               spop_get_raw_string(r, &act->name, &act->name_len) &&
               spop_get_data(r, &act->value);
    if (act->type == SPOP_ACTION_UNSET_VAR && nb == 2) {
        act->value = spop_data_null();
        return spop_get_u8(r, &act->scope) && spop_get_raw_string(r, &act->name, &act->name_len);
    }
    return false;
}

int spop_action_next(struct spop_action_iter *it, struct spop_action *act)
{
    if (it->failed)
        return -1;
    if (spop_reader_left(&it->r) == 0)
        return 0;
    if (!get_action(&it->r, act)) {
        it->failed = true;
        return -1;
    }
    return 1;
}

/* --------------------------------------------- HELLO / DISCONNECT */

static void hello_take(struct spop_hello *h, const struct spop_kv *kv)
{
    const struct spop_data *v = &kv->value;
    bool is_string = v->type == SPOP_DATA_STRING;
    if (key_is(kv->key, kv->key_len, "supported-versions") && is_string) {
        h->versions = v->u.str.ptr;
        h->versions_len = v->u.str.len;
    } else if (key_is(kv->key, kv->key_len, "max-frame-size")) {
        h->has_max_frame_size = data_as_unsigned(v, &h->max_frame_size);
    } else if (key_is(kv->key, kv->key_len, "capabilities") && is_string) {
        h->capabilities = v->u.str.ptr;
        h->capabilities_len = v->u.str.len;
    } else if (key_is(kv->key, kv->key_len, "healthcheck") && v->type == SPOP_DATA_BOOL) {
        h->healthcheck = v->u.boolean;
    } else if (key_is(kv->key, kv->key_len, "engine-id") && is_string) {
        h->engine_id = v->u.str.ptr;
        h->engine_id_len = v->u.str.len;
    }
}

bool spop_hello_decode(const uint8_t *payload, size_t len, struct spop_hello *h)
{
    struct spop_kv_iter it;
    struct spop_kv kv;
    int rc;
    memset(h, 0, sizeof(*h));
    spop_kv_iter_init(&it, payload, len);
    while ((rc = spop_kv_next(&it, &kv)) == 1)
        hello_take(h, &kv);
    return rc == 0;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

bool spop_list_has(const char *list, size_t len, const char *item)
{
    size_t item_len = strlen(item);
    size_t i = 0;
    while (i <= len) {
        size_t start = i;
        while (i < len && list[i] != ',')
            i++;
        size_t end = i;
        while (start < end && is_blank(list[start]))
            start++;
        while (end > start && is_blank(list[end - 1]))
            end--;
        if (end - start == item_len && memcmp(list + start, item, item_len) == 0)
            return true;
        i++;   /* skip the comma (or step past the end) */
    }
    return false;
}

bool spop_disconnect_decode(const uint8_t *payload, size_t len, struct spop_disconnect *d)
{
    struct spop_kv_iter it;
    struct spop_kv kv;
    int rc;
    memset(d, 0, sizeof(*d));
    spop_kv_iter_init(&it, payload, len);
    while ((rc = spop_kv_next(&it, &kv)) == 1) {
        uint64_t status;
        if (key_is(kv.key, kv.key_len, "status-code") && data_as_unsigned(&kv.value, &status) &&
            status <= UINT32_MAX) {
            d->has_status = true;
            d->status = (uint32_t)status;
        } else if (key_is(kv.key, kv.key_len, "message") && kv.value.type == SPOP_DATA_STRING) {
            d->message = kv.value.u.str.ptr;
            d->message_len = kv.value.u.str.len;
        }
    }
    return rc == 0 && d->message_len <= SPOP_DISCONNECT_MSG_MAX;
}

/* ------------------------------------------------------------- writing */

void spop_writer_init(struct spop_writer *w, uint8_t *buf, size_t cap)
{
    SL_ASSERT(buf != NULL || cap == 0);
    w->buf = buf;
    w->cap = cap;
    w->len = 0;
    w->frame_start = 0;
    w->in_frame = false;
    w->failed = false;
}

void spop_put_bytes(struct spop_writer *w, const void *p, size_t n)
{
    if (w->failed)
        return;
    if (n > w->cap - w->len) {
        w->failed = true;
        return;
    }
    if (n)
        memcpy(w->buf + w->len, p, n);
    w->len += n;
}

void spop_put_u8(struct spop_writer *w, uint8_t v)
{
    spop_put_bytes(w, &v, 1);
}

void spop_put_varint(struct spop_writer *w, uint64_t v)
{
    uint8_t tmp[SPOP_VARINT_MAX_LEN];
    spop_put_bytes(w, tmp, spop_varint_encode(v, tmp));
}

void spop_put_raw_string(struct spop_writer *w, const char *s, size_t len)
{
    spop_put_varint(w, len);
    spop_put_bytes(w, s, len);
}

void spop_put_data(struct spop_writer *w, const struct spop_data *d)
{
    switch (d->type) {
    case SPOP_DATA_NULL:
        spop_put_u8(w, SPOP_DATA_NULL);
        return;
    case SPOP_DATA_BOOL:
        spop_put_u8(w, SPOP_DATA_BOOL | (d->u.boolean ? SPOP_DATA_FLAG_TRUE : 0));
        return;
    case SPOP_DATA_INT32:
        spop_put_u8(w, SPOP_DATA_INT32);
        spop_put_varint(w, i64_to_u64(d->u.int32));
        return;
    case SPOP_DATA_UINT32:
        spop_put_u8(w, SPOP_DATA_UINT32);
        spop_put_varint(w, d->u.uint32);
        return;
    case SPOP_DATA_INT64:
        spop_put_u8(w, SPOP_DATA_INT64);
        spop_put_varint(w, i64_to_u64(d->u.int64));
        return;
    case SPOP_DATA_UINT64:
        spop_put_u8(w, SPOP_DATA_UINT64);
        spop_put_varint(w, d->u.uint64);
        return;
    case SPOP_DATA_IPV4:
        spop_put_u8(w, SPOP_DATA_IPV4);
        spop_put_bytes(w, d->u.ipv4, 4);
        return;
    case SPOP_DATA_IPV6:
        spop_put_u8(w, SPOP_DATA_IPV6);
        spop_put_bytes(w, d->u.ipv6, 16);
        return;
    case SPOP_DATA_STRING:
    case SPOP_DATA_BINARY:
        spop_put_u8(w, (uint8_t)d->type);
        spop_put_raw_string(w, d->u.str.ptr, d->u.str.len);
        return;
    }
    SL_ASSERT(!"unknown spop_data type");
}

void spop_put_kv(struct spop_writer *w, const char *key, const struct spop_data *value)
{
    spop_put_raw_string(w, key, strlen(key));
    spop_put_data(w, value);
}

void spop_frame_begin(struct spop_writer *w, uint8_t type, uint32_t flags,
                      uint64_t stream_id, uint64_t frame_id)
{
    SL_ASSERT(!w->in_frame);
    uint8_t be[4];
    w->in_frame = true;
    w->frame_start = w->len;
    write_be32(be, 0);   /* length, filled in by spop_frame_end() */
    spop_put_bytes(w, be, 4);
    spop_put_u8(w, type);
    write_be32(be, flags);
    spop_put_bytes(w, be, 4);
    spop_put_varint(w, stream_id);
    spop_put_varint(w, frame_id);
}

size_t spop_frame_end(struct spop_writer *w)
{
    SL_ASSERT(w->in_frame);
    w->in_frame = false;
    if (w->failed) {
        w->len = SL_MIN(w->len, w->frame_start);
        return 0;
    }
    size_t wire = w->len - w->frame_start;
    SL_ASSERT(wire >= SPOP_FRAME_LEN_SIZE + SPOP_FRAME_HDR_MIN);
    SL_ASSERT(wire - SPOP_FRAME_LEN_SIZE <= UINT32_MAX);
    write_be32(w->buf + w->frame_start, (uint32_t)(wire - SPOP_FRAME_LEN_SIZE));
    return wire;
}

/* ------------------------------------------------------ constructors */

struct spop_data spop_data_null(void)
{
    struct spop_data d;
    memset(&d, 0, sizeof(d));
    d.type = SPOP_DATA_NULL;
    return d;
}

struct spop_data spop_data_bool(bool v)
{
    struct spop_data d = spop_data_null();
    d.type = SPOP_DATA_BOOL;
    d.u.boolean = v;
    return d;
}

struct spop_data spop_data_int32(int32_t v)
{
    struct spop_data d = spop_data_null();
    d.type = SPOP_DATA_INT32;
    d.u.int32 = v;
    return d;
}

struct spop_data spop_data_uint32(uint32_t v)
{
    struct spop_data d = spop_data_null();
    d.type = SPOP_DATA_UINT32;
    d.u.uint32 = v;
    return d;
}

struct spop_data spop_data_int64(int64_t v)
{
    struct spop_data d = spop_data_null();
    d.type = SPOP_DATA_INT64;
    d.u.int64 = v;
    return d;
}

struct spop_data spop_data_uint64(uint64_t v)
{
    struct spop_data d = spop_data_null();
    d.type = SPOP_DATA_UINT64;
    d.u.uint64 = v;
    return d;
}

struct spop_data spop_data_string(const char *s, size_t len)
{
    struct spop_data d = spop_data_null();
    d.type = SPOP_DATA_STRING;
    d.u.str.ptr = s;
    d.u.str.len = len;
    return d;
}

struct spop_data spop_data_binary(const void *p, size_t len)
{
    struct spop_data d = spop_data_string(p, len);
    d.type = SPOP_DATA_BINARY;
    return d;
}

struct spop_data spop_data_cstr(const char *s)
{
    return spop_data_string(s, strlen(s));
}

bool spop_data_equal(const struct spop_data *a, const struct spop_data *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case SPOP_DATA_NULL:
        return true;
    case SPOP_DATA_BOOL:
        return a->u.boolean == b->u.boolean;
    case SPOP_DATA_INT32:
        return a->u.int32 == b->u.int32;
    case SPOP_DATA_UINT32:
        return a->u.uint32 == b->u.uint32;
    case SPOP_DATA_INT64:
        return a->u.int64 == b->u.int64;
    case SPOP_DATA_UINT64:
        return a->u.uint64 == b->u.uint64;
    case SPOP_DATA_IPV4:
        return memcmp(a->u.ipv4, b->u.ipv4, sizeof(a->u.ipv4)) == 0;
    case SPOP_DATA_IPV6:
        return memcmp(a->u.ipv6, b->u.ipv6, sizeof(a->u.ipv6)) == 0;
    case SPOP_DATA_STRING:
    case SPOP_DATA_BINARY:
        /* memcmp() wants valid pointers even for 0 bytes; an empty value
         * may have a NULL one. */
        return a->u.str.len == b->u.str.len &&
               (a->u.str.len == 0 || memcmp(a->u.str.ptr, b->u.str.ptr, a->u.str.len) == 0);
    }
    return false;
}

/* ------------------------------------------------------------ builders */

size_t spop_build_agent_hello(uint8_t *buf, size_t cap, uint32_t max_frame_size,
                              const char *capabilities)
{
    struct spop_writer w;
    struct spop_data version = spop_data_cstr("2.0");
    struct spop_data size = spop_data_uint32(max_frame_size);
    struct spop_data caps = spop_data_cstr(capabilities);
    spop_writer_init(&w, buf, cap);
    spop_frame_begin(&w, SPOP_FRAME_AGENT_HELLO, SPOP_FLAG_FIN, 0, 0);
    spop_put_kv(&w, "version", &version);
    spop_put_kv(&w, "max-frame-size", &size);
    spop_put_kv(&w, "capabilities", &caps);
    return spop_frame_end(&w);
}

size_t spop_build_agent_disconnect(uint8_t *buf, size_t cap, uint32_t status,
                                   const char *message)
{
    struct spop_writer w;
    struct spop_data code = spop_data_uint32(status);
    size_t msg_len = SL_MIN(strlen(message), (size_t)SPOP_DISCONNECT_MSG_MAX);
    struct spop_data msg = spop_data_string(message, msg_len);
    spop_writer_init(&w, buf, cap);
    spop_frame_begin(&w, SPOP_FRAME_AGENT_DISCONNECT, SPOP_FLAG_FIN, 0, 0);
    spop_put_kv(&w, "status-code", &code);
    spop_put_kv(&w, "message", &msg);
    return spop_frame_end(&w);
}

static void put_action(struct spop_writer *w, const struct spop_action *act)
{
    spop_put_u8(w, act->type);
    if (act->type == SPOP_ACTION_SET_VAR) {
        spop_put_u8(w, 3);
        spop_put_u8(w, act->scope);
        spop_put_raw_string(w, act->name, act->name_len);
        spop_put_data(w, &act->value);
        return;
    }
    SL_ASSERT(act->type == SPOP_ACTION_UNSET_VAR);
    spop_put_u8(w, 2);
    spop_put_u8(w, act->scope);
    spop_put_raw_string(w, act->name, act->name_len);
}

size_t spop_build_ack(uint8_t *buf, size_t cap, uint64_t stream_id, uint64_t frame_id,
                      const struct spop_action *actions, size_t n)
{
    struct spop_writer w;
    spop_writer_init(&w, buf, cap);
    spop_frame_begin(&w, SPOP_FRAME_ACK, SPOP_FLAG_FIN, stream_id, frame_id);
    for (size_t i = 0; i < n; i++)
        put_action(&w, &actions[i]);
    return spop_frame_end(&w);
}
