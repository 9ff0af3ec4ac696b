"""The open-file cache (hot objects kept open) must never serve a file that
changed behind the agent's back: deleted, truncated, or rewritten objects
are revalidated before the status line, exactly like uncached ones (C3).
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

from edge import Edge  # noqa: E402
from origin import body_for  # noqa: E402

SIZE = 50_000


class OpenFileCache(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Every hit must reach the agent's open file cache: the edge memory
        # tier (which would answer these from HAProxy) is off.
        cls.edge = Edge(settings={"edge_tier_max_size": "0"})
        cls.edge.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.edge.__exit__(None, None, None)

    def warm(self, name):
        p = "/ofc/%s.bin" % name
        self.edge.origin.set_object(p, size=SIZE)
        self.assertEqual(self.edge.get("/generic" + p).status, 200)
        self.edge.wait_idle()
        for _ in range(2):   # the first hit opens it, the second uses the cached fd
            r = self.edge.get("/generic" + p)
            self.assertEqual((r.header("Cache-Status"), r.body), ("sluice; hit", body_for(p, SIZE)))
        self.assertGreaterEqual(self.edge.metric("sluice_open_file_cache_files"), 1)
        before = set(self.edge.object_files())
        return p, before

    def path_of(self, p, before):
        files = [f for f in before if os.path.getsize(f) == 4096 + SIZE]
        for f in files:
            with open(f, "rb") as fh:
                if (b"key: generic:" + p[1:].encode()) in fh.read(4096):
                    return f
        self.fail("object file of %s not found" % p)

    def expect_refetch(self, p):
        stale = self.edge.metric("sluice_stale_index_dropped_total")
        r = self.edge.get("/generic" + p)
        self.assertEqual(r.status, 200)
        self.assertTrue(r.complete)
        self.assertEqual(r.body, body_for(p, SIZE))
        self.assertIn("fwd=miss", r.header("Cache-Status"))
        self.assertEqual(self.edge.metric("sluice_stale_index_dropped_total"), stale + 1)
        self.edge.wait_idle()
        self.assertEqual(self.edge.get("/generic" + p).header("Cache-Status"), "sluice; hit")

    def test_deleted_object(self):
        p, before = self.warm("deleted")
        os.unlink(self.path_of(p, before))
        self.expect_refetch(p)

    def test_truncated_object(self):
        p, before = self.warm("truncated")
        os.truncate(self.path_of(p, before), 4096 + 100)
        self.expect_refetch(p)

    def test_header_rewritten_in_place(self):
        p, before = self.warm("rewritten")
        with open(self.path_of(p, before), "r+b") as f:
            f.seek(20)
            f.write(b"X")
        self.expect_refetch(p)


if __name__ == "__main__":
    unittest.main()
