"""The S3 tier (issue 17) against a real S3-compatible store: s3rver behind
the SigV4-checking front of tests/lib/s3server.py, so a request the agent
signs wrongly fails here as it would at AWS.

  TierSuite   the storage-tier contract (tests/unit/test_tier.c) run on
              the S3 tier: its "tier: s3" group must run, not be skipped.
  S3Edges     two complete edges (real HAProxy + agent, each with its own
              L1 cache_dir) sharing one bucket and one origin, as
              test_l2.py does with a shared directory. Objects above 5 MiB
              go up in parts (s3_multipart_threshold, s3_part_size).

Every fault is checked with the whole contract: byte-exact bodies or
aborted transfers (never a clean short body), no partial object in the
bucket (only complete objects of the right size, no multipart upload left
open), the agents idle with their descriptors back to baseline, and a
broken store costing a miss at most about its deadline.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

from edge import ROOT  # noqa: E402
from httpclient import tcp_connections, wait_until  # noqa: E402
from origin import OriginServer, body_for  # noqa: E402
from s3server import S3Server, moto_available  # noqa: E402
import test_l2  # noqa: E402
from test_l2 import parallel  # noqa: E402

UNIT_TIER = os.path.join(ROOT, "build", "asan", "unit", "test_tier")
MIB = 1024 * 1024
LARGE = 12 * MIB + 3          # three parts: 5 MiB, 5 MiB and the rest
SLACK = 1.5                   # seconds a miss may take beyond its deadline (ASan, a shared machine)


# ------------------------------------------------------------------ tier suite


class TierSuite(unittest.TestCase):
    """tests/unit/test_tier.c's S3 group, through the checking front."""

    def run_suite(self, backend):
        if not os.access(UNIT_TIER, os.X_OK):
            self.fail("%s is not built (make unit-build)" % UNIT_TIER)
        xml_dir = tempfile.mkdtemp(prefix="sluice-tier-xml-")
        try:
            with S3Server(backend=backend) as s3:
                env = dict(os.environ, SLUICE_TEST_S3_ENDPOINT=s3.endpoint, SLUICE_TEST_S3_BUCKET=s3.bucket,
                           SLUICE_TEST_S3_KEY=s3.access_key, SLUICE_TEST_S3_SECRET=s3.secret,
                           SLUICE_TEST_S3_REGION=s3.region, CMOCKA_MESSAGE_OUTPUT="xml",
                           CMOCKA_XML_FILE=os.path.join(xml_dir, "%g.xml"))
                p = subprocess.run([UNIT_TIER], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   timeout=300)
                out = p.stdout.decode("utf-8", "replace")
                self.assertEqual(p.returncode, 0, out[-6000:])
                self.assertNotIn("SKIPPED", out)
                suite = self.group(xml_dir, "tier: s3")
                self.assertEqual({k: suite.get(k) for k in ("tests", "failures", "errors", "skipped")},
                                 {"tests": "8", "failures": "0", "errors": "0", "skipped": "0"}, out[-6000:])
                log = s3.wait_idle()
                # every request was signed as S3 wants it (a refusal is the front's S3
                # error; an aborted read is "client_gone", a miss a 404 from the store)
                self.assertEqual([e for e in log if e["outcome"] == "refused" or e["status"] in (400, 403)], [])
                kinds = s3.counts()
                for kind in ("GetObject", "PutObject", "CreateMultipartUpload", "UploadPart",
                             "CompleteMultipartUpload"):
                    self.assertGreater(kinds.get(kind, 0), 0, kinds)
                self.assertEqual(s3.multipart_uploads(), [])
        finally:
            shutil.rmtree(xml_dir, ignore_errors=True)

    def group(self, xml_dir, name):
        path = os.path.join(xml_dir, name + ".xml")
        self.assertTrue(os.path.exists(path), "the %r group did not run: %s" % (name, os.listdir(xml_dir)))
        return ET.parse(path).getroot().find("testsuite").attrib

    def test_the_tier_contract_holds_on_s3rver(self):
        self.run_suite("s3rver")

    def test_the_tier_contract_holds_on_moto(self):
        if not moto_available():
            self.skipTest("moto's server mode is not installed for this Python")
        self.run_suite("moto")


# ------------------------------------------------------------------ two edges


