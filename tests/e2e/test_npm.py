"""npm and pnpm through the edge, against an offline registry the test
builds (tests/lib/registry.py), the real clients in sandboxes
(tests/lib/clients.py), the real HAProxy and agent.

The registry publishes every dist.tarball on ANOTHER base (a port where
nothing listens), as the public registry publishes absolute URLs on its own
host: a client that followed them as published would fail, so every
install here proves that the edge rewrote them (pnpm has no
replace-registry-host at all).
"""

import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

from clients import ensure_tools, npm_install, npm_lock, pnpm_install  # noqa: E402
from e2e_edge import RegistryEdge  # noqa: E402
from httpclient import free_port  # noqa: E402
from registry import NpmRegistry  # noqa: E402

class _NpmEdge(RegistryEdge):
    """One registry and one edge for the class; each test installs into
    fresh project and cache directories. TTL_S is the metadata TTL: long
    where a warm install must not reach the registry however slow the
    machine, short where the test waits it out."""

    TTL_S = 3600

    @classmethod
    def setUpClass(cls):
        ensure_tools()
        cls.tmp = tempfile.mkdtemp(prefix="sluice-e2e-npm-")
        cls.reg = NpmRegistry(os.path.join(cls.tmp, "registry"),
                              tarball_base="http://127.0.0.1:%d" % free_port())
        cls.reg.start()
        cls.reg.add_package("demo-b", "1.0.0")
        cls.reg.add_package("demo-a", "1.0.0", deps={"demo-b": "^1.0.0"})
        cls.reg.add_package("@demo/c", "2.0.0", size=200_000)
        cls.reg.bulk_packument("demo-huge")
        cls.start_edge({"origin_npm": cls.reg.base_url})
        cls.url = cls.public + "/npm/"


    def project(self):
        return tempfile.mkdtemp(prefix="proj-", dir=self.tmp)

    def install(self, tool, packages, **kw):
        run = npm_install if tool == "npm" else pnpm_install
        r = run(self.url, self.project(), packages, **kw)
        self.assertTrue(r.ok, str(r))
        return r



class NpmThroughTheEdge(_NpmEdge, unittest.TestCase):
    """Cold then warm installs: the metadata stays fresh between them."""

    def cold_then_warm(self, tool, packages, names):
        self.install(tool, packages)
        self.edge.wait_idle()
        before = self.reg.requests(method=None)
        self.install(tool, packages)   # a fresh client cache: everything from the edge
        self.assertEqual(self.reg.requests(method=None), before, "the warm install reached the registry")
        for name in names:
            self.assertGreaterEqual(self.edge.metric('sluice_hits_total{route="npm"}'), 1, name)

    def test_npm_cold_then_warm_install_is_served_by_the_edge(self):
        self.cold_then_warm("npm", ["demo-a", "@demo/c"], ["demo-a", "demo-b", "@demo/c"])

    def test_pnpm_cold_then_warm_install_is_served_by_the_edge(self):
        self.cold_then_warm("pnpm", ["demo-a", "@demo/c"], ["demo-a", "demo-b", "@demo/c"])

    def test_npm_ci_with_a_public_registry_lockfile_comes_through_the_edge(self):
        # A lockfile made against the public registry names its tarball host
        # (here the registry's dead tarball port). npm's replace-registry-host
        # (on for registry.npmjs.org by default) keeps only the path and puts
        # it at the edge's root, without /npm/: HAProxy sends it back there.
        proj = self.project()
        r = npm_lock(self.url, proj, ["demo-a", "@demo/c"])
        self.assertTrue(r.ok, str(r))
        lock_path = os.path.join(proj, "package-lock.json")
        with open(lock_path) as f:
            lock = f.read()
        public = self.reg.tarball_base.rstrip("/") + "/"
        self.assertIn(self.url, lock)
        with open(lock_path, "w") as f:
            f.write(lock.replace(self.url, public))
        host = public.split("/")[2]
        for attempt in ("cold", "warm"):
            shutil.rmtree(os.path.join(proj, "node_modules"), ignore_errors=True)
            before = self.reg.requests(method=None)
            r = npm_install(self.url, proj, lockfile=True, npmrc={"replace-registry-host": host})
            self.assertTrue(r.ok, str(r))
            self.assertTrue(os.path.isfile(os.path.join(proj, "node_modules", "@demo", "c", "package.json")))
            self.edge.wait_idle()
            if attempt == "warm":
                self.assertEqual(self.reg.requests(method=None), before, "the warm npm ci reached the registry")

    def test_a_20_mb_packument_installs(self):
        self.assertGreater(len(self.reg.packument_bytes("demo-huge")), 20_000_000)
        r = self.install("npm", ["demo-huge"])
        self.assertIn("added 1 package", r.stdout + r.stderr)


class NpmFreshnessThroughTheEdge(_NpmEdge, unittest.TestCase):
    """The metadata TTL runs out between installs."""

    TTL_S = 2

    def test_installs_survive_the_registry_failing_and_going_away(self):
        for tool in ("npm", "pnpm"):
            self.install(tool, ["demo-a"])
        self.edge.wait_idle()
        self.wait_past_ttl()
        self.reg.set_status(502)
        for tool in ("npm", "pnpm"):
            self.install(tool, ["demo-a"], npmrc={"fetch-retries": 0})
        self.assertGreaterEqual(self.edge.metric('sluice_stale_if_error_total{route="npm"}'), 1)
        self.reg.set_status(None)
        self.reg.set_refuse(True)
        try:
            self.wait_past_ttl()
            for tool in ("npm", "pnpm"):
                self.install(tool, ["demo-a"], npmrc={"fetch-retries": 0})
        finally:
            self.reg.set_refuse(False)

    def test_a_new_version_is_seen_after_the_ttl_and_revalidated_first(self):
        self.install("npm", ["demo-b"])
        self.edge.wait_idle()
        self.reg.add_package("demo-b", "1.1.0")
        self.reg.reset_log()
        self.wait_past_ttl()
        r = self.install("npm", ["demo-b@1.1.0"])
        self.assertIn("added 1 package", r.stdout + r.stderr)
        log = [e for e in self.reg.request_log() if e.path in ("/demo-b",)]
        self.assertTrue(log and log[0].if_none_match, "the first request after the TTL was not conditional")


if __name__ == "__main__":
    unittest.main()
