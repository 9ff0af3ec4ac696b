"""tests/bench workloads: warm hits (wrk for small objects, the fetchmany
loop for large ones), the cold stampede, the ENOSPC run on a tmpfs, and the
generated test objects they fetch."""

import collections
import hashlib
import os
import re
import shutil
import subprocess
import time

from bench_arms import NginxArm, start_arm
from bench_config import GIB, KIB, MIB, P, log
from bench_proc import CLEANUP, LOAD_CPUS, Measure, child_setup, http_get, umount
from bench_report import collect_findings, fmt, normalize_log_line, pct


# -------------------------------------------------------------- workloads

UNITS_T = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
UNITS_B = {"B": 1, "KB": KIB, "MB": MIB, "GB": GIB, "TB": 1024 * GIB}


def parse_wrk(out):
    def lat(s):
        m = re.match(r"([\d.]+)(us|ms|s|m|h)$", s)
        return float(m.group(1)) * UNITS_T[m.group(2)]
    r = {}
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h), ([\d.]+)(B|KB|MB|GB|TB) read", out)
    if not m:
        raise RuntimeError("cannot parse wrk output:\n" + out[-2000:])
    r["requests"] = int(m.group(1))
    r["duration_s"] = float(m.group(2)) * UNITS_T[m.group(3)] / 1e3
    r["read_bytes"] = float(m.group(4)) * UNITS_B[m.group(5)]
    for p in ("50", "75", "90", "99"):
        mm = re.search(r"^\s+%s%%\s+(\S+)" % p, out, re.M)
        if mm:
            r["p%s_ms" % p] = lat(mm.group(1))
    errs = []
    mm = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if mm and any(int(x) for x in mm.groups()):
        errs.append("socket errors c/r/w/t %s/%s/%s/%s" % mm.groups())
    mm = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if mm:
        errs.append("%s non-2xx" % mm.group(1))
    r["errors"] = "; ".join(errs)
    return r


def prime(arm, path, data_file, tries=4, headers=None):
    """Fetch until the edge answers a byte-exact hit (the object is cached).
    Returns None, or why it never became a hit."""
    want = file_sha(data_file)
    last = None
    for _ in range(tries):
        st, h, sha, n = http_get(arm.edge_port, path, headers=headers)
        last = (st, arm.cache_status_of(h), n)
        if st == 200 and sha != want:
            raise RuntimeError("prime %s: body differs from the origin file (%d bytes, %s)" % (path, n, last[1]))
        if st == 200 and arm.is_hit(h):
            return None
        arm.settle(5)
    return "%d fetches, last: %s '%s' %d bytes" % ((tries,) + last)


_SHA = {}


def file_sha(path):
    if path not in _SHA:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for b in iter(lambda: f.read(1 << 20), b""):
                h.update(b)
        _SHA[path] = h.hexdigest()
    return _SHA[path]


