"""Self-test of the test tools: origin.py and httpclient.py checked against
each other, so that later suites can trust their counters and verdicts.

    cd /work/main && python3 -m unittest tests/lib/test_origin_selftest.py -v

Every test gets a fresh OriginServer; timings are kept short (< 15 s total).
"""

import base64
import concurrent.futures
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import httpclient as hc  # noqa: E402
import origin as og      # noqa: E402
from httpclient import fetch, wait_until  # noqa: E402

H = "127.0.0.1"


class OriginCase(unittest.TestCase):
    """A fresh origin per test plus a few shorthands."""

    def setUp(self):
        self.o = og.OriginServer().start()
        self.addCleanup(self.o.stop)

    def get(self, path, **kw):
        return fetch(H, self.o.port, path, **kw)

    def stat(self, key):
        return self.o.stats()[key]


class ContentTests(OriginCase):
    def test_body_for_is_deterministic(self):
        a = og.body_for("/x", 1000)
        self.assertEqual(len(a), 1000)
        self.assertEqual(a, og.body_for("/x", 1000))
        self.assertNotEqual(a, og.body_for("/y", 1000))
        big = og.body_for("/x", 200_000)
        self.assertEqual(big[:1000], a)
        self.assertEqual(b"".join(og.iter_body("/x", 200_000, piece=777)), big)
        self.assertEqual(og.body_for("/x", 0), b"")

    def test_default_get(self):
        r = self.get("/pkg/a.tgz")
        self.assertTrue(r.ok, r)
        self.assertEqual(r.body, og.body_for("/pkg/a.tgz"))
        self.assertEqual(r.framing, "length")
        self.assertEqual(r.header("content-length"), "1000")
        self.assertEqual(r.header("ETag"), self.o.expected_etag("/pkg/a.tgz"))
        self.assertEqual(r.header("ETag"), og.default_etag("/pkg/a.tgz", 1000))
        self.assertEqual(r.header("Last-Modified"), "Sun, 13 Sep 2020 12:26:40 GMT")
        self.assertEqual(self.o.requests("/pkg/a.tgz"), 1)
        self.o.wait_idle()
        self.assertEqual(self.o.bytes_sent("/pkg/a.tgz"), 1000)

    def test_size_and_body_knobs(self):
        self.o.set_object("/big", size=150_000)
        r = self.get("/big")
        self.assertTrue(r.complete)
        self.assertEqual(r.body, og.body_for("/big", 150_000))
        self.assertEqual(r.body, self.o.expected_body("/big"))
        self.o.set_object("/fixed", body=b"hello world")
        r = self.get("/fixed")
        self.assertEqual(r.body, b"hello world")
        self.assertEqual(r.header("etag"), og.body_etag(b"hello world"))
        with self.assertRaises(ValueError):
            self.o.set_object("/bad", size=1, body=b"x")
        with self.assertRaises(ValueError):
            self.o.set_object("/bad", sise=1)

    def test_query_is_part_of_the_key(self):
        r = self.get("/a?v=1")
        self.assertEqual(r.body, og.body_for("/a?v=1"))
        self.assertNotEqual(r.body, og.body_for("/a"))
        self.assertEqual(self.o.requests("/a?v=1"), 1)
        self.assertEqual(self.o.requests("/a"), 0)

    def test_status_and_extra_headers(self):
        self.o.set_object("/h", status=404, etag=None, headers={
            "Cache-Control": "no-store", "content-type": "text/plain",
            "Last-Modified": None})
        r = self.get("/h")
        self.assertEqual(r.status, 404)
        self.assertTrue(r.complete)
        self.assertEqual(r.header("cache-control"), "no-store")
        self.assertEqual(r.headers.get_all("Content-Type"), ["text/plain"])
        self.assertNotIn("ETag", r.headers)
        self.assertNotIn("Last-Modified", r.headers)
        self.o.set_object("/dup", headers=[["X-A", "1"], ["X-A", "2"]])
        self.assertEqual(self.get("/dup").headers.get_all("x-a"), ["1", "2"])

    def test_set_object_without_knobs_restores_default(self):
        self.o.set_object("/p", size=10)
        self.assertEqual(len(self.get("/p").body), 10)
        self.o.set_object("/p")
        self.assertEqual(self.get("/p").body, og.body_for("/p"))


