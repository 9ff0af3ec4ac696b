"""Disk accounting: cache_max_size and cache_min_free are enforced by LRU
eviction on the worker pool, so the disk filling up is an exceptional fault,
not the normal way the cache fills; an object being served is never evicted.
"""

import os
import threading
import unittest

from contract import ContractCase, KiB, MiB, across_routes, body_for, mount_tmpfs, umount, wait_until

HDR = 4096


@across_routes(always=False)
class MaxSize(ContractCase):
    SIZE = 6 * MiB
    # Room for three objects (and the warm-up's 5 KiB one), not four.
    LIMIT = 3 * (SIZE + HDR) + 64 * KiB
    settings = {"cache_max_size": str(LIMIT)}

    def fill(self, e, name):
        # 6 MiB fits the default 8 MiB memory window, so the writer can never
        # be detached for lagging: every fill commits.
        p = self.path(name, size=self.SIZE)
        r = e.get(self.url(p), timeout=20)
        self.assert_exact([r], body_for(p, self.SIZE), what=p)
        e.wait_idle()
        self.assertIsNotNone(e.object_file_for(p), "%s was not committed" % p)
        self.assert_within_limit(e)
        return p

    def hit(self, e, p):
        r = e.get(self.url(p), timeout=20)
        self.assert_exact([r], body_for(p, self.SIZE), what=p)
        self.assertEqual(r.header("Cache-Status"), "sluice; hit", p)

    def on_disk(self, e):
        return sum(os.path.getsize(f) for f in e.object_files())

    def assert_within_limit(self, e):
        # Eviction runs on a worker: give it a bounded moment.
        wait_until(lambda: e.metric("sluice_cache_bytes") <= self.LIMIT and self.on_disk(e) <= self.LIMIT, 5,
                   message="cache over cache_max_size: index %s, disk %d"
                   % (e.metric("sluice_cache_bytes"), self.on_disk(e)))
        self.assertEqual(e.metric("sluice_cache_bytes"), self.on_disk(e))

    def test_lru_eviction_keeps_the_cache_under_its_limit(self):
        e = self.edge = self.start_edge()
        base = self.baseline(e)
        a, b, c = (self.fill(e, n) for n in ("a.bin", "b.bin", "c.bin"))
        self.assertEqual(e.metric("sluice_evictions_total"), 0)
        self.hit(e, a)                  # a is now more recent than b and c
        d = self.fill(e, "d.bin")       # evicts the least recently used: b
        self.assertIsNone(e.object_file_for(b), "LRU order ignored: b should have gone")
        for p in (a, c, d):
            self.assertIsNotNone(e.object_file_for(p), p)
            self.hit(e, p)
        m = e.metrics()
        self.assertGreaterEqual(self.delta(base["metrics"], m, "sluice_evictions_total"), 1)
        self.assertGreaterEqual(self.delta(base["metrics"], m, "sluice_evicted_bytes_total"), self.SIZE + HDR)
        # The evicted key is an ordinary miss again.
        r = e.get(self.url(b), timeout=20)
        self.assert_exact([r], body_for(b, self.SIZE))
        self.assertEqual(r.header("Cache-Status"), "sluice; fwd=uri-miss; stored")
        e.wait_idle()
        self.assert_within_limit(e)
        self.assert_contract(e, base, origin_pool_max=base["origin_pool"] + 1)

    def test_an_object_being_served_is_never_evicted(self):
        e = self.edge = self.start_edge()
        base = self.baseline(e)
        a, b, c = (self.fill(e, n) for n in ("a.bin", "b.bin", "c.bin"))
        # A slow hit on c, straight to the agent with a small window so the
        # agent itself is still sending (HAProxy would absorb 6 MiB at once).
        out = {}
        t = threading.Thread(target=lambda: out.setdefault("r", e.get_agent(
            self.url(c), timeout=30, rcvbuf=16 * KiB, read_rate=2 * MiB)))
        hits = e.metric("sluice_hits_total")
        t.start()
        wait_until(lambda: e.metric("sluice_hits_total") > hits, 5)
        # Three more objects: c is the least recently used the whole time
        # (a and b go first, then the newcomers) but it is pinned.
        for n in ("d.bin", "e.bin", "f.bin"):
            self.fill(e, n)
            self.assertTrue(t.is_alive(), "the slow hit ended too soon to prove anything")
            self.assertIsNotNone(e.object_file_for(c), "evicted while being served")
        t.join()
        r = out["r"]
        self.assert_exact([r], body_for(c, self.SIZE), what="slow hit")
        self.assertEqual(r.header("Cache-Status"), "sluice; hit")
        for p in (a, b):
            self.assertIsNone(e.object_file_for(p), p)
        # Unpinned, c is ordinary LRU prey again.
        self.fill(e, "g.bin")
        self.assertIsNone(e.object_file_for(c), "c should be evicted once nobody reads it")
        self.assert_contract(e, base, origin_pool_max=base["origin_pool"] + 1)


@across_routes(always=False)
class MinFree(ContractCase):
    """cache_min_free on a 16 MiB tmpfs: eviction keeps 8 MiB free."""

    SIZE = 3 * MiB

    def test_min_free_is_kept_by_eviction(self):
        d = mount_tmpfs("16m")
        self.addCleanup(umount, d)
        e = self.edge = self.start_edge({"cache_min_free": "8M", "cache_max_size": "1G"},
                                        cache_dir=os.path.join(d, "cache"))
        base = self.baseline(e)

        def free():
            st = os.statvfs(d)
            return st.f_bavail * st.f_frsize
        paths = []
        for i in range(5):
            p = self.path("o%d.bin" % i, size=self.SIZE)
            r = e.get(self.url(p), timeout=20)
            self.assert_exact([r], body_for(p, self.SIZE), what=p)
            e.wait_idle()
            paths.append(p)
            wait_until(lambda: free() >= 8 * MiB, 5, message="cache_min_free not kept: %d free" % free())
        m = e.metrics()
        self.assertGreaterEqual(self.delta(base["metrics"], m, "sluice_evictions_total"), 2)
        self.assertEqual(self.delta(base["metrics"], m, 'sluice_cache_write_failures_total{reason="enospc"}'), 0,
                         "the disk filled up: eviction did not make room")
        # The newest object survived; the oldest went first.
        self.assertIsNotNone(e.object_file_for(paths[-1]))
        self.assertIsNone(e.object_file_for(paths[0]))
        self.assert_contract(e, base, origin_pool_max=base["origin_pool"] + 1)


if __name__ == "__main__":
    unittest.main()
