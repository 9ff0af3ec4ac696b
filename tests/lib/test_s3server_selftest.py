"""Self-test of s3server.py (s3rver behind s3front.js): requests signed by
the curl binary the way the agent signs with libcurl's CURLOPT_AWS_SIGV4
are served, the mistakes S3 refuses are refused here too, and every fault
knob does what it says, so the S3-tier tests can trust the store.

    python3 -m unittest tests/lib/test_s3server_selftest.py -v

Every test runs against both stores: s3rver (the first run installs it
from the npm registry) and moto's server mode (skipped when this Python has
no moto). One store per backend for the whole module; each test resets the
rules and the log, and uses its own keys.
"""

import concurrent.futures
import hashlib
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from httpclient import wait_until  # noqa: E402
from s3server import S3Server, moto_available, s3_query  # noqa: E402

BODY = bytes(range(256)) * 400           # 100 KiB, every byte value
CURL_788 = subprocess.run(["curl", "--version"], stdout=subprocess.PIPE, text=True).stdout.startswith("curl 7.88")


def complete_xml(parts):
    """The CompleteMultipartUpload body for [(number, etag)]."""
    items = "".join("<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>" % p for p in parts)
    return ("<CompleteMultipartUpload>%s</CompleteMultipartUpload>" % items).encode()


_STORES = {}


def store(backend):
    """The module's store for `backend`, started on first use."""
    if backend not in _STORES:
        _STORES[backend] = S3Server(backend=backend).start()
    return _STORES[backend]


def tearDownModule():
    for s3 in _STORES.values():
        s3.stop()


class S3Case(unittest.TestCase):
    backend = "s3rver"

    def setUp(self):
        if self.backend == "moto" and not moto_available():
            self.skipTest("moto's server mode is not installed")
        self.s3 = store(self.backend)
        self.s3.reset()
        self.s3.set_min_part_size(5 * 1024 * 1024)

    def put(self, key, body=BODY, **kw):
        r = self.s3.signed("PUT", key, body=body, **kw)
        self.assertEqual(r.status, 200, r)
        return r

    def assert_error(self, r, status, code):
        self.assertEqual((r.status, r.code()), (status, code), r)

    def entry(self, kind):
        """The last logged request of `kind`, once it has ended."""
        return wait_until(lambda: [e for e in self.s3.request_log(kind) if e["outcome"] != "open"][-1:],
                          10, message="no finished %s" % kind)[0]

    def create_upload(self, key):
        r = self.s3.signed("POST", key, query={"uploads": ""})
        self.assertEqual(r.status, 200, r)
        return r.body.decode().split("<UploadId>")[1].split("</UploadId>")[0]

    def upload_part(self, key, upload_id, number, body):
        r = self.s3.signed("PUT", key, query={"partNumber": number, "uploadId": upload_id}, body=body)
        self.assertEqual(r.status, 200, r)
        return r.headers["etag"]


class Signed(S3Case):
    def test_put_get_head_delete_round_trip(self):
        key = "npm/@scope/pkg a+b-1.0.0.tgz"        # @, space and + are %-encoded (s3_path)
        self.put(key, headers={"Content-Type": "application/gzip", "x-amz-meta-sluice-sha256": "abc"})
        self.assertEqual(self.s3.list_objects("npm/"), {key: len(BODY)})
        r = self.s3.signed("GET", key)
        self.assertEqual((r.status, r.body), (200, BODY), r)
        self.assertEqual(r.headers["x-amz-meta-sluice-sha256"], "abc")
        r = self.s3.signed("HEAD", key)
        self.assertEqual((r.status, r.headers["content-length"], r.headers["content-type"]),
                         (200, str(len(BODY)), "application/gzip"), r)
        self.assertEqual(self.s3.signed("DELETE", key).status, 204)
        self.assertIsNone(self.s3.get_object(key))
        self.assert_error(self.s3.signed("GET", key), 404, "NoSuchKey")
        self.assertEqual(self.s3.counts(), {"PutObject": 1, "GetObject": 2, "HeadObject": 1, "DeleteObject": 1})

    def test_unsigned_payload_and_postfields_are_signed_too(self):
        self.put("up/unsigned", payload_hash="UNSIGNED-PAYLOAD")
        r = self.s3.signed("PUT", "up/postfields", body=BODY, post_fields=True)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.s3.get_object("up/postfields"), BODY)
        self.assertEqual(self.s3.get_object("up/unsigned"), BODY)

    def test_payload_hash_is_checked_against_the_body(self):
        r = self.s3.signed("PUT", "bad/hash", body=BODY, payload_hash=hashlib.sha256(b"other").hexdigest())
        self.assert_error(r, 400, "XAmzContentSHA256Mismatch")
        self.assertIsNone(self.s3.get_object("bad/hash"))

    def test_list_objects_signed(self):
        self.put("list/a", b"1")
        self.put("list/b", b"22")
        r = self.s3.signed("GET", None, query={"list-type": "2", "prefix": "list/"})
        self.assertEqual(r.status, 200, r)
        self.assertIn(b"<Key>list/b</Key>", r.body)
        self.assertEqual(self.s3.list_objects("list/"), {"list/a": 1, "list/b": 2})


