"""C2/C4/C6: the origin fails mid-body, or the clients walk away mid-body.

An origin that stalls or cuts the body: every attached client gets an
aborted transfer (never a clean short body), nothing is committed, the next
request starts a new fill. Clients that leave: the others are unaffected; when
the last one leaves, a healthy writer finishes the fill in the background
(bounded by fill_background_max_size) and the next request is a hit, while a
failed writer means the origin transfer is aborted at once.
"""

import threading
import time
import unittest

from contract import ContractCase, KiB, MiB, across_routes, body_for, origin_error, parallel, wait_until, wfail


@across_routes
class OriginFailsMidBody(ContractCase):
    settings = {"origin_stall_timeout": "2s"}
    SIZE = 4 * MiB
    CLIENTS = 6

    def fail_midway(self, kind, metric, cut_by=3.0, **fault):
        e = self.edge = self.start_edge()
        base = self.baseline(e)
        # The fault applies to the first origin request only (fail_times=1).
        p = self.path("o.bin", size=self.SIZE, rate=4 * MiB, delay_ms=200, fail_times=1, **fault)
        body = body_for(p, self.SIZE)
        rs = parallel(lambda i: e.get(self.url(p), timeout=15), range(self.CLIENTS))
        self.assert_aborted(rs, body)
        for r in rs:
            # Cut by the agent (the connection closed mid-body), promptly -
            # not by the client's own timeout.
            self.assertNotEqual(r.error, "timeout")
            self.assertTrue(r.server_closed)
            self.assertGreaterEqual(len(r.body), 512 * KiB, "clients got no bytes before the fault")
            self.assertLess(r.elapsed, cut_by)
        self.assertEqual(e.origin.requests(p), 1)
        self.assert_contract(e, base)
        m = e.metrics()
        self.assertEqual(self.delta(base["metrics"], m, metric), 1, metric)
        self.assertEqual(self.delta(base["metrics"], m, "sluice_fills_failed_total"), 1)
        self.assertEqual(self.delta(base["metrics"], m, "sluice_fills_committed_total"), 0)
        self.assertEqual(self.delta(base["metrics"], m, wfail("origin")), 1)
        self.assertIsNone(e.object_file_for(p), "a truncated body was committed")
        # The next request starts a new fill, which completes and stores.
        r = e.get(self.url(p), timeout=15)
        self.assert_exact([r], body)
        self.assertEqual(r.header("Cache-Status"), "sluice; fwd=uri-miss; stored")
        self.assertEqual(e.origin.requests(p), 2)
        e.wait_idle()
        r = e.get(self.url(p))
        self.assertEqual(r.header("Cache-Status"), "sluice; hit")
        self.assert_contract(e, base, origin_pool_max=base["origin_pool"] + 1)
        return e

    def test_origin_stalls_mid_body(self):
        t0 = time.monotonic()
        # Cut after 0.2 s head + 0.25 s of body + the 2 s stall window.
        e = self.fail_midway("stall", origin_error("stall"), cut_by=2.45 + 1.5, stall_after=1 * MiB, stall_ms=-1)
        # The origin saw the agent give up (its connection closed), within
        # the stall window rather than at any client or origin timeout.
        self.assertEqual(e.origin.stats()["aborted_by_client"], 1)

    def test_origin_resets_mid_body(self):
        self.fail_midway("reset", origin_error("truncated"), reset_after=1 * MiB)

    def test_origin_closes_early_mid_body(self):
        self.fail_midway("truncate", origin_error("truncated"), truncate_after=1 * MiB)


