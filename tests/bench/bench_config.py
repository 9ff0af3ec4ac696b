"""tests/bench settings: paths, the knobs read from the environment
(BENCH_QUICK, BENCH_PASSES, BENCH_DURATION, BENCH_STAMPEDE_*,
BENCH_ORIGIN_RATE, BENCH_ONLY, BENCH_TRANSPORT, BENCH_ARMS, BENCH_ECO_RUNS,
BENCH_REPLAY_DURATION, BENCH_VERIFY_MIB, BENCH_VERIFY_ROUNDS, BENCH_L2_ROUNDS,
BENCH_PACED_RATE, BENCH_ANCHORS_DURATION, SLUICE_TEST_BIN), the workload lists (generic and
package registries) and log(). Read once, at import; every
other bench module imports from here. The pinning and niceness knobs
(BENCH_NO_PIN, BENCH_NICE) live with the processes, in bench_proc.py."""

import os
import sys
import time


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "tests", "bench")
HAPROXY_DIR = os.path.join(ROOT, "haproxy")
AGENT_BIN = os.environ.get("SLUICE_TEST_BIN", os.path.join(ROOT, "build", "release", "sluice"))

KIB, MIB, GIB = 1024, 1024 * 1024, 1024 * 1024 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")


def parse_rate(text):
    """nginx's limit_rate syntax ("32m", "512k", "1000"): bytes per second."""
    t = text.strip().lower()
    unit = {"k": KIB, "m": MIB, "g": GIB}.get(t[-1:], 1)
    return float(t[:-1] if unit != 1 else t) * unit


def env_int(name, default):
    v = os.environ.get(name, "")
    return int(v) if v.strip() else default


QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
P = {
    "passes": env_int("BENCH_PASSES", 1 if QUICK else 3),
    "duration": env_int("BENCH_DURATION", 3 if QUICK else 6),
    "stampede_clients": env_int("BENCH_STAMPEDE_CLIENTS", 20 if QUICK else 200),
    # 200 clients x 256 MiB is ~54 GB through one HAProxy thread: 1-2.5 min
    # per variant on 2 cores, so by default only the first pass runs it.
    "stampede_passes": env_int("BENCH_STAMPEDE_PASSES", 1),
    "stampede_size": 256 * MIB,
    "stampede_timeout": env_int("BENCH_STAMPEDE_TIMEOUT", 60 if QUICK else 240),
    "origin_rate": os.environ.get("BENCH_ORIGIN_RATE", "32m"),
    # The origin's /paced/ location (the anchors group's cold rows).
    "paced_rate": os.environ.get("BENCH_PACED_RATE", "4m"),
    "lock_tuned": "600s",
    "enospc_tmpfs": "256m",
    "enospc_clients": 20,
    "enospc_more": 5,
    "enospc_size": 64 * MIB,
}
WARM = [
    # name, object file, size, wrk connections
    ("hit-1k", "obj-1k.bin", 1 * KIB, 32),
    ("hit-1m", "obj-1m.bin", 1 * MIB, 16),
    # Large hits at three concurrencies: one stream, a few, many. Both arms
    # move these bytes through the same kernel and HAProxy path, so a single
    # concurrency can land on either side of 1.0 by how the streams happen
    # to interleave; the three together show the trend.
    ("hit-64m-c1", "obj-64m.bin", 64 * MIB, 1),
    ("hit-64m", "obj-64m.bin", 64 * MIB, 4),
    ("hit-64m-c16", "obj-64m.bin", 64 * MIB, 16),
]
# The threads workload: these warm hits once more on twins of both arms
# whose HAProxy runs 2 threads (nbthread 2 on CPUs 0-1), each measured
# seconds apart from the same hit on the 1-thread arm.
THREADS_WARM = ["hit-1k", "hit-1m"]
GENERIC_WORKLOADS = [w[0] for w in WARM] + ["threads", "stampede", "enospc"]
# The package-registry workloads (bench_eco.py): Sluice's npm and PyPI
# routes against Verdaccio 5 and a static nginx, on offline origins.
ECO_WORKLOADS = ["npm-ci-warm", "npm-replay", "npm-huge-cold", "npm-fill-verify", "pip-warm"]
# The S3 tier as a shared L2 (bench_l2.py): L2 hits against L1 hits, and
# what a broken store adds to a miss. Opt-in: named in BENCH_ONLY only
# (quick ~75 s; full an estimated 2-3 min), not part of a plain `make bench`.
L2_WORKLOADS = ["l2"]
# Every anchor of issue 19 side by side (bench_anchors.py): Sluice, nginx
# proxy_cache, Varnish (file storage) and HAProxy's own cache, each behind
# the same HAProxy, hits, bursts of misses and a stampede.
ANCHORS_WORKLOADS = ["anchors"]
OPT_IN = []   # workloads only BENCH_ONLY runs (none today)
ALL_WORKLOADS = GENERIC_WORKLOADS + ECO_WORKLOADS + L2_WORKLOADS + ANCHORS_WORKLOADS
ONLY = [w.strip() for w in os.environ.get("BENCH_ONLY", "").split(",") if w.strip()] or \
    [w for w in ALL_WORKLOADS if w not in OPT_IN]
