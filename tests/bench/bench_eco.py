"""tests/bench package-registry phase: the offline origins (an NpmRegistry
and a PypiIndex from tests/lib/registry.py, served by the harness on
127.0.0.1), the arms (Sluice with its npm and PyPI routes on them,
Verdaccio 5 on the same registry, a static nginx with the index's pages
and files, two more Sluice arms for npm-fill-verify, integrity_verify 1
and 0), and the workloads of bench_npm.py, bench_verify.py and bench_pip.py in the
order of ECO_WORKLOADS. Everything is started once for the phase and
stopped at its end, failures included; only the arms the selected
workloads need are started.

run_eco(ctx, work) -> {workload: {arm key: summary} or {"error": ...},
"_info": what was built and with which tools, "_elapsed": seconds}."""

import os
import time

from bench_arms import start_arm
from bench_config import ECO_WORKLOADS, ONLY, log
from bench_eco_arms import VERDACCIO_VERSION, StaticArm, VerdaccioArm, eco_sluice_arm
from bench_npm import make_huge, make_npm_project, run_huge, run_npm_ci, run_replay
from bench_pip import make_pypi_project, run_pip, write_static_mirror
from bench_proc import attempt
from bench_verify import ARM_KEYS as VERIFY_ARMS, make_fill_verify, run_fill_verify, verify_arms
from bench_report import collect_findings

from clients import tool_versions  # noqa: E402 - tests/lib, on sys.path via bench_arms
from registry import NpmRegistry, PypiIndex  # noqa: E402

NPM = ("npm-ci-warm", "npm-replay", "npm-huge-cold")
# workload -> (function, arm keys in the order of the first run)
PLAN = {
    "npm-ci-warm": (run_npm_ci, ("verdaccio", "sluice")),
    "npm-replay": (run_replay, ("verdaccio", "sluice")),
    "npm-huge-cold": (run_huge, ("sluice", "verdaccio")),
    "npm-fill-verify": (run_fill_verify, VERIFY_ARMS),
    "pip-warm": (run_pip, ("nginx-static", "sluice")),
}


def selected():
    return [w for w in ECO_WORKLOADS if w in ONLY]


def build_origins(ctx, eco):
    """The packages, the project, its lockfile: what the workloads need."""
    info = {"verdaccio": VERDACCIO_VERSION}
    v = tool_versions()
    info["versions"] = {k: v.get(k) for k in ("node", "npm", "pip")}
    if "npm-ci-warm" in ONLY or "npm-replay" in ONLY:
        p = ctx["npm_project"] = make_npm_project(ctx["npm"], eco)
        info.update(npm_packages=len(p["names"]), lock_entries=p["entries"], tarballs=len(p["tarballs"]),
                    tarball_mb=p["bytes"] / 1e6)
    if "npm-huge-cold" in ONLY:
        info["huge_mb"] = make_huge(ctx["npm"], eco) / 1e6
    if "npm-fill-verify" in ONLY:
        info["verify_mb"] = make_fill_verify(ctx["npm"], eco) / 1e6
    if "pip-warm" in ONLY:
        p = ctx["pypi_project"] = make_pypi_project(ctx["pypi"])
        files = [f for name in ctx["pypi"].projects() for f in ctx["pypi"].files(name)]
        info.update(pip_projects=p["projects"], wheels=p["wheels"], wheel_mb=sum(f.size for f in files) / 1e6)
    return info


def start_arms(ctx, eco, arms):
    reg, pypi = ctx["npm"], ctx["pypi"]
    work = lambda k: os.makedirs(os.path.join(eco, k)) or os.path.join(eco, k)  # noqa: E731
    ctx["npm_url"], ctx["npm_prefix"], ctx["pip_url"] = {}, {"sluice": "/npm", "verdaccio": ""}, {}
    if any(w in ONLY for w in NPM + ("pip-warm",)):       # npm-fill-verify has its own two
        sluice = arms["sluice"] = eco_sluice_arm(work("sluice"), reg.base_url, pypi.base_url, pypi.files_base_url)
        start_arm(sluice)
        edge = "http://127.0.0.1:%d" % sluice.edge_port
        ctx["npm_url"]["sluice"] = edge + "/npm/"
        ctx["pip_url"]["sluice"] = edge + "/pypi/simple/"
    if any(w in ONLY for w in NPM):
        v = arms["verdaccio"] = VerdaccioArm(work("verdaccio"), reg.registry_url)
        start_arm(v)
        ctx["npm_url"]["verdaccio"] = v.registry_url
    if "npm-fill-verify" in ONLY:
        for arm in verify_arms(work, reg.base_url):
            arms[arm.key] = arm
            start_arm(arm)
    if "pip-warm" in ONLY:
        st = arms["nginx-static"] = StaticArm(work("nginx-static"), os.path.join(eco, "pypi-static"))
        write_static_mirror(pypi, st.cache_root, st.base_url)
        start_arm(st)
        ctx["pip_url"]["nginx-static"] = st.base_url + "/simple/"
    log("package registries: %s" % ", ".join("%s on :%d" % (a.label, a.edge_port) for a in arms.values()))


def run_eco(ctx, work):
    t0 = time.monotonic()
    eco = os.path.join(work, "eco")
    os.makedirs(eco)
    ctx = dict(ctx, work=eco, npm=NpmRegistry(os.path.join(eco, "npm-registry")),
               pypi=PypiIndex(os.path.join(eco, "pypi"), core_metadata=True))
    out, arms = {}, {}
    try:
        ctx["npm"].start()
        ctx["pypi"].start()
        info = attempt(build_origins, ctx, eco)
        if "error" not in info:
            started = attempt(start_arms, ctx, eco, arms)
            info = started if isinstance(started, dict) and "error" in started else info
        out["_info"] = info
        for w in selected():
            fn, keys = PLAN[w]
            out[w] = info if "error" in info else attempt(fn, ctx, [arms[k] for k in keys])
    finally:
        for arm in arms.values():
            arm.stop()
            collect_findings(arm, "eco", group="eco")
        ctx["npm"].stop()
        ctx["pypi"].stop()
    out["_elapsed"] = time.monotonic() - t0
    return out
