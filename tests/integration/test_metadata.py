"""Metadata freshness through the real edge (agent/src/serve/meta.c):
TTL, revalidation with the origin's validators, stale-while-revalidate (one
refresh per key), stale-if-error, negative caching, representations by
Accept, links rewritten to public_url, and those rewrites kept in memory
(agent/src/serve/rwcache.c) and never served for another stored copy, after
a purge or for another public_url. The npm route is pointed at the
test origin, which serves hand-made packuments; the real npm, pnpm and pip
clients are in tests/e2e.
"""

import base64
import hashlib
import json
import os
import sys
import threading
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

from edge import Edge  # noqa: E402
from httpclient import wait_until  # noqa: E402

CORGI = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"


def packument(name, versions, tarball_base="https://registry.npmjs.org"):
    return json.dumps({
        "name": name, "dist-tags": {"latest": versions[-1]},
        "versions": {v: {"name": name, "version": v,
                         "dist": {"tarball": "%s/%s/-/%s-%s.tgz" % (tarball_base, name, name.split("/")[-1], v),
                                  "shasum": "0" * 40}} for v in versions},
    }, indent=1).encode()


class MetadataTest(unittest.TestCase):
    settings = {}

    @classmethod
    def setUpClass(cls):
        settings = {"public_url": "https://cache.example:8443"}
        settings.update(cls.settings)
        cls.edge = Edge(settings=settings, origin_routes=("generic", "npm"))
        cls.edge.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.edge.__exit__(None, None, None)

    def name(self):
        return self.id().rsplit(".", 1)[-1].replace("_", "-")[:60]

    def publish(self, name, versions, **knobs):
        self.edge.origin.set_object("/" + name, body=packument(name, versions),
                                    headers={"Content-Type": "application/json"}, **knobs)

    def get(self, name, **kw):
        return self.edge.get("/npm/" + name, **kw)

    def headers_seen(self, name):
        """The origin's requests for `name`, each as {lower-case name: value}."""
        return [{k.lower(): v for k, v in e["headers"]} for e in self.edge.origin.request_log("/" + name)]

    def conditional_requests(self, name):
        return [h for h in self.headers_seen(name) if "if-none-match" in h or "if-modified-since" in h]

    def wait_stale(self, name, timeout=10):
        """Until the copy is past its TTL (the next request revalidates)."""
        def stale():
            r = self.get(name)
            return "fwd=stale" in (r.header("Cache-Status") or "") and r
        return wait_until(stale, timeout, interval=0.2, message="the copy never went stale")