class S3Edges(test_l2.TwoEdges):
    """Edges A and B, one bucket, one origin (test_l2's fixture, the bucket
    in place of the shared directory)."""

    settings = {"l2_lookup_timeout": "500ms", "s3_multipart_threshold": "5M", "s3_part_size": "5M"}
    env_a = {}        # over the store's credentials
    env_b = {}

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="sluice-s3-")
        self.origin = OriginServer().start()
        self.s3 = S3Server()
        self.edges = []
        try:
            self.s3.start()
            s = dict(self.settings, s3_endpoint=self.s3.endpoint, s3_bucket=self.s3.bucket,
                     s3_region=self.s3.region)
            self.a = self.edge(dict(s, **self.settings_a), dict(self.s3.aws_env(), **self.env_a))
            self.b = self.edge(dict(s, **self.settings_b), dict(self.s3.aws_env(), **self.env_b))
            self.baseline = {e: self.private_fds(e) for e in self.edges}
        except BaseException:
            self.tearDown()
            raise

    def tearDown(self):
        super().tearDown()   # the edges first: an upload may still be talking to the store
        self.s3.stop()

    # ------------------------------------------------------------ helpers
    def get_exact(self, edge, p, size, timeout=30):
        """A whole, byte-exact 200 through `edge`."""
        r = edge.get("/generic" + p, timeout=timeout)
        self.assertEqual((r.status, r.complete, len(r.body)), (200, True, size), r.error)
        self.assertTrue(r.body == body_for(p, size), "the body differs from the origin's")
        return r

    def assert_hit(self, edge, p, size):
        """Once `edge` committed p, a plain L1 hit."""
        edge.wait_idle()
        self.assertEqual(self.get_exact(edge, p, size).header("Cache-Status"), "sluice; hit")

    def uploads(self, edge, result):
        return edge.metric('sluice_l2_uploads_total{tier="s3",result="%s"}' % result)

    def wait_uploads(self, edge, result, n=1, timeout=20):
        wait_until(lambda: self.uploads(edge, result) >= n, timeout,
                   message="no %d upload(s) with result=%s" % (n, result))

    def fill_through_a(self, p, size):
        """A fetches p from the origin and copies it to the bucket; the
        bucket then holds exactly that object. Returns (response, key)."""
        r = self.get_exact(self.a, p, size)
        self.assertNotIn("l2-hit", r.header("Cache-Status"))
        self.wait_uploads(self.a, "ok")
        objects = self.s3.list_objects()
        self.assertEqual(list(objects.values()), [size], objects)
        return r, next(iter(objects))

    def private_fds(self, edge):
        """The agent's descriptors minus HAProxy's pooled connections to it
        (Edge.agent_private_fds) and its own idle connections to the store
        and the origin, which libcurl keeps for reuse (in any state: a
        connection its peer closed holds a descriptor until libcurl looks at
        it again). A request still running is caught by the store's log and
        the agent's idle gauges instead."""
        pid = edge.agent.pid
        outbound = sum(tcp_connections(pid, remote_port=port, any_state=True)
                       for port in (self.s3.port, self.origin.port))
        return edge.agent_private_fds() - outbound

    def assert_settled(self, objects=None):
        """The contract after a fault: both agents idle with an empty upload
        queue and their descriptors back to baseline; the store with no
        request open, no multipart upload left and, when given, exactly
        `objects` ({key: size}) complete."""
        for e in self.edges:
            e.wait_idle(20)
            wait_until(lambda: e.metric('sluice_l2_upload_queue_depth{tier="s3"}') == 0, 20,
                       message="uploads still queued")
            wait_until(lambda: self.private_fds(e) == self.baseline[e], 10,
                       message="descriptors did not return to baseline %d" % self.baseline[e])
        self.s3.wait_idle(20)
        self.assertEqual(self.s3.multipart_uploads(), [])
        if objects is not None:
            self.assertEqual(self.s3.list_objects(), objects)

    def timed_get(self, edge, p, size):
        t0 = time.monotonic()
        r = self.get_exact(edge, p, size, timeout=15)
        return r, time.monotonic() - t0

    def upload_fails(self, p, size, n=1):
        """A fills p (its client unaffected), its upload (the n-th) fails,
        the bucket stays empty, and A's next request is a plain hit."""
        r = self.get_exact(self.a, p, size)
        self.assertEqual(r.header("Cache-Status"), "sluice; fwd=uri-miss; stored")
        self.wait_uploads(self.a, "failed", n)
        self.assertEqual(self.uploads(self.a, "ok"), 0)
        self.s3.wait_idle(20)
        self.assertEqual((self.s3.list_objects(), self.s3.multipart_uploads()), ({}, []))
        self.assert_hit(self.a, p, size)

    def b_misses_then(self, p, size):
        """With the store healthy again, B's request for p is an L2 miss
        served by the origin, and B's copy is the bucket's only object."""
        self.s3.clear_faults()
        r = self.get_exact(self.b, p, size)
        self.assertEqual(r.header("Cache-Status"), "sluice; fwd=uri-miss; stored")
        self.assertEqual(self.b.metric('sluice_l2_misses_total{tier="s3",reason="absent"}'), 1)
        self.assertEqual(self.origin.requests(p), 2)
        self.wait_uploads(self.b, "ok")
        self.assert_settled()
        objects = self.s3.list_objects()
        self.assertEqual(list(objects.values()), [size])
        self.assertEqual(self.s3.get_object(next(iter(objects))), body_for(p, size))

    def assert_aborted(self, r, size):
        """An aborted transfer: the head, part of the body, no clean end."""
        self.assertEqual(r.status, 200)
        self.assertFalse(r.complete, "a short body ended as if complete")
        self.assertLess(len(r.body), size)


