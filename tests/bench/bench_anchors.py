"""tests/bench anchors: Sluice beside every anchor of issue 19, each behind
the same HAProxy 2.6 (nbthread 1, pinned like the generic arms), on one
origin nginx: nginx proxy_cache, Varnish with file storage and HAProxy's
built-in cache. BENCH_ONLY=anchors runs it alone; a plain `make bench`
runs it after the other groups.

    arm            HAProxy config                      cache tier (CPU 0)
    sluice         generated + haproxy/haproxy.cfg     the agent (generic and npm routes)
    nginx          haproxy-nginx.cfg                   nginx proxy_cache (nginx-cache.conf)
    varnish        haproxy-nginx.cfg                   varnishd -s file (varnish.vcl)
    haproxy-cache  haproxy-cache.cfg                   none: HAProxy's `cache` section
    (+ haproxy-bench.cfg, or haproxy-bench-2t.cfg in the 2-thread twins)

Each pass starts the four arms and their 2-thread twins on fresh caches,
then runs every row on every arm, arm after arm, the first arm rotating
each pass (pass 1 starts with Sluice, pass 2 with nginx, ...):

    hit-1k     1 KiB hits, wrk -t1 -c32: req/s
    hit-1m     1 MiB hits, fetchmany loop, 16 connections: MB/s
    hit-64m    64 MiB hits, fetchmany loop, 4 connections: MB/s
    packument  an npm abbreviated packument (~200 KiB) with
               Accept: application/vnd.npm.install-v1+json, fetchmany loop,
               32 connections, every body checked: req/s. Sluice serves it
               through its npm route (/npm/<name>, origin_npm on the
               origin's /npmreg/, dist.tarball rewritten to public_url);
               the others cache the origin's 200 from /generic/fast/.
    burst-20, burst-200
               N distinct cold 4 MiB objects at once from the origin's
               /paced/ location (~1 s per fill, sent evenly): time until
               the last client finished, every body checked, origin
               requests, when the origin requests started and ended
    stampede   50 clients on one cold 16 MiB object from /paced/: origin
               requests, follower TTFB p50/p99, every body checked (nginx
               on its /generic/_locktuned/ location: the lock raised above
               the fill, the nginx arm at its best)
    every row also runs on the arm's 2-thread twin, seconds apart (1
    thread first in odd passes): the scaling table's 2t gain.

A hit run counts the origin's requests while it runs: any is an error (not
every answer was a hit); before it, the object is primed until the arm's
own hit indicator says HIT with the right bytes (Cache-Status for Sluice,
X-Cache-Status for the others). Results: medians over passes; the summary
table gives Sluice's value and the others as ratios to it."""

import base64
import collections
import hashlib
import json
import os
import random
import shutil
import subprocess
import time

from bench_arms import NginxArm, NginxArm2t, Origin, SluiceArm, SluiceArm2t, start_arm
from bench_config import ANCHORS, BENCH, HAPROXY_DIR, KIB, MIB, P, QUICK, TRANSPORT, log
from bench_npm import CORGI_ACCEPT
from bench_proc import LOAD_CPUS, NICE, PIN, SUT_CPUS, Measure, Proc, attempt, free_port, render
from bench_report import cell, collect_findings, findings_section, fmt, median_of, pct, table
from bench_workloads import cut_files, fetchmany, make_pool, run_stampede, run_warm, summarize_errors

NPM_NAME = "anchors-bench-pkg"
BURST_FILE = "burst-%03d.bin"
# name, object, connections, metric, label of the summary row
HIT_ROWS = [
    ("hit-1k", "obj-1k.bin", 32, "req_s", "1 KiB hits, req/s (wrk -t1 -c32)"),
    ("hit-1m", "obj-1m.bin", 16, "mb_s", "1 MiB hits, MB/s (16 connections)"),
    ("hit-64m", "obj-64m.bin", 4, "mb_s", "64 MiB hits x4 connections, MB/s"),
    ("packument", "packument.json", 32, "req_s", "npm abbreviated packument hits, req/s (32 connections)"),
]
COLD_ROWS = ["burst-%d" % n for n in ANCHORS["bursts"]] + ["stampede"]
ROWS = [r[0] for r in HIT_ROWS] + COLD_ROWS


