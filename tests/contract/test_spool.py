"""C1 and the spool: readers beyond the in-memory window.

A fill keeps at most fill_buffer_size of body in memory; a reader behind
that window reads the spool file (the temp file the writer is filling). These
tests put such readers in the path of a failing writer: whatever happens to
the cache write, every reader gets the byte-exact body.
"""

import threading
import unittest

from contract import ContractCase, KiB, MiB, across_routes, body_for, parallel, wait_until, wfail


@across_routes(always=False)
class LateFollower(ContractCase):
    # A 4 MiB window at 8 MiB/s: slack enough for the ASan build's writer on
    # a loaded machine (a lagging writer would be detached, see test_writer_faults).
    settings = {"fill_buffer_size": "4M"}
    SIZE = 16 * MiB
    RATE = 8 * MiB      # 2 s of origin time

    def start_leader(self, e, p):
        out = {}
        t = threading.Thread(target=lambda: out.setdefault("r", e.get(self.url(p), timeout=30)))
        t.start()
        # Join once most of the body has gone by: far past the 4 MiB window.
        wait_until(lambda: e.origin.bytes_sent(p) >= 10 * MiB, 10, message="fill never got under way")
        return t, out

    def test_late_follower_reads_the_spool_file_then_the_live_tail(self):
        e = self.edge = self.start_edge()
        base = self.baseline(e)
        p = self.path("late.bin", size=self.SIZE, rate=self.RATE)
        t, out = self.start_leader(e, p)
        late = e.get(self.url(p), timeout=30)
        t.join()
        body = body_for(p, self.SIZE)
        self.assert_exact([out["r"], late], body)
        self.assertEqual(self.delta(base["metrics"], e.metrics(), "sluice_writers_detached_total"), 0,
                         "the writer was detached (lagging?): the late follower could not use the file")
        self.assertEqual(late.header("Cache-Status"), "sluice; fwd=uri-miss; collapsed; stored")
        self.assertEqual(e.origin.requests(p), 1)
        self.assert_contract(e, base, origin_pool_max=base["origin_pool"] + 1)

    def test_late_follower_after_the_writer_failed_starts_a_new_generation(self):
        # The early bytes are neither in memory nor in a file any more: the
        # late request cannot follow from byte 0. The old fill is retired (it
        # goes on serving its leader) and the late request leads a new fill
        # of the key - a second origin request - which is whole, exact and
        # stored: the next request is a hit.
        e = self.edge = self.start_edge()
        base = self.baseline(e)
        p = self.path("late.bin", size=self.SIZE, rate=self.RATE)
        e.fault("kind=eio&after=1M")
        t, out = self.start_leader(e, p)
        e.fault("kind=none")
        late = e.get(self.url(p), timeout=30)
        t.join()
        body = body_for(p, self.SIZE)
        self.assert_exact([out["r"], late], body)
        self.assertEqual(late.header("Cache-Status"), "sluice; fwd=uri-miss; stored")
        self.assertEqual(e.origin.requests(p), 2)
        self.assert_contract(e, base, origin_pool_max=base["origin_pool"] + 2)
        m = e.metrics()
        self.assertEqual(self.delta(base["metrics"], m, wfail("eio")), 1)
        self.assertEqual(self.delta(base["metrics"], m, "sluice_fills_committed_total"), 1)
        r = e.get(self.url(p))
        self.assert_exact([r], body)
        self.assertEqual(r.header("Cache-Status"), "sluice; hit")
        self.assertEqual(e.origin.requests(p), 2)


@across_routes(always=False)
class WriterFailsUnderASpoolReader(ContractCase):
    """A slow reader is behind the memory window (reading the spool file)
    when the writer fails: it finishes from the unlinked file it already has
    open, then from memory - byte-exact - and the disk space of the failed
    temp file is returned once no reader needs it."""

    settings = {"fill_buffer_size": "2M"}
    SIZE = 16 * MiB

    def test_slow_reader_behind_memory_survives_the_writer_failing(self):
        e = self.edge = self.start_edge()
        base = self.baseline(e)
        # The origin runs at 32 MiB/s, the slow reader at 4 MiB/s: when the
        # write fails at 10 MiB the reader is several MiB behind the memory
        # window, socket buffers included.
        p = self.path("o.bin", size=self.SIZE, rate=32 * MiB, delay_ms=100)
        e.fault("kind=eio&after=10M")

        def client(i):
            if i == 0:   # straight to the agent so HAProxy cannot absorb the lag
                return e.get_agent(self.url(p), timeout=30, rcvbuf=16 * KiB, read_rate=4 * MiB)
            return e.get(self.url(p), timeout=30)
        rs = parallel(client, range(3))
        e.fault("kind=none")
        self.assert_exact(rs, body_for(p, self.SIZE))
        # Detached by the injected EIO - or, on a loaded machine, for lagging
        # behind the 32 MiB/s origin first: either way the writer went away
        # while the slow reader was behind the memory window.
        m = e.metrics()
        self.assertEqual(self.delta(base["metrics"], m, wfail("eio")) + self.delta(base["metrics"], m, wfail("lag")),
                         1, "the writer was not detached")
        self.assertEqual(e.origin.requests(p), 1)
        self.assert_contract(e, base, origin_pool_max=base["origin_pool"] + 1)
        self.assertIsNone(e.object_file_for(p))


if __name__ == "__main__":
    unittest.main()
