"""Shared machinery of the failure-contract suite (tests/contract/).

Every contract test follows the same shape:

    base = self.baseline(e)            # after a warm-up request
    ... inject the fault, run concurrent clients ...
    self.assert_bodies(...)            # byte-exact, or an aborted transfer
    self.assert_contract(e, base, ...) # no temp file, nothing partial on disk,
                                       # fds/threads/connections back to base

"Back to baseline" (C6) is checked with deadlines (wait_until), never with
sleeps:

  * agent fds, excluding only *idle keep-alive* sockets: ESTABLISHED
    connections to the origin that libcurl keeps in its connection cache,
    ESTABLISHED connections from HAProxy that HAProxy keeps in its idle
    server pool, and HAProxy's SPOE connections (it opens more under load
    and closes them after `timeout idle`). Both are bounded and reused, not leaks; anything else - a
    temp file, a spool fd, a CLOSE_WAIT socket, a socket of an aborted
    transfer - is counted;
  * open object files: the open-file cache (open_file_cache_size) keeps hot
    committed objects open, so fds on object files are counted apart: there
    must be exactly sluice_open_file_cache_files of them, each on a distinct,
    still linked object file (no response holds one any more);
  * agent threads: exactly the baseline (the worker pool);
  * no agent socket in CLOSE_WAIT (a peer closed and the agent never did);
  * the agent's idea of its open HTTP connections equals the ESTABLISHED
    sockets on its HTTP port, and no response is attached to a fill;
  * HAProxy holds no client-side connection (every test client is gone);
  * the origin has no response in flight, and the agent holds no more
    origin connections than the idle-pool bound the test allows.
"""

import concurrent.futures
import hashlib
import os
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))

from edge import Edge  # noqa: E402
from httpclient import threads as proc_threads  # noqa: E402
from httpclient import wait_until  # noqa: E402
from origin import body_for  # noqa: E402

KiB = 1024
MiB = 1024 * 1024
OBJ_HEADER_SIZE = 4096

# Settings every contract edge starts from: enough origin slots that
# backpressure (issue 4) never interferes with a fault test unless a test
# asks for it, and logs quiet enough to read.
BASE_SETTINGS = {
    "origin_max_in_flight": "256",
    "origin_max_in_flight_per_origin": "256",
    "origin_queue_max": "1024",
    "cache_min_free": "0",
}
# The public registries' routes are off unless a test points them at the
# test origin (Edge's origin_routes): HAProxy must not resolve their host
# names at start (in a sandbox without DNS that costs a resolver timeout).


# --------------------------------------------------------------- processes

def parallel(fn, items, workers=None):
    """fn(item) for every item, all at once (one thread each); results in
    the order of items. Exceptions propagate."""
    items = list(items)
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers or max(1, len(items))) as ex:
        return list(ex.map(fn, items))


def _tcp_table(pid):
    """{inode: (local_port, remote_port, state)} for TCP sockets in pid's netns."""
    out = {}
    for table in ("tcp", "tcp6"):
        try:
            with open("/proc/%d/net/%s" % (pid, table)) as f:
                rows = f.read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            c = row.split()
            if len(c) < 10:
                continue
            out[c[9]] = (int(c[1].rsplit(":", 1)[1], 16), int(c[2].rsplit(":", 1)[1], 16), c[3])
    return out


def process_fds(pid):
    """[(fd, link target)] of a process."""
    out = []
    base = "/proc/%d/fd" % pid
    for fd in os.listdir(base):
        try:
            out.append((int(fd), os.readlink("%s/%s" % (base, fd))))
        except OSError:
            pass
    return out


ESTABLISHED, CLOSE_WAIT = "01", "08"


