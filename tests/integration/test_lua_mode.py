"""Lua HTTP mode (issue 16): the real HAProxy with haproxy/haproxy-lua.cfg,
whose lua/sluice.lua asks the agent's GET /_sluice/verdict instead of SPOP
and sets the same variables, so the same rules route. Each test states one
behaviour an edge without SPOE relies on: the verdicts, hits and fills,
fail-open at once while the agent is down and back to the cache when it
returns, a slow agent bounded by the verdict timeout, the endpoint's own
answers, and the drop-in lines passing `haproxy -c`.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

from edge import HAPROXY, ROOT, Edge  # noqa: E402
from httpclient import wait_until  # noqa: E402
from origin import body_for  # noqa: E402

LUA_CFG = "haproxy-lua.cfg"
SIZE = 50_000


def verdicts(edge, kind):
    return edge.metric('sluice_verdicts_total{verdict="%s"}' % kind)


class LuaEdgeTest(unittest.TestCase):
    settings = {}
    transport = "unix"
    per_test = False   # a fresh edge for each test (tests that break the agent)

    @classmethod
    def make_edge(cls):
        return Edge(settings=cls.settings, transport=cls.transport, haproxy_cfg=LUA_CFG,
                    origin_routes=("generic", "pypi"))

    @classmethod
    def setUpClass(cls):
        if not cls.per_test:
            cls.edge = cls.make_edge()
            cls.edge.__enter__()

    @classmethod
    def tearDownClass(cls):
        if not cls.per_test:
            cls.edge.__exit__(None, None, None)

    def setUp(self):
        if self.per_test:
            self.edge = self.make_edge()
            self.edge.__enter__()
            self.addCleanup(self.edge.__exit__, None, None, None)

    def path(self, name, **knobs):
        p = "/lua/%s/%s.bin" % (self.id().rsplit(".", 1)[-1], name)
        self.edge.origin.set_object(p, size=SIZE, **knobs)
        return p

    def assert_from_origin(self, r, p):
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, body_for(p, SIZE))
        self.assertEqual(r.header("Cache-Status"), "sluice; fwd=bypass")


class Verdicts(LuaEdgeTest):
    def test_miss_is_filled_then_hit_is_served(self):
        p = self.path("obj")
        fills, hits = verdicts(self.edge, "fill"), verdicts(self.edge, "hit")
        first = self.edge.get("/generic" + p)
        self.assertEqual(first.status, 200)
        self.assertEqual(first.body, body_for(p, SIZE))
        self.assertEqual(first.header("Cache-Status"), "sluice; fwd=uri-miss; stored")
        self.assertEqual(verdicts(self.edge, "fill"), fills + 1)
        self.edge.wait_idle()
        second = self.edge.get("/generic" + p)
        self.assertEqual(second.body, first.body)
        self.assertEqual(second.header("Cache-Status"), "sluice; hit")
        self.assertEqual(verdicts(self.edge, "hit"), hits + 1)
        self.assertEqual(verdicts(self.edge, "inline"), 0)
        self.assertEqual(self.edge.origin.requests(p), 1)

    def test_credentials_pass_to_the_origin(self):
        p = self.path("private")
        passes = verdicts(self.edge, "pass")
        for _ in range(2):
            r = self.edge.get("/generic" + p, headers={"Authorization": "Bearer x"})
            self.assert_from_origin(r, p)
        self.assertEqual(verdicts(self.edge, "pass"), passes + 2)
        self.assertEqual(self.edge.origin.requests(p), 2)

    def test_query_is_carried_to_the_verdict(self):
        p = self.path("q")
        a = self.edge.get("/generic" + p + "?v=1&x=%2B+")
        self.edge.wait_idle()
        b = self.edge.get("/generic" + p + "?v=2")
        self.assertEqual(a.body, body_for(p + "?v=1&x=%2B+"))
        self.assertEqual(b.body, body_for(p + "?v=2"))
        self.assertEqual(b.header("Cache-Status"), "sluice; fwd=uri-miss; stored")
        self.edge.wait_idle()
        again = self.edge.get("/generic" + p + "?v=1&x=%2B+")
        self.assertEqual(again.header("Cache-Status"), "sluice; hit")

    def test_ambiguous_path_is_rejected_with_the_agents_reason(self):
        rejects = verdicts(self.edge, "reject")
        r = self.edge.get("/generic/lua/bad%ff.bin")
        self.assertEqual(r.status, 400)
        self.assertIn(b"UTF-8", r.body)
        self.assertEqual(r.header("Cache-Status"), "sluice; fwd=bypass; detail=rejected")
        self.assertEqual(verdicts(self.edge, "reject"), rejects + 1)
        self.assertEqual(self.edge.origin.requests("/lua/bad%ff.bin"), 0)

    def test_oversized_targets_are_refused_414_without_the_origin(self):
        # 8200 slashes: the verdict request itself is too long for the
        # agent, which sluice.lua takes as a 414 (it failed open before).
        # 1000 slashes: the verdict refuses it (request_segments_max).
        for p in ("/lua/" + "/" * 8200 + "long.bin", "/lua/" + "/" * 1000 + "deep.bin"):
            r = self.edge.get("/generic" + p)
            self.assertEqual(r.status, 414, p[:20])
            self.assertEqual(r.header("Cache-Status"), "sluice; fwd=bypass; detail=rejected")
        self.assertEqual(self.edge.origin.requests("/lua/long.bin"), 0)
        self.assertEqual(sum(self.edge.origin.stats()["statuses"].get(k, 0) for k in ("414",)), 0)
        self.assertGreaterEqual(self.edge.metric('sluice_oversized_requests_total{route="generic"}'), 1)

    def test_other_spelling_is_redirected(self):
        redirects = verdicts(self.edge, "redirect")
        r = self.edge.get("/pypi/simple/Demo_A/")
        self.assertEqual(r.status, 301)
        self.assertEqual(r.header("Location"), "/pypi/simple/demo-a/")
        self.assertEqual(verdicts(self.edge, "redirect"), redirects + 1)


class Busy(LuaEdgeTest):
    settings = {"origin_max_in_flight_per_origin": "1", "origin_queue_max": "0", "retry_after_max": "7s"}

    def test_full_queue_is_answered_503_by_haproxy(self):
        slow = self.path("slow", rate=SIZE)   # one second of body
        leader = threading.Thread(target=self.edge.get, args=("/generic" + slow,), kwargs={"timeout": 30})
        leader.start()
        self.addCleanup(leader.join, 30)
        wait_until(lambda: self.edge.metric("sluice_origin_fetches_in_flight") == 1, 10,
                   message="the leader never reached the origin")
        before = self.edge.metrics()
        p = self.path("shed")
        r = self.edge.get("/generic" + p)
        after = self.edge.metrics()
        self.assertEqual(r.status, 503)
        self.assertTrue(1 <= int(r.header("Retry-After")) <= 7, r.header("Retry-After"))
        self.assertIn("detail=busy", r.header("Cache-Status"))
        self.assertEqual(after['sluice_verdicts_total{verdict="busy"}'] - before['sluice_verdicts_total{verdict="busy"}'], 1)
        self.assertEqual(self.edge.origin.requests(p), 0)


class AgentDown(LuaEdgeTest):
    """Over TCP, where 2.6's httpclient spends ~3 s on a refused connection:
    only the health flag makes fail-open immediate."""
    transport = "tcp"
    per_test = True

    def timed_get(self, path):
        t = time.monotonic()
        r = self.edge.get(path, timeout=15)
        return r, time.monotonic() - t

    def test_fail_open_at_once_while_down_and_cached_again_when_back(self):
        cached = self.path("cached")
        self.edge.get("/generic" + cached)
        self.edge.wait_idle()
        self.assertEqual(self.edge.get("/generic" + cached).header("Cache-Status"), "sluice; hit")
        self.edge.kill_agent()

        p = self.path("down")
        # Every thread's flag is down once a run of requests is all fast.
        wait_until(lambda: all(self.timed_get("/generic" + p)[1] < 0.3 for _ in range(6)), 30,
                   message="requests never became fast while the agent was down")
        self.assertIn("sluice: agent down", self.edge.haproxy_log())
        for _ in range(10):
            r, took = self.timed_get("/generic" + p)
            self.assert_from_origin(r, p)
            self.assertLess(took, 0.5)
        r, _ = self.timed_get("/generic" + cached)
        self.assert_from_origin(r, cached)

        self.edge.start_agent()
        wait_until(lambda: all(self.edge.get("/generic" + cached).header("Cache-Status") == "sluice; hit"
                               for _ in range(4)), 30, message="hits did not come back with the agent")
        self.assertIn("sluice: agent up", self.edge.haproxy_log())


class AgentSlow(LuaEdgeTest):
    per_test = True

    def test_verdict_timeout_fails_open_in_bounded_time(self):
        p = self.path("slow")
        self.edge.fault("verdict_delay=5s")
        t = time.monotonic()
        r = self.edge.get("/generic" + p, timeout=15)
        took = time.monotonic() - t
        self.assert_from_origin(r, p)
        # 4 attempts of 120 ms (lua/sluice.lua), with room for a loaded box.
        self.assertLess(took, 1.5)
        self.assertEqual(self.edge.metric("sluice_fills_total"), 0)
        self.edge.fault("kind=none")
        wait_until(lambda: self.edge.get("/generic" + p).header("Cache-Status") == "sluice; fwd=uri-miss; stored",
                   15, message="verdicts did not come back once the agent was quick again")


class Endpoint(unittest.TestCase):
    """GET /_sluice/verdict on the agent's HTTP side, asked directly."""

    @classmethod
    def setUpClass(cls):
        cls.edge = Edge(haproxy=False)
        cls.edge.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.edge.__exit__(None, None, None)

    def ask(self, query, **kw):
        return self.edge.get_agent("/_sluice/verdict?" + query, **kw)

    def test_answers_in_headers_and_body(self):
        r = self.ask("route=generic&method=GET&path=%2Fgeneric%2Fa.bin&auth=0&range=0&inm=0&ims=0")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Sluice-Verdict"), "fill")
        self.assertEqual(r.body, b"fill\n")
        self.assertEqual(r.header("Cache-Control"), "no-store")
        r = self.ask("route=generic&method=GET&path=/generic/a.bin&auth=1")
        self.assertEqual(r.header("Sluice-Verdict"), "pass")
        r = self.ask("route=generic&method=HEAD&path=/generic/a.bin&auth=0", method="HEAD")
        self.assertEqual((r.status, r.header("Sluice-Verdict")), (200, "fill"))

    def test_reject_carries_status_and_reason(self):
        # The raw path "/generic/%2e%2e/x", percent-encoded once more.
        r = self.ask("route=generic&method=GET&path=/generic/%252e%252e/x&auth=0")
        self.assertEqual(r.header("Sluice-Verdict"), "reject")
        self.assertEqual(r.header("Sluice-Status"), "400")
        self.assertIn("traversal", r.header("Sluice-Reason"))

    def test_bad_arguments_are_400_with_the_reason(self):
        base = "route=generic&method=GET&path=/generic/a.bin"
        cases = {
            base: "missing argument 'auth'",
            "method=GET&path=/generic/a.bin&auth=0": "missing argument 'route'",
            base + "&auth=yes": "argument 'auth' must be 0 or 1",
            base + "&auth=0&range=2": "argument 'range' must be 0 or 1",
            base + "&auth=0&auth=1": "argument 'auth' given twice",
            base + "&auth=0&accept=%zz": "argument 'accept': bad percent-escape or NUL",
            base + "&auth=0&query=a%00": "argument 'query': bad percent-escape or NUL",
            "route=generic&method=GET&path=generic&auth=0": "argument 'path' must start with '/'",
            base + "&auth=0&oops": "'oops' is not name=value",
            "": "missing argument 'route'",
        }
        for query, reason in cases.items():
            r = self.ask(query)
            self.assertEqual(r.status, 400, query)
            self.assertEqual(r.body.decode(), reason + "\n", query)
            self.assertIsNone(r.header("Sluice-Verdict"), query)

    def test_unknown_arguments_are_ignored_and_post_refused(self):
        r = self.ask("route=generic&method=GET&path=/generic/a.bin&auth=0&future=1")
        self.assertEqual(r.header("Sluice-Verdict"), "fill")
        r = self.ask("route=generic&method=GET&path=/generic/a.bin&auth=0", method="POST")
        self.assertEqual(r.status, 405)


