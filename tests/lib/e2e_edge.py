"""The shape every e2e suite shares (tests/e2e/): one offline registry
fixture (cls.reg, from tests/lib/registry*.py) and one real edge in front of
it for a test class, with metadata freshness short or long as the class
needs; every test meets the registry's failures itself (no error hold).

A class sets TTL_S (long: a warm run must not reach the registry however
slow the machine; short: the test waits it out with wait_past_ttl), builds
cls.tmp and cls.reg in its setUpClass and calls start_edge with its
origin settings.
"""

import shutil
import time

from edge import Edge
from httpclient import wait_until


class RegistryEdge:
    TTL_S = 3600

    @classmethod
    def start_edge(cls, origins):
        """The edge, its routes' origins at the fixture (origins:
        {"origin_<route>": url}); cls.public is the edge's base URL."""
        settings = dict(origins)
        settings.update({
            "metadata_ttl": "%ds" % cls.TTL_S, "metadata_stale_while_revalidate": "0",
            "metadata_stale_if_error": "1h",
            # every phase meets the failing registry itself
            "metadata_error_hold": "0"})
        cls.edge = Edge(origin=False, settings=settings)
        cls.edge.__enter__()
        cls.public = "http://127.0.0.1:%d" % cls.edge.ports["listen"]

    @classmethod
    def tearDownClass(cls):
        cls.edge.__exit__(None, None, None)
        cls.reg.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.reg.clear_faults()

    def wait_past_ttl(self):
        """Until every document fetched so far is past its TTL."""
        deadline = time.time() + self.TTL_S + 0.5
        wait_until(lambda: time.time() > deadline, self.TTL_S + 5, interval=0.1)
