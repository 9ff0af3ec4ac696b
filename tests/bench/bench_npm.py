"""tests/bench npm workloads, Sluice (HAProxy + agent, route /npm/) against
Verdaccio 5, both pull-through caches of one offline NpmRegistry
(tests/lib/registry.py) on 127.0.0.1:

    npm-ci-warm    the real `npm ci` of a lockfile of ~130 packages: one
                   cold run per arm, then N warm runs per arm, each with an
                   empty npm cache and no node_modules, arms alternating;
                   median wall time and the origin requests of the warm runs
    npm-replay     every abbreviated packument and tarball of that lockfile,
                   64 keep-alive connections (fetchmany list mode), every
                   status and body checked: req/s, p50/p99
    npm-huge-cold  a 41 MB full packument fetched cold by 20 clients at
                   once, the registry sending at origin_rate (32 MB/s, the
                   generic workloads' origin speed, a registry across the
                   internet): origin requests for it, the server's RSS
                   growth; then Sluice once more against the registry at
                   loopback speed, faster than this machine's disk takes
                   the cache writer's bytes

The project (make_npm_project) is made once per run: the packages with a
dependency tree (some scoped, some in two major versions so npm nests a
copy), a package.json naming the roots, and package-lock.json from `npm
install --package-lock-only` against the registry itself. Each arm gets a
copy whose `resolved` URLs name that arm, as a lockfile made against that
arm would: npm ci then fetches every tarball from it, the way users run it
(npm's replace-registry-host only swaps registry.npmjs.org's host)."""

import http.client
import json
import os
import random
import re
import shutil
import statistics
import subprocess

from bench_config import ECO, P, log, parse_rate
from bench_proc import LOAD_CPUS, Measure, Sampler, child_setup, status_kb
from bench_report import pct

from clients import npm_install, npm_lock  # tests/lib, on sys.path via bench_arms

CORGI_ACCEPT = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"
SCOPES = ("@bench", "@acme")
WORDS = ("alpha", "bravo", "delta", "ember", "fjord", "glyph", "harbor", "ivory", "jetty", "karma",
         "lumen", "mirth", "nadir", "orbit", "pixel", "quartz", "rivet", "sable", "tango", "umbra")


# ------------------------------------------------------------ the project

def package_names(n):
    """n deterministic names, one in five scoped."""
    out = []
    for i in range(n):
        base = "%s-%s-%d" % (WORDS[i % len(WORDS)], WORDS[(i * 7 + 3) % len(WORDS)], i)
        out.append("%s/%s" % (SCOPES[i % 2], base) if i % 5 == 4 else "bench-" + base)
    return out


def tarball_size(rng):
    """Spread like real tarballs: mostly small, some medium, a few large."""
    r = rng.random()
    if r < 0.70:
        return rng.randint(1_000, 16_000)
    if r < 0.95:
        return rng.randint(16_000, 128_000)
    return rng.randint(128_000, 512_000)


def dependency_tree(names, roots, rng):
    """{name: {dep: range}}: a DAG (roots depend on non-roots, the others
    only on later names), every name reachable from a root. The last eight
    also exist as 2.0.0; half of their dependents ask for ^2.0.0, the rest
    for ^1.0.0, so npm nests the second copy."""
    n = len(names)
    deps = {name: {} for name in names}
    for i in range(n):
        lo = max(i + 1, roots)
        k = rng.randint(2, 4) if i < roots else rng.randint(0, 3)
        for j in rng.sample(range(lo, n), min(n - lo, k)):
            deps[names[i]][names[j]] = "^1.0.0"
    reached = set(names[:roots])
    for i, name in enumerate(names):      # deps point forward: one pass in order
        if name not in reached:
            deps[rng.choice([m for m in names[:i] if m in reached])][name] = "^1.0.0"
            reached.add(name)
        reached |= set(deps[name])
    twice = set(names[-8:])
    k = 0
    for name in names:
        for d in sorted(deps[name]):
            if d in twice:
                deps[name][d] = "^2.0.0" if k % 2 else "^1.0.0"
                k += 1
    return deps, twice


