"""tests/bench report: statistics over the passes (percentiles, medians,
ratios), the markdown tables printed on stdout and written to
docs/benchmarks.md, the raw runs, and the server log findings collected
from every arm."""

import collections
import json
import os
import platform
import re
import statistics
import subprocess

from bench_arms import NginxArm, SluiceArm
from bench_config import (AGENT_BIN, GENERIC_WORKLOADS, KIB, MIB, ONLY, P, QUICK, ROOT, THREADS_WARM, TRANSPORT,
                          WARM)
from bench_proc import LOAD_CPUS, N_CPU, NICE, PIN


# ---------------------------------------------------------------- stats

def pct(values, p):
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


# ----------------------------------------------------------------- report

def fmt(v, digits=None):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if isinstance(v, int):
        return str(v)
    a = abs(v)
    if digits is None:
        digits = 0 if a >= 1000 else 1 if a >= 100 else 2 if a >= 1 else 3
    return "%.*f" % (digits, v)


def median_of(runs, field):
    vals = [r[field] for r in runs if isinstance(r, dict) and "error" not in r and r.get(field) is not None]
    if not vals:
        return None
    if isinstance(vals[0], str):
        return " | ".join(sorted(set(v for v in vals if v))) or ""
    return statistics.median(vals)


def cell(runs, field):
    """Median over passes, or the error."""
    good = [r for r in runs if "error" not in r]
    if not runs:
        return "not run"
    if not good:
        return "ERROR: " + runs[0]["error"][:120]
    v = median_of(good, field)
    s = fmt(v)
    if len(good) < len(runs):
        s += " (%d/%d runs ok)" % (len(good), len(runs))
    return s


def ratio(a_runs, b_runs, field):
    a = median_of([r for r in a_runs if "error" not in r], field)
    b = median_of([r for r in b_runs if "error" not in r], field)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a:
        return "%.2f" % (b / a)
    return "-"


def table(headers, rows):
    w = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    out = ["| " + " | ".join(str(h).ljust(w[i]) for i, h in enumerate(headers)) + " |",
           "|" + "|".join("-" * (w[i] + 2) for i in range(len(headers))) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(c).ljust(w[i]) for i, c in enumerate(r)) + " |")
    return "\n".join(out)


SMALL_ROWS = [("req/s (higher is better)", "req_s"), ("latency p50 ms", "p50_ms"), ("latency p99 ms", "p99_ms")]
LARGE_ROWS = [("throughput MB/s", "mb_s"), ("req/s", "req_s"), ("latency p99 ms", "p99_ms")]


def warm_title(size, conns):
    if size <= 64 * KIB:
        return "Warm hits, %s object (wrk -t1 -c%d)" % (human_size(size), conns)
    return "Warm hits, %s object (fetchmany loop, %d connection%s)" % (human_size(size), conns, "s" if conns > 1 else "")