class Fresh(MetadataTest):
    settings = {"metadata_ttl": "1h"}

    def test_packument_is_stored_and_served_fresh_with_links_rewritten(self):
        n = self.name()
        self.publish(n, ["1.0.0", "1.1.0"])
        first = self.get(n)
        self.assertEqual(first.status, 200)
        self.assertEqual(first.header("Cache-Status"), "sluice; fwd=uri-miss; stored")
        doc = json.loads(first.body)
        self.assertEqual(doc["versions"]["1.1.0"]["dist"]["tarball"],
                         "https://cache.example:8443/npm/%s/-/%s-1.1.0.tgz" % (n, n))
        self.edge.wait_idle()
        second = self.get(n)
        self.assertEqual(second.header("Cache-Status"), "sluice; hit")
        self.assertEqual(second.body, first.body)
        self.assertEqual(second.header("Vary"), "Accept")
        self.assertIsNone(second.header("Content-Length"))   # rewritten: chunked
        self.assertNotEqual(second.header("ETag"), self.edge.origin.expected_etag("/" + n))
        self.assertEqual(self.edge.origin.requests("/" + n), 1)
        # The client's own validator for this representation gets a 304.
        again = self.get(n, headers={"If-None-Match": second.header("ETag")})
        self.assertEqual(again.status, 304)

    def test_only_the_tarball_urls_change(self):
        n = self.name()
        self.publish(n, ["2.0.0"])
        raw = packument(n, ["2.0.0"])
        body = self.get(n).body
        self.assertEqual(body, raw.replace(b"https://registry.npmjs.org/", b"https://cache.example:8443/npm/"))

    def test_abbreviated_and_full_are_two_objects(self):
        n = self.name()
        self.publish(n, ["1.0.0"])
        full = self.get(n)
        corgi = self.get(n, headers={"Accept": CORGI})
        self.assertEqual(corgi.header("Cache-Status"), "sluice; fwd=uri-miss; stored")
        self.assertEqual(full.header("Vary"), "Accept")
        accepts = [h.get("accept") for h in self.headers_seen(n)]
        self.assertEqual(len(accepts), 2)
        # parsed documents are asked for uncompressed
        self.assertEqual({h.get("accept-encoding") for h in self.headers_seen(n)}, {"identity"})
        self.assertTrue(any(a and "vnd.npm.install-v1+json" in a for a in accepts), accepts)
        self.edge.wait_idle()
        self.assertEqual(self.get(n, headers={"Accept": CORGI}).header("Cache-Status"), "sluice; hit")

    def test_scoped_names_in_both_spellings_are_one_key(self):
        self.edge.origin.set_object("/@demo%2fscoped", body=packument("@demo/scoped", ["1.0.0"]),
                                    headers={"Content-Type": "application/json"})
        a = self.get("@demo%2fscoped")
        self.assertEqual(a.status, 200, a.body[:200])
        self.edge.wait_idle()
        b = self.get("@demo/scoped")
        self.assertEqual(b.header("Cache-Status"), "sluice; hit")
        self.assertEqual(self.edge.origin.requests("/@demo%2fscoped"), 1)

    def test_tarballs_are_immutable_and_other_paths_pass(self):
        n = self.name()
        t = "/%s/-/%s-1.0.0.tgz" % (n, n)
        self.edge.origin.set_object(t, size=5000)
        self.assertEqual(self.get(t[1:]).header("Cache-Status"), "sluice; fwd=uri-miss; stored")
        self.edge.wait_idle()
        hit = self.get(t[1:], headers={"Cache-Control": "no-cache"})
        self.assertEqual(hit.header("Cache-Status"), "sluice; hit")
        search = self.get("-/v1/search?text=x")
        self.assertEqual(search.header("Cache-Status"), "sluice; fwd=bypass")

    def test_a_document_that_does_not_parse_is_never_stored(self):
        # A 200 that is no packument (a captive portal, a broken mirror):
        # the client sees an aborted transfer, never a cut document passed
        # off as whole, and the next request goes to the origin again.
        n = self.name()
        self.edge.origin.set_object("/" + n, body=b"<html>maintenance</html>" * 100,
                                    headers={"Content-Type": "application/json"})
        before = self.edge.metric('sluice_cache_write_failures_total{reason="invalid"}')
        for _ in range(2):
            r = self.get(n)
            self.assertEqual(r.status, 200)
            self.assertFalse(r.complete)
            self.edge.wait_idle()
        self.assertEqual(self.edge.origin.requests("/" + n), 2)
        self.assertEqual(self.edge.metric('sluice_cache_write_failures_total{reason="invalid"}') - before, 2)
        # Once the origin is right again, it is stored as usual.
        self.publish(n, ["1.0.0"])
        self.assertTrue(self.get(n).complete)
        self.edge.wait_idle()
        self.assertEqual(self.get(n).header("Cache-Status"), "sluice; hit")

    def test_artifact_404_is_never_stored(self):
        n = self.name()
        t = "%s/-/%s-9.9.9.tgz" % (n, n)
        self.edge.origin.set_object("/" + t, status=404)
        for _ in range(2):
            self.assertEqual(self.get(t).status, 404)
            self.edge.wait_idle()
        self.assertEqual(self.edge.origin.requests("/" + t), 2)


