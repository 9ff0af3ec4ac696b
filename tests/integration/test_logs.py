"""Logs (docs/logs.md): the agent ends every fill with exactly one logfmt
line whose fields say what became of it, writes its lines to log_file when
one is set (and refuses to start when it cannot open it), and HAProxy's
line for a request carries the verdict, the SPOE time, the SPOE error and
Cache-Status after the standard httplog fields: for failed requests by
default, for every request with SLUICE_HAPROXY_LOG_ALL."""

import os
import hashlib
import re
import subprocess
import sys
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

from edge import AGENT_BIN, Edge  # noqa: E402
from httpclient import wait_until  # noqa: E402

FILL_FIELDS = ["route", "key", "origin_status", "bytes", "duration_ms", "followers", "outcome", "integrity"]
VALUE = r'("(?:[^"\\]|\\.)*"|[^ "]+)'
FILL_LINE = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ info fill((?: [a-z_]+=%s)+)$' % VALUE)


def parse_fields(text):
    """The name=value pairs of a logfmt tail, in order, values unquoted."""
    out = []
    for name, value in re.findall(r' ([a-z_]+)=%s' % VALUE, text):
        if value.startswith('"'):
            value = re.sub(r'\\(.)', r'\1', value[1:-1])
        out.append((name, value))
    return out


def read_text(path):
    with open(path) as f:
        return f.read()


def fill_lines(log):
    """Every fill line of an agent log, as a list of (name, value) pairs."""
    lines = []
    for line in log.splitlines():
        if " info fill " in line:
            m = FILL_LINE.match(line)
            assert m, "malformed fill line %r" % line
            lines.append(parse_fields(m.group(1)))
    return lines


