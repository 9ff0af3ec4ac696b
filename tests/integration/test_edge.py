"""The walking skeleton through the real edge: HAProxy + SPOP agent + disk
cache + a test origin. Each test states one behaviour a user relies on.
"""

import errno
import os
import signal
import socket
import stat
import sys
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

from edge import Edge  # noqa: E402
from httpclient import fetch, wait_until  # noqa: E402
from origin import body_for  # noqa: E402


class EdgeTest(unittest.TestCase):
    settings = {}
    transport = "tcp"

    @classmethod
    def setUpClass(cls):
        cls.edge = Edge(settings=cls.settings, transport=cls.transport)
        cls.edge.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.edge.__exit__(None, None, None)

    def path(self, name, **knobs):
        """A fresh object on the origin (a unique path per test)."""
        p = "/%s/%s.bin" % (self.id().rsplit(".", 1)[-1], name)
        if knobs:
            self.edge.origin.set_object(p, **knobs)
        return p


class MissThenHit(EdgeTest):
    def test_miss_then_hit_byte_exact_one_origin_request(self):
        p = self.path("obj", size=300_000)
        first = self.edge.get("/generic" + p)
        self.assertEqual(first.status, 200)
        self.assertTrue(first.complete)
        self.assertEqual(first.body, body_for(p, 300_000))
        self.assertRegex(first.header("Cache-Status"), r"^sluice; fwd=uri-miss; stored$")
        self.edge.wait_idle()
        second = self.edge.get("/generic" + p)
        self.assertEqual(second.status, 200)
        self.assertEqual(second.body, first.body)
        self.assertEqual(second.header("Cache-Status"), "sluice; hit")
        self.assertEqual(second.header("ETag"), first.header("ETag"))
        self.assertIsNotNone(second.header("Age"))
        self.assertIsNotNone(second.header("Last-Modified"))
        self.assertEqual(self.edge.origin.requests(p), 1)

    def test_chunked_origin_is_stored_with_its_length(self):
        p = self.path("chunked", size=70_000, chunked=True)
        first = self.edge.get("/generic" + p)
        self.assertTrue(first.complete)
        self.assertEqual(first.body, body_for(p, 70_000))
        self.edge.wait_idle()
        second = self.edge.get("/generic" + p)
        self.assertEqual(second.header("Cache-Status"), "sluice; hit")
        self.assertEqual(second.header("Content-Length"), "70000")
        self.assertEqual(second.body, first.body)
        self.assertEqual(self.edge.origin.requests(p), 1)

    def test_query_is_part_of_the_key(self):
        p = self.path("q")
        a = self.edge.get("/generic" + p + "?v=1")
        b = self.edge.get("/generic" + p + "?v=2")
        self.assertEqual(a.body, body_for(p + "?v=1"))
        self.assertEqual(b.body, body_for(p + "?v=2"))
        self.assertNotEqual(a.body, b.body)

    def test_empty_body_is_cached(self):
        p = self.path("empty", size=0)
        self.assertEqual(self.edge.get("/generic" + p).status, 200)
        self.edge.wait_idle()
        r = self.edge.get("/generic" + p)
        self.assertEqual((r.status, r.body, r.header("Cache-Status")), (200, b"", "sluice; hit"))

    def test_origin_404_is_forwarded_and_not_stored(self):
        p = self.path("missing", status=404, body=b"nope\n")
        r = self.edge.get("/generic" + p)
        self.assertEqual((r.status, r.body), (404, b"nope\n"))
        self.edge.wait_idle()
        r = self.edge.get("/generic" + p)
        self.assertEqual(r.status, 404)
        self.assertEqual(self.edge.origin.requests(p), 2)


