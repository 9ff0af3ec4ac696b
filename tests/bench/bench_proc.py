"""tests/bench processes and CPU accounting: the cleanup of everything the
run starts or mounts; child processes with CPU pinning, niceness and
PR_SET_PDEATHSIG (BENCH_NO_PIN, BENCH_NICE); /proc readings (CPU ticks,
RSS, fds, disk writes), the RSS/fd sampler and Measure around a workload;
and the small helpers the arms share (free ports, waiting, one GET, the
config templates)."""

import ctypes
import hashlib
import http.client
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import threading
import time
import traceback

from bench_config import CLK_TCK, env_int, log


# ----------------------------------------------------------------- cleanup

class Cleanup:
    """Every process and mount the run creates, undone in reverse order."""

    def __init__(self):
        self.procs = []
        self.mounts = []
        self.dirs = []

    def run(self):
        for p in reversed(self.procs):
            p.stop()
        self.procs.clear()
        for m in reversed(self.mounts):
            umount(m)
        self.mounts.clear()
        for d in self.dirs:
            if os.environ.get("BENCH_KEEP"):
                log("work dir kept: %s" % d)
            else:
                shutil.rmtree(d, ignore_errors=True)
        self.dirs.clear()


CLEANUP = Cleanup()


def umount(path):
    for args in (["umount", path], ["umount", "-l", path]):
        if subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
            return True
    return not os.path.ismount(path)


def on_signal(signum, frame):
    raise KeyboardInterrupt("signal %d" % signum)


def attempt(fn, *a, **kw):
    """fn(*a, **kw), or {"error": its first line} when it raises: a failed
    workload is a result, not the end of the run. The rest of a long error
    (a client's output) goes to the log."""
    try:
        return fn(*a, **kw)
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001
        text = str(e).strip()
        msg = "%s: %s" % (type(e).__name__, text.splitlines()[0] if text else "")
        log("  FAILED: %s" % msg)
        if "\n" in text:
            log("  " + "\n  ".join(text.splitlines()[1:60]))
        if os.environ.get("BENCH_DEBUG"):
            traceback.print_exc()
        return {"error": msg}


# --------------------------------------------------------------- processes

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1
N_CPU = os.cpu_count() or 1
PIN = N_CPU >= 2 and not os.environ.get("BENCH_NO_PIN")
SUT_CPUS = {0} if PIN else None
LOAD_CPUS = set(range(1, N_CPU)) if PIN else None
# HAProxy of the 2-thread arms (the `threads` workload): CPU 0 and CPU 1,
# one thread on each (haproxy-bench-2t.cfg's cpu-map). CPU 1 is also the
# load generator's: on 2 cores there is no CPU left for the second thread.
SUT_2T_CPUS = {0, 1} if PIN else None


# Niceness of everything the bench runs (SUT, origin, load generators, the
# harness): other work on a shared machine then takes less from the
# measurement, the same for both arms. BENCH_NICE=0 turns it off.
NICE = env_int("BENCH_NICE", -10 if os.geteuid() == 0 else 0)


def child_setup(cpus):
    def fn():
        # Die with the harness even if it is SIGKILLed.
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if cpus:
            os.sched_setaffinity(0, cpus)
        if NICE:
            try:
                os.setpriority(os.PRIO_PROCESS, 0, NICE)
            except OSError:
                pass
    return fn


class Proc:
    def __init__(self, name, argv, logdir, cpus=None, env=None):
        self.name = name
        self.log_path = os.path.join(logdir, name + ".log")
        self.logf = open(self.log_path, "ab")
        self.p = subprocess.Popen(argv, stdout=self.logf, stderr=subprocess.STDOUT, env=env,
                                  preexec_fn=child_setup(cpus), stdin=subprocess.DEVNULL)
        self.pid = self.p.pid
        CLEANUP.procs.append(self)

    def alive(self):
        return self.p.poll() is None

    def pids(self):
        """The process and its live children (nginx workers)."""
        return [self.pid] + children(self.pid) if self.alive() else []

    def stop(self, timeout=10):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                for pid in children(self.pid):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                self.p.kill()
                self.p.wait()
        self.logf.close()
        if self in CLEANUP.procs:
            CLEANUP.procs.remove(self)

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""


