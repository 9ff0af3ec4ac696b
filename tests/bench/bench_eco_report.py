"""tests/bench report of the package-registry workloads: the header of
that part of docs/benchmarks.md, one table per workload (the two arms side
by side, medians over the runs, the ratio Sluice/other), the targets with
pass or fail under each table, and the raw lines. Same table style as the
generic part (bench_report.table, fmt)."""

import json
import os

from bench_config import AGENT_BIN, ECO, ECO_WORKLOADS, P, QUICK, ROOT
from bench_proc import LOAD_CPUS, NICE, PIN
from bench_report import fmt, only_line, table

VERDACCIO = "Verdaccio"


def ratio_txt(a, b):
    """b / a, for Sluice over the other arm."""
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a:
        return "%.2f" % (b / a)
    return "-"


def verdict(ok, measured):
    return "**%s** (%s)" % ("pass" if ok else "FAIL", measured)


def rows_table(res, other, other_label, rows):
    """rows: (label, field, with_ratio). res: {arm key: summary}."""
    out = []
    for label, field, with_ratio in rows:
        a = res.get(other, {}).get(field)
        b = res.get("sluice", {}).get(field)
        out.append([label, fmt(a), fmt(b), ratio_txt(a, b) if with_ratio else ""])
    return table(["metric", other_label, "Sluice", "Sluice/" + other_label.split()[0]], out)


def error_section(title, res):
    return "### %s\n\nERROR: %s\n" % (title, res["error"])


# -------------------------------------------------------------- sections

def ci_section(res, info):
    n = ECO["npm_warm_runs"]
    title = ("npm ci, warm: a lockfile of %s packages (%s tarballs, %s MB), an empty npm cache and no "
             "node_modules every run" % (info.get("lock_entries", "?"), info.get("tarballs", "?"),
                                          fmt(info.get("tarball_mb"))))
    if "error" in res:
        return error_section(title, res)
    for r in res.values():
        r["wall_range"] = "%s / %s" % (fmt(r["wall_min_s"]), fmt(r["wall_max_s"]))
    t = rows_table(res, "verdaccio", VERDACCIO, [
        ("wall time s, median of %d warm runs (lower is better)" % n, "wall_s", True),
        ("wall time s, fastest / slowest warm run", "wall_range", False),
        ("cold run s (fills the cache)", "cold_s", True),
        ("origin requests during the %d warm runs" % n, "origin_warm", False),
        ("origin requests during the cold run", "origin_cold", False),
        ("server CPU s per warm run (median)", "cpu_s", True),
        ("server peak RSS MiB", "rss_mib", True),
        ("CPUs used by other processes (noise)", "background_cpus", False)])
    s = res["sluice"]
    targets = ["- Target: no origin request during Sluice's warm runs: %s" % verdict(
        s["origin_warm"] == 0, s["origin_warm"])]
    return "### %s\n\n%s\n\n%s\n" % (title, t, "\n".join(targets))


def replay_section(res, info):
    title = ("npm replay: every abbreviated packument and tarball of the lockfile, %d keep-alive connections, "
             "%d s per run, %d run(s) per arm" % (ECO["replay_conns"], ECO["replay_secs"], ECO["replay_runs"]))
    if "error" in res:
        return error_section(title, res)
    s, v = res["sluice"], res["verdaccio"]
    title += " (%d packuments + %d tarballs)" % (s["packuments"], s["list"] - s["packuments"])
    for r in res.values():
        r["error_txt"] = "%d%s" % (r["errors"], " (%s)" % r["error_kinds"] if r["error_kinds"] else "")
    t = rows_table(res, "verdaccio", VERDACCIO, [
        ("req/s, median of runs (higher is better)", "req_s", True),
        ("latency p50 ms", "p50_ms", True),
        ("latency p99 ms", "p99_ms", True),
        ("requests, all runs", "requests", False),
        ("errors (status not 200, or not the expected bytes)", "error_txt", False),
        ("origin requests during the runs", "origin_requests", False),
        ("server CPU s per 10k req", "cpu_per_10k", True),
        ("server CPU utilisation (1.0 = CPU 0 busy)", "cpu_util", False),
        ("load generator CPU utilisation", "loadgen_util", False),
        ("CPUs used by other processes (noise)", "background_cpus", False),
        ("server peak RSS MiB", "rss_mib", True),
        ("server peak fds", "fds", False)])
    x = s["req_s"] / v["req_s"] if v.get("req_s") else None
    targets = ["- Target: Sluice at least 5x Verdaccio's req/s: %s" % verdict(x is not None and x >= 5,
                                                                              "%.1fx" % x if x else "-"),
               "- Target: every Sluice response 200 with the expected bytes: %s" % verdict(
                   s["errors"] == 0, "%d errors" % s["errors"]),
               "- Target: no origin request during Sluice's runs: %s" % verdict(
                   s["origin_requests"] == 0, s["origin_requests"])]
    return "### %s\n\n%s\n\n%s\n" % (title, t, "\n".join(targets))


