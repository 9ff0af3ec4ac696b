"""go through the edge, against an offline Go module proxy the test builds
(tests/lib/registry_go.py GoProxy), the real go in a sandbox
(tests/lib/clients_go.py), the real HAProxy and agent.

go's GOPROXY is http://127.0.0.1:<edge>/go: the /go/ prefix maps to the
route `go`, whose origin is the fixture. The fixture also serves a real
checksum database (GOSUMDB=<name>+<key>, no GONOSUMDB, no GOSUMDB=off):
go asks <proxy>/sumdb/<name>/supported, gets a 200, and then sends every
lookup and tile through the edge too (/go/sumdb/<name>/lookup/...,
/go/sumdb/<name>/tile/...), so every module go accepts here was verified
against the signed tree, through the edge.

What go sends (Go 1.19, seen at the fixture; the same through the edge):
GET only, headers User-Agent: Go-http-client/1.1 and Accept-Encoding: gzip,
never a conditional request. A `go mod tidy` + `go mod download all` +
`go build` of a module with one dependency asks, in this order,
<mod>/@v/<v>.zip, sumdb/<name>/supported, sumdb/<name>/lookup/<mod>@<v>,
sumdb/<name>/tile/8/0/000.p/<W>, <mod>/@v/<v>.mod, then the same for the
dependency (its lookup; no tile when the first one covers it), then each
<v>.info. Module paths are case-encoded ("!hello") and sent as "%21hello"
under @v; the sumdb lookup path is sent with a raw "!" (the edge passes it
on as %21). `go list -m -versions` and `go get <mod>@latest` ask
<mod>/@v/list, then the highest version's .info and .mod and its sumdb
lookup (and tile); `go get <mod>@latest` in a project that requires
<mod> first probes the path's prefixes (/example.test/@v/list -> 404,
which it must get as a 404) and asks each dependency's @v/list too. go
never asks sumdb/<name>/latest in these runs, and fetches a .zip BEFORE
its sumdb lookup: an edge that checks a zip's h1 while filling must ask
the lookup itself.
"""

import os
import re
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

from clients_go import ensure_go, go_command, go_download, write_project  # noqa: E402
from e2e_edge import RegistryEdge  # noqa: E402
from registry_go import GoProxy  # noqa: E402

LATEST = re.compile(r"^/sumdb/[^/]+/latest$")


class _GoEdge(RegistryEdge):
    """One Go module proxy and one edge for the class; each go run has a
    fresh GOPATH, module cache and build cache. Each test uses modules of
    its own, so a cold run is really cold whatever ran before. TTL_S is
    the metadata TTL: long where a warm run must not reach the origin
    however slow the machine, short where the test waits it out."""

    TTL_S = 3600

    @classmethod
    def setUpClass(cls):
        try:
            ensure_go()
        except RuntimeError as e:
            raise unittest.SkipTest(str(e))
        cls.tmp = tempfile.mkdtemp(prefix="sluice-e2e-go-")
        # Named as the public checksum database: the edge verifies module zips
        # against sum.golang.org as the go origin proxies it (eco/go.c).
        cls.reg = GoProxy(os.path.join(cls.tmp, "goproxy"), sumdb_name="sum.golang.org")
        cls.reg.start()
        for name in cls.MODULES:
            cls.reg.add_module(name + "/dep", "v1.0.0")
            cls.reg.add_module(name + "/App", "v1.0.0", requires=[name + "/dep@v1.0.0"])
        cls.start_edge({"origin_go": cls.reg.base_url})
        cls.url = cls.public + "/go"


    def project(self):
        return tempfile.mkdtemp(prefix="proj-", dir=self.tmp)

    def download(self, requires, ok=True):
        r = go_download(self.url, self.project(), requires, gosumdb=self.reg.gosumdb)
        self.assertEqual(r.ok, ok, str(r))
        return r

    def go(self, args, ok=True):
        proj = self.project()
        write_project(proj)
        r = go_command(self.url, proj, args, gosumdb=self.reg.gosumdb)
        self.assertEqual(r.ok, ok, str(r))
        return r

    def origin_requests(self):
        """Requests the origin saw, sumdb included, but not sumdb latest:
        a signed tree head is never cached (go does not ask it here
        anyway; should it start to, it is not a cache miss)."""
        return sum(1 for e in self.reg.request_log() if not LATEST.match(e.path))