class ConditionalAndRange(EdgeTest):
    def setUp(self):
        self.p = self.path("obj", size=10_000)
        self.body = body_for(self.p, 10_000)
        self.edge.get("/generic" + self.p)
        self.edge.wait_idle()

    def test_head_on_hit(self):
        r = self.edge.get("/generic" + self.p, method="HEAD")
        self.assertEqual((r.status, r.body, r.header("Content-Length")), (200, b"", "10000"))
        self.assertEqual(r.header("Cache-Status"), "sluice; hit")

    def test_if_none_match_gives_304(self):
        etag = self.edge.get("/generic" + self.p).header("ETag")
        r = self.edge.get("/generic" + self.p, headers={"If-None-Match": etag})
        self.assertEqual((r.status, r.body), (304, b""))
        self.assertEqual(r.header("ETag"), etag)
        r = self.edge.get("/generic" + self.p, headers={"If-None-Match": '"other"'})
        self.assertEqual(r.status, 200)

    def test_if_modified_since_gives_304(self):
        lm = self.edge.get("/generic" + self.p).header("Last-Modified")
        r = self.edge.get("/generic" + self.p, headers={"If-Modified-Since": lm})
        self.assertEqual(r.status, 304)
        r = self.edge.get("/generic" + self.p, headers={"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"})
        self.assertEqual(r.status, 200)

    def test_single_ranges(self):
        for rng, first, last in (("bytes=0-99", 0, 99), ("bytes=9990-", 9990, 9999),
                                 ("bytes=-10", 9990, 9999), ("bytes=5000-99999", 5000, 9999)):
            r = self.edge.get("/generic" + self.p, headers={"Range": rng})
            self.assertEqual(r.status, 206, rng)
            self.assertEqual(r.header("Content-Range"), "bytes %d-%d/10000" % (first, last))
            self.assertEqual(r.body, self.body[first:last + 1], rng)

    def test_if_range_resumes_only_the_same_version(self):
        # A download resumed with If-Range gets the rest of *that* version;
        # a validator of another one gets the whole body (RFC 9110 13.1.5),
        # never bytes of two versions spliced together.
        first = self.edge.get("/generic" + self.p)
        etag, lm = first.header("ETag"), first.header("Last-Modified")
        rng = {"Range": "bytes=9000-"}
        for validator in (etag, lm):
            r = self.edge.get("/generic" + self.p, headers=dict(rng, **{"If-Range": validator}))
            self.assertEqual((r.status, r.body), (206, self.body[9000:]), validator)
        for validator in ('"another-version"', "W/" + etag, "Sat, 01 Jan 2000 00:00:00 GMT", "garbage"):
            r = self.edge.get("/generic" + self.p, headers=dict(rng, **{"If-Range": validator}))
            self.assertEqual((r.status, r.body), (200, self.body), validator)
            self.assertIsNone(r.header("Content-Range"))

    def test_unsatisfiable_range(self):
        r = self.edge.get("/generic" + self.p, headers={"Range": "bytes=10000-"})
        self.assertEqual(r.status, 416)
        self.assertEqual(r.header("Content-Range"), "bytes */10000")

    def test_multi_range_is_answered_with_the_whole_body(self):
        r = self.edge.get("/generic" + self.p, headers={"Range": "bytes=0-1,5-6"})
        self.assertEqual((r.status, r.body), (200, self.body))


class PassThrough(EdgeTest):
    def test_post_goes_to_the_origin(self):
        p = self.path("post")
        r = self.edge.get("/generic" + p, method="POST", body=b"hello")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["method"], "POST")
        self.assertEqual(r.json()["path"], p)
        self.assertEqual(r.header("Cache-Status"), "sluice; fwd=bypass")
        self.assertEqual(self.edge.metric('sluice_verdicts_total{verdict="fill"}') >= 0, True)

    def test_credentials_bypass_the_cache(self):
        p = self.path("auth")
        for _ in range(2):
            r = self.edge.get("/generic" + p, headers={"Authorization": "Bearer x"})
            self.assertEqual(r.header("Cache-Status"), "sluice; fwd=bypass")
        self.assertEqual(self.edge.origin.requests(p), 2)

    def test_unknown_prefix_is_404_at_the_edge(self):
        r = self.edge.get("/nowhere/x")
        self.assertEqual(r.status, 404)
        self.assertIn("fwd=bypass", r.header("Cache-Status"))

    def test_path_traversal_is_not_cached(self):
        r = self.edge.get_agent("/generic/a/../../etc/passwd")
        self.assertEqual(r.status, 400)
        r = self.edge.get_agent("/generic/a/%2e%2e/b")
        self.assertEqual(r.status, 400)