def huge_section(res, info):
    n = ECO["huge_clients"]
    title = "npm huge packument, cold: a %s MB full document (application/json), %d clients at once" % (
        fmt(info.get("huge_mb")), n)
    if "error" in res:
        return error_section(title, res)
    for k, r in res.items():
        r["ok_txt"] = "%d/%d" % (r["ok"], r["clients"])
    res.get("sluice", {})["check"] = "byte-exact: the origin's bytes with dist.tarball rewritten"
    t = rows_table(res, "verdaccio", VERDACCIO, [
        ("clients answered 200 with a complete body", "ok_txt", False),
        ("distinct bodies among them", "distinct_bodies", False),
        ("body checked", "check", False),
        ("body bytes (Verdaccio drops the versions' readmes)", "bytes", False),
        ("origin requests for the packument", "origin_requests", False),
        ("when they came (after the first)", "origin_detail", False),
        ("agent: cache writers detached, background refetches", "agent", False),
        ("server RSS before MiB", "rss_before_mib", False),
        ("server peak RSS during MiB", "rss_peak_mib", True),
        ("server RSS growth (peak - before) MiB", "rss_growth_mib", True),
        ("server RSS after MiB", "rss_after_mib", True),
        ("TTFB p50 ms", "ttfb_p50_ms", True),
        ("completion (last client) s", "completion_s", True),
        ("Cache-Status seen", "cache_status", False),
        ("errors", "errors", False)])
    s = res["sluice"]
    title += ", the registry sending at %s/s" % P["origin_rate"]
    targets = ["- Target: exactly one origin request (Sluice): %s" % verdict(s["origin_requests"] == 1,
                                                                             s["origin_requests"]),
               "- Target: RSS growth under 32 MiB (Sluice): %s" % verdict(s["rss_growth_mib"] < 32,
                                                                          "%s MiB" % fmt(s["rss_growth_mib"])),
               "- Target: all %d clients byte-exact (Sluice): %s" % (n, verdict(s["ok"] == n, s["ok_txt"]))]
    u = res.get("sluice-unpaced")
    if u:
        targets.append(
            "- The same with the registry unpaced (loopback, faster than this machine's disk takes the cache "
            "writer's bytes), Sluice only: %s/%d byte-exact, %d origin request(s), RSS growth %s MiB, agent: %s. "
            "The writer's lag is what memory holds then, up to `cache_write_lag_max` (32 MiB); past it the writer "
            "is detached and the document fetched once more in the background to store it (C1: the origin never "
            "waits for the disk)." % (u["ok"], u["clients"], u["origin_requests"], fmt(u["rss_growth_mib"]),
                                      u.get("agent", "-")))
    return "### %s\n\n%s\n\n%s\n" % (title, t, "\n".join(targets))


