"""Origin backpressure (issue 4): slots, the bounded queue of leaders, and
503 + Retry-After at the agent and at the edge.
"""

import os
import socket
import sys
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

from edge import Edge  # noqa: E402
from httpclient import fetch, wait_until  # noqa: E402
from origin import body_for  # noqa: E402

SIZE = 200_000


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


class Saturation(unittest.TestCase):
    settings = {"origin_max_in_flight_per_origin": "2", "origin_queue_max": "3",
                "origin_queue_timeout": "30s", "retry_after_max": "7s"}

    def setUp(self):
        self.edge = Edge(settings=self.settings)
        self.edge.__enter__()

    def tearDown(self):
        self.edge.__exit__(None, None, None)

    def slow(self, name, seconds=1.0):
        p = "/bp/%s/%s.bin" % (self.id().rsplit(".", 1)[-1], name)
        self.edge.origin.set_object(p, size=SIZE, rate=int(SIZE / seconds))
        return p

    def saturate(self, n_running=2, n_queued=3):
        """Start leaders that hold every slot and fill the queue; return their threads/results."""
        paths = [self.slow("k%d" % i, 2.0) for i in range(n_running + n_queued)]
        results = [None] * len(paths)

        def run(i):
            results[i] = self.edge.get("/generic" + paths[i], timeout=30)

        threads = []
        for i in range(len(paths)):
            t = threading.Thread(target=run, args=(i,))
            t.start()
            threads.append(t)
            # Deterministic order: each leader is running or queued before the next.
            want_running, want_queued = min(i + 1, n_running), max(0, i + 1 - n_running)
            wait_until(lambda: self.edge.metric("sluice_origin_fetches_in_flight") == want_running
                       and self.edge.metric("sluice_origin_fetches_queued") == want_queued, 10,
                       message="leader %d not admitted/queued" % i)
        return paths, threads, results

    def test_cap_queue_and_overflow(self):
        paths, threads, results = self.saturate()
        extra = [self.slow("x%d" % i) for i in range(5)]
        shed = parallel(lambda p: self.edge.get("/generic" + p, timeout=30), extra)
        for r in shed:
            self.assertEqual(r.status, 503)
            ra = int(r.header("Retry-After"))
            self.assertTrue(1 <= ra <= 7, ra)
            self.assertEqual(r.header("Cache-Control"), "no-store")
            self.assertIn("detail=busy", r.header("Cache-Status"))
        for t in threads:
            t.join(60)
        for p, r in zip(paths, results):
            self.assertEqual(r.status, 200)
            self.assertTrue(r.complete)
            self.assertEqual(r.body, body_for(p, SIZE))
        self.assertLessEqual(self.edge.origin.stats()["max_in_flight"], 2)
        for p in extra:
            self.assertEqual(self.edge.origin.requests(p), 0)
        self.edge.wait_idle()
        m = self.edge.metrics()
        self.assertEqual(m['sluice_origin_queue_wait_seconds_count{outcome="admitted"}'], 5)
        self.assertEqual(m['sluice_busy_responses_total{by="edge"}'] + m['sluice_busy_responses_total{by="agent"}'], 5)

    def test_edge_answers_busy_without_the_agent_http_side(self):
        paths, threads, _ = self.saturate()
        before = self.edge.metrics()
        r = self.edge.get("/generic" + self.slow("edge"), timeout=10)
        after = self.edge.metrics()
        self.assertEqual(r.status, 503)
        self.assertIsNotNone(r.header("Retry-After"))
        self.assertEqual(after["sluice_http_requests_total"], before["sluice_http_requests_total"])
        self.assertEqual(after['sluice_verdicts_total{verdict="busy"}'] - before['sluice_verdicts_total{verdict="busy"}'], 1)
        for t in threads:
            t.join(60)

    def test_agent_answers_busy_when_the_verdict_raced(self):
        paths, threads, _ = self.saturate()
        r = self.edge.get_agent("/generic" + self.slow("direct"), timeout=10)
        self.assertEqual(r.status, 503)
        self.assertIsNotNone(r.header("Retry-After"))
        self.assertEqual(self.edge.metric('sluice_busy_responses_total{by="agent"}'), 1)
        for t in threads:
            t.join(60)

    def test_hits_and_followers_are_not_queued(self):
        warm = self.slow("warm", 0.01)
        self.assertEqual(self.edge.get("/generic" + warm).status, 200)
        self.edge.wait_idle()
        paths, threads, _ = self.saturate()
        hit = self.edge.get("/generic" + warm, timeout=5)
        self.assertEqual((hit.status, hit.header("Cache-Status")), (200, "sluice; hit"))
        self.assertLess(hit.elapsed, 1.0)
        # A second request for a running key follows it (no slot, no queue).
        follower = self.edge.get("/generic" + paths[0], timeout=30)
        self.assertEqual(follower.status, 200)
        self.assertIn("collapsed", follower.header("Cache-Status"))
        # A second request for a queued key joins that queued leader.
        joined = self.edge.get("/generic" + paths[4], timeout=30)
        self.assertEqual(joined.status, 200)
        self.assertEqual(joined.body, body_for(paths[4], SIZE))
        for t in threads:
            t.join(60)
        self.assertEqual(self.edge.origin.requests(paths[4]), 1)
        self.assertEqual(self.edge.origin.requests(paths[0]), 1)

    def test_queued_client_that_leaves_frees_its_place(self):
        paths, threads, _ = self.saturate(n_queued=0)
        p = self.slow("leaver")
        s = socket.create_connection(("127.0.0.1", self.edge.ports["listen"]))
        s.sendall(("GET /generic%s HTTP/1.1\r\nHost: x\r\n\r\n" % p).encode())
        wait_until(lambda: self.edge.metric("sluice_origin_fetches_queued") == 1, 10, message="not queued")
        s.close()
        wait_until(lambda: self.edge.metric("sluice_origin_fetches_queued") == 0, 5,
                   message="a departed client stayed in the queue")
        self.assertEqual(self.edge.metric('sluice_origin_queue_wait_seconds_count{outcome="canceled"}'), 1)
        for t in threads:
            t.join(60)
        self.edge.wait_idle()
        self.assertEqual(self.edge.origin.requests(p), 0)
        # No slot leaked: two new leaders run at once.
        later = parallel(lambda q: self.edge.get("/generic" + q, timeout=30), [self.slow("a", 0.5), self.slow("b", 0.5)])
        self.assertEqual([r.status for r in later], [200, 200])


