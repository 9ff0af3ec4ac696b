"""The PyPI routes through the real edge, against the test index and its
separate files host (tests/lib/registry.py PypiIndex): the PEP 503 redirect
to a project's normal name, the HTML and PEP 691 JSON pages as two objects
with their own Content-Type, every link re-pointed at the edge with its
#sha256 fragment and data-* attributes byte for byte, files and PEP 658
.metadata files immutable whatever pip's Cache-Control says, and a
client's max-age=0 on an index page not bypassing the cache unless the
route says so. The real pip is in tests/e2e/test_pip.py.
"""

import json
import os
import re
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

from edge import Edge  # noqa: E402
from registry import PypiIndex  # noqa: E402

PUBLIC = "https://cache.example:8443"
PEP691 = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
PIP_HEADERS = {"Cache-Control": "max-age=0"}   # what pip sends on every request


class PypiTest(unittest.TestCase):
    settings = {}

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="sluice-pypi-")
        cls.index = PypiIndex(os.path.join(cls.tmp, "index"), core_metadata=True)
        cls.index.start()
        cls.wheel = cls.index.add_wheel("Demo_A", "1.0", requires_python=">=3.7")
        cls.sdist = cls.index.add_sdist("Demo_A", "1.0")
        settings = {"public_url": PUBLIC, "metadata_ttl": "1h",
                    "origin_pypi": cls.index.base_url, "origin_pypi_files": cls.index.files_base_url}
        settings.update(cls.settings)
        cls.edge = Edge(origin=False, settings=settings)
        cls.edge.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.edge.__exit__(None, None, None)
        cls.index.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def get(self, path, **kw):
        return self.edge.get("/pypi/" + path, **kw)


class Pages(PypiTest):
    def test_a_name_that_is_not_normal_is_redirected(self):
        for spelling in ("simple/Demo_A/", "simple/demo.a", "simple/DEMO-A"):
            r = self.get(spelling)
            self.assertEqual(r.status, 301, spelling)
            self.assertEqual(r.header("Location"), "/pypi/simple/demo-a/", spelling)
            self.assertEqual(r.header("Cache-Status"), "sluice; fwd=bypass; detail=normalised", spelling)
        self.assertEqual(self.index.requests(re.compile(r"/simple/(Demo_A|demo\.a|DEMO-A)")), 0)

    def test_html_links_point_at_the_edge_and_keep_every_other_byte(self):
        r = self.get("simple/demo-a/", headers=PIP_HEADERS)
        self.assertEqual(r.status, 200, r.body[:300])
        self.assertTrue(r.header("Content-Type").startswith("text/html"), r.header("Content-Type"))
        self.assertEqual(r.header("Vary"), "Accept")
        want = self.index.page_bytes("demo-a").replace(
            self.index.files_base_url.encode() + b"/", PUBLIC.encode() + b"/pypi/files/")
        self.assertEqual(r.body, want)
        self.assertIn(b'data-requires-python="&gt;=3.7"', r.body)
        self.assertIn(("#sha256=%s" % self.wheel.sha256).encode(), r.body)

    def test_pep691_json_is_its_own_object(self):
        html = self.get("simple/demo-a/")
        j = self.get("simple/demo-a/", headers={"Accept": PEP691})
        self.assertEqual(j.status, 200)
        self.assertEqual(j.header("Content-Type"), "application/vnd.pypi.simple.v1+json")
        self.assertEqual(j.header("Vary"), "Accept")
        doc = json.loads(j.body)
        urls = sorted(f["url"] for f in doc["files"])
        self.assertEqual(urls, sorted(PUBLIC + "/pypi/files" + f.url_path for f in (self.wheel, self.sdist)))
        self.assertNotEqual(html.body, j.body)
        self.edge.wait_idle()
        for accept, body in ((None, html.body), (PEP691, j.body)):
            again = self.get("simple/demo-a/", headers={"Accept": accept} if accept else {})
            self.assertEqual(again.header("Cache-Status"), "sluice; hit")
            self.assertEqual(again.body, body)

    def test_a_missing_page_is_remembered_briefly(self):
        # the test index has no JSON API: its 404 is remembered, as metadata
        for _ in range(2):
            self.assertEqual(self.get("pypi/demo-a/json").status, 404)
            self.edge.wait_idle()
        self.assertEqual(self.index.requests("/pypi/demo-a/json"), 1)


class Files(PypiTest):
    def test_files_and_metadata_files_are_immutable(self):
        for path in (self.wheel.url_path, self.wheel.url_path + ".metadata"):
            first = self.get("files" + path, headers=PIP_HEADERS)
            self.assertEqual(first.status, 200, path)
            self.edge.wait_idle()
            again = self.get("files" + path, headers={"Cache-Control": "no-cache"})
            self.assertEqual(again.header("Cache-Status"), "sluice; hit", path)
            self.assertEqual(again.body, first.body)
            self.assertEqual(self.index.requests(path), 1, path)
        with open(self.wheel.file, "rb") as f:
            self.assertEqual(self.get("files" + self.wheel.url_path).body, f.read())


class ClientNoCacheIgnored(PypiTest):
    def test_max_age_0_on_a_page_is_a_hit(self):
        self.get("simple/", headers=PIP_HEADERS)
        self.edge.wait_idle()
        for _ in range(3):
            self.assertEqual(self.get("simple/", headers=PIP_HEADERS).header("Cache-Status"), "sluice; hit")
        self.assertEqual(self.index.requests("/simple/"), 1)


class ClientNoCacheHonoured(PypiTest):
    settings = {"route_pypi_metadata_honor_no_cache": "1"}

    def test_max_age_0_revalidates_when_the_route_says_so(self):
        self.get("simple/", headers=PIP_HEADERS)
        self.edge.wait_idle()
        r = self.get("simple/", headers=PIP_HEADERS)
        self.assertEqual(r.status, 200)
        self.assertIn("fwd=", r.header("Cache-Status"))
        self.assertEqual(len(self.index.conditional_requests("/simple/")), 1)
        self.assertEqual(self.get("simple/").header("Cache-Status"), "sluice; hit")


if __name__ == "__main__":
    unittest.main()