def human_size(n):
    return "%d MiB" % (n // MIB) if n >= MIB else "%d KiB" % (n // KIB)
COMMON_ROWS = [("SUT CPU s per GB", "cpu_per_gb"), ("SUT CPU s per 10k req", "cpu_per_10k"),
               ("SUT CPU utilisation (1.0 = CPU 0 busy)", "cpu_util"),
               ("cache tier share of SUT CPU (rest: HAProxy)", "cache_cpu_share"),
               ("load generator CPU utilisation", "loadgen_util"),
               ("CPUs used by other processes (noise)", "background_cpus"),
               ("cache peak RSS MiB", "rss_mib"), ("cache peak fds", "fds"), ("errors", "wrk_errors"),
               ("notes", "note")]
NO_RATIO = {"wrk_errors", "note", "errors", "cache_status", "cpu_util", "cache_cpu_share", "background_cpus", "cached_after",
            "loadgen_util", "verdicts"}
STAMPEDE_ROWS = [
    ("clients byte-exact", "ok"), ("origin requests", "origin_requests"), ("origin bytes (x object)", "origin_bytes_x"),
    ("leader TTFB ms", "leader_ttfb_ms"), ("follower TTFB p50 ms", "follower_ttfb_p50_ms"),
    ("follower TTFB p99 ms", "follower_ttfb_p99_ms"), ("follower p50 - leader ms", "follower_minus_leader_p50_ms"),
    ("client done p50 s", "done_p50_s"), ("completion (last client) s", "completion_s"),
    ("SUT CPU s per GB delivered", "cpu_per_gb"), ("cache tier disk writes GB (/proc/PID/io)", "disk_write_gb"),
    ("cache peak RSS MiB", "rss_mib"), ("cache peak fds", "fds"),
    ("CPUs used by other processes (noise)", "background_cpus"),
    ("errors", "errors"), ("Cache-Status seen", "cache_status"), ("object cached afterwards", "cached_after"),
    ("agent SPOP verdicts (a bypass without a pass verdict = SPOE error/timeout)", "verdicts"),
]


def build_report(results, meta):
    """The generic tables: [(workload or "_whole", markdown)]."""
    R = results
    parts = []
    for name, _, size, conns in WARM:
        if name not in ONLY:
            continue
        a, b = R[name]["nginx"], R[name]["sluice"]
        rows = [[label, cell(a, f), cell(b, f), ratio(a, b, f) if f not in NO_RATIO else ""]
                for label, f in (SMALL_ROWS if size <= 64 * KIB else LARGE_ROWS) + COMMON_ROWS]
        parts.append((name, "### %s\n\n%s\n" % (warm_title(size, conns),
                                                 table(["metric", "nginx", "Sluice", "Sluice/nginx"], rows))))
    if "threads" in ONLY:
        parts.append(("threads", threads_section(R["threads"])))
    if "stampede" in ONLY:
        a, t, b = R["stampede"]["nginx"], R["stampede"]["nginx-tuned"], R["stampede"]["sluice"]
        rows = []
        for label, f in STAMPEDE_ROWS:
            num = f not in NO_RATIO
            rows.append([label, cell(a, f), cell(t, f), cell(b, f), ratio(a, b, f) if num else "",
                         ratio(t, b, f) if num else ""])
        parts.append(("stampede",
                      "### Cold stampede: %d clients, one cold 256 MiB object, origin limited to %s/s per request\n\n%s\n"
                      % (P["stampede_clients"], P["origin_rate"],
                         table(["metric", "nginx lock defaults", "nginx lock %s" % P["lock_tuned"], "Sluice",
                                "Sluice/nginx(def)", "Sluice/nginx(tuned)"], rows))))
    if "enospc" in ONLY:
        a, b = R["enospc"]["nginx"], R["enospc"]["sluice"]

        def collapse(vals):
            if len(vals) > 1 and len(set(vals)) == 1:
                return "%s (all %d passes)" % (vals[0], len(vals))
            return ", ".join(vals) if len(vals) < 2 else " / ".join(vals)

        def per_pass(runs, f):
            if not runs:
                return "not run"
            return collapse(["ERROR: " + r["error"][:100] if "error" in r else "skipped: " + r["skipped"][:100]
                             if "skipped" in r else (fmt(r.get(f)) or "none") for r in runs])

        def frac(runs, k):
            return collapse(["ERROR" if "error" in r else "skipped" if "skipped" in r else
                             "%d/%d" % (r[k + "_ok"], r[k + "_n"]) for r in runs]) or "not run"
        rows = [
            ["round 1: %d concurrent distinct 64 MiB misses, byte-exact" % P["enospc_clients"],
             frac(a, "round1"), frac(b, "round1")],
            ["round 1 errors", per_pass(a, "round1_errors"), per_pass(b, "round1_errors")],
            ["round 1 statuses", per_pass(a, "round1_status"), per_pass(b, "round1_status")],
            ["round 2: %d more misses on the full disk, byte-exact" % P["enospc_more"],
             frac(a, "round2"), frac(b, "round2")],
            ["round 2 errors", per_pass(a, "round2_errors"), per_pass(b, "round2_errors")],
            ["tmpfs used after round 1 MiB", per_pass(a, "tmpfs_used_mib_after_round1"),
             per_pass(b, "tmpfs_used_mib_after_round1")],
            ["files left in cache dir", per_pass(a, "files_in_cache_dir"), per_pass(b, "files_in_cache_dir")],
            ["origin requests", per_pass(a, "origin_requests"), per_pass(b, "origin_requests")],
            ["origin GB sent (aborted transfers send less)", per_pass(a, "origin_gb"), per_pass(b, "origin_gb")],
            ["server log", per_pass(a, "server_log"), per_pass(b, "server_log")],
            ["cache peak RSS MiB", per_pass(a, "rss_mib"), per_pass(b, "rss_mib")],
        ]
        if any("agent_metrics" in r for r in b):
            rows.append(["agent metrics", "", collapse([r["agent_metrics"] for r in b if "agent_metrics" in r])])
        parts.append(("enospc", "### ENOSPC: cache on a %s tmpfs (one value per pass)\n\n%s\n" % (
            P["enospc_tmpfs"], table(["", "nginx", "Sluice"], [[c.replace("|", "/") for c in r] for r in rows]))))
    # Process-wide rows.
    a, b = R["process"]["nginx"], R["process"]["sluice"]

    def peak(key):
        vals = []
        for wl, arms in R.items():
            for r in arms.get(key, []) + (arms.get("nginx-tuned", []) if key == "nginx" else []):
                if isinstance(r, dict):
                    vals += [r[f] for f in ("rss_mib", "hwm_mib") if isinstance(r.get(f), (int, float))]
        return max(vals) if vals else None
    pa, pb = peak("nginx"), peak("sluice")
    ha = max([r["hwm_mib"] for r in a if "hwm_mib" in r] or [0]) or None
    hb = max([r["hwm_mib"] for r in b if "hwm_mib" in r] or [0]) or None
    rows = [["cache tier VmHWM of the largest process, warm+stampede passes, max over passes MiB", fmt(ha), fmt(hb),
             "%.2f" % (hb / ha) if ha and hb else "-"],
            ["cache tier peak RSS over the whole run incl. ENOSPC MiB", fmt(pa), fmt(pb),
             "%.2f" % (pb / pa) if pa and pb else "-"]]
    parts.append(("_whole", "### Whole pass\n\n%s\n" % table(["metric", "nginx", "Sluice", "Sluice/nginx"], rows)))
    return parts


THREADS_ROWS = [("req/s", "req_s"), ("MB/s", "mb_s"), ("latency p99 ms", "p99_ms"),
                ("SUT CPU utilisation (1.0 = one CPU busy)", "cpu_util"),
                ("HAProxy CPU utilisation", "haproxy_util"),
                ("load generator CPU utilisation", "loadgen_util"),
                ("CPUs used by other processes (noise)", "background_cpus"), ("errors", "wrk_errors")]
THREADS_NO_RATIO = {"background_cpus", "wrk_errors"}
THREADS_TEXT = """### HAProxy threads: 1 vs 2 ({small} hits wrk -t1 -c{c1}, {big} hits fetchmany {c2} connections)

{runs}.

The {small} and {big} warm hits on each arm (HAProxy `nbthread 1` on CPU 0:
the 1t columns are the runs of those two sections when they ran too) and,
seconds apart, on a twin of the arm whose HAProxy runs `nbthread 2`
(tests/bench/haproxy-bench-2t.cfg: `cpu-map auto:1/1-2 0-1`, HAProxy started
on CPUs 0-1); 1 thread first in odd passes, 2 threads first in even ones.
The cache tier (nginx, or the agent with its workers) stays on CPU 0 in
both. This machine has {nproc} CPUs, so the second thread gets CPU 1, which
is also the load generator's and the origin's: it competes with wrk or
fetchmany for that CPU, and 2t/1t is what a second thread gives when no core
is free for it (a lower bound for an edge with a spare core). HAProxy CPU
utilisation is the SUT's minus the cache tier's (2.0 = both CPUs busy);
2t/1t above 1 is better for req/s and MB/s.

{table}
"""


def with_haproxy_util(runs):
    """The runs with HAProxy's own CPU utilisation added: the SUT's minus
    the cache tier's share (how much of its CPUs HAProxy used)."""
    return [dict(r, haproxy_util=r["cpu_util"] * (1 - r["cache_cpu_share"]))
            if r.get("cpu_util") is not None and r.get("cache_cpu_share") is not None else r for r in runs]


def threads_section(T):
    """The threads table: hit-1k (req/s) and hit-1m (MB/s) with HAProxy at
    1 and at 2 threads, for both arms, and the ratio 2t/1t of the medians
    (above 1: the second thread helped)."""
    warm = {w[0]: w for w in WARM}
    rows = []
    for name in THREADS_WARM:
        size = warm[name][2]
        skip = "mb_s" if size <= 64 * KIB else "req_s"
        for label, f in (r for r in THREADS_ROWS if r[1] != skip):
            row = ["%s: %s" % (human_size(size), label)]
            for arm in ("nginx", "sluice"):
                one = with_haproxy_util(T["%s %s" % (name, arm)])
                two = with_haproxy_util(T["%s %s-2t" % (name, arm)])
                row += [cell(one, f), cell(two, f), "" if f in THREADS_NO_RATIO else ratio(one, two, f)]
            rows.append(row)
    runs = ("**Quick-mode numbers** (BENCH_QUICK): %d pass of %d s runs, no medians; they show that the "
            "workload runs, not what the machine does" if QUICK else "%d passes of %d s runs; each cell is the "
            "median over passes") % (P["passes"], P["duration"])
    return THREADS_TEXT.format(
        small=human_size(warm["hit-1k"][2]), big=human_size(warm["hit-1m"][2]), c1=warm["hit-1k"][3],
        c2=warm["hit-1m"][3], nproc=N_CPU, runs=runs,
        table=table(["metric", "nginx 1t", "nginx 2t", "nginx 2t/1t", "Sluice 1t", "Sluice 2t", "Sluice 2t/1t"],
                    rows))


def raw_section(results):
    """One line per run of every generic workload that ran."""
    out = []
    for wl in GENERIC_WORKLOADS:
        if wl not in results or wl not in ONLY:
            continue
        for arm, runs in results[wl].items():
            for i, r in enumerate(runs):
                rr = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items() if k != "metrics"}
                out.append("%s %s pass %d: %s" % (wl, arm, i + 1, json.dumps(rr, sort_keys=True)))
    return out