class QueueTimeout(unittest.TestCase):
    def test_wait_expires_with_503_and_nothing_leaks(self):
        settings = {"origin_max_in_flight_per_origin": "1", "origin_queue_max": "4",
                    "origin_queue_timeout": "1s"}
        with Edge(settings=settings) as e:
            slow = "/bp/timeout/slow.bin"
            e.origin.set_object(slow, size=SIZE, rate=SIZE // 3)
            # Baseline once the connection pools (HAProxy->agent, agent->origin) exist.
            e.get("/generic/bp/timeout/warmup.bin")
            e.wait_idle()
            fds = e.agent_private_fds()
            t = threading.Thread(target=lambda: e.get("/generic" + slow, timeout=30))
            t.start()
            wait_until(lambda: e.metric("sluice_origin_fetches_in_flight") == 1, 10)
            waiter = "/bp/timeout/waiter.bin"
            r = e.get("/generic" + waiter, timeout=10)
            self.assertEqual(r.status, 503)
            self.assertGreaterEqual(int(r.header("Retry-After")), 1)
            self.assertEqual(r.header("Cache-Control"), "no-store")
            self.assertGreaterEqual(r.elapsed, 0.9)
            self.assertEqual(e.metric('sluice_origin_queue_wait_seconds_count{outcome="timeout"}'), 1)
            self.assertEqual(e.metric("sluice_origin_fetches_queued"), 0)
            t.join(30)
            e.wait_idle()
            self.assertEqual(e.origin.requests(waiter), 0)
            wait_until(lambda: e.agent_private_fds() == fds, 5, message="fds did not return to baseline %d" % fds)
            # The key is not poisoned: it fills normally now.
            r = e.get("/generic" + waiter, timeout=10)
            self.assertEqual((r.status, r.body), (200, body_for(waiter)))


if __name__ == "__main__":
    unittest.main()
