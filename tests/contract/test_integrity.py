"""Integrity while filling, per ecosystem, through the real HAProxy and
agent (agent/src/fill/verify.c, agent/src/serve/integrity.c).

Each ecosystem publishes an artifact's digest its own way: npm in the
packument (dist.integrity), PyPI in the page's link (#sha256=), Cargo in the
index line (cksum), Maven in a .sha1 file beside the artifact. The test
origin publishes the digest of the TRUE bytes and serves CORRUPTED bytes of
the same length, slowly enough that several clients attach to the one fill.
Go's checksum database hashes the files inside a module zip (h1): the
corrupted zip is a well-formed zip whose file has one byte changed.

The contract checked (C1, C2, C6, and the issue's integrity rule):
  * every client sees an aborted transfer: never a complete 200, never the
    last byte;
  * nothing is stored: after the origin is fixed, the next request is a
    fresh fill that reaches the origin, verifies, and is then a hit;
  * sluice_integrity_failures_total{route} moves once for the one fill,
    sluice_integrity_verified_total{route} once for the good one;
  * fds, threads and connections are back to their baseline.
"""

import base64
import concurrent.futures
import hashlib
import io
import json
import os
import sys
import unittest
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from contract import ContractCase, KiB  # noqa: E402

ROUTES = ("generic", "npm", "pypi", "pypi_files", "cargo_index", "cargo_dl", "maven", "go")
SIZE = 768 * KiB
CLIENTS = 4


def describe(r):
    """A Result without its body (they are large here)."""
    return "status %s, %d bytes, complete %s, error %s, Cache-Status %s" % (
        r.status, len(r.body), r.complete, r.error, r.header("Cache-Status"))