class SharedBucket(S3Edges):
    def test_a_cold_object_through_a_then_b_is_fetched_once_and_b_says_l2_hit(self):
        size = 300_000
        p = self.path("obj", size=size)
        first, key = self.fill_through_a(p, size)
        self.assertIn("x-amz-meta-sluice", self.s3.head_object(key))
        self.assertEqual(self.s3.get_object(key), body_for(p, size))
        second = self.get_exact(self.b, p, size)
        self.assertEqual(second.header("Cache-Status"), "sluice; fwd=uri-miss; detail=l2-hit; stored")
        self.assertEqual(second.header("ETag"), first.header("ETag"))
        self.assertEqual(self.origin.requests(p), 1)
        self.assertEqual(self.b.metric('sluice_l2_hits_total{tier="s3"}'), 1)
        self.assertEqual(self.b.metric('sluice_l2_bytes_read_total{tier="s3"}'), size)
        self.assert_hit(self.b, p, size)                 # now in B's own L1
        self.assertEqual(self.origin.requests(p), 1)
        self.assert_settled({key: size})
        # B does not copy back what it read from the bucket
        self.assertEqual((self.s3.count("PutObject"), self.uploads(self.b, "ok")), (1, 0))

    def test_a_large_object_goes_up_in_parts_and_comes_back_whole(self):
        p = self.path("large", size=LARGE)
        _, key = self.fill_through_a(p, LARGE)
        self.assertEqual({k: self.s3.count(k) for k in ("PutObject", "CreateMultipartUpload", "UploadPart",
                                                        "CompleteMultipartUpload", "AbortMultipartUpload")},
                         {"PutObject": 0, "CreateMultipartUpload": 1, "UploadPart": 3,
                          "CompleteMultipartUpload": 1, "AbortMultipartUpload": 0})
        self.assertEqual(self.s3.get_object(key), body_for(p, LARGE))
        r = self.get_exact(self.b, p, LARGE)
        self.assertEqual(r.header("Cache-Status"), "sluice; fwd=uri-miss; detail=l2-hit; stored")
        self.assertEqual(self.origin.requests(p), 1)
        self.assert_settled({key: LARGE})

    def test_twenty_clients_over_both_edges_cost_at_most_two_origin_requests(self):
        size = 6 * MIB
        p = self.path("crowd", size=size, rate=6 * MIB)   # about a second from the origin
        results = parallel(lambda e: e.get("/generic" + p, timeout=60), [self.a, self.b] * 10)
        want = body_for(p, size)
        for r in results:
            self.assertEqual((r.status, r.complete, len(r.body)), (200, True, size), r.error)
            self.assertTrue(r.body == want)
        self.assertLessEqual(self.origin.requests(p), 2)
        for e in self.edges:   # every edge that fetched it copies it up (not those that read it from L2)
            e.wait_idle(20)
            self.wait_uploads(e, "ok", e.metric("sluice_origin_requests_total"), timeout=30)
        self.assert_settled()
        self.assertEqual(list(self.s3.list_objects().values()), [size])
        self.assertEqual(sum(self.uploads(e, "failed") for e in self.edges), 0)