def package_files(name, version, rng):
    files = {"index.js": "module.exports = require('./lib/part-0.js');\n",
             "README.md": "# %s\n\nVersion %s, made by the Sluice bench.\n" % (name, version)}
    for k in range(rng.randint(2, 12)):
        files["lib/part-%d.js" % k] = "// %s %s part %d\nmodule.exports = %d;\n" % (name, version, k, k)
    return files


def publish_packages(reg, names, deps, twice):
    rng = random.Random(20261204)
    for name in reversed(names):
        for ver in ("1.0.0", "2.0.0") if name in twice else ("1.0.0",):
            reg.add_package(name, ver, deps=deps[name], files=package_files(name, ver, rng),
                            size=tarball_size(rng))


def make_npm_project(reg, work):
    """Publish the packages, write the project and its lockfile (against
    the registry itself). Returns the project description."""
    names = package_names(ECO["npm_packages"])
    rng = random.Random(14)
    deps, twice = dependency_tree(names, ECO["npm_roots"], rng)
    publish_packages(reg, names, deps, twice)
    proj = os.path.join(work, "npm-project")
    os.makedirs(proj)
    with open(os.path.join(proj, "package.json"), "w") as f:
        json.dump({"name": "sluice-bench-project", "version": "1.0.0", "private": True,
                   "dependencies": {n: "^1.0.0" for n in names[:ECO["npm_roots"]]}}, f, indent=2)
    r = npm_lock(reg.registry_url, proj, timeout=300)
    if not r.ok:
        raise RuntimeError("npm install --package-lock-only against the registry failed:\n%s" % r)
    with open(os.path.join(proj, "package-lock.json")) as f:
        lock = json.load(f)
    entries = {k: v for k, v in lock["packages"].items() if k}
    bad = [k for k, v in entries.items() if not v.get("resolved", "").startswith(reg.base_url + "/")]
    if bad or len(entries) < 100:
        raise RuntimeError("lockfile: %d entries, %d without a registry URL (%s)" % (len(entries), len(bad), bad[:3]))
    tarballs = sorted({v["resolved"][len(reg.base_url):] for v in entries.values()})
    size = sum(os.path.getsize(tarball_file(reg, p)) for p in tarballs)
    log("npm project: %d packages in the registry, %d lockfile entries, %d tarballs (%.1f MB)"
        % (len(names), len(entries), len(tarballs), size / 1e6))
    return {"dir": proj, "names": names, "entries": len(entries), "tarballs": tarballs, "bytes": size,
            "lock": lock}


def tarball_file(reg, url_path):
    """The registry's file for a tarball path (/<name>/-/<base>-<ver>.tgz)."""
    name = url_path[1:url_path.index("/-/")]
    ver = url_path.rsplit("-", 1)[1][:-len(".tgz")]
    return reg.versions(name)[ver].file


def arm_project(project, reg, work, key, base):
    """A copy of the project whose lockfile resolves to base (the arm's
    registry URL, ending in /)."""
    d = os.path.join(work, "npm-ci-" + key)
    os.makedirs(d, exist_ok=True)
    shutil.copy(os.path.join(project["dir"], "package.json"), d)
    text = json.dumps(project["lock"], indent=2).replace('"%s/' % reg.base_url, '"%s' % base)
    with open(os.path.join(d, "package-lock.json"), "w") as f:
        f.write(text + "\n")
    return d


# ----------------------------------------------------------- npm-ci-warm

def npm_ci_once(arm, proj, url, expect):
    shutil.rmtree(os.path.join(proj, "node_modules"), ignore_errors=True)
    arm.settle()
    with Measure(arm) as m:
        r = npm_install(url, proj, lockfile=True, timeout=600)
    if not r.ok:
        raise RuntimeError("npm ci through %s failed:\n%s" % (arm.key, r))
    added = re.search(r"added (\d+) packages?", r.output)
    if not added or int(added.group(1)) != expect:
        raise RuntimeError("npm ci through %s: %s, expected %d packages" % (
            arm.key, added.group(0) if added else "no 'added N packages'", expect))
    return {"wall_s": r.elapsed, "cpu_s": m.cpu_s, "rss_mib": m.peak_rss_mib, "background_cpus": m.background}


