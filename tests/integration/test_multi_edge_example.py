"""examples/multi-edge-s3 (`make run-multi`) does what its README says:
one command starts the local S3 store, two edges sharing its bucket and a
front HAProxy; a cold object fetched through edge A and then through edge
B is fetched from the origin once in all, B's answer says `detail=l2-hit`
and its bytes are the origin's; the front hashes one path to one edge;
SIGTERM stops every part (nothing left listening, no process of the run
left) and the script exits 0.

The script runs for real (release build, real HAProxy, s3rver behind the
SigV4-checking front) with a test origin as the generic route's origin,
the public routes off, a temporary SLUICE_MULTI_DIR and a free block of
ports. Every wait is a condition with a deadline; the whole test stays
well under a minute once s3rver is installed in build/tools.
"""

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

import promtext  # noqa: E402
from httpclient import fetch, wait_until  # noqa: E402
from origin import OriginServer, body_for  # noqa: E402
from s3server import ensure_s3rver  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "examples", "multi-edge-s3", "run-multi")
OFFSETS = (0, 1, 2, 11, 12, 20, 21)      # front, edges, admins, store + s3rver (no demo origin)
STARTUP = 40
STOP = 25
ROUTES_OFF = ("npm", "pypi", "pypi_files", "cargo_index", "cargo_dl", "maven", "go")


def port_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_base():
    """A base port whose whole block (OFFSETS) is free, outside the
    ephemeral range's usual start."""
    for _ in range(200):
        base = random.randrange(20000, 30000)
        if all(port_free(base + o) for o in OFFSETS):
            return base
    raise RuntimeError("no free block of ports")


def pids_mentioning(text):
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/cmdline" % name, "rb") as f:
                    if text.encode() in f.read():
                        out.append(int(name))
            except OSError:
                pass
    return out


class MultiEdgeExample(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        subprocess.run(["make", "--no-print-directory", "release"], cwd=ROOT, stdout=subprocess.DEVNULL,
                       check=True, timeout=900)
        ensure_s3rver()          # a first install is not part of the startup deadline

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="sluice-multi-")
        self.base = free_base()
        self.origin = OriginServer().start()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("SLUICE_") and k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
        env.update({"SLUICE_MULTI_PORT": str(self.base), "SLUICE_MULTI_DIR": self.tmp,
                    "SLUICE_ORIGIN_GENERIC": self.origin.url("").rstrip("/")})
        env.update({"SLUICE_ORIGIN_" + r.upper(): "" for r in ROUTES_OFF})
        self.log_path = os.path.join(self.tmp, "run-multi.log")
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([SCRIPT], cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def tearDown(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        for pid in pids_mentioning(self.tmp):    # what the script failed to stop, never left running
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
        self.log.close()
        self.origin.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def output(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def ready(self):
        if self.proc.poll() is not None:
            raise AssertionError("run-multi exited with %s:\n%s" % (self.proc.returncode, self.output()[-6000:]))
        return "run-multi: ready" in self.output()

    def get(self, offset, path):
        return fetch("127.0.0.1", self.base + offset, path, timeout=20)

    def metric(self, admin_offset, selector):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % (self.base + admin_offset), timeout=5) as r:
            return promtext.parse(r.read().decode()).get(selector)

    def test_a_then_b_is_one_origin_request_and_an_l2_hit_then_sigterm_stops_all(self):
        wait_until(self.ready, STARTUP, interval=0.2, message="run-multi did not get ready")
        path, size = "/multi/obj.bin", 3_000_000        # multipart needs > 16M: one PutObject here
        self.origin.set_object(path, size=size)
        body = body_for(path, size)

        a = self.get(1, "/generic" + path)
        self.assertEqual((a.status, a.body == body), (200, True), a.error)
        self.assertEqual(a.header("Cache-Status"), "sluice; fwd=uri-miss; stored")
        wait_until(lambda: self.metric(11, 'sluice_l2_uploads_total{tier="s3",result="ok"}') >= 1, 20,
                   message="edge A did not copy the object to the bucket")

        b = self.get(2, "/generic" + path)
        self.assertEqual((b.status, b.body == body), (200, True), b.error)
        self.assertEqual(b.header("Cache-Status"), "sluice; fwd=uri-miss; detail=l2-hit; stored")
        self.assertEqual(self.origin.requests(path), 1)
        self.assertEqual(self.metric(12, 'sluice_l2_hits_total{tier="s3"}'), 1)

        # The front: one path, one edge - once both have committed it to L1
        # (a request while B's L2 fill still commits would collapse onto
        # it), two requests are two L1 hits and the origin still saw one.
        for admin in (11, 12):
            wait_until(lambda: self.metric(admin, "sluice_fills_in_flight") == 0, 20,
                       message="an edge's fill did not commit")
        for _ in range(2):
            f = self.get(0, "/generic" + path)
            self.assertEqual((f.status, f.body == body, f.header("Cache-Status")), (200, True, "sluice; hit"))
        self.assertEqual(self.origin.requests(path), 1)

        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.proc.wait(STOP), 0, self.output()[-4000:])
        self.assertIn("run-multi: stopping", self.output())
        self.assertEqual([self.base + o for o in OFFSETS if not port_free(self.base + o)], [])
        self.assertEqual(pids_mentioning(self.tmp), [])


if __name__ == "__main__":
    unittest.main()
