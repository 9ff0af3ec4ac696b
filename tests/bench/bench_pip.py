"""tests/bench pip-warm: the real `pip install` (build/tools/venv-pip,
--no-cache-dir, a fresh --target each run) of a project of ~20 wheels,
through Sluice's /pypi/ route (index pages from the offline PypiIndex,
file links rewritten to /pypi/files/) against the same pages and files
served from disk by a plain nginx: the floor, no cache can serve faster.

The index is tests/lib/registry.py's PypiIndex with PEP 658 metadata (as
PyPI has it); its pages are mirrored once into the static nginx's root with
the file links pointed at that nginx, and its packages/ directory is linked
in. One cold run per arm, then N warm runs per arm, first arm alternating."""

import os
import random
import shutil

from bench_config import ECO, log
from bench_npm import WORDS, dependency_tree, warm_summary
from bench_proc import Measure

from clients import pip_install  # tests/lib, on sys.path via bench_arms


def wheel_size(rng):
    r = rng.random()
    return rng.randint(8_000, 64_000) if r < 0.7 else rng.randint(64_000, 400_000)


def make_pypi_project(pypi):
    """Publish the wheels (half the projects in two versions; pip takes
    the newest). Returns the roots to install and what pip must report."""
    n = ECO["pip_projects"]
    names = ["bench-py-%s-%d" % (WORDS[i % len(WORDS)], i) for i in range(n)]
    rng = random.Random(658)
    deps, _ = dependency_tree(names, 4, rng)
    for i, name in reversed(list(enumerate(names))):
        requires = ["%s>=1.0" % d for d in sorted(deps[name])]
        for ver in ("1.0", "1.1") if i % 2 else ("1.1",):
            pypi.add_wheel(name, ver, requires=requires, size=wheel_size(rng))
    files = [f for p in pypi.projects() for f in pypi.files(p)]
    log("PyPI project: %d projects, %d wheels (%.1f MB)" % (n, len(files), sum(f.size for f in files) / 1e6))
    return {"roots": names[:4], "installed": {name: "1.1" for name in names}, "wheels": len(files),
            "projects": n}


def write_static_mirror(pypi, root, base):
    """The index's pages in root/simple/ with the file links pointed at
    base, and root/packages -> the index's own files."""
    def put(rel, data):
        path = os.path.join(root, rel, "index.html")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    put("simple", pypi.page_bytes(None))
    for p in pypi.projects():
        put(os.path.join("simple", p), pypi.page_bytes(p).replace(pypi.files_base_url.encode(), base.encode()))
    os.symlink(os.path.join(pypi.root_dir, "packages"), os.path.join(root, "packages"))


def pip_once(arm, url, project, target):
    shutil.rmtree(target, ignore_errors=True)
    arm.settle()
    with Measure(arm) as m:
        r = pip_install(url, project["roots"], target, timeout=600)
    if not r.ok or r.installed != project["installed"]:
        raise RuntimeError("pip install through %s: %s" % (
            arm.key, r if not r.ok else "installed %s" % sorted(r.installed.items())))
    return {"wall_s": r.elapsed, "cpu_s": m.cpu_s, "rss_mib": m.peak_rss_mib, "background_cpus": m.background}


def run_pip(ctx, arms):
    """arms: [floor, sluice]. Cold once each, then the warm runs."""
    pypi, project = ctx["pypi"], ctx["pypi_project"]
    res = {}
    for arm in arms:
        target = os.path.join(ctx["work"], "pip-target-" + arm.key)
        before = pypi.requests(method=None)
        cold = pip_once(arm, ctx["pip_url"][arm.key], project, target)
        res[arm.key] = {"target": target, "cold": cold, "warm": [],
                        "origin_cold": pypi.requests(method=None) - before, "origin_warm": 0}
        log("  %s pip cold: %.2f s, %d origin requests" % (arm.key, cold["wall_s"], res[arm.key]["origin_cold"]))
    for i in range(ECO["pip_warm_runs"]):
        for arm in (arms if i % 2 == 0 else arms[::-1]):
            r = res[arm.key]
            before = pypi.requests(method=None)
            w = pip_once(arm, ctx["pip_url"][arm.key], project, r["target"])
            n = pypi.requests(method=None) - before
            r["warm"].append(w)
            r["origin_warm"] += n
            log("  %s pip warm %d: %.2f s, %d origin requests" % (arm.key, i + 1, w["wall_s"], n))
    return {k: warm_summary(v) for k, v in res.items()}