class Truncation(EdgeTest):
    def test_truncated_origin_body_is_an_aborted_transfer_and_not_stored(self):
        p = self.path("trunc", size=200_000, truncate_after=50_000, fail_times=1)
        r = self.edge.get("/generic" + p)
        self.assertFalse(r.complete, "a truncated origin body must not end cleanly")
        self.assertTrue(body_for(p, 200_000).startswith(r.body))
        self.edge.wait_idle()
        self.assertEqual(self.edge.temp_files(), [])
        # The next request is a fresh fill, complete this time.
        r = self.edge.get("/generic" + p)
        self.assertTrue(r.complete)
        self.assertEqual(r.body, body_for(p, 200_000))
        self.assertIn("fwd=uri-miss", r.header("Cache-Status"))
        self.assertEqual(self.edge.origin.requests(p), 2)

    def test_truncated_chunked_origin_body_is_aborted(self):
        p = self.path("trunc_chunked", size=200_000, chunked=True, reset_after=60_000, fail_times=1)
        r = self.edge.get("/generic" + p)
        self.assertFalse(r.complete)
        self.edge.wait_idle()
        self.assertEqual(self.edge.temp_files(), [])
        self.assertGreaterEqual(self.edge.metric("sluice_fills_failed_total"), 1)


class FailOpen(unittest.TestCase):
    def test_agent_killed_serves_from_origin(self):
        with Edge() as e:
            p = "/failopen/killed.bin"
            e.kill_agent()
            for _ in range(3):
                r = e.get("/generic" + p, timeout=5)
                self.assertEqual(r.status, 200)
                self.assertEqual(r.body, body_for(p))
                self.assertEqual(r.header("Cache-Status"), "sluice; fwd=bypass")

    def test_agent_hung_serves_hot_keys_from_origin_too(self):
        # A key that was just a hit (and would be again) must fail open like
        # any other: nothing at the edge may route it past the SPOP verdict
        # to an agent that no longer answers. (Larger than the edge memory
        # tier's objects, which HAProxy answers itself: test_edge_tier.py.)
        with Edge() as e:
            p = "/failopen/hot.bin"
            e.origin.set_object(p, size=100_000)
            e.get("/generic" + p)
            e.wait_idle()
            for _ in range(3):
                self.assertEqual(e.get("/generic" + p).header("Cache-Status"), "sluice; hit")
            e.agent.send_signal(signal.SIGSTOP)
            try:
                r = e.get("/generic" + p, timeout=10)
                self.assertEqual((r.status, r.body), (200, body_for(p, 100_000)))
                self.assertEqual(r.header("Cache-Status"), "sluice; fwd=bypass")
                self.assertLess(r.elapsed, 2.0)
            finally:
                e.agent.send_signal(signal.SIGCONT)

    def test_agent_hung_serves_from_origin_within_the_processing_timeout(self):
        with Edge() as e:
            p = "/failopen/hung.bin"
            e.agent.send_signal(signal.SIGSTOP)
            try:
                for _ in range(2):
                    r = e.get("/generic" + p, timeout=5)
                    self.assertEqual(r.status, 200)
                    self.assertEqual(r.body, body_for(p))
                    self.assertEqual(r.header("Cache-Status"), "sluice; fwd=bypass")
                    # timeout processing is 500ms; allow scheduling slack.
                    self.assertLess(r.elapsed, 2.0)
            finally:
                e.agent.send_signal(signal.SIGCONT)

    def test_a_client_gone_while_the_agent_is_hung_never_reaches_the_origin(self):
        # The client leaves while its verdict is pending: HAProxy cuts the
        # SPOE exchange short (spoe_err 5) and the request is dropped, not
        # failed open; a client that waits still fails open.
        with Edge() as e:
            gone, stays = "/failopen/gone.bin", "/failopen/stays.bin"
            e.agent.send_signal(signal.SIGSTOP)
            try:
                s = socket.create_connection(("127.0.0.1", e.ports["listen"]), timeout=5)
                s.sendall(("GET /generic%s HTTP/1.1\r\nHost: x\r\n\r\n" % gone).encode())
                s.close()
                logged = "/generic%s HTTP/1.1\" verdict=- spoe_ms=- spoe_err=5" % gone
                wait_until(lambda: logged in e.haproxy_log(), 10, message="HAProxy never logged the abandoned request")
                r = e.get("/generic" + stays, timeout=5)
                self.assertEqual((r.status, r.header("Cache-Status")), (200, "sluice; fwd=bypass"))
            finally:
                e.agent.send_signal(signal.SIGCONT)
            # Requests reach the origin in order: the one that failed open
            # is there, so the abandoned one would be too.
            self.assertEqual(e.origin.requests(stays), 1)
            self.assertEqual(e.origin.requests(gone), 0)
            self.assertIn("detail=interrupted", e.haproxy_log())


