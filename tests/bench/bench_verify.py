"""tests/bench npm-fill-verify: what checking an artifact against its
published digest costs a cold fill.

The agent hashes an npm tarball with SHA-512 while it streams from the
origin, when a packument that listed it with dist.integrity has gone
through the edge (fill/verify.c, serve/integrity.c); the route setting
integrity_verify (default 1) turns that off. The claim to hold: checking
costs the fill no throughput that matters (within 10 %), only CPU.

Two Sluice arms (HAProxy + agent, route /npm/ only, fresh cache
directories), identical but for `route_npm_integrity_verify` = 1 and 0, on
one NpmRegistry that publishes one package with N versions, every one a
big tarball (256 MiB; quick 128 MiB) whose dist.integrity the registry
computed itself. Each arm first GETs the packument through its edge (so
its digests are noted). Then N rounds, each one cold fill of version k on
both arms, first arm alternating (on off, off on, ...): a distinct version
per round keeps every fill cold with no restart. The registry serves at
loopback speed from the page cache, so the fill, not the origin, sets the
pace.

The client is fetchmany (one connection, 1 MiB reads), which compares
every byte with the registry's file as it arrives; the harness checked
once that the file's SHA-512 is the published integrity, so a body that
passes is one whose SHA-512 is the integrity. (Hashing in the client
would load CPU 1, where the registry runs too, and could make the origin
the limit of both arms.)

Reported per arm: median fill throughput (body bytes / time to the last
byte, from the client's start), the agent's CPU per GB moved (utime+stime
of the agent from /proc/PID/stat around the fill, all its threads) and
HAProxy + agent CPU per GB. The sanity check (not timed): every fill was a
miss, byte-exact, with no writer detached and no refetch, the verify-on
arm counted sluice_integrity_verified_total{route="npm"} once per fill and
the off arm never; anything else fails the workload."""

import base64
import gzip
import hashlib
import io
import json
import os
import statistics
import subprocess
import tarfile

from bench_arms import SluiceArm
from bench_config import CLK_TCK, ECO, log
from bench_npm import fetch_body
from bench_proc import LOAD_CPUS, PIN, Measure, child_setup, proc_stat

PKG = "bench-fill-verify"
ARM_KEYS = ("sluice-verify-on", "sluice-verify-off")


def version(k):
    return "1.0.%d" % k


def make_fill_verify(reg, work):
    """One big tarball on disk, published under N versions. Built here
    and not with add_package, whose seeded padding takes ~45 s for 256
    MiB: a real .tgz (package/package.json + a random pad.bin), stored
    uncompressed in its gzip (level 0: random bytes do not compress
    anyway). Every version serves the same file; the agent keys its cache
    by URL, so each is its own cold fill. Returns the tarball's size."""
    d = os.path.join(work, "fill-verify")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "%s.tgz" % PKG)
    pj = {"name": PKG, "version": version(0), "description": "Sluice bench: integrity check of a cold fill",
          "main": "index.js", "license": "MIT", "dependencies": {}}
    pjb = (json.dumps(pj, indent=2) + "\n").encode()
    pad = ECO["verify_size"] - 8192
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=0, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for rel, size, src in (("package.json", len(pjb), io.BytesIO(pjb)), ("pad.bin", pad, None)):
            ti = tarfile.TarInfo("package/" + rel)
            ti.size, ti.mode, ti.mtime = size, 0o644, 499162500
            if src is None:
                src = RandomReader(size)
            tar.addfile(ti, src)
    with open(path, "rb") as f:
        data = f.read()
    for k in range(ECO["verify_rounds"]):
        v = version(k)
        # The registry's own publishing (sha1, sha512 SRI, the manifest's
        # dist), with the file made above instead of one of its own.
        reg._publish(PKG, v, dict(pj, version=v), data, path, reg.tarball_path(PKG, v), 2, len(pjb) + pad,
                     "latest")
    info = reg.versions(PKG)[version(0)]
    want = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    if info.integrity != want or info.size != len(data):
        raise RuntimeError("registry integrity %s is not the file's %s" % (info.integrity[:30], want[:30]))
    log("fill-verify: %s, %d versions of a %.0f MiB tarball, integrity %s..." % (
        PKG, ECO["verify_rounds"], len(data) / 2**20, info.integrity[:24]))
    return len(data)