def children(pid):
    out = []
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            out = [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def proc_stat(pid):
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    return s[s.rindex(")") + 2:].split()


def cpu_ticks(pids):
    """utime+stime of each process plus the reaped children's (cutime+cstime),
    so the nginx cache loader's time stays counted after it exits."""
    t = 0
    for pid in pids:
        try:
            f = proc_stat(pid)
            t += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
        except (OSError, IndexError, ValueError):
            pass
    return t


def status_kb(pid, field):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def write_bytes(pids):
    """Bytes the processes caused to be written to storage (/proc/PID/io)."""
    t = 0
    for pid in pids:
        try:
            with open("/proc/%d/io" % pid) as f:
                for line in f:
                    if line.startswith("write_bytes:"):
                        t += int(line.split()[1])
        except (OSError, ValueError):
            pass
    return t


def count_fds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return 0


class Sampler(threading.Thread):
    """Peak RSS (sum of VmRSS) and peak open fds of the cache tier."""

    def __init__(self, pids_fn, interval=0.05):
        super().__init__(daemon=True)
        self.pids_fn = pids_fn
        self.interval = interval
        self.stop_ev = threading.Event()
        self.peak_rss_kb = 0
        self.peak_fds = 0

    def run(self):
        while True:
            pids = self.pids_fn()
            self.peak_rss_kb = max(self.peak_rss_kb, sum(status_kb(p, "VmRSS") for p in pids))
            self.peak_fds = max(self.peak_fds, sum(count_fds(p) for p in pids))
            if self.stop_ev.wait(self.interval):
                return

    def finish(self):
        self.stop_ev.set()
        self.join()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(fn, timeout, what):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            if fn():
                return
        except Exception as e:  # noqa: BLE001 - report the last one
            last = e
        time.sleep(0.05)
    raise RuntimeError("timed out waiting for %s%s" % (what, " (%s)" % last if last else ""))


def http_get(port, path, timeout=60, want_body=True, headers=None):
    """One GET; returns (status, headers dict lower-case, sha256 hex, length).
    want_body may be a function of the headers: False = close after them.
    headers: more request headers (an Accept)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path, headers=dict(headers or {}, Connection="close"))
        r = c.getresponse()
        h = hashlib.sha256()
        n = 0
        if callable(want_body):
            want_body = want_body({k.lower(): v for k, v in r.getheaders()})
        while want_body:
            b = r.read(1 << 20)
            if not b:
                break
            h.update(b)
            n += len(b)
        return r.status, {k.lower(): v for k, v in r.getheaders()}, h.hexdigest(), n
    finally:
        c.close()


# Run as root (the usual case: ENOSPC needs mount), nginx workers would drop
# to "nobody" and could not read the private work dir; keep them as the
# invoking user, like the agent.
USER_LINE = "user root;" if os.geteuid() == 0 else ""


def nofile():
    return min(65536, resource.getrlimit(resource.RLIMIT_NOFILE)[1])


def render(template, dest, **kw):
    with open(template) as f:
        text = f.read()
    for k, v in kw.items():
        text = text.replace("@%s@" % k, str(v))
    left = re.findall(r"@[A-Z_]+@", "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#")))
    if left:
        raise RuntimeError("%s: unreplaced %s" % (template, left))
    with open(dest, "w") as f:
        f.write(text)


def machine_busy_ticks():
    """(busy, steal) jiffies of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (v + [0] * 8)[:8]
    return user + nice + system + irq + softirq + steal, steal


def own_ticks():
    """CPU of the harness and of its reaped children (wrk, fetchmany)."""
    a = resource.getrusage(resource.RUSAGE_SELF)
    b = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime) * CLK_TCK


class Measure:
    """SUT CPU delta + cache-tier peak RSS/fds around a workload, and how
    much CPU everything else on the machine took meanwhile."""

    def __init__(self, arm):
        self.arm = arm

    def __enter__(self):
        self.pids0 = self.arm.sut_pids()
        self.t0 = cpu_ticks(self.pids0)
        self.c0 = cpu_ticks(self.arm.cache_pids())
        self.g0 = own_ticks()
        self.r0 = cpu_ticks(self.arm.origin_pids())
        self.io0 = write_bytes(self.arm.cache_pids())
        self.m0 = machine_busy_ticks()
        self.w0 = time.monotonic()
        self.sampler = Sampler(self.arm.cache_pids)
        self.sampler.start()
        return self

    def __exit__(self, *exc):
        self.sampler.finish()
        sut = cpu_ticks(self.arm.sut_pids()) - self.t0
        gen = own_ticks() - self.g0
        ours = gen + cpu_ticks(self.arm.origin_pids()) - self.r0
        m1 = machine_busy_ticks()
        self.wall_s = time.monotonic() - self.w0
        self.cpu_s = sut / CLK_TCK
        # The cache tier's part of it (the rest is HAProxy).
        self.cache_cpu_s = (cpu_ticks(self.arm.cache_pids()) - self.c0) / CLK_TCK
        self.loadgen_util = gen / CLK_TCK / self.wall_s if self.wall_s else None
        # nginx workers live as long as the instance, so the delta is exact
        # for both arms (a reaped cache loader writes nothing).
        self.disk_gb = max(0, write_bytes(self.arm.cache_pids()) - self.io0) / 1e9
        self.peak_rss_mib = self.sampler.peak_rss_kb / 1024.0
        self.peak_fds = self.sampler.peak_fds
        # CPUs used by processes that are not part of the bench (other users
        # of a shared machine), and VM steal: noise indicators.
        self.background = max(0.0, (m1[0] - self.m0[0] - sut - ours) / CLK_TCK / self.wall_s) if self.wall_s else None
        self.steal = (m1[1] - self.m0[1]) / CLK_TCK / self.wall_s if self.wall_s else None