def machine():
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) // 1024
    except OSError:
        pass
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    vers = []
    for cmd in (["haproxy", "-v"], ["nginx", "-v"]):
        try:
            o = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT).stdout.decode()
            vers.append(o.splitlines()[0].strip())
        except (OSError, IndexError):
            pass
    return {"nproc": N_CPU, "mem_mib": mem, "cpu": model, "kernel": platform.release(), "versions": vers}


def generic_head(meta):
    """The header of the generic part of docs/benchmarks.md: how this run
    was made."""
    m = meta["machine"]
    pin = ("HAProxy + cache tier pinned to CPU 0, load generator + origin + harness on CPU %s (sched_setaffinity, "
           "same as taskset)" % ",".join(map(str, sorted(LOAD_CPUS))) if PIN else
           "not pinned (%s)" % ("BENCH_NO_PIN set" if os.environ.get("BENCH_NO_PIN") else "one CPU"))
    return """- Date: {date}
- Command: `{cmd}`{quick}
- Machine: {nproc} CPUs ({cpu}), {mem} MiB RAM, Linux {kernel}
- Software: {vers}; agent `{agent}` (git {git}), settings at their defaults except listeners, cache_dir and
  route origins; SLUICE_* overrides from the environment: {overrides}
- HAProxy to the cache tier: {transport} in both arms (BENCH_TRANSPORT)
- Passes: {passes} per arm, both arms up at once, each workload run on one arm and then the other, first arm alternating (A B, B A, A B ...); each cell is the median over passes
- Warm runs: {dur} s each; stampede: {sc} clients on 256 MiB, origin `limit_rate {rate}` (MiB/s per request),
  run in the first {sp} pass(es) only (BENCH_STAMPEDE_PASSES);
  ENOSPC: {tmpfs} tmpfs, {ec}+{em} distinct 64 MiB objects
- CPU: {pin}; niceness {nice} for every bench process (BENCH_NICE)
- SUT CPU = HAProxy + cache tier (nginx master + workers incl. reaped cache loader, or the agent with all its
  threads), from /proc utime+stime deltas; RSS = sampled sum of VmRSS of the cache tier; fds likewise
- Ratios are Sluice/nginx of the medians: above 1 is better for req/s and MB/s, below 1 for latency, CPU, RSS
- Run time: {elapsed:.0f} s{only}
""".format(date=meta["date"], cmd=meta["command"], quick=" (BENCH_QUICK: fewer, shorter, smaller runs)" if QUICK else "",
           nproc=m["nproc"], cpu=m["cpu"] or "unknown", mem=m["mem_mib"], kernel=m["kernel"],
           vers=", ".join(m["versions"]), agent=os.path.relpath(AGENT_BIN, ROOT), git=meta["git"], passes=P["passes"],
           dur=P["duration"], sc=P["stampede_clients"], sp=min(P["stampede_passes"], P["passes"]), rate=P["origin_rate"], tmpfs=P["enospc_tmpfs"],
           ec=P["enospc_clients"], em=P["enospc_more"], pin=pin, nice=NICE,
           transport=("UNIX sockets (nginx `listen unix:`, agent `unix:` spop_listen/http_listen)"
                      if TRANSPORT == "unix" else "TCP on 127.0.0.1"),
           overrides=", ".join("`%s=%s`" % kv for kv in sorted(os.environ.items()) if kv[0].startswith("SLUICE_")
                               and kv[0] not in ("SLUICE_TEST_BIN", "SLUICE_BIN", "SLUICE_HAPROXY_DIR")) or "none",
           elapsed=meta["elapsed"], only=only_line(GENERIC_WORKLOADS))


