"""C1/C2/C6: the cache writer fails or hangs; no client notices.

Every fault here hits the *cache write* path only. The contract: every
client still receives the complete, byte-exact body at origin speed; the
temp file is gone at once; nothing partial is committed; a later request
refetches (or hits, where the object did get committed) correctly; the
process returns to its baseline; the matching metric moved.
"""

import os
import unittest

from contract import (ContractCase, KiB, MiB, across_routes, body_for, mount_tmpfs, parallel, umount, wait_until,
                      wfail)


@across_routes(always=False)
class RealEnospc(ContractCase):
    """The cache directory is a 16 MiB tmpfs; 24 concurrent distinct fills
    (128 KiB .. 3 MiB, 37.5 MiB in all, each at 1.5 MiB/s) overflow it while
    their bytes are streaming: the small ones commit first, the disk fills
    about 0.5 s in, every writer still running gets ENOSPC."""

    N = 24
    RATE = 1536 * KiB

    def size(self, i):
        return (i + 1) * 128 * KiB

    def test_disk_full_midway_every_client_gets_the_whole_body(self):
        d = mount_tmpfs("16m")
        self.addCleanup(umount, d)
        e = self.edge = self.start_edge({"cache_max_size": "1G"}, cache_dir=os.path.join(d, "cache"))
        base = self.baseline(e)
        paths = [self.path("o%02d.bin" % i, size=self.size(i), rate=self.RATE) for i in range(self.N)]
        rs = parallel(lambda p: e.get(self.url(p), timeout=30), paths)
        for i, (p, r) in enumerate(zip(paths, rs)):
            self.assert_exact([r], body_for(p, self.size(i)), what=p)
        self.assert_contract(e, base, origin_pool_max=base["origin_pool"] + self.N)
        after = e.metrics()
        enospc = self.delta(base["metrics"], after, wfail("enospc"))
        committed = self.delta(base["metrics"], after, "sluice_fills_committed_total")
        self.assertGreaterEqual(enospc, 1, "the tmpfs never filled up: the test proves nothing")
        # Each fill either committed or was detached for ENOSPC (a body write
        # or the commit's header write), nothing else.
        self.assertEqual(committed + enospc, self.N, {k: v for k, v in after.items() if "write_failures" in k})
        self.assertEqual(self.delta(base["metrics"], after, "sluice_writers_detached_total"), enospc)
        # Whatever was committed is whole and correct.
        sizes = {p: self.size(i) for i, p in enumerate(paths)}
        for key, body in e.object_bodies().items():
            p = "/" + key.split(":", 1)[1].lstrip("/")
            if p in sizes:
                self.assertEqual(body, body_for(p, sizes[p]), key)
        # A later request: a hit where committed, a correct refetch elsewhere
        # (at full speed now, one at a time).
        for i, p in enumerate(paths):
            e.origin.set_object(p, size=self.size(i))
            was_stored = e.object_file_for(p) is not None
            r = e.get(self.url(p), timeout=30)
            self.assert_exact([r], body_for(p, self.size(i)), what=p)
            if was_stored:
                self.assertEqual(r.header("Cache-Status"), "sluice; hit", p)
                self.assertEqual(e.origin.requests(p), 1, p)
            else:
                self.assertTrue(r.header("Cache-Status").startswith("sluice; fwd=uri-miss"), p)
                self.assertEqual(e.origin.requests(p), 2, p)
        self.assert_contract(e, base, origin_pool_max=base["origin_pool"] + self.N)


