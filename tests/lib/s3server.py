"""A real S3-compatible object store on 127.0.0.1 for the S3-tier tests:
s3rver (npm, S3RVER_VERSION), or moto's server mode when this Python has
it, behind s3front.js, a front that checks SigV4 signatures as S3 does,
adds what s3rver lacks (AbortMultipartUpload), and injects faults.

    from s3server import S3Server
    with S3Server() as s3:                       # bucket s3.bucket exists
                                                 # (S3Server(backend="moto"))
        env = s3.aws_env()                       # AWS_ACCESS_KEY_ID, ...
        ...                                      # the agent uses s3.endpoint
        s3.fail_writes(503, count=2)             # next two writes: 503 SlowDown
        assert s3.list_objects() == {"npm/a.tgz": 5000}
        assert s3.count("PutObject") == 1

The parts (both processes are children of this fixture, in their own
sessions, stopped by stop()):

    store      on `upstream_port`: s3rver (backend="s3rver", the default),
               data in a temporary directory in s3rver's filesystem layout;
               or moto's server mode (backend="moto"; moto_available() says
               whether this Python has it: it is not installed by the tests),
               in memory. Both accept anonymous requests and check no
               signature.
    s3front    tests/lib/s3front.js on `port` (s3.endpoint): every request
               is checked (see its header comment for each check and the S3
               error answered), logged, subjected to the fault rules, and
               proxied to the store.

Agents and tests that sign talk to the front. The direct helpers
(create_bucket, list_objects, multipart_uploads, parts, get_object,
head_object, put_object, delete_object) talk to the store itself: they act
behind the agents' backs, are not logged and not subject to faults.
s3rver serves no key with an empty segment ("a//b": 404 although the
signature is right); S3 and moto do.

Addressing: path-style http://127.0.0.1:PORT/bucket/key (s3.endpoint) and
virtual-host http://bucket.localhost:PORT/key (s3.vhost_endpoint is
http://localhost:PORT, the bucket goes before the host name): curl resolves
*.localhost to the loopback itself (glibc does not), and the front takes the
bucket from the Host header.

Knobs (each adds a rule to the front; `count` requests it applies to,
None for every request until clear_faults(); `kinds` the request kinds it
applies to, see KINDS; `match` a substring of the request path):

    fail_writes(status=500, count=1)      answer 500 InternalError / 503
                                          SlowDown (S3 XML) after reading
                                          the body; nothing is stored
    fail_reads(status=500, count=1)       the same for GetObject/HeadObject
    slow_writes(ms, count=None)           wait ms after the body arrived,
                                          then store and answer; a client
                                          gone by then stores nothing
    kill_upload_after(nbytes, count=1)    reset the connection once nbytes
                                          of the body arrived
    delay_reads(ms, count=None)           wait ms before the response head
    kill_download_after(nbytes, count=1)  head + nbytes of body, then RST
                                          (the client may lose the tail)
    truncate_reads(nbytes, count=1)       head (full Content-Length) +
                                          nbytes, then a clean close (FIN)
    set_min_part_size(n)                  EntityTooSmall below n bytes for
                                          parts but the last (S3: 5 MiB,
                                          the default)
    down() / up()                         the front killed (connections cut,
                                          then refused) / back on its port
                                          with no rules and an empty log

Request log: request_log() lists what the front saw, oldest first, as dicts
{method, path, vhost, query, kind, status, code, outcome, reqBytes,
respBytes, faults, t}: path is /bucket/key as sent (percent-encoded; for
virtual-host requests the bucket is put before it, vhost true); outcome is
"done", "refused" (an S3 error from the front), "killed_upload",
"killed_download", "truncated", "client_gone" or "open" (still running). count(kind, method=, status=) counts entries. reset()
drops the rules and the log.

Signing recipe (what the agent does with libcurl; found with Debian's curl
7.88.1, checked by test_s3server_selftest against this front):

  * CURLOPT_AWS_SIGV4 "aws:amz:REGION:s3" and CURLOPT_USERPWD "KEY:SECRET"
    (curl's --aws-sigv4 and --user); a session token goes in a header
    "x-amz-security-token: TOKEN" that the caller adds.
  * curl 7.88 signs host, x-amz-date and every x-amz-* header the caller
    adds (x-amz-content-sha256, x-amz-meta-*, x-amz-security-token), and
    nothing else (Content-Type and Content-Length are not signed, which S3
    allows).
  * It does not add x-amz-content-sha256: the caller must, or S3 answers
    400 InvalidRequest. curl then uses that header's value as the payload
    hash of the canonical request: "UNSIGNED-PAYLOAD", or the hex SHA-256
    of the body (the store then checks the body against it: 400
    XAmzContentSHA256Mismatch). This holds for CURLOPT_UPLOAD (curl -T)
    and for CURLOPT_POSTFIELDS (--data-binary) alike (UNSIGNED-PAYLOAD
    with POSTFIELDS is accepted: curl does not hash the fields itself). For a body-less
    request the hex SHA-256 of the empty string
    (e3b0c442...b855) or UNSIGNED-PAYLOAD.
  * curl signs the path and the query exactly as written in the URL; S3
    decodes them and encodes them again its own way, so the URL must be
    written in S3's canonical form or the signature does not match:
      - the key percent-encoded with every byte but A-Z a-z 0-9 - _ . ~ and
        "/" as %XX with UPPERCASE hex ("@" is %40, "+" %2B, " " %20; a raw
        "@" or "+", or "%2b", fails);
      - "." and ".." segments are removed by curl before it sends and signs
        (a key d/./e/../f is stored as d/f); CURLOPT_PATH_AS_IS keeps them;
      - the query parameters sorted by name, each written name=value, a
        parameter without a value written "name=": CreateMultipartUpload is
        POST ?uploads= (POST ?uploads fails), UploadPart is PUT
        ?partNumber=N&uploadId=ID (the other order fails),
        CompleteMultipartUpload POST ?uploadId=ID, AbortMultipartUpload
        DELETE ?uploadId=ID, ListObjectsV2 GET /bucket?list-type=2&prefix=P.
  * Path-style URLs http://HOST:PORT/bucket/key and virtual-host URLs
    http://BUCKET.HOST:PORT/key sign as they are (the Host header carries
    the port and is signed with it). Here virtual-host is
    http://BUCKET.localhost:PORT/key: curl 7.88 resolves *.localhost to
    127.0.0.1 itself (getaddrinfo does not).
  * A PUT body needs its size (CURLOPT_INFILESIZE_LARGE): without it curl
    sends it chunked, which S3 refuses (501 NotImplemented, header
    Transfer-Encoding).
  * curl 7.88 sends "Expect: 100-continue" with every CURLOPT_UPLOAD PUT,
    whatever its size, and waits up to CURLOPT_EXPECT_100_TIMEOUT_MS (1 s)
    for the 100. S3 may answer an error (403, 500, ...) instead of the 100,
    ending the upload before the body; this front always sends the 100
    (Node does) and reads the whole body before it answers. An empty
    "Expect:" header turns it off.
  * Signed and refused by this front when done wrong (see the self-test):
    a wrong secret (403 SignatureDoesNotMatch), an unknown key (403
    InvalidAccessKeyId), no Authorization (403 AccessDenied), no
    x-amz-content-sha256 (400 InvalidRequest).

signed() below follows that recipe with the curl binary, so tests sign the
way the agent does; no Python SigV4 signer is needed.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Optional
from urllib.parse import quote

from clients import ensure_npm_tool
from httpclient import free_port, wait_until

HOST = "127.0.0.1"
S3RVER_VERSION = "3.7.1"
FRONT_JS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "s3front.js")
CONTROL = "/__s3front/"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
WRITES = ("PutObject", "UploadPart", "CreateMultipartUpload", "CompleteMultipartUpload")
KINDS = ("ListBuckets", "CreateBucket", "DeleteBucket", "HeadBucket", "ListObjects", "ListMultipartUploads",
         "PutObject", "GetObject", "HeadObject", "DeleteObject", "CreateMultipartUpload", "UploadPart",
         "CompleteMultipartUpload", "AbortMultipartUpload", "ListParts", "Other")
BACKENDS = ("s3rver", "moto")


def ensure_s3rver() -> str:
    """The s3rver binary, installed from the npm registry on first use."""
    return ensure_npm_tool("s3rver", S3RVER_VERSION, "s3rver")


def moto_available() -> bool:
    """Whether this Python can run moto's server mode (moto with its server
    extras: flask, flask_cors). Not installed by the tests: PyPI is not
    reachable from every test machine."""
    return all(importlib.util.find_spec(m) is not None for m in ("moto", "flask", "flask_cors"))


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _records(body: bytes, element: str) -> list:
    """[{child: text}] for every `element` of an S3 XML answer, whatever
    its namespace (s3rver's and moto's differ)."""
    root = ET.fromstring(body)
    return [{_local(c.tag): c.text for c in e} for e in root.iter() if _local(e.tag) == element]


def _field(body: bytes, name: str) -> Optional[str]:
    root = ET.fromstring(body)
    return next((e.text for e in root.iter() if _local(e.tag) == name), None)


def s3_path(bucket: str, key: str) -> str:
    """/bucket/key with the key in S3's canonical encoding (uppercase %XX for
    every byte but A-Z a-z 0-9 - _ . ~ and "/")."""
    return "/%s/%s" % (bucket, quote(key, safe="/~"))


def s3_query(params) -> str:
    """A query string as S3 canonicalises it: sorted, every name=value
    encoded, a parameter without a value as "name=". `params` is a dict or
    a list of pairs; "" when empty."""
    pairs = sorted(params.items() if isinstance(params, dict) else params)
    return "&".join("%s=%s" % (quote(str(k), safe="~"), quote(str(v), safe="~")) for k, v in pairs)


@dataclass
class S3Reply:
    """What curl got: status 0 when there was no final response head."""
    status: int
    headers: dict                      # lowercase name -> last value
    body: bytes
    curl_rc: int
    stderr: str
    elapsed: float                     # seconds, the whole transfer
    ttfb: float                        # curl's time_starttransfer
    argv: list = field(default_factory=list)

    def code(self) -> Optional[str]:
        """The S3 error code of an XML error body, else None."""
        try:
            return ET.fromstring(self.body).findtext("Code")
        except ET.ParseError:
            return None

    def __str__(self) -> str:
        return "%s -> status %s rc %s\n%s\n%s" % (" ".join(self.argv), self.status, self.curl_rc,
                                                 self.body[:2000].decode("utf-8", "replace"), self.stderr)


class S3Server:
    """s3rver or moto + s3front on 127.0.0.1 (see the module docstring)."""

    def __init__(self, bucket: str = "sluice-l2", region: str = "us-east-1",
                 access_key: str = "AKIASLUICETEST000001", secret: str = "sluice-test-secret/0123456789abcdef",
                 min_part_size: int = 5 * 1024 * 1024, keep_data: bool = False, backend: str = "s3rver"):
        assert backend in BACKENDS, backend
        self.backend = backend
        self.bucket = bucket
        self.region = region
        self.access_key = access_key
        self.secret = secret
        self.min_part_size = min_part_size
        self.keep_data = keep_data
        self.port = free_port()
        self.upstream_port = free_port()
        self.workdir: Optional[str] = None
        self._procs: list = []

    # ---------------------------------------------------------- lifecycle

    @property
    def endpoint(self) -> str:
        return "http://%s:%d" % (HOST, self.port)

    @property
    def vhost_endpoint(self) -> str:
        """The endpoint for virtual-host addressing: http://localhost:PORT,
        to which a client prepends "BUCKET." (a curl-only host name)."""
        return "http://localhost:%d" % self.port

    @property
    def data_dir(self) -> str:
        return os.path.join(self.workdir, "data")

    def start(self) -> "S3Server":
        """Install s3rver if needed, start both processes, create the
        bucket. Raises RuntimeError (with their logs) when one fails."""
        if self.backend == "moto" and not moto_available():
            raise RuntimeError("moto's server mode is not installed for %s" % sys.executable)
        s3rver = ensure_s3rver() if self.backend == "s3rver" else None
        self.workdir = tempfile.mkdtemp(prefix="sluice-s3-")
        os.makedirs(self.data_dir)
        try:
            self._spawn_store(s3rver)
            self._start_front()
            self.create_bucket(self.bucket)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM both processes (SIGKILL after `timeout`), remove the data."""
        for name, proc, log in reversed(self._procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            log.close()
        self._procs = []
        if self.workdir and not self.keep_data:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> "S3Server":
        return self.start() if not self._procs else self

    def __exit__(self, *exc) -> None:
        self.stop()

    def down(self) -> None:
        """The store goes down: the front is killed (SIGKILL), so requests
        in flight end abruptly and new connections are refused. The objects
        stay (they are in the store behind it)."""
        for i, (name, proc, log) in enumerate(self._procs):
            if name == "front":
                proc.kill()
                proc.wait()
                log.close()
                del self._procs[i]
                return

    def up(self) -> None:
        """The store comes back after down(), on the same port, with no
        fault rules and an empty request log."""
        if not any(name == "front" for name, _, _ in self._procs):
            self._start_front()

    def _start_front(self) -> None:
        ready = os.path.join(self.workdir, "front.ready")
        if os.path.exists(ready):
            os.unlink(ready)
        self._spawn("front", ["node", FRONT_JS, "--port", str(self.port), "--upstream-port",
                              str(self.upstream_port), "--backend", self.backend,
                              "--data", self.data_dir, "--region", self.region,
                              "--access-key", self.access_key, "--secret", self.secret,
                              "--min-part-size", str(self.min_part_size), "--ready-file", ready])
        self._wait(lambda: os.path.exists(ready), "s3front")

    def _spawn_store(self, s3rver: Optional[str]) -> None:
        if self.backend == "s3rver":
            self._spawn("store", [s3rver, "-d", self.data_dir, "-a", HOST, "-p", str(self.upstream_port),
                                  "-s", "--no-vhost-buckets"])
        else:                             # EntityTooSmall is the front's (set_min_part_size)
            env = dict(os.environ, S3_UPLOAD_PART_MIN_SIZE="1", MOTO_ALLOW_NONEXISTENT_REGION="true")
            self._spawn("store", [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(self.upstream_port)],
                        env)
        self._wait_port(self.upstream_port, self.backend)

    def _spawn(self, name: str, argv: list, env: Optional[dict] = None) -> None:
        log = open(os.path.join(self.workdir, name + ".log"), "ab")
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env)
        self._procs.append((name, proc, log))

    def _wait(self, ready, name: str, timeout: float = 20.0) -> None:
        def check():
            for pname, proc, _ in self._procs:
                if proc.poll() is not None:
                    raise RuntimeError("%s exited with %s:\n%s" % (pname, proc.returncode, self.logs()))
            return ready()
        try:
            wait_until(check, timeout, interval=0.05, message="%s did not start" % name)
        except AssertionError as e:
            raise RuntimeError("%s\n%s" % (e, self.logs()))

    def _wait_port(self, port: int, name: str) -> None:
        def accepting():
            try:
                socket.create_connection((HOST, port), 0.5).close()
                return True
            except OSError:
                return False
        self._wait(accepting, name)

    def logs(self) -> str:
        """The two processes' output (for failure messages)."""
        out = []
        for name in ("store", "front"):
            p = os.path.join(self.workdir or "", name + ".log")
            if os.path.exists(p):
                with open(p, "rb") as f:
                    out.append("--- %s\n%s" % (name, f.read()[-4000:].decode("utf-8", "replace")))
        return "\n".join(out)

    def aws_env(self) -> dict:
        """The standard credential variables for this store."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret,
                "AWS_REGION": self.region}

    def url(self, key: str, query=None, bucket: Optional[str] = None) -> str:
        """The path-style URL of `key` in S3's canonical form."""
        q = s3_query(query) if query else ""
        return self.endpoint + s3_path(bucket or self.bucket, key) + ("?" + q if q else "")

    # ---------------------------------------------------------- control

    def _control(self, name: str, payload=None):
        conn = http.client.HTTPConnection(HOST, self.port, timeout=10)
        try:
            body = json.dumps(payload).encode() if payload is not None else b""
            conn.request("POST" if name != "log" else "GET", CONTROL + name, body=body,
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
            if r.status != 200:
                raise RuntimeError("s3front control %s: %s %s" % (name, r.status, data))
            return json.loads(data)
        finally:
            conn.close()

    def add_fault(self, type_: str, count: Optional[int] = 1, kinds=None, match: Optional[str] = None,
                  **params) -> None:
        """Append one fault rule (see s3front.js); the named knobs below are
        the usual ways in."""
        rule = {"type": type_, "count": count, "kinds": list(kinds) if kinds else None, "match": match}
        rule.update(params)
        self._control("faults", [rule])

    def fail_writes(self, status: int = 500, count: Optional[int] = 1, kinds=WRITES, match=None,
                    code: Optional[str] = None) -> None:
        self.add_fault("status", count, kinds, match, status=status, **({"code": code} if code else {}))

    def fail_reads(self, status: int = 500, count: Optional[int] = 1, kinds=("GetObject", "HeadObject"),
                   match=None, code: Optional[str] = None) -> None:
        self.fail_writes(status, count, kinds, match, code)

    def slow_writes(self, ms: int, count: Optional[int] = None, kinds=WRITES, match=None) -> None:
        self.add_fault("put_delay", count, kinds, match, ms=ms)

    def kill_upload_after(self, nbytes: int, count: Optional[int] = 1, kinds=WRITES, match=None) -> None:
        self.add_fault("kill_upload", count, kinds, match, bytes=nbytes)

    def delay_reads(self, ms: int, count: Optional[int] = None, kinds=("GetObject", "HeadObject"),
                    match=None) -> None:
        self.add_fault("get_delay", count, kinds, match, ms=ms)

    def kill_download_after(self, nbytes: int, count: Optional[int] = 1, kinds=("GetObject",), match=None) -> None:
        self.add_fault("kill_download", count, kinds, match, bytes=nbytes)

    def truncate_reads(self, nbytes: int, count: Optional[int] = 1, kinds=("GetObject",), match=None) -> None:
        self.add_fault("truncate", count, kinds, match, bytes=nbytes)

    def set_min_part_size(self, nbytes: int) -> None:
        self._control("config", {"minPartSize": nbytes})
        self.min_part_size = nbytes

    def faults(self) -> list:
        """The rules with their remaining counts."""
        return self._control("faults", [])

    def clear_faults(self) -> None:
        """Drop the fault rules (the log stays)."""
        self._control("clear")

    def reset(self) -> None:
        """Drop the fault rules and the request log."""
        self._control("reset")

    def request_log(self, kind: Optional[str] = None) -> list:
        entries = self._control("log")
        return [e for e in entries if kind is None or e["kind"] == kind]

    def count(self, kind: Optional[str] = None, method: Optional[str] = None, status: Optional[int] = None,
              outcome: Optional[str] = None) -> int:
        return sum(1 for e in self.request_log(kind) if (method is None or e["method"] == method)
                   and (status is None or e["status"] == status) and (outcome is None or e["outcome"] == outcome))

    def counts(self) -> dict:
        """{kind: n} over the whole log."""
        out: dict = {}
        for e in self.request_log():
            out[e["kind"]] = out.get(e["kind"], 0) + 1
        return out

    def wait_idle(self, timeout: float = 10.0) -> list:
        """Wait until no logged request is still open; returns the log."""
        def idle():
            log = self.request_log()
            return (log,) if all(e["outcome"] != "open" for e in log) else None
        return wait_until(idle, timeout, message="s3 requests still open")[0]

    # ---------------------------------------------------------- direct (s3rver itself)

    def _direct(self, method: str, path: str, body: bytes = b"", headers: Optional[dict] = None):
        headers = dict(headers or {})
        if self.backend == "moto":       # moto refuses anonymous reads of private objects; it checks no signature
            headers["Authorization"] = ("AWS4-HMAC-SHA256 Credential=%s/19700101/%s/s3/aws4_request, "
                                        "SignedHeaders=host, Signature=0" % (self.access_key, self.region))
        conn = http.client.HTTPConnection(HOST, self.upstream_port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def create_bucket(self, name: str) -> None:
        status, _, body = self._direct("PUT", "/" + name)
        if status != 200:
            raise RuntimeError("create bucket %s: %s %s" % (name, status, body))

    def list_objects(self, prefix: str = "", bucket: Optional[str] = None) -> dict:
        """{key: size} of every complete object under `prefix`."""
        out, token = {}, None
        while True:
            q = {"list-type": "2", "prefix": prefix, **({"continuation-token": token} if token else {})}
            status, _, body = self._direct("GET", "/%s?%s" % (bucket or self.bucket, s3_query(q)))
            if status != 200:
                raise RuntimeError("list %s: %s %s" % (prefix, status, body))
            for c in _records(body, "Contents"):
                out[c["Key"]] = int(c["Size"])
            token = _field(body, "NextContinuationToken")
            if _field(body, "IsTruncated") != "true" or not token:
                return out

    def multipart_uploads(self, bucket: Optional[str] = None) -> list:
        """[(key, upload_id)] of the multipart uploads neither completed nor
        aborted (s3rver has no ListMultipartUploads: read from its store)."""
        bucket = bucket or self.bucket
        if self.backend == "moto":
            status, _, body = self._direct("GET", "/%s?uploads=" % bucket)
            if status != 200:
                raise RuntimeError("list uploads: %s %s" % (status, body))
            return sorted((u["Key"], u["UploadId"]) for u in _records(body, "Upload"))
        d = self._uploads_dir(bucket)
        out = []
        for uid in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            with open(os.path.join(d, uid, "key")) as f:
                out.append((f.read(), uid))
        return out

    def parts(self, key: str, upload_id: str, bucket: Optional[str] = None) -> dict:
        """{part number: size} stored for an upload in progress ({} when it
        is unknown)."""
        bucket = bucket or self.bucket
        if self.backend == "moto":
            status, _, body = self._direct("GET", s3_path(bucket, key) + "?" + s3_query({"uploadId": upload_id}))
            return {int(p["PartNumber"]): int(p["Size"]) for p in _records(body, "Part")} if status == 200 else {}
        d = os.path.join(self._uploads_dir(bucket), upload_id)
        names = os.listdir(d) if os.path.isdir(d) else []
        return {int(n): os.path.getsize(os.path.join(d, n)) for n in names if n.isdigit()}

    def _uploads_dir(self, bucket: str) -> str:
        return os.path.join(self.data_dir, bucket, "._S3rver_uploads")

    def get_object(self, key: str, bucket: Optional[str] = None) -> Optional[bytes]:
        """The object's bytes, or None when there is none."""
        status, _, body = self._direct("GET", s3_path(bucket or self.bucket, key))
        return body if status == 200 else None

    def head_object(self, key: str, bucket: Optional[str] = None) -> Optional[dict]:
        """The object's headers (x-amz-meta-* among them), or None."""
        status, headers, _ = self._direct("HEAD", s3_path(bucket or self.bucket, key))
        return headers if status == 200 else None

    def put_object(self, key: str, data: bytes, metadata: Optional[dict] = None,
                   content_type: str = "application/octet-stream", bucket: Optional[str] = None) -> None:
        """Store `data` as `key`, with x-amz-meta-NAME for each metadata item:
        the way to plant a corrupt or truncated object (metadata claiming
        another size or digest than the bytes)."""
        headers = {"Content-Type": content_type}
        headers.update({"x-amz-meta-" + k: str(v) for k, v in (metadata or {}).items()})
        status, _, body = self._direct("PUT", s3_path(bucket or self.bucket, key), data, headers)
        if status != 200:
            raise RuntimeError("put %s: %s %s" % (key, status, body))

    def delete_object(self, key: str, bucket: Optional[str] = None) -> None:
        status, _, body = self._direct("DELETE", s3_path(bucket or self.bucket, key))
        if status != 204:
            raise RuntimeError("delete %s: %s %s" % (key, status, body))

    # ---------------------------------------------------------- signed (through the front, with curl)

    def signed(self, method: str, key: Optional[str] = None, query=None, body: Optional[bytes] = None,
               headers: Optional[dict] = None, payload_hash: Optional[str] = "sha256",
               secret: Optional[str] = None, access_key: Optional[str] = None, sign: bool = True,
               post_fields: bool = False, target: Optional[str] = None, timeout: float = 30.0,
               vhost: bool = False) -> S3Reply:
        """One request to the front signed by the curl binary as the agent
        signs (the recipe in the module docstring). `key` None addresses the
        bucket; `target` (a path and query written as is) overrides key and
        query, to send what the recipe forbids. payload_hash: "sha256" (the
        body's hex SHA-256), "UNSIGNED-PAYLOAD", any other string as is, or
        None to send no x-amz-content-sha256. A body goes as CURLOPT_UPLOAD
        (curl -T) or, post_fields=True, as CURLOPT_POSTFIELDS. vhost=True
        addresses http://BUCKET.localhost:PORT/key instead of the path."""
        if target is None:
            q = s3_query(query) if query else ""
            path = s3_path(self.bucket, key) if key is not None else "/" + self.bucket
            if vhost:                                   # the bucket moves to the host name
                path = path[len(self.bucket) + 1:] or "/"
            target = path + ("?" + q if q else "")
        base = "http://%s.localhost:%d" % (self.bucket, self.port) if vhost else self.endpoint
        tmp = tempfile.mkdtemp(prefix="s3req-")
        try:
            return self._curl(method, base + target, body, headers or {}, payload_hash,
                              (access_key or self.access_key, secret or self.secret) if sign else None,
                              post_fields, timeout, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _curl(self, method, url, body, headers, payload_hash, creds, post_fields, timeout, tmp) -> S3Reply:
        argv = ["curl", "-sS", "--max-time", str(timeout), "-o", os.path.join(tmp, "body"),
                "-D", os.path.join(tmp, "head"), "-w", "%{http_code} %{time_starttransfer}"]
        if creds:
            argv += ["--aws-sigv4", "aws:amz:%s:s3" % self.region, "--user", "%s:%s" % creds]
        if payload_hash == "sha256":
            payload_hash = hashlib.sha256(body or b"").hexdigest()
        if payload_hash is not None:
            argv += ["-H", "x-amz-content-sha256: " + payload_hash]
        for k, v in headers.items():
            argv += ["-H", "%s: %s" % (k, v)]
        if body is not None:
            with open(os.path.join(tmp, "upload"), "wb") as f:
                f.write(body)
            argv += ["--data-binary" if post_fields else "-T", ("@" if post_fields else "") + f.name]
        argv += ["--head"] if method == "HEAD" else ["-X", method]
        start = time.monotonic()
        p = subprocess.run(argv + [url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        elapsed = time.monotonic() - start
        code, ttfb = (p.stdout.split() + ["0", "0"])[:2]
        got = b"" if method == "HEAD" else _read(os.path.join(tmp, "body"))   # --head writes the head there
        status = int(code) if int(code) >= 200 else 0       # 100 Continue is no answer
        return S3Reply(status, _last_head(os.path.join(tmp, "head")), got,
                       p.returncode, p.stderr, elapsed, float(ttfb), argv + [url])


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


def _last_head(path: str) -> dict:
    """The headers of the last response head curl wrote (after any 100)."""
    heads = _read(path).decode("latin-1").replace("\r\n", "\n").strip().split("\n\n")
    out = {}
    for line in heads[-1].split("\n")[1:] if heads and heads[-1] else []:
        if ":" in line:
            k, v = line.split(":", 1)
            out[k.strip().lower()] = v.strip()
    return out