class VirtualHost(S3Case):
    def test_virtual_host_addressing(self):
        self.put("vh/a b", vhost=True)
        self.assertEqual(self.s3.get_object("vh/a b"), BODY)
        r = self.s3.signed("GET", "vh/a b", vhost=True)
        self.assertEqual((r.status, r.body), (200, BODY), r)
        r = self.s3.signed("GET", None, query={"list-type": "2", "prefix": "vh/"}, vhost=True)
        self.assertIn(b"<Key>vh/a b</Key>", r.body)
        self.assert_error(self.s3.signed("GET", "vh/a b", vhost=True, secret="wrong"), 403, "SignatureDoesNotMatch")
        path = "/%s/vh/a%%20b" % self.s3.bucket                       # logged path-style, as sent
        self.assertEqual([(e["path"], e["kind"], e["vhost"]) for e in self.s3.request_log()][:2],
                         [(path, "PutObject", True), (path, "GetObject", True)])

    def test_multipart_and_abort(self):
        self.s3.set_min_part_size(1)
        uid = self.s3.signed("POST", "vh/mp", query={"uploads": ""}, vhost=True).body.decode()
        uid = uid.split("<UploadId>")[1].split("</UploadId>")[0]
        r = self.s3.signed("PUT", "vh/mp", query={"partNumber": 1, "uploadId": uid}, body=BODY, vhost=True)
        self.assertEqual(r.status, 200, r)
        r = self.s3.signed("DELETE", "vh/mp", query={"uploadId": uid}, vhost=True)
        self.assertEqual(r.status, 204, r)
        self.assertNotIn(("vh/mp", uid), self.s3.multipart_uploads())


class Multipart(S3Case):
    def test_complete(self):
        self.s3.set_min_part_size(1000)
        uid = self.create_upload("mp/done")
        self.assertIn(("mp/done", uid), self.s3.multipart_uploads())
        e1 = self.upload_part("mp/done", uid, 1, BODY[:60000])
        e2 = self.upload_part("mp/done", uid, 2, BODY[60000:])
        self.assertIsNone(self.s3.get_object("mp/done"), "visible before CompleteMultipartUpload")
        r = self.s3.signed("POST", "mp/done", query={"uploadId": uid}, body=complete_xml([(1, e1), (2, e2)]),
                           post_fields=True)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.s3.get_object("mp/done"), BODY)
        self.assertNotIn(("mp/done", uid), self.s3.multipart_uploads())
        self.assertEqual(self.s3.count("UploadPart"), 2)

    def test_abort_removes_the_upload(self):
        uid = self.create_upload("mp/aborted")
        self.upload_part("mp/aborted", uid, 1, BODY)
        r = self.s3.signed("DELETE", "mp/aborted", query={"uploadId": uid})
        self.assertEqual(r.status, 204, r)
        self.assertNotIn(("mp/aborted", uid), self.s3.multipart_uploads())
        self.assertIsNone(self.s3.get_object("mp/aborted"))
        r = self.s3.signed("PUT", "mp/aborted", query={"partNumber": 2, "uploadId": uid}, body=b"x")
        self.assert_error(r, 404, "NoSuchUpload")
        self.assert_error(self.s3.signed("DELETE", "mp/aborted", query={"uploadId": uid}), 404, "NoSuchUpload")
        self.assertEqual(self.s3.count("AbortMultipartUpload"), 2)

    def test_parts_below_the_minimum_are_refused(self):
        uid = self.create_upload("mp/small")
        e1 = self.upload_part("mp/small", uid, 1, BODY)            # 100 KiB < 5 MiB, not the last
        e2 = self.upload_part("mp/small", uid, 2, b"tail")
        r = self.s3.signed("POST", "mp/small", query={"uploadId": uid}, body=complete_xml([(1, e1), (2, e2)]),
                           post_fields=True)
        self.assert_error(r, 400, "EntityTooSmall")
        self.assertIsNone(self.s3.get_object("mp/small"))