def only_line(workloads):
    """A header line naming the workloads of a run limited by BENCH_ONLY."""
    ran = [w for w in workloads if w in ONLY]
    if len(ran) == len(workloads):
        return ""
    return "\n- Workloads in this run (BENCH_ONLY): %s; the other sections are kept from earlier runs" % ", ".join(ran)


# ------------------------------------------------------------ log findings

# group ("generic", "eco") -> arm key -> normalised message -> count
FINDINGS = collections.defaultdict(lambda: collections.defaultdict(collections.Counter))


def normalize_log_line(line):
    line = re.sub(r"^\S+Z\s+", "", line)                       # agent timestamp
    line = re.sub(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d ", "", line)  # nginx timestamp
    line = re.sub(r"\d+#\d+: \*?\d* ?", "", line)
    line = re.sub(r"key=\S+", "key=K", line)
    line = re.sub(r"/tmp/\S+", "PATH", line)
    line = re.sub(r"\b\d+(\.\d+)?\b", "N", line)
    line = re.sub(r", client: .*", "", line)
    return line.strip()[:160]


def collect_findings(arm, phase, group="generic"):
    """Warnings and errors of the cache tier and HAProxy, normalised and
    counted per arm (the report lists them)."""
    sources = []
    if isinstance(arm, SluiceArm) and arm.cache:
        sources.append(("agent", [l for l in arm.cache.log_text().splitlines()
                                  if re.search(r"\b(warn|error|crit|fatal)\b", l, re.I)]))
    elif isinstance(arm, NginxArm) and getattr(arm, "error_log", None):
        sources.append(("nginx", [l for l in arm.error_lines()
                                  if re.search(r"\[(error|crit|alert|emerg)\]", l) and "setrlimit" not in l]))
    elif arm.cache and hasattr(arm, "log_lines"):      # Verdaccio, the static nginx
        sources.append((arm.key, [l for l in arm.log_lines()
                                  if re.search(r"\b(warn|error|crit|alert|emerg|fatal)\b", l, re.I)]))
    if arm.haproxy:
        sources.append(("haproxy", [l for l in arm.haproxy.log_text().splitlines()
                                    if re.search(r"\[(ALERT|WARNING)\]", l)]))
    for who, lines in sources:
        for l in lines:
            FINDINGS[group][arm.key]["%s (%s): %s" % (who, phase, normalize_log_line(l))] += 1


def findings_section(group="generic", arms=(("nginx", "nginx arm"), ("sluice", "Sluice arm")),
                     title="Server log findings (all passes)"):
    out = []
    for key, label in arms:
        c = FINDINGS[group][key]
        if not c:
            out.append("- %s: no warnings or errors logged" % label)
            continue
        out.append("- %s:" % label)
        for msg, n in c.most_common(12):
            out.append("  - %d x `%s`" % (n, msg.replace("`", "'")))
        if len(c) > 12:
            out.append("  - ... %d more distinct messages" % (len(c) - 12))
    return "### %s\n\n" % title + "\n".join(out) + "\n"