def selected(row):
    """BENCH_ANCHORS_ROWS: run only some rows (the others print "-")."""
    return not ANCHORS["only_rows"] or row in ANCHORS["only_rows"]


# ---------------------------------------------------------------- arms

class VarnishArm(NginxArm):
    """HAProxy (haproxy-nginx.cfg, the nginx arm's edge config) in front of
    varnishd with file storage; the paths and the X-Cache-Status hit
    indicator are the nginx arm's (varnish.vcl sets the header)."""
    key = "varnish"
    label = "Varnish (file)"

    def start(self):
        self.cache_port = free_port()
        os.makedirs(self.cache_root, exist_ok=True)
        vcl = os.path.join(self.work, "varnish.vcl")
        render(os.path.join(BENCH, "varnish.vcl"), vcl, ORIGIN_PORT=self.origin.port)
        sock = os.path.join(self.work, "varnish.sock")
        argv = [shutil.which("varnishd") or "/usr/sbin/varnishd", "-F", "-j", "none",
                "-n", os.path.join(self.work, "varnish-n"), "-a", "127.0.0.1:%d" % self.cache_port]
        if TRANSPORT == "unix":
            argv += ["-a", "%s,mode=0666" % sock]
        argv += ["-f", vcl, "-s", "file,%s,%s" % (os.path.join(self.cache_root, "varnish_storage.bin"),
                                                 ANCHORS["varnish_storage"]),
                # Keep HAProxy's idle connections as long as nginx does (keepalive_timeout 300s).
                "-p", "timeout_idle=300"]
        self.cache = Proc("varnish", argv, self.work, cpus=SUT_CPUS)
        self.wait_healthy("varnishd", 30)
        self.start_cache_edge(sock)

    def log_lines(self):
        """varnishd's output, without the line of the harness's own stop."""
        return [l for l in (self.cache.log_text().splitlines() if self.cache else []) if "Manager got SIGTERM" not in l]