class ConditionalTests(OriginCase):
    def test_if_none_match(self):
        etag = self.o.expected_etag("/c")
        for inm, want in ((etag, 304), ("W/" + etag, 304), ('"other", ' + etag, 304),
                          ("*", 304), ('"other"', 200)):
            r = self.get("/c", headers={"If-None-Match": inm})
            self.assertEqual(r.status, want, inm)
            self.assertTrue(r.complete)
            if want == 304:
                self.assertEqual(r.body, b"")
                self.assertEqual(r.framing, "none")
                self.assertEqual(r.header("etag"), etag)
        self.o.wait_idle()
        self.assertEqual(self.o.stats()["paths"]["/c"]["statuses"], {"304": 4, "200": 1})
        self.assertEqual(self.o.bytes_sent("/c"), 1000)

    def test_if_modified_since(self):
        lm = "Sun, 13 Sep 2020 12:26:40 GMT"
        self.assertEqual(self.get("/m", headers={"If-Modified-Since": lm}).status, 304)
        self.assertEqual(self.get("/m", headers={
            "If-Modified-Since": "Sat, 12 Sep 2020 00:00:00 GMT"}).status, 200)
        self.assertEqual(self.get("/m", headers={"If-Modified-Since": "garbage"}).status, 200)

    def test_no_validators_no_304(self):
        self.o.set_object("/n", etag=None, last_modified=None)
        self.assertEqual(self.get("/n", headers={"If-None-Match": "*"}).status, 200)
        self.assertEqual(self.get("/n", headers={
            "If-Modified-Since": "Sun, 13 Sep 2030 12:26:40 GMT"}).status, 200)

    def test_faulty_status_is_not_revalidated(self):
        self.o.set_object("/e", status=500)
        etag = self.o.expected_etag("/e")
        self.assertEqual(self.get("/e", headers={"If-None-Match": etag}).status, 500)


