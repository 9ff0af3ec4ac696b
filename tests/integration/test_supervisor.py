"""`make run` supervises the edge (haproxy/sluice-edge): the agent dying
does not take HAProxy down - HAProxy fails open to the origin while the
agent is restarted - SIGHUP reloads the agent's configuration, and the
edge stops as a whole on SIGTERM or when HAProxy itself dies.

Each test runs the real `make run` from the repository root (the release
build, exactly what a new user starts) in its own process group, with a
private agent config and SLUICE_RUN_DIR in a temporary directory, a test
origin, and free loopback ports. Every wait is a condition with a deadline;
the process group is always killed in tearDown.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

import promtext  # noqa: E402
from httpclient import fetch, free_port, wait_until  # noqa: E402
from origin import OriginServer, body_for  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Generous: the machine may be building something else at the same time.
STARTUP = 30
STOP = 30


def clean_env():
    """The caller's environment minus every SLUICE_* override (they would
    change the agent's config) and make's own variables (a parent make's
    jobserver must not leak into `make run`)."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith("SLUICE_") and k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}


def ppid_of(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            # pid (comm) state ppid ...; comm may hold spaces and parentheses.
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def children(pid):
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit() and ppid_of(int(name)) == pid:
            out.append(int(name))
    return out


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def alive(pid):
    """The process exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def refuses(port):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port))
        return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    finally:
        s.close()


class SupervisorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # `make run` builds build/release/sluice itself; building it here
        # first keeps a cold build out of the STARTUP deadlines below.
        subprocess.run(["make", "--no-print-directory", "release"], cwd=ROOT, env=clean_env(),
                       stdout=subprocess.DEVNULL, check=True, timeout=900)

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="sluice-supervisor-")
        self.run_dir = os.path.join(self.tmp, "run")
        self.pidfile = os.path.join(self.run_dir, "agent.pid")
        self.log_path = os.path.join(self.tmp, "make-run.log")
        self.make = None
        self.log = None
        self.origin = OriginServer()
        self.origin.start()
        self.ports = {k: free_port() for k in ("listen", "admin")}
        self.write_config()
        self.start()

    def tearDown(self):
        if self.make and self.make.poll() is None:
            # Everything `make run` started is in its process group.
            for sig, wait in ((signal.SIGTERM, STOP), (signal.SIGKILL, 10)):
                try:
                    os.killpg(self.make.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.make.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    pass
        if self.make:
            # Also whatever outlived make itself in that group.
            try:
                os.killpg(self.make.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.log:
            self.log.close()
        self.origin.stop()
        if os.environ.get("SLUICE_KEEP_TMP") is None:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # ------------------------------------------------------------- setup
    def write_config(self):
        s = {
            "listen": "127.0.0.1:%d" % self.ports["listen"],
            # UNIX sockets, as haproxy/sluice.conf has them: a restarted
            # agent must clear the ones a killed agent left behind.
            "spop_listen": "unix:" + os.path.join(self.tmp, "spop.sock"),
            "http_listen": "unix:" + os.path.join(self.tmp, "http.sock"),
            "admin_listen": "127.0.0.1:%d" % self.ports["admin"],
            "cache_dir": os.path.join(self.tmp, "cache"),
            "routes_map": os.path.join(ROOT, "haproxy", "routes.map"),
            "log_level": "info",
            "origin_generic": "http://127.0.0.1:%d" % self.origin.port,
        }
        # The public registries are unreachable from tests: turn their routes
        # off so neither HAProxy nor the agent ever waits on DNS for them.
        for route in ("npm", "pypi", "pypi_files", "cargo_index", "cargo_dl", "maven", "go"):
            s["origin_" + route] = '""'
        self.config_path = os.path.join(self.tmp, "sluice.conf")
        with open(self.config_path, "w") as f:
            for k, v in s.items():
                f.write("%s = %s\n" % (k, v))

    def start(self):
        env = clean_env()
        env["SLUICE_CONFIG"] = self.config_path
        env["SLUICE_RUN_DIR"] = self.run_dir
        self.log = open(self.log_path, "ab")
        self.make = subprocess.Popen(["make", "--no-print-directory", "run"], cwd=ROOT, env=env,
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(self.agent_healthy, STARTUP, message="agent did not come up")
        wait_until(self.edge_ready, STARTUP, message="haproxy did not come up")

    # ----------------------------------------------------------- probes
    def output(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def check_running(self):
        if self.make.poll() is not None:
            raise AssertionError("make run exited with %s:\n%s" % (self.make.returncode, self.output()[-6000:]))

    def agent_pid(self):
        """The pid in agent.pid, or None (absent, or being written)."""
        try:
            with open(self.pidfile) as f:
                return int(f.read())
        except (OSError, ValueError):
            return None

    def agent_healthy(self):
        self.check_running()
        if self.agent_pid() is None:
            return False
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/readyz" % self.ports["admin"], timeout=2) as r:
                return r.status == 200
        except Exception:
            return False

    def edge_ready(self):
        self.check_running()
        return fetch("127.0.0.1", self.ports["listen"], "/_no_route_probe", timeout=2).status == 404

    def metric(self, name):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.ports["admin"], timeout=5) as r:
            return promtext.parse(r.read().decode()).get(name, 0.0)

    def get(self, path):
        return fetch("127.0.0.1", self.ports["listen"], path, timeout=10)

    def supervisor_pid(self):
        """sluice-edge: make's child (make's shell execs it)."""
        pids = [p for p in children(self.make.pid) if "sluice-edge" in cmdline(p)]
        self.assertEqual(len(pids), 1, "children of make: %r" % children(self.make.pid))
        return pids[0]

    def haproxy_pid(self):
        """HAProxy's master: the supervisor's haproxy child."""
        pids = [p for p in children(self.supervisor_pid()) if cmdline(p).startswith("haproxy ")]
        self.assertEqual(len(pids), 1)
        return pids[0]

    def group_pids(self):
        """Every live process left in make's process group but make."""
        out = []
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) == self.make.pid:
                continue
            try:
                if os.getpgid(int(name)) == self.make.pid and alive(int(name)):
                    out.append(int(name))
            except ProcessLookupError:
                pass
        return out

    def wait_make_exit(self):
        try:
            return self.make.wait(STOP)
        except subprocess.TimeoutExpired:
            raise AssertionError("make run still running %ds later:\n%s" % (STOP, self.output()[-6000:]))

    # ------------------------------------------------------------ tests
    def test_agent_killed_haproxy_fails_open_and_agent_is_restarted(self):
        p = "/supervisor/obj.bin"
        size = 300_000
        body = body_for(p, size)
        self.origin.set_object(p, size=size)
        first = self.get("/generic" + p)
        self.assertEqual(first.status, 200, first.error)
        self.assertEqual(first.body, body)
        self.assertEqual(first.header("Cache-Status"), "sluice; fwd=uri-miss; stored")
        wait_until(lambda: self.metric("sluice_fills_committed_total") >= 1, 15,
                   message="the object was not committed")

        old = self.agent_pid()
        haproxy = self.haproxy_pid()
        os.kill(old, signal.SIGKILL)
        killed = time.monotonic()

        # HAProxy keeps answering, from the origin, while the agent is down.
        # Only within the first 5 s may a request fail (502/503).
        seen = []

        def served_from_origin():
            r = self.get("/generic" + p)
            seen.append((round(time.monotonic() - killed, 3), r.status, r.header("Cache-Status"), r.error))
            if r.status in (502, 503) and time.monotonic() - killed < 5:
                return False
            self.assertEqual(r.status, 200, seen)
            self.assertEqual(r.body, body)
            return "fwd=bypass" in (r.header("Cache-Status") or "")
        wait_until(served_from_origin, 5, message="no fail-open response within 5 s of the kill: %r" % seen)
        self.assertTrue(alive(haproxy), "haproxy went down with the agent")

        # A new agent comes up...
        wait_until(lambda: self.agent_pid() not in (None, old) and self.agent_healthy(), STARTUP,
                   message="no new agent after the kill")
        new = self.agent_pid()
        self.assertTrue(alive(new))
        self.assertFalse(alive(old))

        # ...and HAProxy uses it again (spop-check needs a second or two):
        # the object committed before the kill is a hit again. Until then
        # every answer is whole, from the origin.
        def hit_again():
            r = self.get("/generic" + p)
            self.assertEqual(r.status, 200, r.error)
            self.assertEqual(r.body, body)
            cs = r.header("Cache-Status")
            self.assertIn(cs, ("sluice; hit", "sluice; fwd=bypass"))
            return cs == "sluice; hit"
        wait_until(hit_again, STARTUP, message="the object is not a hit after the restart")
        # The fill, then at least one request passed through while it was down.
        self.assertGreaterEqual(self.origin.requests(p), 2)

        self.assertRegex(self.output(), r"sluice-edge: agent \(pid %d\) exited on signal 9 \(KILL\), "
                                        r"restarting in [0-9.]+ s \(restart #1\)" % old)
        self.assertTrue(alive(haproxy))
        self.assertEqual(self.haproxy_pid(), haproxy)

    def test_sigterm_stops_haproxy_and_the_agent(self):
        agent = self.agent_pid()
        supervisor = self.supervisor_pid()
        haproxy = self.haproxy_pid()
        os.kill(supervisor, signal.SIGTERM)
        self.assertEqual(self.wait_make_exit(), 0, self.output()[-6000:])
        wait_until(lambda: not alive(agent) and not alive(haproxy) and not alive(supervisor), STOP,
                   message="a process outlived the supervisor")
        self.assertEqual(self.group_pids(), [])
        self.assertTrue(refuses(self.ports["listen"]))
        self.assertFalse(os.path.exists(self.pidfile))
        self.assertIn("sluice-edge: stopping HAProxy and the agent", self.output())
        self.assertNotIn("restarting in", self.output())

    def test_sighup_reloads_the_agent_and_stops_nothing(self):
        agent = self.agent_pid()
        haproxy = self.haproxy_pid()
        with open(self.config_path, "a") as f:
            f.write("metadata_ttl = 1m\n")
        os.kill(self.supervisor_pid(), signal.SIGHUP)
        wait_until(lambda: self.metric('sluice_config_reloads_total{result="ok"}') == 1, STARTUP,
                   message="the agent did not reload")
        self.assertIn("sluice-edge: SIGHUP: reloading the agent's configuration (pid %d)" % agent, self.output())
        self.assertEqual(self.agent_pid(), agent)
        self.assertEqual(self.haproxy_pid(), haproxy)
        self.assertEqual(self.get("/generic/after-hup.bin").status, 200)
        os.kill(self.supervisor_pid(), signal.SIGHUP)   # and again: the loop keeps supervising
        wait_until(lambda: self.metric('sluice_config_reloads_total{result="ok"}') == 2, STARTUP)
        self.check_running()
        self.assertNotIn("lost track", self.output())

    def test_haproxy_exiting_stops_the_agent(self):
        agent = self.agent_pid()
        haproxy = self.haproxy_pid()
        os.kill(haproxy, signal.SIGKILL)
        self.assertNotEqual(self.wait_make_exit(), 0, self.output()[-6000:])
        wait_until(lambda: not alive(agent), STOP, message="the agent outlived HAProxy")
        self.assertEqual(self.group_pids(), [])
        self.assertTrue(refuses(self.ports["listen"]))
        self.assertFalse(os.path.exists(self.pidfile))
        self.assertRegex(self.output(), r"sluice-edge: haproxy \(pid %d\) exited on signal 9 \(KILL\); "
                                        r"stopping the agent" % haproxy)
        self.assertNotIn("restarting in", self.output())


if __name__ == "__main__":
    unittest.main()
