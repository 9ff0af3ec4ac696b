"""The admin API with the real HAProxy and a real origin: purge one object
and a prefix, purge while a hit and a fill are being served (their
transfers complete byte for byte), /debug/fills during a slow fill,
/debug/config, /healthz and /readyz. docs/admin-api.md is the reference."""

import hashlib
import http.client
import json
import os
import shutil
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

from edge import Edge  # noqa: E402
from httpclient import wait_until  # noqa: E402
from registry import PypiIndex  # noqa: E402

CORGI = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"
PEP691 = "application/vnd.pypi.simple.v1+json"


def packument(name):
    return json.dumps({"name": name, "dist-tags": {"latest": "1.0.0"},
                       "versions": {"1.0.0": {"name": name, "version": "1.0.0",
                                              "dist": {"tarball": "https://registry.npmjs.org/%s/-/%s-1.0.0.tgz"
                                                       % (name, name), "shasum": "0" * 40}}}}).encode()


class Admin(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.edge = Edge(origin_routes=("generic", "npm"))
        cls.edge.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.edge.__exit__(None, None, None)

    def admin(self, method, path):
        c = http.client.HTTPConnection("127.0.0.1", self.edge.ports["admin"], timeout=30)
        try:
            c.request(method, path)
            r = c.getresponse()
            return r.status, r.getheader("Content-Type"), r.read()
        finally:
            c.close()

    def object_file(self, key):
        h = hashlib.sha256(key.encode()).hexdigest()
        return os.path.join(self.edge.cache_dir, "objects", h[:2], h[2:4], h)

    def purge(self, path):
        status, ctype, body = self.admin("DELETE", "/objects/" + path)
        self.assertEqual(ctype, "application/json")
        return status, json.loads(body)

    def cache_status(self, path, **kw):
        r = self.edge.get(path, **kw)
        self.assertTrue(r.ok, (path, r.status, r.error))
        self.assertEqual(r.body, self.edge.origin.expected_body(path[len("/generic"):])
                         if path.startswith("/generic/") else r.body)
        return r.header("Cache-Status")

    def stored(self, path):
        """GET it until it is a hit (the first GET stores it)."""
        self.cache_status(path)
        self.edge.wait_idle()
        self.assertEqual(self.cache_status(path), "sluice; hit")

    # ------------------------------------------------------------- purge
    def test_purge_one_then_the_next_get_refills(self):
        p = "/generic/admin/one.bin"
        self.stored(p)
        self.assertIn(self.object_file("generic:admin/one.bin"), self.edge.object_files())
        before = self.edge.metric("sluice_purged_objects_total")
        self.assertEqual(self.purge("generic/admin/one.bin"), (200, {"purged": 1}))
        self.assertEqual(self.edge.metric("sluice_purged_objects_total"), before + 1)
        self.assertNotIn(self.object_file("generic:admin/one.bin"), self.edge.object_files())
        self.assertEqual(self.cache_status(p), "sluice; fwd=uri-miss; stored")
        self.assertEqual(self.edge.origin.requests("/admin/one.bin"), 2)
        self.edge.wait_idle()
        self.assertEqual(self.cache_status(p), "sluice; hit")
        self.assertIn("admin: purge generic:admin/one.bin: 1 object", self.edge.agent_log())

    def test_purge_of_nothing_is_404_and_bad_requests_say_why(self):
        self.assertEqual(self.purge("generic/admin/never-stored.bin"), (404, {"purged": 0}))
        status, body = self.purge("nosuch/x")
        self.assertEqual((status, body), (400, {"error": "no route of that name"}))
        status, body = self.purge("generic/a/%2e%2E/b")
        self.assertEqual(status, 400)
        self.assertIn("traversal", body["error"])
        status, body = self.purge("generic/")
        self.assertEqual(status, 400)
        self.assertIn("nothing after the route prefix", body["error"])
        self.assertEqual(self.admin("GET", "/objects/generic/x")[0], 405)
        self.assertEqual(self.admin("DELETE", "/metrics")[0], 405)

    def test_purge_uses_the_canonical_key(self):
        p = "/generic/admin/canon/a.bin"
        self.stored(p)
        # Another spelling of the same request: empty segments, an escaped
        # unreserved character.
        self.assertEqual(self.purge("generic/admin//canon/%61.bin"), (200, {"purged": 1}))
        self.assertEqual(self.cache_status(p), "sluice; fwd=uri-miss; stored")

    def test_purge_prefix_removes_every_object_under_it(self):
        inside = ["/generic/admin/pfx/%d.bin" % i for i in range(6)]
        outside = "/generic/admin/pfy.bin"
        for p in inside + [outside]:
            self.stored(p)
        files = len(self.edge.object_files())
        self.assertEqual(self.purge("generic/admin/pfx/*"), (200, {"purged": 6}))
        self.assertEqual(len(self.edge.object_files()), files - 6)
        for p in inside:
            self.assertEqual(self.cache_status(p), "sluice; fwd=uri-miss; stored")
        self.assertEqual(self.cache_status(outside), "sluice; hit")
        self.assertIn("admin: purge generic:admin/pfx/*: 6 objects", self.edge.agent_log())

    def test_purge_of_a_packument_removes_both_representations(self):
        name = "admin-pad"
        self.edge.origin.set_object("/" + name, body=packument(name), headers={"Content-Type": "application/json"})
        for accept in (None, CORGI):
            h = {"Accept": accept} if accept else None
            self.assertTrue(self.edge.get("/npm/" + name, headers=h).ok)
            self.edge.wait_idle()
            self.assertEqual(self.edge.get("/npm/" + name, headers=h).header("Cache-Status"), "sluice; hit")
        self.assertEqual(self.purge("npm/" + name), (200, {"purged": 2}))
        for accept in (None, CORGI):
            h = {"Accept": accept} if accept else None
            self.assertNotEqual(self.edge.get("/npm/" + name, headers=h).header("Cache-Status"), "sluice; hit")
        self.edge.wait_idle()
        self.assertEqual(self.edge.origin.requests("/" + name), 4)

    # ------------------------------------------------ purge while serving
    def test_purge_during_a_hit_keeps_the_transfer_whole(self):
        path, size = "/admin/big-hit.bin", 48 * 1024 * 1024
        self.edge.origin.set_object(path, size=size)
        self.stored("/generic" + path)
        c = http.client.HTTPConnection("127.0.0.1", self.edge.ports["listen"], timeout=30)
        try:
            c.request("GET", "/generic" + path)
            r = c.getresponse()
            self.assertEqual(r.getheader("Cache-Status"), "sluice; hit")
            first = r.read(256 * 1024)   # the hit is under way: most of it is still in the agent
            self.assertEqual(self.purge("generic" + path), (200, {"purged": 1}))
            self.assertNotIn(self.object_file("generic" + path.replace("/", ":", 1)), self.edge.object_files())
            body = first + r.read()
        finally:
            c.close()
        self.assertEqual(len(body), size)
        self.assertEqual(body, self.edge.origin.expected_body(path))
        self.edge.wait_idle()
        self.assertEqual(self.cache_status("/generic" + path), "sluice; fwd=uri-miss; stored")

    def fills(self):
        status, ctype, body = self.admin("GET", "/debug/fills")
        self.assertEqual((status, ctype), (200, "application/json"))
        return json.loads(body)

    def slow_fill(self, path, size):
        """Start a GET of a slow origin object in a thread; return the thread
        and its result holder once /debug/fills shows the fill receiving."""
        self.edge.origin.set_object(path, size=size, rate=size // 4)
        out = {}
        t = threading.Thread(target=lambda: out.update(r=self.edge.get("/generic" + path, timeout=30)))
        t.start()
        key = "generic:" + path[1:]
        fill = wait_until(lambda: next((f for f in self.fills() if f["key"] == key and f["received"] > 0), None),
                          10, message="the fill never showed in /debug/fills")
        return t, out, fill

    def test_debug_fills_shows_a_slow_fill(self):
        path, size = "/admin/slow-fill.bin", 2 * 1024 * 1024
        t, out, fill = self.slow_fill(path, size)
        t.join(30)
        self.assertEqual(fill["route"], "generic")
        self.assertEqual(fill["content_length"], size)
        self.assertGreaterEqual(fill["readers"], 1)
        self.assertGreaterEqual(fill["age_ms"], 0)
        self.assertIn(fill["writer"], ("opening", "writing"))
        self.assertEqual(fill["origin_url"], "http://127.0.0.1:%d%s" % (self.edge.origin.port, path))
        self.assertTrue(out["r"].ok)
        self.edge.wait_idle()
        self.assertEqual(self.fills(), [])

    def test_purge_during_a_fill_completes_it_and_stores_nothing(self):
        path, size = "/admin/purged-fill.bin", 2 * 1024 * 1024
        before = self.edge.metric('sluice_cache_write_failures_total{reason="purged"}')
        t, out, fill = self.slow_fill(path, size)
        self.assertLess(fill["received"], size)
        self.assertEqual(self.purge("generic" + path), (200, {"purged": 1}))
        t.join(30)
        r = out["r"]
        self.assertTrue(r.ok, (r.status, r.error))
        self.assertEqual(r.body, self.edge.origin.expected_body(path))
        self.edge.wait_idle()
        self.assertEqual(self.edge.metric('sluice_cache_write_failures_total{reason="purged"}'), before + 1)
        self.edge.origin.set_object(path, size=size)
        self.assertEqual(self.cache_status("/generic" + path), "sluice; fwd=uri-miss; stored")
        self.assertEqual(self.edge.origin.requests(path), 2)

    # ------------------------------------------------ config and health
    def test_debug_config_is_the_effective_configuration(self):
        status, ctype, body = self.admin("GET", "/debug/config")
        self.assertEqual((status, ctype), (200, "text/plain"))
        text = body.decode()
        self.assertIn("admin_listen = 127.0.0.1:%d\n" % self.edge.ports["admin"], text)
        self.assertIn("origin_generic = http://127.0.0.1:%d\n" % self.edge.origin.port, text)
        self.assertIn("cache_max_size = 10G\n", text)

    def test_healthz_and_readyz(self):
        self.assertEqual(self.admin("GET", "/healthz")[0::2], (200, b"alive\n"))
        self.assertEqual(self.admin("GET", "/readyz")[0::2], (200, b"ok\n"))

    def test_status_json_counts_per_route(self):
        p = "/generic/admin/status.bin"
        self.stored(p)
        status, ctype, body = self.admin("GET", "/status.json")
        self.assertEqual((status, ctype), (200, "application/json"))
        s = json.loads(body)
        self.assertEqual(s["state"], "ready")
        g = next(r for r in s["routes"] if r["name"] == "generic")
        self.assertGreaterEqual(g["hits"], 1)
        self.assertGreater(g["hit_ratio"], 0)
        self.assertEqual(s["disk"]["max"], 10 * 1024 ** 3)
        self.assertGreaterEqual(s["disk"]["objects"], 1)


class PypiPurge(unittest.TestCase):
    """A name PyPI spells otherwise is purged under its normal form, in
    both representations (HTML and PEP 691 JSON), as a client's request
    would have been redirected to it and stored."""

    def test_purge_by_a_spelling_that_is_not_normal(self):
        tmp = tempfile.mkdtemp(prefix="sluice-admin-pypi-")
        index = PypiIndex(os.path.join(tmp, "index"))
        index.start()
        try:
            index.add_wheel("Demo_A", "1.0")
            settings = {"origin_pypi": index.base_url, "origin_pypi_files": index.files_base_url}
            with Edge(origin=False, settings=settings) as e:
                for accept in (None, PEP691):
                    h = {"Accept": accept} if accept else None
                    self.assertTrue(e.get("/pypi/simple/demo-a/", headers=h).ok)
                    e.wait_idle()
                    self.assertEqual(e.get("/pypi/simple/demo-a/", headers=h).header("Cache-Status"), "sluice; hit")
                c = http.client.HTTPConnection("127.0.0.1", e.ports["admin"], timeout=30)
                c.request("DELETE", "/objects/pypi/simple/Demo_A/")
                r = c.getresponse()
                self.assertEqual((r.status, json.loads(r.read())), (200, {"purged": 2}))
                c.close()
                for accept in (None, PEP691):
                    h = {"Accept": accept} if accept else None
                    self.assertNotEqual(e.get("/pypi/simple/demo-a/", headers=h).header("Cache-Status"),
                                        "sluice; hit")
                self.assertIn("admin: purge pypi:simple/demo-a/: 2 objects", e.agent_log())
        finally:
            index.stop()
            shutil.rmtree(tmp, ignore_errors=True)


class Readiness(unittest.TestCase):
    def test_readyz_is_503_while_loading_and_healthz_200(self):
        """The start-up scan removes debris it finds among the objects; 60000
        stray files keep it busy for a while, during which the agent is
        alive (/healthz) but not ready (/readyz)."""
        e = Edge(haproxy=False)
        try:
            leaf = os.path.join(e.cache_dir, "objects", "00", "00")
            os.makedirs(leaf)
            for i in range(60000):
                os.close(os.open(os.path.join(leaf, "stray-%d" % i), os.O_CREAT | os.O_WRONLY, 0o644))
            e.write_config()
            e.start_agent(wait_ready=False)
            seen = []

            def probe():
                try:
                    c = http.client.HTTPConnection("127.0.0.1", e.ports["admin"], timeout=2)
                    c.request("GET", "/readyz")
                    ready = c.getresponse()
                    body = ready.read()
                    c.request("GET", "/healthz")
                    alive = c.getresponse()
                    alive.read()
                    c.close()
                except OSError:
                    return False
                seen.append((ready.status, body, alive.status))
                return ready.status == 200
            wait_until(probe, 60, interval=0.005)
            self.assertEqual(seen[0], (503, b"loading\n", 200))
            self.assertEqual(seen[-1], (200, b"ok\n", 200))
            self.assertEqual(set(seen), {(503, b"loading\n", 200), (200, b"ok\n", 200)})
            self.assertEqual(os.listdir(leaf), [])
        finally:
            e.stop()


if __name__ == "__main__":
    unittest.main()
