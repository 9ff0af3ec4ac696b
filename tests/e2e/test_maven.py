"""mvn through the edge, against an offline Maven repository the test builds
(tests/lib/registry_maven.py MavenRepo: deployed releases and timestamped
snapshots, plus Debian's /usr/share/maven-repo for the plugins), the real
mvn in a sandbox (tests/lib/clients.py mvn_get: `dependency:get` with a
mirror of * at <edge>/maven/), the real HAProxy and agent.

Every run has a fresh local repository, so mvn fetches everything it needs,
the maven-dependency-plugin and its 300-odd dependencies included, through
the edge: a warm run that reaches the repository not at all proves that the
edge served all of it. Maven 3.8 sends Cache-control: no-cache and Pragma:
no-cache on every request; the edge must not let that bypass the cache.

Needs mvn, javac and Debian's maven-dependency-plugin (make test-deps
installs them: maven default-jdk-headless libmaven-dependency-plugin-java
junit4).
"""

import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

from clients import ensure_maven, maven_local_file, mvn_get  # noqa: E402
from e2e_edge import RegistryEdge  # noqa: E402
from registry_maven import MavenRepo  # noqa: E402

G = "com.example"
LIB, SNAP, APP = G + ":demo-lib:1.0", G + ":demo-snap:2.0-SNAPSHOT", G + ":demo-app:1.0"
INTEGRITY = 'sluice_integrity_failures_total{route="maven"}'
PLUGIN = "/org/apache/maven/plugins/maven-dependency-plugin/"
_PLUGINS = {}      # "dir": a local repository holding the plugins only, copied from a first run


def tearDownModule():
    if "dir" in _PLUGINS:
        shutil.rmtree(os.path.dirname(_PLUGINS.pop("dir")), ignore_errors=True)


def seed_plugins(local):
    """Keep a copy of local (a run's local repository) without the test's
    own artifacts, for later runs that need only those (seeded=True)."""
    if "dir" not in _PLUGINS:
        d = tempfile.mkdtemp(prefix="sluice-e2e-maven-plugins-")
        shutil.copytree(local, os.path.join(d, "m2"), ignore=shutil.ignore_patterns("example"))
        _PLUGINS["dir"] = os.path.join(d, "m2")


class _MavenEdge(RegistryEdge):
    """One repository and one edge for the class; every mvn run has a fresh
    local repository. demo-app 1.0 (a release) depends on demo-lib 1.0 (a
    release) and demo-snap 2.0-SNAPSHOT (a timestamped snapshot), so one
    transitive `dependency:get` of demo-app resolves all three. TTL_S is
    the metadata TTL: long where a warm run must not reach the repository
    however slow the machine, short where the test waits it out."""

    TTL_S = 3600

    @classmethod
    def setUpClass(cls):
        ensure_maven()
        cls.tmp = tempfile.mkdtemp(prefix="sluice-e2e-maven-")
        cls.repo = MavenRepo(os.path.join(cls.tmp, "repo"))
        cls.repo.start()
        cls.reg = cls.repo
        cls.repo.deploy(G, "demo-lib", "1.0")
        cls.repo.deploy(G, "demo-snap", "2.0-SNAPSHOT")
        cls.repo.deploy(G, "demo-app", "1.0", deps=[LIB, SNAP])
        cls.start_edge({"origin_maven": cls.repo.base_url})
        cls.url = cls.public + "/maven/"


    def local_repo(self, seeded=False):
        """A fresh local repository: empty, or (seeded) holding the plugin
        and its dependencies, copied from an earlier run's, so that mvn
        asks for the test's own artifacts only (a run of about 10 requests
        instead of about 360, for tests about those artifacts)."""
        local = os.path.join(tempfile.mkdtemp(prefix="run-", dir=self.tmp), "m2")
        if seeded and "dir" in _PLUGINS:
            shutil.copytree(_PLUGINS["dir"], local)
        return local

    def get(self, artifact, seeded=False, **kw):
        """mvn dependency:get into a fresh local repository; returns the
        result and that local repository."""
        local = self.local_repo(seeded)
        r = mvn_get(self.url, artifact, local, **kw)
        self.assertTrue(r.ok, str(r))
        seed_plugins(local)
        return r, local

    def get_app(self, seeded=False):
        """demo-app and its dependencies; checks that every jar is the
        repository's current one."""
        r, local = self.get(APP, seeded, transitive=True)
        for coords in (APP, LIB, SNAP):
            with open(maven_local_file(local, coords), "rb") as f:
                self.assertEqual(f.read(), self.jar_bytes(self.repo.artifact(*coords.split(":"))), coords)
        return r

    @staticmethod
    def jar_bytes(art):
        with open(art.jar_file, "rb") as f:
            return f.read()