class WriteFaults(S3Edges):
    """Uploads that fail: clients never notice, the bucket holds nothing."""

    def put_answers(self, status):
        size = 200_000
        p = self.path("status%d" % status, size=size)
        self.s3.fail_writes(status, count=None, kinds=("PutObject",))
        self.upload_fails(p, size)
        self.assertGreaterEqual(self.s3.count("PutObject", status=status), 1)
        self.b_misses_then(p, size)

    def test_put_object_answering_500_fails_the_upload_and_nothing_else(self):
        self.put_answers(500)

    def test_put_object_answering_503_fails_the_upload_and_nothing_else(self):
        self.put_answers(503)

    def test_a_part_answering_503_aborts_the_multipart_upload(self):
        p = self.path("part503", size=LARGE)
        self.s3.fail_writes(503, count=None, kinds=("UploadPart",))
        self.upload_fails(p, LARGE)
        self.assertEqual(self.s3.count("CompleteMultipartUpload"), 0)
        self.assertEqual(self.s3.count("AbortMultipartUpload", status=204), 1)
        self.b_misses_then(p, LARGE)

    def test_the_store_killed_mid_put_leaves_no_object(self):
        size = 400_000
        p = self.path("killput", size=size)
        self.s3.kill_upload_after(100_000, count=None, kinds=("PutObject",))
        self.upload_fails(p, size)
        self.assertGreaterEqual(self.s3.count("PutObject", outcome="killed_upload"), 1)
        self.b_misses_then(p, size)

    def test_the_store_killed_mid_part_aborts_the_multipart_upload(self):
        p = self.path("killpart", size=LARGE)
        self.s3.kill_upload_after(MIB, count=None, kinds=("UploadPart",))
        self.upload_fails(p, LARGE)
        self.assertGreaterEqual(self.s3.count("UploadPart", outcome="killed_upload"), 1)
        self.assertEqual(self.s3.count("AbortMultipartUpload", status=204), 1)
        self.b_misses_then(p, LARGE)

    def test_the_store_going_down_during_a_put_leaves_no_object(self):
        size = 400_000
        p = self.path("down", size=size)
        self.s3.slow_writes(60_000, kinds=("PutObject",))   # held in the front until it dies
        self.get_exact(self.a, p, size)
        wait_until(lambda: self.s3.count("PutObject", outcome="open") == 1, 20,
                   message="the upload never reached the store")
        self.s3.down()
        self.wait_uploads(self.a, "failed")
        self.s3.up()
        self.assertEqual((self.s3.list_objects(), self.s3.multipart_uploads()), ({}, []))
        self.assert_hit(self.a, p, size)
        self.b_misses_then(p, size)

class WrongSecret(S3Edges):
    env_a = {"AWS_SECRET_ACCESS_KEY": "not-the-secret"}

    def test_a_wrong_secret_is_refused_and_counted_and_clients_do_not_notice(self):
        size = 200_000
        p = self.path("secret", size=size)
        self.upload_fails(p, size)
        refused = [e for e in self.s3.request_log() if e["status"] == 403]
        self.assertEqual({(e["kind"], e["code"]) for e in refused},
                         {("GetObject", "SignatureDoesNotMatch"), ("PutObject", "SignatureDoesNotMatch")})
        self.assertEqual(self.a.metric('sluice_l2_errors_total{tier="s3",reason="error"}'), 1)
        self.b_misses_then(p, size)


class SlowPut(S3Edges):
    settings_a = {"s3_request_timeout": "1s"}

    def test_a_put_slower_than_s3_request_timeout_fails_and_stores_nothing(self):
        cases = (("single", 300_000, ("PutObject",)), ("parts", LARGE, ("UploadPart",)))
        for n, (name, size, kinds) in enumerate(cases, 1):
            with self.subTest(name):
                p = self.path(name, size=size)
                self.s3.slow_writes(3000, kinds=kinds)
                self.upload_fails(p, size, n)
                # the agent gave up before the store answered (it would have stored it after 3 s)
                self.assertGreaterEqual(self.s3.count(kinds[0], outcome="client_gone"), 1)
                self.assertEqual(self.s3.count("AbortMultipartUpload", status=204), 1 if name == "parts" else 0)
                self.s3.reset()
        self.assert_settled({})


