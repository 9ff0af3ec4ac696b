"""Self-test of the offline registries (registry.py) and the sandboxed real
clients (clients.py): npm, pnpm and pip install straight from the
registries, with no cache in between, so the e2e suite can trust both.

    tests/run-suites lib -k Registry               # or -k Client, -k Pypi, -k Knob
    python3 -m unittest tests/lib/test_registry_selftest.py -v

The first run installs pnpm under build/tools/ and makes the pip venv there
(about 20 s, needs the npm registry); later runs reuse them. Every client
run prints its time, and the module prints a summary at the end.
"""

import base64
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import unittest
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import clients  # noqa: E402
from httpclient import Session, fetch, free_port, wait_until  # noqa: E402
from registry import NpmRegistry, PypiIndex  # noqa: E402

H = "127.0.0.1"
CORGI = "application/vnd.npm.install-v1+json"
CORGI_ACCEPT = CORGI + "; q=1.0, application/json; q=0.8, */*"
PIP_ACCEPT = ("application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
              "text/html; q=0.01")
TIMINGS = []


def timed(label, started=None, result=None):
    """Record and print one timing (a client result, or since `started`)."""
    secs = result.elapsed if result is not None else time.monotonic() - started
    TIMINGS.append((label, secs))
    sys.stdout.write("\n    [%5.1fs] %s " % (secs, label))
    sys.stdout.flush()
    return result


def tearDownModule():
    if TIMINGS:
        sys.stdout.write("\nregistry self-test timings:\n")
        for label, secs in TIMINGS:
            sys.stdout.write("    %5.1fs  %s\n" % (secs, label))
        sys.stdout.write("    %5.1fs  total of the above\n" % sum(s for _, s in TIMINGS))


class TmpCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="sluice-registry-test-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def npm_registry(self, **kw):
        r = NpmRegistry(os.path.join(self.tmp, "npm-%d" % len(os.listdir(self.tmp))), **kw).start()
        self.addCleanup(r.stop)
        return r

    def pypi_index(self, **kw):
        p = PypiIndex(os.path.join(self.tmp, "pypi-%d" % len(os.listdir(self.tmp))), **kw).start()
        self.addCleanup(p.stop)
        return p

    def demo_npm(self, **kw):
        r = self.npm_registry(**kw)
        r.add_package("demo-b", "1.0.0")
        r.add_package("demo-a", "1.0.0", deps={"demo-b": "^1.0.0"})
        r.add_package("@demo/c", "2.0.0", size=50_000)
        return r

    def demo_pypi(self, **kw):
        p = self.pypi_index(**kw)
        p.add_wheel("demo-b", "1.0")
        p.add_wheel("demo-b", "1.1")
        p.add_wheel("demo-a", "1.0", requires=["demo-b>=1.0"])
        return p


# ====================================================================== npm