class FillLines(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.edge = Edge(origin_routes=("generic", "maven"))
        cls.edge.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.edge.__exit__(None, None, None)

    def line_for(self, key):
        """The one fill line for key, once it is written (exactly one)."""
        def found():
            return [f for f in fill_lines(self.edge.agent_log()) if dict(f)["key"] == key]
        lines = wait_until(found, 10, message="no fill line for %s" % key)
        self.edge.wait_idle()
        lines = found()
        self.assertEqual(len(lines), 1, lines)
        names = [n for n, _ in lines[0]]
        self.assertEqual(names[:len(FILL_FIELDS)], FILL_FIELDS)
        fields = dict(lines[0])
        self.assertEqual("reason" in fields, fields["outcome"] in ("not-stored", "origin-error"), fields)
        self.assertGreaterEqual(int(fields["duration_ms"]), 0)
        return fields

    def test_cold_fill_is_stored(self):
        r = self.edge.get("/generic/logs/cold.bin")
        self.assertEqual(r.status, 200)
        f = self.line_for("generic:logs/cold.bin")
        self.assertEqual((f["route"], f["origin_status"], f["bytes"], f["followers"], f["outcome"],
                          f["integrity"]), ("generic", "200", "1000", "1", "stored", "none"))
        # A hit is no fill: still one line for the key.
        self.assertEqual(self.edge.get("/generic/logs/cold.bin").status, 200)
        self.line_for("generic:logs/cold.bin")

    def test_origin_500_is_an_origin_error(self):
        self.edge.origin.set_object("/logs/err.bin", status=500)
        self.assertEqual(self.edge.get("/generic/logs/err.bin").status, 500)
        f = self.line_for("generic:logs/err.bin")
        self.assertEqual((f["origin_status"], f["outcome"], f["reason"]), ("500", "origin-error", "5xx"))

    def test_truncated_body_is_an_origin_error(self):
        self.edge.origin.set_object("/logs/trunc.bin", size=200_000, truncate_after=50_000)
        r = self.edge.get("/generic/logs/trunc.bin")
        self.assertFalse(r.complete)
        f = self.line_for("generic:logs/trunc.bin")
        self.assertEqual((f["origin_status"], f["bytes"], f["outcome"], f["reason"]),
                         ("200", "50000", "origin-error", "truncated"))

    def test_integrity_failure(self):
        # Maven verifies a jar against the .sha1 beside it: a wrong one.
        self.edge.origin.set_object("/org/ex/lib/1.0/lib-1.0.jar.sha1", body=b"0" * 40 + b"\n")
        r = self.edge.get("/maven/org/ex/lib/1.0/lib-1.0.jar")
        self.assertFalse(r.complete)
        f = self.line_for("maven:org/ex/lib/1.0/lib-1.0.jar")
        self.assertEqual((f["route"], f["origin_status"], f["outcome"], f["integrity"]),
                         ("maven", "200", "integrity-failure", "failed"))
        side = self.line_for("maven:org/ex/lib/1.0/lib-1.0.jar.sha1")
        self.assertEqual((side["outcome"], side["integrity"]), ("stored", "none"))

    def test_integrity_verified(self):
        body = self.edge.origin.expected_body("/org/ex/ok/1.0/ok-1.0.jar")
        self.edge.origin.set_object("/org/ex/ok/1.0/ok-1.0.jar.sha1",
                                    body=hashlib.sha1(body).hexdigest().encode() + b"  ok-1.0.jar\n")
        r = self.edge.get("/maven/org/ex/ok/1.0/ok-1.0.jar")
        self.assertTrue(r.complete)
        f = self.line_for("maven:org/ex/ok/1.0/ok-1.0.jar")
        self.assertEqual((f["outcome"], f["integrity"]), ("stored", "verified"))

    def test_followers_count_every_reader(self):
        p = "/logs/slow.bin"
        self.edge.origin.set_object(p, size=400_000, rate=400_000)
        results = []
        first = threading.Thread(target=lambda: results.append(self.edge.get("/generic" + p)))
        first.start()
        wait_until(lambda: self.edge.metric("sluice_fill_readers_attached") >= 1, 5)
        second = self.edge.get("/generic" + p)
        first.join(10)
        self.assertTrue(second.complete and results and results[0].complete)
        f = self.line_for("generic:logs/slow.bin")
        self.assertEqual((f["followers"], f["bytes"], f["outcome"]), ("2", "400000", "stored"))
        self.assertEqual(self.edge.origin.requests(p), 1)

    def test_haproxy_logs_only_failed_requests_by_default(self):
        self.edge.origin.set_object("/logs/ha500.bin", status=500)
        self.assertEqual(self.edge.get("/generic/logs/ha500.bin").status, 500)
        self.assertEqual(self.edge.get("/generic/logs/ha200.bin").status, 200)
        f = haproxy_fields(self, self.edge, "/generic/logs/ha500.bin", 1)[0]
        self.assertEqual(f["verdict"], "fill")
        self.assertRegex(f["spoe_ms"], r"^\d+$")
        self.assertEqual(f["cache_status"], "sluice; fwd=uri-miss")
        self.assertEqual(haproxy_lines(self.edge, "/generic/logs/ha200.bin"), [])


class OtherOutcomes(unittest.TestCase):
    """not-cacheable, not-stored and aborted, on an agent that lets a fill
    go as soon as its last client leaves and stores nothing over 100 KiB."""

    @classmethod
    def setUpClass(cls):
        cls.edge = Edge(haproxy=False, settings={"fill_background_max_size": "0", "object_max_size": "100k"})
        cls.edge.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.edge.__exit__(None, None, None)

    line_for = FillLines.line_for

    def test_404_is_not_cacheable(self):
        self.edge.origin.set_object("/logs/missing.bin", status=404)
        self.assertEqual(self.edge.get_agent("/generic/logs/missing.bin").status, 404)
        f = self.line_for("generic:logs/missing.bin")
        self.assertEqual((f["origin_status"], f["outcome"]), ("404", "not-cacheable"))

    def test_body_growing_past_object_max_size_is_not_stored(self):
        self.edge.origin.set_object("/logs/big.bin", size=200_000, chunked=True)
        r = self.edge.get_agent("/generic/logs/big.bin")
        self.assertTrue(r.complete)
        self.assertEqual(len(r.body), 200_000)
        f = self.line_for("generic:logs/big.bin")
        self.assertEqual((f["bytes"], f["outcome"], f["reason"]), ("200000", "not-stored", "too-large"))

    def test_client_leaving_aborts_the_fill(self):
        self.edge.origin.set_object("/logs/left.bin", size=90_000, rate=30_000)
        r = self.edge.get_agent("/generic/logs/left.bin", timeout=0.5)
        self.assertFalse(r.complete)
        f = self.line_for("generic:logs/left.bin")
        self.assertEqual((f["origin_status"], f["followers"], f["outcome"]), ("200", "1", "aborted"))
        self.assertLess(int(f["bytes"]), 90_000)


def haproxy_lines(edge, path):
    return [ln for ln in edge.haproxy_log().splitlines() if '"GET %s HTTP/1.1"' % path in ln]


def haproxy_fields(test, edge, path, n):
    """The Sluice fields of the n HAProxy lines for path, after checking
    that httplog's come first: client, [date], frontend, backend/server,
    timers, status, bytes ... then the request in quotes."""
    got = wait_until(lambda: len(haproxy_lines(edge, path)) == n and haproxy_lines(edge, path), 10,
                     message="not %d HAProxy log lines for %s" % (n, path))
    out = []
    for line in got:
        m = re.match(r'^127\.0\.0\.1:\d+ \[[^]]+\] edge \S+/\S+ [-\d/]+ \d{3} \d+ .* "GET %s HTTP/1\.1"'
                     r'((?: [a-z_]+=%s)+)$' % (re.escape(path), VALUE), line)
        test.assertIsNotNone(m, line)
        f = parse_fields(m.group(1))
        test.assertEqual([n for n, _ in f], ["verdict", "spoe_ms", "spoe_err", "cache_status"])
        out.append(dict(f))
    return out


class LogAllEdge(Edge):
    """HAProxy started with SLUICE_HAPROXY_LOG_ALL: every request logged."""
    def haproxy_env(self):
        env = super().haproxy_env()
        env["SLUICE_HAPROXY_LOG_ALL"] = "1"
        return env


class HAProxyLogAll(unittest.TestCase):
    def test_every_request_has_verdict_spoe_time_and_cache_status(self):
        with LogAllEdge() as e:
            p = "/generic/logs/ha.bin"
            self.assertEqual(e.get(p).status, 200)
            e.wait_idle()
            self.assertEqual(e.get(p).status, 200)
            fill, hit = haproxy_fields(self, e, p, 2)
            self.assertEqual((fill["verdict"], fill["spoe_err"], fill["cache_status"]),
                             ("fill", "-", "sluice; fwd=uri-miss; stored"))
            self.assertIn(hit["verdict"], ("hit", "inline"))
            self.assertEqual(hit["cache_status"], "sluice; hit")
            for f in (fill, hit):
                self.assertRegex(f["spoe_ms"], r"^\d+$")
            # Not asked (no route): every Sluice field "-" but Cache-Status.
            self.assertEqual(e.get("/no-such-route/x").status, 404)
            f = haproxy_fields(self, e, "/no-such-route/x", 1)[0]
            self.assertEqual(f, {"verdict": "-", "spoe_ms": "-", "spoe_err": "-",
                                 "cache_status": "sluice; fwd=bypass; detail=no-route"})
            # The agent gone: the request fails open and says why.
            e.kill_agent()
            r = e.get("/generic/logs/down.bin")
            self.assertEqual(r.status, 200)
            f = haproxy_fields(self, e, "/generic/logs/down.bin", 1)[0]
            self.assertEqual(f["verdict"], "-")
            self.assertNotEqual(f["spoe_err"], "-")
            self.assertIn("fwd=bypass", f["cache_status"])


class LogFile(unittest.TestCase):
    def test_lines_go_to_log_file(self):
        e = Edge(haproxy=False)
        path = os.path.join(e.tmp, "logs", "sluice.log")
        os.mkdir(os.path.dirname(path))
        e.settings["log_file"] = path
        with e:
            self.assertEqual(e.get_agent("/generic/logs/file.bin").status, 200)
            wait_until(lambda: os.path.exists(path) and fill_lines(read_text(path)), 10,
                       message="no fill line in log_file")
            self.assertEqual(os.stat(path).st_mode & 0o077 & ~0o040, 0)   # at most 0640
            text = read_text(path)
            self.assertIn(" info listening: ", text)
            self.assertEqual(dict(fill_lines(text)[0])["key"], "generic:logs/file.bin")
            self.assertNotIn(" fill ", e.agent_log())   # not on stderr too

    def test_unopenable_log_file_stops_the_start(self):
        e = Edge(origin=False, haproxy=False)
        try:
            e.settings["log_file"] = os.path.join(e.tmp, "missing-dir", "sluice.log")
            e.write_config()
            r = subprocess.run([AGENT_BIN, "-c", e.config_path], env=e.agent_env(), capture_output=True,
                               timeout=30)
            self.assertEqual(r.returncode, 1)
            self.assertIn(b"log_file", r.stderr)
            self.assertIn(b"No such file or directory", r.stderr)
        finally:
            e.stop()


if __name__ == "__main__":
    unittest.main()