def run_warm(ctx, arm, tag, name, obj, size, conns, path=None, data_file=None, header=None):
    """Warm hits of obj on the arm; path, data_file and header (one request
    header, "Name: value") replace the generic route's path, the data dir's
    file and no header (the anchors group's packument row)."""
    data_file = data_file or os.path.join(ctx["data"], obj)
    hdrs = dict([header.split(": ", 1)]) if header else None
    fixed_path = path is not None
    path = path or arm.path("fast", tag, obj)
    note = ""
    why = prime(arm, path, data_file, headers=hdrs)
    if why and fixed_path:
        raise RuntimeError("never became a hit: " + why)
    if why:
        # Report it, then measure hits anyway: fill from the rate-limited
        # origin, which a lagging cache writer can keep up with.
        note = "NOT cached when filled from the full-speed origin (%s); hits measured after a fill from the " \
               "%s/s origin" % (why, P["origin_rate"])
        log("  %s %s: %s" % (arm.key, name, note))
        path = arm.path("slow", tag, obj)
        why = prime(arm, path, data_file, tries=3)
        if why:
            raise RuntimeError("never became a hit, even from the rate-limited origin: " + why)
    arm.settle()
    dur = ctx.get("duration", P["duration"])
    off = arm.origin.log_offset() if arm.origin else None
    if size <= 64 * KIB:
        # wrk for small objects (req/s and latency; it is not the bottleneck there).
        cmd = ["wrk", "-t", "1", "-c", str(conns), "-d", "%ds" % dur, "--latency", "--timeout", "30s",
               "http://127.0.0.1:%d%s" % (arm.edge_port, path)]
        with Measure(arm) as m:
            out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 preexec_fn=child_setup(LOAD_CPUS), timeout=dur + 60).stdout.decode()
        w = parse_wrk(out)
        requests, secs, body_bytes, errors = w["requests"], w["duration_s"], w["requests"] * size, w["errors"]
        p50, p99 = w.get("p50_ms"), w.get("p99_ms")
    else:
        # fetchmany loop mode for large objects: wrk's 8 KiB reads cap it near
        # 500 MB/s here; this also checks every body byte.
        with Measure(arm) as m:
            lp = fetchmany_loop(ctx, arm, [(path, data_file) + ((header,) if header else ())] * conns, dur)
        requests, secs, body_bytes, errors = lp["ok"], lp["secs"], lp["bytes"], lp["errs"]
        if lp["errors"]:
            errors = "%d failed requests: %s" % (lp["errors"], lp["errs"])
        p50, p99 = lp["p50"], lp["p99"]
    gb = body_bytes / 1e9
    res = {
        "req_s": requests / secs,
        "mb_s": body_bytes / secs / 1e6,
        "p50_ms": p50,
        "p99_ms": p99,
        "requests": requests,
        "cpu_s": m.cpu_s,
        "cpu_util": m.cpu_s / m.wall_s if m.wall_s else None,
        "background_cpus": m.background,
        "loadgen_util": m.loadgen_util,
        "cpu_per_gb": m.cpu_s / gb if gb > 0 else None,
        "cpu_per_10k": m.cpu_s / (requests / 1e4) if requests else None,
        "cache_cpu_share": m.cache_cpu_s / m.cpu_s if m.cpu_s else None,
        "rss_mib": m.peak_rss_mib,
        "fds": m.peak_fds,
        "wrk_errors": errors or "",
        "note": note,
        # Origin requests during the measurement: 0 when every answer was a hit.
        "origin_requests": arm.origin.requests_since(off, "/")[0] if arm.origin else None,
    }
    # A last check that the edge still serves the right bytes.
    st, h, sha, n = http_get(arm.edge_port, path, headers=hdrs)
    if st != 200 or sha != file_sha(data_file):
        res["wrk_errors"] = (res["wrk_errors"] + "; " if res["wrk_errors"] else "") + \
            "post-check: status %s, %d bytes, %s" % (st, n, "sha ok" if sha == file_sha(data_file) else "sha MISMATCH")
    if res["wrk_errors"]:
        log("  %s %s: %s" % (arm.key, name, res["wrk_errors"]))
    return res


