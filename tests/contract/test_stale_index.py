"""C3: the index says "hit" but the object file is gone or bad.

The object file is deleted, truncated, has a corrupt header, or holds another
key's object, behind the agent's back. The request is served as a miss,
decided before any response byte: a 200 with the complete, correct body and
`Cache-Status: sluice; fwd=miss` - never a 500, never a truncated 200. The
entry is dropped (sluice_stale_index_dropped_total), a bad file is removed,
the new fill commits and the key is a hit again.
"""

import os
import threading
import unittest

from contract import ContractCase, KiB, MiB, across_routes, body_for, parallel, wait_until


@across_routes
class StaleIndex(ContractCase):
    SIZE = 1 * MiB

    def committed(self, e, name):
        p = self.path(name, size=self.SIZE)
        r = e.get(self.url(p))
        self.assert_exact([r], body_for(p, self.SIZE))
        e.wait_idle()
        f = e.object_file_for(p)
        self.assertIsNotNone(f)
        r = e.get(self.url(p))
        self.assertEqual(r.header("Cache-Status"), "sluice; hit")
        return p, f

    def check_served_as_miss(self, e, base, p, clients=1):
        before = e.metrics()
        body = body_for(p, self.SIZE)
        rs = parallel(lambda i: e.get(self.url(p), timeout=15), range(clients))
        self.assert_exact(rs, body)
        # One client finds the entry stale and leads the refetch; the others
        # follow that fill, or hit the new object if they come after it.
        statuses = sorted(r.header("Cache-Status") for r in rs)
        self.assertEqual(statuses.count("sluice; fwd=miss; stored"), 1, statuses)
        for s in statuses:
            self.assertIn(s, ("sluice; fwd=miss; stored", "sluice; fwd=uri-miss; collapsed; stored",
                              "sluice; hit", "sluice; hit; detail=committing"), statuses)
        m = e.metrics()
        self.assertEqual(self.delta(before, m, "sluice_stale_index_dropped_total"), 1)
        self.assertEqual(e.origin.requests(p), 2, "one refetch, shared by every client")
        self.assert_contract(e, base, origin_pool_max=base["origin_pool"] + 1)
        # The refetched object replaced the bad one; the key hits again.
        with open(e.object_file_for(p), "rb") as fh:
            self.assertEqual(fh.read()[4096:], body)
        r = e.get(self.url(p))
        self.assert_exact([r], body)
        self.assertEqual(r.header("Cache-Status"), "sluice; hit")
        self.assertEqual(e.origin.requests(p), 2)

    def test_object_file_deleted(self):
        e = self.edge = self.start_edge()
        base = self.baseline(e)
        p, f = self.committed(e, "deleted.bin")
        os.unlink(f)
        self.check_served_as_miss(e, base, p)

    def test_object_file_truncated(self):
        e = self.edge = self.start_edge()
        base = self.baseline(e)
        p, f = self.committed(e, "truncated.bin")
        os.truncate(f, 4096 + self.SIZE // 2)
        # Several clients at once: one refetch, nobody sees the short file.
        self.check_served_as_miss(e, base, p, clients=8)

    def test_object_file_truncated_into_its_header(self):
        e = self.edge = self.start_edge()
        base = self.baseline(e)
        p, f = self.committed(e, "headless.bin")
        os.truncate(f, 100)
        self.check_served_as_miss(e, base, p)

    def test_object_header_corrupted(self):
        e = self.edge = self.start_edge()
        base = self.baseline(e)
        p, f = self.committed(e, "corrupt.bin")
        with open(f, "r+b") as fh:
            fh.seek(20)          # inside the metadata text: the CRC no longer matches
            b = fh.read(1)
            fh.seek(20)
            fh.write(bytes([b[0] ^ 0x55]))
        self.check_served_as_miss(e, base, p, clients=4)

    def test_object_file_holds_another_key(self):
        e = self.edge = self.start_edge()
        base = self.baseline(e)
        p, f = self.committed(e, "mine.bin")
        _, other = self.committed(e, "other.bin")
        with open(other, "rb") as src, open(f, "wb") as dst:
            dst.write(src.read())
        self.check_served_as_miss(e, base, p)


@across_routes(always=False)
class ChangedWhileServed(ContractCase):
    """The file goes bad while a hit is being sent (straight to the agent,
    with a small window and a slow reader, so the agent is still sending)."""

    SIZE = 8 * MiB
    # The whole object fits the fill's memory window: its writer can never
    # be detached for lagging, so it is always committed.
    settings = {"fill_buffer_size": "16M"}

    def start_slow_hit(self, e, base):
        p = self.path("served.bin", size=self.SIZE)
        body = body_for(p, self.SIZE)
        self.assert_exact([e.get(self.url(p))], body)
        e.wait_idle()
        f = e.object_file_for(p)
        self.assertIsNotNone(f, "the object was not committed")
        out = {}
        t = threading.Thread(target=lambda: out.setdefault("r", e.get_agent(
            self.url(p), timeout=20, rcvbuf=16 * KiB, read_rate=4 * MiB)))
        t.start()
        wait_until(lambda: e.metric("sluice_hits_total") > base["metrics"].get("sluice_hits_total", 0), 5)
        return p, body, f, t, out

    def test_deleted_during_a_hit_the_hit_completes(self):
        # The open descriptor keeps the inode: the hit is whole and exact;
        # the next request finds the entry stale and refetches.
        e = self.edge = self.start_edge()
        base = self.baseline(e)
        p, body, f, t, out = self.start_slow_hit(e, base)
        os.unlink(f)
        t.join()
        self.assert_exact([out["r"]], body)
        self.assertEqual(out["r"].header("Cache-Status"), "sluice; hit")
        r = e.get(self.url(p))
        self.assert_exact([r], body)
        self.assertEqual(r.header("Cache-Status"), "sluice; fwd=miss; stored")
        self.assert_contract(e, base)

    def test_truncated_in_place_during_a_hit_is_an_aborted_transfer(self):
        # The response can no longer be completed: it is aborted, never a
        # clean short 200. Known limit (docs/failure-contract.md): bytes that
        # sendfile already queued in the socket reference page-cache pages,
        # which the kernel zeroes on truncate, so up to a socket buffer of
        # zeros may precede the abort; only the surviving prefix is checked.
        e = self.edge = self.start_edge()
        base = self.baseline(e)
        p, body, f, t, out = self.start_slow_hit(e, base)
        keep = 1 * MiB
        os.truncate(f, 4096 + keep)
        t.join()
        r = out["r"]
        self.assertEqual(r.header("Cache-Status"), "sluice; hit")
        self.assertFalse(r.complete, "a hit whose file shrank ended cleanly")
        self.assertLess(len(r.body), self.SIZE)
        self.assertEqual(r.body[:keep], body[:min(keep, len(r.body))])
        # The next request notices the bad file before any byte.
        r = e.get(self.url(p))
        self.assert_exact([r], body)
        self.assertEqual(r.header("Cache-Status"), "sluice; fwd=miss; stored")
        self.assert_contract(e, base)


if __name__ == "__main__":
    unittest.main()
