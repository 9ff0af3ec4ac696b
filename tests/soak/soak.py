"""The soak (issue 18): mixed load on every route through one real edge
(HAProxy + the ASan agent, tests/lib/edge.py) with an S3 bucket as its L2
(tests/lib/s3server.py) and the test origin (tests/lib/origin.py), while
faults are injected on a schedule; then the whole failure contract is
checked once everything is restored. docs/soak.md says what it does, its
knobs and how to read the table it prints.

    run(seconds=600, seed=1) -> 0 when no violation, 1 otherwise

Load (Load): `workers` client threads, each a loop bounded by the deadline
and by a request count, drawing operations at random: hits and fills on
every artifact route, stampedes (several clients at once on a cold, slowly
served object), ranges, conditional requests, metadata (short TTL, new
versions published: revalidation, stale serving), slow readers and
clients that vanish mid-body.

Faults (Faults): one thread, a timer between faults (the only waiting that
is not on a condition), kinds in a shuffled rotation: origin resets, stalls
and truncations (armed on the next fresh objects and on a metadata
document, fail_times so a retry succeeds), ENOSPC on the cache filesystem
(the SLUICE_TESTING seam), the S3 store killed and restored, the agent
killed and restarted, HAProxy reloaded, the agent reloaded (SIGHUP).

Every response is checked (check_response): a whole body must be
byte-exact (an artifact's body_for, any published version of a document),
a short one must be a prefix of it and must not have ended cleanly. A
clean short body, or wrong bytes, is a corruption. Statuses are counted;
5xx and no-response are legitimate while a fault is on.

At the end (Final): the agent idle, no temp file, every object file well
formed with the origin's bytes, no incomplete multipart upload, every
bucket object of the size its header and the origin say, the agent's
descriptors and threads at their baseline, RSS within SOAK_RSS_SLACK_MB
of it, no sanitizer report, a clean exit (LeakSanitizer on SIGTERM).
"""

import base64
import collections
import hashlib
import os
import random
import re
import shutil
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "contract"))
sys.path.insert(0, HERE)

from catalogue import MiB, Catalogue  # noqa: E402
from clients import npm_install  # noqa: E402
from contract import BASE_SETTINGS, OBJ_HEADER_SIZE, parse_object_header  # noqa: E402
from edge import Edge  # noqa: E402
from httpclient import fetch, rss_kib, tcp_connections, wait_until  # noqa: E402
from origin import OriginServer  # noqa: E402
from s3server import S3Server  # noqa: E402

ROUTES = ("generic", "npm", "pypi", "pypi_files", "cargo_index", "cargo_dl", "go", "maven")
FAULT_KINDS = ("origin_reset", "origin_stall", "origin_truncate", "origin_5xx", "enospc",
               "s3_down", "agent_kill", "haproxy_reload", "agent_reload")
OPS = (("get", 36), ("fill", 14), ("stampede", 4), ("range", 10), ("conditional", 10),
       ("meta", 16), ("slow", 3), ("vanish", 4), ("publish", 3), ("install", 1))
MAX_REQUESTS_PER_WORKER = 200_000
# Edge's sanitizer options with a smaller quarantine (ASan's default, 256
# MiB of freed blocks held back, would hide a leak in RSS for a long time).
ASAN_OPTIONS = "detect_leaks=1:abort_on_error=0:exitcode=66:quarantine_size_mb=32"
REQUEST_TIMEOUT = 30


def short_tb():
    """The end of the current traceback (where it failed and why)."""
    return " | ".join(traceback.format_exc().strip().splitlines()[-4:])


def env_int(name, default):
    return int(os.environ.get(name, default))


# ---------------------------------------------------------------- tallies

