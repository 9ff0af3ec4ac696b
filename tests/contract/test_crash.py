"""C2/C7: kill -9 in the middle of fills, then restart.

While fills are streaming (temp files half written), the agent is killed
with SIGKILL. Their clients get aborted transfers, never a clean short body;
the origin sees its transfers cut. While the agent is down HAProxy serves
from the origin (fail-open). On restart the temp debris is swept
(sluice_temp_files_swept_total), the index is rebuilt from disk (objects
committed before the crash are hits again), no partial object is ever
served, and the interrupted keys are fetched afresh and stored.
"""

import os
import threading
import unittest

from contract import ContractCase, KiB, MiB, across_routes, body_for, parallel, wait_until


@across_routes(always=False)
class KillNineMidFill(ContractCase):
    SIZE = 4 * MiB
    N = 3

    def test_kill_during_fills_then_restart(self):
        e = self.edge = self.start_edge()
        # Committed before the crash.
        old = self.path("committed.bin", size=1 * MiB)
        self.assert_exact([e.get(self.url(old))], body_for(old, 1 * MiB))
        e.wait_idle()
        self.assertIsNotNone(e.object_file_for(old))
        base = self.baseline(e)

        # Fills in flight: 2 clients per key, 4 s of body each.
        paths = [self.path("inflight%d.bin" % i, size=self.SIZE, rate=1 * MiB) for i in range(self.N)]
        results = {}

        def client(i):
            results[i] = e.get(self.url(paths[i // 2]), timeout=20)
        threads = [threading.Thread(target=client, args=(i,)) for i in range(2 * self.N)]
        for t in threads:
            t.start()

        def half_written():
            tmp = os.path.join(e.cache_dir, "tmp")
            files = e.temp_files()
            return len(files) == self.N and all(
                os.path.getsize(os.path.join(tmp, f)) >= 4096 + 256 * KiB for f in files)
        wait_until(half_written, 10, message="fills never got under way")
        debris = e.temp_files()
        e.kill_agent()
        for t in threads:
            t.join()
        for i in range(2 * self.N):
            self.assert_aborted([results[i]], body_for(paths[i // 2], self.SIZE), what="client %d" % i)
            self.assertGreater(len(results[i].body), 0)
        # The crash left its debris - and nothing in objects/ for those keys.
        self.assertEqual(e.temp_files(), debris)
        for p in paths:
            self.assertIsNone(e.object_file_for(p), "a partial object was committed")
        # The origin's transfers were cut when the process died.
        wait_until(lambda: e.origin.stats()["aborted_by_client"] == self.N, 5,
                   message="origin transfers not cut by the crash")
        e.origin.wait_idle(5)
        # Agent down: HAProxy fails open to the origin.
        r = e.get(self.url(old), timeout=10)
        self.assert_exact([r], body_for(old, 1 * MiB))
        self.assertEqual(r.header("Cache-Status"), "sluice; fwd=bypass")

        e.start_agent()
        self.assertEqual(e.temp_files(), [], "temp debris not swept at start")
        m = e.metrics()
        self.assertEqual(m["sluice_temp_files_swept_total"], self.N)
        wait_until(lambda: e.metric("sluice_index_loading") == 0, 10)
        self.assertEqual(e.metric("sluice_cache_objects"), 2)   # the old object and the warm-up's
        # The index rebuilt from disk: the old object is a hit (once HAProxy
        # sees the agent back).
        wait_until(lambda: e.get(self.url(old)).header("Cache-Status") == "sluice; hit", 10,
                   message="the committed object is not a hit after the restart")
        r = e.get(self.url(old))
        self.assert_exact([r], body_for(old, 1 * MiB))
        # The interrupted keys: fetched afresh, whole, stored, then hits.
        for p in paths:
            e.origin.set_object(p, size=self.SIZE)
        rs = parallel(lambda p: e.get(self.url(p), timeout=20), paths)
        for p, r in zip(paths, rs):
            self.assert_exact([r], body_for(p, self.SIZE), what=p)
            self.assertEqual(r.header("Cache-Status"), "sluice; fwd=uri-miss; stored")
        e.wait_idle()
        for p in paths:
            r = e.get(self.url(p))
            self.assert_exact([r], body_for(p, self.SIZE), what=p)
            self.assertEqual(r.header("Cache-Status"), "sluice; hit")
        # The new process settles to the same baseline as the old one.
        self.assert_contract(e, base, origin_pool_max=base["origin_pool"] + self.N)


if __name__ == "__main__":
    unittest.main()