def run_npm_ci(ctx, arms):
    """One cold npm ci per arm, then the warm runs, first arm alternating."""
    reg, project = ctx["npm"], ctx["npm_project"]
    res = {}
    for arm in arms:
        proj = arm_project(project, reg, ctx["work"], arm.key, ctx["npm_url"][arm.key])
        before = reg.requests(method=None)
        cold = npm_ci_once(arm, proj, ctx["npm_url"][arm.key], project["entries"])
        res[arm.key] = {"proj": proj, "cold": cold, "warm": [],
                        "origin_cold": reg.requests(method=None) - before, "origin_warm": 0}
        log("  %s npm ci cold: %.2f s, %d origin requests" % (arm.key, cold["wall_s"], res[arm.key]["origin_cold"]))
    for i in range(ECO["npm_warm_runs"]):
        for arm in (arms if i % 2 == 0 else arms[::-1]):
            r = res[arm.key]
            before = reg.requests(method=None)
            w = npm_ci_once(arm, r["proj"], ctx["npm_url"][arm.key], project["entries"])
            n = reg.requests(method=None) - before
            r["warm"].append(w)
            r["origin_warm"] += n
            log("  %s npm ci warm %d: %.2f s, %d origin requests" % (arm.key, i + 1, w["wall_s"], n))
    return {k: warm_summary(v) for k, v in res.items()}


def warm_summary(r):
    """Medians of the warm runs of one arm (npm ci or pip install), the
    cold run, and the origin requests of each."""
    walls = [w["wall_s"] for w in r["warm"]]
    return {"wall_s": statistics.median(walls), "wall_min_s": min(walls), "wall_max_s": max(walls),
            "walls": [round(x, 3) for x in walls], "cold_s": r["cold"]["wall_s"],
            "origin_cold": r["origin_cold"], "origin_warm": r["origin_warm"],
            "cpu_s": statistics.median([w["cpu_s"] for w in r["warm"]]),
            "rss_mib": max(w["rss_mib"] for w in r["warm"] + [r["cold"]]),
            "background_cpus": statistics.median([w["background_cpus"] for w in r["warm"]])}


# ------------------------------------------------------------ npm-replay

def fetch_body(arm, path, accept):
    """One GET on the arm's edge: (status, body bytes, headers)."""
    c = http.client.HTTPConnection("127.0.0.1", arm.edge_port, timeout=60)
    try:
        c.request("GET", path, headers={"Accept": accept})
        r = c.getresponse()
        return r.status, r.read(), dict((k.lower(), v) for k, v in r.getheaders())
    finally:
        c.close()


def replay_list(ctx, arm, prefix):
    """(path, expected file, header) of every packument and tarball. The
    packuments' expected bytes are the arm's own answer, fetched twice
    here (a miss, then the cached copy) and checked: Sluice's must be the
    origin's document with dist.tarball rewritten to public_url + /npm/,
    Verdaccio's must list the origin's versions."""
    reg, project = ctx["npm"], ctx["npm_project"]
    snap = os.path.join(ctx["work"], "replay-" + arm.key)
    os.makedirs(snap, exist_ok=True)
    names = sorted({k.rsplit("node_modules/", 1)[1] for k in project["lock"]["packages"] if k})
    lines = []
    for i, name in enumerate(names):
        path = prefix + "/" + name.replace("/", "%2f")
        for _ in range(2):
            st, body, h = fetch_body(arm, path, CORGI_ACCEPT)
        if st != 200:
            raise RuntimeError("%s %s: status %d" % (arm.key, path, st))
        check_packument(ctx, arm, name, body)
        f = os.path.join(snap, "p%03d.json" % i)
        with open(f, "wb") as out:
            out.write(body)
        lines.append((path, f, "Accept: " + CORGI_ACCEPT))
    for p in project["tarballs"]:
        st, body, h = fetch_body(arm, prefix + p, "*/*")
        f = tarball_file(reg, p)
        with open(f, "rb") as src:
            if st != 200 or body != src.read():
                raise RuntimeError("%s %s: status %d, %d bytes, not the origin's" % (arm.key, p, st, len(body)))
        lines.append((prefix + p, f, ""))
    return lines


