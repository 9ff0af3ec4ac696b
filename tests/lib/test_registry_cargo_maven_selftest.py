"""Self-test of the offline Cargo registry (registry_cargo.py) and Maven
repository (registry_maven.py), and of the sandboxed cargo and mvn
(clients.py), with no cache in between, so the e2e suite can trust them.

    tests/run-suites lib -k Cargo                  # or -k Maven
    python3 -m unittest tests/lib/test_registry_cargo_maven_selftest.py -v

The cargo tests skip without a cargo >= 1.68 (clients.find_cargo); the
client tests need mvn and Debian's maven-dependency-plugin (make test-deps).
"""

import gzip
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
import unittest
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import clients  # noqa: E402
from httpclient import fetch  # noqa: E402
from registry_cargo import CargoRegistry, index_path  # noqa: E402
from registry_maven import MavenRepo  # noqa: E402

H = "127.0.0.1"


class TmpCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="sluice-registry-test-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def start(self, fixture):
        fixture.start()
        self.addCleanup(fixture.stop)
        return fixture


# ==================================================================== cargo


class CargoRegistryTests(TmpCase):
    @classmethod
    def setUpClass(cls):
        cargo, why = clients.find_cargo()
        if cargo is None:
            raise unittest.SkipTest(why)

    def demo(self, **kw):
        r = self.start(CargoRegistry(os.path.join(self.tmp, "cargo"), **kw))
        r.add_crate("demo-b", "0.1.0")
        r.add_crate("demo-a", "0.1.0", deps={"demo-b": "0.1"})
        return r

    def test_index_paths(self):
        self.assertEqual([index_path(n) for n in ("a", "ab", "abc", "Demo-A")],
                         ["/1/a", "/2/ab", "/3/a/abc", "/de/mo/demo-a"])

    def test_config_json_both_dl_forms(self):
        for form, dl in (("crate", "/crates/{crate}/{crate}-{version}.crate"), ("download", "/api/v1/crates")):
            r = self.start(CargoRegistry(os.path.join(self.tmp, form), dl_form=form))
            res = fetch(H, r.port, "/index/config.json")
            self.assertEqual(res.status, 200)
            self.assertEqual(res.json(), {"dl": r.base_url + dl, "api": r.base_url})

    def test_index_lines_and_a_real_crate(self):
        r = self.demo()
        res = fetch(H, r.port, "/index/de/mo/demo-a")
        self.assertEqual(res.status, 200)
        self.assertEqual(res.header("content-type"), "text/plain")
        lines = [json.loads(x) for x in res.body.decode().splitlines()]
        self.assertEqual(len(lines), 1)
        self.assertEqual(lines[0]["deps"][0]["name"], "demo-b")
        self.assertEqual(lines[0]["deps"][0]["req"], "0.1")
        crate = fetch(H, r.port, "/crates/demo-a/demo-a-0.1.0.crate")
        self.assertEqual(crate.status, 200)
        self.assertEqual(lines[0]["cksum"], hashlib.sha256(crate.body).hexdigest())
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(crate.body))) as t:
            names = t.getnames()
            toml = t.extractfile("demo-a-0.1.0/Cargo.toml").read().decode()
        self.assertIn("demo-a-0.1.0/src/lib.rs", names)
        self.assertIn("[dependencies.demo-b]", toml)
        alt = fetch(H, r.port, "/api/v1/crates/demo-a/0.1.0/download")
        self.assertEqual(alt.body, crate.body)

    def test_conditionals_404s_and_publish_while_serving(self):
        r = self.demo()
        first = fetch(H, r.port, "/index/de/mo/demo-b")
        self.assertEqual(fetch(H, r.port, "/index/de/mo/demo-b",
                               headers={"If-None-Match": first.header("etag")}).status, 304)
        self.assertEqual(fetch(H, r.port, "/index/de/mo/demo-b",
                               headers={"If-Modified-Since": first.header("last-modified")}).status, 304)
        for path in ("/index/de/mo/nope", "/index/2/demo-b", "/index/de/mo/Demo-B", "/crates/demo-b/demo-b-9.crate"):
            self.assertEqual(fetch(H, r.port, path).status, 404, path)
        r.add_crate("demo-b", "0.2.0")
        res = fetch(H, r.port, "/index/de/mo/demo-b", headers={"If-None-Match": first.header("etag")})
        self.assertEqual(res.status, 200)
        self.assertEqual([json.loads(x)["vers"] for x in res.body.decode().splitlines()], ["0.1.0", "0.2.0"])
        self.assertEqual(len(r.conditional_requests("/index/de/mo/demo-b")), 3)

    def test_corrupt_keeps_the_length_and_the_index(self):
        r = self.demo()
        good = fetch(H, r.port, r.dl_path("demo-b", "0.1.0")).body
        r.corrupt("demo-b", "0.1.0")
        bad = fetch(H, r.port, r.dl_path("demo-b", "0.1.0")).body
        self.assertEqual(len(bad), len(good))
        self.assertNotEqual(bad, good)
        self.assertIn(hashlib.sha256(good).hexdigest().encode(), r.index_bytes("demo-b"))
        r.uncorrupt("demo-b", "0.1.0")
        self.assertEqual(fetch(H, r.port, r.dl_path("demo-b", "0.1.0")).body, good)

    def test_cargo_fetch_and_build(self):
        r = self.demo(dl_form="download")
        r.add_crate("abc", "1.0.0")
        res = clients.cargo_fetch(r.index_url, os.path.join(self.tmp, "proj"), {"demo-a": "0.1", "abc": "1"},
                                  build=True)
        self.assertTrue(res.ok, str(res))
        self.assertEqual(res.installed, {"demo-a": "0.1.0", "demo-b": "0.1.0", "abc": "1.0.0"})
        self.assertEqual(r.requests("/api/v1/crates/demo-b/0.1.0/download"), 1)
        self.assertIn("Compiling demo-a", res.stderr)

    def test_cargo_rejects_a_corrupted_crate(self):
        r = self.demo()
        r.corrupt("demo-b", "0.1.0")
        res = clients.cargo_fetch(r.index_url, os.path.join(self.tmp, "proj"), {"demo-b": "0.1"}, retry=0)
        self.assertFalse(res.ok)
        self.assertIn("failed to verify the checksum of `demo-b v0.1.0", res.stderr)

    def test_cargo_fails_fast_on_a_5xx_with_retry_0(self):
        r = self.demo()
        r.set_status(503)
        res = clients.cargo_fetch(r.index_url, os.path.join(self.tmp, "proj"), {"demo-b": "0.1"}, retry=0)
        self.assertFalse(res.ok)
        self.assertIn("got 503", res.stderr)
        self.assertEqual(r.requests(), 1)