class RandomReader:
    """A file-like of n random bytes (os.urandom, 1 MiB at a time)."""

    def __init__(self, n):
        self.left = n

    def read(self, n=-1):
        n = self.left if n < 0 else min(n, self.left)
        out = bytearray()
        while len(out) < n:
            out += os.urandom(min(n - len(out), 1 << 20))
        self.left -= n
        return bytes(out)


def verify_arms(make_work, npm_origin):
    """The two arms: /npm/ on the registry, everything else at the
    defaults but integrity_verify (the per-route form, which wins over
    SLUICE_INTEGRITY_VERIFY from the environment), cache_write_lag_max and
    spool_memory_max.
    The registry on loopback sends faster than the cache writer stores on
    this machine (it shares CPU 0 with the event loop, the hash and
    HAProxy): at the default 32 MiB of lag (and 32 MiB of spool memory)
    the writer is detached, in both arms, and the tarball fetched again in
    the background while the next fill runs, and the run would measure
    that. With room for the whole tarball the writer trails the stream in
    memory and never makes the fill wait, so the fill runs at what the
    agent can move, the check included.
    Both arms put the agent's worker threads (cache writes, the hash) on
    the load CPUs with `worker_cpus`, apart from the event loop and
    HAProxy on CPU 0: the deployment docs/architecture.md §10 asks for,
    where the hash has a core of its own instead of taking the loop's.
    The registry sends with sendfile, so that core is not the origin's."""
    arms = []
    room = ECO["verify_size"] // 2**20 + 64
    for key, on in zip(ARM_KEYS, (1, 0)):
        work = make_work(key)
        arm = SluiceArm(None, work, os.path.join(work, "cacheroot"))
        arm.key, arm.label = key, "Sluice, integrity_verify=%d" % on
        arm.extra.update({"origin_npm": npm_origin, "public_url": "http://127.0.0.1:%d" % arm.edge_port,
                          "metadata_ttl": ECO["metadata_ttl"], "route_npm_integrity_verify": on,
                          "cache_write_lag_max": "%dM" % room, "spool_memory_max": "%dM" % room})
        if PIN:
            arm.extra["worker_cpus"] = ",".join(map(str, sorted(LOAD_CPUS)))
        arms.append(arm)
    return arms


def agent_ticks(arm):
    """utime+stime of the agent process (all its threads)."""
    f = proc_stat(arm.cache.pid)
    return int(f[11]) + int(f[12])


def counters(arm):
    m = arm.metrics()
    out = {"verified": m.by_label("sluice_integrity_verified_total", "route").get("npm", 0),
           "failures": m.by_label("sluice_integrity_failures_total", "route").get("npm", 0),
           "unknown": m.by_label("sluice_integrity_unknown_total", "route").get("npm", 0),
           "detached": m.get("sluice_writers_detached_total", 0),
           "refetches": m.get("sluice_fill_refetches_total", 0)}
    return {k: int(v) for k, v in out.items()}


