"""heap_prefault (issue 19): a burst of fills reuses warm heap pages.

Every request the agent serves allocates on its loop a connection's input
buffer, and every fill a libcurl receive buffer (64 KiB). With the
default heap_prefault those come out of heap made resident before the agent
listened, so a burst of 20 distinct fills takes a handful of page faults on
the loop; with heap_prefault = 0 each fresh page of those buffers is one
fault (about 30 a fill), each a trip into the kernel while the burst's
first bytes wait. The property belongs to glibc's allocator, so these tests
run the release binary: ASan and valgrind bring allocators of their own,
which the agent leaves alone (it says so in its log).
"""

import os
import sys
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

from edge import ROOT, Edge  # noqa: E402
from origin import body_for  # noqa: E402

RELEASE_BIN = os.path.join(ROOT, "build", "release", "sluice")
BURST = 20
SIZE = 512 * 1024


def minor_faults(pid):
    """Minor page faults of every thread of process `pid` so far."""
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[7])


def burst_faults(edge, tag):
    """The agent's page faults while BURST distinct objects are filled at
    once (after one fill, so that one-time start-up costs are not counted);
    every body is checked byte for byte."""
    paths = ["/heap/%s/o%d.bin" % (tag, i) for i in range(BURST + 1)]
    for p in paths:
        edge.origin.set_object(p, size=SIZE)
    first = edge.get("/generic" + paths[0], timeout=30)
    assert first.status == 200, first.status
    results = [None] * BURST
    go = threading.Barrier(BURST + 1)

    def run(i):
        go.wait(10)
        results[i] = edge.get("/generic" + paths[i + 1], timeout=60)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(BURST)]
    for t in threads:
        t.start()
    before = minor_faults(edge.agent.pid)
    go.wait(10)
    for t in threads:
        t.join(60)
    faults = minor_faults(edge.agent.pid) - before
    for i, r in enumerate(results):
        assert r is not None and r.status == 200 and r.body == body_for(paths[i + 1], SIZE), i
    return faults


@unittest.skipUnless(os.path.exists(RELEASE_BIN), "needs the release build (make release)")
class HeapPrefault(unittest.TestCase):
    def faults_with(self, settings):
        with Edge(settings=settings, agent_bin=RELEASE_BIN) as e:
            return burst_faults(e, self.id().rsplit(".", 1)[-1] + "-" + (settings.get("heap_prefault") or "default"))

    def test_a_burst_of_fills_reuses_warm_pages(self):
        warm = self.faults_with({})
        cold = self.faults_with({"heap_prefault": "0"})
        # The default: a few faults per fill at most (the kernel's own
        # socket buffers are not the agent's), far fewer than without.
        self.assertLess(warm, 5 * BURST, "default heap_prefault: %d faults, without: %d" % (warm, cold))
        self.assertGreater(cold, 3 * warm, "default heap_prefault: %d faults, without: %d" % (warm, cold))


if __name__ == "__main__":
    unittest.main()
