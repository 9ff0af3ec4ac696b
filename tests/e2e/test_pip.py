"""pip through the edge, against an offline index and a separate files host
that the test builds (tests/lib/registry.py PypiIndex), the real pip in a
sandbox (tests/lib/clients.py), the real HAProxy and agent.

The index publishes absolute links to its files host. pip follows them as
published, so a warm install that reaches neither the index nor the files
host proves that the edge re-pointed every link at itself.
"""

import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

from clients import ensure_tools, pip_install  # noqa: E402
from edge import Edge  # noqa: E402
from e2e_edge import RegistryEdge  # noqa: E402
from registry import PypiIndex  # noqa: E402

class _PipEdge(RegistryEdge):
    """One index and one edge for the class; every install goes to a fresh
    target directory with pip's cache off. TTL_S is the metadata TTL: long
    where a warm install must not reach the index however slow the
    machine, short where the test waits it out."""

    TTL_S = 3600

    @classmethod
    def setUpClass(cls):
        ensure_tools()
        cls.tmp = tempfile.mkdtemp(prefix="sluice-e2e-pip-")
        cls.index = PypiIndex(os.path.join(cls.tmp, "index"), core_metadata=True)
        cls.index.start()
        cls.reg = cls.index
        cls.index.add_wheel("demo-b", "1.0")
        cls.index.add_wheel("Demo_A", "1.0", requires=["demo-b>=1.0"])
        cls.index.add_sdist("demo-src", "0.1")
        cls.index.add_wheel("demo-fresh", "1.0")
        cls.start_edge({"origin_pypi": cls.index.base_url, "origin_pypi_files": cls.index.files_base_url})
        cls.url = cls.public + "/pypi/simple/"


    def install(self, packages, **kw):
        target = tempfile.mkdtemp(prefix="target-", dir=self.tmp)
        r = pip_install(self.url, packages, target, **kw)
        self.assertTrue(r.ok, str(r))
        return r



class PipThroughTheEdge(_PipEdge, unittest.TestCase):
    """Cold then warm installs: the pages stay fresh between them."""

    def cold_then_warm(self, packages, want, **kw):
        self.assertEqual(self.install(packages, **kw).installed, want)
        self.edge.wait_idle()
        before = self.index.requests(method=None)
        self.assertEqual(self.install(packages, **kw).installed, want)
        self.assertEqual(self.index.requests(method=None), before, "the warm install reached the index")

    def test_wheels_cold_then_warm_are_served_by_the_edge(self):
        self.cold_then_warm(["Demo_A"], {"demo-a": "1.0", "demo-b": "1.0"})
        self.assertGreaterEqual(self.edge.metric('sluice_hits_total{route="pypi_files"}'), 2)

    def test_an_sdist_builds_from_the_edge_without_isolation(self):
        self.cold_then_warm(["demo-src"], {"demo-src": "0.1"}, no_build_isolation=True)


class PipFreshnessThroughTheEdge(_PipEdge, unittest.TestCase):
    """The metadata TTL runs out between installs."""

    TTL_S = 2

    def test_installs_survive_the_index_failing_and_going_away(self):
        self.install(["Demo_A"])
        self.edge.wait_idle()
        self.wait_past_ttl()
        self.index.set_status(502)
        self.assertEqual(self.install(["Demo_A"], extra_args=["--retries", "0"]).installed,
                         {"demo-a": "1.0", "demo-b": "1.0"})
        self.assertGreaterEqual(self.edge.metric('sluice_stale_if_error_total{route="pypi"}'), 1)
        self.index.set_status(None)
        self.index.set_refuse(True)
        try:
            self.wait_past_ttl()
            self.assertEqual(self.install(["Demo_A"], extra_args=["--retries", "0"]).installed,
                             {"demo-a": "1.0", "demo-b": "1.0"})
        finally:
            self.index.set_refuse(False)

    def test_a_new_version_is_seen_after_the_ttl_and_revalidated_first(self):
        self.assertEqual(self.install(["demo-fresh"]).installed, {"demo-fresh": "1.0"})
        self.edge.wait_idle()
        self.index.add_wheel("demo-fresh", "1.1")
        self.index.reset_log()
        self.wait_past_ttl()
        self.assertEqual(self.install(["demo-fresh"]).installed, {"demo-fresh": "1.1"})
        log = [e for e in self.index.request_log() if e.path == "/simple/demo-fresh/"]
        self.assertTrue(log and log[0].conditional, "the first request after the TTL was not conditional")


class PipThroughTheEdgeFromAStaticMirror(unittest.TestCase):
    """A static mirror (what `python3 -m http.server` over a PEP 503 tree
    serves): HTML only whatever pip accepts, and files linked relatively
    ("../../packages/...") on the index host itself, not a files host."""

    @classmethod
    def setUpClass(cls):
        ensure_tools()
        cls.tmp = tempfile.mkdtemp(prefix="sluice-e2e-pip-mirror-")
        cls.index = PypiIndex(os.path.join(cls.tmp, "index"), files_base="relative", serve_json=False)
        cls.index.start()
        cls.index.add_wheel("demo-b", "1.0")
        cls.index.add_wheel("Demo_A", "1.0", requires=["demo-b>=1.0"])
        cls.edge = Edge(origin=False, settings={"origin_pypi": cls.index.base_url})
        cls.edge.__enter__()
        cls.url = "http://127.0.0.1:%d/pypi/simple/" % cls.edge.ports["listen"]

    @classmethod
    def tearDownClass(cls):
        cls.edge.__exit__(None, None, None)
        cls.index.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_cold_then_warm_is_served_by_the_edge(self):
        for attempt in ("cold", "warm"):
            before = self.index.requests(method=None)
            r = pip_install(self.url, ["Demo_A"], tempfile.mkdtemp(prefix="target-", dir=self.tmp))
            self.assertTrue(r.ok, str(r))
            self.assertEqual(r.installed, {"demo-a": "1.0", "demo-b": "1.0"})
            self.edge.wait_idle()
            if attempt == "warm":
                self.assertEqual(self.index.requests(method=None), before, "the warm install reached the mirror")
        self.assertGreaterEqual(self.edge.metric('sluice_hits_total{route="pypi"}'), 4)


if __name__ == "__main__":
    unittest.main()