class DropIn(unittest.TestCase):
    """examples/drop-in/lua/ added to a minimal existing configuration."""

    def test_drop_in_lines_pass_haproxy_check(self):
        src = os.path.join(ROOT, "examples", "drop-in", "lua")
        tmp = tempfile.mkdtemp(prefix="sluice-dropin-")
        self.addCleanup(shutil.rmtree, tmp, True)
        shutil.copy(os.path.join(ROOT, "haproxy", "routes.map"), tmp)
        shutil.copy(os.path.join(ROOT, "lua", "sluice.lua"), tmp)

        def part(name):
            with open(os.path.join(src, name)) as f:
                return f.read()
        cfg = ("global\n    log stdout format raw local0 notice\n" + part("global.cfg")
               + "\ndefaults\n    mode http\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n"
               + "\nfrontend existing\n    bind 127.0.0.1:8080\n" + part("frontend.cfg")
               + "    default_backend be_app\n"
               + "\nbackend be_app\n    server app 127.0.0.1:9\n\n" + part("backend.cfg"))
        path = os.path.join(tmp, "haproxy.cfg")
        with open(path, "w") as f:
            f.write(cfg)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
        env["SLUICE_DIR"] = tmp
        r = subprocess.run([HAPROXY, "-c", "-f", path], env=env, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotIn("WARNING", r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
