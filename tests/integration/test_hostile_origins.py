"""C8 on the origin side: an origin whose response is malformed, private,
slow to say what it is, or larger than an object's header block. Through
the real edge (HAProxy + the agent) and the test origin (tests/lib/origin.py):

- a response whose length is ambiguous (Content-Length with
  Transfer-Encoding, two different Content-Lengths, one that is not a
  number) or with a header line that is not a field is refused: 502,
  nothing stored, counted and logged; identical
  duplicate Content-Lengths are one length (RFC 9112 section 6.3);
- a response the origin marks as not shareable (Cache-Control private or
  no-store, Vary: *, and on the generic route Set-Cookie) reaches its
  client but is never stored; an ecosystem artifact with a Set-Cookie is
  stored without it; Set-Cookie never reaches a client;
- a head that trickles in is cut at origin_header_timeout: 502, counted;
- origin headers too large for an object's header block never make every
  request a refetch: what fits is stored, once.

docs/failure-contract.md ("Hostile origins") is the table these prove.
"""

import concurrent.futures
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

from edge import Edge  # noqa: E402
from httpclient import wait_until  # noqa: E402
from origin import body_for  # noqa: E402

NPM_TGZ = "/npm/leftpad/-/leftpad-1.0.0.tgz"


class EdgeCase(unittest.TestCase):
    settings = {}

    @classmethod
    def setUpClass(cls):
        cls.edge = Edge(settings=cls.settings, origin_routes=("generic", "npm"))
        cls.edge.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.edge.__exit__(None, None, None)

    def setUp(self):
        self.edge.origin.reset()

    def metric(self, name):
        return self.edge.metric(name)

    def assert_nothing_stored(self, path):
        self.edge.wait_idle()
        self.assertEqual(self.edge.temp_files(), [])
        keys = [open(f, "rb").read(4096) for f in self.edge.object_files()]
        self.assertFalse(any(path.encode() in k for k in keys), "%s was stored" % path)

    def wait_log(self, text):
        wait_until(lambda: text in self.edge.agent_log(), 5, message="no log line with %r" % text)


class AmbiguousLength(EdgeCase):
    """Responses whose body length two honest parsers could read two ways."""

    def refused(self, path, reason, log_text, **knobs):
        self.edge.origin.set_object(path, **knobs)
        series = 'sluice_origin_bad_responses_total{route="generic",reason="%s"}' % reason
        before = self.metric(series)
        for _ in range(2):
            r = self.edge.get("/generic" + path, timeout=10)
            self.assertEqual(r.status, 502, (path, r.status, r.body[:200]))
            self.assertIn(b"origin unavailable", r.body)
            self.assertIn("detail=origin-error", r.header("Cache-Status", ""))
        self.assertEqual(self.edge.origin.requests(path), 2)   # nothing stored
        self.assertEqual(self.metric(series), before + 2)
        self.wait_log(log_text)
        self.assert_nothing_stored(path)

    def test_content_length_with_transfer_encoding_is_refused(self):
        self.refused("/clte.bin", "cl-te", "both Content-Length and Transfer-Encoding",
                     size=1000, chunked=True, headers=[["Content-Length", "5"]])

    def test_two_different_content_lengths_are_refused(self):
        self.refused("/cl2.bin", "cl-conflict", "Content-Length values differ",
                     size=5, headers=[["Content-Length", "10"]])

    def test_a_content_length_that_is_not_a_number_is_refused(self):
        self.refused("/clx.bin", "cl-invalid", "invalid Content-Length",
                     size=5, headers=[["Content-Length", "10x"]])

    def test_a_header_line_that_is_not_a_field_is_refused(self):
        # A name with a space: a recipient must not guess where the name
        # ends (RFC 9112 section 5.1); nginx refuses it too.
        self.refused("/badfield.bin", "bad-field", "a header line that is not a field",
                     size=5, headers=[["Bad Name", "x"]])

    def test_identical_duplicate_content_lengths_are_one_length(self):
        path = "/cldup.bin"
        self.edge.origin.set_object(path, size=5, headers=[["Content-Length", "5"]])
        r = self.edge.get("/generic" + path)
        self.assertTrue(r.ok)
        self.assertEqual(r.body, body_for(path, 5))
        self.assertIn("stored", r.header("Cache-Status"))
        self.edge.wait_idle()
        r = self.edge.get("/generic" + path)
        self.assertEqual((r.status, r.body), (200, body_for(path, 5)))
        self.assertEqual(self.edge.origin.requests(path), 1)


