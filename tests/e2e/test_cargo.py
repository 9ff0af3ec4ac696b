"""cargo through the edge, against an offline sparse registry the test
builds (tests/lib/registry_cargo.py CargoRegistry, real `cargo package`
crates), the real cargo in a sandbox (tests/lib/clients.py cargo_fetch),
the real HAProxy and agent.

cargo's index URL is sparse+<edge>/crates/ (route cargo_index, origin
<registry>/index); the registry's config.json names its own host in `dl`,
and the edge rewrites it to <edge>/crates/dl/... (route cargo_dl, origin
<registry>), keeping cargo's {crate}/{version} markers: a warm fetch that
reaches the registry not at all proves that the downloads came through
the edge too. One class uses dl = .../crates/{crate}/{crate}-{version}.crate,
the other crates.io's marker-less form (cargo appends
/{crate}/{version}/download).

Needs cargo >= 1.68 (sparse registries): on PATH, in ~/.cargo/bin or in
/root/.cargo/bin (rustup's). Debian's cargo 0.66 is too old; without a
newer one every test here is skipped (unittest.SkipTest, with the reason).
"""

import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

from clients import cargo_fetch, find_cargo  # noqa: E402
from e2e_edge import RegistryEdge  # noqa: E402
from registry_cargo import CargoRegistry  # noqa: E402

INTEGRITY = 'sluice_integrity_failures_total{route="cargo_dl"}'


class _CargoEdge(RegistryEdge):
    """One registry and one edge for the class; each test fetches into a
    fresh project with a fresh CARGO_HOME (no client cache). TTL_S is the
    metadata TTL: long where a warm fetch must not reach the registry
    however slow the machine, short where the test waits it out."""

    TTL_S = 3600
    DL_FORM = "crate"

    @classmethod
    def setUpClass(cls):
        cargo, why = find_cargo()
        if cargo is None:
            raise unittest.SkipTest(why)
        cls.tmp = tempfile.mkdtemp(prefix="sluice-e2e-cargo-")
        cls.reg = CargoRegistry(os.path.join(cls.tmp, "registry"), dl_form=cls.DL_FORM)
        cls.reg.start()
        cls.reg.add_crate("demo-b", "0.1.0")
        cls.reg.add_crate("demo-a", "0.1.0", deps={"demo-b": "0.1"})
        cls.reg.add_crate("ab", "1.0.0")            # index/2/ab
        cls.reg.add_crate("abc", "1.0.0")           # index/3/a/abc
        cls.start_edge({"origin_cargo_index": cls.reg.base_url + "/index", "origin_cargo_dl": cls.reg.base_url})
        cls.url = cls.public + "/crates/"


    def project(self):
        return tempfile.mkdtemp(prefix="proj-", dir=self.tmp)

    def fetch(self, deps, **kw):
        r = cargo_fetch(self.url, self.project(), deps, **kw)
        self.assertTrue(r.ok, str(r))
        return r



