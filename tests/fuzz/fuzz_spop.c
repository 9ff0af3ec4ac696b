/*
 * fuzz_spop.c - libFuzzer target for the SPOP wire codec.
 *
 * The input is read as a stream of length-prefixed frames, the way the
 * server reads a connection. Each frame (or, when the length is bad, the
 * bytes it claims) goes through the header parser, and its payload through
 * every iterator and decoder: KV-list, HELLO, DISCONNECT, message list with
 * arguments, action list. Whatever decodes is re-encoded and decoded again,
 * and must come back with the same value. ASan/UBSan catch any read past
 * the input; the checks below catch a decoder that lies.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "spop/spop_codec.h"

#define FUZZ_MAX_FRAME (1u << 24)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

/* Touch every byte a decoded string points at, so ASan checks its bounds. */
static size_t touch(const char *p, size_t len)
{
    size_t sum = 0;
    for (size_t i = 0; i < len; i++)
        sum += (unsigned char)p[i];
    return sum;
}

/* Encode a decoded value and decode it again: same value, whole output. */
static void round_trip(const struct spop_data *d)
{
    static uint8_t buf[FUZZ_MAX_FRAME + 32];
    struct spop_writer w;
    struct spop_reader r;
    struct spop_data back;
    if (d->type == SPOP_DATA_STRING || d->type == SPOP_DATA_BINARY)
        touch(d->u.str.ptr, d->u.str.len);
    spop_writer_init(&w, buf, sizeof(buf));
    spop_put_data(&w, d);
    check(!w.failed);
    spop_reader_init(&r, buf, w.len);
    check(spop_get_data(&r, &back));
    check(spop_reader_left(&r) == 0);
    check(spop_data_equal(d, &back));
}

static void fuzz_kv_list(const uint8_t *p, size_t len)
{
    struct spop_kv_iter it;
    struct spop_kv kv;
    struct spop_hello h;
    struct spop_disconnect d;
    int rc;
    spop_kv_iter_init(&it, p, len);
    while ((rc = spop_kv_next(&it, &kv)) == 1) {
        touch(kv.key, kv.key_len);
        round_trip(&kv.value);
    }
    check(spop_kv_next(&it, &kv) == rc);   /* errors and the end stick */
    int hello_ok = spop_hello_decode(p, len, &h);
    check(hello_ok == (rc == 0));
    if (hello_ok) {
        if (h.versions)
            spop_list_has(h.versions, h.versions_len, "2.0");
        if (h.capabilities)
            spop_list_has(h.capabilities, h.capabilities_len, "pipelining");
        if (h.engine_id)
            touch(h.engine_id, h.engine_id_len);
    }
    if (spop_disconnect_decode(p, len, &d)) {
        check(rc == 0);
        check(d.message_len <= SPOP_DISCONNECT_MSG_MAX);
        if (d.message)
            touch(d.message, d.message_len);
    }
}

static void fuzz_messages(const uint8_t *p, size_t len)
{
    struct spop_msg_iter it;
    struct spop_message msg;
    int rc;
    spop_msg_iter_init(&it, p, len);
    while ((rc = spop_msg_next(&it, &msg)) == 1) {
        struct spop_arg arg;
        unsigned want = msg.nb_args, got = 0;
        touch(msg.name, msg.name_len);
        while (spop_arg_next(&msg, &arg) == 1) {
            touch(arg.name, arg.name_len);
            round_trip(&arg.value);
            got++;
        }
        /* spop_msg_next() checked the args, so all of them come out. */
        check(got == want);
        check(spop_reader_left(&msg.args) == 0);
    }
    check(spop_msg_next(&it, &msg) == rc);
}

static void fuzz_actions(const uint8_t *p, size_t len)
{
    struct spop_action_iter it;
    struct spop_action act;
    int rc;
    spop_action_iter_init(&it, p, len);
    while ((rc = spop_action_next(&it, &act)) == 1) {
        touch(act.name, act.name_len);
        round_trip(&act.value);
    }
    check(spop_action_next(&it, &act) == rc);
}

static void fuzz_payload(const uint8_t *p, size_t len)
{
    fuzz_kv_list(p, len);
    fuzz_messages(p, len);
    fuzz_actions(p, len);
}

/* Varints straight off the input, and back. */
static void fuzz_varints(const uint8_t *data, size_t size)
{
    for (size_t off = 0; off < size && off < 64; off++) {
        uint64_t v, back;
        uint8_t enc[SPOP_VARINT_MAX_LEN];
        size_t n = spop_varint_decode(data + off, size - off, &v);
        check(n <= SPOP_VARINT_MAX_LEN && n <= size - off);
        if (n == 0)
            continue;
        size_t m = spop_varint_encode(v, enc);
        check(spop_varint_decode(enc, m, &back) == m);
        check(back == v);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_varints(data, size);
    while (size >= SPOP_FRAME_LEN_SIZE) {
        struct spop_frame f;
        size_t wire = 0;
        uint32_t len = 0;
        enum spop_decode_result r = spop_frame_decode(data, size, FUZZ_MAX_FRAME, &f, &wire);
        if (r == SPOP_DECODE_OK) {
            check(wire <= size && wire >= SPOP_FRAME_LEN_SIZE + SPOP_FRAME_HDR_MIN);
            check(f.payload >= data && f.payload + f.payload_len == data + wire);
            fuzz_payload(f.payload, f.payload_len);
            data += wire;
            size -= wire;
            continue;
        }
        /* Bad or cut length: still parse what is there as one frame. */
        check(spop_frame_peek_length(data, size, &len));
        size_t body = len < size - SPOP_FRAME_LEN_SIZE ? len : size - SPOP_FRAME_LEN_SIZE;
        if (spop_frame_parse(data + SPOP_FRAME_LEN_SIZE, body, &f))
            fuzz_payload(f.payload, f.payload_len);
        data += SPOP_FRAME_LEN_SIZE + body;
        size -= SPOP_FRAME_LEN_SIZE + body;
    }
    return 0;
}
