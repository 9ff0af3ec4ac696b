"""tests/bench l2: what the S3 tier (the shared L2 of several edges,
docs/scale-out.md) gives and costs, against the local S3 store the tests
use (tests/lib/s3server.py: s3rver behind the SigV4-checking front, on the
load CPUs like the origin). In the default run (about 2-3 min);
BENCH_ONLY=l2 runs it alone.

Two questions, each answered side by side in one run, medians over rounds:

1. L2 hit throughput. Arm l2-writer (HAProxy + agent with the S3 tier)
   fills N distinct cold keys of one object (1 MiB or 64 MiB) from the
   origin nginx and copies them to the bucket (the harness waits for
   sluice_l2_uploads_total{result="ok"} to count them). Arm l2-reader, a
   second edge on the same bucket with its own empty L1, then GETs the N
   keys once each (fetchmany list mode, C keep-alive connections, every
   byte checked): every one an L2 hit (sluice_l2_hits_total +N, no origin
   request). Then the same N keys once more on l2-reader: now L1 hits.
   Reported: MB/s of each pass (verified bytes / the pass's wall time),
   p50 and p99 response time, and the ratio L2/L1. A round uses fresh keys,
   so every L2 pass is cold in L1.

2. What an L2 outage adds to a miss. Three arms on the same origin, each
   GETting distinct cold 1 MiB keys one at a time, arms alternating per
   request: l2-none (no S3 tier), l2-down (the S3 endpoint a closed port:
   the connection is refused) and l2-hung (a socket that accepts and never
   answers: the lookup runs into its deadline, l2_lookup_timeout 500ms).
   Reported: p50 and p99 TTFB (fetchmany's, from connect to the first
   response byte) and each arm's extra over l2-none; every body must be
   the origin's and every answer a miss.

The arms' settings are tests/bench/sluice-l2-s3.conf (the S3 arms) on top
of the harness's (bench_arms.SluiceArm)."""

import json
import os
import re
import socket
import statistics
import subprocess
import time

from bench_arms import Origin, SluiceArm, start_arm
from bench_config import AGENT_BIN, BENCH, L2, MIB, QUICK, ROOT, log
from bench_proc import CLEANUP, LOAD_CPUS, child_setup, free_port, wait_until
from bench_report import collect_findings, findings_section, fmt
from bench_workloads import fetchmany

from s3server import S3Server  # tests/lib, on sys.path via bench_arms

OBJECTS = (("1m", "obj-1m.bin", 1 * MIB), ("64m", "obj-64m.bin", 64 * MIB))
OUTAGE_ARMS = ("l2-none", "l2-down", "l2-hung")