class CargoThroughTheEdge(_CargoEdge, unittest.TestCase):
    """Cold then warm fetches: the index stays fresh between them."""

    def test_config_json_points_downloads_at_the_edge(self):
        r = self.edge.get("/crates/config.json")
        self.assertEqual(r.status, 200)
        dl = json.loads(r.body)["dl"]
        self.assertEqual(dl, self.public + "/crates/dl/crates/{crate}/{crate}-{version}.crate")

    def test_cold_then_warm_fetch_and_build_are_served_by_the_edge(self):
        want = {"demo-a": "0.1.0", "demo-b": "0.1.0", "ab": "1.0.0", "abc": "1.0.0"}
        deps = {"demo-a": "0.1", "ab": "1", "abc": "1"}
        self.assertEqual(self.fetch(deps, build=True).installed, want)
        self.edge.wait_idle()
        before = self.reg.requests(method=None)
        self.assertEqual(self.fetch(deps, build=True).installed, want)   # a fresh CARGO_HOME
        self.assertEqual(self.reg.requests(method=None), before, "the warm fetch reached the registry: %s"
                         % sorted({e.path for e in self.reg.request_log()[before:]}))
        self.assertGreaterEqual(self.edge.metric('sluice_hits_total{route="cargo_index"}'), 1)
        self.assertGreaterEqual(self.edge.metric('sluice_hits_total{route="cargo_dl"}'), 1)

    def test_an_unknown_crate_is_not_found(self):
        r = cargo_fetch(self.url, self.project(), {"no-such-crate": "1"}, retry=0)
        self.assertFalse(r.ok, str(r))
        self.assertIn("no matching package named `no-such-crate` found", r.stderr, str(r))

    def test_a_corrupted_crate_fails_the_fetch_and_is_not_stored(self):
        self.reg.add_crate("demo-bad", "0.1.0")
        self.reg.corrupt("demo-bad", "0.1.0")
        path = self.reg.dl_path("demo-bad", "0.1.0")
        failures = self.edge.metric(INTEGRITY)
        r = cargo_fetch(self.url, self.project(), {"demo-bad": "0.1"}, retry=0)
        self.assertFalse(r.ok, str(r))
        # Directly, cargo says "failed to verify the checksum of `demo-bad v0.1.0`";
        # through the edge the transfer is cut short before its last byte.
        self.assertNotIn("failed to verify the checksum", r.stderr,
                         "the edge passed the corrupted crate through whole:\n%s" % r)
        self.edge.wait_idle()
        self.assertGreater(self.edge.metric(INTEGRITY), failures)
        self.reg.uncorrupt("demo-bad", "0.1.0")
        self.reg.reset_log()
        self.assertEqual(self.fetch({"demo-bad": "0.1"}, retry=0).installed, {"demo-bad": "0.1.0"})
        self.assertGreaterEqual(self.reg.requests(path), 1, "the corrupted crate was stored")


class CargoFreshnessThroughTheEdge(_CargoEdge, unittest.TestCase):
    """The index TTL runs out between fetches. dl is crates.io's
    marker-less form here: /api/v1/crates/{crate}/{version}/download."""

    TTL_S = 2
    DL_FORM = "download"

    def test_config_json_keeps_the_download_form(self):
        r = self.edge.get("/crates/config.json")
        self.assertEqual(json.loads(r.body)["dl"], self.public + "/crates/dl/api/v1/crates")

    def test_fetches_survive_the_registry_failing_and_going_away(self):
        want = {"demo-a": "0.1.0", "demo-b": "0.1.0"}
        self.assertEqual(self.fetch({"demo-a": "0.1"}).installed, want)
        self.edge.wait_idle()
        self.wait_past_ttl()
        self.reg.set_status(502)
        self.assertEqual(self.fetch({"demo-a": "0.1"}, retry=0).installed, want)
        self.assertGreaterEqual(self.edge.metric('sluice_stale_if_error_total{route="cargo_index"}'), 1)
        self.reg.set_status(None)
        self.reg.set_refuse(True)
        try:
            self.wait_past_ttl()
            self.assertEqual(self.fetch({"demo-a": "0.1"}, retry=0, build=True).installed, want)
        finally:
            self.reg.set_refuse(False)

    def test_a_new_version_is_seen_after_the_ttl_and_revalidated_first(self):
        self.assertEqual(self.fetch({"abc": "1"}).installed, {"abc": "1.0.0"})
        self.edge.wait_idle()
        self.reg.add_crate("abc", "1.1.0")
        self.reg.reset_log()
        self.wait_past_ttl()
        self.assertEqual(self.fetch({"abc": "1"}, build=True).installed, {"abc": "1.1.0"})
        log = [e for e in self.reg.request_log() if e.path == self.reg.index_path("abc")]
        self.assertTrue(log and log[0].conditional, "the first request after the TTL was not conditional")
        self.assertGreaterEqual(self.reg.requests(self.reg.dl_path("abc", "1.1.0")), 1)

    def test_a_new_0_2_release_is_seen_after_the_ttl(self):
        self.reg.add_crate("demo-c", "0.1.0")
        self.assertEqual(self.fetch({"demo-c": "0.1"}).installed, {"demo-c": "0.1.0"})
        self.edge.wait_idle()
        self.reg.add_crate("demo-c", "0.2.0")
        self.wait_past_ttl()
        self.assertEqual(self.fetch({"demo-c": "0.2"}).installed, {"demo-c": "0.2.0"})


if __name__ == "__main__":
    unittest.main()