def good_bytes(name):
    return hashlib.sha256(name.encode()).digest() * (SIZE // 32)


def spoiled(body):
    """Same length, one byte changed in the middle."""
    mid = len(body) // 2
    return body[:mid] + bytes([body[mid] ^ 0x5A]) + body[mid + 1:]


class Ecosystem:
    """How one ecosystem publishes an artifact and its digest on the test
    origin (every route's origin is the test origin, base path "")."""

    route = ""

    def __init__(self, case, name):
        self.case, self.name = case, name

    @property
    def origin(self):
        return self.case.edge.origin

    def publish_digest(self, body):
        """Put the metadata naming body's digest on the origin and read it
        through the edge (so the edge notes the digest)."""

    def artifact(self):
        """(edge path, origin path) of the artifact."""
        raise NotImplementedError


class Npm(Ecosystem):
    route = "npm"

    def artifact(self):
        return "/npm/%s/-/%s-1.0.0.tgz" % (self.name, self.name), "/%s/-/%s-1.0.0.tgz" % (self.name, self.name)

    def publish_digest(self, body):
        sri = "sha512-" + base64.b64encode(hashlib.sha512(body).digest()).decode()
        doc = {"name": self.name, "versions": {"1.0.0": {"dist": {
            "tarball": "https://registry.example" + self.artifact()[1], "integrity": sri,
            "shasum": hashlib.sha1(body).hexdigest()}}}}
        self.origin.set_object("/" + self.name, body=json.dumps(doc).encode(),
                               headers={"Content-Type": "application/json"})
        r = self.case.edge.get("/npm/" + self.name)
        self.case.assertTrue(r.ok, describe(r))


class Pypi(Ecosystem):
    route = "pypi_files"

    def artifact(self):
        f = "/packages/ab/%s-1.0-py3-none-any.whl" % self.name
        return "/pypi/files" + f, f

    def publish_digest(self, body):
        link = self.origin.url(self.artifact()[1]) + "#sha256=" + hashlib.sha256(body).hexdigest()
        page = '<html><body><a href="%s">%s</a></body></html>' % (link, self.name)
        self.origin.set_object("/simple/%s/" % self.name, body=page.encode(),
                               headers={"Content-Type": "text/html"})
        r = self.case.edge.get("/pypi/simple/%s/" % self.name)
        self.case.assertTrue(r.ok, describe(r))


class Cargo(Ecosystem):
    route = "cargo_dl"

    def artifact(self):
        f = "/crates/%s/%s-1.0.0.crate" % (self.name, self.name)
        return "/crates/dl" + f, f

    def publish_digest(self, body):
        line = json.dumps({"name": self.name, "vers": "1.0.0", "deps": [], "features": {},
                           "cksum": hashlib.sha256(body).hexdigest(), "yanked": False})
        index = "/%s/%s/%s" % (self.name[:2], self.name[2:4], self.name)
        self.origin.set_object(index, body=(line + "\n").encode(), headers={"Content-Type": "text/plain"})
        r = self.case.edge.get("/crates" + index)
        self.case.assertTrue(r.ok, describe(r))


class Maven(Ecosystem):
    route = "maven"

    def artifact(self):
        f = "/com/example/%s/1.0/%s-1.0.jar" % (self.name, self.name)
        return "/maven" + f, f

    def publish_digest(self, body):
        # Only on the origin: the edge fetches it beside the jar itself.
        self.origin.set_object(self.artifact()[1] + ".sha1",
                               body=(hashlib.sha1(body).hexdigest() + "  x.jar\n").encode())


def go_h1(files):
    """Go's h1 of a set of (name, bytes): the sha256 of "<hex sha256>  <name>\n"
    lines sorted by name, base64 (golang.org/x/mod/sumdb/dirhash)."""
    lines = "".join("%s  %s\n" % (hashlib.sha256(data).hexdigest(), name) for name, data in sorted(files))
    return "h1:" + base64.b64encode(hashlib.sha256(lines.encode()).digest()).decode()


class Go(Ecosystem):
    route = "go"
    mod_path = "example.test/m"

    def artifact(self):
        f = "/%s/%s/@v/v1.0.0.zip" % (self.mod_path, self.name)
        return "/go" + f, f

    def files(self, body):
        # one big stored file, so a flipped byte changes content, not structure
        return [("%s/%s@v1.0.0/data.bin" % (self.mod_path, self.name), body),
                ("%s/%s@v1.0.0/go.mod" % (self.mod_path, self.name), b"module x\n")]

    def zipped(self, body):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
            for name, data in self.files(body):
                z.writestr(name, data)
        return buf.getvalue()

    def publish_digest(self, body):
        # The record the checksum database publishes; the edge fetches it
        # beside the zip (sumdb/sum.golang.org/lookup/<module>@<version>).
        mod = "%s/%s" % (self.mod_path, self.name)
        record = "1\n%s v1.0.0 %s\n%s v1.0.0/go.mod %s\n\n" % (
            mod, go_h1(self.files(body)), mod, go_h1([("go.mod", b"module x\n")]))
        self.origin.set_object("/sumdb/sum.golang.org/lookup/%s@v1.0.0" % mod, body=record.encode())


class Integrity(ContractCase):
    """One edge for each test; every ecosystem route on the test origin."""

    def setUp(self):
        self.edge = self.start_edge(origin_routes=ROUTES)
        self.base = self.baseline(self.edge)

    def metric(self, name, route):
        return self.edge.metric('%s{route="%s"}' % (name, route))

    def pool_max(self):
        """Idle origin connections libcurl may keep: a Maven jar and its
        .sha1 are fetched at once, two connections where one did before."""
        return self.base["origin_pool"] + 1

    def fetch_all(self, path, n):
        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            return list(pool.map(lambda _: self.edge.get(path, timeout=30), range(n)))

    def check(self, eco_class):
        name = "pkg" + self.id().rsplit(".", 1)[-1].split("_")[-1]
        eco = eco_class(self, name)
        good = good_bytes(name)
        eco.publish_digest(good)
        path, origin_path = eco.artifact()
        route = eco.route
        failures = self.metric("sluice_integrity_failures_total", route)
        verified = self.metric("sluice_integrity_verified_total", route)

        # The corrupted artifact, slowly: every client joins the one fill.
        wire = eco.zipped if isinstance(eco, Go) else (lambda b: b)
        bad = spoiled(wire(good)) if not isinstance(eco, Go) else wire(spoiled(good))
        good = wire(good)
        self.edge.origin.set_object(origin_path, body=bad, rate=2 * SIZE)
        results = self.fetch_all(path, CLIENTS)
        for r in results:
            self.assertFalse(r.complete and r.status == 200,
                             "a client got a clean end of a corrupt body (%s)" % describe(r))
            self.assertLess(len(r.body), len(good), describe(r))
            self.assertEqual(r.body, bad[:len(r.body)], "bytes that were never sent")
        self.assertEqual(self.metric("sluice_integrity_failures_total", route), failures + 1)
        self.assertEqual(self.edge.origin.requests(origin_path), 1, "one fill for the concurrent clients")
        self.assert_contract(self.edge, self.base, origin_pool_max=self.pool_max())

        # Fixed at the origin: nothing was stored, so the next request fills
        # again, verifies and is stored; then it is a hit.
        self.edge.origin.set_object(origin_path, body=good)
        r = self.edge.get(path)
        self.assertTrue(r.ok, describe(r))
        self.assertEqual(r.body, good)
        self.assertIn("fwd=uri-miss", r.header("Cache-Status"))
        self.assertEqual(self.edge.origin.requests(origin_path), 2)
        self.edge.wait_idle()
        self.assertEqual(self.metric("sluice_integrity_verified_total", route), verified + 1)
        r = self.edge.get(path)
        self.assertTrue(r.ok, describe(r))
        self.assertEqual(r.header("Cache-Status"), "sluice; hit")
        self.assertEqual(r.body, good)
        self.assertEqual(self.edge.origin.requests(origin_path), 2)
        self.assert_contract(self.edge, self.base, origin_pool_max=self.pool_max())

    def test_npm_tarball_against_dist_integrity(self):
        self.check(Npm)

    def test_pypi_file_against_its_sha256_link(self):
        self.check(Pypi)

    def test_cargo_crate_against_its_index_cksum(self):
        self.check(Cargo)

    def test_maven_jar_against_its_sha1(self):
        self.check(Maven)

    def test_go_zip_against_its_checksum_database_line(self):
        self.check(Go)

    def test_an_artifact_whose_digest_was_never_seen_is_stored_unverified(self):
        name = "pkgunseen"
        path, origin_path = Npm(self, name).artifact()
        self.edge.origin.set_object(origin_path, body=good_bytes(name))
        unknown = self.metric("sluice_integrity_unknown_total", "npm")
        r = self.edge.get(path)
        self.assertTrue(r.ok, describe(r))
        self.edge.wait_idle()
        self.assertEqual(self.metric("sluice_integrity_unknown_total", "npm"), unknown + 1)
        self.assertEqual(self.edge.get(path).header("Cache-Status"), "sluice; hit")
        self.assert_contract(self.edge, self.base)


if __name__ == "__main__":
    unittest.main()