class SeamFault:
    """An injected write error after 512 KiB of body, 8 fills x 2 clients."""

    KIND = None          # fault kind
    REASONS = ()         # metric label(s) that must count it
    N = 8
    SIZE = 2 * MiB

    def test_injected_write_error_detaches_the_writer_only(self):
        e = self.edge = self.start_edge()
        base = self.baseline(e)
        # delay: the follower attaches before the head; rate: ~0.5 s body.
        paths = [self.path("o%d.bin" % i, size=self.SIZE, rate=4 * MiB, delay_ms=200) for i in range(self.N)]
        e.fault("kind=%s&after=512K" % self.KIND)
        rs = parallel(lambda i: e.get(self.url(paths[i // 2]), timeout=20), range(2 * self.N))
        for i, r in enumerate(rs):
            self.assert_exact([r], body_for(paths[i // 2], self.SIZE), what="client %d" % i)
        statuses = sorted(r.header("Cache-Status") for r in rs)
        self.assertEqual(statuses.count("sluice; fwd=uri-miss; collapsed; stored"), self.N, statuses)
        e.fault("kind=none")
        self.assert_contract(e, base, origin_pool_max=base["origin_pool"] + self.N)
        after = e.metrics()
        moved = sum(self.delta(base["metrics"], after, wfail(r)) for r in self.REASONS)
        self.assertEqual(moved, self.N, {k: v for k, v in after.items() if "write_failures" in k})
        self.assertEqual(self.delta(base["metrics"], after, "sluice_writers_detached_total"), self.N)
        self.assertEqual(self.delta(base["metrics"], after, "sluice_fills_committed_total"), 0)
        for p in paths:
            self.assertIsNone(e.object_file_for(p), "%s: a failed write was committed" % p)
            self.assertEqual(e.origin.requests(p), 1, "%s: singleflight broken under the fault" % p)
        # Next request: a fresh fill that stores, then a hit.
        rs = parallel(lambda p: e.get(self.url(p), timeout=20), paths)
        for p, r in zip(paths, rs):
            self.assert_exact([r], body_for(p, self.SIZE), what=p)
            self.assertEqual(r.header("Cache-Status"), "sluice; fwd=uri-miss; stored")
        e.wait_idle()
        for p in paths:
            r = e.get(self.url(p))
            self.assert_exact([r], body_for(p, self.SIZE), what=p)
            self.assertEqual(r.header("Cache-Status"), "sluice; hit")
            self.assertEqual(e.origin.requests(p), 2)
        self.assert_contract(e, base, origin_pool_max=base["origin_pool"] + self.N)


@across_routes(always=False)
class Edquot(SeamFault, ContractCase):
    KIND = "edquot"
    REASONS = ("edquot",)


@across_routes
class Eio(SeamFault, ContractCase):
    KIND = "eio"
    REASONS = ("eio",)


@across_routes(always=False)
class ShortWrite(SeamFault, ContractCase):
    # A write that wrote part of its bytes and then made no progress.
    # Either label satisfies the contract ("counted by reason").
    KIND = "short"
    REASONS = ("short_write",)


@across_routes(tests=("test_hang_past_the_deadline_detaches_the_writer",))
class HangingWrite(ContractCase):
    """A cache write that blocks (kind=hang): the clients never wait for it."""

    SIZE = 4 * MiB
    RATE = 4 * MiB      # ~1 s of origin time

    def run_clients(self, e, p, n=5):
        rs = parallel(lambda i: e.get(self.url(p), timeout=40), range(n))
        self.assert_exact(rs, body_for(p, self.SIZE))
        return max(r.elapsed for r in rs)

    def test_hang_shorter_than_the_deadline_clients_finish_at_origin_speed(self):
        # The write hangs 3 s; the deadline is 30 s: the object is still
        # committed once the write returns, but nobody waited for it.
        e = self.edge = self.start_edge({"cache_write_timeout": "30s"})
        base = self.baseline(e)
        p = self.path("h.bin", size=self.SIZE, rate=self.RATE, delay_ms=100)
        e.fault("kind=hang&after=256K&hang=3s&count=1")
        slowest = self.run_clients(e, p)
        self.assertLess(slowest, 2.0, "clients waited for the hung cache write")
        self.assert_contract(e, base)
        m = e.metrics()
        self.assertEqual(self.delta(base["metrics"], m, "sluice_fills_committed_total"), 1)
        self.assertEqual(self.delta(base["metrics"], m, "sluice_writers_detached_total"), 0)
        r = e.get(self.url(p))
        self.assert_exact([r], body_for(p, self.SIZE))
        self.assertEqual(r.header("Cache-Status"), "sluice; hit")
        self.assertEqual(e.origin.requests(p), 1)

    def test_hang_past_the_deadline_detaches_the_writer(self):
        # The write hangs 5 s; the deadline (2 s) detaches the writer; the
        # clients finished long before either.
        e = self.edge = self.start_edge({"cache_write_timeout": "2s"})
        base = self.baseline(e)
        p = self.path("h.bin", size=self.SIZE, rate=self.RATE, delay_ms=100)
        e.fault("kind=hang&after=256K&hang=5s&count=1")
        slowest = self.run_clients(e, p)
        self.assertLess(slowest, 2.0, "clients waited for the write deadline")
        self.assert_contract(e, base)
        m = e.metrics()
        self.assertEqual(self.delta(base["metrics"], m, wfail("timeout")), 1)
        self.assertEqual(self.delta(base["metrics"], m, "sluice_fills_committed_total"), 0)
        self.assertIsNone(e.object_file_for(p))
        r = e.get(self.url(p))
        self.assert_exact([r], body_for(p, self.SIZE))
        self.assertEqual(r.header("Cache-Status"), "sluice; fwd=uri-miss; stored")

    def lag_run(self, extra, before=None):
        """12 MiB through a 2 MiB in-memory window while the write hangs 5 s
        (deadline 30 s): once the writer is cache_write_lag_max (4 MiB)
        behind, it is detached for lagging; the origin is never paused for
        it, the clients finish at origin speed."""
        e = self.edge = self.start_edge(dict({"cache_write_timeout": "30s", "fill_buffer_size": "2M",
                                              "cache_write_lag_max": "4M"}, **extra))
        if before:
            before(e)
        base = self.baseline(e)
        size = 12 * MiB
        p = self.path("big.bin", size=size, rate=12 * MiB, delay_ms=100)
        e.fault("kind=hang&after=256K&hang=5s&count=1")
        rs = parallel(lambda i: e.get(self.url(p), timeout=40), range(5))
        self.assert_exact(rs, body_for(p, size))
        self.assertLess(max(r.elapsed for r in rs), 3.0, "the origin was paused for the cache writer")
        return e, base, p, size

    def test_hang_on_an_object_larger_than_the_spool_window(self):
        # Then, with nobody attached, the object is fetched once more and
        # that origin is paced by the writer: it gets stored.
        e, base, p, size = self.lag_run({})
        self.assert_contract(e, base, origin_pool_max=base["origin_pool"] + 1)
        m = e.metrics()
        self.assertEqual(self.delta(base["metrics"], m, wfail("lag")), 1)
        self.assertEqual(self.delta(base["metrics"], m, "sluice_fill_refetches_total"), 1)
        self.assertEqual(self.delta(base["metrics"], m, "sluice_misses_total"), 1)   # a refetch is no request
        self.assertEqual(self.delta(base["metrics"], m, "sluice_fills_committed_total"), 1)
        self.assertEqual(e.origin.requests(p), 2)
        r = e.get(self.url(p))
        self.assert_exact([r], body_for(p, size))
        self.assertEqual(r.header("Cache-Status"), "sluice; hit")

    def test_no_refetch_while_the_disk_fails_writes(self):
        # A full or failing disk makes every fill lag or fail at once; a
        # round of refetches would only fetch everything again to fail again.
        def disk_error(e):
            q = self.path("small.bin", size=256 * 1024)
            e.fault("kind=enospc&after=0&count=1")
            self.assert_exact([e.get(self.url(q))], body_for(q, 256 * 1024))
            wait_until(lambda: e.metrics().get(wfail("enospc"), 0) >= 1, 5, message="no ENOSPC recorded")
        e, base, p, size = self.lag_run({}, before=disk_error)
        self.assert_contract(e, base)
        m = e.metrics()
        self.assertEqual(self.delta(base["metrics"], m, wfail("lag")), 1)
        self.assertEqual(self.delta(base["metrics"], m, "sluice_fill_refetches_total"), 0)
        self.assertEqual(e.origin.requests(p), 1)

    def test_lag_without_refetch(self):
        e, base, p, size = self.lag_run({"cache_refetch_max_size": "0"})
        self.assert_contract(e, base)
        m = e.metrics()
        self.assertEqual(self.delta(base["metrics"], m, wfail("lag")), 1)
        self.assertEqual(self.delta(base["metrics"], m, "sluice_fill_refetches_total"), 0)
        self.assertIsNone(e.object_file_for(p))
        self.assertEqual(e.origin.requests(p), 1)

if __name__ == "__main__":
    unittest.main()