class NotShared(EdgeCase):
    """What the origin says one client may keep is never another's."""

    def not_shared(self, path, reason, headers, route="generic"):
        self.edge.origin.set_object(path, size=2000, headers=headers)
        series = 'sluice_origin_not_shared_total{route="%s",reason="%s"}' % (route, reason)
        before = self.metric(series)
        for _ in range(3):
            r = self.edge.get("/" + route + path)
            self.assertTrue(r.ok, (r.status, r.body[:200]))
            self.assertEqual(r.body, body_for(path, 2000))
            self.assertNotIn("stored", r.header("Cache-Status"))
            self.assertIsNone(r.header("Set-Cookie"))
            self.edge.wait_idle()
        self.assertEqual(self.edge.origin.requests(path), 3)
        self.assertEqual(self.metric(series), before + 3)
        self.assert_nothing_stored(path)
        return r

    def test_cache_control_private_is_not_shared(self):
        r = self.not_shared("/private.bin", "private", {"Cache-Control": "private, max-age=60"})
        self.assertEqual(r.header("Cache-Control"), "private, max-age=60")

    def test_cache_control_no_store_is_not_shared(self):
        r = self.not_shared("/nostore.bin", "no-store", {"Cache-Control": "max-age=0, No-Store"})
        self.assertEqual(r.header("Cache-Control"), "max-age=0, No-Store")

    def test_vary_star_is_not_shared(self):
        self.not_shared("/varystar.bin", "vary-star", {"Vary": "Accept, *"})

    def test_set_cookie_is_not_shared_on_the_generic_route(self):
        self.not_shared("/cookie.bin", "set-cookie", {"Set-Cookie": "session=s3cret; Path=/"})

    def test_requests_waiting_on_a_private_answer_fetch_their_own(self):
        # Four at once: one leads, three join its fill before its head (the
        # origin takes 0.5 s). The head says private: the three fetch their
        # own, as a shared cache's waiting requests do.
        path = "/private-wait.bin"
        self.edge.origin.set_object(path, size=2000, delay_ms=500, headers={"Cache-Control": "private"})
        before = self.metric('sluice_followers_total{route="generic"}')
        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            results = list(ex.map(lambda _: self.edge.get("/generic" + path, timeout=10), range(4)))
        for r in results:
            self.assertEqual((r.status, r.body), (200, body_for(path, 2000)))
            self.assertNotIn("stored", r.header("Cache-Status"))
            self.assertNotIn("collapsed", r.header("Cache-Status"))
        self.assertEqual(self.metric('sluice_followers_total{route="generic"}'), before + 3)
        self.assertEqual(self.edge.origin.requests(path), 4)
        self.assert_nothing_stored(path)
        # after its head, nobody joins it either
        self.edge.origin.set_object(path, size=2_000_000, rate=4_000_000, headers={"Cache-Control": "no-store"})
        with concurrent.futures.ThreadPoolExecutor(2) as ex:
            first = ex.submit(self.edge.get, "/generic" + path, timeout=10)
            wait_until(lambda: self.edge.origin.stats()["paths"].get(path, {}).get("bytes_sent", 0) > 0, 5,
                       message="the first response did not start")
            second = ex.submit(self.edge.get, "/generic" + path, timeout=10)
            for r in (first.result(), second.result()):
                self.assertEqual((r.status, r.body), (200, body_for(path, 2_000_000)))
        self.assertEqual(self.edge.origin.requests(path), 6)

    def test_no_store_is_honoured_on_an_ecosystem_artifact(self):
        self.not_shared("/leftpad/-/leftpad-2.0.0.tgz", "no-store", {"Cache-Control": "no-store"}, route="npm")

    def test_an_artifact_with_a_set_cookie_is_stored_without_it(self):
        path = NPM_TGZ[len("/npm"):]
        self.edge.origin.set_object(path, size=3000, headers={"Set-Cookie": "__cf_bm=abc; Path=/"})
        before = self.metric('sluice_origin_cookies_dropped_total{route="npm"}')
        for _ in range(3):
            r = self.edge.get(NPM_TGZ)
            self.assertEqual((r.status, r.body), (200, body_for(path, 3000)))
            self.assertIsNone(r.header("Set-Cookie"))
            self.edge.wait_idle()
        self.assertEqual(self.edge.origin.requests(path), 1)
        self.assertEqual(self.metric('sluice_origin_cookies_dropped_total{route="npm"}'), before + 1)
        for f in self.edge.object_files():
            self.assertNotIn(b"__cf_bm", open(f, "rb").read(4096))