def fill_once(ctx, arm, k):
    reg = ctx["npm"]
    v = version(k)
    info = reg.versions(PKG)[v]
    path = "/npm" + info.url_path
    arm.settle()
    c0 = counters(arm)
    a0 = agent_ticks(arm)
    before = reg.requests(path=info.url_path, method=None)
    with Measure(arm) as m:
        r = subprocess.run([ctx["fetchmany"], "-p", str(arm.edge_port), "-t", "120"],
                           input=("%s %s\n" % (path, info.file)).encode(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, preexec_fn=child_setup(LOAD_CPUS), timeout=180)
        a1 = agent_ticks(arm)
    if r.returncode != 0:
        raise RuntimeError("fetchmany failed: %s" % r.stderr.decode(errors="replace")[-2000:])
    row = r.stdout.decode(errors="replace").splitlines()[0].split("\t")
    status, ok, got, ttfb, done, cstatus, err = int(row[1]), row[2] == "1", int(row[3]), float(row[4]), \
        float(row[5]), row[6], row[7]
    arm.settle(60)
    c1 = counters(arm)
    delta = {x: c1[x] - c0[x] for x in c1}
    gb = got / 1e9
    res = {"version": v, "status": status, "ok": ok, "bytes": got, "ttfb_ms": ttfb, "secs": done / 1e3,
           "mb_s": got / 1e6 / (done / 1e3) if done else None, "cache_status": cstatus, "error": err,
           "agent_cpu_s": (a1 - a0) / CLK_TCK, "sut_cpu_s": m.cpu_s,
           "agent_cpu_per_gb": (a1 - a0) / CLK_TCK / gb if gb else None,
           "sut_cpu_per_gb": m.cpu_s / gb if gb else None, "sut_util": m.cpu_s / m.wall_s if m.wall_s else None,
           "loadgen_util": m.loadgen_util, "background_cpus": m.background,
           "origin_requests": reg.requests(path=info.url_path, method=None) - before}
    res.update(delta)
    return res


def sanity(arm, r, on, size):
    """The fill was cold, complete, checked by the client, and verified
    exactly when the arm verifies."""
    bad = []
    if not r["ok"] or r["status"] != 200 or r["bytes"] != size:
        bad.append("status %d, %d bytes, ok %s, %s" % (r["status"], r["bytes"], r["ok"], r["error"]))
    if not r["cache_status"].startswith("sluice; fwd=") or r["origin_requests"] != 1:
        bad.append("not one cold fill: Cache-Status %r, %d origin requests" % (r["cache_status"],
                                                                             r["origin_requests"]))
    if r["verified"] != (1 if on else 0) or r["failures"] or r["unknown"]:
        bad.append("integrity counters: verified +%d, failures +%d, unknown +%d (expected verified +%d)"
                   % (r["verified"], r["failures"], r["unknown"], 1 if on else 0))
    if r["detached"] or r["refetches"]:
        bad.append("writer detached +%d, refetches +%d: the fill was not one stream" % (r["detached"],
                                                                                      r["refetches"]))
    if bad:
        raise RuntimeError("%s, %s: %s" % (arm.key, r["version"], "; ".join(bad)))


def run_fill_verify(ctx, arms):
    """arms: (verify on, verify off)."""
    reg = ctx["npm"]
    for arm in arms:
        st, body, _ = fetch_body(arm, "/npm/" + PKG, "application/json")
        doc = json.loads(body) if st == 200 else {}
        if st != 200 or len(doc.get("versions", {})) != ECO["verify_rounds"]:
            raise RuntimeError("%s: packument status %d, %d versions" % (arm.key, st, len(doc.get("versions", {}))))
    runs = {arm.key: [] for arm in arms}
    for k in range(ECO["verify_rounds"]):
        for arm in (arms if k % 2 == 0 else arms[::-1]):
            r = fill_once(ctx, arm, k)
            sanity(arm, r, arm is arms[0], reg.versions(PKG)[version(k)].size)
            runs[arm.key].append(r)
            log("  %s fill %d: %.0f MB/s (%.2f s), agent CPU %.2f s/GB, SUT CPU %.2f s/GB, verified +%d"
                % (arm.key, k + 1, r["mb_s"], r["secs"], r["agent_cpu_per_gb"], r["sut_cpu_per_gb"],
                   r["verified"]))
    out = {}
    for key, rs in runs.items():
        s = {"runs": rs, "fills": len(rs), "verified": sum(r["verified"] for r in rs),
             "mb_s_all": [round(r["mb_s"], 1) for r in rs]}
        for f in ("mb_s", "secs", "ttfb_ms", "agent_cpu_per_gb", "sut_cpu_per_gb", "sut_util", "loadgen_util",
                  "background_cpus"):
            vals = [r[f] for r in rs if r.get(f) is not None]
            s[f] = statistics.median(vals) if vals else None
        s["mb_s_min"], s["mb_s_max"] = min(r["mb_s"] for r in rs), max(r["mb_s"] for r in rs)
        s["room"] = "%dM" % (ECO["verify_size"] // 2**20 + 64)
        s["worker_cpus"] = next(a.extra.get("worker_cpus") for a in arms if a.key == key)
        out[key] = s
    return out