if set(ONLY) - set(ALL_WORKLOADS):
    sys.exit("BENCH_ONLY: unknown workload(s) %s; known: %s" % (
        ",".join(sorted(set(ONLY) - set(ALL_WORKLOADS))), ",".join(ALL_WORKLOADS)))
ECO = {
    # The npm project: packages in the registry (every one ends up in the
    # lockfile), how many the project's package.json names.
    "npm_packages": 120,
    "npm_roots": 16,
    # Both caches keep metadata this long: Sluice metadata_ttl, Verdaccio's
    # uplink maxage. Generous, so warm runs are warm in both.
    "metadata_ttl": "10m",
    "npm_warm_runs": env_int("BENCH_ECO_RUNS", 3 if QUICK else 5),
    "replay_conns": 64,
    "replay_secs": env_int("BENCH_REPLAY_DURATION", 3 if QUICK else 10),
    "replay_rounds": 2000,            # and at most this many passes over the list
    "replay_runs": 1 if QUICK else 3,
    "huge_versions": 1000,            # x 40 kB readmes: a 41 MB full packument
    "huge_readme": 40_000,
    "huge_clients": 20,
    # npm-fill-verify: cold fills of one big tarball, integrity_verify 1
    # against 0; one round = one fill per arm, each of its own version.
    "verify_size": env_int("BENCH_VERIFY_MIB", 128 if QUICK else 256) * MIB,
    "verify_rounds": env_int("BENCH_VERIFY_ROUNDS", 3 if QUICK else 6),
    "pip_projects": 20,
    "pip_warm_runs": env_int("BENCH_ECO_RUNS", 3 if QUICK else 5),
}
L2 = {
    # L2 hit throughput: rounds, each with fresh keys (every L2 pass cold
    # in the reader's L1); keys per round and connections per object size.
    "rounds": env_int("BENCH_L2_ROUNDS", 3 if QUICK else 5),
    "keys_1m": 64 if QUICK else 128,
    "conns_1m": 4,
    "keys_64m": 2 if QUICK else 4,
    "conns_64m": 1,
    # Cold misses per arm in the outage half (one at a time).
    "outage_misses": 20 if QUICK else 60,
}
ANCHORS = {
    # Seconds per hit run; every hit row runs on each arm at 1 and at 2
    # HAProxy threads in every pass (BENCH_PASSES passes).
    "duration": env_int("BENCH_ANCHORS_DURATION", 2 if QUICK else 3),
    # Only these rows (comma list of hit-1k, hit-1m, hit-64m, packument,
    # burst-20, burst-200, stampede), to iterate on one; unset: all.
    "only_rows": [r.strip() for r in os.environ.get("BENCH_ANCHORS_ROWS", "").split(",") if r.strip()],
    "bursts": (20, 200),              # distinct cold misses at once
    "burst_size": 4 * MIB,            # from /paced/: about 1 s per fill at 4m
    "stampede_clients": 50,
    "stampede_size": 16 * MIB,        # from /paced/: about 4 s at 4m
    "cold_timeout": 120,
    "packument_versions": 520,        # about 200 KiB of abbreviated packument
    "varnish_storage": "2G",
    "haproxy_cache_mb": 1024,         # cache total-max-size (MB, at most 4095)
}
# How HAProxy reaches the cache tier, the same in both arms: "unix" (the
# default, what Sluice's shipped configs use, given to nginx too) or "tcp"
# (127.0.0.1 ports).
TRANSPORT = os.environ.get("BENCH_TRANSPORT", "unix")
if TRANSPORT not in ("unix", "tcp"):
    sys.exit("BENCH_TRANSPORT must be unix or tcp")
ARMS = [a.strip() for a in os.environ.get("BENCH_ARMS", "").split(",") if a.strip()] or ["nginx", "sluice"]


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)