class MethodTests(OriginCase):
    def test_head(self):
        self.o.set_object("/h", size=5000, delay_ms=50)
        r = self.get("/h", method="HEAD")
        self.assertTrue(r.ok, r)
        self.assertEqual(r.body, b"")
        self.assertEqual(r.framing, "none")
        self.assertEqual(r.header("content-length"), "5000")
        self.assertEqual(self.o.requests("/h", "HEAD"), 1)
        self.assertEqual(self.o.requests("/h", "GET"), 0)
        self.assertEqual(self.o.bytes_sent("/h"), 0)

    def test_post_and_put_echo(self):
        r = self.get("/upload", method="POST", body=b"x" * 1234)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json(), {"method": "POST", "path": "/upload", "body_len": 1234})
        raw = (b"PUT /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n")
        r = self.get("/upload", raw=raw)
        self.assertEqual(r.json(), {"method": "PUT", "path": "/upload", "body_len": 8})
        s = self.o.stats()
        self.assertEqual(s["methods"], {"POST": 1, "PUT": 1})
        self.assertEqual(self.o.requests("/upload", "POST"), 1)
        self.assertEqual(self.o.requests("/upload", None), 2)

    def test_expect_100_continue(self):
        r = self.get("/up", method="POST", body=b"y" * 10,
                     headers={"Expect": "100-continue"})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["body_len"], 10)

    def test_http10_and_pipelining(self):
        self.o.set_object("/c", chunked=True)
        r = self.get("/c", raw=b"GET /c HTTP/1.0\r\n\r\n")
        self.assertTrue(r.ok)
        self.assertEqual((r.framing, r.body), ("close", og.body_for("/c")))
        with socket.create_connection((H, self.o.port), timeout=5) as s:
            s.sendall(b"GET /p1 HTTP/1.1\r\nHost: x\r\n\r\n"
                      b"GET /p2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b"".join(iter(lambda: s.recv(65536), b""))
        self.assertEqual(data.count(b"HTTP/1.1 200 OK"), 2)
        self.assertLess(data.index(og.body_for("/p1")), data.index(og.body_for("/p2")))
        self.assertEqual(self.o.wait_idle(connections=True)["connections_accepted"], 2)

    def test_bad_request(self):
        r = self.get("/", raw=b"GARBAGE\r\n\r\n")
        self.assertEqual(r.status, 400)
        self.assertEqual(self.stat("bad_requests"), 1)
        self.assertEqual(self.stat("total_requests"), 0)


class FaultTests(OriginCase):
    def test_delay(self):
        self.o.set_object("/d", delay_ms=300)
        r = self.get("/d")
        self.assertTrue(r.ok)
        self.assertGreaterEqual(r.ttfb, 0.28)
        self.assertEqual(self.get("/other").ok, True)

    def test_rate(self):
        self.o.set_object("/r", size=20_000, rate=40_000)
        r = self.get("/r")
        self.assertTrue(r.ok)
        self.assertEqual(r.body, og.body_for("/r", 20_000))
        self.assertTrue(0.4 <= r.elapsed <= 1.2, r.elapsed)

    def test_stall_then_resume(self):
        self.o.set_object("/s", size=3000, stall_after=1000, stall_ms=500)
        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            fut = ex.submit(self.get, "/s")
            wait_until(lambda: self.o.bytes_sent("/s") == 1000, 2, message="no bytes")
            self.assertEqual(self.stat("in_flight"), 1)
            r = fut.result(5)
        self.assertTrue(r.ok, r)
        self.assertEqual(r.body, og.body_for("/s", 3000))
        self.assertGreaterEqual(r.elapsed, 0.45)
        self.o.wait_idle()
        self.assertEqual(self.o.bytes_sent("/s"), 3000)

    def test_stall_forever_until_client_leaves(self):
        self.o.set_object("/s", stall_after=100, stall_ms=-1)
        r = self.get("/s", timeout=0.4)
        self.assertFalse(r.complete)
        self.assertEqual(r.error, "timeout")
        self.assertEqual(r.body, og.body_for("/s")[:100])
        wait_until(lambda: self.stat("aborted_by_client") == 1, 2, message="abort")
        s = self.o.stats()
        self.assertEqual((s["in_flight"], s["responses_completed"]), (0, 0))
        self.assertEqual(s["paths"]["/s"]["aborted_by_client"], 1)
        wait_until(lambda: self.stat("connections_open") == 0, 2, message="open")

    def test_client_leaving_a_paced_body_is_an_abort(self):
        self.o.set_object("/p", size=100_000, rate=20_000)
        r = self.get("/p", timeout=0.3)
        self.assertEqual((r.status, r.complete, r.error), (200, False, "timeout"))
        st = self.o.wait_idle()
        self.assertEqual((st["aborted_by_client"], st["responses_completed"]), (1, 0))
        self.assertLess(st["paths"]["/p"]["bytes_sent"], 20_000)

    def test_truncate(self):
        self.o.set_object("/t", truncate_after=500)
        r = self.get("/t")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("content-length"), "1000")
        self.assertFalse(r.complete)
        self.assertEqual(r.body, og.body_for("/t")[:500])
        self.assertTrue(r.server_closed)
        self.assertFalse(r.reset)
        self.assertIn("closed after 500 of 1000", r.error)
        wait_until(lambda: self.stat("in_flight") == 0, 2, message="in flight")
        self.assertEqual(self.stat("aborted_by_client"), 0)

    def test_reset(self):
        self.o.set_object("/r", size=100_000, reset_after=5000)
        r = self.get("/r")
        self.assertEqual(r.status, 200)
        self.assertFalse(r.complete)
        self.assertIsNotNone(r.error)
        self.assertTrue(r.reset)
        self.assertLessEqual(len(r.body), 5000)
        self.o.wait_idle()
        self.assertEqual(self.o.bytes_sent("/r"), 5000)

    def test_chunked(self):
        self.o.set_object("/c", size=100_000, chunked=True)
        r = self.get("/c")
        self.assertTrue(r.ok, r)
        self.assertEqual(r.framing, "chunked")
        self.assertNotIn("content-length", r.headers)
        self.assertEqual(r.body, og.body_for("/c", 100_000))

    def test_chunked_truncated(self):
        self.o.set_object("/c", size=100_000, chunked=True, truncate_after=70_000)
        r = self.get("/c")
        self.assertFalse(r.complete)
        self.assertIn("before the last chunk", r.error)
        self.assertEqual(r.body, og.body_for("/c", 70_000))

    def test_close_delimited(self):
        self.o.set_object("/cd", size=5000, close_delimited=True)
        r = self.get("/cd")
        self.assertTrue(r.ok, r)
        self.assertEqual(r.framing, "close")
        self.assertTrue(r.server_closed)
        self.assertEqual(r.body, og.body_for("/cd", 5000))

    def test_fail_times(self):
        self.o.set_object("/f", status=503, fail_times=2)
        self.assertEqual([self.get("/f").status for _ in range(3)], [503, 503, 200])
        self.o.set_object("/g", reset_after=10, fail_times=1)
        self.assertFalse(self.get("/g").complete)
        r = self.get("/g")
        self.assertTrue(r.ok)
        self.assertEqual(r.body, og.body_for("/g"))

    def test_hang_headers(self):
        self.o.set_object("/h", hang_headers=True, fail_times=1)
        r = self.get("/h", timeout=0.3)
        self.assertIsNone(r.status)
        self.assertIsNone(r.ttfb)
        self.assertEqual(r.error, "timeout")
        wait_until(lambda: self.stat("aborted_by_client") == 1, 2, message="abort")
        self.assertEqual(self.stat("in_flight"), 0)
        self.assertEqual(self.o.requests("/h"), 1)
        self.assertTrue(self.get("/h").ok)

    def test_header_byte_ms_trickles_the_head(self):
        self.o.set_object("/t", size=10, header_byte_ms=20)
        t0 = time.monotonic()
        r = self.get("/t")
        # ~150 head bytes 20 ms apart: seconds, not milliseconds
        self.assertGreater(time.monotonic() - t0, 1.0)
        self.assertTrue(r.ok)
        self.assertEqual(r.body, og.body_for("/t", 10))
        self.o.set_object("/u", size=10, header_byte_ms=1000)
        r = self.get("/u", timeout=0.5)
        self.assertEqual(r.error, "timeout")
        wait_until(lambda: self.stat("aborted_by_client") == 1, 3, message="abort")


