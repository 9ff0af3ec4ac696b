"""The adaptive per-origin limit (issue 19, docs/backpressure.md "The
adaptive limit"): a burst of distinct cold misses opens up within a few
fast response heads instead of waiting for bodies to finish, and an origin
that answers 503, or answers slowly, makes the limit fall, once per burst
(or per Retry-After, when a 429 says how long).

The origin counts its own concurrency (max_in_flight), so "all at once" is
what the origin saw, not a timing guess; the limit is read from /metrics.
"""

import concurrent.futures
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

from edge import Edge  # noqa: E402
from httpclient import wait_until  # noqa: E402
from origin import body_for  # noqa: E402

SIZE = 150_000
# Each body takes this long while heads come at once; long, so that a loaded
# machine still starts all 40 within it.
BODY_S = 3.0
LIMIT = 'sluice_origin_limit{route="generic"}'
UP = 'sluice_origin_limit_increases_total{route="generic"}'


def cut(reason):
    return 'sluice_origin_limit_decreases_total{route="generic",reason="%s"}' % reason


class AdaptiveLimit(unittest.TestCase):
    settings = {"origin_limit_start": "8", "origin_limit_min": "4", "origin_limit_cooldown": "60s",
                "origin_limit_slow_head": "2s"}

    def setUp(self):
        self.edge = Edge(settings=self.settings)
        self.edge.__enter__()

    def tearDown(self):
        self.edge.__exit__(None, None, None)

    def objects(self, n, **knobs):
        paths = ["/al/%s/%d.bin" % (self.id().rsplit(".", 1)[-1], i) for i in range(n)]
        for p in paths:
            self.edge.origin.set_object(p, **knobs)
        return paths

    def get_all(self, paths):
        with concurrent.futures.ThreadPoolExecutor(len(paths)) as ex:
            return list(ex.map(lambda p: self.edge.get("/generic" + p, timeout=60), paths))

    def test_a_burst_of_distinct_misses_runs_all_at_once(self):
        paths = self.objects(40, size=SIZE, rate=int(SIZE / BODY_S))
        t0 = time.monotonic()
        results = self.get_all(paths)
        elapsed = time.monotonic() - t0
        for p, r in zip(paths, results):
            self.assertEqual(r.status, 200, r.error)
            self.assertEqual(r.body, body_for(p, SIZE))
        self.edge.wait_idle()
        # From 8, each fast head with leaders waiting adds one: all 40 ran
        # together at the origin, long before the first body ended.
        self.assertEqual(self.edge.origin.stats()["max_in_flight"], 40)
        self.assertGreaterEqual(self.edge.metric(LIMIT), 40)
        self.assertEqual(self.edge.metric(UP), self.edge.metric(LIMIT) - 8)
        self.assertLess(elapsed, 2 * BODY_S, "a fixed limit of 8 would take 5 rounds")

    def test_no_growth_without_waiters(self):
        for p in self.objects(5, size=1000):
            self.assertEqual(self.edge.get("/generic" + p).status, 200)
        self.assertEqual(self.edge.metric(LIMIT), 8)
        self.assertEqual(self.edge.metric(UP), 0)

    def test_a_burst_of_503_halves_the_limit_once(self):
        results = self.get_all(self.objects(10, status=503, size=100))
        self.assertTrue(all(r.status >= 500 for r in results), [r.status for r in results])
        self.assertEqual(self.edge.metric(LIMIT), 4)          # 8 -> 4, once: one cool-down
        self.assertEqual(self.edge.metric(cut("503")), 1)
        wait_until(lambda: "origin limit cut route=generic reason=503 limit=8->4" in self.edge.agent_log(), 5,
                   message="no log line for the cut")

    def test_a_slow_head_halves_the_limit(self):
        self.edge.settings.update({"origin_limit_slow_head": "100ms"})
        self.edge.write_config()
        self.edge.reload_agent()
        p, = self.objects(1, size=100, delay_ms=400)
        self.assertEqual(self.edge.get("/generic" + p).status, 200)
        self.assertEqual(self.edge.metric(cut("slow_head")), 1)
        self.assertEqual(self.edge.metric(LIMIT), 4)

    def test_a_429_retry_after_holds_the_limit(self):
        self.edge.settings.update({"origin_limit_cooldown": "1ms", "origin_limit_min": "1"})
        self.edge.write_config()
        self.edge.reload_agent()
        plain, held, again = self.objects(3, status=429, size=100)
        self.edge.origin.set_object(held, status=429, size=100, headers={"Retry-After": "30"})
        for p, limit in ((plain, 4), (held, 2), (again, 2)):   # the third comes within the 30 s
            self.assertEqual(self.edge.get("/generic" + p).status, 429)
            self.assertEqual(self.edge.metric(LIMIT), limit, p)
        self.assertEqual(self.edge.metric(cut("429")), 2)
        wait_until(lambda: "reason=429 limit=4->2 in_flight=1 queued=0 hold_ms=30000" in self.edge.agent_log(), 5,
                   message="no log line for the held cut")


class FixedLimit(AdaptiveLimit):
    """origin_limit_adaptive 0: the cap is the limit, as before."""
    settings = {"origin_limit_adaptive": "0", "origin_max_in_flight_per_origin": "6"}
    test_a_burst_of_distinct_misses_runs_all_at_once = None
    test_no_growth_without_waiters = None
    test_a_burst_of_503_halves_the_limit_once = None
    test_a_slow_head_halves_the_limit = None
    test_a_429_retry_after_holds_the_limit = None

    def test_the_cap_holds_and_nothing_moves(self):
        paths = self.objects(12, size=SIZE, rate=int(SIZE / 0.5))
        self.assertTrue(all(r.status == 200 for r in self.get_all(paths)))
        self.get_all(self.objects(3, status=503, size=100))
        self.edge.wait_idle()
        self.assertEqual(self.edge.origin.stats()["max_in_flight"], 6)
        self.assertEqual(self.edge.metric(LIMIT), 6)
        self.assertEqual(self.edge.metric(UP), 0)
        self.assertEqual(self.edge.metric(cut("503")), 0)


if __name__ == "__main__":
    unittest.main()