class ReadFaults(S3Edges):
    """B reads A's copy and the store fails under it."""

    def cut_mid_body(self, fault):
        size = 2 * MIB
        p = self.path("cut", size=size)
        self.fill_through_a(p, size)
        fault()
        r = self.b.get("/generic" + p, timeout=20)
        self.assert_aborted(r, size)
        self.assertEqual(self.origin.requests(p), 1)     # no fallback once the head was sent
        self.assertEqual(self.b.metric('sluice_l2_read_failures_total{tier="s3"}'), 1)
        self.b.wait_idle()
        self.assertEqual((self.b.object_files(), self.b.temp_files()), ([], []))   # nothing in B's L1
        again = self.get_exact(self.b, p, size)           # refilled, byte-exact
        self.assertNotIn("l2-hit", again.header("Cache-Status"))
        self.assert_hit(self.b, p, size)
        self.assert_settled()
        self.assertEqual(list(self.s3.list_objects().values()), [size])

    def test_the_store_killed_mid_download_aborts_the_client_and_stores_nothing(self):
        self.cut_mid_body(lambda: self.s3.kill_download_after(256 * 1024))

    def test_a_download_cut_short_cleanly_is_never_served_as_complete(self):
        self.cut_mid_body(lambda: self.s3.truncate_reads(256 * 1024))

    def test_an_object_deleted_behind_the_agents_backs_is_a_miss_not_an_error(self):
        size = 300_000
        p = self.path("deleted", size=size)
        _, key = self.fill_through_a(p, size)
        self.s3.delete_object(key)
        r, _ = self.timed_get(self.b, p, size)
        self.assertEqual(r.header("Cache-Status"), "sluice; fwd=uri-miss; stored")
        self.assertEqual(self.b.metric('sluice_l2_misses_total{tier="s3",reason="absent"}'), 1)
        self.assertEqual(self.origin.requests(p), 2)
        self.wait_uploads(self.b, "ok")
        self.assert_settled({key: size})

    def test_a_truncated_object_in_the_bucket_is_never_served_and_the_origin_refills(self):
        size = 600_000
        p = self.path("truncated", size=size)
        _, key = self.fill_through_a(p, size)
        meta = self.s3.head_object(key)["x-amz-meta-sluice"]
        self.s3.put_object(key, body_for(p, size)[: size // 2], metadata={"sluice": meta})
        r = self.get_exact(self.b, p, size, timeout=15)
        self.assertEqual(r.header("Cache-Status"), "sluice; fwd=uri-miss; stored")
        self.assertEqual(self.b.metric('sluice_l2_errors_total{tier="s3",reason="error"}'), 1)
        self.assertEqual(self.origin.requests(p), 2)
        self.assert_hit(self.b, p, size)
        self.wait_uploads(self.b, "ok")                  # B's whole copy replaced the short one
        self.assert_settled({key: size})
        self.assertEqual(self.s3.get_object(key), body_for(p, size))


class BrokenStoreCost(S3Edges):
    """A store that is down or slow costs a miss at most its deadline
    (300 ms here), measured against a miss the store answered (404)."""

    def plain_miss(self):
        p = self.path("plain", size=100_000)
        _, elapsed = self.timed_get(self.b, p, 100_000)
        self.assertEqual(self.b.metric('sluice_l2_misses_total{tier="s3",reason="absent"}'), 1)
        self.wait_uploads(self.b, "ok")                  # before the store breaks
        return elapsed

    def broken_miss(self, break_store, reason, at_least):
        """B's miss with the store broken: served by the origin, at most the
        deadline later than a plain one, counted as an L2 error `reason`."""
        plain = self.plain_miss()
        break_store()
        size = 100_000
        p = self.path("broken", size=size)
        r, elapsed = self.timed_get(self.b, p, size)
        self.assertEqual(r.header("Cache-Status"), "sluice; fwd=uri-miss; stored")
        self.assertGreaterEqual(elapsed, at_least)
        self.assertLess(elapsed, plain + 0.3 + SLACK)
        self.assertEqual(self.b.metric('sluice_l2_errors_total{tier="s3",reason="%s"}' % reason), 1)
        self.assertEqual(self.origin.requests(p), 1)


class DeadlineL2Lookup(BrokenStoreCost):
    settings = dict(S3Edges.settings, l2_lookup_timeout="300ms")

    def test_a_store_that_is_down_costs_a_miss_almost_nothing(self):
        self.broken_miss(self.s3.down, "error", 0)
        self.wait_uploads(self.b, "failed")              # nowhere to copy it to
        self.s3.up()
        self.assert_settled()
        self.assertEqual(list(self.s3.list_objects().values()), [100_000])   # the plain miss's copy

    def test_a_store_delaying_reads_costs_a_miss_at_most_l2_lookup_timeout(self):
        self.broken_miss(lambda: self.s3.delay_reads(5000), "timeout", 0.3)
        self.wait_uploads(self.b, "ok", 2)
        self.assert_settled()


class DeadlineS3Headers(BrokenStoreCost):
    """s3_read_header_timeout bounds a lookup when l2_lookup_timeout is long."""

    settings = dict(S3Edges.settings, l2_lookup_timeout="10s", s3_read_header_timeout="300ms")

    def test_a_store_delaying_reads_costs_a_miss_at_most_s3_read_header_timeout(self):
        self.broken_miss(lambda: self.s3.delay_reads(5000), "error", 0.3)
        self.wait_uploads(self.b, "ok", 2)
        self.assert_settled()


if __name__ == "__main__":
    unittest.main()