class StatsTests(OriginCase):
    def test_max_concurrency_with_parallel_slow_requests(self):
        self.o.set_object("/slow", delay_ms=400)
        with concurrent.futures.ThreadPoolExecutor(5) as ex:
            futs = [ex.submit(self.get, "/slow") for _ in range(5)]
            wait_until(lambda: self.stat("in_flight") == 5, 2, message="5 in flight")
            results = [f.result(5) for f in futs]
        self.assertTrue(all(r.ok for r in results))
        s = self.o.wait_idle()
        self.assertEqual((s["max_in_flight"], s["in_flight"]), (5, 0))
        self.assertEqual(s["total_requests"], 5)
        self.assertEqual(s["responses_completed"], 5)
        self.assertEqual(s["connections_accepted"], 5)
        self.assertEqual(self.o.wait_idle(connections=True)["connections_open"], 0)

    def test_keep_alive_session_and_connection_counts(self):
        with hc.Session(H, self.o.port) as s:
            for p in ("/1", "/2", "/3"):
                self.assertEqual(s.request(p).body, og.body_for(p))
            self.assertEqual(s.connections, 1)
            st = self.o.stats()
            self.assertEqual((st["connections_accepted"], st["connections_open"]), (1, 1))
            self.assertEqual(hc.tcp_connections(os.getpid(), remote_port=self.o.port), 1)
        wait_until(lambda: self.stat("connections_open") == 0, 2, message="closed")
        self.assertEqual(hc.tcp_connections(os.getpid(), remote_port=self.o.port), 0)
        self.assertEqual(self.stat("aborted_by_client"), 0)

    def test_session_reconnects_after_connection_close(self):
        with hc.Session(H, self.o.port) as s:
            r = s.request("/a", headers={"Connection": "close"})
            self.assertEqual(r.header("connection"), "close")
            self.assertTrue(s.request("/b").ok)
            self.assertEqual(s.connections, 2)

    def test_reset_during_a_response(self):
        self.o.set_object("/s", size=2000, stall_after=10, stall_ms=300)
        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            fut = ex.submit(self.get, "/s")
            wait_until(lambda: self.o.bytes_sent("/s") == 10, 2, message="10 bytes")
            self.o.reset()
            self.assertEqual(self.stat("in_flight"), 1)
            self.assertEqual(self.stat("max_in_flight"), 1)
            self.assertTrue(fut.result(5).ok)
        st = self.o.wait_idle()
        self.assertEqual((st["paths"], st["total_requests"], st["in_flight"]), ({}, 0, 0))
        self.assertEqual(st["responses_completed"], 0)

    def test_control_api_over_http(self):
        remote = og.RemoteOrigin(self.o.port)
        self.assertTrue(remote.health()["ok"])
        remote.set_object("/k", size=10, headers={"X-T": "1"})
        remote.set_object("/b", body=b"\x00\x01binary")
        self.assertEqual(self.get("/k").body, og.body_for("/k", 10))
        self.assertEqual(self.get("/b").body, b"\x00\x01binary")
        s = remote.stats()
        self.assertEqual(sorted(s["paths"]), ["/b", "/k"])
        self.assertEqual(s["total_requests"], 2)
        self.assertEqual(s["connections_accepted"], 2)
        self.assertEqual(remote.requests("/k"), 1)
        self.assertEqual([e["path"] for e in remote.request_log()], ["/k", "/b"])
        with self.assertRaises(ValueError):
            remote.set_object("/x", rate="fast")
        self.assertEqual(self.get("/_origin/nope").status, 404)
        self.assertEqual(self.get("/_origin/reset").status, 405)
        r = self.get("/_origin/object", method="POST",
                     body=b'{"path": "/j", "body": "%s"}' % base64.b64encode(b"js"))
        self.assertEqual(r.status, 200)
        self.assertEqual(self.get("/j").body, b"js")
        remote.reset()
        s = remote.stats()
        self.assertEqual((s["total_requests"], s["paths"]), (0, {}))
        self.assertEqual(self.get("/b").body, og.body_for("/b"))