class Revalidation(MetadataTest):
    settings = {"metadata_ttl": "1s", "metadata_stale_while_revalidate": "0", "metadata_stale_if_error": "1h"}

    def test_past_its_ttl_a_copy_is_revalidated_and_a_304_keeps_it(self):
        n = self.name()
        self.publish(n, ["1.0.0"])
        first = self.get(n)
        self.edge.wait_idle()
        r = self.wait_stale(n)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Cache-Status"), "sluice; fwd=stale; fwd-status=304")
        self.assertEqual(r.body, first.body)
        self.assertGreaterEqual(len(self.conditional_requests(n)), 1)
        self.assertEqual(self.get(n).header("Cache-Status"), "sluice; hit")   # fresh again

    def test_a_changed_document_is_seen_after_its_ttl(self):
        n = self.name()
        self.publish(n, ["1.0.0"])
        self.get(n)
        self.edge.wait_idle()
        self.publish(n, ["1.0.0", "2.0.0"])
        r = self.wait_stale(n)
        self.assertEqual(r.header("Cache-Status"), "sluice; fwd=stale; fwd-status=200; stored")
        self.assertIn("2.0.0", json.loads(r.body)["versions"])
        self.edge.wait_idle()
        self.assertIn("2.0.0", json.loads(self.get(n).body)["versions"])

    def test_origin_errors_serve_the_stale_copy(self):
        n = self.name()
        self.publish(n, ["1.0.0"])
        good = self.get(n).body
        self.edge.wait_idle()
        before = self.edge.metric('sluice_stale_if_error_total{route="npm"}')
        self.publish(n, ["1.0.0"], status=502)
        r = wait_until(lambda: (lambda r: "stale-if-error" in (r.header("Cache-Status") or "") and r)(self.get(n)),
                       10, interval=0.2, message="no stale-if-error answer")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, good)
        self.assertEqual(r.header("Cache-Status"), "sluice; hit; detail=stale-if-error")
        self.assertGreater(self.edge.metric('sluice_stale_if_error_total{route="npm"}'), before)


class FailingOriginIsHeldOff(MetadataTest):
    settings = {"metadata_ttl": "1s", "metadata_stale_while_revalidate": "0", "metadata_stale_if_error": "1h",
                "metadata_error_hold": "1h"}

    def test_after_a_failure_stale_copies_are_served_without_asking(self):
        # A registry that times out would otherwise make every client wait
        # for the timeout before getting the stale copy.
        n, m = self.name(), self.name() + "-other"
        for name in (n, m):
            self.publish(name, ["1.0.0"])
            self.get(name)
        self.edge.wait_idle()
        self.publish(n, ["1.0.0"], status=503)
        self.publish(m, ["1.0.0"], status=503)
        wait_until(lambda: "stale-if-error" in (self.get(n).header("Cache-Status") or ""), 10, interval=0.2,
                   message="no stale-if-error answer")
        asked = len(self.edge.origin.request_log("/" + n)) + len(self.edge.origin.request_log("/" + m))
        for name in (n, m, n, m, n):
            r = self.get(name)
            self.assertEqual((r.status, r.header("Cache-Status")), (200, "sluice; hit; detail=stale-if-error"))
        self.assertEqual(len(self.edge.origin.request_log("/" + n)) + len(self.edge.origin.request_log("/" + m)),
                         asked, "the failing origin was asked again within metadata_error_hold")


class StaleIfErrorIsBounded(MetadataTest):
    settings = {"metadata_ttl": "1s", "metadata_stale_while_revalidate": "0", "metadata_stale_if_error": "2s"}

    def test_past_stale_if_error_the_origin_error_reaches_the_client(self):
        n = self.name()
        self.publish(n, ["1.0.0"])
        self.get(n)
        self.edge.wait_idle()
        self.publish(n, ["1.0.0"], status=503)
        seen = []
        def answer():
            r = self.get(n)
            seen.append((r.status, r.header("Cache-Status")))
            return r.status != 200 and r
        r = wait_until(answer, 15, interval=0.2, message="the stale copy was served forever")
        self.assertIn((200, "sluice; hit; detail=stale-if-error"), seen)
        self.assertEqual(r.status, 502)
        self.assertEqual(r.header("Cache-Status"), "sluice; fwd=stale; detail=origin-error")
        self.assertIn(b"503", r.body)