class SlowHead(EdgeCase):
    settings = {"origin_header_timeout": "2s", "metadata_ttl": "1s", "metadata_stale_while_revalidate": "0",
                "metadata_stale_if_error": "1h"}

    def test_a_head_trickled_one_byte_at_a_time_is_cut_at_the_deadline(self):
        path = "/trickle.bin"
        self.edge.origin.set_object(path, size=100, header_byte_ms=200)   # ~40 s of head
        before = self.metric('sluice_origin_errors_total{kind="header_timeout"}')
        t0 = time.monotonic()
        r = self.edge.get("/generic" + path, timeout=15)
        took = time.monotonic() - t0
        self.assertEqual(r.status, 502, r.error)
        self.assertIn(b"header", r.body)
        self.assertGreater(took, 1.5)
        self.assertLess(took, 6)
        self.assertEqual(self.metric('sluice_origin_errors_total{kind="header_timeout"}'), before + 1)
        wait_until(lambda: self.edge.origin.stats()["aborted_by_client"] == 1, 5,
                   message="the origin's trickling response was not closed")
        self.assert_nothing_stored(path)

    def test_a_registry_trickling_its_head_gets_the_stale_packument_served(self):
        name = "trickle-pkg"
        doc = json.dumps({"name": name, "dist-tags": {"latest": "1.0.0"}, "versions": {"1.0.0": {
            "name": name, "version": "1.0.0", "dist": {
                "tarball": "https://registry.npmjs.org/%s/-/%s-1.0.0.tgz" % (name, name), "shasum": "0" * 40}}}})
        knobs = {"body": doc.encode(), "headers": {"Content-Type": "application/json"}}
        self.edge.origin.set_object("/" + name, **knobs)
        first = self.edge.get("/npm/" + name)
        self.assertTrue(first.ok)
        self.edge.wait_idle()
        self.edge.origin.set_object("/" + name, header_byte_ms=200, **knobs)
        before = self.metric('sluice_origin_errors_total{kind="header_timeout"}')

        def stale_answer():
            r = self.edge.get("/npm/" + name, timeout=15)
            return "stale-if-error" in (r.header("Cache-Status") or "") and r
        r = wait_until(stale_answer, 20, interval=0.2, message="no stale-if-error answer")
        self.assertEqual((r.status, r.body), (200, first.body))
        self.assertEqual(r.header("Cache-Status"), "sluice; hit; detail=stale-if-error")
        self.assertEqual(self.metric('sluice_origin_errors_total{kind="header_timeout"}'), before + 1)

    def test_a_slow_but_whole_head_within_the_deadline_is_served(self):
        path = "/slowish.bin"
        self.edge.origin.set_object(path, size=100, header_byte_ms=2)   # ~0.4 s
        r = self.edge.get("/generic" + path, timeout=15)
        self.assertEqual((r.status, r.body), (200, body_for(path, 100)))


class OversizedHeaders(EdgeCase):
    """Headers that do not fit an object's 4 KiB header block."""

    def bounded(self, path, headers, n=5):
        self.edge.origin.set_object(path, size=500, headers=headers)
        for _ in range(n):
            r = self.edge.get("/generic" + path)
            self.assertEqual((r.status, r.body), (200, body_for(path, 500)))
            self.edge.wait_idle()
        self.assertEqual(self.edge.origin.requests(path), 1)
        self.assertIn("hit", r.header("Cache-Status"))
        return r

    def test_five_kilobyte_headers_the_object_keeps_what_fits(self):
        big = "x" * 1000
        before = self.metric('sluice_origin_headers_dropped_total{route="generic"}')
        r = self.bounded("/fat.bin", [["Content-Type", "application/x-" + big[:990]],
                                      ["Content-Disposition", "attachment; filename=" + big[:980]],
                                      ["Content-Language", "en-" + big[:996]],
                                      ["Content-Encoding", "identity"],
                                      ["ETag", '"' + big[:998] + '"'],
                                      ["X-Padding", big]])
        self.assertEqual(r.header("Content-Encoding"), "identity")   # what the body means is kept
        self.assertGreater(self.metric('sluice_origin_headers_dropped_total{route="generic"}'), before)
        self.wait_log("do not fit")

    def test_one_five_thousand_byte_value(self):
        r = self.bounded("/long.bin", {"Content-Type": "text/plain; x=" + "y" * 5000})
        self.assertNotIn("yyyy", r.header("Content-Type", ""))

    def test_many_headers(self):
        self.bounded("/many.bin", [["X-H%d" % i, "v" * 100] for i in range(60)]
                     + [["Content-Language", "en"]])


if __name__ == "__main__":
    unittest.main()