class Hung:
    """A listening socket nobody accepts from: connects succeed (the
    kernel's backlog), requests are never answered."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]
        CLEANUP.procs.append(self)

    def stop(self):
        self.sock.close()


class StoreHandle:
    """The S3 store as a CLEANUP entry."""

    def __init__(self, s3):
        self.s3 = s3
        CLEANUP.procs.append(self)

    def stop(self):
        self.s3.stop()


def s3_settings(endpoint, bucket):
    """tests/bench/sluice-l2-s3.conf rendered, as a settings dict."""
    out = {}
    with open(os.path.join(BENCH, "sluice-l2-s3.conf")) as f:
        text = f.read().replace("@S3_ENDPOINT@", endpoint).replace("@S3_BUCKET@", bucket)
    for line in text.splitlines():
        m = re.match(r"^\s*([a-z0-9_]+)\s*=\s*(.*?)\s*$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def make_data(data):
    os.makedirs(data, exist_ok=True)
    for _, name, size in OBJECTS:
        with open(os.path.join(data, name), "wb") as f:
            for _ in range(size // MIB):
                f.write(os.urandom(MIB))


def make_arm(key, work, origin, s3=None, endpoint=None):
    d = os.path.join(work, key)
    os.makedirs(d)
    arm = SluiceArm(origin, d, os.path.join(d, "cacheroot"))
    arm.key, arm.label = key, key
    if endpoint:
        arm.extra.update(s3_settings(endpoint, s3.bucket))
        arm.extra_env.update(s3.aws_env())
    start_arm(arm)
    return arm


def counter(arm, selector):
    return arm.metrics().get(selector)


def hits(arm):
    return counter(arm, 'sluice_l2_hits_total{tier="s3"}')


def list_pass(ctx, arm, paths, data_file, conns):
    """Each path once over `conns` keep-alive connections (fetchmany list
    mode); the parsed LOOP line."""
    lines = "".join("%s %s\n" % (p, data_file) for p in paths)
    cmd = [ctx["fetchmany"], "-p", str(arm.edge_port), "-d", "600", "-c", str(conns), "-n", str(len(paths))]
    r = subprocess.run(cmd, input=lines.encode(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       preexec_fn=child_setup(LOAD_CPUS), timeout=700)
    m = re.search(r"^LOOP (.*)$", r.stdout.decode(errors="replace"), re.M)
    if r.returncode != 0 or not m:
        raise RuntimeError("fetchmany list failed: %s" % r.stderr.decode(errors="replace")[-2000:])
    kv = dict(re.findall(r"(\w+)=(\S+)", m.group(1).split(" errs=")[0]))
    res = {k: float(v) for k, v in kv.items()}
    if int(res["ok"]) != len(paths) or int(res["errors"]):
        raise RuntimeError("%s: %d of %d byte-exact, errors: %s" % (arm.key, res["ok"], len(paths),
                                                                  m.group(1).split(" errs=")[1]))
    res["mb_s"] = res["bytes"] / 1e6 / res["secs"]
    return res


def fill_and_upload(ctx, writer, paths, data_file):
    before = counter(writer, 'sluice_l2_uploads_total{tier="s3",result="ok"}')
    list_pass(ctx, writer, paths, data_file, 1)         # one fill at a time, each stored whole

    def uploaded():
        failed = sum(counter(writer, 'sluice_l2_uploads_total{tier="s3",result="%s"}' % x) for x in ("failed", "dropped"))
        if failed:
            raise RuntimeError("writer: %d uploads failed or dropped" % failed)
        return counter(writer, 'sluice_l2_uploads_total{tier="s3",result="ok"}') - before >= len(paths)
    wait_until(uploaded, 120, "uploads to the bucket")


def quiet(ctx, arm):
    """The arm idle, its upload queue empty and no request open at the
    store: uploads still running must not share the CPU with a pass."""
    arm.settle()
    wait_until(lambda: counter(arm, 'sluice_l2_upload_queue_depth{tier="s3"}') == 0, 120, "upload queue empty")
    ctx["s3"].wait_idle(120)
    arm.settle()


def one_round(ctx, writer, reader, r, label, obj, size):
    n, conns = L2["keys_" + label], L2["conns_" + label]
    data_file = os.path.join(ctx["l2_data"], obj)
    paths = ["/generic/fast/l2-%d-%s-%d/%s" % (r, label, k, obj) for k in range(n)]
    fill_and_upload(ctx, writer, paths, data_file)
    origin = ctx["l2_origin"]
    out = {}
    for tier in ("l2", "l1"):
        quiet(ctx, writer)
        quiet(ctx, reader)
        h0, off = hits(reader), origin.log_offset()
        res = list_pass(ctx, reader, paths, data_file, conns)
        dh, (oreq, _) = hits(reader) - h0, origin.requests_since(off, "/fast/l2-%d-%s-" % (r, label))
        want = n if tier == "l2" else 0
        if dh != want or oreq:
            raise RuntimeError("%s pass of %s round %d: %d L2 hits (want %d), %d origin requests"
                               % (tier, label, r, dh, want, oreq))
        out[tier] = res
    log("  l2 %s round %d: L2 hits %.0f MB/s, L1 hits %.0f MB/s (%d keys, %d conns)"
        % (label, r + 1, out["l2"]["mb_s"], out["l1"]["mb_s"], n, conns))
    return out


def outage(ctx, arms):
    """Cold 1 MiB misses one at a time, arms alternating; TTFB per arm."""
    data_file = os.path.join(ctx["l2_data"], "obj-1m.bin")
    ttfb = {k: [] for k in arms}
    for i in range(L2["outage_misses"]):
        for key in (list(arms) if i % 2 == 0 else list(arms)[::-1]):
            r = fetchmany(ctx, arms[key], [("/generic/fast/l2o-%s-%d/obj-1m.bin" % (key, i), data_file)], 60)[0]
            if not r["ok"] or not r["cache_status"].startswith("sluice; fwd=") or "l2-hit" in r["cache_status"]:
                raise RuntimeError("%s miss %d: ok %s, Cache-Status %r, %s" % (key, i, r["ok"], r["cache_status"],
                                                                            r["error"]))
            ttfb[key].append(r["ttfb_ms"])
    out = {}
    for key, vals in ttfb.items():
        s = sorted(vals)
        out[key] = {"n": len(s), "p50": statistics.median(s), "p99": s[min(len(s) - 1, int(len(s) * 0.99))],
                    "max": s[-1], "errors": counter(arms[key], 'sluice_l2_errors_total{tier="s3"}'),
                    "uploads_failed": counter(arms[key], 'sluice_l2_uploads_total{tier="s3",result="failed"}')}
        log("  l2 outage %s: TTFB p50 %.1f ms, p99 %.1f ms over %d misses" % (key, out[key]["p50"], out[key]["p99"],
                                                                           len(s)))
    return out


def summarize(rounds):
    out = {}
    for label, _, size in OBJECTS:
        rs = rounds[label]
        s = {"keys": L2["keys_" + label], "conns": L2["conns_" + label], "rounds": len(rs)}
        for tier in ("l2", "l1"):
            for f in ("mb_s", "p50", "p99"):
                s["%s_%s" % (tier, f)] = statistics.median(r[tier][f] for r in rs)
            s["%s_mb_s_all" % tier] = [round(r[tier]["mb_s"]) for r in rs]
        s["ratio"] = s["l2_mb_s"] / s["l1_mb_s"] if s["l1_mb_s"] else None
        out[label] = s
    return out


def stop_arms(arms):
    for a in arms:
        a.stop()
        collect_findings(a, "l2", group="l2")


def run_l2(ctx, work):
    """The whole workload; {"hits": {...}, "outage": {...}, "_elapsed"}."""
    start = time.monotonic()
    base = os.path.join(work, "l2")
    ctx["l2_data"] = os.path.join(base, "data")
    make_data(ctx["l2_data"])
    ctx["l2_origin"] = Origin(base, ctx["l2_data"])
    s3 = S3Server(bucket="sluice-bench")
    StoreHandle(s3)
    s3.start()
    ctx["s3"] = s3
    result = {}
    writer = make_arm("l2-writer", base, ctx["l2_origin"], s3, s3.endpoint)
    reader = make_arm("l2-reader", base, ctx["l2_origin"], s3, s3.endpoint)
    rounds = {label: [] for label, _, _ in OBJECTS}
    for r in range(L2["rounds"]):
        for label, obj, size in OBJECTS:
            rounds[label].append(one_round(ctx, writer, reader, r, label, obj, size))
    result["hits"] = summarize(rounds)
    result["store_requests"] = s3.counts()
    stop_arms((writer, reader))
    hung = Hung()
    arms = {"l2-none": make_arm("l2-none", base, ctx["l2_origin"]),
            "l2-down": make_arm("l2-down", base, ctx["l2_origin"], s3, "http://127.0.0.1:%d" % free_port()),
            "l2-hung": make_arm("l2-hung", base, ctx["l2_origin"], s3, "http://127.0.0.1:%d" % hung.port)}
    result["outage"] = outage(ctx, arms)
    stop_arms(arms.values())
    result["_elapsed"] = time.monotonic() - start
    return result



# ------------------------------------------------------------------ report

ARM_LABELS = (("l2-writer", "l2-writer arm"), ("l2-reader", "l2-reader arm"), ("l2-none", "l2-none arm"),
              ("l2-down", "l2-down arm"), ("l2-hung", "l2-hung arm"))


def l2_head(meta, res):
    m = meta["machine"]
    return """- Date: {date}