class Sockets:
    """A classification of one process's fds at one moment."""

    def __init__(self, pid, origin_port=None, http_port=None, listen_port=None, spop_port=None,
                 objects_dir=None):
        table = _tcp_table(pid)
        self.fds = process_fds(pid)
        self.core = []          # every fd but idle keep-alive sockets
        self.origin_pool = 0    # ESTABLISHED to the origin
        self.http_conns = 0     # ESTABLISHED on our HTTP port
        self.listen_conns = 0   # ESTABLISHED on the edge's listen port
        self.spop_conns = 0     # ESTABLISHED on the SPOP port (HAProxy's SPOE applets)
        self.close_wait = []
        self.object_fds = []        # fds on object files (the open-file cache)
        for fd, target in self.fds:
            if objects_dir and target.startswith(objects_dir + "/"):
                self.object_fds.append(target)
                continue
            if target.startswith("socket:["):
                t = table.get(target[8:-1])
                if t:
                    local, remote, state = t
                    if state == CLOSE_WAIT:
                        self.close_wait.append((fd, local, remote))
                    if state == ESTABLISHED:
                        if origin_port and remote == origin_port:
                            self.origin_pool += 1
                            continue
                        if http_port and local == http_port:
                            self.http_conns += 1
                            continue
                        if spop_port and local == spop_port:
                            self.spop_conns += 1
                            continue
                        if listen_port and local == listen_port:
                            self.listen_conns += 1
            self.core.append((fd, target))

    def objects_ok(self, cached):
        """Object-file fds are exactly the open-file cache's (`cached`, the
        metric; None when this build has no such cache)."""
        if cached is None:
            return not self.object_fds
        return (len(self.object_fds) == cached and len(set(self.object_fds)) == cached
                and not any(t.endswith(" (deleted)") for t in self.object_fds))

    def describe(self):
        return "core fds %d: %s; close_wait %s; object fds %s" % (
            len(self.core), sorted(self.core), self.close_wait, sorted(self.object_fds))


# ------------------------------------------------------------- the edge

class ContractEdge(Edge):
    def sockets(self):
        return Sockets(self.agent.pid, origin_port=self.origin.port if self.origin else None,
                       http_port=self.ports["http"], spop_port=self.ports["spop"],
                       objects_dir=os.path.realpath(os.path.join(self.cache_dir, "objects")))

    def haproxy_client_conns(self):
        return Sockets(self.haproxy.pid, listen_port=self.ports["listen"]).listen_conns

    def object_bodies(self):
        """{key: body bytes} of every committed object file; raises if a file
        is not a well-formed object (header + exactly `size` body bytes)."""
        out = {}
        for path in self.object_files():
            with open(path, "rb") as f:
                data = f.read()
            meta = parse_object_header(data, path)
            if len(data) != OBJ_HEADER_SIZE + meta["size"]:
                raise AssertionError("object file %s: %d bytes, header says %d + %d"
                                     % (path, len(data), OBJ_HEADER_SIZE, meta["size"]))
            out[meta["key"]] = data[OBJ_HEADER_SIZE:]
        return out

    def object_file_for(self, path):
        """The committed object file of /generic<path>, or None."""
        for f in self.object_files():
            with open(f, "rb") as fh:
                meta = parse_object_header(fh.read(OBJ_HEADER_SIZE), f)
            if meta["key"].split(":", 1)[1].lstrip("/") == path.lstrip("/"):
                return f
        return None


def parse_object_header(data, name="object"):
    if len(data) < OBJ_HEADER_SIZE or data[:8] != b"SLUICE01":
        raise AssertionError("%s: not an object file (short or bad magic)" % name)
    n = int.from_bytes(data[8:12], "little")
    text = data[16:16 + n].decode("utf-8", "replace")
    meta = {}
    for line in text.splitlines():
        k, _, v = line.partition(": ")
        if k in ("key", "etag"):
            meta[k] = v
        elif k in ("size", "status", "stored"):
            meta[k] = int(v)
    return meta