class Refused(S3Case):
    def test_wrong_secret(self):
        self.assert_error(self.s3.signed("PUT", "no/secret", body=BODY, secret="wrong"), 403, "SignatureDoesNotMatch")
        self.assert_error(self.s3.signed("GET", "no/secret", secret="wrong"), 403, "SignatureDoesNotMatch")
        self.assertIsNone(self.s3.get_object("no/secret"))

    def test_unknown_access_key(self):
        self.assert_error(self.s3.signed("GET", "x", access_key="AKIAOTHER"), 403, "InvalidAccessKeyId")

    def test_unsigned_request(self):
        self.assert_error(self.s3.signed("PUT", "no/auth", body=BODY, sign=False), 403, "AccessDenied")
        self.assertIsNone(self.s3.get_object("no/auth"))
        self.assertEqual(self.s3.count("PutObject", status=403, outcome="refused"), 1)

    def test_chunked_body(self):
        r = self.s3.signed("PUT", "chunked", body=BODY, headers={"Transfer-Encoding": "chunked"})
        self.assert_error(r, 501, "NotImplemented")
        self.assertIsNone(self.s3.get_object("chunked"))

    def test_missing_content_sha256(self):
        self.assert_error(self.s3.signed("GET", "x", payload_hash=None), 400, "InvalidRequest")

    @unittest.skipUnless(CURL_788, "what curl 7.88 signs as written; later curls canonicalise more")
    def test_curl_788_signs_the_url_as_written(self):
        """The recipe's mistakes, each refused as S3 refuses them."""
        b = "/" + self.s3.bucket
        r = self.s3.signed("POST", target=b + "/mp/x?uploads")          # not ?uploads=
        self.assert_error(r, 403, "SignatureDoesNotMatch")
        uid = self.create_upload("mp/x")
        r = self.s3.signed("PUT", target=b + "/mp/x?uploadId=%s&partNumber=1" % uid, body=b"x")   # unsorted
        self.assert_error(r, 403, "SignatureDoesNotMatch")
        self.assertEqual(self.s3.signed("PUT", target=b + "/mp/x?" + s3_query({"uploadId": uid, "partNumber": 1}),
                                        body=b"x").status, 200)
        self.assert_error(self.s3.signed("GET", target=b + "/npm/@scope/a.tgz"), 403, "SignatureDoesNotMatch")
        self.assert_error(self.s3.signed("GET", target=b + "/npm/%40scope/a%2btgz"), 403, "SignatureDoesNotMatch")
        self.assert_error(self.s3.signed("GET", target=b + "/npm/%40scope/a.tgz"), 404, "NoSuchKey")


