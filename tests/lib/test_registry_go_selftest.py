"""Self-test of the offline Go module proxy (registry_go.py) and the
sandboxed go client (clients_go.py): go downloads and builds straight from
the fixture, verifying every module through its checksum database, with
no cache in between, so the e2e suite can trust both.

    tests/run-suites lib -k GoProxy              # or -k GoClient
    python3 -m unittest tests/lib/test_registry_go_selftest.py -v

Needs go and golang.org/x/mod (Debian: golang-go, golang-golang-x-mod-dev;
`make test-deps`); the first run builds the checksum-database helper under
build/tools/ (about 2 s). Skipped, saying why, when go is missing.
"""

import base64
import io
import os
import re
import shutil
import sys
import tempfile
import time
import unittest
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import clients_go  # noqa: E402
from httpclient import fetch  # noqa: E402
from registry_go import GoProxy, escape, h1, unescape, zip_h1  # noqa: E402

H = "127.0.0.1"
TIMINGS = []


def timed(label, result):
    """Record and print one client run's time."""
    TIMINGS.append((label, result.elapsed))
    sys.stdout.write("\n    [%5.1fs] %s " % (result.elapsed, label))
    sys.stdout.flush()
    return result


def tearDownModule():
    if TIMINGS:
        sys.stdout.write("\ngo proxy self-test timings:\n")
        for label, secs in TIMINGS:
            sys.stdout.write("    %5.1fs  %s\n" % (secs, label))


def setUpModule():
    try:
        clients_go.ensure_go()
    except RuntimeError as e:
        raise unittest.SkipTest(str(e))


class GoCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="sluice-goproxy-selftest-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def proxy(self, **kw) -> GoProxy:
        gp = GoProxy(os.path.join(self.tmp, "proxy-%d" % len(os.listdir(self.tmp))), **kw)
        gp.start()
        self.addCleanup(gp.stop)
        return gp

    def demo(self) -> GoProxy:
        gp = self.proxy()
        gp.add_module("example.test/dep", "v1.0.0")
        gp.add_module("example.test/Hello", "v1.0.0", requires=["example.test/dep@v1.0.0"])
        return gp

    def get(self, gp, path, headers=None):
        return fetch(H, gp.port, path, headers=headers)


# ================================================================= protocol