def mount_tmpfs(size):
    """Mount a tmpfs of `size` on a fresh directory; returns the directory,
    or raises unittest.SkipTest when mounting is not possible here."""
    d = tempfile.mkdtemp(prefix="sluice-tmpfs-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % size, "tmpfs", d],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        os.rmdir(d)
        raise unittest.SkipTest("cannot mount a tmpfs for the real-ENOSPC test (needs root or "
                                "CAP_SYS_ADMIN): %s" % r.stdout.decode(errors="replace").strip())
    return d


def umount(d):
    subprocess.run(["umount", d], check=False)
    try:
        os.rmdir(d)
    except OSError:
        pass


# ------------------------------------------------------------- test base

def describe(r):
    """A Result in one line (never its body: bodies are megabytes)."""
    return ("status=%s complete=%s error=%r body=%d bytes (sha %s) cache-status=%r elapsed=%.2fs"
            % (r.status, r.complete, r.error, len(r.body), hashlib.sha256(r.body).hexdigest()[:12],
               r.header("Cache-Status"), r.elapsed))


class ContractCase(unittest.TestCase):
    """Base class: one fresh edge per test (settings differ per fault)."""

    settings = {}

    def start_edge(self, settings=None, **kw):
        s = dict(BASE_SETTINGS)
        s.update(self.settings)
        s.update(settings or {})
        e = ContractEdge(settings=s, **kw)
        e.__enter__()
        self.addCleanup(e.__exit__, None, None, None)
        return e

    def path(self, name, **knobs):
        """A unique origin path for this test (configured with knobs)."""
        p = "/%s/%s" % (self.id().rsplit(".", 1)[-1], name)
        if knobs:
            self.edge.origin.set_object(p, **knobs)
        return p

    # ---- baseline (C6)
    def baseline(self, e):
        """Warm the edge up (one fill + one hit, so lazily created state such
        as libcurl's and HAProxy's pools exist), wait until idle, snapshot."""
        p = "/_warmup/%s.bin" % self.id().rsplit(".", 1)[-1]
        for _ in range(2):
            r = e.get("/generic" + p)
            assert r.ok, r
            e.wait_idle()
        e.origin.wait_idle()
        wait_until(lambda: e.haproxy_client_conns() == 0, 10, message="haproxy client conns")
        s = e.sockets()
        return {"core": len(s.core), "core_fds": s.core, "threads": e.agent_threads(),
                "origin_pool": s.origin_pool, "metrics": e.metrics()}

    def assert_contract(self, e, base, origin_pool_max=None, timeout=15):
        """C2 + C6 after a fault: no temp file, every object file complete,
        and the process back to its baseline within `timeout` seconds."""
        e.wait_idle(timeout)
        wait_until(lambda: e.temp_files() == [], timeout, message="temp files left: %s" % e.temp_files())
        e.object_bodies()   # raises on any partial / malformed object file
        e.origin.wait_idle(timeout)
        pool_max = base["origin_pool"] if origin_pool_max is None else origin_pool_max
        last = {}

        def back():
            s = e.sockets()
            m = e.metrics()
            last.update(sockets=s.describe(), threads=e.agent_threads(), origin_pool=s.origin_pool,
                        http_conns=s.http_conns, http_open=m.get("sluice_http_connections_open"),
                        readers=m.get("sluice_fill_readers_attached"),
                        open_file_cache=m.get("sluice_open_file_cache_files"),
                        haproxy_clients=e.haproxy_client_conns())
            return (len(s.core) == base["core"] and not s.close_wait
                    and s.objects_ok(last["open_file_cache"])
                    and last["threads"] == base["threads"]
                    and s.origin_pool <= pool_max
                    and last["http_open"] == s.http_conns
                    and last["readers"] == 0
                    and last["haproxy_clients"] == 0)
        try:
            wait_until(back, timeout, interval=0.05, message="agent not back to baseline")
        except AssertionError:
            raise AssertionError("not back to baseline within %ss: %s\nbaseline core fds %d: %s"
                                 % (timeout, last, base["core"], sorted(base["core_fds"])))

    # ---- bodies
    def assert_exact(self, results, body, what="client"):
        for i, r in enumerate(results):
            if r.status != 200 or not r.complete or r.error is not None or r.body != body:
                self.fail("%s %d: want 200 with the complete %d-byte body, got %s"
                          % (what, i, len(body), describe(r)))

    def assert_aborted(self, results, body, what="client"):
        """The origin failed: every client saw an aborted transfer (never a
        clean short body) and every byte it got was the origin's."""
        for i, r in enumerate(results):
            if r.complete or (r.status is not None and r.status != 200) or not body.startswith(r.body):
                self.fail("%s %d: want an aborted 200 carrying a prefix of the body, got %s"
                          % (what, i, describe(r)))

    # ---- metrics
    @staticmethod
    def delta(before, after, name):
        return after.get(name, 0) - before.get(name, 0)


def wfail(reason):
    return 'sluice_cache_write_failures_total{reason="%s"}' % reason


def origin_error(kind):
    return 'sluice_origin_errors_total{kind="%s"}' % kind


__all__ = ["ContractCase", "ContractEdge", "KiB", "MiB", "body_for", "parallel", "wait_until",
           "mount_tmpfs", "umount", "wfail", "origin_error", "proc_threads", "time"]