class Faults(S3Case):
    def test_writes_answer_500_then_503_then_succeed(self):
        self.s3.fail_writes(500, count=1)
        self.s3.fail_writes(503, count=1)
        self.assert_error(self.s3.signed("PUT", "f/a", body=BODY), 500, "InternalError")
        self.assert_error(self.s3.signed("POST", "f/b", query={"uploads": ""}), 503, "SlowDown")
        self.put("f/c")
        self.assertEqual(self.s3.list_objects("f/"), {"f/c": len(BODY)})
        self.assertEqual([e["faults"] for e in self.s3.request_log()], [["status"], ["status"], []])
        self.assertNotIn("f/b", [k for k, _ in self.s3.multipart_uploads()])

    def test_slow_write(self):
        self.s3.slow_writes(600, count=2)
        r = self.put("slow/a")
        self.assertGreaterEqual(r.elapsed, 0.6)
        r = self.s3.signed("PUT", "slow/b", body=BODY, timeout=0.2)     # the client gives up first
        self.assertEqual((r.status, r.curl_rc), (0, 28), r)
        self.assertEqual(self.entry("PutObject")["outcome"], "client_gone")
        self.assertIsNone(self.s3.get_object("slow/b"), "stored although the client was gone")
        self.assertEqual(self.s3.get_object("slow/a"), BODY)

    def test_kill_mid_upload(self):
        self.s3.kill_upload_after(10000)
        r = self.s3.signed("PUT", "kill/up", body=BODY)
        self.assertEqual(r.status, 0, r)
        self.assertNotEqual(r.curl_rc, 0)
        e = self.entry("PutObject")
        self.assertEqual(e["outcome"], "killed_upload")
        self.assertGreaterEqual(e["reqBytes"], 10000)
        self.assertIsNone(self.s3.get_object("kill/up"))
        self.put("kill/up")                                             # count=1: the next one passes

    def test_kill_mid_upload_of_a_part(self):
        uid = self.create_upload("kill/part")
        self.upload_part("kill/part", uid, 1, BODY)
        self.s3.kill_upload_after(1, kinds=["UploadPart"])
        r = self.s3.signed("PUT", "kill/part", query={"partNumber": 2, "uploadId": uid}, body=BODY)
        self.assertEqual(r.status, 0, r)
        self.assertEqual(self.s3.parts("kill/part", uid), {1: len(BODY)})

    def test_get_delay(self):
        self.put("delay/a")
        self.s3.delay_reads(500, count=1)
        r = self.s3.signed("GET", "delay/a")
        self.assertEqual((r.status, r.body), (200, BODY))
        self.assertGreaterEqual(r.ttfb, 0.5)
        r = self.s3.signed("GET", "delay/a")
        self.assertLess(r.ttfb, 0.5)

    def test_kill_mid_download(self):
        self.put("kill/down")
        self.s3.kill_download_after(20000)
        r = self.s3.signed("GET", "kill/down")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.curl_rc, 56, r)                              # CURLE_RECV_ERROR: reset
        self.assertTrue(len(r.body) <= 20000 and BODY.startswith(r.body))   # a reset may drop the tail
        e = self.entry("GetObject")
        self.assertEqual((e["outcome"], e["respBytes"]), ("killed_download", 20000))
        self.assertEqual(self.s3.signed("GET", "kill/down").body, BODY)

    def test_truncated_object(self):
        self.put("trunc/a")
        self.s3.truncate_reads(30000)
        r = self.s3.signed("GET", "trunc/a")
        self.assertEqual((r.status, r.headers["content-length"]), (200, str(len(BODY))))
        self.assertEqual(r.curl_rc, 18, r)                              # CURLE_PARTIAL_FILE: clean close
        self.assertEqual(r.body, BODY[:30000])
        self.assertEqual(self.entry("GetObject")["outcome"], "truncated")

    def test_kill_download_before_the_first_byte(self):
        self.put("kill/zero")
        self.s3.kill_download_after(0)
        r = self.s3.signed("GET", "kill/zero")
        self.assertNotEqual(r.curl_rc, 0, r)
        self.assertEqual(r.body, b"")

    def test_reads_answer_503(self):
        self.put("fr/a")
        self.s3.fail_reads(503, count=1)
        self.assert_error(self.s3.signed("GET", "fr/a"), 503, "SlowDown")
        self.assertEqual(self.s3.signed("GET", "fr/a").body, BODY)

    def test_down_and_up(self):
        self.put("down/a")
        self.addCleanup(self.s3.up)                                     # the store is shared
        self.s3.delay_reads(5000)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(self.s3.signed, "GET", "down/a")
            wait_until(lambda: self.s3.count("GetObject"), 10)
            self.s3.down()                                              # mid-request
            r = pending.result()
        self.assertEqual((r.status, r.curl_rc), (0, 52), r)            # CURLE_GOT_NOTHING
        r = self.s3.signed("GET", "down/a")
        self.assertEqual((r.status, r.curl_rc), (0, 7), r)             # CURLE_COULDNT_CONNECT
        self.s3.up()
        self.assertEqual(self.s3.signed("GET", "down/a").body, BODY)
        self.assertEqual(self.s3.counts(), {"GetObject": 1})

    def test_rules_match_paths_and_clear(self):
        self.s3.fail_writes(500, count=None, match="/only/")
        self.assert_error(self.s3.signed("PUT", "only/a", body=b"x"), 500, "InternalError")
        self.assert_error(self.s3.signed("PUT", "only/b", body=b"x"), 500, "InternalError")
        self.put("other/a", b"x")
        self.s3.clear_faults()
        self.put("only/c", b"x")
        self.assertEqual(self.s3.count("PutObject"), 4)


class Direct(S3Case):
    def test_planted_corrupt_object_is_served_as_planted(self):
        self.s3.put_object("plant/a", BODY[:100], metadata={"sluice-size": len(BODY)}, content_type="text/plain")
        r = self.s3.signed("GET", "plant/a")
        self.assertEqual((r.status, r.body, r.headers["x-amz-meta-sluice-size"]), (200, BODY[:100], str(len(BODY))))
        self.assertEqual(self.s3.head_object("plant/a")["content-length"], "100")
        self.assertEqual(self.s3.counts(), {"GetObject": 1}, "direct helpers are not logged")

    def test_deleted_behind_the_back(self):
        self.put("gone/a")
        self.s3.delete_object("gone/a")
        self.assert_error(self.s3.signed("GET", "gone/a"), 404, "NoSuchKey")
        self.assertEqual(self.s3.list_objects("gone/"), {})


for _case in (Signed, VirtualHost, Multipart, Refused, Faults, Direct):
    _name = _case.__name__ + "Moto"
    globals()[_name] = type(_name, (_case,), {"backend": "moto", "__doc__": "%s against moto" % _case.__name__})
del _case, _name


if __name__ == "__main__":
    unittest.main()