# ==================================================================== maven


class MavenRepoTests(TmpCase):
    def repo(self):
        return self.start(MavenRepo(os.path.join(self.tmp, "maven")))

    def test_release_files_checksums_and_metadata(self):
        m = self.repo()
        art = m.deploy("com.example", "demo-lib", "1.0")
        m.deploy("com.example", "demo-lib", "1.1")
        jar = fetch(H, m.port, "/com/example/demo-lib/1.0/demo-lib-1.0.jar")
        self.assertEqual(jar.status, 200)
        self.assertEqual(jar.header("content-type"), "application/java-archive")
        with zipfile.ZipFile(io.BytesIO(jar.body)) as z:
            self.assertIn("sluice/demo/Demo.class", z.namelist())
            self.assertIn(b"version=1.0", z.read("META-INF/maven/com.example/demo-lib/pom.properties"))
        for ext, algo in (("sha1", hashlib.sha1), ("md5", hashlib.md5), ("sha256", hashlib.sha256)):
            side = fetch(H, m.port, art.jar_path + "." + ext)
            self.assertEqual(side.body.decode(), algo(jar.body).hexdigest(), ext)
        self.assertIn(b"<artifactId>demo-lib</artifactId>", fetch(H, m.port, art.pom_path).body)
        app = m.deploy("com.example", "demo-app", "1.0", deps=["com.example:demo-lib:1.1"])
        self.assertIn(b"<dependency>\n      <groupId>com.example</groupId>\n      <artifactId>demo-lib</artifactId>\n"
                      b"      <version>1.1</version>", fetch(H, m.port, app.pom_path).body)
        meta = fetch(H, m.port, "/com/example/demo-lib/maven-metadata.xml")
        self.assertIn(b"<release>1.1</release>", meta.body)
        self.assertIn(b"<version>1.0</version>", meta.body)
        self.assertEqual(fetch(H, m.port, "/com/example/demo-lib/maven-metadata.xml.sha1").body.decode(),
                         hashlib.sha1(meta.body).hexdigest())

    def test_snapshot_builds_are_timestamped(self):
        m = self.repo()
        one = m.deploy("com.example", "demo-lib", "2.0-SNAPSHOT")
        two = m.deploy("com.example", "demo-lib", "2.0-SNAPSHOT")
        self.assertRegex(one.file_version, r"^2\.0-\d{8}\.\d{6}-1$")
        self.assertRegex(two.file_version, r"^2\.0-\d{8}\.\d{6}-2$")
        meta = fetch(H, m.port, m.metadata_path("com.example", "demo-lib", "2.0-SNAPSHOT")).body.decode()
        self.assertIn("<buildNumber>2</buildNumber>", meta)
        self.assertIn("<value>%s</value>" % two.file_version, meta)
        self.assertEqual(fetch(H, m.port, one.jar_path).status, 200)       # old builds stay
        self.assertIn(b"<latest>2.0-SNAPSHOT</latest>", m.metadata_bytes("com.example", "demo-lib"))
        self.assertNotIn(b"<release>", m.metadata_bytes("com.example", "demo-lib"))

    def test_conditionals_and_metadata_changes(self):
        m = self.repo()
        m.deploy("com.example", "demo-lib", "1.0")
        path = m.metadata_path("com.example", "demo-lib")
        first = fetch(H, m.port, path)
        for headers in ({"If-None-Match": first.header("etag")}, {"If-Modified-Since": first.header("last-modified")}):
            self.assertEqual(fetch(H, m.port, path, headers=headers).status, 304, headers)
        m.deploy("com.example", "demo-lib", "1.1")
        res = fetch(H, m.port, path, headers={"If-None-Match": first.header("etag")})
        self.assertEqual(res.status, 200)
        self.assertNotEqual(res.header("etag"), first.header("etag"))
        self.assertIn(b"<release>1.1</release>", res.body)
        res = fetch(H, m.port, path, headers={"If-Modified-Since": first.header("last-modified")})
        self.assertEqual(res.status, 200)

    def test_system_repo_with_computed_checksums_404s_and_put(self):
        m = self.repo()
        version = m.plugin_version("maven-dependency-plugin")
        if version is None:
            self.skipTest("no maven-dependency-plugin in %s" % m.system_repo)
        path = "/org/apache/maven/plugins/maven-dependency-plugin/%s/maven-dependency-plugin-%s.pom" % (
            version, version)
        pom = fetch(H, m.port, path)
        self.assertEqual(pom.status, 200)
        self.assertEqual(fetch(H, m.port, path + ".sha1").body.decode(), hashlib.sha1(pom.body).hexdigest())
        for bad in ("/com/example/nope/1.0/nope-1.0.jar", "/org/apache/maven/plugins/", "/org/../etc/passwd"):
            self.assertEqual(fetch(H, m.port, bad).status, 404, bad)
        self.assertEqual(fetch(H, m.port, "/com/example/x/1.0/x-1.0.jar", method="PUT", body=b"x").status, 405)

    def test_corrupt_keeps_the_length_and_the_checksums(self):
        m = self.repo()
        art = m.deploy("com.example", "demo-lib", "1.0")
        good = fetch(H, m.port, art.jar_path).body
        m.corrupt(art.jar_path)
        bad = fetch(H, m.port, art.jar_path).body
        self.assertEqual(len(bad), len(good))
        self.assertNotEqual(bad, good)
        self.assertEqual(fetch(H, m.port, art.jar_path + ".sha1").body.decode(), art.sha1)
        m.uncorrupt(art.jar_path)
        self.assertEqual(fetch(H, m.port, art.jar_path).body, good)