class Restart(unittest.TestCase):
    def test_restart_keeps_hits(self):
        with Edge() as e:
            p, probe = "/restart/obj.bin", "/restart/probe.bin"
            e.origin.set_object(p, size=123_456)
            e.origin.set_object(probe, size=1000)
            for path in (p, probe):
                self.assertEqual(e.get("/generic" + path).status, 200)
            e.wait_idle()
            e.stop_agent()
            e.start_agent()
            # Until HAProxy's checks see the restarted agent, requests fail
            # open to the origin: wait on the probe, so that p's origin count
            # says whether the restart kept p.
            wait_until(lambda: e.get("/generic" + probe).header("Cache-Status") == "sluice; hit", 10,
                       message="restarted agent never served the probe's hit")
            r = e.get("/generic" + p)
            self.assertEqual(r.header("Cache-Status"), "sluice; hit")
            self.assertEqual(r.body, body_for(p, 123_456))
            self.assertEqual(e.origin.requests(p), 1)

    def test_leftover_temp_files_are_removed_at_start(self):
        with Edge() as e:
            e.stop_agent()
            os.makedirs(os.path.join(e.cache_dir, "tmp"), exist_ok=True)
            with open(os.path.join(e.cache_dir, "tmp", "deadbeef.1.1"), "wb") as f:
                f.write(b"x" * 100)
            e.start_agent()
            self.assertEqual(e.temp_files(), [])
            self.assertEqual(e.metric("sluice_temp_files_swept_total"), 1)


class InlineHits(EdgeTest):
    """Small hits travel inside the SPOP reply and HAProxy sends them
    (haproxy/sluice.lua): same bytes and headers as the HTTP side's hit.
    The edge memory tier is off here, so every hit asks the agent
    (test_edge_tier.py has the tier)."""
    settings = {"edge_tier_max_size": "0"}

    def cached(self, name, size):
        p = self.path(name, size=size)
        first = self.edge.get("/generic" + p)
        self.assertEqual(first.body, body_for(p, size))
        self.edge.wait_idle()
        return p, first.body

    def verdict_delta(self, fn):
        before = self.edge.metrics()
        result = fn()
        after = self.edge.metrics()
        return result, {v: after.get('sluice_verdicts_total{verdict="%s"}' % v, 0) -
                        before.get('sluice_verdicts_total{verdict="%s"}' % v, 0) for v in ("hit", "inline")}

    def test_small_hit_is_inline_byte_exact_with_the_http_sides_headers(self):
        p, body = self.cached("small", 5000)
        self.assertIn(b"\0", body)   # binary-safe all the way through Lua
        requests = self.edge.metric("sluice_http_requests_total")
        r, d = self.verdict_delta(lambda: self.edge.get("/generic" + p))
        self.assertEqual((r.status, r.body, d), (200, body, {"hit": 0, "inline": 1}))
        self.assertEqual(r.header("Content-Length"), "5000")
        self.assertEqual(self.edge.metric("sluice_http_requests_total"), requests)
        # The same hit from the agent's HTTP side (a non-matching condition
        # sends it there): the same header fields, Date and Age aside.
        h, d = self.verdict_delta(lambda: self.edge.get("/generic" + p, headers={"If-None-Match": '"x"'}))
        self.assertEqual((h.status, h.body, d), (200, body, {"hit": 1, "inline": 0}))
        fields = lambda res: sorted((k.lower(), v) for k, v in res.headers.items()  # noqa: E731
                                    if k.lower() not in ("date", "age"))
        self.assertEqual(fields(r), fields(h))
        self.assertEqual(r.header("Cache-Status"), "sluice; hit")

    def test_head_range_and_large_objects_take_the_http_side(self):
        p, body = self.cached("mid", 3000)
        r, d = self.verdict_delta(lambda: self.edge.get("/generic" + p, method="HEAD"))
        self.assertEqual((r.status, r.body, r.header("Content-Length"), d), (200, b"", "3000", {"hit": 1, "inline": 0}))
        r, d = self.verdict_delta(lambda: self.edge.get("/generic" + p, headers={"Range": "bytes=10-19"}))
        self.assertEqual((r.status, r.body, d), (206, body[10:20], {"hit": 1, "inline": 0}))
        big, big_body = self.cached("big", 20_000)
        r, d = self.verdict_delta(lambda: self.edge.get("/generic" + big))
        self.assertEqual((r.status, r.body, d), (200, big_body, {"hit": 1, "inline": 0}))

    def test_deleted_object_is_a_miss_not_an_inline_answer(self):
        p, body = self.cached("gone", 2000)
        for f in self.edge.object_files():
            os.unlink(f)
        r = self.edge.get("/generic" + p)
        self.assertEqual((r.status, r.body), (200, body))
        self.assertNotEqual(r.header("Cache-Status"), "sluice; hit")
        self.assertEqual(self.edge.origin.requests(p), 2)