class NpmRegistryTests(TmpCase):
    def test_full_packument(self):
        r = self.demo_npm()
        res = fetch(H, r.port, "/demo-a")
        self.assertEqual(res.status, 200)
        self.assertEqual(res.header("content-type"), "application/json")
        self.assertRegex(res.header("etag"), r'^"[0-9a-f]{40}"$')
        self.assertTrue(res.header("last-modified").endswith("GMT"))
        self.assertEqual(res.header("cache-control"), "public, max-age=300")
        doc = res.json()
        self.assertEqual(doc["name"], "demo-a")
        self.assertEqual(doc["dist-tags"], {"latest": "1.0.0"})
        for key in ("_id", "_rev", "time", "maintainers", "readme", "license", "repository"):
            self.assertIn(key, doc)
        v = doc["versions"]["1.0.0"]
        self.assertEqual(v["dependencies"], {"demo-b": "^1.0.0"})
        self.assertIn("1.0.0", doc["time"])
        self.assertEqual(v["dist"]["tarball"], r.base_url + "/demo-a/-/demo-a-1.0.0.tgz")
        tgz = fetch(H, r.port, "/demo-a/-/demo-a-1.0.0.tgz")
        self.assertTrue(tgz.ok, tgz)
        self.assertEqual(tgz.header("content-type"), "application/octet-stream")
        self.assertEqual(int(tgz.header("content-length")), len(tgz.body))
        self.assertEqual(v["dist"]["shasum"], hashlib.sha1(tgz.body).hexdigest())
        self.assertEqual(v["dist"]["integrity"], r.versions("demo-a")["1.0.0"].integrity)
        self.assertEqual(v["dist"]["integrity"],
                         "sha512-" + base64.b64encode(hashlib.sha512(tgz.body).digest()).decode())

    def test_corgi_by_accept(self):
        r = self.demo_npm()
        full = fetch(H, r.port, "/demo-a", headers={"Accept": "application/json"})
        corgi = fetch(H, r.port, "/demo-a", headers={"Accept": CORGI_ACCEPT})
        self.assertEqual(corgi.header("content-type"), CORGI)
        self.assertEqual(full.header("vary"), "Accept")
        self.assertEqual(corgi.header("vary"), "Accept")
        self.assertNotEqual(full.header("etag"), corgi.header("etag"))
        doc = corgi.json()
        self.assertEqual(set(doc), {"name", "dist-tags", "modified", "versions"})
        v = doc["versions"]["1.0.0"]
        self.assertEqual({"name", "version", "dependencies", "dist"}, set(v))
        self.assertTrue({"tarball", "shasum", "integrity"} <= set(v["dist"]))
        self.assertEqual(v["dist"]["tarball"], full.json()["versions"]["1.0.0"]["dist"]["tarball"])
        self.assertLess(len(corgi.body), len(full.body))

    def test_scoped_name_forms(self):
        r = self.demo_npm()
        bodies = set()
        for path in ("/@demo%2fc", "/@demo%2Fc", "/@demo/c"):
            res = fetch(H, r.port, path)
            self.assertEqual(res.status, 200, path)
            bodies.add(res.body)
        self.assertEqual(len(bodies), 1)
        doc = json.loads(bodies.pop())
        self.assertEqual(doc["versions"]["2.0.0"]["dist"]["tarball"], r.base_url + "/@demo/c/-/c-2.0.0.tgz")
        self.assertEqual(fetch(H, r.port, "/@demo/c/-/c-2.0.0.tgz").status, 200)
        self.assertEqual(fetch(H, r.port, "/@demo%2fc/-/c-2.0.0.tgz").status, 200)
        self.assertEqual(r.requests("/@demo/c"), 3)          # every spelling counts

    def test_tarball_is_an_npm_pack_tarball(self):
        r = self.npm_registry()
        info = r.add_package("big", "1.2.3", deps={"x": "1"}, files={"lib/a.js": "exports.a = 1;\n"},
                             size=300_000)
        self.assertLess(abs(info.size - 300_000), 1000, info.size)
        body = fetch(H, r.port, info.url_path).body
        self.assertEqual(len(body), info.size)
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as t:
            names = t.getnames()
            self.assertTrue(all(n.startswith("package/") for n in names), names)
            pj = json.load(t.extractfile("package/package.json"))
        self.assertIn("package/lib/a.js", names)
        self.assertEqual((pj["name"], pj["version"], pj["dependencies"]), ("big", "1.2.3", {"x": "1"}))
        again = NpmRegistry(os.path.join(self.tmp, "again")).add_package(
            "big", "1.2.3", deps={"x": "1"}, files={"lib/a.js": "exports.a = 1;\n"}, size=300_000)
        self.assertEqual(again.integrity, info.integrity)             # deterministic bytes

    def test_conditional_requests_get_304(self):
        r = self.demo_npm()
        full = fetch(H, r.port, "/demo-a")
        corgi = fetch(H, r.port, "/demo-a", headers={"Accept": CORGI_ACCEPT})
        tgz = fetch(H, r.port, "/demo-a/-/demo-a-1.0.0.tgz")
        cases = [
            ({"If-None-Match": full.header("etag")}, 304),
            ({"If-None-Match": 'W/' + full.header("etag")}, 304),
            ({"If-None-Match": '"nope"'}, 200),
            ({"If-None-Match": corgi.header("etag")}, 200),         # the other representation's tag
            ({"If-Modified-Since": full.header("last-modified")}, 304),
            ({"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"}, 200),
        ]
        for headers, want in cases:
            res = fetch(H, r.port, "/demo-a", headers=headers)
            self.assertEqual(res.status, want, headers)
            if want == 304:
                self.assertEqual(res.body, b"")
                self.assertEqual(res.header("etag"), full.header("etag"))
        res = fetch(H, r.port, "/demo-a", headers={"Accept": CORGI_ACCEPT, "If-None-Match": corgi.header("etag")})
        self.assertEqual(res.status, 304)
        res = fetch(H, r.port, "/demo-a/-/demo-a-1.0.0.tgz",
                    headers={"If-Modified-Since": tgz.header("last-modified")})
        self.assertEqual(res.status, 304)
        self.assertEqual(len(r.conditional_requests()), len(cases) + 2)
        self.assertEqual(len(r.conditional_requests("/demo-a/-/demo-a-1.0.0.tgz")), 1)

    def test_unknown_and_endpoints_are_404(self):
        r = self.demo_npm()
        for path in ("/nope", "/@demo%2fnope", "/-/ping", "/-/v1/search?text=demo", "/demo-a/9.9.9",
                     "/demo-a/-/demo-a-9.9.9.tgz", "/"):
            res = fetch(H, r.port, path)
            self.assertEqual(res.status, 404, path)
            self.assertEqual(res.header("content-type"), "application/json")
            self.assertIn("error", res.json())
        self.assertEqual(fetch(H, r.port, "/nope").json(), {"error": "Not found"})
        self.assertEqual(fetch(H, r.port, "/-/npm/v1/security/advisories/bulk", method="POST", body=b"{}").status,
                         404)
        self.assertEqual(fetch(H, r.port, "/demo-a/latest").json()["version"], "1.0.0")
        self.assertEqual(r.requests("/-/npm/v1/security/advisories/bulk", method="POST"), 1)

    def test_publish_while_serving_changes_etag(self):
        r = self.demo_npm()
        before = fetch(H, r.port, "/demo-a")
        corgi_before = fetch(H, r.port, "/demo-a", headers={"Accept": CORGI_ACCEPT})
        r.add_package("demo-a", "1.1.0", deps={"demo-b": "^1.0.0"})
        after = fetch(H, r.port, "/demo-a")
        self.assertNotEqual(before.header("etag"), after.header("etag"))
        self.assertNotEqual(before.header("last-modified"), after.header("last-modified"))
        self.assertEqual(after.json()["dist-tags"]["latest"], "1.1.0")
        self.assertEqual(fetch(H, r.port, "/demo-a", headers={"If-None-Match": before.header("etag")}).status, 200)
        self.assertEqual(fetch(H, r.port, "/demo-a",
                               headers={"If-Modified-Since": before.header("last-modified")}).status, 200)
        corgi_after = fetch(H, r.port, "/demo-a", headers={"Accept": CORGI_ACCEPT})
        self.assertNotEqual(corgi_before.header("etag"), corgi_after.header("etag"))
        self.assertIn("1.1.0", corgi_after.json()["versions"])

    def test_tarball_base_elsewhere(self):
        other = "http://127.0.0.1:%d" % free_port()
        r = self.demo_npm(tarball_base=other + "/")
        for accept in ("application/json", CORGI_ACCEPT):
            doc = fetch(H, r.port, "/@demo%2fc", headers={"Accept": accept}).json()
            self.assertEqual(doc["versions"]["2.0.0"]["dist"]["tarball"], other + "/@demo/c/-/c-2.0.0.tgz")
        self.assertEqual(fetch(H, r.port, "/@demo/c/-/c-2.0.0.tgz").status, 200)   # still served here
        r.tarball_base = None
        doc = fetch(H, r.port, "/@demo%2fc").json()
        self.assertEqual(doc["versions"]["2.0.0"]["dist"]["tarball"], r.base_url + "/@demo/c/-/c-2.0.0.tgz")

    def test_bulk_packument_is_over_20_mb(self):
        r = self.npm_registry()
        started = time.monotonic()
        latest = r.bulk_packument("huge")
        full = fetch(H, r.port, "/huge", timeout=30)
        timed("build and fetch the bulk packument", started)
        self.assertTrue(full.ok, full.error)
        self.assertGreaterEqual(len(full.body), 20 * 1024 * 1024)
        doc = full.json()
        self.assertEqual(doc["dist-tags"]["latest"], latest.version)
        self.assertGreaterEqual(len(doc["versions"]), 1000)
        corgi = fetch(H, r.port, "/huge", headers={"Accept": CORGI_ACCEPT}, timeout=30)
        self.assertLess(len(corgi.body), len(full.body) // 10)
        self.assertEqual(fetch(H, r.port, latest.url_path).status, 200)


# ==================================================================== knobs


class KnobTests(TmpCase):
    def test_set_status_count_retry_after_and_clear(self):
        r = self.demo_npm()
        r.set_status(502, count=2)
        got = [fetch(H, r.port, "/demo-a") for _ in range(3)]
        self.assertEqual([g.status for g in got], [502, 502, 200])
        self.assertEqual(got[0].json(), {"error": "injected 502"})
        r.set_status(503, retry_after=3)
        for _ in range(3):
            res = fetch(H, r.port, "/demo-b/-/demo-b-1.0.0.tgz")
            self.assertEqual((res.status, res.header("retry-after")), (503, "3"))
        r.set_status(None)
        self.assertEqual(fetch(H, r.port, "/demo-b/-/demo-b-1.0.0.tgz").status, 200)
        self.assertEqual(r.requests("/demo-b/-/demo-b-1.0.0.tgz"), 4)
        self.assertEqual([e.status for e in r.request_log()], [502, 502, 200, 503, 503, 503, 200])

    def test_set_rate_paces_bodies(self):
        r = self.demo_npm()
        r.bulk_packument("demo-big", versions=60, readme_bytes=20_000)
        size = len(r.packument_bytes("demo-big"))
        self.assertGreater(size, 1_000_000)
        r.set_rate(4 * size)               # a quarter of a second, at the least
        t0 = time.monotonic()
        res = fetch(H, r.port, "/demo-big")
        paced = time.monotonic() - t0
        r.set_rate(None)
        self.assertEqual((res.status, len(res.body)), (200, size))
        self.assertGreaterEqual(paced, 0.2)

    def test_set_status_match_and_only(self):
        r = self.demo_npm()
        r.set_status(500, match=re.compile(r"\.tgz$"))
        self.assertEqual(fetch(H, r.port, "/demo-a").status, 200)
        self.assertEqual(fetch(H, r.port, "/demo-a/-/demo-a-1.0.0.tgz").status, 500)
        r.clear_faults()
        p = self.demo_pypi()
        p.set_status(502, only="files")
        self.assertEqual(fetch(H, p.port, "/simple/demo-a/").status, 200)
        f = p.files("demo-a")[0]
        self.assertEqual(fetch(H, p.files_port, f.url_path).status, 502)
        p.set_status(None)
        self.assertEqual(fetch(H, p.files_port, f.url_path).status, 200)
        with self.assertRaises(ValueError):
            p.set_status(502, only="nope")

    def test_refuse_toggles_on_the_same_port(self):
        r = self.demo_npm()
        port = r.port
        with Session(H, port) as s:
            self.assertEqual(s.request("/demo-a").status, 200)
            r.set_refuse(True)
            res = fetch(H, port, "/demo-a", timeout=3)
            self.assertIsNone(res.status)
            self.assertIn("refused", res.error)
            self.assertIsNone(s.request("/demo-a", timeout=3).status)   # the open connection went too
        r.set_refuse(False)
        self.assertEqual(r.port, port)
        self.assertEqual(fetch(H, port, "/demo-a").status, 200)
        p = self.demo_pypi()
        p.set_refuse(True, only="files")
        self.assertEqual(fetch(H, p.port, "/simple/").status, 200)
        self.assertIn("refused", fetch(H, p.files_port, "/packages/x", timeout=3).error)
        p.set_refuse(False)
        self.assertEqual(fetch(H, p.files_port, "/packages/x").status, 404)

    def test_stop_ends_every_thread_and_connection(self):
        baseline = threading.active_count()
        r = NpmRegistry(os.path.join(self.tmp, "npm")).start()
        r.add_package("x", "1.0.0")
        sessions = [Session(H, r.port) for _ in range(3)]
        for s in sessions:
            self.assertEqual(s.request("/x").status, 200)           # now idle in keep-alive
        self.assertGreater(threading.active_count(), baseline)
        started = time.monotonic()
        r.stop()
        self.assertLess(time.monotonic() - started, 5)
        wait_until(lambda: threading.active_count() == baseline, 5, message="threads left after stop()")
        for s in sessions:
            s.close()
        self.assertIn("refused", fetch(H, r.port, "/x", timeout=3).error)

    def test_request_log(self):
        r = self.demo_npm()
        fetch(H, r.port, "/demo-a?write=true", headers={"Accept": CORGI_ACCEPT, "If-None-Match": '"x"'})
        fetch(H, r.port, "/demo-a", method="HEAD")
        log = r.request_log()
        self.assertEqual(len(log), 2)
        e = log[0]
        self.assertEqual((e.method, e.path, e.target, e.status, e.listener),
                         ("GET", "/demo-a", "/demo-a?write=true", 200, "registry"))
        self.assertEqual(e["path"], "/demo-a")
        self.assertEqual(e.headers.get("accept"), CORGI_ACCEPT)
        self.assertEqual(dict(e.headers)["If-None-Match"], '"x"')
        self.assertEqual((e.accept, e.if_none_match, e.if_modified_since), (CORGI_ACCEPT, '"x"', None))
        self.assertEqual(r.requests("/demo-a"), 1)
        self.assertEqual(r.requests("/demo-a", method=None), 2)
        self.assertEqual(r.requests(), 1)
        self.assertEqual([x.target for x in r.conditional_requests()], ["/demo-a?write=true"])
        r.reset_log()
        self.assertEqual((r.request_log(), r.requests(method=None)), ([], 0))


# ===================================================================== PyPI


class PypiIndexTests(TmpCase):
    def test_html_project_page(self):
        p = self.demo_pypi()
        res = fetch(H, p.port, "/simple/demo-a/")
        self.assertEqual(res.status, 200)
        self.assertEqual(res.header("content-type"), "text/html")
        self.assertEqual(res.header("vary"), "Accept")
        self.assertRegex(res.header("etag"), r'^"[0-9a-f]{40}"$')
        self.assertIsNotNone(res.header("last-modified"))
        text = res.body.decode()
        self.assertTrue(text.startswith("<!DOCTYPE html>"))
        self.assertIn('<meta name="pypi:repository-version" content="1.1">', text)
        f = p.files("demo-a")[0]
        m = re.search(r'<a href="([^"#]+)#sha256=([0-9a-f]{64})" data-requires-python="&gt;=3.7">([^<]+)</a>', text)
        self.assertIsNotNone(m, text)
        self.assertEqual(m.group(1), p.files_base_url + f.url_path)
        self.assertRegex(f.url_path, r"^/packages/[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{60}/demo_a-1\.0-py3-none-any\.whl$")
        body = fetch(H, p.files_port, f.url_path).body
        self.assertEqual(hashlib.sha256(body).hexdigest(), m.group(2))
        self.assertEqual(m.group(3), "demo_a-1.0-py3-none-any.whl")
        self.assertEqual(fetch(H, p.port, f.url_path).status, 404)      # files live on the files host
        root = fetch(H, p.port, "/simple/")
        self.assertEqual(root.status, 200)
        self.assertIn(b'href="demo-a/"', root.body)

    def test_json_project_page(self):
        p = self.demo_pypi()
        html = fetch(H, p.port, "/simple/demo-b/")
        res = fetch(H, p.port, "/simple/demo-b/", headers={"Accept": PIP_ACCEPT})
        self.assertEqual(res.header("content-type"), "application/vnd.pypi.simple.v1+json")
        self.assertEqual(res.header("vary"), "Accept")
        self.assertNotEqual(res.header("etag"), html.header("etag"))
        doc = res.json()
        self.assertEqual(doc["meta"]["api-version"], "1.1")
        self.assertEqual(doc["name"], "demo-b")
        self.assertEqual([f["filename"] for f in doc["files"]],
                         ["demo_b-1.0-py3-none-any.whl", "demo_b-1.1-py3-none-any.whl"])
        f = doc["files"][1]
        self.assertEqual(f["requires-python"], ">=3.7")
        self.assertEqual(f["url"], p.files_base_url + p.files("demo-b")[1].url_path)
        self.assertEqual(f["hashes"]["sha256"], p.files("demo-b")[1].sha256)
        q = fetch(H, p.port, "/simple/demo-b/?format=application/vnd.pypi.simple.v1+json")
        self.assertEqual(q.body, res.body)
        self.assertEqual(fetch(H, p.port, "/simple/", headers={"Accept": PIP_ACCEPT}).json()["projects"],
                         [{"name": "demo-a", "_last-serial": 3}, {"name": "demo-b", "_last-serial": 2}])

    def test_non_normalised_names_redirect(self):
        p = self.demo_pypi()
        for path, loc in (("/simple/Demo_A/", "/simple/demo-a/"), ("/simple/demo.a/", "/simple/demo-a/"),
                          ("/simple/demo-a", "/simple/demo-a/"), ("/simple", "/simple/")):
            res = fetch(H, p.port, path)
            self.assertEqual((res.status, res.header("location")), (301, loc), path)
        self.assertEqual(fetch(H, p.port, "/simple/nope/").status, 404)
        self.assertEqual(fetch(H, p.port, "/elsewhere").status, 404)

    def test_304_and_publish_while_serving(self):
        p = self.demo_pypi()
        for accept in (None, PIP_ACCEPT):
            hs = {"Accept": accept} if accept else {}
            first = fetch(H, p.port, "/simple/demo-b/", headers=hs)
            res = fetch(H, p.port, "/simple/demo-b/", headers=dict(hs, **{"If-None-Match": first.header("etag")}))
            self.assertEqual(res.status, 304)
            res = fetch(H, p.port, "/simple/demo-b/",
                        headers=dict(hs, **{"If-Modified-Since": first.header("last-modified")}))
            self.assertEqual(res.status, 304)
        before = fetch(H, p.port, "/simple/demo-b/", headers={"Accept": PIP_ACCEPT})
        p.add_wheel("demo-b", "1.2")
        after = fetch(H, p.port, "/simple/demo-b/", headers={"Accept": PIP_ACCEPT,
                                                            "If-None-Match": before.header("etag")})
        self.assertEqual(after.status, 200)
        self.assertNotEqual(after.header("etag"), before.header("etag"))
        self.assertIn("1.2", after.json()["versions"])
        self.assertEqual(len(p.conditional_requests("/simple/demo-b/")), 5)

    def test_relative_links_and_core_metadata(self):
        p = self.demo_pypi(files_base="relative", core_metadata=True)
        self.assertIsNone(p.files_port)
        text = fetch(H, p.port, "/simple/demo-a/").body.decode()
        f = p.files("demo-a")[0]
        self.assertIn('href="../..%s#sha256=%s"' % (f.url_path, f.sha256), text)
        self.assertIn('data-core-metadata="sha256=%s"' % f.metadata_sha256, text)
        with open(f.file, "rb") as fh:
            self.assertEqual(fetch(H, p.port, f.url_path).body, fh.read())
        meta = fetch(H, p.port, f.url_path + ".metadata")
        self.assertEqual(hashlib.sha256(meta.body).hexdigest(), f.metadata_sha256)
        self.assertIn(b"Requires-Dist: demo-b>=1.0", meta.body)

    def test_wheel_and_sdist_are_well_formed(self):
        p = self.pypi_index()
        w = p.add_wheel("Big.Thing", "2.0", requires=["dep"], size=200_000)
        self.assertEqual(w.filename, "big_thing-2.0-py3-none-any.whl")
        self.assertLess(abs(w.size - 200_000), 1000, w.size)
        with zipfile.ZipFile(w.file) as z:
            self.assertIsNone(z.testzip())
            names = z.namelist()
            self.assertIn("big_thing-2.0.dist-info/RECORD", names)
            self.assertIn(b"Requires-Dist: dep", z.read("big_thing-2.0.dist-info/METADATA"))
        s = p.add_sdist("demo-c", "1.0")
        self.assertEqual(s.filename, "demo_c-1.0.tar.gz")
        with tarfile.open(s.file) as t:
            self.assertTrue({"demo_c-1.0/PKG-INFO", "demo_c-1.0/pyproject.toml"} <= set(t.getnames()))


# ================================================================== clients


class ClientTests(TmpCase):
    @classmethod
    def setUpClass(cls):
        started = time.monotonic()
        cls.versions = clients.ensure_tools()
        timed("ensure_tools() %s" % " ".join("%s=%s" % kv for kv in cls.versions.items()), started)

    def run_client(self, label, result, ok=True):
        timed(label, result=result)
        if ok:
            self.assertTrue(result.ok, str(result))
        return result

    def test_npm_install_unscoped_with_dependency_and_scoped(self):
        r = self.demo_npm()
        proj = os.path.join(self.tmp, "proj")
        self.run_client("npm install demo-a @demo/c", clients.npm_install(r.base_url, proj, ["demo-a", "@demo/c"]))
        for name, ver in (("demo-a", "1.0.0"), ("demo-b", "1.0.0"), ("@demo/c", "2.0.0")):
            with open(os.path.join(proj, "node_modules", name, "package.json")) as f:
                self.assertEqual(json.load(f)["version"], ver)
        for name, ver in (("demo-a", "1.0.0"), ("demo-b", "1.0.0"), ("@demo/c", "2.0.0")):
            self.assertEqual(r.requests(r.tarball_path(name, ver)), 1, name)
        with open(os.path.join(proj, "package-lock.json")) as f:
            lock = json.load(f)
        self.assertEqual(lock["packages"]["node_modules/demo-b"]["resolved"],
                         r.base_url + "/demo-b/-/demo-b-1.0.0.tgz")      # the sandbox does not omit it

    def test_npm_follows_the_published_tarball_url(self):
        port = free_port()
        r = self.demo_npm(tarball_base="http://127.0.0.1:%d" % port)
        res = self.run_client("npm install with tarballs elsewhere (must fail)",
                              clients.npm_install(r.base_url, os.path.join(self.tmp, "proj"), ["demo-a"],
                                                  npmrc={"fetch-retries": 0}), ok=False)
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("ECONNREFUSED", res.output)
        self.assertIn(str(port), res.output)
        self.assertGreaterEqual(r.requests("/demo-a"), 1)                   # the packument came from here
        self.assertEqual(r.requests(re.compile(r"\.tgz$")), 0)              # the tarball was not asked here

    def test_npm_ci_from_lockfile(self):
        r = self.demo_npm()
        proj = os.path.join(self.tmp, "proj")
        self.run_client("npm install --package-lock-only", clients.npm_lock(r.base_url, proj, ["demo-a", "@demo/c"]))
        self.assertFalse(os.path.exists(os.path.join(proj, "node_modules")))
        r.reset_log()
        self.run_client("npm ci", clients.npm_install(r.base_url, proj, lockfile=True))
        self.assertTrue(os.path.exists(os.path.join(proj, "node_modules", "demo-b", "package.json")))
        self.assertEqual(r.requests(re.compile(r"\.tgz$")), 3)
        self.assertEqual(r.requests(method=None), 3)        # resolved URLs in the lockfile: no packuments

    def test_pnpm_install(self):
        r = self.demo_npm()
        proj = os.path.join(self.tmp, "proj")
        self.run_client("pnpm add demo-a @demo/c", clients.pnpm_install(r.base_url, proj, ["demo-a", "@demo/c"]))
        with open(os.path.join(proj, "node_modules", "@demo", "c", "package.json")) as f:
            self.assertEqual(json.load(f)["version"], "2.0.0")
        self.assertTrue(os.path.isdir(os.path.join(proj, "node_modules", ".pnpm")))
        self.assertTrue(os.path.exists(os.path.join(proj, "pnpm-lock.yaml")))
        packuments = [e for e in r.request_log() if not e.path.endswith(".tgz")]
        self.assertTrue(packuments and all(CORGI in (e.accept or "") for e in packuments), packuments)
        self.assertEqual(r.requests(re.compile(r"\.tgz$")), 3)

    def test_npm_installs_the_20_mb_packument(self):
        r = self.npm_registry()
        r.bulk_packument("huge")
        self.assertGreaterEqual(len(r.packument_bytes("huge")), 20 * 1024 * 1024)
        proj = os.path.join(self.tmp, "proj")
        self.run_client("npm install huge (20 MB packument)", clients.npm_install(r.base_url, proj, ["huge"]))
        with open(os.path.join(proj, "node_modules", "huge", "package.json")) as f:
            self.assertEqual(json.load(f)["version"], "2.0.0")

    def test_pip_wheel_with_dependency_json_then_html(self):
        p = self.demo_pypi()
        res = self.run_client("pip install demo-a (JSON index)",
                              clients.pip_install(p.index_url, ["demo-a"], os.path.join(self.tmp, "t1")))
        self.assertEqual(res.installed, {"demo-a": "1.0", "demo-b": "1.1"})
        self.assertTrue(os.path.exists(os.path.join(self.tmp, "t1", "demo_a", "__init__.py")))
        pages = [e for e in p.request_log() if e.listener == "index"]
        self.assertTrue(pages)
        self.assertTrue(all(e.accept.startswith("application/vnd.pypi.simple.v1+json") for e in pages))
        self.assertEqual(p.requests(p.files("demo-b")[1].url_path), 1)
        self.assertEqual(p.requests(p.files("demo-b")[0].url_path), 0)
        p.serve_json = False                                    # a static index: HTML only
        p.reset_log()
        res = self.run_client("pip install demo-a (HTML index)",
                              clients.pip_install(p.index_url, ["demo-a"], os.path.join(self.tmp, "t2")))
        self.assertEqual(res.installed, {"demo-a": "1.0", "demo-b": "1.1"})
        self.assertEqual(p.requests("/simple/demo-a/"), 1)

    def test_pip_sdist_without_build_isolation(self):
        p = self.demo_pypi(files_base="relative")
        p.add_sdist("demo-c", "1.0", requires=["demo-b"])
        target = os.path.join(self.tmp, "t")
        res = self.run_client("pip install demo-c (sdist, --no-build-isolation, relative links)",
                              clients.pip_install(p.index_url, ["demo-c"], target, no_build_isolation=True))
        self.assertEqual(res.installed, {"demo-c": "1.0", "demo-b": "1.1"})
        with open(os.path.join(target, "demo_c", "__init__.py")) as f:
            self.assertIn("FROM_SDIST = True", f.read())
        self.assertEqual(p.requests(p.files("demo-c")[0].url_path), 1)     # served by the index itself

    def test_pip_uses_core_metadata(self):
        # HTML: pip reads data-dist-info-metadata since 22.3; in JSON only pip
        # >= 23.2 reads core-metadata (Debian 12's venv pip is 23.0.1, and a
        # "dist-info-metadata" dict in JSON crashes it: see registry.py).
        p = self.demo_pypi(core_metadata=True, serve_json=False)
        self.run_client("pip install demo-a (PEP 658 metadata, HTML)",
                        clients.pip_install(p.index_url, ["demo-a"], os.path.join(self.tmp, "t")))
        for f in (p.files("demo-a")[0], p.files("demo-b")[1]):
            # pip 23.0.1 fetches each .metadata and then each wheel twice (fixed in 23.1)
            self.assertGreaterEqual(p.requests(f.url_path + ".metadata"), 1, f.filename)
            self.assertGreaterEqual(p.requests(f.url_path), 1, f.filename)

    def test_pip_sdist_with_setuptools(self):
        py = clients.ensure_pip_venv()
        probe = subprocess.run([py, "-c", "import setuptools, sys; from importlib.metadata import version as v\n"
                                "try:\n import wheel\nexcept ImportError:\n"
                                " sys.exit(0 if tuple(map(int, v('setuptools').split('.')[:2])) >= (70, 1) else 1)"])
        if probe.returncode != 0:
            self.skipTest("the pip venv has no `wheel` and setuptools < 70.1: setuptools cannot build "
                          "a wheel offline (the default in-tree backend is what the tests use)")
        p = self.demo_pypi()
        p.add_sdist("demo-d", "1.0", backend="setuptools")
        res = self.run_client("pip install demo-d (setuptools sdist)",
                              clients.pip_install(p.index_url, ["demo-d"], os.path.join(self.tmp, "t"),
                                                  no_build_isolation=True))
        self.assertEqual(res.installed, {"demo-d": "1.0"})


if __name__ == "__main__":
    unittest.main()