class GoThroughTheEdge(_GoEdge, unittest.TestCase):
    """Cold then warm runs: the metadata stays fresh between them."""

    MODULES = ("example.test/warm", "example.test/Caps/MiXed", "example.test/tamper")

    def cold_then_warm(self, app):
        self.download([app + "@v1.0.0"])
        self.edge.wait_idle()
        before = self.origin_requests()
        self.download([app + "@v1.0.0"])        # fresh module cache and sumdb state: all from the edge
        self.assertEqual(self.origin_requests(), before, "the warm run reached the origin:\n%s"
                         % "\n".join(e.target for e in self.reg.request_log()[-10:]))
        self.assertGreaterEqual(self.edge.metric('sluice_hits_total{route="go"}'), 1)

    def test_cold_then_warm_download_is_served_by_the_edge(self):
        self.cold_then_warm("example.test/warm/App")
        self.assertEqual(self.reg.requests("/example.test/warm/!app/@v/v1.0.0.zip"), 1)
        lookup = "/sumdb/%s/lookup/example.test/warm/!app@v1.0.0" % self.reg.sumdb_name
        self.assertEqual(self.reg.requests(lookup), 1)

    def test_a_module_path_with_capital_letters(self):
        self.cold_then_warm("example.test/Caps/MiXed/App")
        m = self.reg.module("example.test/Caps/MiXed/App", "v1.0.0")
        self.assertEqual(m.zip_path(), "/example.test/!caps/!mi!xed/!app/@v/v1.0.0.zip")
        self.assertEqual(self.reg.requests(m.zip_path()), 1)
        lookup = "/sumdb/%s/lookup/example.test/!caps/!mi!xed/!app@v1.0.0" % self.reg.sumdb_name
        self.assertEqual(self.reg.requests(lookup), 1)

    def test_an_unknown_module_is_a_404_and_not_remembered_for_a_zip(self):
        mod = "example.test/later"
        r = self.download([mod + "@v1.0.0"], ok=False)
        self.assertIn("404 Not Found", r.output)
        zip_path = "/%s/@v/v1.0.0.zip" % mod
        self.assertEqual(self.edge.get("/go" + zip_path).status, 404)
        self.reg.add_module(mod, "v1.0.0")
        self.reg.reset_log()
        res = self.edge.get("/go" + zip_path)
        self.assertEqual(res.status, 200)
        self.assertEqual(self.reg.requests(zip_path), 1)
        # .info and .mod are artifacts too: their 404 is not remembered either
        self.download([mod + "@v1.0.0"])

    def test_a_tampered_zip_is_refused_counted_and_not_stored(self):
        # Needs the agent's h1 check on go zips (against the sumdb lookup).
        app, dep = "example.test/tamper/App", "example.test/tamper/dep"
        before = self.edge.metric('sluice_integrity_failures_total{route="go"}')
        self.reg.corrupt(dep, "v1.0.0")
        r = self.download([app + "@v1.0.0"], ok=False)
        # go's own check ("verifying module: checksum mismatch"), or the
        # edge's (a 502, or a zip cut short): either way about the dep's zip
        self.assertRegex(r.output, r"tamper/dep(@v1\.0\.0|/@v/v1\.0\.0\.zip)")
        self.edge.wait_idle()
        self.assertGreater(self.edge.metric('sluice_integrity_failures_total{route="go"}'), before)
        self.reg.uncorrupt(dep, "v1.0.0")
        self.reg.reset_log()
        self.download([app + "@v1.0.0"])
        zip_path = self.reg.module(dep, "v1.0.0").zip_path()
        self.assertEqual(self.reg.requests(zip_path), 1, "the tampered zip was kept")


class GoFreshnessThroughTheEdge(_GoEdge, unittest.TestCase):
    """The metadata TTL runs out between runs."""

    TTL_S = 2
    MODULES = ("example.test/flaky", "example.test/fresh")

    def test_runs_survive_the_origin_failing_and_going_away(self):
        app = "example.test/flaky/App"
        self.download([app + "@v1.0.0"])
        self.go(["list", "-m", "-versions", app])
        self.edge.wait_idle()
        self.wait_past_ttl()
        self.reg.set_status(502)
        self.download([app + "@v1.0.0"])                       # artifacts and tiles from the cache
        r = self.go(["list", "-m", "-versions", app])          # @v/list: stale-if-error
        self.assertEqual(r.stdout, app + " v1.0.0\n")
        self.assertGreaterEqual(self.edge.metric('sluice_stale_if_error_total{route="go"}'), 1)
        self.reg.set_status(None)
        self.reg.set_refuse(True)
        try:
            self.wait_past_ttl()
            self.download([app + "@v1.0.0"])
            r = self.go(["list", "-m", "-versions", app])
            self.assertEqual(r.stdout, app + " v1.0.0\n")
        finally:
            self.reg.set_refuse(False)

    def test_a_new_version_is_seen_after_the_ttl(self):
        app = "example.test/fresh/App"
        r = self.go(["list", "-m", "-versions", app])
        self.assertEqual(r.stdout, app + " v1.0.0\n")
        self.edge.wait_idle()
        self.reg.add_module(app, "v1.1.0", requires=["example.test/fresh/dep@v1.0.0"])
        self.wait_past_ttl()
        r = self.go(["list", "-m", "-versions", app])
        self.assertEqual(r.stdout, app + " v1.0.0 v1.1.0\n")
        proj = self.project()
        write_project(proj, [app + "@v1.0.0"])
        r = go_command(self.url, proj, ["get", app + "@latest"], gosumdb=self.reg.gosumdb)
        self.assertTrue(r.ok, str(r))                           # verified against the grown tree
        self.assertIn("upgraded %s v1.0.0 => v1.1.0" % app, r.stderr)


if __name__ == "__main__":
    unittest.main()