class GoProxyTests(GoCase):
    def test_case_encoding(self):
        self.assertEqual(escape("example.test/Hello"), "example.test/!hello")
        self.assertEqual(unescape("example.test/!hello"), "example.test/Hello")
        for bad in ("example.test/Hello", "x/!", "x/!1"):
            self.assertIsNone(unescape(bad), bad)

    def test_module_files(self):
        gp = self.demo()
        m = gp.module("example.test/Hello", "v1.0.0")
        res = self.get(gp, "/example.test/!hello/@v/list")
        self.assertEqual((res.status, res.body), (200, b"v1.0.0\n"))
        self.assertTrue(res.header("content-type").startswith("text/plain"))
        info = self.get(gp, "/example.test/%21hello/@v/v1.0.0.info")     # go sends the ! as %21
        self.assertEqual(info.json(), {"Version": "v1.0.0", "Time": "2024-01-01T00:02:00Z"})
        self.assertEqual(self.get(gp, "/example.test/!hello/@latest").json(), info.json())
        mod = self.get(gp, m.url_path("mod")).body
        self.assertEqual(mod, b"module example.test/Hello\n\ngo 1.19\n\nrequire (\n\texample.test/dep v1.0.0\n)\n")
        z = self.get(gp, m.zip_path())
        self.assertEqual(z.header("content-type"), "application/zip")
        with zipfile.ZipFile(io.BytesIO(z.body)) as zf:
            self.assertEqual(zf.namelist(), ["example.test/Hello@v1.0.0/go.mod", "example.test/Hello@v1.0.0/hello.go"])
            self.assertIn(b'dep0 "example.test/dep"', zf.read("example.test/Hello@v1.0.0/hello.go"))
        self.assertEqual(zip_h1(z.body), m.h1)
        self.assertEqual(h1([("go.mod", mod)]), m.h1_mod)
        self.assertRegex(m.h1, r"^h1:[A-Za-z0-9+/]{43}=$")

    def test_not_found(self):
        gp = self.demo()
        for path in ("/example.test/Hello/@v/list",            # upper case in the URL: not a valid path
                     "/example.test/nope/@v/list", "/example.test/@v/v1.0.0.info",    # a prefix
                     "/example.test/dep/@v/v9.9.9.zip", "/example.test/dep/@v/v1.0.0.txt",
                     "/example.test/dep", "/", "/sumdb/other.test/supported"):
            res = self.get(gp, path)
            self.assertEqual(res.status, 404, path)
            self.assertTrue(res.body.startswith(b"not found: "), path)
        self.assertEqual(fetch(H, gp.port, "/example.test/dep/@v/list", method="POST").status, 405)

    def test_list_and_latest_revalidate_and_move_on_publish(self):
        gp = self.demo()
        first = self.get(gp, "/example.test/dep/@v/list")
        same = self.get(gp, "/example.test/dep/@v/list", headers={"If-None-Match": first.header("etag")})
        self.assertEqual(same.status, 304)
        gp.add_module("example.test/dep", "v1.1.0")
        gp.add_module("example.test/dep", "v1.0.1")
        res = self.get(gp, "/example.test/dep/@v/list", headers={"If-None-Match": first.header("etag")})
        self.assertEqual((res.status, res.body), (200, b"v1.0.0\nv1.0.1\nv1.1.0\n"))
        self.assertEqual(self.get(gp, "/example.test/dep/@latest").json()["Version"], "v1.1.0")
        self.assertEqual(gp.versions("example.test/dep"), ["v1.0.0", "v1.0.1", "v1.1.0"])

    def test_checksum_database(self):
        gp = self.demo()
        name = gp.sumdb_name
        self.assertTrue(gp.gosumdb.startswith(name + "+"), gp.gosumdb)
        self.assertEqual(self.get(gp, "/sumdb/%s/supported" % name).status, 200)
        res = self.get(gp, "/sumdb/%s/lookup/example.test/!hello@v1.0.0" % name)
        self.assertEqual(res.status, 200)
        text = res.body.decode()
        self.assertTrue(text.startswith("1\n" + gp.module("example.test/Hello", "v1.0.0").gosum), text)
        self.assertIn("go.sum database tree\n2\n", text)
        self.assertIn("\n\u2014 %s " % name, text)           # the signature line
        latest = self.get(gp, "/sumdb/%s/latest" % name)
        self.assertTrue(latest.body.decode().startswith("go.sum database tree\n2\n"))
        tile = self.get(gp, "/sumdb/%s/tile/8/0/000.p/2" % name)
        self.assertEqual((tile.status, len(tile.body)), (200, 2 * 32))
        self.assertEqual(self.get(gp, "/sumdb/%s/tile/8/0/000.p/3" % name).status, 404)   # past the tree
        data = self.get(gp, "/sumdb/%s/tile/8/data/000.p/2" % name)
        self.assertEqual(data.body.decode(), "".join("%d\n%s\n" % (i, m.gosum) for i, m in enumerate((
            gp.module("example.test/dep", "v1.0.0"), gp.module("example.test/Hello", "v1.0.0")))))
        self.assertEqual(self.get(gp, "/sumdb/%s/lookup/example.test/nope@v1.0.0" % name).status, 404)
        self.assertEqual([r.path.split("/")[3] for r in gp.sumdb_requests()],
                         ["supported", "lookup", "latest", "tile", "tile", "tile", "lookup"])
        self.assertEqual(len(gp.sumdb_requests("tile")), 3)

    def test_knobs_and_corrupt(self):
        gp = self.demo()
        m = gp.module("example.test/dep", "v1.0.0")
        gp.set_status(502, match=re.compile(r"/@v/list$"), count=1)
        self.assertEqual(self.get(gp, "/example.test/dep/@v/list").status, 502)
        self.assertEqual(self.get(gp, "/example.test/dep/@v/list").status, 200)
        gp.corrupt(m.path, m.version)
        bad = self.get(gp, m.zip_path()).body
        with zipfile.ZipFile(io.BytesIO(bad)) as zf:
            self.assertIsNone(zf.testzip())                   # well-formed: only the content is wrong
        self.assertNotEqual(zip_h1(bad), m.h1)
        self.assertIn(m.h1, self.get(gp, "/sumdb/%s/lookup/example.test/dep@v1.0.0" % gp.sumdb_name).body.decode())
        gp.uncorrupt(m.path, m.version)
        self.assertEqual(zip_h1(self.get(gp, m.zip_path()).body), m.h1)
        gp.set_refuse(True)
        self.assertIsNotNone(self.get(gp, "/example.test/dep/@v/list").error)
        gp.clear_faults()
        self.assertEqual(self.get(gp, "/example.test/dep/@v/list").status, 200)
        self.assertEqual(gp.requests("/example.test/dep/@v/list"), 3)
        self.assertEqual(gp.requests(m.zip_path()), 2)

    def test_restart_keeps_the_records(self):
        gp = self.demo()
        before = self.get(gp, "/sumdb/%s/tile/8/0/000.p/2" % gp.sumdb_name).body
        gp.stop()
        gp.start()
        self.assertEqual(self.get(gp, "/sumdb/%s/tile/8/0/000.p/2" % gp.sumdb_name).body, before)


