/*
 * spop_test_util.h - shared by the SPOP unit tests (codec and server): the
 * golden frames of shared/notes/spoe.md (§1.12) and the helpers that check
 * them.
 * Functions are static inline so that a test file using only some of them
 * builds without -Wunused-function warnings.
 */
#ifndef SLUICE_TEST_SPOP_TEST_UTIL_H
#define SLUICE_TEST_SPOP_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/common.h"
#include "spop/spop_codec.h"

/* Byte arrays written as concatenated string literals; drop the NUL. */
#define BYTES(a) (const uint8_t *)(a), (sizeof(a) - 1)

/* ----------------------------------------------------------- golden */

/* §1.12a: health-check HAPROXY-HELLO, 78-byte frame. */
static const char golden_hc_hello[] =
    "\x00\x00\x00\x4e" "\x01" "\x00\x00\x00\x01" "\x00\x00"
    "\x12" "supported-versions" "\x08\x03" "2.0"
    "\x0e" "max-frame-size" "\x03\xfc\xf0\x06"
    "\x0c" "capabilities" "\x08\x00"
    "\x0b" "healthcheck" "\x11";

/* §1.12b: 2.6.12 traffic HELLO (129 bytes) with a fake engine-id. */
#define FAKE_ENGINE_ID "0123abcd-4567-89ef-0123-456789abcdef"
static const char golden_traffic_hello[] =
    "\x00\x00\x00\x81" "\x01" "\x00\x00\x00\x01" "\x00\x00"
    "\x12" "supported-versions" "\x08\x03" "2.0"
    "\x0e" "max-frame-size" "\x03\xfc\xf0\x06"
    "\x0c" "capabilities" "\x08\x10" "pipelining,async"
    "\x09" "engine-id" "\x08\x24" FAKE_ENGINE_ID;

/* §1.12c: AGENT-HELLO, 64-byte frame. */
static const char golden_agent_hello[] =
    "\x00\x00\x00\x40" "\x65" "\x00\x00\x00\x01" "\x00\x00"
    "\x07" "version" "\x08\x03" "2.0"
    "\x0e" "max-frame-size" "\x03\xfc\xf0\x06"
    "\x0c" "capabilities" "\x08\x0a" "pipelining";

/* §1.12d: NOTIFY "check" ip=10.0.0.1 path="/x", stream 5, frame 1. */
static const char golden_notify[] =
    "\x00\x00\x00\x1f" "\x03" "\x00\x00\x00\x01" "\x05\x01"
    "\x05" "check" "\x02"
    "\x02" "ip" "\x06\x0a\x00\x00\x01"
    "\x04" "path" "\x08\x02" "/x";

/* §1.12e: ACK stream 2 / frame 1, verdict="deny", retry_after=30. */
static const char golden_ack[] =
    "\x00\x00\x00\x29" "\x67" "\x00\x00\x00\x01" "\x02\x01"
    "\x01\x03\x02" "\x07" "verdict" "\x08\x04" "deny"
    "\x01\x03\x02" "\x0b" "retry_after" "\x02\x1e";

/* §1.12f: HAPROXY-DISCONNECT on soft-stop. */
static const char golden_disconnect[] =
    "\x00\x00\x00\x25" "\x02" "\x00\x00\x00\x01" "\x00\x00"
    "\x0b" "status-code" "\x03\x00"
    "\x07" "message" "\x08\x06" "normal";

/* Our AGENT-DISCONNECT for status 3. */
static const char golden_agent_disconnect[] =
    "\x00\x00\x00\x2c" "\x66" "\x00\x00\x00\x01" "\x00\x00"
    "\x0b" "status-code" "\x03\x03"
    "\x07" "message" "\x08\x0d" "frame too big";

struct golden {
    const char *name;
    const uint8_t *bytes;
    size_t len;
};

static const struct golden goldens[] = {
    { "hc_hello", BYTES(golden_hc_hello) },
    { "traffic_hello", BYTES(golden_traffic_hello) },
    { "agent_hello", BYTES(golden_agent_hello) },
    { "notify", BYTES(golden_notify) },
    { "ack", BYTES(golden_ack) },
    { "disconnect", BYTES(golden_disconnect) },
    { "agent_disconnect", BYTES(golden_agent_disconnect) },
};

static inline void decode_golden(const uint8_t *bytes, size_t len, struct spop_frame *f)
{
    size_t wire = 0;
    assert_int_equal(spop_frame_decode(bytes, len, 65536, f, &wire), SPOP_DECODE_OK);
    assert_int_equal(wire, len);
    assert_int_equal(f->flags, SPOP_FLAG_FIN);
}

#define assert_str_n(p, len, want) assert_true(sl_bytes_eq((p), (len), (want)))

#endif