class MavenThroughTheEdge(_MavenEdge, unittest.TestCase):
    """Cold then warm runs: the metadata stays fresh between them."""

    def test_cold_then_warm_release_and_snapshot_are_served_by_the_edge(self):
        r = self.get_app()
        self.assertIn("Downloaded from sluice: %s%s" % (self.url.rstrip("/"), PLUGIN), r.stdout,
                      "the plugin did not come through the edge")
        self.edge.wait_idle()
        before = self.repo.requests(method=None)
        self.get_app()
        late = sorted({e.path for e in self.repo.request_log()[before:]})
        self.assertEqual(self.repo.requests(method=None), before, "the warm run reached the repository: %d "
                         "paths, e.g. %s" % (len(late), late[:10]))
        self.assertGreaterEqual(self.edge.metric('sluice_hits_total{route="maven"}'), 300)

    def test_a_corrupted_jar_fails_the_run_and_is_not_stored(self):
        art = self.repo.deploy(G, "demo-bad", "1.0")
        self.repo.corrupt(art.jar_path)
        failures = self.edge.metric(INTEGRITY)
        r = mvn_get(self.url, art.coords, self.local_repo(seeded=True))
        # Directly, Maven warns "Checksum validation failed", fetches again and
        # (policy warn) keeps the bad jar; through the edge the transfer is
        # cut short, which fails the run.
        self.assertFalse(r.ok, "mvn accepted a corrupted jar through the edge:\n%s" % r)
        self.edge.wait_idle()
        self.assertGreater(self.edge.metric(INTEGRITY), failures)
        self.repo.uncorrupt(art.jar_path)
        self.repo.reset_log()
        r, local = self.get(art.coords, seeded=True)
        with open(r.installed[art.coords], "rb") as f:
            self.assertEqual(f.read(), self.jar_bytes(art))
        self.assertGreaterEqual(self.repo.requests(art.jar_path), 1, "the corrupted jar was stored")


class MavenFreshnessThroughTheEdge(_MavenEdge, unittest.TestCase):
    """The metadata TTL runs out between runs."""

    TTL_S = 2

    def test_runs_survive_the_repository_failing_and_going_away(self):
        self.get_app()
        self.edge.wait_idle()
        self.wait_past_ttl()
        self.repo.set_status(502)
        self.get_app()
        self.assertGreaterEqual(self.edge.metric('sluice_stale_if_error_total{route="maven"}'), 1)
        self.repo.set_status(None)
        self.repo.set_refuse(True)
        try:
            self.wait_past_ttl()
            self.get_app()
        finally:
            self.repo.set_refuse(False)

    def test_a_new_snapshot_build_and_a_new_release_are_seen_after_the_ttl(self):
        snap_meta = self.repo.metadata_path(G, "demo-snap", "2.0-SNAPSHOT")
        lib_meta = self.repo.metadata_path(G, "demo-lib")
        self.get_app(seeded=True)
        self.assertEqual(self.edge.get("/maven" + lib_meta).status, 200)     # RELEASE resolves from it
        self.edge.wait_idle()
        build = self.repo.deploy(G, "demo-snap", "2.0-SNAPSHOT")
        release = self.repo.deploy(G, "demo-lib", "1.2")
        self.repo.reset_log()
        self.wait_past_ttl()
        r = self.get_app(seeded=True)
        self.assertIn(build.jar_path, r.stdout)
        r, local = self.get(G + ":demo-lib:RELEASE", seeded=True)
        with open(r.installed[G + ":demo-lib:RELEASE"], "rb") as f:
            self.assertEqual(f.read(), self.jar_bytes(release))
        for path in (snap_meta, lib_meta):
            log = [e for e in self.repo.request_log() if e.path == path]
            self.assertTrue(log and log[0].conditional, "the first request after the TTL was not conditional: "
                            + path)


if __name__ == "__main__":
    unittest.main()
