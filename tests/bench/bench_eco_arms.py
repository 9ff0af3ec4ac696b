"""tests/bench arms of the package-registry workloads: Verdaccio 5 (the npm
pull-through cache Sluice is compared with), a static nginx (the floor of
the pip install), the Verdaccio install under build/tools, and the Sluice
arm with its npm and PyPI routes pointed at the offline origins.

Verdaccio is installed once from the npm registry into
build/tools/verdaccio-<version>/ by tests/lib/clients.py's
ensure_npm_tool (as pnpm and s3rver are). The
package.json there carries the override of shared/notes/ecosystems.md
section 1.6 (b): `node-fetch@cjs` -> 2.7.0, since a registry without the
`cjs` dist-tag fails the install with ETARGET.

Every server listens on 127.0.0.1 only and runs pinned to the SUT CPU, like
HAProxy and the agent."""

import os
import re
import urllib.request

from bench_arms import Arm, SluiceArm
from bench_config import BENCH, ECO
from bench_proc import SUT_CPUS, USER_LINE, Proc, http_get, nofile, render, wait_until

from clients import ensure_npm_tool  # tests/lib, on sys.path via bench_arms

VERDACCIO_VERSION = "5.33.0"        # ecosystems.md 1.6 (b): 6.x needs Node 22


def ensure_verdaccio():
    """The verdaccio binary, installed on first use (about 25 s, 313
    packages). Raises RuntimeError with npm's output when that fails."""
    return ensure_npm_tool("verdaccio", VERDACCIO_VERSION, "verdaccio", package_json={
        "name": "sluice-bench-verdaccio", "version": "1.0.0", "private": True,
        "overrides": {"node-fetch@cjs": "2.7.0"}})


class VerdaccioArm(Arm):
    """Verdaccio alone: it is its own edge (clients talk to its port)."""
    key = "verdaccio"
    label = "Verdaccio " + VERDACCIO_VERSION

    def __init__(self, work, uplink):
        super().__init__(None, work, os.path.join(work, "storage"))
        self.uplink = uplink.rstrip("/") + "/"

    @property
    def registry_url(self):
        return "http://127.0.0.1:%d/" % self.edge_port

    def start(self):
        conf = os.path.join(self.work, "verdaccio.yaml")
        render(os.path.join(BENCH, "verdaccio.yaml"), conf, STORAGE=self.cache_root, DIR=self.work,
               UPLINK=self.uplink, MAXAGE=ECO["metadata_ttl"], PORT=self.edge_port)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("npm_", "NPM_", "NODE_"))}
        self.cache = Proc("verdaccio", [ensure_verdaccio(), "--config", conf], self.work, cpus=SUT_CPUS, env=env)

        def ready():
            if not self.cache.alive():
                raise RuntimeError("verdaccio exited:\n" + self.cache.log_text()[-3000:])
            with urllib.request.urlopen(self.registry_url + "-/ping", timeout=2) as r:
                return r.status == 200
        wait_until(ready, 60, "verdaccio")

    def sut_pids(self):
        return self.cache_pids()

    def log_lines(self):
        """Its warnings and errors, one line per message: the pretty log
        spreads one over several lines (an error object, a stack), which
        are joined without the stack frames. Node's start-up notices and
        the listening address are left out."""
        msgs = []
        for line in (self.cache.log_text().splitlines() if self.cache else []):
            t = line.strip()
            if re.match(r"(fatal|error|warn|info|http|debug|trace)\b\s*-", t):
                msgs.append(t)
            elif msgs and t and not t.startswith("at "):
                msgs[-1] += " " + t
        return [m for m in msgs if m.startswith(("fatal", "error", "warn")) and "http address" not in m]


class StaticArm(Arm):
    """nginx serving a directory (the PyPI floor): no cache, no HAProxy."""
    key = "nginx-static"
    label = "nginx static"

    def __init__(self, work, root):
        super().__init__(None, work, root)

    @property
    def base_url(self):
        return "http://127.0.0.1:%d" % self.edge_port

    def start(self):
        for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(self.work, "nginx-static-tmp", d), exist_ok=True)
        conf = os.path.join(self.work, "nginx-static.conf")
        render(os.path.join(BENCH, "nginx-static.conf"), conf, USER_LINE=USER_LINE, NOFILE=nofile(),
               DIR=self.work, ROOT=self.cache_root, PORT=self.edge_port)
        self.error_log = os.path.join(self.work, "nginx-static-error.log")
        self.cache = Proc("nginx-static", ["nginx", "-p", self.work, "-e", self.error_log, "-c", conf],
                          self.work, cpus=SUT_CPUS)

        def ready():
            if not self.cache.alive():
                raise RuntimeError("nginx exited:\n" + self.cache.log_text()[-3000:])
            return http_get(self.edge_port, "/_bench/healthz", timeout=2)[0] == 200
        wait_until(ready, 15, "static nginx")

    def sut_pids(self):
        return self.cache_pids()

    def log_lines(self):
        try:
            with open(self.error_log, "rb") as f:
                return [l for l in f.read().decode("utf-8", "replace").splitlines()
                        if "[alert]" not in l or "setrlimit" not in l]
        except OSError:
            return []


def eco_sluice_arm(work, npm_origin, pypi_origin, pypi_files_origin):
    """The Sluice arm (HAProxy + agent) with the npm and PyPI routes on the
    offline origins, public_url on its own edge, the generic route off."""
    arm = SluiceArm(None, work, os.path.join(work, "cacheroot"))
    arm.extra.update({
        "origin_npm": npm_origin, "origin_pypi": pypi_origin, "origin_pypi_files": pypi_files_origin,
        "public_url": "http://127.0.0.1:%d" % arm.edge_port, "metadata_ttl": ECO["metadata_ttl"],
    })
    return arm
