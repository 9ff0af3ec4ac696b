"""A second-level cache shared by edges (issue 17): two complete edges (real
HAProxy + agent, each with its own L1 cache_dir) share one l2_dir (the disk
tier, store/tier_disk.c) and one origin. What is checked is the fleet's
contract: the origin sees an object once for both edges, a broken or slow
L2 never reaches a client (byte-exact bodies or aborted transfers, no 500,
no hang, at most l2_lookup_timeout more than a plain miss), and uploads
are bounded.
"""

import os
import shutil
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

from edge import Edge  # noqa: E402
from httpclient import wait_until  # noqa: E402
from origin import OriginServer, body_for  # noqa: E402


def parallel(fn, args):
    """Run fn(arg) for every arg at once; return the results in order."""
    results = [None] * len(args)

    def run(i, a):
        results[i] = fn(a)

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(args)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


class TwoEdges(unittest.TestCase):
    """Edges A and B, one shared L2 directory, one origin."""

    settings = {"l2_lookup_timeout": "300ms"}
    settings_a = {}
    settings_b = {}

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="sluice-l2-")
        self.l2_dir = os.path.join(self.tmp, "l2")
        self.origin = OriginServer()
        self.origin.start()
        self.edges = []
        try:
            s = dict(self.settings, l2_dir=self.l2_dir)
            self.a = self.edge(dict(s, **self.settings_a))
            self.b = self.edge(dict(s, **self.settings_b))
        except BaseException:
            self.tearDown()
            raise

    def edge(self, settings, env=None):
        e = Edge(settings=settings, origin=self.origin, env=env)
        self.edges.append(e)
        e.__enter__()
        return e

    def tearDown(self):
        for e in self.edges:
            e.__exit__(None, None, None)
        self.origin.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def path(self, name, **knobs):
        p = "/l2/%s/%s.bin" % (self.id().rsplit(".", 1)[-1], name)
        self.origin.set_object(p, **knobs)
        return p

    def l2_file(self):
        """The one object file in the shared directory."""
        files = []
        for dirpath, _, names in os.walk(os.path.join(self.l2_dir, "objects")):
            files += [os.path.join(dirpath, n) for n in names]
        self.assertEqual(len(files), 1, files)
        return files[0]

    def uploaded(self, edge, n=1):
        wait_until(lambda: edge.metric('sluice_l2_uploads_total{result="ok"}') >= n, 10,
                   message="the upload to L2 did not finish")

    def fill_through_a(self, p, size):
        r = self.a.get("/generic" + p)
        self.assertEqual((r.status, r.body), (200, body_for(p, size)))
        self.uploaded(self.a)
        return r


