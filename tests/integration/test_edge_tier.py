"""The edge memory tier: HAProxy's own cache in front of the agent keeps the
hits of small immutable objects the agent marked (X-Sluice-Edge-TTL), and
answers them without an agent round trip (haproxy/haproxy.cfg,
agent/src/serve/edge.h).

What a user relies on: the same bytes and headers as the agent's hit, said
in Cache-Status ("hit; detail=memory"); a purge empties it; ranges,
credentials, large objects and metadata never come from it; what an origin
says can never put anything in it; with the agent hung, its hot objects
keep being served.
"""

import json
import os
import signal
import sys
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import test_edge  # noqa: E402  (the module, not its classes: they run in their own file)
from edge import Edge  # noqa: E402
from httpclient import wait_until  # noqa: E402
from origin import body_for  # noqa: E402

MEMORY = "sluice; hit; detail=memory"


class EdgeTier(test_edge.EdgeTest):
    """One edge with the tier at its defaults (64k, 1h)."""

    def verdicts(self):
        m = self.edge.metrics()
        return sum(v for k, v in m.items() if k.startswith("sluice_verdicts_total"))

    def warm(self, p, size=1000):
        """Fill, then one agent hit that the tier stores; returns that hit."""
        first = self.edge.get("/generic" + p)
        self.assertEqual((first.status, first.body), (200, body_for(p, size)))
        self.edge.wait_idle()
        hit = self.edge.get("/generic" + p)
        self.assertEqual((hit.status, hit.header("Cache-Status")), (200, "sluice; hit"))
        return hit

    def purge(self, path):
        req = urllib.request.Request("http://127.0.0.1:%d/objects/%s" % (self.edge.ports["admin"], path),
                                     method="DELETE")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def test_repeated_hits_come_from_memory_byte_exact_without_the_agent(self):
        p = self.path("small", size=3000, headers={"Cache-Control": "public, max-age=60, immutable"})
        hit = self.warm(p, 3000)
        before = self.verdicts()
        for _ in range(3):
            r = self.edge.get("/generic" + p)
            self.assertEqual((r.status, r.body, r.header("Cache-Status")), (200, body_for(p, 3000), MEMORY))
            # The agent's hit's Cache-Control (it keeps none of the
            # origin's), never the tier's "max-age=<ttl>"; no marks.
            self.assertEqual(r.header("Cache-Control"), hit.header("Cache-Control"))
            self.assertIsNone(r.header("X-Sluice-Edge-TTL"))
            self.assertIsNone(r.header("X-Sluice-CC"))
            self.assertEqual((r.header("ETag"), r.header("Content-Type")), (hit.header("ETag"), hit.header("Content-Type")))
        self.assertEqual(self.verdicts(), before)
        self.assertEqual(self.edge.origin.requests(p), 1)

    def test_the_agent_reports_haproxys_memory_hits(self):
        # Memory hits never reach the agent; it reads HAProxy's counts of
        # the tier (every 2 s) into its own metrics.
        p = self.path("counted", size=700)
        self.warm(p, 700)
        start = self.edge.metric("sluice_edge_hits_total")
        for _ in range(5):
            self.assertEqual(self.edge.get("/generic" + p).header("Cache-Status"), MEMORY)
        wait_until(lambda: self.edge.metric("sluice_edge_hits_total") >= start + 5, 10,
                   message="sluice_edge_hits_total never counted the memory hits")
        self.assertGreaterEqual(self.edge.metric("sluice_edge_lookups_total"),
                                self.edge.metric("sluice_edge_hits_total") + 2)   # the fill and the agent's hit
        self.assertEqual(self.edge.metric("sluice_edge_stats_failures_total"), 0)

    def test_no_cache_control_stays_absent(self):
        p = self.path("nocc", size=500, headers={"Cache-Control": None})
        self.warm(p, 500)
        r = self.edge.get("/generic" + p)
        self.assertEqual((r.header("Cache-Status"), r.header("Cache-Control")), (MEMORY, None))

    def test_conditional_is_answered_from_memory(self):
        p = self.path("cond", size=800)
        hit = self.warm(p, 800)
        r = self.edge.get("/generic" + p, headers={"If-None-Match": hit.header("ETag")})
        self.assertEqual((r.status, r.body), (304, b""))
        r = self.edge.get("/generic" + p, method="HEAD")
        self.assertEqual((r.status, r.header("Content-Length"), r.header("Cache-Status")), (200, "800", MEMORY))

    def test_purge_empties_it(self):
        p = self.path("purged", size=700)
        self.warm(p, 700)
        self.assertEqual(self.edge.get("/generic" + p).header("Cache-Status"), MEMORY)
        flushed = self.edge.metric('sluice_edge_flushes_total{result="flushed"}')
        self.assertEqual(self.purge("generic" + p), {"purged": 1})
        self.assertEqual(self.edge.metric('sluice_edge_flushes_total{result="flushed"}'), flushed + 1)
        r = self.edge.get("/generic" + p)
        self.assertEqual((r.status, r.body), (200, body_for(p, 700)))
        self.assertNotEqual(r.header("Cache-Status"), MEMORY)
        self.assertEqual(self.edge.origin.requests(p), 2)

    def test_prefix_purge_empties_other_objects_too(self):
        a, b = self.path("a", size=600), self.path("b", size=600)
        for p in (a, b):
            self.warm(p, 600)
        self.purge("generic/" + a.split("/")[1] + "/*")
        for p in (a, b):
            r = self.edge.get("/generic" + p)
            self.assertEqual(r.body, body_for(p, 600))
            self.assertNotEqual(r.header("Cache-Status"), MEMORY)

    def test_ranges_credentials_and_large_objects_ask_the_agent(self):
        p = self.path("r", size=2000)
        self.warm(p, 2000)
        r = self.edge.get("/generic" + p, headers={"Range": "bytes=5-9"})
        self.assertEqual((r.status, r.body, r.header("Cache-Status")), (206, body_for(p, 2000)[5:10], "sluice; hit"))
        r = self.edge.get("/generic" + p, headers={"Authorization": "Bearer x"})
        self.assertNotEqual(r.header("Cache-Status"), MEMORY)
        big = self.path("big", size=200_000)   # above edge_tier_max_size (64k)
        self.warm(big, 200_000)
        r = self.edge.get("/generic" + big)
        self.assertEqual((r.body == body_for(big, 200_000), r.header("Cache-Status")), (True, "sluice; hit"))

    def test_an_origin_cannot_put_anything_in_it(self):
        # The mark on an origin's own response (pass-through with
        # credentials, then a plain request): never stored, never shown.
        p = self.path("forged", size=400, headers={"X-Sluice-Edge-TTL": "3600", "Cache-Control": "private"})
        r = self.edge.get("/generic" + p, headers={"Authorization": "Bearer x"})
        self.assertEqual((r.status, r.header("X-Sluice-Edge-TTL")), (200, None))
        for _ in range(2):
            r = self.edge.get("/generic" + p)
            self.assertNotEqual(r.header("Cache-Status"), MEMORY)
            self.assertIsNone(r.header("X-Sluice-Edge-TTL"))

    def test_hot_objects_survive_a_hung_agent(self):
        p = self.path("hot", size=900)
        cold = self.path("cold", size=900)
        self.warm(p, 900)
        self.edge.agent.send_signal(signal.SIGSTOP)
        try:
            r = self.edge.get("/generic" + p, timeout=10)
            self.assertEqual((r.status, r.body, r.header("Cache-Status")), (200, body_for(p, 900), MEMORY))
            r = self.edge.get("/generic" + cold, timeout=10)
            self.assertEqual((r.status, r.body, r.header("Cache-Status")), (200, body_for(cold, 900), "sluice; fwd=bypass"))
        finally:
            self.edge.agent.send_signal(signal.SIGCONT)


class EdgeTierOff(unittest.TestCase):
    def test_zero_turns_it_off(self):
        with Edge(settings={"edge_tier_max_size": "0"}) as e:
            p = "/off/obj.bin"
            e.get("/generic" + p)
            e.wait_idle()
            for _ in range(3):
                self.assertEqual(e.get("/generic" + p).header("Cache-Status"), "sluice; hit")
            # a purge has nothing to empty and says so
            req = urllib.request.Request("http://127.0.0.1:%d/objects/generic%s" % (e.ports["admin"], p),
                                         method="DELETE")
            urllib.request.urlopen(req, timeout=10).read()
            self.assertEqual(e.metric('sluice_edge_flushes_total{result="flushed"}'), 0)


if __name__ == "__main__":
    unittest.main()
