/*
 * spop_codec.h - the SPOP v2.0 wire codec: bytes in, structures out, and
 * back. No I/O, no allocation, no logging.
 *
 * Decoding works on a bounded view (struct spop_reader: a pointer and an
 * end). Every getter checks each length against the end before touching a
 * byte and fails on truncation at any offset; on failure the reader is left
 * where it was. Decoded strings point into the caller's buffer and are not
 * NUL-terminated.
 *
 * Encoding works on a bounded output (struct spop_writer). A write that does
 * not fit sets a sticky `failed` flag and writes nothing more, so a builder
 * can emit a whole frame and check once at the end. spop_frame_begin() and
 * spop_frame_end() bracket one frame and fill in its 4-byte length prefix,
 * so several whole frames can be laid out back to back in one buffer.
 *
 * Varints are HAProxy's "peers" encoding (not LEB128), at most 10 bytes for
 * a 64-bit value. Typed data carries its type in the low nibble of the header
 * byte and flags in the high nibble; only BOOL uses a flag (0x10 = true).
 */
#ifndef SLUICE_SPOP_CODEC_H
#define SLUICE_SPOP_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SPOP_VARINT_MAX_LEN 10      /* bytes for any 64-bit value */
#define SPOP_FRAME_HDR_MIN 7        /* type + flags + two 1-byte ids */
#define SPOP_FRAME_LEN_SIZE 4       /* the big-endian length prefix */
#define SPOP_MIN_MAX_FRAME 256      /* smallest max-frame-size allowed */
#define SPOP_DISCONNECT_MSG_MAX 255 /* HAProxy 2.6 rejects longer messages */

#define SPOP_FLAG_FIN 0x00000001u
#define SPOP_FLAG_ABORT 0x00000002u

enum spop_frame_type {
    SPOP_FRAME_UNSET = 0,
    SPOP_FRAME_HAPROXY_HELLO = 1,
    SPOP_FRAME_HAPROXY_DISCONNECT = 2,
    SPOP_FRAME_NOTIFY = 3,
    SPOP_FRAME_AGENT_HELLO = 101,
    SPOP_FRAME_AGENT_DISCONNECT = 102,
    SPOP_FRAME_ACK = 103,
};

enum spop_data_type {
    SPOP_DATA_NULL = 0,
    SPOP_DATA_BOOL = 1,
    SPOP_DATA_INT32 = 2,
    SPOP_DATA_UINT32 = 3,
    SPOP_DATA_INT64 = 4,
    SPOP_DATA_UINT64 = 5,
    SPOP_DATA_IPV4 = 6,
    SPOP_DATA_IPV6 = 7,
    SPOP_DATA_STRING = 8,
    SPOP_DATA_BINARY = 9,
};

#define SPOP_DATA_TYPE_MASK 0x0f
#define SPOP_DATA_FLAG_TRUE 0x10

/* DISCONNECT status codes (SPOE.txt section 3.5). */
enum spop_status {
    SPOP_STATUS_NORMAL = 0,
    SPOP_STATUS_IO = 1,
    SPOP_STATUS_TIMEOUT = 2,
    SPOP_STATUS_TOO_BIG = 3,
    SPOP_STATUS_INVALID = 4,
    SPOP_STATUS_NO_VERSION = 5,
    SPOP_STATUS_NO_FRAME_SIZE = 6,
    SPOP_STATUS_NO_CAPABILITY = 7,
    SPOP_STATUS_BAD_VERSION = 8,
    SPOP_STATUS_BAD_FRAME_SIZE = 9,
    SPOP_STATUS_FRAG_UNSUPPORTED = 10,
    SPOP_STATUS_INTERLACED = 11,
    SPOP_STATUS_FRAME_ID_NOT_FOUND = 12,
    SPOP_STATUS_RESOURCE = 13,
    SPOP_STATUS_UNKNOWN = 99,
};

/* Short human text for a status, as HAProxy words it ("normal", ...). */
const char *spop_status_text(uint32_t status);

enum spop_action_type { SPOP_ACTION_SET_VAR = 1, SPOP_ACTION_UNSET_VAR = 2 };

enum spop_var_scope {
    SPOP_SCOPE_PROC = 0,
    SPOP_SCOPE_SESS = 1,
    SPOP_SCOPE_TXN = 2,
    SPOP_SCOPE_REQ = 3,
    SPOP_SCOPE_RES = 4,
};

/* One typed value. STRING and BINARY point into the decoded buffer. */
struct spop_data {
    enum spop_data_type type;
    union {
        bool boolean;
        int32_t int32;
        uint32_t uint32;
        int64_t int64;
        uint64_t uint64;
        uint8_t ipv4[4];
        uint8_t ipv6[16];
        struct {
            const char *ptr;
            size_t len;
        } str;                 /* STRING and BINARY */
    } u;
};

