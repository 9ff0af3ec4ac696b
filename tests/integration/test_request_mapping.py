"""One canonical request: the cache key and the origin URL come from the same
canonical form (agent/src/route/canon.h), so a request can never be stored
under one name and fetched from another; anything ambiguous is refused
before it reaches an origin; redirects are followed only where the route's
policy allows (agent/src/origin/redirect.h).

Every test goes through the real HAProxy and agent, against a test origin
whose base path is /base, the way an origin with a path prefix is
configured in production.
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

from edge import Edge  # noqa: E402
from origin import OriginServer, body_for  # noqa: E402

BASE = "/base"


class MappingTest(unittest.TestCase):
    """An edge whose generic origin is http://127.0.0.1:<port>/base, plus a
    second loopback service that nothing may be redirected to unless the
    route lists it."""

    extra_settings = {}

    @classmethod
    def setUpClass(cls):
        cls.other = OriginServer()
        cls.other.start()
        settings = dict(cls.extra_settings)
        for k, v in settings.items():
            settings[k] = v.replace("{other}", "127.0.0.1:%d" % cls.other.port)
        cls.edge = Edge(origin_path=BASE, settings=settings)
        cls.edge.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.edge.__exit__(None, None, None)
        cls.other.stop()

    def name(self, leaf):
        """A path under the route unique to this test."""
        return "/%s/%s" % (self.id().rsplit(".", 1)[-1], leaf)

    def origin_total(self):
        return sum(sum(p["requests"].values()) for p in self.edge.origin.stats()["paths"].values())

    def assert_rejected(self, path, status=400):
        for via in (self.edge.get, self.edge.get_agent):
            r = via(path)
            self.assertEqual(r.status, status, "%s via %s: %s %r" % (path, via.__name__, r.status, r.body))
            self.assertIn("rejected", r.header("Cache-Status") or "", path)
            self.assertIn("no-store", r.header("Cache-Control") or "", path)


class Refused(MappingTest):
    def test_dot_segments_in_any_encoding_never_reach_the_origin(self):
        before_origin, before_objects = self.origin_total(), self.edge.object_files()
        for path in ("/generic/a/../../etc/passwd", "/generic/a/..%2f..%2fsecret", "/generic/%2e%2e/x",
                     "/generic/a/%2E./b", "/generic/a/.%2e", "/generic/a/./b", "/generic/..",
                     "/generic/a/..%5csecret"):
            self.assert_rejected(path)
            # Writes never ask the agent; the edge refuses them too.
            r = self.edge.get(path, method="POST", body=b"x")
            self.assertEqual(r.status, 400, path)
        self.assertEqual(self.origin_total(), before_origin)
        self.assertEqual(self.edge.object_files(), before_objects)

    def test_encoded_separators_nul_bad_escapes_and_overlong_utf8_are_refused(self):
        before_origin = self.origin_total()
        before_rejects = self.edge.metric('sluice_verdicts_total{verdict="reject"}')
        paths = ("/generic/a%2fb", "/generic/a%2Fb", "/generic/a%5Cb", "/generic/a%00b", "/generic/a%zzb",
                 "/generic/a%4", "/generic/%C0%AE%C0%AE/x", "/generic/a%C0%AFb", "/generic/a%ED%A0%80b",
                 "/generic/a%F5%80%80%80b", "/generic/a%E2%82")
        for path in paths:
            self.assert_rejected(path)
        self.assertEqual(self.origin_total(), before_origin)
        # The agent's verdict refused the GETs the edge's own guard let by.
        self.assertGreaterEqual(self.edge.metric('sluice_verdicts_total{verdict="reject"}') - before_rejects,
                                len(paths) - 1)

    def test_a_reason_comes_with_every_refusal(self):
        r = self.edge.get("/generic/a%2fb")
        self.assertIn(b"encoded '/'", r.body)
        r = self.edge.get("/generic/a%zz")
        self.assertIn(b"%XX", r.body)

    def test_empty_path_and_overlong_key(self):
        self.assert_rejected("/generic/", status=404)
        self.assert_rejected("/generic/" + ("a" * 30 + "/") * 80, status=414)

    def test_oversized_targets_are_refused_by_the_verdict(self):
        """Paths of 8200 or 1000 slashes and a query of 8200 bytes: the
        verdict answers reject/414 before any canonical work, counted; the
        agent's HTTP side refuses them too; the origin never sees them."""
        before = self.edge.metrics()
        long_path = "/generic/" + "/" * 8200 + "long.bin"
        deep_path = "/generic/" + "/" * 1000 + "deep.bin"
        long_query = "/generic/q.bin?" + "q" * 8200
        for p in (long_path, deep_path, long_query):
            r = self.edge.get(p)
            self.assertEqual(r.status, 414, p[:30])
            self.assertEqual(r.header("Cache-Status"), "sluice; fwd=bypass; detail=rejected", p[:30])
        self.assert_rejected(deep_path, status=414)
        self.assertEqual(self.edge.get_agent(long_path).status, 414)
        after = self.edge.metrics()
        series = 'sluice_oversized_requests_total{route="generic"}'
        self.assertEqual(after.get(series) - before.get(series), 5)   # 3 verdicts, deep_path twice more
        verdict = 'sluice_verdicts_total{route="generic",verdict="reject"}'
        self.assertEqual(after.get(verdict) - before.get(verdict), 4)
        self.assertEqual(after.get('sluice_verdicts_total{route="generic",verdict="fill"}'),
                         before.get('sluice_verdicts_total{route="generic",verdict="fill"}'))
        for leaf in ("long.bin", "deep.bin", "q.bin"):
            self.assertEqual(self.edge.origin.requests(BASE + "/" + leaf), 0)

    def test_valid_utf8_and_reserved_escapes_are_cached(self):
        p = self.name("caf%C3%A9%3Bv=1.bin")
        r = self.edge.get("/generic" + p)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, body_for(BASE + p))
        self.edge.wait_idle()
        self.assertEqual(self.edge.get("/generic" + p).header("Cache-Status"), "sluice; hit")