def check_packument(ctx, arm, name, body):
    reg = ctx["npm"]
    if arm.key == "sluice":
        want = reg.packument_bytes(name, corgi=True).replace(
            ('"%s/' % reg.base_url).encode(), ('"%s/npm/' % arm.extra["public_url"]).encode())
        if body != want:
            raise RuntimeError("sluice %s: the abbreviated packument is not the origin's with dist.tarball "
                               "rewritten (%d bytes, expected %d)" % (name, len(body), len(want)))
        return
    doc = json.loads(body)
    if set(doc.get("versions", {})) != set(reg.versions(name)):
        raise RuntimeError("%s %s: versions %s" % (arm.key, name, sorted(doc.get("versions", {}))))


def run_replay_once(ctx, arm, lines):
    """One replay of the list on the warm arm: fetchmany list mode."""
    reg = ctx["npm"]
    arm.settle()
    before = reg.requests(method=None)
    stdin = "".join("%s %s %s\n" % l for l in lines)
    cmd = [ctx["fetchmany"], "-p", str(arm.edge_port), "-d", str(ECO["replay_secs"]),
           "-c", str(ECO["replay_conns"]), "-n", str(ECO["replay_rounds"] * len(lines))]
    with Measure(arm) as m:
        r = subprocess.run(cmd, input=stdin.encode(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           preexec_fn=child_setup(LOAD_CPUS), timeout=ECO["replay_secs"] + 120)
    out = r.stdout.decode(errors="replace")
    mm = re.search(r"^LOOP (.*)$", out, re.M)
    if r.returncode != 0 or not mm:
        raise RuntimeError("fetchmany list mode failed: %s" % (r.stderr.decode(errors="replace") + out)[-2000:])
    kv = dict(re.findall(r"(\w+)=(\S+)", mm.group(1).split(" errs=")[0]))
    errs = mm.group(1).split(" errs=", 1)[1]
    ok, n, secs = int(kv["ok"]), int(kv["requests"]), float(kv["secs"])
    return {"req_s": ok / secs, "p50_ms": float(kv["p50"]), "p99_ms": float(kv["p99"]), "requests": n, "ok": ok,
            "errors": n - ok, "error_kinds": "" if errs == "-" else errs, "secs": secs,
            "origin_requests": reg.requests(method=None) - before, "cpu_s": m.cpu_s,
            "cpu_util": m.cpu_s / m.wall_s if m.wall_s else None,
            "cpu_per_10k": m.cpu_s / (ok / 1e4) if ok else None, "loadgen_util": m.loadgen_util,
            "background_cpus": m.background, "rss_mib": m.peak_rss_mib, "fds": m.peak_fds}


def run_replay(ctx, arms):
    lists = {arm.key: replay_list(ctx, arm, ctx["npm_prefix"][arm.key]) for arm in arms}
    npk = len([l for l in lists[arms[0].key] if l[2]])
    log("  replay list: %d packuments + %d tarballs" % (npk, len(lists[arms[0].key]) - npk))
    runs = {arm.key: [] for arm in arms}
    for i in range(ECO["replay_runs"]):
        for arm in (arms if i % 2 == 0 else arms[::-1]):
            r = run_replay_once(ctx, arm, lists[arm.key])
            runs[arm.key].append(r)
            log("  %s replay %d: %.0f req/s, p50 %.2f ms, p99 %.2f ms, %d errors%s, %d origin requests"
                % (arm.key, i + 1, r["req_s"], r["p50_ms"], r["p99_ms"], r["errors"],
                   " (%s)" % r["error_kinds"] if r["error_kinds"] else "", r["origin_requests"]))
    return {k: replay_summary(v, len(lists[k]), npk) for k, v in runs.items()}


def replay_summary(runs, n_list, npk):
    out = {"runs": runs, "list": n_list, "packuments": npk}
    for f in ("req_s", "p50_ms", "p99_ms", "cpu_per_10k", "cpu_util", "loadgen_util", "background_cpus"):
        vals = [r[f] for r in runs if r.get(f) is not None]
        out[f] = statistics.median(vals) if vals else None
    for f in ("requests", "errors", "origin_requests"):
        out[f] = sum(r[f] for r in runs)
    out["rss_mib"] = max(r["rss_mib"] for r in runs)
    out["fds"] = max(r["fds"] for r in runs)
    out["error_kinds"] = "; ".join(r["error_kinds"] for r in runs if r["error_kinds"])
    return out


# --------------------------------------------------------- npm-huge-cold

HUGE = "bench-huge"
HUGE_UNPACED = "bench-huge-unpaced"     # the same document, cold for the unpaced run


def make_huge(reg, work):
    for name in (HUGE, HUGE_UNPACED):
        reg.bulk_packument(name, versions=ECO["huge_versions"], readme_bytes=ECO["huge_readme"])
        reg.packument_bytes(name)        # rendered now, not during the run
    body = reg.packument_bytes(HUGE)
    log("huge packument: %.1f MB full, %.2f MB abbreviated" % (len(body) / 1e6,
                                                               len(reg.packument_bytes(HUGE, corgi=True)) / 1e6))
    return len(body)


def huge_expected(ctx, arm, name):
    """The bytes Sluice must send: the origin's with dist.tarball rewritten.
    None for Verdaccio (it reshapes the document): its clients are
    compared with each other."""
    if arm.key != "sluice":
        return "-"
    reg = ctx["npm"]
    f = os.path.join(ctx["work"], "huge-expected-%s.json" % name)
    with open(f, "wb") as out:
        out.write(reg.packument_bytes(name).replace(('"%s/' % reg.base_url).encode(),
                                                    ('"%s/npm/' % arm.extra["public_url"]).encode()))
    return f


def rss_kb(arm):
    return sum(status_kb(p, "VmRSS") for p in arm.cache_pids())


def run_huge_once(ctx, arm, rate, name):
    reg = ctx["npm"]
    reg.set_rate(rate)
    path = ctx["npm_prefix"][arm.key] + "/" + name
    n = ECO["huge_clients"]
    arm.settle()
    before = reg.requests(path="/" + name, method=None)
    log0 = len(reg.request_log())
    c0 = agent_counters(arm)
    rss0 = rss_kb(arm)
    sampler = Sampler(arm.cache_pids, interval=0.02)
    sampler.start()
    try:
        stdin = "%s %s Accept: application/json\n" % (path, huge_expected(ctx, arm, name))
        r = subprocess.run([ctx["fetchmany"], "-p", str(arm.edge_port), "-t", "120", "-s"], input=(stdin * n).encode(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=child_setup(LOAD_CPUS),
                           timeout=240)
        arm.settle(60)
    finally:
        sampler.finish()
        reg.set_rate(None)
    if r.returncode != 0:
        raise RuntimeError("fetchmany failed: %s" % r.stderr.decode(errors="replace")[-2000:])
    rows = [l.split("\t") for l in r.stdout.decode(errors="replace").splitlines()]
    res = huge_result(rows, n, reg.requests(path="/" + name, method=None) - before, rss0, sampler.peak_rss_kb,
                      rss_kb(arm))
    res["origin_detail"] = origin_detail([q for q in reg.request_log()[log0:] if q.path == "/" + name])
    c1 = agent_counters(arm)
    if c1 is not None:
        res["agent"] = ", ".join("%s %d" % (k, c1[k] - c0.get(k, 0)) for k in sorted(c1)
                                 if c1[k] != c0.get(k, 0)) or "none"
    if arm.key != "sluice":
        res["check"] = check_reshaped(ctx, arm, path, name)
    return res


def origin_detail(reqs):
    """When each origin request for the packument came, relative to the
    first, and whether it was conditional (the first three and the last)."""
    each = ["+%.0f ms %s%s" % ((q.time - reqs[0].time) * 1e3, q.method,
                               " conditional" if q.if_none_match or q.if_modified_since else "") for q in reqs]
    return "; ".join(each if len(each) <= 4 else each[:3] + ["...", each[-1]])


def agent_counters(arm):
    """The agent's writer and refetch counters (None for Verdaccio): a
    second origin request for one key is a background refetch after the
    cache writer was detached for lagging (fill.c)."""
    if not hasattr(arm, "metrics"):
        return None
    m = arm.metrics()
    out = {"writers detached": m.get("sluice_writers_detached_total", 0),
           "refetches": m.get("sluice_fill_refetches_total", 0)}
    for reason, v in m.by_label("sluice_cache_write_failures_total", "reason").items():
        out["writer failures (%s)" % reason] = v
    return {k: int(v) for k, v in out.items()}


def check_reshaped(ctx, arm, path, name):
    """Verdaccio answers its own document (no per-version readmes, its
    own _rev): one more GET must list the origin's versions, each with
    the origin's integrity."""
    st, body, _ = fetch_body(arm, path, "application/json")
    if st != 200:
        return "next GET: status %d" % st
    doc = json.loads(body)
    want = ctx["npm"].versions(name)
    got = doc.get("versions", {})
    bad = [v for v in want if got.get(v, {}).get("dist", {}).get("integrity") != want[v].integrity]
    return ("next GET: the origin's %d versions and integrities" % len(want) if not bad and len(got) == len(want)
            else "next GET: %d versions, %d missing or different" % (len(got), len(bad)))


def huge_result(rows, n, origin, rss0, peak, after):
    ok = [x for x in rows if x[2] == "1"]
    shas = {x[8] for x in ok}
    errors = sorted({x[7] for x in rows if x[7] != "-"})
    cs = {}
    for x in rows:
        k = re.sub(r"age=\d+", "age=N", x[6])
        cs[k] = cs.get(k, 0) + 1
    return {"clients": n, "ok": len(ok), "identical": len(shas) == 1 and len(ok) == n,
            "distinct_bodies": len(shas),
            "bytes": int(ok[0][3]) if ok else 0, "origin_requests": origin,
            "rss_before_mib": rss0 / 1024.0, "rss_peak_mib": max(peak, rss0) / 1024.0,
            "rss_growth_mib": max(0, peak - rss0) / 1024.0, "rss_after_mib": after / 1024.0,
            "ttfb_p50_ms": pct([float(x[4]) for x in rows], 50),
            "completion_s": max(float(x[5]) for x in rows) / 1e3 if rows else None,
            "errors": "; ".join(errors[:3]),
            "cache_status": "; ".join("%d x %s" % (c, s) for s, c in sorted(cs.items(), key=lambda kv: -kv[1])[:3])}


def run_huge(ctx, arms):
    """Each arm with the registry at origin_rate; then Sluice again (a new
    key: a cold fill) with the registry unpaced."""
    out = {}
    rate = parse_rate(P["origin_rate"])
    runs = [(arm, arm.key, rate) for arm in arms] + [(arm, "sluice-unpaced", None) for arm in arms
                                                       if arm.key == "sluice"]
    for arm, key, rate in runs:
        r = run_huge_once(ctx, arm, rate, HUGE if rate else HUGE_UNPACED)
        out[key] = r
        log("  %s huge cold: %d/%d ok, %d distinct bodies, %d origin requests, RSS %.1f -> peak %.1f MiB (+%.1f), "
            "%.2f s%s%s" % (key, r["ok"], r["clients"], r["distinct_bodies"], r["origin_requests"],
                            r["rss_before_mib"], r["rss_peak_mib"], r["rss_growth_mib"], r["completion_s"] or 0,
                            " errors: " + r["errors"] if r["errors"] else "",
                            "; " + r["check"] if "check" in r else ""))
        log("    origin requests: %s%s" % (r["origin_detail"], "; agent: " + r["agent"] if "agent" in r else ""))
    return out