/* ------------------------------------------------------------- varints */

/* Writes v into out (>= SPOP_VARINT_MAX_LEN bytes); returns bytes used. */
size_t spop_varint_encode(uint64_t v, uint8_t *out);

/* Decodes one varint from buf[0..len). Returns bytes consumed, or 0 when
 * the varint is truncated or longer than SPOP_VARINT_MAX_LEN. */
size_t spop_varint_decode(const uint8_t *buf, size_t len, uint64_t *v);

/* ------------------------------------------------------------- reading */

struct spop_reader {
    const uint8_t *p;
    const uint8_t *end;
};

void spop_reader_init(struct spop_reader *r, const uint8_t *buf, size_t len);
size_t spop_reader_left(const struct spop_reader *r);

/* All getters return false (reader unchanged) on truncation or bad data. */
bool spop_get_u8(struct spop_reader *r, uint8_t *v);
bool spop_get_varint(struct spop_reader *r, uint64_t *v);
/* A raw string: varint length + bytes, no type byte (names, keys). */
bool spop_get_raw_string(struct spop_reader *r, const char **s, size_t *len);
/* A typed value (header byte + data). Unknown types (10..15), INT32/UINT32
 * values out of range fail. */
bool spop_get_data(struct spop_reader *r, struct spop_data *d);

/* ------------------------------------------------------------- frames */

struct spop_frame {
    uint8_t type;              /* enum spop_frame_type, or anything else */
    uint32_t flags;
    uint64_t stream_id;
    uint64_t frame_id;
    const uint8_t *payload;    /* points into the frame */
    size_t payload_len;
};

enum spop_decode_result {
    SPOP_DECODE_OK = 0,
    SPOP_DECODE_NEED_MORE = 1,   /* not a whole frame yet */
    SPOP_DECODE_TOO_BIG = 2,     /* announced length > max_frame */
    SPOP_DECODE_INVALID = 3,     /* length < 7 or malformed header */
};

/* Reads the 4-byte big-endian length prefix; false when avail < 4. */
bool spop_frame_peek_length(const uint8_t *buf, size_t avail, uint32_t *len);

/* Parses a frame without its length prefix (frame[0] is the type). */
bool spop_frame_parse(const uint8_t *frame, size_t len, struct spop_frame *f);

/* Decodes one whole frame from the wire bytes buf[0..avail). On OK,
 * *wire_len is the bytes the frame occupies (prefix included). The length
 * is judged (TOO_BIG, INVALID) as soon as the prefix is there, before the
 * body arrives. */
enum spop_decode_result spop_frame_decode(const uint8_t *buf, size_t avail,
                                          size_t max_frame, struct spop_frame *f,
                                          size_t *wire_len);

/* ----------------------------------------------- payload iterators
 * The *_next() functions return 1 with an item, 0 at the clean end of the
 * list, -1 on malformed input (and keep returning -1 after that). */

struct spop_kv {
    const char *key;
    size_t key_len;
    struct spop_data value;
};

struct spop_kv_iter {
    struct spop_reader r;
    bool failed;
};

void spop_kv_iter_init(struct spop_kv_iter *it, const uint8_t *payload, size_t len);
int spop_kv_next(struct spop_kv_iter *it, struct spop_kv *kv);

/* A message of a NOTIFY. Its arguments were already checked for shape by
 * spop_msg_next(), so iterating them only fails if the caller passes a
 * message that did not come from spop_msg_next(). */
struct spop_message {
    const char *name;
    size_t name_len;
    unsigned nb_args;
    struct spop_reader args;   /* the encoded argument list */
};

struct spop_arg {
    const char *name;          /* length 0 for an unnamed argument */
    size_t name_len;
    struct spop_data value;
};

struct spop_msg_iter {
    struct spop_reader r;
    bool failed;
};

void spop_msg_iter_init(struct spop_msg_iter *it, const uint8_t *payload, size_t len);
int spop_msg_next(struct spop_msg_iter *it, struct spop_message *msg);
/* Consumes msg->args and msg->nb_args. */
int spop_arg_next(struct spop_message *msg, struct spop_arg *arg);

/* One action of an ACK. value is meaningful for SET_VAR only. */
struct spop_action {
    uint8_t type;              /* enum spop_action_type */
    uint8_t scope;             /* enum spop_var_scope */
    const char *name;
    size_t name_len;
    struct spop_data value;
};

struct spop_action_iter {
    struct spop_reader r;
    bool failed;
};