class Tally:
    """Counters shared by every thread (one lock)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.outcomes = collections.Counter()      # (route, outcome)
        self.faults = collections.Counter()        # kind
        self.cache_status = collections.Counter()  # what the edge said it did (cache_class)
        self.violations = []                       # strings

    def count(self, route, outcome):
        with self.lock:
            self.outcomes[(route, outcome)] += 1

    def fault(self, kind):
        with self.lock:
            self.faults[kind] += 1

    def violation(self, what):
        with self.lock:
            self.violations.append(what)

    def total(self, outcome):
        return sum(n for (_, o), n in self.outcomes.items() if o == outcome)


def check_response(obj, r, tally, want_range=None, vanished=False):
    """Classify one response for `obj` and count it; wrong bytes or a clean
    short body are corruptions (a violation each)."""
    outcome = classify(obj, r, want_range, vanished)
    tally.count(obj.route, outcome)
    if r.status is not None:
        with tally.lock:
            tally.cache_status[cache_class(r.header("Cache-Status"))] += 1
    if outcome in ("corrupt", "unexpected") or outcome.startswith("status_4"):
        tally.violation("%s %s: %s (status %s, %d bytes, complete %s, error %s, Cache-Status %s)"
                        % (outcome, obj.path, obj.kind, r.status, len(r.body), r.complete, r.error,
                           r.header("Cache-Status")))
    if r.status == 200 and r.complete and r.header("ETag"):
        obj.etag = r.header("ETag")
    return outcome


def cache_class(value):
    """One word for a Cache-Status value (docs/ecosystems.md's table)."""
    v = value or ""
    if "fwd=bypass" in v:
        m = re.search(r"detail=([a-z-]+)", v)
        # no detail: HAProxy passed it to the origin itself (be_origin_*:
        # the agent down or its verdict late, i.e. fail-open)
        return "bypass (%s)" % (m.group(1) if m else "fail-open")
    for needle, name in (("l2-hit", "l2-hit"), ("stale-while-revalidate", "stale-while-revalidate"),
                         ("stale-if-error", "stale-if-error"), ("fwd-status=304", "revalidated"),
                         ("fwd=stale", "refetched-stale"), ("hit", "hit"), ("miss", "miss")):
        if needle in v:
            return name
    return "other: " + v if v else "none"


def classify(obj, r, want_range, vanished):
    if r.status is None:
        return "no_response"
    if r.status == 304:
        return "not_modified"
    if r.status >= 500:
        return "5xx"
    if r.status == 206:
        return partial_content(obj, r)
    if r.status != 200:
        return "status_%d" % r.status
    whole = obj.acceptable()
    if r.complete:
        if any(r.body == b for b in whole) and r.framing != "close":
            return "ok" if want_range is None else "range_as_200"
        return "corrupt"
    if not any(b.startswith(r.body) for b in whole):
        return "corrupt"
    return "vanished" if vanished else "aborted"


def partial_content(obj, r):
    m = re.match(r"bytes (\d+)-(\d+)/(\d+)$", r.header("Content-Range") or "")
    if not m or obj.kind != "artifact" or int(m.group(3)) != obj.size:
        return "corrupt"
    want = obj.body()[int(m.group(1)):int(m.group(2)) + 1]
    if r.complete:
        return "range_ok" if r.body == want else "corrupt"
    return "aborted" if want.startswith(r.body) and len(r.body) < len(want) else "corrupt"


# ---------------------------------------------------------------- load

class Load:
    """The client side: `workers` threads of random operations until the
    deadline (or the request bound)."""

    def __init__(self, soak, workers, deadline, seed):
        self.s = soak
        self.workers = workers
        self.deadline = deadline
        self.seed = seed
        self.threads = []
        self.install_lock = threading.Lock()

    def start(self):
        for i in range(self.workers):
            t = threading.Thread(target=self.worker, args=(i,), name="soak-load-%d" % i, daemon=True)
            t.start()
            self.threads.append(t)

    def join(self):
        """Every thread, at most REQUEST_TIMEOUT * 3 past the deadline."""
        for t in self.threads:
            t.join(max(0.0, self.deadline - time.monotonic()) + REQUEST_TIMEOUT * 3)
            if t.is_alive():
                self.s.tally.violation("load thread %s still running %ds after the deadline"
                                       % (t.name, REQUEST_TIMEOUT * 3))

    def worker(self, i):
        rng = random.Random(self.seed * 1000 + i)
        names, weights = zip(*OPS)
        n = 0
        while time.monotonic() < self.deadline and n < MAX_REQUESTS_PER_WORKER:
            op = rng.choices(names, weights)[0]
            try:
                getattr(self, "op_" + op)(rng)
            except Exception:
                self.s.tally.violation("harness error in %s: %s" % (op, short_tb()))
            n += 1

    def get(self, obj, **kw):
        kw.setdefault("timeout", REQUEST_TIMEOUT)
        return self.s.edge.get(obj.path, **kw)

    def op_get(self, rng):
        obj = self.s.cat.pick()
        check_response(obj, self.get(obj), self.s.tally)

    def op_fill(self, rng):
        obj = self.s.cat.new_artifact(knobs=self.s.faults.knobs_for_fill(rng))
        check_response(obj, self.get(obj), self.s.tally)

    def op_stampede(self, rng):
        """Several clients at once on a cold object the origin serves in
        about a second: they share one fill."""
        size = rng.randint(256 * 1024, 2 * MiB)
        knobs = dict(self.s.faults.knobs_for_fill(rng), rate=2 * MiB)
        obj = self.s.cat.new_artifact(size=size, knobs=knobs)
        results = [None] * rng.randint(3, 8)

        def one(k):
            results[k] = self.get(obj)
        ts = [threading.Thread(target=one, args=(k,), daemon=True) for k in range(len(results))]
        for t in ts:
            t.start()
        for t in ts:
            t.join(REQUEST_TIMEOUT + 5)
        for r in results:
            if r is None:
                self.s.tally.violation("stampede client on %s never returned" % obj.path)
            else:
                check_response(obj, r, self.s.tally)

    def op_range(self, rng):
        obj = self.s.cat.pick("artifact")
        if obj is None or obj.size < 2:
            return
        a = rng.randrange(obj.size - 1)
        b = rng.randrange(a, obj.size)
        r = self.get(obj, headers={"Range": "bytes=%d-%d" % (a, b)})
        check_response(obj, r, self.s.tally, want_range=(a, b))

    def op_conditional(self, rng):
        obj = self.s.cat.pick()
        if obj.etag is None:
            check_response(obj, self.get(obj), self.s.tally)
        if obj.etag is not None:
            check_response(obj, self.get(obj, headers={"If-None-Match": obj.etag}), self.s.tally)

    def op_meta(self, rng):
        obj = self.s.cat.pick("meta")
        check_response(obj, self.get(obj), self.s.tally)

    def op_publish(self, rng):
        obj = self.s.cat.pick("meta")
        if len(obj.versions) < 30:
            self.s.cat.publish(obj)
            self.s.tally.fault("new_version")

    def op_install(self, rng):
        """`npm install` of a packument's latest version, one at a time: the
        real client through the edge (its own integrity check included)."""
        if shutil.which("npm") is None or not self.install_lock.acquire(blocking=False):
            return
        try:
            obj = rng.choice([m for m in self.s.cat.metadata if m.route == "npm"])
            left = self.deadline - time.monotonic()
            if left < 5:
                return
            project = tempfile.mkdtemp(prefix="npm-", dir=self.s.tmp)
            r = npm_install(self.s.public + "/npm/", project, [obj.opath.lstrip("/")], timeout=min(60, left + 15),
                            npmrc={"fetch-retries": 1, "fetch-retry-mintimeout": 500, "fetch-retry-maxtimeout": 1000})
            outcome = "install_ok" if r.ok else "install_corrupt" if "EINTEGRITY" in r.output else "install_failed"
            self.s.tally.count("npm", outcome)
            if outcome == "install_corrupt":
                self.s.tally.violation("npm install %s: integrity error: %s" % (obj.opath, r.output[-1500:]))
            shutil.rmtree(project, ignore_errors=True)
        finally:
            self.install_lock.release()

    def op_slow(self, rng):
        """A slow but moving reader (well above client_stall_timeout's bar)."""
        obj = self.s.cat.pick("artifact")
        r = self.get(obj, read_rate=rng.choice((64 * 1024, 256 * 1024)), rcvbuf=16384, timeout=8)
        self.s.tally.fault("slow_client")
        check_response(obj, r, self.s.tally, vanished=r.error == "timeout")

    def op_vanish(self, rng):
        """A client that reads part of a body and goes away."""
        obj = self.s.cat.new_artifact(size=rng.randint(300 * 1024, 3 * MiB),
                                      knobs={"rate": 1 * MiB}) if rng.random() < 0.5 else self.s.cat.pick("artifact")
        r = self.get(obj, stop_reading_after=rng.randint(0, max(obj.size // 2, 1)), rcvbuf=8192,
                     timeout=rng.uniform(0.2, 1.5))
        self.s.tally.fault("vanishing_client")
        check_response(obj, r, self.s.tally, vanished=True)


# ---------------------------------------------------------------- faults

class Faults:
    """The fault schedule: one thread, one fault every `every` seconds, the
    kinds in a shuffled rotation; each fault restores what it broke before
    the next one starts."""

    def __init__(self, soak, every, deadline, seed):
        self.s = soak
        self.every = every
        self.deadline = deadline
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.armed = []          # origin knobs for the next fresh objects
        self.thread = threading.Thread(target=self.run, name="soak-faults", daemon=True)

    def start(self):
        self.thread.start()

    def join(self):
        self.stop.set()
        self.thread.join(120)
        if self.thread.is_alive():
            self.s.tally.violation("the fault schedule did not finish")

    def run(self):
        kinds = []
        while not self.stop.wait(self.every) and time.monotonic() < self.deadline - 2:
            if not kinds:
                kinds = list(FAULT_KINDS)
                self.rng.shuffle(kinds)
            kind = kinds.pop()
            try:
                getattr(self, "f_" + kind)()
                self.s.tally.fault(kind)
            except Exception:
                self.s.tally.violation("fault %s failed: %s" % (kind, short_tb()))
        with self.lock:
            self.armed = []

    def knobs_for_fill(self, rng):
        """Origin knobs for a fresh object: an armed fault if any, else a
        rate now and then (so faults elsewhere meet transfers in flight)."""
        with self.lock:
            if self.armed:
                return self.armed.pop()
        return {"rate": 4 * MiB} if rng.random() < 0.2 else {}

    def arm(self, knobs, n=4):
        with self.lock:
            self.armed = [dict(knobs, fail_times=1) for _ in range(n)]
        self.s.cat.fault_metadata(dict(knobs, fail_times=2) if "status" in knobs else {"status": 503, "fail_times": 2})

    def hold(self, seconds):
        """A fault stays on this long (a timer: the schedule's own pacing)."""
        self.stop.wait(seconds)

    def f_origin_reset(self):
        self.arm({"reset_after": 700, "rate": 1 * MiB})

    def f_origin_stall(self):
        # half resume before origin_stall_timeout (3 s), half are abandoned
        self.arm({"stall_after": 900, "stall_ms": self.rng.choice((1000, 5000))})

    def f_origin_truncate(self):
        self.arm({"truncate_after": 500})

    def f_origin_5xx(self):
        self.arm({"status": 503})

    def f_enospc(self):
        self.s.edge.fault("kind=enospc&after=0")
        self.hold(2.5)
        self.s.edge.fault("kind=none")

    def f_s3_down(self):
        self.s.s3.down()
        self.hold(3)
        self.s.s3.up()

    def f_agent_kill(self):
        self.s.note_rss()
        self.s.edge.kill_agent()
        # the uploads the dead agent left open: the lifecycle rule's to reap
        self.s.orphaned_uploads.update(u for _, u in self.s.s3.multipart_uploads())
        self.hold(0.5)
        self.s.edge.start_agent()

    def f_haproxy_reload(self):
        self.s.edge.reload_haproxy()

    def f_agent_reload(self):
        self.s.edge.reload_agent()


# ---------------------------------------------------------------- the soak

class Soak:
    """One soak: the parts (origin, store, edge), the catalogue, the load
    and the fault schedule, the final checks and their findings."""

    def __init__(self, seconds, seed, workers, fault_every, rss_slack_mb):
        self.seconds = seconds
        self.seed = seed
        self.workers = workers
        self.fault_every = fault_every
        self.rss_slack_kib = rss_slack_mb * 1024
        self.tally = Tally()
        self.origin = self.s3 = self.edge = self.tmp = None
        self.base = {}
        self.end = {}
        self.partials = []
        self.orphaned_uploads = set()     # multipart uploads open when the agent was killed
        self.rss_peak = 0                 # KiB, the largest agent seen (before a kill, at the end)

    def settings(self):
        s = dict(BASE_SETTINGS)
        s.update({
            "l2_lookup_timeout": "500ms", "s3_multipart_threshold": "5M", "s3_part_size": "5M",
            "s3_endpoint": self.s3.endpoint, "s3_bucket": self.s3.bucket, "s3_region": self.s3.region,
            "cache_max_size": "48M",                 # evictions, so misses find the bucket
            "origin_stall_timeout": "3s",
            "metadata_ttl": "2s", "metadata_stale_while_revalidate": "2s",
            "metadata_error_hold": "1s", "log_level": "warn",
        })
        return s

    def start(self):
        self.tmp = tempfile.mkdtemp(prefix="sluice-soak-")
        self.origin = OriginServer().start()
        self.s3 = S3Server().start()
        env = dict(self.s3.aws_env(), ASAN_OPTIONS=ASAN_OPTIONS)
        self.edge = Edge(settings=self.settings(), origin=self.origin, env=env, origin_routes=ROUTES)
        self.edge.__enter__()
        self.public = "http://127.0.0.1:%d" % self.edge.ports["listen"]
        self.cat = Catalogue(self.origin, self.public, self.seed)

    def stop(self):
        if self.tally.violations and self.edge:
            os.environ["SLUICE_KEEP_TMP"] = "1"     # Edge.stop keeps the logs and the cache
            self.s3.keep_data = True
            print("soak: kept %s (edge) and %s (store) for the violations" % (self.edge.tmp, self.s3.workdir))
        try:
            if self.edge:
                self.edge.__exit__(None, None, None)
        except AssertionError as e:
            self.tally.violation("agent exit: %s" % str(e)[-3000:])
        for part in (self.s3, self.origin):
            if part:
                part.stop()
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def warm_up(self):
        """Every route once (metadata and an artifact each), then the
        baseline of the settled agent."""
        self.cat.new_metadata()
        objs = [self.cat.new_artifact(route=r, size=10_000) for r in sorted({"generic", "npm", "pypi_files",
                                                                            "cargo_dl", "go", "maven"})]
        for obj in objs + list(self.cat.metadata):
            check_response(obj, self.edge.get(obj.path, timeout=REQUEST_TIMEOUT), self.tally)
        self.settle()
        self.base = self.measure()

    # ------------------------------------------------------------ probes
    def private_fds(self):
        """The agent's descriptors minus HAProxy's pooled connections, the
        open-file cache and libcurl's idle connections to the store and
        the origin (as tests/integration/test_s3.py counts them)."""
        pid = self.edge.agent.pid
        outbound = sum(tcp_connections(pid, remote_port=p, any_state=True)
                       for p in (self.s3.port, self.origin.port))
        return self.edge.agent_private_fds() - outbound

    def note_rss(self):
        """The agent's RSS before it is killed: the end is measured on a
        later process, so each one's last size is checked too."""
        self.rss_peak = max(self.rss_peak, rss_kib(self.edge.agent.pid))

    def measure(self):
        return {"pid": self.edge.agent.pid, "fds": self.private_fds(),
                "threads": self.edge.agent_threads(), "rss_kib": rss_kib(self.edge.agent.pid)}

    def settle(self, timeout=60):
        e = self.edge
        e.wait_idle(timeout)
        wait_until(lambda: e.metric('sluice_l2_upload_queue_depth{tier="s3"}') == 0, timeout,
                   message="uploads still queued")
        e.wait_idle(timeout)
        self.s3.wait_idle(timeout)
        self.origin.wait_idle(timeout)

    # ------------------------------------------------------------ run
    def run(self):
        deadline = time.monotonic() + self.seconds
        self.faults = Faults(self, self.fault_every, deadline, self.seed)
        load = Load(self, self.workers, deadline, self.seed)
        self.t0 = time.monotonic()
        load.start()
        self.faults.start()
        load.join()
        self.faults.join()
        self.elapsed = time.monotonic() - self.t0

    def final_checks(self):
        """Each check on its own: one failing does not skip the others."""
        for check in (self.settle, self.check_disk, self.check_bucket, self.check_haproxies,
                      self.check_baseline, self.check_log):
            try:
                check()
            except Exception:
                self.tally.violation("%s: %s" % (check.__name__, short_tb()))
        for p in self.partials:
            self.tally.violation("partial: " + p)

    def check_haproxies(self):
        wait_until(lambda: all(h.poll() is not None for h in self.edge.old_haproxies), 30,
                   message="a reloaded-away HAProxy did not finish")

    def check_log(self):
        log = self.edge.agent_log()
        for marker in ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer"):
            if marker in log:
                self.tally.violation("agent log has a sanitizer report (%s)" % marker)

    def check_disk(self):
        try:
            wait_until(lambda: self.edge.temp_files() == [], 20, message="temp files left")
        except AssertionError:
            self.partials.append("cache tmp/: %s" % self.edge.temp_files())
        for path in self.edge.object_files():
            try:
                with open(path, "rb") as f:
                    data = f.read()
                meta = parse_object_header(data, path)
                if len(data) != OBJ_HEADER_SIZE + meta["size"]:
                    raise AssertionError("%d bytes, header says %d + %d" % (len(data), OBJ_HEADER_SIZE, meta["size"]))
                obj = self.cat.by_key.get(meta["key"])
                if obj is not None and obj.kind == "artifact" and data[OBJ_HEADER_SIZE:] != obj.body():
                    raise AssertionError("body differs from the origin's (%s)" % meta["key"])
            except (AssertionError, OSError) as e:
                if os.path.exists(path):
                    self.partials.append("object file %s: %s" % (path, e))

    def key_of(self, name):
        """The cache key of bucket object `name` (s3_prefix + the key's
        SHA-256), when it is one of the catalogue's."""
        if not hasattr(self, "_names"):
            self._names = {"sluice/" + hashlib.sha256(k.encode()).hexdigest(): k for k in self.cat.by_key}
        return self._names.get(name, "?")

    def bucket_listing(self):
        """{name: size} of every object, listed 16 prefixes at a time:
        s3rver 3.7 answers 500 to a listing of more than 1000 keys (a long
        soak leaves a few thousand)."""
        out = {}
        for digit in "0123456789abcdef":
            out.update(self.s3.list_objects(prefix="sluice/" + digit))
        return out

    def check_bucket(self):
        s3 = self.s3
        log = self.edge.agent_log()
        self.abandoned_uploads = 0
        for name, upload in s3.multipart_uploads():
            key = self.key_of(name)
            if "AbortMultipartUpload of %s failed" % key in log or upload in self.orphaned_uploads:
                self.abandoned_uploads += 1    # logged; the bucket's lifecycle rule reaps it (tier_s3.c)
                continue
            self.partials.append("bucket: multipart upload %s of %s (%s) left open, parts %s, no failed abort logged"
                                 " and not open when the agent was killed"
                                 % (upload, name, key, s3.parts(name, upload)))
        self.bucket_objects = 0
        for name, size in self.bucket_listing().items():
            self.bucket_objects += 1
            head = s3.head_object(name) or {}
            try:
                block = base64.b64decode(head.get("x-amz-meta-sluice", ""))
                meta = parse_object_header(block.ljust(OBJ_HEADER_SIZE, b"\0"), name)
            except (AssertionError, ValueError) as e:
                obj = self.cat.by_key.get(self.key_of(name))
                self.partials.append("bucket object %s (%s, origin size %s): %d bytes, bad metadata (%s; HEAD %s)"
                                     % (name, self.key_of(name), obj and obj.size, size, e,
                                        sorted(head.items())[:12] if head else "404"))
                continue
            obj = self.cat.by_key.get(meta["key"])
            if size != meta["size"]:
                self.partials.append("bucket object %s (%s): %d bytes, header says %d" % (name, meta["key"], size, meta["size"]))
            elif obj is not None and obj.kind == "artifact":
                if size != obj.size:
                    self.partials.append("bucket object %s (%s): %d bytes, origin's %d" % (name, meta["key"], size, obj.size))
                elif hashlib.sha256(s3.get_object(name) or b"").digest() != hashlib.sha256(obj.body()).digest():
                    self.partials.append("bucket object %s (%s): bytes differ from the origin's" % (name, meta["key"]))

    def check_baseline(self):
        b = self.base
        self.end = self.measure()
        for k, probe in (("fds", self.private_fds), ("threads", self.edge.agent_threads)):
            seen = []
            try:
                wait_until(lambda: seen.append(probe()) or seen[-1] == b[k], 20,
                           message="agent %s did not return to %d" % (k, b[k]))
            except AssertionError as e:
                self.tally.violation(str(e))
            self.end[k] = seen[-1]
        self.rss_peak = max(self.rss_peak, self.end["rss_kib"])
        if self.rss_peak > b["rss_kib"] + self.rss_slack_kib:
            self.tally.violation("RSS %d KiB, baseline %d KiB + slack %d KiB"
                                 % (self.rss_peak, b["rss_kib"], self.rss_slack_kib))


# ---------------------------------------------------------------- report

def report(s, out=sys.stdout):
    t = s.tally
    outcomes = sorted({o for _, o in t.outcomes})
    w = max([len(o) for o in outcomes] + [5])
    p = lambda line="": print(line, file=out)   # noqa: E731
    p()
    p("soak: %.0f s, seed %d, %d workers, a fault every %.1f s" % (getattr(s, "elapsed", 0), s.seed,
                                                                 s.workers, s.fault_every))
    p()
    p("requests by route and outcome")
    p("  %-12s " % "route" + " ".join("%*s" % (w, o) for o in outcomes) + " %*s" % (w, "total"))
    for r in ROUTES + ("all",):
        row = [sum(n for (rr, o), n in t.outcomes.items() if o == oc and (r == "all" or rr == r))
               for oc in outcomes]
        p("  %-12s " % r + " ".join("%*d" % (w, n) for n in row) + " %*d" % (w, sum(row)))
    p()
    p("Cache-Status of the answers")
    for k, n in sorted(t.cache_status.items(), key=lambda kv: -kv[1]):
        p("  %-28s %6d" % (k, n))
    p()
    p("faults injected (and load events)")
    for k in FAULT_KINDS + ("slow_client", "vanishing_client", "new_version"):
        p("  %-18s %6d" % (k, t.faults.get(k, 0)))
    p()
    p("  %-18s %6d" % ("corrupted bodies", t.total("corrupt")))
    p("  %-18s %6d" % ("partial objects", len(s.partials)))
    p("  %-18s %6d" % ("bucket objects", getattr(s, "bucket_objects", 0)))
    p("  %-18s %6d   (left by a killed agent or a logged failed abort: the lifecycle rule's)" % ("abandoned uploads",
                                                                       getattr(s, "abandoned_uploads", 0)))
    p()
    p("agent           baseline        end")
    for k in ("pid", "fds", "threads", "rss_kib"):
        p("  %-12s %10s %10s" % (k, s.base.get(k, "-"), s.end.get(k, "-")))
    p("  %-12s %10s %10s   (the largest agent: at the end or before a kill)" % ("rss_kib max", "", s.rss_peak or "-"))
    p()
    if t.violations:
        p("VIOLATIONS (%d):" % len(t.violations))
        for v in t.violations[:50]:
            p("  - " + v)
    else:
        p("soak: no violation")


def run(seconds=600, seed=1, workers=None, fault_every=None, rss_slack_mb=None, out=sys.stdout):
    """The whole soak, its table printed to `out`; returns 0 when there is
    no violation."""
    s = Soak(seconds, seed, workers or env_int("SOAK_WORKERS", 6),
             fault_every if fault_every is not None else float(os.environ.get("SOAK_FAULT_EVERY", "4")),
             rss_slack_mb if rss_slack_mb is not None else env_int("SOAK_RSS_SLACK_MB", 256))
    try:
        s.start()
        s.warm_up()
        s.run()
        s.final_checks()
    except Exception:
        s.tally.violation("soak aborted: %s" % short_tb())
    finally:
        s.stop()
    report(s, out)
    return 1 if s.tally.violations else 0
