"""tests/bench arms: the origin nginx both arms share, arm A (HAProxy +
nginx proxy_cache, from the templates next to this file), arm B (the
sluice agent + HAProxy with its generated config), their 2-thread twins
for the `threads` workload (the same, but HAProxy with nbthread 2 on CPUs
0-1, haproxy-bench-2t.cfg), and start_arm."""

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request

from bench_config import AGENT_BIN, BENCH, CLK_TCK, HAPROXY_DIR, P, TRANSPORT, log
from bench_proc import (LOAD_CPUS, SUT_2T_CPUS, SUT_CPUS, USER_LINE, Proc, cpu_ticks, free_port, http_get, nofile, render,
                        status_kb, wait_until)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
import promtext  # noqa: E402


# ------------------------------------------------------------- the origin

class Origin:
    def __init__(self, work, data):
        self.work = work
        self.data = data
        self.port = free_port()
        self.access_log = os.path.join(work, "origin-access.log")
        for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(work, "origin-tmp", d), exist_ok=True)
        conf = os.path.join(work, "nginx-origin.conf")
        render(os.path.join(BENCH, "nginx-origin.conf"), conf, USER_LINE=USER_LINE, NOFILE=nofile(), DIR=work, DATA=data, PORT=self.port,
               RATE=P["origin_rate"], PACED_RATE=P["paced_rate"])
        self.proc = Proc("origin", ["nginx", "-p", work, "-e", os.path.join(work, "origin-error.log"),
                                    "-c", conf], work, cpus=LOAD_CPUS)
        wait_until(lambda: self.status()["writing"] >= 1, 15, "origin nginx")

    def status(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/_bench/status" % self.port, timeout=2) as r:
            t = r.read().decode()
        m = re.search(r"Reading: (\d+) Writing: (\d+) Waiting: (\d+)", t)
        return {"reading": int(m.group(1)), "writing": int(m.group(2)), "waiting": int(m.group(3))}

    def wait_idle(self, timeout=60):
        """No request in progress at the origin except the status probe."""
        wait_until(lambda: self.status()["writing"] <= 1, timeout, "origin idle")

    def log_offset(self):
        try:
            return os.path.getsize(self.access_log)
        except OSError:
            return 0

    def _entries_since(self, offset, prefix):
        """The access log's entries (uri, status, bytes, request_time,
        msec) from offset on, for paths starting with prefix."""
        with open(self.access_log, "rb") as f:
            f.seek(offset)
            for line in f.read().decode("utf-8", "replace").splitlines():
                parts = line.split()
                if len(parts) >= 5 and parts[0].startswith(prefix):
                    yield parts

    def requests_since(self, offset, prefix):
        """(requests, bytes) logged for paths starting with prefix."""
        sizes = [int(e[2]) for e in self._entries_since(offset, prefix)]
        return len(sizes), sum(sizes)

    def spans_since(self, offset, prefix):
        """(start, end) wall-clock seconds of each logged request for paths
        starting with prefix (nginx logs the end and the duration)."""
        return [(float(e[4]) - float(e[3]), float(e[4])) for e in self._entries_since(offset, prefix)]


# --------------------------------------------------------------- the arms

def start_haproxy(work, cfgs, env, cpus=SUT_CPUS):
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    args = []
    for c in cfgs:
        args += ["-f", c]
    chk = subprocess.run([haproxy, "-c", "-q"] + args, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    if chk.returncode != 0:
        raise RuntimeError("haproxy -c failed:\n%s" % chk.stdout.decode(errors="replace"))
    return Proc("haproxy", [haproxy, "-db"] + args, work, cpus=cpus, env=env)


class Arm:
    key = ""
    label = ""
    threads = 1          # HAProxy's nbthread: 1, or 2 in the threads workload's twins

    def __init__(self, origin, work, cache_root):
        self.origin = origin             # the generic origin nginx, or None
        self.work = work
        self.cache_root = cache_root
        self.edge_port = free_port()
        self.haproxy = None
        self.cache = None

    def start_edge(self, cfgs, env):
        """HAProxy with cfgs and then the bench global of this arm's thread
        count: haproxy-bench.cfg (nbthread 1, on CPU 0) or
        haproxy-bench-2t.cfg (nbthread 2, on CPUs 0-1)."""
        bench_cfg, cpus = ("haproxy-bench.cfg", SUT_CPUS) if self.threads == 1 else \
            ("haproxy-bench-2t.cfg", SUT_2T_CPUS)
        self.haproxy = start_haproxy(self.work, cfgs + [os.path.join(BENCH, bench_cfg)], env, cpus=cpus)
        self.wait_edge()

    def sut_pids(self):
        return (self.haproxy.pids() if self.haproxy else []) + (self.cache.pids() if self.cache else [])

    def cache_pids(self):
        return self.cache.pids() if self.cache else []

    def origin_pids(self):
        return self.origin.proc.pids() if self.origin else []

    def wait_edge(self):
        def ready():
            if not self.haproxy.alive():
                raise RuntimeError("haproxy exited:\n" + self.haproxy.log_text()[-3000:])
            st, _, _, _ = http_get(self.edge_port, "/_bench_no_route", timeout=2)
            return st == 404
        wait_until(ready, 15, "haproxy")

    def stop(self):
        for p in (self.haproxy, self.cache):
            if p:
                p.stop()

    def settle(self, timeout=20):
        """Wait until the SUT is quiet: < 20 ms of CPU in 300 ms, and no
        dirty cache pages left for the kernel to write back during the
        next measurement (ext4 flushes them ~30 s after they were written,
        whichever arm or workload happens to be running then)."""
        os.sync()
        end = time.monotonic() + timeout
        prev = cpu_ticks(self.sut_pids())
        while time.monotonic() < end:
            time.sleep(0.3)
            cur = cpu_ticks(self.sut_pids())
            if (cur - prev) * 1000 / CLK_TCK < 20:
                return
            prev = cur

    def extra_report(self):
        return {}

    def verdicts(self):
        """SPOP verdict counters, or None where there is no agent."""
        return None


class NginxArm(Arm):
    key = "nginx"
    label = "nginx proxy_cache"

    def start(self):
        for d in ("body", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(self.work, "nginx-tmp", d), exist_ok=True)
        os.makedirs(os.path.join(self.cache_root, "proxy_temp"), exist_ok=True)
        self.cache_port = free_port()
        conf = os.path.join(self.work, "nginx-cache.conf")
        sock = os.path.join(self.work, "nginx-cache.sock")
        # sndbuf: the agent raises a UNIX socket's send buffer to the same
        # 1 MiB for large file bodies (http_server.c, set_bulk_sndbuf).
        unix_listen = "listen unix:%s backlog=4096 sndbuf=1m;" % sock if TRANSPORT == "unix" else ""
        render(os.path.join(BENCH, "nginx-cache.conf"), conf, USER_LINE=USER_LINE, NOFILE=nofile(), DIR=self.work, CACHEROOT=self.cache_root,
               PORT=self.cache_port, ORIGIN_PORT=self.origin.port, LOCK_TUNED=P["lock_tuned"],
               UNIX_LISTEN=unix_listen)
        self.error_log = os.path.join(self.work, "nginx-cache-error.log")
        self.cache = Proc("nginx-cache", ["nginx", "-p", self.work, "-e", self.error_log, "-c", conf],
                          self.work, cpus=SUT_CPUS)
        self.wait_healthy("nginx cache", 15)
        self.start_cache_edge(sock)

    def wait_healthy(self, what, timeout):
        """Until the cache tier answers its health check on cache_port."""
        def ready():
            if not self.cache.alive():
                raise RuntimeError("%s exited:\n%s" % (what, self.cache.log_text()[-3000:]))
            return http_get(self.cache_port, "/_bench/healthz", timeout=2)[0] == 200
        wait_until(ready, timeout, what)

    def start_cache_edge(self, sock):
        """HAProxy with haproxy-nginx.cfg in front of the cache tier, on
        its UNIX socket sock or its cache_port (BENCH_TRANSPORT)."""
        env = dict(os.environ)
        env.update(BENCH_LISTEN="127.0.0.1:%d" % self.edge_port,
                   BENCH_CACHE_ADDR=("unix@" + sock) if TRANSPORT == "unix" else "127.0.0.1:%d" % self.cache_port,
                   SLUICE_HAPROXY_DIR=HAPROXY_DIR)
        self.start_edge([os.path.join(BENCH, "haproxy-nginx.cfg")], env)

    def path(self, speed, tag, obj, lock_tuned=False):
        return "/generic/%s%s/%s/%s" % ("_locktuned/" if lock_tuned else "", speed, tag, obj)

    @staticmethod
    def is_hit(headers):
        return headers.get("x-cache-status", "") == "HIT"

    @staticmethod
    def filled_by(cache_status):
        """The response came from this client's own origin fetch."""
        return cache_status == "MISS"

    def cache_status_of(self, headers):
        return headers.get("x-cache-status", "-")

    def error_lines(self):
        try:
            with open(self.error_log, "rb") as f:
                return f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return []

    def extra_report(self):
        pids = self.cache_pids()
        return {"hwm_kb": max([status_kb(p, "VmHWM") for p in pids] or [0])}


def map_routes():
    routes = []
    with open(os.path.join(HAPROXY_DIR, "routes.map")) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2 and not parts[0].startswith("#") and parts[1] not in routes:
                routes.append(parts[1])
    return routes


class SluiceArm(Arm):
    key = "sluice"
    label = "Sluice"

    def __init__(self, origin, work, cache_root, settings=None):
        """origin: the generic route's nginx, or None (route off).
        settings: more agent settings (the package-registry workloads give
        origin_npm, public_url...); they win over the harness's defaults."""
        super().__init__(origin, work, cache_root)
        self.extra = dict(settings or {})
        self.extra_env = {}              # more environment for the agent (the l2 workload's AWS_*)

    def start(self):
        self.ports = {k: free_port() for k in ("spop", "http", "admin")}
        self.conf = os.path.join(self.work, "sluice.conf")
        settings = {
            "listen": "127.0.0.1:%d" % self.edge_port,
            "spop_listen": "127.0.0.1:%d" % self.ports["spop"],
            "http_listen": "127.0.0.1:%d" % self.ports["http"],
            # HAProxy's runtime API and pass-through sockets: this arm's own
            "haproxy_socket_dir": os.path.join(self.work, "run"),
        }
        if TRANSPORT == "unix":
            settings["spop_listen"] = "unix:" + os.path.join(self.work, "spop.sock")
            settings["http_listen"] = "unix:" + os.path.join(self.work, "http.sock")
        settings.update({
            "admin_listen": "127.0.0.1:%d" % self.ports["admin"],
            "cache_dir": os.path.join(self.cache_root, "cache"),
            "routes_map": os.path.join(HAPROXY_DIR, "routes.map"),
            "origin_generic": "http://127.0.0.1:%d" % self.origin.port if self.origin else '""',
        })
        settings.update(self.extra)
        # Only the routes given an origin are benchmarked (generic, or the
        # package routes of bench_eco.py): the other routes are turned off
        # (empty origin), so the generated HAProxy config has no backends
        # that resolve public registry names (seconds of DNS timeouts at
        # every start on a machine without DNS).
        for route in map_routes():
            settings.setdefault("origin_" + route, '""')
        with open(self.conf, "w") as f:
            for k, v in settings.items():
                f.write("%s = %s\n" % (k, v))
        controlled = {"SLUICE_" + k.upper() for k in settings} | {"SLUICE_CONFIG", "SLUICE_HAPROXY_DIR",
                                                                 "SLUICE_TEST_BIN", "SLUICE_BIN"}
        self.env = {k: v for k, v in os.environ.items() if k not in controlled}
        self.env.update(self.extra_env)
        self.cache = Proc("sluice", [AGENT_BIN, "-c", self.conf], self.work, cpus=SUT_CPUS, env=self.env)

        def ready():
            if not self.cache.alive():
                raise RuntimeError("agent exited:\n" + self.cache.log_text()[-3000:])
            with urllib.request.urlopen("http://127.0.0.1:%d/readyz" % self.ports["admin"], timeout=1) as r:
                return r.status == 200
        wait_until(ready, 15, "sluice agent")
        gen = os.path.join(self.work, "generated.cfg")
        with open(gen, "w") as f:
            subprocess.run([AGENT_BIN, "-c", self.conf, "--print-haproxy"], stdout=f, env=self.env, check=True)
        env = dict(self.env)
        env["SLUICE_HAPROXY_DIR"] = HAPROXY_DIR
        self.start_edge([gen, os.path.join(HAPROXY_DIR, "haproxy.cfg")], env)

    def path(self, speed, tag, obj, lock_tuned=False):
        return "/generic/%s/%s/%s" % (speed, tag, obj)

    @staticmethod
    def is_hit(headers):
        return headers.get("cache-status", "").startswith("sluice; hit")

    @staticmethod
    def filled_by(cache_status):
        """The fill's leader: a miss that did not attach to another fill."""
        return cache_status.startswith("sluice; fwd=") and "collapsed" not in cache_status

    def cache_status_of(self, headers):
        return headers.get("cache-status", "-")

    def metrics(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.ports["admin"], timeout=5) as r:
            return promtext.parse(r.read().decode())

    def verdicts(self):
        try:
            return {k: int(v) for k, v in self.metrics().by_label("sluice_verdicts_total", "verdict").items()}
        except Exception:  # noqa: BLE001 - reported as n/a
            return None

    def wait_idle(self, timeout=30):
        def idle():
            m = self.metrics()
            return (m.get("sluice_fills_in_flight", 0) == 0 and m.get("sluice_worker_jobs_pending", 0) == 0
                    and m.get("sluice_origin_fetches_in_flight", 0) == 0)
        wait_until(idle, timeout, "agent idle")

    def settle(self, timeout=20):
        try:
            self.wait_idle(timeout)
        except Exception:  # noqa: BLE001 - settle is best effort; reported elsewhere
            pass
        super().settle(timeout)

    def log_lines(self):
        return [l for l in self.cache.log_text().splitlines()] if self.cache else []

    def extra_report(self):
        r = {"hwm_kb": max([status_kb(p, "VmHWM") for p in self.cache_pids()] or [0])}
        try:
            r["metrics"] = self.metrics()
        except Exception as e:  # noqa: BLE001
            r["metrics_error"] = str(e)
        return r


class NginxArm2t(NginxArm):
    """Arm A with HAProxy at nbthread 2 (the threads workload); nginx as in
    arm A, on CPU 0."""
    key = "nginx-2t"
    label = "nginx proxy_cache, HAProxy 2 threads"
    threads = 2


class SluiceArm2t(SluiceArm):
    """Arm B with HAProxy at nbthread 2 (the threads workload); the agent
    and its workers as in arm B, on CPU 0 (worker_cpus left at its
    default, the CPUs the agent was started on)."""
    key = "sluice-2t"
    label = "Sluice, HAProxy 2 threads"
    threads = 2


TWO_THREADS = {"nginx": NginxArm2t, "sluice": SluiceArm2t}


def start_arm(arm):
    """Start an arm; retry once if its binary is momentarily unusable (being
    rebuilt by a concurrent `make`)."""
    try:
        arm.start()
    except OSError as e:
        log("  start failed (%s); retrying once in 3 s" % e)
        arm.stop()
        time.sleep(3)
        arm.start()