class StaleWhileRevalidate(MetadataTest):
    settings = {"metadata_ttl": "1s", "metadata_stale_while_revalidate": "1h"}

    def test_fifty_requests_for_a_stale_packument_make_one_origin_request(self):
        n = self.name()
        # The origin answers slowly enough that the revalidation running
        # when the 50 arrive outlasts them all, however slow the machine.
        self.publish(n, ["1.0.0"], delay_ms=2000)
        self.get(n)
        self.edge.wait_idle()
        wait_until(lambda: "stale-while-revalidate" in (self.get(n).header("Cache-Status") or ""), 10,
                   interval=0.2, message="never stale")
        self.edge.wait_idle()
        wait_until(lambda: "stale-while-revalidate" in (self.get(n).header("Cache-Status") or ""), 10,
                   interval=0.2, message="never stale again")
        seen = len(self.edge.origin.request_log("/" + n))
        results = []
        def one():
            results.append(self.get(n))
        threads = [threading.Thread(target=one) for _ in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(len(results), 50)
        self.assertTrue(all(r.status == 200 for r in results))
        self.edge.wait_idle()
        # At most one revalidation for the 50 (the one just before them may still run).
        self.assertLessEqual(len(self.edge.origin.request_log("/" + n)) - seen, 1)


class StaleWhileRevalidateFailing(MetadataTest):
    settings = {"metadata_ttl": "1s", "metadata_stale_while_revalidate": "1h", "metadata_error_hold": "0"}

    def test_a_background_refresh_answered_503_keeps_the_copy_and_the_agent(self):
        # Found by the soak: the refresh has no reader, so the 5xx dropped
        # the fill's last reference before its readers were woken.
        n = self.name()
        self.publish(n, ["1.0.0"])
        first = self.get(n)
        self.publish(n, ["1.0.0"], status=503)
        wait_until(lambda: "stale-while-revalidate" in (self.get(n).header("Cache-Status") or ""), 10,
                   interval=0.2, message="never stale")
        wait_until(lambda: self.edge.origin.requests("/" + n) >= 2, 10, message="no background refresh")
        self.edge.wait_idle()
        self.assertIsNone(self.edge.agent.poll(), self.edge.agent_log()[-4000:])
        again = self.get(n)
        self.assertEqual((again.status, again.body), (200, first.body))
        self.assertIn("stale", again.header("Cache-Status"))


class Negative(MetadataTest):
    settings = {"metadata_negative_ttl": "1h"}

    def test_a_metadata_404_is_remembered(self):
        n = self.name()
        self.edge.origin.set_object("/" + n, status=404, body=b'{"error":"Not found"}')
        self.assertEqual(self.get(n).status, 404)
        self.edge.wait_idle()
        again = self.get(n)
        self.assertEqual(again.status, 404)
        self.assertEqual(again.header("Cache-Status"), "sluice; hit")
        self.assertEqual(self.edge.origin.requests("/" + n), 1)


def rwc(edge, what):
    return edge.metric("sluice_rewrite_cache_" + what)


class RewriteCache(MetadataTest):
    """Rewritten hits sent from memory (serve/rwcache.h)."""
    settings = {"metadata_ttl": "1h"}
    VERSIONS = ["1.%d.0" % i for i in range(300)]   # about 60 KiB: several socket writes

    def hits_from_memory(self, n, accept=None):
        """Three hits after the storing miss: the first rewrites and keeps
        its output, the others are sent from memory. Returns (miss, hits)."""
        h = {"Accept": accept} if accept else None
        first = self.get(n, headers=h)
        self.assertEqual(first.header("Cache-Status"), "sluice; fwd=uri-miss; stored")
        self.edge.wait_idle()
        before = (rwc(self.edge, "hits_total"), rwc(self.edge, "insertions_total"))
        hits = [self.get(n, headers=h) for _ in range(3)]
        self.assertEqual(rwc(self.edge, "insertions_total") - before[1], 1)
        self.assertEqual(rwc(self.edge, "hits_total") - before[0], 2)
        return first, hits

    def test_repeated_hits_are_the_first_rewrite_byte_for_byte(self):
        n = self.name()
        self.publish(n, self.VERSIONS)
        for accept in (None, CORGI):
            first, hits = self.hits_from_memory(n, accept)
            self.assertIn(b"https://cache.example:8443/npm/", first.body)
            for r in hits:
                self.assertEqual((r.status, r.header("Cache-Status")), (200, "sluice; hit"))
                self.assertTrue(r.complete)
                self.assertEqual(r.body, first.body)
                self.assertEqual(r.header("ETag"), first.header("ETag"))
                self.assertEqual(r.header("Vary"), "Accept")
                self.assertIsNone(r.header("Accept-Ranges"))
            self.assertIsNone(hits[0].header("Content-Length"))   # rewritten as it goes: chunked
            self.assertEqual(hits[1].header("Content-Length"), str(len(first.body)))   # from memory
        self.assertEqual(self.edge.origin.requests("/" + n), 2)   # one per representation
        self.assertGreaterEqual(rwc(self.edge, "entries"), 2)
        self.assertGreaterEqual(rwc(self.edge, "bytes"), 2 * len(first.body))

    def test_conditional_head_and_range_answers_are_unchanged(self):
        n = self.name()
        self.publish(n, self.VERSIONS[:50])
        first, hits = self.hits_from_memory(n)
        etag = first.header("ETag")
        before = rwc(self.edge, "hits_total")
        again = self.get(n, headers={"If-None-Match": etag})
        self.assertEqual((again.status, again.body, again.header("ETag")), (304, b"", etag))
        # the stored copy's own ETag names another representation
        stored = self.get(n, headers={"If-None-Match": self.edge.origin.expected_etag("/" + n)})
        self.assertEqual((stored.status, stored.body), (200, first.body))
        head = self.get(n, method="HEAD")
        self.assertEqual((head.status, head.body, head.header("ETag")), (200, b"", etag))
        ranged = self.get(n, headers={"Range": "bytes=0-9"})   # a rewritten body takes no Range
        self.assertEqual((ranged.status, ranged.body), (200, first.body))
        self.assertEqual(rwc(self.edge, "hits_total") - before, 4)

    def test_a_purge_drops_the_kept_rewrite(self):
        n = self.name()
        self.publish(n, self.VERSIONS[:20])
        first, _ = self.hits_from_memory(n)
        entries = rwc(self.edge, "entries")
        req = urllib.request.Request("http://127.0.0.1:%d/objects/npm/%s" % (self.edge.ports["admin"], n),
                                     method="DELETE")
        with urllib.request.urlopen(req, timeout=10) as r:
            self.assertEqual(json.loads(r.read()), {"purged": 1})
        self.assertEqual(rwc(self.edge, "entries"), entries - 1)
        self.publish(n, self.VERSIONS[:21])
        r = self.get(n)
        self.assertEqual(r.header("Cache-Status"), "sluice; fwd=uri-miss; stored")
        self.assertIn("1.20.0", json.loads(r.body)["versions"])
        self.edge.wait_idle()
        for _ in range(3):
            self.assertIn("1.20.0", json.loads(self.get(n).body)["versions"])


class RewriteCacheRevalidation(MetadataTest):
    settings = {"metadata_ttl": "1s", "metadata_stale_while_revalidate": "0", "metadata_stale_if_error": "1h"}

    def kept(self, n):
        """Hit until a rewrite of the stored copy is kept and served."""
        before = rwc(self.edge, "hits_total")
        wait_until(lambda: self.get(n).header("Cache-Status") == "sluice; hit" and
                   rwc(self.edge, "hits_total") > before, 10, interval=0.05,
                   message="no hit from a kept rewrite")

    def test_a_304_keeps_the_rewrite_and_a_new_version_never_gets_the_old_one(self):
        n = self.name()
        self.publish(n, ["1.0.0"])
        first = self.get(n)
        self.edge.wait_idle()
        self.kept(n)
        before = rwc(self.edge, "hits_total")
        r = self.wait_stale(n)   # revalidated: 304, the same copy
        self.assertEqual(r.header("Cache-Status"), "sluice; fwd=stale; fwd-status=304")
        self.assertEqual(r.body, first.body)
        self.assertGreater(rwc(self.edge, "hits_total"), before)   # still the kept rewrite
        self.publish(n, ["1.0.0", "2.0.0"])
        r = self.wait_stale(n)
        self.assertEqual(r.header("Cache-Status"), "sluice; fwd=stale; fwd-status=200; stored")
        self.assertIn("2.0.0", json.loads(r.body)["versions"])
        self.edge.wait_idle()
        new = self.get(n)
        self.assertIn("2.0.0", json.loads(new.body)["versions"])
        self.assertNotEqual(new.header("ETag"), first.header("ETag"))
        for _ in range(3):
            again = self.get(n)
            if again.header("Cache-Status") != "sluice; hit":
                break   # stale again on a slow machine: fine, it is the new copy all the same
            self.assertEqual(again.body, new.body)


class RewriteCacheReload(MetadataTest):
    settings = {"metadata_ttl": "1h"}

    def test_a_reload_with_another_public_url_rewrites_anew(self):
        n = self.name()
        self.publish(n, ["1.0.0"])
        self.get(n)
        self.edge.wait_idle()
        for _ in range(3):
            old = self.get(n)
        self.assertGreaterEqual(rwc(self.edge, "hits_total"), 1)
        self.assertIn(b"https://cache.example:8443/npm/", old.body)
        self.edge.settings["public_url"] = "https://other.example"
        self.edge.write_config()
        self.edge.reload_agent()
        self.assertEqual(rwc(self.edge, "entries"), 0)
        for _ in range(3):
            r = self.get(n)
            self.assertEqual(r.header("Cache-Status"), "sluice; hit")
            self.assertNotIn(b"cache.example", r.body)
            self.assertEqual(json.loads(r.body)["versions"]["1.0.0"]["dist"]["tarball"],
                             "https://other.example/npm/%s/-/%s-1.0.0.tgz" % (n, n))
            self.assertNotEqual(r.header("ETag"), old.header("ETag"))


class RewriteCacheNotes(MetadataTest):
    """A hit from memory notes the tarball digests its rewrite noted."""
    settings = {"metadata_ttl": "1h", "integrity_notes": "2"}   # one set of two: easily pushed out

    def publish_with_integrity(self, name, versions):
        doc = {"name": name, "dist-tags": {"latest": versions[-1]}, "versions": {}}
        for v in versions:
            tgz = ("%s %s tarball" % (name, v)).encode() * 50
            path = "/%s/-/%s-%s.tgz" % (name, name, v)
            self.edge.origin.set_object(path, body=tgz)
            sri = "sha512-" + base64.b64encode(hashlib.sha512(tgz).digest()).decode()
            doc["versions"][v] = {"name": name, "version": v,
                                  "dist": {"tarball": "https://registry.npmjs.org" + path, "integrity": sri}}
        self.edge.origin.set_object("/" + name, body=json.dumps(doc).encode(),
                                    headers={"Content-Type": "application/json"})

    def test_a_hit_from_memory_puts_the_digests_again(self):
        a, b = self.name()[:40] + "-a", self.name()[:40] + "-b"
        self.publish_with_integrity(a, ["1.0.0"])
        self.publish_with_integrity(b, ["1.0.0", "2.0.0"])
        self.get(a)
        self.edge.wait_idle()
        self.get(a)   # rewritten and kept
        self.get(b)   # its two notes push a's out of the table
        self.edge.wait_idle()
        before = rwc(self.edge, "hits_total")
        self.assertEqual(self.get(a).header("Cache-Status"), "sluice; hit")
        self.assertEqual(rwc(self.edge, "hits_total") - before, 1)   # from memory
        verified = self.edge.metric("sluice_integrity_verified_total")
        unknown = self.edge.metric("sluice_integrity_unknown_total")
        r = self.get("%s/-/%s-1.0.0.tgz" % (a, a))
        self.assertEqual(r.status, 200)
        self.edge.wait_idle()
        self.assertEqual(self.edge.metric("sluice_integrity_verified_total") - verified, 1)
        self.assertEqual(self.edge.metric("sluice_integrity_unknown_total") - unknown, 0)


class RewriteCacheOff(MetadataTest):
    settings = {"metadata_ttl": "1h", "rewrite_cache_size": "0"}

    def test_off_every_hit_rewrites(self):
        n = self.name()
        self.publish(n, ["1.0.0"])
        first = self.get(n)
        self.edge.wait_idle()
        for _ in range(3):
            r = self.get(n)
            self.assertEqual((r.header("Cache-Status"), r.body), ("sluice; hit", first.body))
            self.assertIsNone(r.header("Content-Length"))
        self.assertEqual((rwc(self.edge, "entries"), rwc(self.edge, "insertions_total")), (0, 0))


if __name__ == "__main__":
    unittest.main()