class ClientTests(OriginCase):
    def test_slow_reader(self):
        self.o.set_object("/r", size=20_000)
        r = self.get("/r", read_rate=40_000)
        self.assertTrue(r.ok, r)
        self.assertEqual(r.body, og.body_for("/r", 20_000))
        self.assertTrue(0.4 <= r.elapsed <= 1.2, r.elapsed)

    def test_stop_reading_server_keeps_connection(self):
        self.o.set_object("/big", size=64_000_000)
        r = self.get("/big", stop_reading_after=1000, timeout=0.5, rcvbuf=4096)
        self.assertTrue(r.stopped_reading)
        self.assertEqual(r.body, og.body_for("/big", 1000))
        self.assertFalse(r.complete)
        self.assertFalse(r.server_closed)
        self.assertEqual(r.error, "timeout")
        self.assertLess(self.o.bytes_sent("/big"), 64_000_000)
        wait_until(lambda: self.stat("aborted_by_client") == 1, 2, message="abort")

    def test_stop_reading_server_closes(self):
        self.o.set_object("/t", size=200_000, truncate_after=50_000)
        r = self.get("/t", stop_reading_after=1000, timeout=2)
        self.assertTrue(r.stopped_reading)
        self.assertTrue(r.server_closed)
        self.assertFalse(r.reset)
        self.assertIsNotNone(r.closed_after)
        self.assertIsNone(r.error)
        self.assertFalse(r.complete)
        self.assertEqual(len(r.body), 1000)

    def test_connect_refused(self):
        r = fetch(H, hc.free_port(), "/", timeout=1)
        self.assertIsNone(r.status)
        self.assertIn("connect failed", r.error)

    def test_headers_multimap(self):
        h = hc.Headers([("A", "1"), ("b", "2"), ("a", "3")])
        self.assertEqual(h.get("a"), "1")
        self.assertEqual(h["B"], "2")
        self.assertEqual(h.get_all("A"), ["1", "3"])
        self.assertNotIn("c", h)
        self.assertIsNone(h.get("c"))

    def test_wait_until(self):
        self.assertEqual(wait_until(lambda: 7, 0.1), 7)
        with self.assertRaisesRegex(AssertionError, "never"):
            wait_until(lambda: 0, 0.1, message="never")

    def test_process_probes(self):
        pid = os.getpid()
        fds = hc.count_fds(pid)
        with socket.socket() as s:
            self.assertEqual(hc.count_fds(pid), fds + 1)
            s.bind((H, 0))
        self.assertEqual(hc.count_fds(pid), fds)
        self.assertEqual(hc.threads(pid), threading.active_count())
        port = hc.free_port()
        with socket.socket() as s:
            s.bind((H, port))


class LifecycleTests(unittest.TestCase):
    def test_stop_is_prompt_with_busy_connections(self):
        o = og.OriginServer().start()
        o.set_object("/hang", hang_headers=True)
        o.set_object("/stall", stall_after=10, stall_ms=-1)
        socks = [socket.create_connection((H, o.port)) for _ in range(2)]
        for s, p in zip(socks, ("/hang", "/stall")):
            s.sendall(f"GET {p} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        wait_until(lambda: o.stats()["in_flight"] == 2, 2, message="in flight")
        t = time.monotonic()
        o.stop()
        self.assertLess(time.monotonic() - t, 1.0)
        self.assertEqual(o.stats()["aborted_by_client"], 0)
        for s in socks:
            s.close()

    def test_script_mode(self):
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "origin.py")
        with tempfile.TemporaryDirectory() as d:
            pf = os.path.join(d, "port")
            p = subprocess.Popen([sys.executable, script, "--port", "0", "--port-file", pf],
                                 stdout=subprocess.PIPE, text=True)
            try:
                port = int(p.stdout.readline())
                wait_until(lambda: os.path.exists(pf), 5, message="port file")
                with open(pf) as f:
                    self.assertEqual(int(f.read()), port)
                r = fetch(H, port, "/s")
                self.assertEqual(r.body, og.body_for("/s"))
                self.assertEqual(og.RemoteOrigin(port).requests("/s"), 1)
                p.send_signal(signal.SIGTERM)
                self.assertEqual(p.wait(5), 0)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait(5)
                p.stdout.close()


if __name__ == "__main__":
    unittest.main()