class InlineOff(EdgeTest):
    settings = {"inline_hit_max": "0"}

    def test_inline_hit_max_0_serves_every_hit_from_the_http_side(self):
        p = self.path("off", size=1000)
        self.edge.get("/generic" + p)
        self.edge.wait_idle()
        r = self.edge.get("/generic" + p)
        self.assertEqual((r.status, r.body, r.header("Cache-Status")), (200, body_for(p, 1000), "sluice; hit"))
        self.assertEqual(self.edge.metric('sluice_verdicts_total{verdict="inline"}'), 0)
        self.assertEqual(self.edge.metric('sluice_verdicts_total{verdict="hit"}'), 1)


class Metrics(EdgeTest):
    def test_metrics_count_verdicts_hits_and_misses(self):
        before = self.edge.metrics()
        p = self.path("m", size=50_000)   # above inline_hit_max: an HTTP-side hit
        self.edge.get("/generic" + p)
        self.edge.wait_idle()
        self.edge.get("/generic" + p)
        after = self.edge.metrics()
        delta = lambda k: after.get(k, 0) - before.get(k, 0)  # noqa: E731
        self.assertEqual(delta('sluice_verdicts_total{verdict="fill"}'), 1)
        self.assertEqual(delta('sluice_verdicts_total{verdict="hit"}'), 1)
        self.assertEqual(delta("sluice_hits_total"), 1)
        self.assertEqual(delta("sluice_misses_total"), 1)
        self.assertEqual(delta("sluice_fills_committed_total"), 1)
        self.assertGreater(after["sluice_open_fds"], 0)


# The shipped configurations put HAProxy's hop to the agent on UNIX sockets
# (haproxy/sluice.conf, examples/sluice.conf): the same behaviours over them.
class MissThenHitOverUnixSockets(MissThenHit):
    transport = "unix"


class InlineHitsOverUnixSockets(InlineHits):
    transport = "unix"