class SharedObjects(TwoEdges):
    def test_a_cold_object_through_a_then_b_is_fetched_once_and_b_says_l2_hit(self):
        size = 300_000
        p = self.path("obj", size=size)
        first = self.fill_through_a(p, size)
        self.assertNotIn("l2-hit", first.header("Cache-Status"))
        second = self.b.get("/generic" + p)
        self.assertEqual((second.status, second.body), (200, body_for(p, size)))
        self.assertEqual(second.header("Cache-Status"), "sluice; fwd=uri-miss; detail=l2-hit; stored")
        self.assertEqual(second.header("ETag"), first.header("ETag"))
        self.assertEqual(self.origin.requests(p), 1)
        self.assertEqual(self.b.metric('sluice_l2_hits_total{tier="disk"}'), 1)
        self.assertEqual(self.b.metric('sluice_l2_bytes_read_total{tier="disk"}'), size)
        wait_until(lambda: "outcome=stored integrity=none source=disk" in self.b.agent_log(), 10,
                   message="B's fill line does not name the tier")
        self.assertNotIn("source=", self.a.agent_log())
        # B stored it in its own L1: the next one is a plain hit
        self.b.wait_idle()
        third = self.b.get("/generic" + p)
        self.assertEqual((third.header("Cache-Status"), third.body), ("sluice; hit", body_for(p, size)))
        self.assertEqual(self.origin.requests(p), 1)

    def test_twenty_clients_over_both_edges_cost_at_most_two_origin_requests(self):
        size = 4 * 1024 * 1024
        p = self.path("large", size=size, rate=4 * 1024 * 1024)   # about a second
        edges = [self.a, self.b] * 10
        results = parallel(lambda e: e.get("/generic" + p, timeout=30), edges)
        want = body_for(p, size)
        for r in results:
            self.assertEqual((r.status, r.complete, len(r.body)), (200, True, size))
            self.assertTrue(r.body == want)
        self.assertLessEqual(self.origin.requests(p), 2)
        for e in (self.a, self.b):
            e.wait_idle()

    def test_an_object_deleted_behind_the_agents_backs_is_a_miss_not_an_error(self):
        size = 100_000
        p = self.path("deleted", size=size)
        self.fill_through_a(p, size)
        os.unlink(self.l2_file())
        r = self.b.get("/generic" + p, timeout=10)
        self.assertEqual((r.status, r.body), (200, body_for(p, size)))
        self.assertEqual(r.header("Cache-Status"), "sluice; fwd=uri-miss; stored")
        self.assertEqual(self.origin.requests(p), 2)
        self.assertEqual(self.b.metric('sluice_l2_misses_total{tier="disk",reason="absent"}'), 1)

    def test_a_truncated_object_is_never_served_as_complete_and_the_origin_refills(self):
        size = 600_000
        p = self.path("truncated", size=size)
        self.fill_through_a(p, size)
        path = self.l2_file()
        os.truncate(path, os.path.getsize(path) - size // 2)
        r = self.b.get("/generic" + p, timeout=10)
        # the disk tier checks the length before the head: the same fill
        # goes on to the origin, and the client sees nothing of it
        self.assertEqual((r.status, r.complete, r.body), (200, True, body_for(p, size)))
        self.assertEqual(r.header("Cache-Status"), "sluice; fwd=uri-miss; stored")
        self.assertEqual(self.b.metric('sluice_l2_errors_total{tier="disk",reason="error"}'), 1)
        self.assertEqual(self.origin.requests(p), 2)
        self.b.wait_idle()
        self.assertEqual(self.b.temp_files(), [])
        # B stored the origin's body, not the truncated copy
        again = self.b.get("/generic" + p, timeout=10)
        self.assertEqual((again.header("Cache-Status"), again.body), ("sluice; hit", body_for(p, size)))
        # and its copy replaced the truncated one in L2
        self.uploaded(self.b)
        self.assertGreater(os.path.getsize(self.l2_file()), size)


class L2FailingMidBody(TwoEdges):
    settings = {"l2_lookup_timeout": "10s"}

    def agent_has_open(self, edge, path):
        fd_dir = "/proc/%d/fd" % edge.agent.pid
        for fd in os.listdir(fd_dir):
            try:
                if os.readlink(os.path.join(fd_dir, fd)) == path:
                    return True
            except OSError:
                pass
        return False

    def test_a_read_failing_after_its_head_aborts_the_client_and_stores_nothing(self):
        size = 600_000
        p = self.path("cut", size=size)
        self.fill_through_a(p, size)
        path = self.l2_file()
        self.b.fault("tier_read_delay=1s")   # B opens the object, then holds its head
        try:
            results = []
            t = threading.Thread(target=lambda: results.append(self.b.get("/generic" + p, timeout=15)))
            t.start()
            wait_until(lambda: self.agent_has_open(self.b, path), 10, message="B never opened the L2 object")
            os.truncate(path, os.path.getsize(path) - size // 2)   # under the open read
            t.join(20)
        finally:
            self.b.fault("kind=none")
        r = results[0]
        self.assertEqual(r.status, 200)
        self.assertFalse(r.complete)                         # aborted, never a clean short body
        self.assertLess(len(r.body), size)
        self.assertEqual(self.origin.requests(p), 1)         # no fallback once the head was sent
        self.assertEqual(self.b.metric('sluice_l2_read_failures_total{tier="disk"}'), 1)
        self.b.wait_idle()
        self.assertEqual((self.b.object_files(), self.b.temp_files()), ([], []))   # nothing in L1
        again = self.b.get("/generic" + p, timeout=10)       # the truncated copy: origin, byte-exact
        self.assertEqual((again.status, again.body), (200, body_for(p, size)))
        self.assertEqual(self.origin.requests(p), 2)


class OriginSaturated(TwoEdges):
    settings_b = {"origin_max_in_flight_per_origin": "1", "origin_queue_max": "0"}

    def test_an_l2_hit_needs_no_origin_slot(self):
        size = 100_000
        p = self.path("shared", size=size)
        self.fill_through_a(p, size)
        slow = self.path("slow", size=size, rate=size // 3)   # holds B's only origin slot for ~3 s
        results = []
        t = threading.Thread(target=lambda: results.append(self.b.get("/generic" + slow, timeout=20)))
        t.start()
        try:
            wait_until(lambda: self.b.metric("sluice_origin_fetches_in_flight") == 1, 10,
                       message="B's origin slot was never taken")
            busy = self.b.get("/generic" + self.path("other", size=10))   # needs the origin: refused
            self.assertEqual(busy.status, 503)
            r = self.b.get("/generic" + p)                                # in L2: served all the same
            self.assertEqual((r.status, r.body), (200, body_for(p, size)))
            self.assertEqual(r.header("Cache-Status"), "sluice; fwd=uri-miss; detail=l2-hit; stored")
        finally:
            t.join(30)
        self.assertEqual(results[0].body, body_for(slow, size))
        self.assertEqual(self.origin.requests(p), 1)


class Settings(unittest.TestCase):
    def test_l2_dir_must_not_be_cache_dir(self):
        tmp = tempfile.mkdtemp(prefix="sluice-l2-")
        try:
            e = Edge(settings={"l2_dir": os.path.join(tmp, "c"), "cache_dir": os.path.join(tmp, "c")},
                     origin=False, haproxy=False)
            with self.assertRaisesRegex(AssertionError, "L2 must be another directory"):
                e.__enter__()
            e.stop()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class SlowL2(TwoEdges):
    settings = {"l2_lookup_timeout": "300ms"}

    def test_a_slow_l2_costs_a_miss_at_most_the_lookup_deadline(self):
        size = 100_000
        cold = self.path("cold", size=size)
        t0 = time.monotonic()
        plain = self.b.get("/generic" + cold, timeout=10)
        plain_s = time.monotonic() - t0
        self.assertEqual(plain.body, body_for(cold, size))
        self.b.fault("tier_read_delay=3s")
        try:
            p = self.path("slow", size=size)
            t0 = time.monotonic()
            r = self.b.get("/generic" + p, timeout=10)
            elapsed = time.monotonic() - t0
        finally:
            self.b.fault("kind=none")
        self.assertEqual((r.status, r.body), (200, body_for(p, size)))
        self.assertEqual(r.header("Cache-Status"), "sluice; fwd=uri-miss; stored")
        self.assertGreaterEqual(elapsed, 0.3)
        self.assertLess(elapsed, plain_s + 0.3 + 1.0)   # the deadline, and some slack for ASan
        self.assertEqual(self.b.metric('sluice_l2_errors_total{tier="disk",reason="timeout"}'), 1)
        self.assertEqual(self.origin.requests(p), 1)


class UploadQueue(TwoEdges):
    settings_a = {"l2_uploads_max": "1", "l2_upload_queue_max": "1"}

    def test_uploads_past_the_queue_are_dropped_and_counted(self):
        size = 50_000
        self.a.fault("tier_write_delay=2s")
        try:
            paths = [self.path("q%d" % i, size=size) for i in range(4)]
            for i, p in enumerate(paths):   # one copy runs (slowly), one waits, two find no room
                r = self.a.get("/generic" + p)
                self.assertEqual((r.status, r.body), (200, body_for(p, size)))
                wait_until(lambda: self.a.metric("sluice_fills_committed_total") >= i + 1, 10,
                           message="not committed")
            m = self.a.metrics()
            self.assertEqual(m.get('sluice_l2_uploads_total{tier="disk",result="dropped"}'), 2)
            self.assertEqual(m.get('sluice_l2_upload_queue_depth{tier="disk"}'), 1)
        finally:
            self.a.fault("kind=none")
        self.uploaded(self.a, 2)
        self.assertEqual(self.a.metric('sluice_l2_upload_queue_depth{tier="disk"}'), 0)
        self.assertEqual(self.a.metric('sluice_l2_uploads_total{tier="disk",result="failed"}'), 0)


if __name__ == "__main__":
    unittest.main()