def fetchmany_loop(ctx, arm, clients, secs):
    """clients: (path, expected file[, one request header]) per connection."""
    lines = "".join(" ".join(c) + "\n" for c in clients)
    cmd = [ctx["fetchmany"], "-p", str(arm.edge_port), "-d", str(secs)]
    r = subprocess.run(cmd, input=lines.encode(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       preexec_fn=child_setup(LOAD_CPUS), timeout=secs + 60)
    out = r.stdout.decode(errors="replace")
    m = re.search(r"^LOOP (.*)$", out, re.M)
    if r.returncode != 0 or not m:
        raise RuntimeError("fetchmany -d failed: %s" % (r.stderr.decode(errors="replace") + out)[-2000:])
    kv = dict(re.findall(r"(\w+)=(\S+)", m.group(1).split(" errs=")[0]))
    res = {k: float(v) for k, v in kv.items()}
    for k in ("requests", "ok", "errors", "bytes"):
        res[k] = int(res[k])
    for k in ("p50", "p90", "p99", "max", "ttfb_p50"):
        if res[k] < 0:
            res[k] = None
    errs = m.group(1).split(" errs=", 1)[1]
    res["errs"] = "" if errs == "-" else errs
    return res


def fetchmany(ctx, arm, clients, timeout, sha=False):
    """clients: list of (path, expected file). Returns per-client dicts."""
    lines = "".join("%s %s\n" % c for c in clients)
    cmd = [ctx["fetchmany"], "-p", str(arm.edge_port), "-t", str(timeout)] + (["-s"] if sha else [])
    r = subprocess.run(cmd, input=lines.encode(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       preexec_fn=child_setup(LOAD_CPUS), timeout=timeout + 60)
    if r.returncode != 0:
        raise RuntimeError("fetchmany failed: %s" % r.stderr.decode(errors="replace")[-2000:])
    m = re.search(r"^start_wall=(\S+)$", r.stderr.decode(errors="replace"), re.M)
    start = float(m.group(1)) if m else None      # the common start, wall clock (origin logs use it)
    out = []
    for line in r.stdout.decode(errors="replace").splitlines():
        f = line.split("\t")
        out.append({"idx": int(f[0]), "status": int(f[1]), "ok": f[2] == "1", "bytes": int(f[3]),
                    "ttfb_ms": float(f[4]), "done_ms": float(f[5]), "cache_status": f[6], "error": f[7],
                    "start_wall": start})
    return out


def summarize_errors(rs, key="error", top=3):
    c = collections.Counter(re.sub(r"@\d+", "@N", r[key]) for r in rs if r[key] != "-")
    return "; ".join("%d x %s" % (n, e) for e, n in c.most_common(top))


def run_stampede(ctx, arm, tag, lock_tuned=False, obj="obj-256m.bin", speed="slow", n=None, size=None,
                 timeout=None):
    """n clients (P's stampede_clients) at once on one cold object (the
    256 MiB one from /slow/, unless obj, speed and size say otherwise)."""
    origin = ctx["origin"]
    path = arm.path(speed, tag, obj, lock_tuned)
    n = n or P["stampede_clients"]
    size = size or P["stampede_size"]
    expected = os.path.join(ctx["data"], obj)
    arm.settle()
    off = origin.log_offset()
    v0 = arm.verdicts()
    with Measure(arm) as m:
        rs = fetchmany(ctx, arm, [(path, expected)] * n, timeout or P["stampede_timeout"])
        origin.wait_idle(60)
        arm.settle(30)
    oreq, obytes = origin.requests_since(off, "/%s/%s/" % (speed, tag))
    v1 = arm.verdicts()
    verdicts = ", ".join("%s=%d" % (k, v1[k] - v0.get(k, 0)) for k in sorted(v1) if v1[k] - v0.get(k, 0)) \
        if v1 is not None and v0 is not None else "n/a"
    # Is the object cached now? (One more GET, after the fill settled.)
    # A miss would be a new 7.5 s fill: read the body of hits only.
    st, h, sha, nb = http_get(arm.edge_port, path, timeout=120, want_body=arm.is_hit)
    if st == 200 and arm.is_hit(h):
        cached = "yes" if sha == file_sha(expected) else "HIT with WRONG BYTES (%d bytes)" % nb
    else:
        cached = "NO (next GET: %s '%s')" % (st, arm.cache_status_of(h))
    responded = [r for r in rs if r["ttfb_ms"] > 0]
    ok = [r for r in rs if r["ok"]]
    # The leader is the client whose request started the fill (nginx: MISS,
    # Sluice: a miss not marked "collapsed"); the earliest of them when
    # several fetched (nginx past its lock timeout). Without such a marker,
    # the first client to get a response.
    fillers = [r for r in responded if arm.filled_by(r["cache_status"])]
    leader = min(fillers or responded, key=lambda r: r["ttfb_ms"]) if responded else None
    followers = [r["ttfb_ms"] for r in responded if r is not leader]
    delivered = sum(r["bytes"] for r in rs)
    cs = collections.Counter(re.sub(r"age=\d+", "age=N", r["cache_status"]) for r in rs)
    res = {
        "clients": n,
        "ok": len(ok),
        "origin_requests": oreq,
        "origin_bytes_x": obytes / size,
        "leader_ttfb_ms": leader["ttfb_ms"] if leader else None,
        "follower_ttfb_p50_ms": pct(followers, 50),
        "follower_ttfb_p99_ms": pct(followers, 99),
        "follower_minus_leader_p50_ms": (pct(followers, 50) - leader["ttfb_ms"]) if leader and followers else None,
        "done_p50_s": pct([r["done_ms"] / 1e3 for r in rs], 50),
        "completion_s": max(r["done_ms"] for r in rs) / 1e3 if rs else None,
        "delivered_gb": delivered / 1e9,
        "cpu_s": m.cpu_s,
        "background_cpus": m.background,
        "loadgen_util": m.loadgen_util,
        "disk_write_gb": m.disk_gb,
        "cpu_per_gb": m.cpu_s / (delivered / 1e9) if delivered else None,
        "rss_mib": m.peak_rss_mib,
        "fds": m.peak_fds,
        "errors": summarize_errors(rs),
        "cache_status": "; ".join("%d x %s" % (c, s) for s, c in cs.most_common(4)),
        "cached_after": cached,
        "verdicts": verdicts,
    }
    log("  %s stampede%s: %d/%d ok, origin %d req %.2fx bytes, leader ttfb %s ms, follower p50 %s ms, done %.1fs, "
        "cached afterwards: %s%s" % (
        arm.key, " (lock tuned)" if lock_tuned else "", len(ok), n, oreq, res["origin_bytes_x"],
        fmt(res["leader_ttfb_ms"]), fmt(res["follower_ttfb_p50_ms"]), res["completion_s"] or 0, cached,
        (" errors: " + res["errors"]) if res["errors"] else ""))
    return res


def run_enospc(ctx, arm_cls, tag, pass_dir):
    """Cache on a small tmpfs; distinct cold misses that together overflow it."""
    mnt = os.path.join(pass_dir, "tmpfs")
    os.makedirs(mnt, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % P["enospc_tmpfs"], "tmpfs", mnt],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        return {"skipped": "cannot mount a tmpfs (%s); run as root with mount rights to get this row" %
                r.stdout.decode(errors="replace").strip()}
    CLEANUP.mounts.append(mnt)
    work = os.path.join(pass_dir, "enospc-work")
    os.makedirs(work, exist_ok=True)
    arm = arm_cls(ctx["origin"], work, mnt)
    try:
        start_arm(arm)
        nfirst, nmore = P["enospc_clients"], P["enospc_more"]
        files = ctx["fault_files"]
        # From the rate-limited origin: the fills then last long enough for
        # the cache writes to be running when the tmpfs fills up.
        first = [(arm.path("slow", tag, os.path.basename(f)), f) for f in files[:nfirst]]
        more = [(arm.path("slow", tag, os.path.basename(f)), f) for f in files[nfirst:nfirst + nmore]]
        off = ctx["origin"].log_offset()
        with Measure(arm) as m:
            r1 = fetchmany(ctx, arm, first, 120, sha=True)
            ctx["origin"].wait_idle(60)
            arm.settle(20)
            df1 = shutil.disk_usage(mnt)
            r2 = fetchmany(ctx, arm, more, 120, sha=True)
            ctx["origin"].wait_idle(60)
            arm.settle(20)
        oreq, obytes = ctx["origin"].requests_since(off, "/slow/%s/" % tag)
        res = {
            "round1_ok": sum(1 for x in r1 if x["ok"]),
            "round1_n": len(r1),
            "round1_errors": summarize_errors(r1),
            "round1_status": ", ".join("%d x %s" % (c, st) for st, c in
                                       collections.Counter(x["status"] for x in r1).most_common()),
            "round2_ok": sum(1 for x in r2 if x["ok"]),
            "round2_n": len(r2),
            "round2_errors": summarize_errors(r2),
            "tmpfs_used_mib_after_round1": (df1.used) / MIB,
            "origin_requests": oreq,
            "origin_gb": obytes / 1e9,
            "cpu_s": m.cpu_s,
            "rss_mib": m.peak_rss_mib,
            "fds": m.peak_fds,
        }
        res["hwm_mib"] = arm.extra_report().get("hwm_kb", 0) / 1024.0
        committed = 0
        for dirpath, _, fs in os.walk(os.path.join(mnt, "cache")):
            committed += len([f for f in fs if not f.startswith(".")])
        res["files_in_cache_dir"] = committed
        if isinstance(arm, NginxArm):
            lines = [l for l in arm.error_lines() if "[alert]" not in l or "setrlimit" not in l]
            crit = [l for l in lines if "[crit]" in l or "No space left" in l]
            res["server_log"] = "%d [crit]: %d ENOSPC, %d short writes; %d [alert]" % (
                len(crit), len([l for l in crit if "No space left" in l]),
                len([l for l in crit if "has written only" in l]), len([l for l in lines if "[alert]" in l]))
        else:
            lines = [l for l in arm.log_lines() if re.search(r"warn|error|crit|fail", l, re.I)]
            kinds = collections.Counter(re.sub(r" key=\S+ after N bytes", "", normalize_log_line(l)) for l in lines)
            res["server_log"] = "; ".join("%d x %s" % (n, k) for k, n in kinds.most_common(3)) or "nothing"
            try:
                mm = arm.metrics()
                res["metrics"] = {k: v for k, v in mm.items() if v and re.search(
                    r"detached|failed|failure|committed|stale|swept|evict", k)}
                wf = ", ".join("%s=%g" % (k, v) for k, v in
                               sorted(mm.by_label("sluice_cache_write_failures_total", "reason").items()) if v)
                res["agent_metrics"] = "writers detached: %s; committed %g, evicted %g" % (
                    wf or "none", mm.get("sluice_fills_committed_total", 0), mm.get("sluice_evictions_total", 0))
            except Exception as e:  # noqa: BLE001
                res["metrics"] = {"error": str(e)}
                res["agent_metrics"] = "metrics unavailable: %s" % e
        log("  %s enospc: round 1 %d/%d byte-exact%s; round 2 %d/%d%s; %s" % (
            arm.key, res["round1_ok"], res["round1_n"],
            (" (" + res["round1_errors"] + ")") if res["round1_errors"] else "",
            res["round2_ok"], res["round2_n"], (" (" + res["round2_errors"] + ")") if res["round2_errors"] else "",
            res["server_log"]))
        return res
    finally:
        arm.stop()
        collect_findings(arm, "enospc")
        if umount(mnt) and mnt in CLEANUP.mounts:
            CLEANUP.mounts.remove(mnt)


# ------------------------------------------------------------- the data

def generate_data(data):
    """Deterministic pseudo-random objects: the AES-128-CTR keystream of a
    fixed key (openssl), so every run serves the same incompressible bytes.
    The smaller objects, and the distinct 64 MiB objects of the ENOSPC run,
    are slices of that pool at different offsets (copy_file_range)."""
    t = time.monotonic()
    pool = make_pool(data)
    specs = [("obj-1k.bin", 12345, 1 * KIB), ("obj-1m.bin", 3 * MIB + 77, 1 * MIB),
             ("obj-64m.bin", 5 * MIB + 1, 64 * MIB)]
    specs += [("fault-%02d.bin" % i, i * 7 * MIB + 4099 * i, P["enospc_size"])
              for i in range(P["enospc_clients"] + P["enospc_more"])]
    cut_files(data, pool, specs)
    log("generated test objects in %.1fs" % (time.monotonic() - t))
    return [os.path.join(data, name) for name, _, _ in specs if name.startswith("fault-")]


def make_pool(data):
    """The 256 MiB pool (data/obj-256m.bin) the other objects are cut from."""
    os.makedirs(data, exist_ok=True)
    pool = os.path.join(data, "obj-256m.bin")
    size = 256 * MIB
    if shutil.which("openssl") and shutil.which("head"):
        with open(pool, "wb") as out:
            subprocess.run("openssl enc -aes-128-ctr -nosalt -K 000102030405060708090a0b0c0d0e0f -iv %s "
                           "-in /dev/zero 2>/dev/null | head -c %d" % ("0" * 32, size), shell=True, stdout=out,
                           check=False)
    if not os.path.exists(pool) or os.path.getsize(pool) != size:
        import random
        rnd = random.Random(20240601)
        with open(pool, "wb") as out:
            for _ in range(size // (16 * MIB)):
                out.write(rnd.randbytes(16 * MIB))
    return pool


def cut_files(data, pool, specs):
    """specs: (name, offset, length) slices of the pool, written to data/."""
    src = os.open(pool, os.O_RDONLY)
    try:
        for name, off, n in specs:
            dst = os.open(os.path.join(data, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                while n:
                    k = os.copy_file_range(src, dst, n, off)
                    if k <= 0:
                        raise RuntimeError("copy_file_range returned %d" % k)
                    off += k
                    n -= k
            finally:
                os.close(dst)
    finally:
        os.close(src)
