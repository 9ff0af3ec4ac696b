"""C8: bad input gets a clear error and changes nothing. Malformed SPOP
frames and malformed HTTP against the running agent: the peer gets the
protocol's error (SPOP DISCONNECT with a status, HTTP 4xx), the agent keeps
serving, and its descriptors return to baseline.
"""

import os
import socket
import struct
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

from edge import Edge  # noqa: E402
from httpclient import fetch, wait_until  # noqa: E402
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


class HostilePeers(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.edge = Edge()
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


if __name__ == "__main__":
    unittest.main()