- Command: `{cmd}`{quick}
- Machine: {nproc} CPUs ({cpu}), {mem} MiB RAM, Linux {kernel}; agent `{agent}` (git {git})
- Store: tests/lib/s3server.py (s3rver 3.7.1 behind the SigV4-checking s3front.js, node), on 127.0.0.1, on the
  load CPUs; the arms' S3 settings: tests/bench/sluice-l2-s3.conf
- Run time of this part: {elapsed:.0f} s
""".format(date=meta["date"], cmd=meta["command"],
           quick=" (BENCH_QUICK: fewer rounds and keys; these are quick-mode numbers on a shared, busy 2-core "
           "machine, read the ratios rather than the absolute values)" if QUICK else "",
           nproc=m["nproc"], cpu=m["cpu"] or "unknown", mem=m["mem_mib"], kernel=m["kernel"],
           agent=os.path.relpath(AGENT_BIN, ROOT), git=meta["git"], elapsed=res.get("_elapsed", 0))


def hits_table(h):
    rows = ["| object | keys x rounds | conns | L2 hit MB/s | L1 hit MB/s | L2/L1 | L2 p50 / p99 ms | L1 p50 / p99 ms |"
            " L2 MB/s per round | L1 MB/s per round |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for label, _, size in OBJECTS:
        s = h[label]
        rows.append("| %d MiB | %d x %d | %d | %s | %s | %s | %s / %s | %s / %s | %s | %s |" % (
            size // MIB, s["keys"], s["rounds"], s["conns"], fmt(s["l2_mb_s"]), fmt(s["l1_mb_s"]),
            fmt(s["ratio"]), fmt(s["l2_p50"]), fmt(s["l2_p99"]), fmt(s["l1_p50"]), fmt(s["l1_p99"]),
            ", ".join(map(str, s["l2_mb_s_all"])), ", ".join(map(str, s["l1_mb_s_all"]))))
    return "\n".join(rows)


def outage_table(o):
    base = o["l2-none"]
    what = {"l2-none": "no S3 tier", "l2-down": "store down (connection refused)",
            "l2-hung": "store hung (accepts, never answers)"}
    rows = ["| arm | store | misses | TTFB p50 ms | TTFB p99 ms | max ms | p50 extra over no store | "
            "lookups failed | uploads failed |", "|---|---|---|---|---|---|---|---|---|"]
    for key in OUTAGE_ARMS:
        s = o[key]
        rows.append("| %s | %s | %d | %s | %s | %s | %s | %d | %d |" % (
            key, what[key], s["n"], fmt(s["p50"]), fmt(s["p99"]), fmt(s["max"]),
            "-" if key == "l2-none" else "%s ms" % fmt(s["p50"] - base["p50"]), s["errors"], s["uploads_failed"]))
    return "\n".join(rows)


def l2_report(res):
    """[(section name, markdown)] of the l2 part."""
    if "error" in res:
        body = "ERROR: %s\n" % res["error"]
    else:
        body = """L2 hits: an edge whose L1 is empty reads keys another edge uploaded to the bucket, each key once
