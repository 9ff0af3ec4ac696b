"""C8: bad input gets a clear error and changes nothing. Malformed SPOP
frames and malformed HTTP against the running agent: the peer gets the
protocol's error (SPOP DISCONNECT with a status, HTTP 4xx), the agent keeps
serving, and its descriptors return to baseline. Peers that send half a
frame and stop, or never say HELLO, are closed by spop_frame_timeout and
cost little meanwhile; past spop_max_connections new ones are refused and
HAProxy fails open.
"""

import os
import select
import socket
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

from edge import Edge  # noqa: E402
from httpclient import fetch, rss_kib, wait_until  # noqa: E402
from origin import body_for  # noqa: E402


def spop_exchange(port, payload, timeout=3.0):
    """Send raw bytes to the SPOP listener; return everything read until EOF."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(payload)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def disconnect_status(reply):
    """Status code of the AGENT-DISCONNECT (type 0x66) in a reply, or None."""
    if len(reply) < 5 or reply[4] != 0x66:
        return None
    i = reply.find(b"status-code")
    return reply[i + len("status-code") + 1] if i >= 0 else None


def hello_frame():
    """A HAPROXY-HELLO as HAProxy 2.6 sends it (max-frame-size 16380)."""
    def kv(key, typed):
        return bytes([len(key)]) + key + typed
    payload = (kv(b"supported-versions", b"\x08\x032.0") + kv(b"max-frame-size", b"\x03\xfc\xf0\x06")
               + kv(b"capabilities", b"\x08\x0apipelining") + kv(b"engine-id", b"\x08\x04test"))
    body = b"\x01\x00\x00\x00\x01\x00\x00" + payload
    return struct.pack(">I", len(body)) + body


def spop_connect(port):
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def read_until_eof(socks, deadline):
    """Wait until every socket reads EOF (or a reset); returns the bytes
    each one received."""
    got = {s: b"" for s in socks}
    open_ = set(socks)
    while open_ and time.monotonic() < deadline:
        ready, _, _ = select.select(list(open_)[:500], [], [], 0.2)
        for s in ready:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                chunk = b""
            if chunk:
                got[s] += chunk
            else:
                open_.discard(s)
    if open_:
        raise AssertionError("%d SPOP connections still open" % len(open_))
    return got


def last_frame(reply):
    """The last whole frame of a reply (b"" when there is none)."""
    last, i = b"", 0
    while i + 4 <= len(reply):
        n = struct.unpack(">I", reply[i:i + 4])[0]
        if i + 4 + n > len(reply):
            break
        last, i = reply[i:i + 4 + n], i + 4 + n
    return last


class HostilePeers(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.edge = Edge(settings={"spop_frame_timeout": "2s"})
        cls.edge.__enter__()
        cls.edge.get("/generic/warm.bin")
        cls.edge.wait_idle()

    @classmethod
    def tearDownClass(cls):
        cls.edge.__exit__(None, None, None)

    def assert_still_serving(self):
        r = self.edge.get("/generic/warm.bin")
        self.assertEqual((r.status, r.body), (200, body_for("/warm.bin")))

    def test_malformed_spop_frames_get_a_disconnect_with_status(self):
        port = self.edge.ports["spop"]
        baseline = self.edge.agent_private_fds()
        cases = {
            "zero length": (struct.pack(">I", 0), 4),
            "too short": (struct.pack(">I", 3) + b"\x01\x00\x00", 4),
            "too big": (struct.pack(">I", 10_000_000) + b"\x01", 3),
            "notify before hello": (struct.pack(">I", 7) + b"\x03\x00\x00\x00\x01\x01\x01", 4),
            "no FIN": (struct.pack(">I", 7) + b"\x01\x00\x00\x00\x00\x00\x00", 10),
        }
        for name, (payload, status) in cases.items():
            reply = spop_exchange(port, payload)
            self.assertEqual(disconnect_status(reply), status, name)
        # Random garbage and a half frame followed by EOF: never a crash.
        spop_exchange(port, os.urandom(4096))
        spop_exchange(port, struct.pack(">I", 100) + b"\x01\x00")
        self.assert_still_serving()
        wait_until(lambda: self.edge.agent_private_fds() == baseline, 5,
                   message="fds did not return to baseline after hostile SPOP peers")

    def test_malformed_http_gets_4xx_and_changes_nothing(self):
        port = self.edge.ports["http"]
        baseline = self.edge.agent_private_fds()
        cases = [
            (b"GET *a HTTP/1.1\r\n\r\n", 400),
            (b"\x00\x01\x02garbage\r\n\r\n", 400),
            (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414),
            (b"GET /generic/x HTTP/1.1\r\nX: " + b"v" * 20000 + b"\r\n\r\n", 431),
            (b"DELETE /generic/x HTTP/1.1\r\n\r\n", 405),
            (b"GET /generic/a/%2e%2e/b HTTP/1.1\r\n\r\n", 400),
            (b"GET /generic/a%00b HTTP/1.1\r\n\r\n", 400),
            (b"GET /generic/" + b"k" * 3000 + b" HTTP/1.1\r\n\r\n", 414),
        ]
        for raw, status in cases:
            r = fetch("127.0.0.1", port, "/", raw=raw, timeout=5)
            self.assertEqual(r.status, status, raw[:40])
        self.assertEqual(self.edge.object_files().__len__(), 1)
        self.assert_still_serving()
        wait_until(lambda: self.edge.agent_private_fds() == baseline, 5,
                   message="fds did not return to baseline after hostile HTTP peers")

    def test_half_frames_are_closed_by_the_frame_deadline(self):
        """300 peers: half of them send half a HELLO, the other half a whole
        HELLO then half a NOTIFY. All are closed by spop_frame_timeout (2s),
        cost a few KiB each meanwhile, and the edge keeps serving."""
        e = self.edge
        port = e.ports["spop"]
        baseline_fds = e.agent_private_fds()
        before = e.metrics()
        rss_before = rss_kib(e.agent.pid)
        hello = hello_frame()
        socks = []
        try:
            for i in range(300):
                s = spop_connect(port)
                socks.append(s)
                if i % 2:
                    s.sendall(hello[:20])
                else:
                    s.sendall(hello + struct.pack(">I", 16000) + b"\x03\x00\x00\x00\x01")
            t0 = time.monotonic()
            wait_until(lambda: e.metric("sluice_spop_connections_open") >= 300, 10,
                       message="the agent did not accept 300 SPOP connections")
            m = e.metrics()
            # Small buffers for half frames: not a frame's worth each.
            self.assertLess(m.get("sluice_spop_buffer_bytes"), 300 * 2048 + 64 * 16384)
            self.assertLess(rss_kib(e.agent.pid) - rss_before, 16 * 1024)
            self.assert_still_serving()
            got = read_until_eof(socks, time.monotonic() + 15)
            self.assertGreaterEqual(time.monotonic() - t0, 1.5)
            for reply in got.values():
                self.assertEqual(disconnect_status(last_frame(reply)), 2)   # "timeout"
        finally:
            for s in socks:
                s.close()
        after = e.metrics()
        def dropped(m, reason):
            return m.get('sluice_spop_connections_dropped_total{reason="%s"}' % reason, 0)
        self.assertEqual(dropped(after, "hello_timeout") - dropped(before, "hello_timeout"), 150)
        self.assertEqual(dropped(after, "frame_timeout") - dropped(before, "frame_timeout"), 150)
        self.assert_still_serving()
        wait_until(lambda: e.agent_private_fds() == baseline_fds, 5,
                   message="fds did not return to baseline after half-frame peers")


class ConnectionCap(unittest.TestCase):
    def test_past_the_cap_new_connections_are_refused_and_the_edge_fails_open(self):
        with Edge(settings={"spop_max_connections": "40", "spop_frame_timeout": "30s"}) as e:
            e.get("/generic/warm.bin")
            e.wait_idle()
            socks = []
            try:
                def fill_up():
                    s = spop_connect(e.ports["spop"])
                    socks.append(s)
                    return e.metric('sluice_spop_connections_dropped_total{reason="cap"}') > 0
                wait_until(fill_up, 10, message="the cap never refused a connection")
                # The refused one was told why: DISCONNECT status 13.
                reply = read_until_eof([socks[-1]], time.monotonic() + 5)[socks[-1]]
                self.assertEqual(disconnect_status(reply), 13)
                # HAProxy cannot reach the agent now: it fails open, to the origin.
                r = e.get("/generic/other.bin")
                self.assertEqual((r.status, r.body), (200, body_for("/other.bin")))
            finally:
                for s in socks:
                    s.close()
            wait_until(lambda: e.metric("sluice_spop_connections_open") < 40, 10,
                       message="the hostile connections did not go away")
            r = e.get("/generic/warm.bin")
            self.assertEqual(r.status, 200)


if __name__ == "__main__":
    unittest.main()