# ================================================================== clients


class GoClientTests(GoCase):
    def download(self, label, gp, requires, ok=True, **kw):
        r = timed(label, clients_go.go_download(gp.base_url, os.path.join(self.tmp, "proj-%f" % time.time()),
                                                requires, gosumdb=kw.pop("gosumdb", gp.gosumdb), **kw))
        if ok:
            self.assertTrue(r.ok, str(r))
        else:
            self.assertFalse(r.ok, str(r))
        return r

    def test_go_downloads_builds_and_verifies_through_the_checksum_database(self):
        gp = self.demo()
        r = self.download("go mod tidy + download + build", gp, ["example.test/Hello@v1.0.0"])
        with open(os.path.join(r.cwd, "go.sum")) as f:
            self.assertEqual(f.read(), "".join(gp.module(p, "v1.0.0").gosum
                                               for p in ("example.test/Hello", "example.test/dep")))
        for m in (gp.module("example.test/Hello", "v1.0.0"), gp.module("example.test/dep", "v1.0.0")):
            for ext in ("info", "mod", "zip"):
                self.assertEqual(gp.requests(m.url_path(ext)), 1, m.url_path(ext))
        self.assertEqual(len(gp.sumdb_requests("supported")), 1)
        self.assertEqual(len(gp.sumdb_requests("lookup")), 2)
        self.assertGreaterEqual(len(gp.sumdb_requests("tile")), 1)
        self.assertEqual([e.status for e in gp.request_log()], [200] * len(gp.request_log()))
        self.assertTrue(all(e.headers.get("User-Agent", "").startswith("Go-http-client/")
                            for e in gp.request_log()))

    def test_go_refuses_a_tampered_zip(self):
        gp = self.demo()
        gp.corrupt("example.test/dep", "v1.0.0")
        r = self.download("go with a tampered zip (must fail)", gp, ["example.test/Hello@v1.0.0"], ok=False)
        self.assertIn("SECURITY ERROR", r.output)
        self.assertIn("example.test/dep@v1.0.0: verifying module: checksum mismatch", r.output)

    def test_go_refuses_a_checksum_database_signed_by_another_key(self):
        gp = self.demo()
        other = self.proxy()                          # same name, another key
        r = self.download("go with the wrong sumdb key (must fail)", gp, ["example.test/Hello@v1.0.0"],
                          ok=False, gosumdb=other.gosumdb)
        self.assertIn("example.test/Hello@v1.0.0: reading tree note: note has no verifiable signatures", r.output)
        self.assertEqual(len(gp.sumdb_requests("lookup")), 1)
        self.assertEqual(gp.requests(re.compile(r"\.zip$")), 1)    # nothing past the first module

    def test_go_list_versions_and_get_latest(self):
        gp = self.demo()
        proj = os.path.join(self.tmp, "proj")
        clients_go.write_project(proj)
        r = timed("go list -m -versions", clients_go.go_command(
            gp.base_url, proj, ["list", "-m", "-versions", "example.test/dep"], gosumdb=gp.gosumdb))
        self.assertEqual((r.returncode, r.stdout), (0, "example.test/dep v1.0.0\n"), str(r))
        gp.add_module("example.test/dep", "v1.2.0")
        r = timed("go get @latest", clients_go.go_command(
            gp.base_url, proj, ["get", "example.test/dep@latest"], gosumdb=gp.gosumdb))
        self.assertTrue(r.ok, str(r))
        self.assertIn("example.test/dep v1.2.0", r.stderr)
        self.assertGreaterEqual(gp.requests("/example.test/dep/@v/list"), 2)

    def test_go_fails_on_a_missing_module_and_on_5xx(self):
        gp = self.demo()
        r = self.download("go with a missing module (must fail)", gp, ["example.test/nope@v1.0.0"], ok=False)
        self.assertIn("404 Not Found", r.output)
        gp.set_status(502, match=re.compile(r"\.zip$"))
        r = self.download("go with a 502 for zips (must fail)", gp, ["example.test/dep@v1.0.0"], ok=False)
        self.assertIn("502 Bad Gateway", r.output)


if __name__ == "__main__":
    unittest.main()
