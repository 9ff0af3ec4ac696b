"""A complete Sluice edge for tests: the real haproxy binary, the real agent
(the ASan/UBSan test build by default), and a test origin, all on free
loopback ports in a private temporary directory.

    with Edge() as e:                      # origin + agent + haproxy
        r = e.get("/generic/a.bin")        # through HAProxy
        e.origin.stats()                   # what the origin saw
        e.metric("sluice_hits_total")      # from the agent's /metrics

Every wait is a condition with a deadline (httpclient.wait_until); nothing
sleeps to synchronise. Processes are always killed on exit, and the agent's
stderr is checked for sanitizer reports when it stops.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request

import promtext
from httpclient import count_fds, fetch, free_port, threads, wait_until
from origin import OriginServer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AGENT_BIN = os.environ.get("SLUICE_TEST_BIN", os.path.join(ROOT, "build", "asan", "sluice"))
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


class Edge:
    def __init__(self, settings=None, origin=True, haproxy=True, env=None, cache_dir=None,
                 transport="tcp", origin_path="", origin_routes=("generic",), haproxy_cfg="haproxy.cfg",
                 agent_bin=None):
        self.tmp = tempfile.mkdtemp(prefix="sluice-test-")
        self.cache_dir = cache_dir or os.path.join(self.tmp, "cache")
        self.settings = dict(settings or {})
        self.extra_env = dict(env or {})
        # origin: True starts a test origin of this edge's own; an
        # OriginServer already running is shared (several edges, one
        # origin: the scale-out tests), and the edge never stops it.
        self.want_origin = origin is True
        self.shared_origin = None if isinstance(origin, bool) else origin
        # These routes' origin is http://127.0.0.1:<port><origin_path>.
        self.origin_path = origin_path
        self.origin_routes = tuple(origin_routes)
        self.want_haproxy = haproxy
        # The shipped edge config HAProxy runs: haproxy.cfg (SPOE) or
        # haproxy-lua.cfg (Lua HTTP mode, lua/sluice.lua).
        self.haproxy_cfg = haproxy_cfg
        # The agent binary: the ASan build unless a test needs another
        # (glibc's own allocator: the release build).
        self.agent_bin = agent_bin or AGENT_BIN
        self.origin = self.shared_origin
        self.agent = None
        self.haproxy = None
        self.ports = {k: free_port() for k in ("listen", "spop", "http", "admin")}
        # "unix": HAProxy reaches the agent's SPOP and HTTP sides over UNIX
        # sockets in tmp, as the shipped configs do.
        assert transport in ("tcp", "unix")
        self.transport = transport
        self.unix_paths = {k: os.path.join(self.tmp, k + ".sock") for k in ("spop", "http")}
        self._agent_log = None
        self._haproxy_log = None
        self.old_haproxies = []   # replaced by reload_haproxy, maybe still finishing

    # ------------------------------------------------------------ lifecycle
    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        if self.want_origin:
            self.origin = OriginServer()
            self.origin.start()
        self.write_config()
        self.start_agent()
        if self.want_haproxy:
            self.start_haproxy()

    def write_config(self):
        s = {
            "listen": "127.0.0.1:%d" % self.ports["listen"],
            "spop_listen": "127.0.0.1:%d" % self.ports["spop"],
            "http_listen": "127.0.0.1:%d" % self.ports["http"],
            "admin_listen": "127.0.0.1:%d" % self.ports["admin"],
            "cache_dir": self.cache_dir,
            # HAProxy's runtime API and pass-through sockets: this edge's own
            "haproxy_socket_dir": os.path.join(self.tmp, "run"),
            "routes_map": os.path.join(ROOT, "haproxy", "routes.map"),
            "workers": "4",
            "log_level": "info",
        }
        if self.transport == "unix":
            for k, path in self.unix_paths.items():
                s[k + "_listen"] = "unix:" + path
        # The public registries are unreachable from tests: turn their routes
        # off so neither HAProxy nor the agent ever waits on DNS for them.
        for route in ("npm", "pypi", "pypi_files", "cargo_index", "cargo_dl", "maven", "go"):
            s["origin_" + route] = '""'
        if self.origin:
            for route in self.origin_routes:
                s["origin_" + route] = "http://127.0.0.1:%d%s" % (self.origin.port, self.origin_path)
        s.update(self.settings)
        self.config_path = os.path.join(self.tmp, "sluice.conf")
        with open(self.config_path, "w") as f:
            for k, v in s.items():
                f.write("%s = %s\n" % (k, v))

    def agent_env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
        env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0:exitcode=66"
        env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1:exitcode=67"
        env.update(self.extra_env)
        return env

    def start_agent(self, wait_ready=True):
        if self._agent_log:
            self._agent_log.close()
        self._agent_log = open(os.path.join(self.tmp, "agent.log"), "ab")
        self.agent = subprocess.Popen([self.agent_bin, "-c", self.config_path], env=self.agent_env(),
                                      stdout=self._agent_log, stderr=subprocess.STDOUT)
        if wait_ready:
            wait_until(self.agent_ready, 15, message="agent did not become ready")

    def agent_ready(self):
        if self.agent.poll() is not None:
            raise AssertionError("agent exited with %s:\n%s" % (self.agent.returncode, self.agent_log()))
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/readyz" % self.ports["admin"], timeout=1) as r:
                return r.status == 200
        except Exception:
            return False

    def stop_agent(self, sig=signal.SIGTERM, check=True):
        if not self.agent or self.agent.poll() is not None:
            return
        self.agent.send_signal(sig)
        try:
            self.agent.wait(15)
        except subprocess.TimeoutExpired:
            self.agent.kill()
            self.agent.wait()
            raise AssertionError("agent did not stop on %s" % sig)
        if check and sig in (signal.SIGTERM, signal.SIGINT):
            self.check_agent_exit()

    def kill_agent(self):
        if self.agent and self.agent.poll() is None:
            self.agent.kill()
            self.agent.wait()

    def check_agent_exit(self):
        log = self.agent_log()
        if self.agent.returncode != 0 or "ERROR: AddressSanitizer" in log or "runtime error:" in log:
            raise AssertionError("agent exited with %s:\n%s" % (self.agent.returncode, log[-6000:]))

    def agent_log(self):
        try:
            with open(os.path.join(self.tmp, "agent.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def haproxy_env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
        env["SLUICE_HAPROXY_DIR"] = os.path.join(ROOT, "haproxy")
        return env

    def start_haproxy(self, master_worker=False):
        gen = os.path.join(self.tmp, "generated.cfg")
        with open(gen, "w") as f:
            subprocess.run([self.agent_bin, "-c", self.config_path, "--print-haproxy"], stdout=f,
                           env=self.agent_env(), check=True)
        self._haproxy_log = open(os.path.join(self.tmp, "haproxy.log"), "ab")
        cfgs = ["-f", gen, "-f", os.path.join(ROOT, "haproxy", self.haproxy_cfg)]
        subprocess.run([HAPROXY, "-c", "-q"] + cfgs, env=self.haproxy_env(), check=True)
        mode = ["-W", "-db"] if master_worker else ["-db"]   # -W: SIGUSR2 to the master reloads
        self.haproxy = subprocess.Popen([HAPROXY] + mode + cfgs, env=self.haproxy_env(),
                                        stdout=self._haproxy_log, stderr=subprocess.STDOUT)
        wait_until(self.edge_ready, 15, message="haproxy did not become ready")

    def reload_agent(self, expect="ok", timeout=10):
        """SIGHUP the agent (after write_config, say) and wait until it
        counted the reload with result `expect` ("ok" or "error")."""
        series = 'sluice_config_reloads_total{result="%s"}' % expect
        before = self.metric(series)
        self.agent.send_signal(signal.SIGHUP)
        wait_until(lambda: self.metric(series) > before, timeout,
                   message="agent did not count a reload with result=%s" % expect)

    def reload_haproxy(self, args=None):
        """Start a new HAProxy on the same config that takes over the
        listeners and tells the old one to finish its transfers and leave
        (`-sf <oldpid>`); returns the old process."""
        old = self.haproxy
        cfgs = ["-f", os.path.join(self.tmp, "generated.cfg"), "-f", os.path.join(ROOT, "haproxy", "haproxy.cfg")]
        self.haproxy = subprocess.Popen([HAPROXY, "-db"] + cfgs + (args or ["-sf", str(old.pid)]),
                                        env=self.haproxy_env(), stdout=self._haproxy_log, stderr=subprocess.STDOUT)
        self.old_haproxies.append(old)
        wait_until(self.edge_ready, 15, message="the new haproxy did not become ready")
        return old

    def edge_ready(self):
        if self.haproxy.poll() is not None:
            raise AssertionError("haproxy exited: %s" % self.haproxy_log())
        r = fetch("127.0.0.1", self.ports["listen"], "/_no_route_probe", timeout=2)
        return r.status == 404

    def haproxy_log(self):
        try:
            with open(os.path.join(self.tmp, "haproxy.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        failure = None
        for h in self.old_haproxies + [self.haproxy]:
            if not h or h.poll() is not None:
                continue
            h.terminate()
            try:
                h.wait(10)
            except subprocess.TimeoutExpired:
                h.kill()
                h.wait()
        if self.agent and self.agent.poll() is None:
            try:
                self.stop_agent()
            except AssertionError as e:
                failure = e
        if self.origin and not self.shared_origin:
            self.origin.stop()
        for f in (self._agent_log, self._haproxy_log):
            if f:
                f.close()
        if failure is None and os.environ.get("SLUICE_KEEP_TMP") is None:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if failure:
            raise failure

    # ------------------------------------------------------------- helpers
    def get(self, path, **kw):
        """A request through the edge (HAProxy)."""
        return fetch("127.0.0.1", self.ports["listen"], path, **kw)

    def get_agent(self, path, **kw):
        """A request straight to the agent's HTTP side."""
        if self.transport == "unix":
            return fetch(self.unix_paths["http"], 0, path, **kw)
        return fetch("127.0.0.1", self.ports["http"], path, **kw)

    def metrics(self):
        """Every series, with selector lookups: m.get("sluice_hits_total")
        sums the routes (promtext.py)."""
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.ports["admin"], timeout=5) as r:
            return promtext.parse(r.read().decode())

    def metric(self, name, default=0.0):
        return self.metrics().get(name, default)

    def fault(self, spec):
        with urllib.request.urlopen("http://127.0.0.1:%d/fault?%s" % (self.ports["admin"], spec),
                                    timeout=5) as r:
            assert r.status == 200

    def temp_files(self):
        d = os.path.join(self.cache_dir, "tmp")
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def object_files(self):
        out = []
        root = os.path.join(self.cache_dir, "objects")
        for dirpath, _, files in os.walk(root):
            out += [os.path.join(dirpath, f) for f in files]
        return sorted(out)

    def agent_fds(self):
        return count_fds(self.agent.pid)

    def agent_private_fds(self):
        """The agent's fds minus the connections HAProxy keeps open to it
        (SPOP and HTTP pools, which HAProxy sizes as it likes) and the
        open-file cache of hot objects: what must return to baseline after
        every fault (C6)."""
        for _ in range(5):
            m = self.metrics()
            n = count_fds(self.agent.pid)
            m2 = self.metrics()
            pooled = (m.get("sluice_spop_connections_open", 0) + m.get("sluice_http_connections_open", 0)
                      + m.get("sluice_open_file_cache_files", 0))
            if pooled == (m2.get("sluice_spop_connections_open", 0) + m2.get("sluice_http_connections_open", 0)
                          + m2.get("sluice_open_file_cache_files", 0)):
                return n - int(pooled)
        return n - int(pooled)

    def agent_threads(self):
        return threads(self.agent.pid)

    def wait_idle(self, timeout=10):
        """Wait until the agent has no fill, worker job or reader left."""
        def idle():
            m = self.metrics()
            return (m.get("sluice_fills_in_flight", 0) == 0 and m.get("sluice_worker_jobs_pending", 0) == 0
                    and m.get("sluice_fill_readers_attached", 0) == 0
                    and m.get("sluice_origin_fetches_in_flight", 0) == 0
                    and m.get("sluice_origin_fetches_queued", 0) == 0
                    and m.get("sluice_origin_transfers_running", 0) == 0)
        wait_until(idle, timeout, message="agent did not go idle")