/* Decodes set-var and unset-var; any other action type is malformed. */
void spop_action_iter_init(struct spop_action_iter *it, const uint8_t *payload, size_t len);
int spop_action_next(struct spop_action_iter *it, struct spop_action *act);

/* --------------------------------------------- HELLO / DISCONNECT */

/* The HAPROXY-HELLO keys we care about, matched exactly (not by prefix).
 * A key whose value has the wrong type counts as absent. */
struct spop_hello {
    const char *versions;      /* supported-versions, NULL when absent */
    size_t versions_len;
    bool has_max_frame_size;
    uint64_t max_frame_size;
    const char *capabilities;  /* NULL when absent */
    size_t capabilities_len;
    bool healthcheck;
    const char *engine_id;     /* NULL when absent */
    size_t engine_id_len;
};

/* Returns false when the KV-list is malformed. Unknown keys are skipped. */
bool spop_hello_decode(const uint8_t *payload, size_t len, struct spop_hello *h);

/* True when the comma-separated list (spaces ignored) holds item exactly:
 * spop_list_has("1.0, 2.0", 8, "2.0") is true, "2.0.1" does not hold "2.0". */
bool spop_list_has(const char *list, size_t len, const char *item);

struct spop_disconnect {
    bool has_status;
    uint32_t status;
    const char *message;       /* NULL when absent */
    size_t message_len;
};

/* Returns false when malformed or when the message exceeds
 * SPOP_DISCONNECT_MSG_MAX bytes (HAProxy 2.6 rejects those too). */
bool spop_disconnect_decode(const uint8_t *payload, size_t len, struct spop_disconnect *d);

/* ------------------------------------------------------------- writing */

struct spop_writer {
    uint8_t *buf;
    size_t cap;
    size_t len;
    size_t frame_start;        /* offset of the open frame's length prefix */
    bool in_frame;
    bool failed;               /* sticky: something did not fit */
};

void spop_writer_init(struct spop_writer *w, uint8_t *buf, size_t cap);
void spop_put_u8(struct spop_writer *w, uint8_t v);
void spop_put_bytes(struct spop_writer *w, const void *p, size_t n);
void spop_put_varint(struct spop_writer *w, uint64_t v);
void spop_put_raw_string(struct spop_writer *w, const char *s, size_t len);
void spop_put_data(struct spop_writer *w, const struct spop_data *d);
/* A KV pair: raw-string key (NUL-terminated) and typed value. */
void spop_put_kv(struct spop_writer *w, const char *key, const struct spop_data *value);

/* Starts a frame: length placeholder, type, big-endian flags, both ids. */
void spop_frame_begin(struct spop_writer *w, uint8_t type, uint32_t flags,
                      uint64_t stream_id, uint64_t frame_id);
/* Closes the frame and fills in its length. Returns the frame's size on
 * the wire (prefix included), or 0 if anything failed to fit, in which
 * case w->len is rolled back to where the frame began. */
size_t spop_frame_end(struct spop_writer *w);

/* Typed-value constructors. */
struct spop_data spop_data_null(void);
struct spop_data spop_data_bool(bool v);
struct spop_data spop_data_int32(int32_t v);
struct spop_data spop_data_uint32(uint32_t v);
struct spop_data spop_data_int64(int64_t v);
struct spop_data spop_data_uint64(uint64_t v);
struct spop_data spop_data_string(const char *s, size_t len);
struct spop_data spop_data_binary(const void *p, size_t len);
/* From a NUL-terminated string. */
struct spop_data spop_data_cstr(const char *s);

/* True when a and b have the same type and the same value. STRING and
 * BINARY compare their bytes, not their pointers; two empty ones are equal
 * whatever their pointers (NULL allowed). A type outside enum
 * spop_data_type is never equal to anything. */
bool spop_data_equal(const struct spop_data *a, const struct spop_data *b);

/* ------------------------------------------------------------ builders
 * Each writes one whole frame (length prefix included) at buf and returns
 * its size, or 0 when cap is too small. Agent frames always carry FIN. */

/* AGENT-HELLO: version "2.0", max-frame-size (UINT32), capabilities. */
size_t spop_build_agent_hello(uint8_t *buf, size_t cap, uint32_t max_frame_size,
                              const char *capabilities);

/* AGENT-DISCONNECT: status-code (UINT32) and message (STRING), the message
 * cut to SPOP_DISCONNECT_MSG_MAX bytes. */
size_t spop_build_agent_disconnect(uint8_t *buf, size_t cap, uint32_t status,
                                   const char *message);

/* ACK echoing stream_id/frame_id, carrying n actions in order. */
size_t spop_build_ack(uint8_t *buf, size_t cap, uint64_t stream_id, uint64_t frame_id,
                      const struct spop_action *actions, size_t n);

#endif