def verify_section(res, info):
    n = ECO["verify_rounds"]
    title = ("npm fill with integrity checking: cold fills of a %s MB tarball, integrity_verify=1 against 0, "
             "%d fills per arm" % (fmt(info.get("verify_mb")), n))
    if "error" in res:
        return error_section(title, res)
    on, off = res["sluice-verify-on"], res["sluice-verify-off"]
    for r in (on, off):
        r["mb_s_range"] = "%s / %s" % (fmt(r["mb_s_min"]), fmt(r["mb_s_max"]))
        r["verified_txt"] = "%d of %d" % (r["verified"], r["fills"])
    rows = [
        ("fill throughput MB/s, median (higher is better)", "mb_s", True),
        ("fill throughput MB/s, slowest / fastest", "mb_s_range", False),
        ("fill time s, median", "secs", True),
        ("TTFB ms, median", "ttfb_ms", True),
        ("agent CPU s per GB moved (utime+stime), median", "agent_cpu_per_gb", True),
        ("HAProxy + agent CPU s per GB, median", "sut_cpu_per_gb", True),
        ("HAProxy + agent CPU utilisation (1.0 = CPU 0 busy)", "sut_util", False),
        ("load generator CPU utilisation", "loadgen_util", False),
        ("CPUs used by other processes (noise)", "background_cpus", False),
        ("fills counted in sluice_integrity_verified_total", "verified_txt", False)]
    out = []
    for label, field, with_ratio in rows:
        a, b = on.get(field), off.get(field)
        out.append([label, fmt(a), fmt(b), ratio_txt(b, a) if with_ratio else ""])
    t = table(["metric", "verify on", "verify off", "on/off"], out)
    x = on["mb_s"] / off["mb_s"] if off.get("mb_s") else None
    cost = (on["agent_cpu_per_gb"] - off["agent_cpu_per_gb"]
            if on.get("agent_cpu_per_gb") is not None and off.get("agent_cpu_per_gb") is not None else None)
    targets = ["- Target: verify-on fill throughput within 10 %% of verify-off (median): %s" % verdict(
        x is not None and x >= 0.9, "%.3f" % x if x else "-"),
        "- Checked in every fill (the workload fails otherwise): status 200, the registry's bytes (so the "
        "body's SHA-512 is the published dist.integrity), one origin request (a cold fill), no writer "
        "detached, no refetch; +1 sluice_integrity_verified_total{route=\"npm\"} per fill with verify on, "
        "+0 with it off: %s" % verdict(on["verified"] == on["fills"] and off["verified"] == 0,
                                        "on %s, off %s" % (on["verified_txt"], off["verified_txt"])),
        "- Agent CPU the check adds (on minus off, medians): %s s per GB" % fmt(cost),
        "- Both arms: `cache_write_lag_max` and `spool_memory_max` %s (the tarball + 64 MiB), so the cache writer "
        "trails the unpaced loopback registry in memory instead of being detached (tests/bench/README.md); "
        "`worker_cpus` %s, so the worker threads (cache writes, the hash) have a core apart from the event "
        "loop and HAProxy on CPU 0 (docs/architecture.md §10)" % (on.get("room", "-"), on.get("worker_cpus") or
                                                                "unset (not pinned)")]
    return "### %s\n\n%s\n\n%s\n" % (title, t, "\n".join(targets))


def pip_section(res, info):
    n = ECO["pip_warm_runs"]
    title = ("pip install, warm: %s projects (%s wheels, %s MB), --no-cache-dir and a fresh --target every run"
             % (info.get("pip_projects", "?"), info.get("wheels", "?"), fmt(info.get("wheel_mb"))))
    if "error" in res:
        return error_section(title, res)
    for r in res.values():
        r["wall_range"] = "%s / %s" % (fmt(r["wall_min_s"]), fmt(r["wall_max_s"]))
    t = rows_table(res, "nginx-static", "nginx static", [
        ("wall time s, median of %d warm runs (lower is better)" % n, "wall_s", True),
        ("wall time s, fastest / slowest warm run", "wall_range", False),
        ("cold run s (Sluice fills its cache)", "cold_s", True),
        ("origin requests during the %d warm runs" % n, "origin_warm", False),
        ("origin requests during the cold run", "origin_cold", False),
        ("server CPU s per warm run (median)", "cpu_s", True),
        ("server peak RSS MiB", "rss_mib", True),
        ("CPUs used by other processes (noise)", "background_cpus", False)])
    s, a = res["sluice"], res["nginx-static"]
    x = s["wall_s"] / a["wall_s"] if a.get("wall_s") else None
    targets = ["- Target: Sluice's median within 1.2x of the static nginx's: %s" % verdict(
        x is not None and x <= 1.2, "%.2fx" % x if x else "-"),
        "- Target: no origin request during Sluice's warm runs: %s" % verdict(s["origin_warm"] == 0,
                                                                              s["origin_warm"])]
    return "### %s\n\n%s\n\n%s\n" % (title, t, "\n".join(targets))