class HaproxyCacheArm(NginxArm):
    """HAProxy alone with its `cache` section (haproxy-cache.cfg) in front
    of the origin. The cache lives inside HAProxy, so HAProxy is the whole
    SUT and also what the RSS and fd samples read."""
    key = "haproxy-cache"
    label = "HAProxy cache"

    def start(self):
        mb = ANCHORS["haproxy_cache_mb"]
        env = dict(os.environ)
        env.update(BENCH_LISTEN="127.0.0.1:%d" % self.edge_port, BENCH_ORIGIN_ADDR="127.0.0.1:%d" % self.origin.port,
                   BENCH_CACHE_MB=str(mb), BENCH_CACHE_MAX_OBJECT=str(mb * MIB // 2), SLUICE_HAPROXY_DIR=HAPROXY_DIR)
        self.start_edge([os.path.join(BENCH, "haproxy-cache.cfg")], env)

    def cache_pids(self):
        return self.haproxy.pids() if self.haproxy else []


def twin(cls):
    """The arm class with HAProxy at nbthread 2 (haproxy-bench-2t.cfg)."""
    return type(cls.__name__ + "2t", (cls,), {"key": cls.key + "-2t", "label": cls.label + ", HAProxy 2 threads",
                                              "threads": 2})


ARMS = {"sluice": SluiceArm, "nginx": NginxArm, "varnish": VarnishArm, "haproxy-cache": HaproxyCacheArm}
TWINS = {"sluice": SluiceArm2t, "nginx": NginxArm2t, "varnish": twin(VarnishArm),
         "haproxy-cache": twin(HaproxyCacheArm)}
LABELS = {"sluice": "Sluice", "nginx": "nginx proxy_cache", "varnish": "Varnish (file)",
          "haproxy-cache": "HAProxy cache"}


def make_arm(actx, cls, p):
    d = os.path.join(actx["work"], "%s-%d" % (cls.key, p))
    os.makedirs(d)
    arm = cls(actx["origin"], d, os.path.join(d, "cacheroot"))
    if isinstance(arm, SluiceArm):
        arm.extra.update({"origin_npm": npm_origin(actx["origin"]), "public_url": "http://127.0.0.1:%d" % arm.edge_port,
                          "metadata_ttl": "10m"})
    try:
        start_arm(arm)
    except Exception:
        arm.stop()              # what did start (an agent whose HAProxy did not)
        collect_findings(arm, "start", group="anchors")
        raise
    return arm


# ---------------------------------------------------------------- data

def npm_origin(origin):
    return "http://127.0.0.1:%d/npmreg" % origin.port


def make_packument(path, origin):
    """A deterministic abbreviated packument of many versions (about 200
    KiB), as the npm registry answers Accept: application/vnd.npm.install-v1+json."""
    rng = random.Random(19)
    versions = {}
    for i in range(ANCHORS["packument_versions"]):
        ver = "%d.%d.%d" % (i // 100, i // 10 % 10, i % 10)
        digest = hashlib.sha512(("%s@%s" % (NPM_NAME, ver)).encode()).digest()
        deps = {"dep-%s" % k: "^%d.%d.0" % (rng.randrange(1, 9), rng.randrange(20))
                for k in rng.sample(("alpha", "bravo", "delta", "ember", "fjord", "glyph", "harbor", "ivory"),
                                    rng.randrange(5))}
        versions[ver] = {"name": NPM_NAME, "version": ver, "dependencies": deps,
                         "dist": {"tarball": "%s/%s/-/%s-%s.tgz" % (npm_origin(origin), NPM_NAME, NPM_NAME, ver),
                                  "shasum": hashlib.sha1(digest).hexdigest(),
                                  "integrity": "sha512-" + base64.b64encode(digest).decode(),
                                  "fileCount": rng.randrange(5, 200), "unpackedSize": rng.randrange(10_000, 2_000_000)},
                         "engines": {"node": ">=%d" % rng.choice((12, 14, 16, 18))}}
    doc = {"name": NPM_NAME, "dist-tags": {"latest": ver}, "modified": "2026-11-30T12:00:00.000Z",
           "versions": versions}
    body = json.dumps(doc, separators=(",", ":")).encode()
    with open(path, "wb") as f:
        f.write(body)
    return len(body)


def make_data(data):
    """The rows' objects: slices of the generic workloads' 256 MiB pool
    (the same bytes), and N distinct 4 MiB objects for the bursts."""
    pool = make_pool(data)
    specs = [("obj-1k.bin", 12345, 1 * KIB), ("obj-1m.bin", 3 * MIB + 77, 1 * MIB),
             ("obj-64m.bin", 5 * MIB + 1, 64 * MIB), ("obj-16m.bin", 7 * MIB + 3, ANCHORS["stampede_size"])]
    specs += [(BURST_FILE % i, i * MIB + 4099 * i % MIB, ANCHORS["burst_size"]) for i in range(max(ANCHORS["bursts"]))]
    cut_files(data, pool, specs)


# ---------------------------------------------------------------- rows

def packument_target(actx, arm):
    """(path, expected file) of the packument on this arm. Sluice's answer
    is the origin's document with dist.tarball pointing at its public_url
    (/npm/); the others answer the origin's bytes."""
    src = os.path.join(actx["data"], "packument.json")
    if not isinstance(arm, SluiceArm):
        return arm.path("fast", "%s-pk" % arm.key, "packument.json"), src
    with open(src, "rb") as f:
        body = f.read().replace(('"%s/' % npm_origin(actx["origin"])).encode(),
                                ('"%s/npm/' % arm.extra["public_url"]).encode())
    want = os.path.join(arm.work, "packument-expected.json")
    with open(want, "wb") as f:
        f.write(body)
    return "/npm/" + NPM_NAME, want


def run_hit(actx, arm, p, row):
    name, obj, conns, _, _ = row
    tag = "%s-%d" % (arm.key, p)
    if name == "packument":
        path, want = packument_target(actx, arm)
        r = run_warm(actx, arm, tag, name, obj, os.path.getsize(want), conns, path=path, data_file=want,
                     header="Accept: " + CORGI_ACCEPT)
    else:
        r = run_warm(actx, arm, tag, name, obj, os.path.getsize(os.path.join(actx["data"], obj)), conns)
    # A request still in flight when the load generator stops may reach the
    # origin (an arm may forward a request its client aborted): at most one
    # per connection. More is a miss during the run. (The Sluice edge no
    # longer forwards one aborted while it waits for its verdict.)
    if (r.get("origin_requests") or 0) > conns:
        r["wrk_errors"] = "; ".join(x for x in (r["wrk_errors"], "%d origin requests during the run: not all hits"
                                                % r["origin_requests"]) if x)
    log("  %s %s: %s req/s, %s MB/s, p99 %s ms, CPU %s s/GB%s" % (
        arm.key, name, fmt(r["req_s"]), fmt(r["mb_s"]), fmt(r["p99_ms"]), fmt(r["cpu_per_gb"]),
        (", " + r["wrk_errors"]) if r["wrk_errors"] else ""))
    return r


def writer_counts(arm):
    """(cache writers detached, background refetches) so far: Sluice's
    agent only (its writes are off the clients' path, so a burst can end
    with objects it did not store); None for the others, which store what
    they forwarded."""
    if not hasattr(arm, "metrics"):
        return None
    try:
        mm = arm.metrics()
        return mm.get("sluice_writers_detached_total", 0), mm.get("sluice_fill_refetches_total", 0)
    except Exception:  # noqa: BLE001 - reported as "-"
        return None


def run_burst(actx, arm, p, n):
    """n distinct cold objects at once; the time until the last one is
    complete (fetchmany's common start to the last body byte)."""
    origin, data, size = actx["origin"], actx["data"], ANCHORS["burst_size"]
    tag = "%s-%d-b%d" % (arm.key, p, n)
    clients = [(arm.path("paced", "%s-%d" % (tag, i), BURST_FILE % i), os.path.join(data, BURST_FILE % i))
               for i in range(n)]
    origin.wait_idle(60)
    arm.settle()
    off = origin.log_offset()
    w0 = writer_counts(arm)
    with Measure(arm) as m:
        rs = fetchmany(actx, arm, clients, ANCHORS["cold_timeout"])
    t0 = rs[0]["start_wall"] if rs and rs[0]["start_wall"] else 0
    origin.wait_idle(60)
    w1 = writer_counts(arm)
    detached = int(w1[0] - w0[0]) if w0 and w1 else None
    oreq, obytes = origin.requests_since(off, "/paced/%s-" % tag)
    spans = origin.spans_since(off, "/paced/%s-" % tag)
    ok = sum(1 for r in rs if r["ok"])
    delivered = sum(r["bytes"] for r in rs)
    cs = collections.Counter(r["cache_status"].split(";")[0] if r["cache_status"].startswith("sluice")
                             else r["cache_status"] for r in rs)
    res = {"clients": n, "ok": ok, "finish_s": max(r["done_ms"] for r in rs) / 1e3,
           "done_p50_s": pct([r["done_ms"] / 1e3 for r in rs], 50), "ttfb_p50_ms": pct([r["ttfb_ms"] for r in rs], 50),
           "ttfb_max_ms": max(r["ttfb_ms"] for r in rs),
           "origin_start_max_ms": max((s - t0) * 1e3 for s, _ in spans) if spans and t0 else None,
           "origin_end_max_s": max(e - t0 for _, e in spans) if spans and t0 else None,
           "origin_requests": oreq, "origin_bytes_x": obytes / (n * size),
           "writers_detached": detached, "refetches": int(w1[1] - w0[1]) if w0 and w1 else None,
           "cpu_s": m.cpu_s, "cpu_per_gb": m.cpu_s / (delivered / 1e9) if delivered else None,
           "background_cpus": m.background, "rss_mib": m.peak_rss_mib, "fds": m.peak_fds,
           "errors": summarize_errors(rs), "cache_status": "; ".join("%d x %s" % (c, s) for s, c in cs.most_common(3))}
    if ok < n:
        res["errors"] = "%d of %d not byte-exact: %s" % (n - ok, n, res["errors"])
    log("  %s burst-%d: %d/%d ok, last done %.2f s, TTFB p50 %.1f max %.1f ms, origin %d req, last origin start "
        "%s ms, end %s s%s%s" % (arm.key, n, ok, n, res["finish_s"], res["ttfb_p50_ms"], res["ttfb_max_ms"], oreq,
                                fmt(res["origin_start_max_ms"]), fmt(res["origin_end_max_s"]),
                                "" if detached is None else ", writers detached %d, refetches %d" % (
                                    detached, res["refetches"]),
                                (", " + res["errors"]) if res["errors"] else ""))
    return res


def run_anchor_stampede(actx, arm, p):
    n = ANCHORS["stampede_clients"]
    r = run_stampede(actx, arm, "%s-%d-st" % (arm.key, p), lock_tuned=arm.key.startswith("nginx"), obj="obj-16m.bin",
                     speed="paced", n=n, size=ANCHORS["stampede_size"], timeout=ANCHORS["cold_timeout"])
    if r["ok"] < n:
        r["errors"] = "%d of %d not byte-exact: %s" % (n - r["ok"], n, r["errors"])
    return r


# ---------------------------------------------------------------- passes

def start_all(actx, p, classes, res, rows):
    """Start the arms of classes (key -> class); a start failure is the
    result of every row of that arm in this pass."""
    out = {}
    for key, cls in classes.items():
        arm = attempt(make_arm, actx, cls, p)
        if isinstance(arm, dict):
            for row in rows:
                res[row][cls.key].append(arm)
        else:
            out[key] = arm
    return out


def stop_all(arms):
    for arm in arms.values():
        arm.stop()
        collect_findings(arm, "anchors", group="anchors")
    arms.clear()


def run_pass(actx, p, res):
    keys = list(ARMS)
    order = keys[(p - 1) % len(keys):] + keys[:(p - 1) % len(keys)]
    log("anchors pass %d/%d: %s" % (p, P["passes"], " then ".join(order)))
    hit_names = [r[0] for r in HIT_ROWS]
    arms = start_all(actx, p, {k: ARMS[k] for k in order}, res, ROWS)
    twins = start_all(actx, p, {k: TWINS[k] for k in order}, res, ROWS)

    def each_arm(fn, row):
        """fn(arm) for every arm and its twin, the pair's order alternating
        per pass; the results under row, by arm key."""
        for key in order:
            pair = [a for a in (arms.get(key), twins.get(key)) if a]
            for arm in (pair if p % 2 else pair[::-1]):
                res[row][arm.key].append(attempt(fn, arm))
    try:
        for row in (r for r in HIT_ROWS if selected(r[0])):
            each_arm(lambda arm: run_hit(actx, arm, p, row), row[0])
        for n in (n for n in ANCHORS["bursts"] if selected("burst-%d" % n)):
            each_arm(lambda arm: run_burst(actx, arm, p, n), "burst-%d" % n)
        if selected("stampede"):
            each_arm(lambda arm: run_anchor_stampede(actx, arm, p), "stampede")
    finally:
        stop_all(twins)
        stop_all(arms)


def run_anchors(ctx, work):
    t0 = time.monotonic()
    base = os.path.join(work, "anchors")
    data = os.path.join(base, "data")
    os.makedirs(base)
    make_data(data)
    origin = Origin(base, data)
    try:
        pk = make_packument(os.path.join(data, "packument.json"), origin)
        log("anchors: data ready, packument %.0f KiB (%d versions)" % (pk / KIB, ANCHORS["packument_versions"]))
        actx = dict(ctx, work=base, data=data, origin=origin, duration=ANCHORS["duration"])
        res = {row: collections.defaultdict(list) for row in ROWS}
        for p in range(1, P["passes"] + 1):
            run_pass(actx, p, res)
    finally:
        origin.proc.stop()
    res = {row: dict(v) for row, v in res.items()}
    res["_info"] = {"packument_bytes": pk, "elapsed": time.monotonic() - t0}
    return res


# ---------------------------------------------------------------- report

# row -> (metric, better, absolute for every arm instead of ratios)
SUMMARY = [(r[0], r[3], r[4], "higher", False) for r in HIT_ROWS] + [
    ("burst-%d" % n, "finish_s", "%d distinct cold 4 MiB misses at once, time to finish, s" % n, "lower", False)
    for n in ANCHORS["bursts"]] + [
    ("burst-%d" % n, "origin_requests", "%d distinct cold misses: origin requests" % n, "lower", True)
    for n in ANCHORS["bursts"]] + [
    ("burst-%d" % n, "writers_detached", "%d distinct cold misses: cache writes dropped (Sluice's detached writers)" % n,
     "lower", True)
    for n in ANCHORS["bursts"]] + [
    ("stampede", "follower_ttfb_p50_ms", "stampede, 50 clients on one cold 16 MiB: follower TTFB p50, ms", "lower", False),
    ("stampede", "follower_ttfb_p99_ms", "stampede: follower TTFB p99, ms", "lower", False),
    ("stampede", "origin_requests", "stampede: origin requests", "lower", True),
]


def summary_cell(runs, base, field, absolute):
    if not runs:
        return "not run"
    good = [r for r in runs if "error" not in r]
    if not good:
        e = runs[0]["error"]
        return "not cacheable" if "never became a hit" in e else "ERROR: " + e[:60]
    v = median_of(good, field)
    bad = [r for r in good if r.get("wrk_errors") or r.get("errors")]
    flag = " (errors)" if bad else ""
    if absolute or base is None:
        return fmt(v) + flag
    if base == "self":
        return "%s (1.00)%s" % (fmt(v), flag)
    return ("%.2fx" % (v / base) if base and isinstance(v, (int, float)) else fmt(v)) + flag


def summary_table(res):
    rows = []
    for row, field, label, better, absolute in SUMMARY:
        s_runs = [r for r in res[row].get("sluice", []) if "error" not in r]
        base = median_of(s_runs, field) if s_runs else None
        cells = [summary_cell(res[row].get("sluice", []), "self" if base is not None else None, field, absolute)]
        cells += [summary_cell(res[row].get(k, []), base, field, absolute) for k in list(ARMS)[1:]]
        rows.append(["%s (%s is better)" % (label, better)] + cells)
    return table(["row"] + [LABELS[k] for k in ARMS], rows)


HIT_DETAIL = [("req/s", "req_s"), ("MB/s", "mb_s"), ("latency p50 ms", "p50_ms"), ("latency p99 ms", "p99_ms"),
              ("SUT CPU s per GB", "cpu_per_gb"), ("SUT CPU s per 10k req", "cpu_per_10k"),
              ("SUT CPU utilisation (1.0 = CPU 0 busy)", "cpu_util"),
              ("cache tier share of SUT CPU (rest: HAProxy)", "cache_cpu_share"),
              ("load generator CPU utilisation", "loadgen_util"),
              ("CPUs used by other processes (noise)", "background_cpus"), ("cache peak RSS MiB", "rss_mib"),
              ("origin requests during the runs (see the note below)", "origin_requests"), ("errors", "wrk_errors"), ("notes", "note")]
BURST_DETAIL = [("clients byte-exact", "ok"), ("last client done s", "finish_s"), ("client done p50 s", "done_p50_s"),
                ("TTFB p50 ms", "ttfb_p50_ms"), ("TTFB max ms", "ttfb_max_ms"),
                ("last origin request started, ms", "origin_start_max_ms"),
                ("last origin response ended, s", "origin_end_max_s"), ("origin requests", "origin_requests"),
                ("origin bytes (x all objects)", "origin_bytes_x"), ("SUT CPU s per GB delivered", "cpu_per_gb"),
                ("CPUs used by other processes (noise)", "background_cpus"), ("cache peak RSS MiB", "rss_mib"),
                ("errors", "errors"), ("Cache-Status seen", "cache_status")]
STAMPEDE_DETAIL = [("clients byte-exact", "ok"), ("origin requests", "origin_requests"),
                   ("origin bytes (x object)", "origin_bytes_x"), ("leader TTFB ms", "leader_ttfb_ms"),
                   ("follower TTFB p50 ms", "follower_ttfb_p50_ms"), ("follower TTFB p99 ms", "follower_ttfb_p99_ms"),
                   ("completion (last client) s", "completion_s"), ("SUT CPU s per GB delivered", "cpu_per_gb"),
                   ("CPUs used by other processes (noise)", "background_cpus"), ("errors", "errors"),
                   ("Cache-Status seen", "cache_status"), ("object cached afterwards", "cached_after")]


def detail_table(res, row, metrics):
    rows = [[label] + [cell(res[row].get(k, []), f).replace("|", "/") for k in ARMS] for label, f in metrics]
    return table(["metric"] + [LABELS[k] for k in ARMS], rows)


# Every row in the scaling table: (row, field, label, higher is better).
SCALING = [(name, field, label, True) for name, _, _, field, label in HIT_ROWS] + [
    ("burst-%d" % n, "finish_s", "%d distinct cold 4 MiB misses at once, time to finish, s" % n, False)
    for n in ANCHORS["bursts"]] + [
    ("stampede", "follower_ttfb_p50_ms", "stampede: follower TTFB p50, ms", False)]


def scaling_table(res):
    rows = []
    for name, field, label, higher in SCALING:
        for key in ARMS:
            one, two = res[name].get(key, []), res[name].get(key + "-2t", [])
            a = median_of([r for r in one if "error" not in r], field)
            b = median_of([r for r in two if "error" not in r], field)
            gain = (b / a if higher else a / b) if isinstance(a, (int, float)) and isinstance(b, (int, float)) \
                and a and b else None
            rows.append([label, LABELS[key], cell(one, field), cell(two, field),
                         "%.2f" % gain if gain is not None else "-", cell(one, "cpu_util"), cell(two, "cpu_util")])
    return table(["row", "arm", "1 thread", "2 threads", "2t gain", "SUT CPU util 1t", "SUT CPU util 2t"], rows)


def anchors_head(meta, res):
    m = meta["machine"]
    info = res.get("_info", {})
    pin = "HAProxy + cache tier on CPU 0, load + origin on CPU %s" % ",".join(map(str, sorted(LOAD_CPUS))) if PIN \
        else "not pinned"
    return """- Date: {date}
- Command: `{cmd}`{quick}
- Machine: {nproc} CPUs ({cpu}), {mem} MiB RAM, Linux {kernel}
- Software: {vers}; agent git {git}
- Passes: {passes}, all four arms (and their 2-thread twins) up at once on fresh caches, each row run arm after
  arm, the first arm rotating each pass; each cell is the median over passes
- Hit runs: {dur} s each; packument {pk:.0f} KiB; bursts: 4 MiB objects, stampede: 16 MiB, both from the origin's
  `/paced/` location (`limit_rate {rate}` per request, sent evenly in 64 KiB steps)
- HAProxy to the cache tier: {transport}; CPU: {pin}; niceness {nice}
- Run time of this part: {elapsed:.0f} s
""".format(date=meta["date"], cmd=meta["command"],
           quick=" (BENCH_QUICK: 1 pass of short runs, no medians; on a shared machine the numbers are noisy)"
           if QUICK else "", nproc=m["nproc"], cpu=m["cpu"] or "unknown", mem=m["mem_mib"], kernel=m["kernel"],
           vers=", ".join(m["versions"] + [varnish_version()]), git=meta["git"], passes=P["passes"],
           dur=ANCHORS["duration"], pk=info.get("packument_bytes", 0) / KIB, rate=P["paced_rate"],
           transport="UNIX sockets (agent, nginx, varnishd -a)" if TRANSPORT == "unix" else "TCP on 127.0.0.1",
           pin=pin, nice=NICE, elapsed=info.get("elapsed", 0))


def varnish_version():
    try:
        o = subprocess.run(["varnishd", "-V"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT).stdout.decode()
        return o.splitlines()[0].strip()
    except (OSError, IndexError):
        return "varnishd: not found"


TEXT = """### Sluice beside nginx proxy_cache, Varnish (file) and HAProxy's cache, each behind the same HAProxy

Summary: Sluice's median, then each other arm as a ratio to it (arm / Sluice; whether higher or lower is
better is said in each row). Origin request counts are absolute for every arm. "not cacheable": the arm never
answered a hit for the object.

{summary}

#### Hits (medians over passes; CPU of the SUT = HAProxy + cache tier)

Before a run, the object is fetched until the arm's hit indicator says HIT with the right bytes. During the
run the origin's requests are counted: a request still in flight when the load generator stops may reach it
(the Sluice edge forwards a request aborted while it waits for its verdict), at most one per connection;
more than that is reported as an error (not every answer was a hit).

{hits}

#### Bursts of distinct cold misses (4 MiB each, ~1 s per fill at the origin)

{bursts}

#### Stampede: {sc} clients on one cold 16 MiB object (nginx: lock raised above the fill)

{stampede}

#### HAProxy 1 vs 2 threads (each arm's twin with `nbthread 2`, seconds apart; 2t gain: the rate with 2 threads over
the rate with 1, or for a time the time with 1 thread over the time with 2; above 1, the second thread helped. The
second thread shares CPU 1 with the load generator and the origin)

{scaling}
"""


def anchors_report(res):
    if "error" in res:
        body = "### Sluice beside nginx proxy_cache, Varnish (file) and HAProxy's cache\n\nERROR: %s\n" % res["error"]
    else:
        hits = "\n\n".join("%s\n\n%s" % (r[4], detail_table(res, r[0], HIT_DETAIL)) for r in HIT_ROWS)
        bursts = "\n\n".join("%d at once\n\n%s" % (n, detail_table(res, "burst-%d" % n, BURST_DETAIL))
                             for n in ANCHORS["bursts"])
        body = TEXT.format(summary=summary_table(res), hits=hits, bursts=bursts,
                           sc=ANCHORS["stampede_clients"], stampede=detail_table(res, "stampede", STAMPEDE_DETAIL),
                           scaling=scaling_table(res))
    arms = [(k, LABELS[k] + " arm") for k in ARMS] + [(TWINS[k].key, LABELS[k] + " arm, HAProxy 2 threads")
                                                      for k in ARMS]
    return [("anchors", body), ("_findings", findings_section("anchors", arms, "Server log findings (anchors)"))]


def anchors_raw(res):
    if "error" in res:
        return ["anchors: %s" % json.dumps(res)]
    out = []
    for row in ROWS:
        for key, runs in res[row].items():
            for i, r in enumerate(runs):
                rr = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items() if k != "metrics"}
                out.append("anchors %s %s pass %d: %s" % (row, key, i + 1, json.dumps(rr, sort_keys=True)))
    return out


def anchors_summary(res):
    """The summary table alone (printed again at the end of the run)."""
    return summary_table(res) if "error" not in res else "anchors: ERROR: %s" % res["error"]