@across_routes(tests=("test_everyone_leaves_a_failed_writer_aborts_the_origin_at_once",))
class ClientsAbortMidBody(ContractCase):
    SIZE = 4 * MiB
    RATE = 2 * MiB      # 2 s of body: the clients leave after ~0.6 s

    def start_pair(self, e, p, leader_timeout, follower_timeout):
        """A leader, then (once the origin has its request) a follower."""
        out = {}
        lead = threading.Thread(target=lambda: out.setdefault(
            "leader", e.get(self.url(p), timeout=leader_timeout)))
        lead.start()
        wait_until(lambda: e.origin.requests(p) == 1, 5, message="leader never reached the origin")
        t0 = time.monotonic()
        out["follower"] = e.get(self.url(p), timeout=follower_timeout)
        lead.join()
        out["t_follower"] = t0
        return out["leader"], out["follower"]

    def assert_left(self, r, body, who):
        self.assertEqual(r.status, 200, who)
        self.assertFalse(r.complete, "%s was meant to leave mid-body" % who)
        self.assertEqual(r.error, "timeout", who)
        self.assertTrue(body.startswith(r.body), who)
        self.assertGreater(len(r.body), 0, who)

    def test_leader_leaves_the_follower_gets_everything(self):
        e = self.edge = self.start_edge()
        base = self.baseline(e)
        p = self.path("o.bin", size=self.SIZE, rate=self.RATE)
        body = body_for(p, self.SIZE)
        leader, follower = self.start_pair(e, p, leader_timeout=0.8, follower_timeout=15)
        self.assert_left(leader, body, "leader")
        self.assert_exact([follower], body, "follower")
        self.assertIn("collapsed", follower.header("Cache-Status"))
        self.assert_contract(e, base, origin_pool_max=base["origin_pool"] + 1)
        r = e.get(self.url(p))
        self.assert_exact([r], body)
        self.assertEqual(r.header("Cache-Status"), "sluice; hit")
        self.assertEqual(e.origin.requests(p), 1)
        self.assertEqual(e.origin.stats()["aborted_by_client"], 0)

    def test_follower_leaves_the_leader_gets_everything(self):
        e = self.edge = self.start_edge()
        base = self.baseline(e)
        p = self.path("o.bin", size=self.SIZE, rate=self.RATE)
        body = body_for(p, self.SIZE)
        leader, follower = self.start_pair(e, p, leader_timeout=15, follower_timeout=0.6)
        self.assert_exact([leader], body, "leader")
        self.assert_left(follower, body, "follower")
        self.assert_contract(e, base, origin_pool_max=base["origin_pool"] + 1)
        r = e.get(self.url(p))
        self.assertEqual(r.header("Cache-Status"), "sluice; hit")
        self.assertEqual(e.origin.requests(p), 1)

    def test_everyone_leaves_a_healthy_writer_finishes_in_the_background(self):
        e = self.edge = self.start_edge()
        base = self.baseline(e)
        p = self.path("o.bin", size=self.SIZE, rate=self.RATE)
        body = body_for(p, self.SIZE)
        leader, follower = self.start_pair(e, p, leader_timeout=0.8, follower_timeout=0.6)
        self.assert_left(leader, body, "leader")
        self.assert_left(follower, body, "follower")
        # Nobody is reading; the origin transfer runs to its end anyway.
        self.assert_contract(e, base, origin_pool_max=base["origin_pool"] + 1)
        st = e.origin.stats()
        self.assertEqual(st["aborted_by_client"], 0)
        self.assertEqual(st["paths"][p]["bytes_sent"], self.SIZE)
        m = e.metrics()
        self.assertEqual(self.delta(base["metrics"], m, "sluice_fills_committed_total"), 1)
        r = e.get(self.url(p))
        self.assert_exact([r], body)
        self.assertEqual(r.header("Cache-Status"), "sluice; hit")
        self.assertEqual(e.origin.requests(p), 1)

    def test_everyone_leaves_a_failed_writer_aborts_the_origin_at_once(self):
        e = self.edge = self.start_edge()
        base = self.baseline(e)
        p = self.path("o.bin", size=self.SIZE, rate=self.RATE)
        body = body_for(p, self.SIZE)
        e.fault("kind=eio&after=64K")
        leader, follower = self.start_pair(e, p, leader_timeout=0.8, follower_timeout=0.6)
        left = time.monotonic()
        e.fault("kind=none")
        self.assert_left(leader, body, "leader")
        self.assert_left(follower, body, "follower")
        # The origin sees its response aborted right away, far before the
        # 2 s body would have ended, and its connection goes.
        wait_until(lambda: e.origin.stats()["aborted_by_client"] == 1, 1.0,
                   message="origin transfer not aborted when the last client left")
        self.assertLess(time.monotonic() - left, 1.0)
        self.assertLess(e.origin.stats()["paths"][p]["bytes_sent"], self.SIZE)
        self.assert_contract(e, base)
        m = e.metrics()
        self.assertEqual(self.delta(base["metrics"], m, wfail("eio")), 1)
        self.assertEqual(self.delta(base["metrics"], m, "sluice_fills_failed_total"), 1)
        self.assertIsNone(e.object_file_for(p))
        r = e.get(self.url(p))
        self.assert_exact([r], body)
        self.assertEqual(r.header("Cache-Status"), "sluice; fwd=uri-miss; stored")
        self.assertEqual(e.origin.requests(p), 2)

    def test_everyone_leaves_a_fill_too_big_for_the_background_is_aborted(self):
        # fill_background_max_size bounds what is finished with nobody
        # waiting: past it, the origin transfer is aborted at once.
        e = self.edge = self.start_edge({"fill_background_max_size": "1M"})
        base = self.baseline(e)
        p = self.path("o.bin", size=self.SIZE, rate=self.RATE)
        body = body_for(p, self.SIZE)
        leader, follower = self.start_pair(e, p, leader_timeout=0.8, follower_timeout=0.6)
        self.assert_left(leader, body, "leader")
        self.assert_left(follower, body, "follower")
        wait_until(lambda: e.origin.stats()["aborted_by_client"] == 1, 1.0,
                   message="origin transfer not aborted when the last client left")
        self.assert_contract(e, base)
        self.assertIsNone(e.object_file_for(p))
        m = e.metrics()
        self.assertEqual(self.delta(base["metrics"], m, "sluice_fills_failed_total"), 1)
        self.assertEqual(self.delta(base["metrics"], m, "sluice_fills_committed_total"), 0)


if __name__ == "__main__":
    unittest.main()