class UnixSockets(unittest.TestCase):
    def test_shared_fill_and_large_hit_byte_exact(self):
        # A fill streamed to several clients at once, then a hit large
        # enough to take many sendfile passes, all over the UNIX hop.
        with Edge(transport="unix") as e:
            size = 3_000_000
            p = "/unix/shared.bin"
            e.origin.set_object(p, size=size, delay_ms=200, rate=4_000_000)
            results = []
            go = threading.Barrier(5)

            def client():
                go.wait()
                results.append(e.get("/generic" + p, timeout=30))
            threads = [threading.Thread(target=client) for _ in range(5)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual([(r.status, r.complete, r.body == body_for(p, size)) for r in results],
                             [(200, True, True)] * 5)
            self.assertEqual(e.origin.requests(p), 1)
            e.wait_idle()
            hit = e.get("/generic" + p)
            self.assertEqual((hit.status, hit.header("Cache-Status")), (200, "sluice; hit"))
            self.assertEqual(hit.body, body_for(p, size))
            self.assertEqual(e.get_agent("/generic" + p).body, hit.body)

    def test_killed_agent_fails_open_and_its_successor_takes_the_stale_sockets(self):
        with Edge(transport="unix") as e:
            p = "/unix/restart.bin"
            e.get("/generic" + p)
            e.wait_idle()
            e.kill_agent()
            for path in e.unix_paths.values():   # SIGKILL leaves the files behind
                self.assertTrue(stat.S_ISSOCK(os.lstat(path).st_mode))
            r = e.get("/generic" + p, timeout=5)
            self.assertEqual((r.status, r.body), (200, body_for(p)))
            self.assertEqual(r.header("Cache-Status"), "sluice; fwd=bypass")
            e.start_agent()
            wait_until(lambda: e.get("/generic" + p).header("Cache-Status") == "sluice; hit", 10,
                       message="the restarted agent never served the hit over its UNIX sockets")
            before = e.origin.requests(p)   # fail-open requests while HAProxy saw it down
            self.assertEqual(e.get("/generic" + p).body, body_for(p))
            self.assertEqual(e.origin.requests(p), before)
            e.stop_agent()
            for path in e.unix_paths.values():   # a clean stop removes them
                self.assertFalse(os.path.exists(path), path)

    def connect_as_nobody(self, path):
        """errno of a connect to path by uid/gid 65534 (0 when it worked),
        from a forked child that drops root first."""
        pid = os.fork()
        if pid == 0:
            code = 99
            try:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
                s = socket.socket(socket.AF_UNIX)
                try:
                    s.connect(path)
                    code = 0
                except OSError as e:
                    code = e.errno
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)

    @unittest.skipUnless(os.geteuid() == 0, "needs root to connect as another user")
    def test_sockets_admit_the_agents_user_alone_unless_told(self):
        # 0600 by default: another local user cannot ask for verdicts or
        # fills, even where it can reach the directory, and even when the
        # agent was started with a umask that lets anyone write.
        old = os.umask(0)
        self.addCleanup(os.umask, old)
        with Edge(transport="unix", haproxy=False) as e:
            os.chmod(e.tmp, 0o711)
            for path in e.unix_paths.values():
                st = os.lstat(path)
                self.assertEqual((stat.S_IMODE(st.st_mode), st.st_uid), (0o600, os.geteuid()), path)
                self.assertEqual(self.connect_as_nobody(path), errno.EACCES, path)
        # unix_socket_mode and unix_socket_group open them to a group.
        with Edge(transport="unix", haproxy=False,
                  settings={"unix_socket_mode": "0660", "unix_socket_group": "65534"}) as e:
            os.chmod(e.tmp, 0o711)
            st = os.lstat(e.unix_paths["spop"])
            self.assertEqual((stat.S_IMODE(st.st_mode), st.st_gid), (0o660, 65534))
            self.assertEqual(self.connect_as_nobody(e.unix_paths["spop"]), 0)

    def test_second_agent_on_the_same_sockets_refuses_to_start(self):
        with Edge(transport="unix", haproxy=False) as e:
            e2 = Edge(transport="unix", haproxy=False, origin=False)
            try:
                e2.unix_paths = e.unix_paths
                e2.write_config()
                e2.start_agent(wait_ready=False)
                self.assertEqual(e2.agent.wait(15), 1)
                self.assertIn("is in use by another process", e2.agent_log())
            finally:
                e2.stop()
            # The first agent still owns and answers on them.
            self.assertEqual(e.get_agent("/_sluice/healthz").status, 200)


if __name__ == "__main__":
    unittest.main()