(every one an L2 hit, no origin request), then the same keys again (L1 hits); medians over the rounds, fresh
keys each round. MB/s is verified body bytes over the pass's wall time.

{hits}

Store requests in the hit half: {store} (an L2 hit committed to L1 is not copied back to the tier it came
from, so uploads are the writer's only). Each pass starts with both edges idle, their upload queues empty and
no request open at the store.

What a broken store adds to a miss: cold 1 MiB misses one at a time from the full-speed origin nginx, arms
alternating per request. TTFB from connect to the first response byte (fetchmany). l2_lookup_timeout is
500ms, s3_read_header_timeout 1s, s3_connect_timeout 2s (the defaults).

{outage}
""".format(hits=hits_table(res["hits"]), outage=outage_table(res["outage"]),
           store=", ".join("%s %d" % kv for kv in sorted(res.get("store_requests", {}).items())) or "-")
    return [("l2", "### S3 tier as the shared L2: L2 hits vs L1 hits, and a broken store's cost to a miss\n\n" +
             body),
            ("_findings", findings_section("l2", ARM_LABELS, "Server log findings (l2)"))]


def l2_raw(res):
    if "error" in res:
        return ["l2: %s" % json.dumps(res)]
    out = ["l2 hits-%s: %s" % (k, json.dumps(v, sort_keys=True)) for k, v in res["hits"].items()]
    return out + ["l2 outage-%s: %s" % (k, json.dumps({x: (round(y, 3) if isinstance(y, float) else y)
                                                        for x, y in v.items()}, sort_keys=True))
                  for k, v in res["outage"].items()]