class MavenClientTests(TmpCase):
    @classmethod
    def setUpClass(cls):
        clients.ensure_maven()

    def test_mvn_gets_a_release_a_snapshot_and_release_with_plugins_from_the_repo(self):
        m = self.start(MavenRepo(os.path.join(self.tmp, "maven")))
        rel = m.deploy("com.example", "demo-lib", "1.0")
        snap = m.deploy("com.example", "demo-lib", "1.1-SNAPSHOT")
        local = os.path.join(self.tmp, "m2")
        for coords, art in (("com.example:demo-lib:1.0", rel), ("com.example:demo-lib:1.1-SNAPSHOT", snap)):
            res = clients.mvn_get(m.repo_url, coords, local)
            self.assertTrue(res.ok, str(res))
            with open(res.installed[coords], "rb") as f:
                self.assertEqual(hashlib.sha1(f.read()).hexdigest(), art.sha1, coords)
            self.assertNotIn("Checksum validation failed", res.stdout)
        self.assertGreater(m.requests(), 200)       # the plugin and its dependencies came from here
        self.assertEqual(m.request_log()[-1].headers.get("Cache-control"), "no-cache")   # Maven 3.8 sends it
        self.assertEqual(m.requests(m.metadata_path("com.example", "demo-lib", "1.1-SNAPSHOT")), 1)


if __name__ == "__main__":
    unittest.main()