class Canonical(MappingTest):
    def test_duplicate_slashes_are_fetched_as_the_path_they_are_keyed_as(self):
        n = self.name("")
        first = self.edge.get("/generic" + n + "x//y")
        self.assertEqual(first.status, 200)
        self.assertEqual(first.body, body_for(BASE + n + "x/y"))
        self.edge.wait_idle()
        second = self.edge.get("/generic" + n + "x/y")
        self.assertEqual(second.header("Cache-Status"), "sluice; hit")
        self.assertEqual(second.body, first.body)
        self.assertEqual(self.edge.origin.requests(BASE + n + "x//y"), 0)
        self.assertEqual(self.edge.origin.requests(BASE + n + "x/y"), 1)

    def test_escaped_letters_are_the_letters(self):
        n = self.name("")
        a = self.edge.get("/generic" + n + "%61bc")
        self.edge.wait_idle()
        b = self.edge.get("/generic" + n + "abc")
        self.assertEqual(a.body, body_for(BASE + n + "abc"))
        self.assertEqual(b.header("Cache-Status"), "sluice; hit")
        self.assertEqual(self.edge.origin.requests(BASE + n + "abc"), 1)

    def test_query_escapes_are_normalised_not_decoded(self):
        n = self.name("q")
        a = self.edge.get("/generic" + n + "?a=%2f&b=%26")
        self.assertEqual(a.body, body_for(BASE + n + "?a=%2F&b=%26"))
        self.edge.wait_idle()
        b = self.edge.get("/generic" + n + "?a=%2F&b=%26")
        self.assertEqual(b.header("Cache-Status"), "sluice; hit")
        c = self.edge.get("/generic" + n + "?a=/&b=&")
        self.assertEqual(c.body, body_for(BASE + n + "?a=/&b=&"))

    def test_absolute_form_target_is_served_like_origin_form(self):
        n = self.name("abs.bin")
        target = "http://127.0.0.1:%d/generic%s" % (self.edge.ports["listen"], n)
        first = self.edge.get(target)
        self.assertEqual(first.status, 200, first.body[:200])
        self.assertEqual(first.body, body_for(BASE + n))
        self.edge.wait_idle()
        second = self.edge.get(target)
        self.assertEqual(second.header("Cache-Status"), "sluice; hit")
        self.assertEqual(self.edge.get_agent(target).status, 200)


class Redirects(MappingTest):
    def redirect(self, path, location, status=302):
        self.edge.origin.set_object(BASE + path, status=status, headers={"Location": location})

    def test_redirect_to_another_loopback_service_is_refused(self):
        p = self.name("r.bin")
        self.redirect(p, "http://127.0.0.1:%d/secret" % self.other.port)
        before = self.edge.metric('sluice_origin_redirects_total{outcome="host"}')
        for _ in range(2):   # refused every time: nothing was stored
            r = self.edge.get("/generic" + p)
            self.assertEqual(r.status, 502)
            self.assertEqual(r.header("Cache-Status"), "sluice; fwd=uri-miss; detail=redirect-refused")
            self.assertIn(b"not in origin_generic_redirect_hosts", r.body)
            self.edge.wait_idle()
        self.assertEqual(self.other.requests("/secret"), 0)
        self.assertEqual(self.edge.metric('sluice_origin_redirects_total{outcome="host"}') - before, 2)
        self.assertEqual(self.edge.temp_files(), [])

    def test_redirect_within_the_origin_is_followed_and_stored_under_the_first_key(self):
        p, real = self.name("moved.bin"), self.name("real.bin")
        self.redirect(p, BASE + real)   # relative: same origin
        first = self.edge.get("/generic" + p)
        self.assertEqual(first.status, 200)
        self.assertEqual(first.body, body_for(BASE + real))
        self.edge.wait_idle()
        second = self.edge.get("/generic" + p)
        self.assertEqual(second.header("Cache-Status"), "sluice; hit")
        self.assertEqual(second.body, first.body)
        self.assertEqual(self.edge.origin.requests(BASE + p), 1)
        self.assertEqual(self.edge.origin.requests(BASE + real), 1)

    def test_at_most_five_redirects(self):
        chain = [self.name("hop%d" % i) for i in range(7)]
        for a, b in zip(chain, chain[1:]):
            self.redirect(a, "http://127.0.0.1:%d%s%s" % (self.edge.origin.port, BASE, b), status=301)
        ok = self.edge.get("/generic" + chain[1])       # 5 hops to chain[6]
        self.assertEqual(ok.status, 200)
        self.assertEqual(ok.body, body_for(BASE + chain[6]))
        refused = self.edge.get("/generic" + chain[0])  # 6 hops
        self.assertEqual(refused.status, 502)
        self.assertIn(b"more than 5 redirects", refused.body)


class ListedRedirectHosts(MappingTest):
    extra_settings = {"origin_generic_redirect_hosts": "cdn.example, {other}"}

    def test_redirect_to_a_listed_host_is_followed(self):
        p = self.name("cdn.bin")
        self.edge.origin.set_object(BASE + p, status=307,
                                    headers={"Location": "http://127.0.0.1:%d/files/x.bin" % self.other.port})
        r = self.edge.get("/generic" + p)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, body_for("/files/x.bin"))
        self.edge.wait_idle()
        self.assertEqual(self.edge.get("/generic" + p).header("Cache-Status"), "sluice; hit")
        self.assertEqual(self.other.requests("/files/x.bin"), 1)


if __name__ == "__main__":
    unittest.main()