SECTIONS = {"npm-ci-warm": ci_section, "npm-replay": replay_section, "npm-huge-cold": huge_section,
            "npm-fill-verify": verify_section, "pip-warm": pip_section}


def eco_report(eco):
    """[(workload, markdown)] of the workloads that ran."""
    info = eco.get("_info", {})
    return [(w, SECTIONS[w](eco[w], info if "error" not in info else {})) for w in ECO_WORKLOADS if w in eco]


# ---------------------------------------------------------------- header

def eco_head(meta, eco):
    info = eco.get("_info", {})
    m = meta["machine"]
    v = info.get("versions", {})
    pin = ("HAProxy + agent, Verdaccio and the static nginx pinned to CPU 0; the clients (npm, pip, fetchmany), "
           "the offline origins and the harness on CPU %s" % ",".join(map(str, sorted(LOAD_CPUS))) if PIN
           else "not pinned")
    return """- Date: {date}
- Command: `{cmd}`{quick}
- Machine: {nproc} CPUs ({cpu}), {mem} MiB RAM, Linux {kernel}
- Software: {vers}; node {node}, npm {npm}, pip {pip}; Verdaccio {verdaccio}; agent `{agent}` (git {git})
- Origins: tests/lib/registry.py's NpmRegistry and PypiIndex (with PEP 658 metadata), in the harness, on 127.0.0.1
- Arms: Sluice = HAProxy + agent (routes /npm/, /pypi/, /pypi/files/; `metadata_ttl {ttl}`, `public_url` its
  own edge, everything else at its defaults); Verdaccio = one uplink to the registry, `maxage {ttl}`, on its
  own port; nginx static = the index's pages and files from disk
- Runs: one cold run per arm, then {runs} warm runs per arm, first arm alternating (A B, B A, ...); npm replay
  {rruns} run(s) of {rsecs} s per arm, alternating likewise
- CPU: {pin}; niceness {nice}
- Server CPU and RSS: Verdaccio's node process, the static nginx (master + worker), Sluice's HAProxy + agent
  (RSS: the agent); from /proc, RSS sampled every 50 ms (20 ms in npm-huge-cold)
- Ratios are Sluice/other of the medians: below 1 is better for times, latency, CPU and RSS, above 1 for req/s
- Run time of this part: {elapsed:.0f} s{only}
""".format(date=meta["date"], cmd=meta["command"], quick=" (BENCH_QUICK: fewer and shorter runs)" if QUICK else "",
           nproc=m["nproc"], cpu=m["cpu"] or "unknown", mem=m["mem_mib"], kernel=m["kernel"],
           vers=", ".join(m["versions"]), node=v.get("node") or "?", npm=v.get("npm") or "?",
           pip=v.get("pip") or "?", verdaccio=info.get("verdaccio", "?"),
           agent=os.path.relpath(AGENT_BIN, ROOT),
           git=meta["git"], ttl=ECO["metadata_ttl"], runs=ECO["npm_warm_runs"], rruns=ECO["replay_runs"],
           rsecs=ECO["replay_secs"], pin=pin, nice=NICE, elapsed=eco.get("_elapsed", 0),
           only=only_line(ECO_WORKLOADS))


def eco_raw(eco):
    """One line per workload and arm."""
    out = []
    for w in ECO_WORKLOADS:
        if w not in eco:
            continue
        if "error" in eco[w]:
            out.append("%s: %s" % (w, json.dumps(eco[w])))
            continue
        for arm, r in eco[w].items():
            rr = {k: (round(x, 4) if isinstance(x, float) else x) for k, x in r.items()
                  if k not in ("runs", "ok_txt", "error_txt", "wall_range", "mb_s_range", "verified_txt") and not (k == "check" and arm == "sluice")}
            if "runs" in r:
                rr["runs"] = [{k: (round(x, 4) if isinstance(x, float) else x) for k, x in run.items()}
                              for run in r["runs"]]
            out.append("%s %s: %s" % (w, arm, json.dumps(rr, sort_keys=True)))
    return out
