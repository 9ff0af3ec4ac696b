"""The real package clients (npm, pnpm, pip, cargo, mvn), each run in a sandbox, for the
end-to-end tests. Every function returns a ClientResult (returncode,
stdout, stderr, elapsed, ...) and raises nothing for a failed install: the
test decides what a failure means.

    from clients import ensure_tools, npm_install, pnpm_install, pip_install, cargo_fetch, mvn_get
    ensure_tools()                                   # setUpClass: pnpm, the pip venv
    r = npm_install(registry.registry_url, proj, ["demo-a", "@demo/c"])
    assert r.ok, r                                   # str(r) has the command and output tails
    r = pip_install(pypi.index_url, ["demo-a"], target_dir)
    assert r.installed == {"demo-a": "1.0", "demo-b": "1.1"}
    r = cargo_fetch(cargo.index_url, proj, {"demo-a": "0.1"}, build=True)
    r = mvn_get(maven.repo_url, "com.example:demo-lib:1.0")

Sandboxing (nothing of the machine's configuration leaks in, nothing of the
run leaks out):
  npm   --userconfig <tmp npmrc> (registry, audit/fund/update-notifier off,
        loglevel=http so stderr lists every fetch, omit-lockfile-registry-
        resolved=false unless asked) and --globalconfig <empty file>: this
        machine's ~/.npmrc sets omit-lockfile-registry-resolved=true and
        nodedir=/usr, /usr/etc/npmrc a cafile. --cache: a fresh directory
        unless cache_dir is given. --prefix project_dir (a minimal
        package.json is written if there is none). HOME is the sandbox;
        every npm_*/NPM_* variable and CI are dropped.
  pnpm  PNPM_VERSION from the npm registry, installed once under
        build/tools/pnpm-<version>/ (ensure_tools). HOME/XDG dirs in the
        sandbox, whose ~/.npmrc holds registry, store-dir (a fresh one
        unless store_dir is given), cache-dir and update-notifier=false.
        pnpm has no replace-registry-host: it fetches dist.tarball as the
        packument gives it.
  pip   a venv at build/tools/venv-pip (python3 -m venv, made once), run as
        `python -m pip --isolated install --no-cache-dir --index-url URL`
        with every PIP_* variable dropped (this machine sets PIP_FIND_LINKS
        and PIP_DEFAULT_TIMEOUT). Installs go to `--target target_or_venv`,
        or into target_or_venv itself when it is a venv (make_venv()).
  cargo find_cargo(): the first cargo >= 1.68 on PATH, in ~/.cargo/bin or
        /root/.cargo/bin (rustup's; Debian's cargo 0.66 has no sparse
        registries). A fresh CARGO_HOME per run, every CARGO_*/RUSTUP_*
        variable dropped but RUSTUP_HOME (rustup's proxies need it), and the
        project's .cargo/config.toml replaces crates-io with the sparse
        registry given.
  mvn   -s <settings.xml in the sandbox> (a mirror of * at the URL given,
        and a profile redefining central with snapshots on, updatePolicy
        always), -Dmaven.repo.local a fresh directory unless given, the
        fully qualified Debian maven-dependency-plugin (ensure_maven()).

Client defaults are kept on purpose (the tests measure the real clients):
npm retries a 5xx or a refused connection after 10 s and 60 s
(fetch-retries=2), pip retries 500/503 and connection errors five times
with backoff (0.5 ... 4 s), cargo retries 5xx, 429, refused connections
and partial files three times (about 1, 3.5 and 6.5 s apart), Maven 3.8's
Wagon retries only I/O errors before the response head (a 5xx fails at
once). Tests that expect a failure should pass npmrc={"fetch-retries": 0},
pip's extra_args=["--retries", "0"] or cargo_fetch(..., retry=0).
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Optional

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = os.path.join(ROOT, "build", "tools")
PNPM_VERSION = "10.34.9"        # pnpm 11 wants Node >= 22.13; 10.x runs on Node 18.12+
PNPM_DIR = os.path.join(TOOLS, "pnpm-" + PNPM_VERSION)
PNPM_BIN = os.path.join(PNPM_DIR, "node_modules", ".bin", "pnpm")
PIP_VENV = os.path.join(TOOLS, "venv-pip")
PIP_PYTHON = os.path.join(PIP_VENV, "bin", "python")


@dataclass
class ClientResult:
    argv: list
    cwd: str
    returncode: Optional[int]         # None: killed on timeout
    stdout: str
    stderr: str
    elapsed: float                    # seconds
    timed_out: bool = False
    installed: dict = field(default_factory=dict)   # pip: {name: version} from "Successfully installed"
    log: str = ""                     # npm: its debug log, kept when the run failed

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __str__(self) -> str:
        tail = lambda s, n: s if len(s) <= n else "..." + s[-n:]  # noqa: E731
        return ("%s (cwd %s): rc=%s%s in %.1fs\n--- stdout\n%s\n--- stderr\n%s%s"
                % (" ".join(self.argv), self.cwd, self.returncode, " TIMEOUT" if self.timed_out else "",
                   self.elapsed, tail(self.stdout, 3000), tail(self.stderr, 6000),
                   "\n--- log\n" + tail(self.log, 6000) if self.log else ""))


# ------------------------------------------------------------------ running


def _run(argv: list, cwd: str, env: dict, timeout: float) -> ClientResult:
    """Run to completion or until `timeout`, then kill its whole process
    group (it runs in its own session). Never raises for the command."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
    finally:
        if proc.poll() is None:           # interrupted (KeyboardInterrupt): leave nothing behind
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
    return ClientResult(list(argv), cwd, None if timed_out else proc.returncode,
                        out.decode("utf-8", "replace"), err.decode("utf-8", "replace"),
                        time.monotonic() - start, timed_out)


_DROP_PREFIXES = ("npm_", "NPM_", "PIP_", "PNPM_", "YARN_", "COREPACK_")
_DROP = {"CI", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONUSERBASE", "NODE_PATH"}


def _env(home: str, extra: Optional[dict]) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROP_PREFIXES) and k not in _DROP}
    env["HOME"] = home
    for var, sub in (("XDG_CONFIG_HOME", "config"), ("XDG_CACHE_HOME", "cache"),
                     ("XDG_DATA_HOME", "data"), ("XDG_STATE_HOME", "state")):
        env[var] = os.path.join(home, sub)
    env["NO_UPDATE_NOTIFIER"] = "1"
    env.update(extra or {})
    return env


@contextmanager
def _sandbox(prefix: str):
    d = tempfile.mkdtemp(prefix=prefix)
    try:
        os.makedirs(os.path.join(d, "home"))
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _npmrc_lines(settings: dict) -> str:
    out = []
    for k, v in settings.items():
        if v is None:
            continue
        out.append("%s=%s" % (k, str(v).lower() if isinstance(v, bool) else v))
    return "\n".join(out) + "\n"


def _names(packages) -> list:
    """A list of package specs; a lone string is one spec, not its letters."""
    return [packages] if isinstance(packages, str) else list(packages)


def _project(project_dir: str) -> None:
    os.makedirs(project_dir, exist_ok=True)
    pj = os.path.join(project_dir, "package.json")
    if not os.path.exists(pj):
        with open(pj, "w") as f:
            json.dump({"name": "sluice-e2e-project", "version": "1.0.0", "private": True}, f, indent=2)


# ---------------------------------------------------------------------- npm


def npm_install(registry_url: str, project_dir: str, packages=(), lockfile: bool = False,
                cache_dir: Optional[str] = None, env: Optional[dict] = None, timeout: float = 180,
                npmrc: Optional[dict] = None, omit_resolved: bool = False) -> ClientResult:
    """`npm install [packages]` in project_dir against registry_url, or
    `npm ci` when lockfile=True (needs the package-lock.json of npm_lock()).
    npmrc: extra settings ({"fetch-retries": 0}); omit_resolved: set
    omit-lockfile-registry-resolved (this machine's own default)."""
    argv = ["ci"] if lockfile else ["install"] + _names(packages)
    return _npm(argv, registry_url, project_dir, cache_dir, env, timeout, npmrc, omit_resolved)


def npm_lock(registry_url: str, project_dir: str, packages=(), cache_dir: Optional[str] = None,
             env: Optional[dict] = None, timeout: float = 180, npmrc: Optional[dict] = None,
             omit_resolved: bool = False) -> ClientResult:
    """`npm install --package-lock-only [packages]`: package.json and
    package-lock.json, no node_modules. The lockfile's `resolved` URLs are
    the dist.tarball URLs npm saw, unless omit_resolved."""
    argv = ["install", "--package-lock-only"] + _names(packages)
    return _npm(argv, registry_url, project_dir, cache_dir, env, timeout, npmrc, omit_resolved)


def _npm(cmd, registry_url, project_dir, cache_dir, env, timeout, npmrc, omit_resolved) -> ClientResult:
    npm = shutil.which("npm")
    project_dir = os.path.abspath(project_dir)
    _project(project_dir)
    with _sandbox("sluice-npm-") as box:
        settings = {"registry": registry_url.rstrip("/") + "/", "audit": False, "fund": False,
                    "update-notifier": False, "progress": False, "loglevel": "http",
                    "omit-lockfile-registry-resolved": omit_resolved,
                    "logs-dir": os.path.join(box, "logs")}
        settings.update(npmrc or {})
        userconfig, globalconfig = os.path.join(box, "npmrc"), os.path.join(box, "global-npmrc")
        with open(userconfig, "w") as f:
            f.write(_npmrc_lines(settings))
        open(globalconfig, "w").close()
        cache = cache_dir or os.path.join(box, "cache")
        argv = [npm or "npm"] + cmd + ["--userconfig", userconfig, "--globalconfig", globalconfig,
                                       "--cache", cache, "--prefix", project_dir]
        if npm is None:
            return ClientResult(argv, project_dir, 127, "", "npm: not found on PATH\n", 0.0)
        res = _run(argv, project_dir, _env(os.path.join(box, "home"), env), timeout)
        if not res.ok:
            logs = sorted(glob.glob(os.path.join(box, "logs", "*.log")))
            if logs:
                with open(logs[-1], encoding="utf-8", errors="replace") as f:
                    res.log = f.read()
        return res


# --------------------------------------------------------------------- pnpm


def pnpm_install(registry_url: str, project_dir: str, packages=(), lockfile: bool = False,
                 store_dir: Optional[str] = None, env: Optional[dict] = None, timeout: float = 180,
                 npmrc: Optional[dict] = None) -> ClientResult:
    """`pnpm add packages` (or `pnpm install` without packages) in
    project_dir against registry_url; lockfile=True: `pnpm install
    --frozen-lockfile` from the pnpm-lock.yaml of an earlier run."""
    if packages:
        cmd = ["add"] + _names(packages)
    else:
        cmd = ["install", "--frozen-lockfile" if lockfile else "--no-frozen-lockfile"]
    return _pnpm(cmd, registry_url, project_dir, store_dir, env, timeout, npmrc)


def pnpm_lock(registry_url: str, project_dir: str, store_dir: Optional[str] = None,
              env: Optional[dict] = None, timeout: float = 180, npmrc: Optional[dict] = None) -> ClientResult:
    """`pnpm install --lockfile-only`: pnpm-lock.yaml for package.json."""
    return _pnpm(["install", "--lockfile-only"], registry_url, project_dir, store_dir, env, timeout, npmrc)


def _pnpm(cmd, registry_url, project_dir, store_dir, env, timeout, npmrc) -> ClientResult:
    project_dir = os.path.abspath(project_dir)
    _project(project_dir)
    try:
        pnpm = ensure_pnpm()
    except RuntimeError as e:
        return ClientResult(["pnpm"] + cmd, project_dir, 127, "", "%s\n" % e, 0.0)
    with _sandbox("sluice-pnpm-") as box:
        home = os.path.join(box, "home")
        settings = {"registry": registry_url.rstrip("/") + "/",
                    "store-dir": store_dir or os.path.join(box, "store"),
                    "cache-dir": os.path.join(box, "pnpm-cache"),
                    "update-notifier": False}
        settings.update(npmrc or {})
        with open(os.path.join(home, ".npmrc"), "w") as f:
            f.write(_npmrc_lines(settings))
        argv = [pnpm] + cmd + ["--reporter=append-only"]
        return _run(argv, project_dir, _env(home, env), timeout)


@contextmanager
def _tools_lock():
    os.makedirs(TOOLS, exist_ok=True)
    with open(os.path.join(TOOLS, ".lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_npm_tool(package: str, version: str, bin_name: str, package_json: Optional[dict] = None) -> str:
    """The binary `bin_name` of the npm package `package@version`,
    installed from the npm registry on first use (the machine's own npm
    configuration reaches the registry) under build/tools/<package>-<version>/,
    whose node_modules/.bin/<bin_name> is returned. `package_json` (for
    example npm "overrides") is written there before the install. The
    directory is complete or absent, never half: the install goes to a .tmp
    sibling, renamed once npm succeeded, under the build/tools lock.
    Raises RuntimeError with npm's output when the install fails."""
    home = os.path.join(TOOLS, "%s-%s" % (package.replace("/", "+"), version))
    binary = os.path.join(home, "node_modules", ".bin", bin_name)
    if os.access(binary, os.X_OK):
        return binary
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed: cannot install %s" % package)
    with _tools_lock():
        if os.access(binary, os.X_OK):
            return binary
        tmp = home + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        if package_json is not None:
            with open(os.path.join(tmp, "package.json"), "w") as f:
                json.dump(package_json, f, indent=2)
        env = {k: v for k, v in os.environ.items() if not k.startswith("npm_config_prefix")}
        r = _run([npm, "install", "--prefix", tmp, "--no-save", "--no-package-lock", "--no-audit",
                  "--no-fund", "--no-update-notifier", "%s@%s" % (package, version)], tmp, env, 600)
        if not r.ok:
            shutil.rmtree(tmp, ignore_errors=True)
            raise RuntimeError("installing %s@%s failed:\n%s" % (package, version, r))
        shutil.rmtree(home, ignore_errors=True)
        os.rename(tmp, home)              # complete or absent, never half
    return binary


def ensure_pnpm() -> str:
    """The pnpm binary (PNPM_BIN), installed on first use."""
    return ensure_npm_tool("pnpm", PNPM_VERSION, "pnpm")


# ---------------------------------------------------------------------- pip


_VENV_CHECKED = False


def ensure_pip_venv() -> str:
    """The python of build/tools/venv-pip (made with `python3 -m venv` on
    first use; on Debian that needs the python3-venv package)."""
    global _VENV_CHECKED
    if _VENV_CHECKED:
        return PIP_PYTHON
    with _tools_lock():
        if os.path.exists(PIP_PYTHON) and subprocess.run(
                [PIP_PYTHON, "-c", "import pip"], stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL).returncode == 0:
            _VENV_CHECKED = True
            return PIP_PYTHON
        tmp = PIP_VENV + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        r = _run([sys.executable, "-m", "venv", tmp], TOOLS, _env(os.environ.get("HOME", "/"), None), 300)
        if not r.ok:
            shutil.rmtree(tmp, ignore_errors=True)
            raise RuntimeError("python3 -m venv failed (Debian: apt-get install python3-venv):\n%s" % r)
        shutil.rmtree(PIP_VENV, ignore_errors=True)
        os.rename(tmp, PIP_VENV)          # bin/python finds pyvenv.cfg beside it: the move is safe
    _VENV_CHECKED = True
    return PIP_PYTHON


def make_venv(path: str, timeout: float = 120) -> ClientResult:
    """A fresh venv (with pip) at path, for tests that install into a venv."""
    return _run([sys.executable, "-m", "venv", path], os.path.dirname(os.path.abspath(path)) or "/",
                _env(os.environ.get("HOME", "/"), None), timeout)


_INSTALLED = re.compile(r"^Successfully installed (.+)$", re.M)


def parse_installed(text: str) -> dict:
    """{normalised name: version} from pip's "Successfully installed a-1.0 b-2"."""
    out = {}
    for m in _INSTALLED.finditer(text):
        for item in m.group(1).split():
            name, _, version = item.rpartition("-")
            out[re.sub(r"[-_.]+", "-", name).lower()] = version
    return out


def pip_install(index_url: str, packages, target_or_venv: str, no_build_isolation: bool = False,
                timeout: float = 180, extra_args=(), env: Optional[dict] = None) -> ClientResult:
    """pip install packages from index_url (only), into target_or_venv: a
    venv (it has pyvenv.cfg: its own pip installs into it) or any other
    directory (--target, with build/tools/venv-pip's pip). The result's
    .installed is {name: version}."""
    target_or_venv = os.path.abspath(target_or_venv)
    if os.path.exists(os.path.join(target_or_venv, "pyvenv.cfg")):
        python, where = os.path.join(target_or_venv, "bin", "python"), []
    else:
        try:
            python = ensure_pip_venv()
        except RuntimeError as e:
            return ClientResult(["pip"], target_or_venv, 127, "", "%s\n" % e, 0.0)
        os.makedirs(target_or_venv, exist_ok=True)
        where = ["--target", target_or_venv]
    argv = [python, "-m", "pip", "--isolated", "install", "--no-cache-dir", "--disable-pip-version-check",
            "--no-input", "--progress-bar", "off", "--index-url", index_url] + where
    if no_build_isolation:
        argv.append("--no-build-isolation")
    argv += list(extra_args) + _names(packages)
    with _sandbox("sluice-pip-") as box:
        res = _run(argv, box, _env(os.path.join(box, "home"), env), timeout)
    res.installed = parse_installed(res.stdout)
    return res


# -------------------------------------------------------------------- cargo

CARGO_MIN = (1, 68)               # the first cargo with sparse registries on by default
CARGO_DIRS = ("/root/.cargo/bin", "/usr/local/cargo/bin")
_CARGO = None                     # (path or None, version or reason), looked up once


def _cargo_version(path: str) -> Optional[tuple]:
    try:
        p = subprocess.run([path, "--version"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           text=True, timeout=60, env=cargo_env(path, None))
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.match(r"cargo (\d+)\.(\d+)\.(\d+)", p.stdout)
    return tuple(int(x) for x in m.groups()) if p.returncode == 0 and m else None


def find_cargo() -> tuple:
    """(path, "") of the first cargo >= 1.68 on PATH, in ~/.cargo/bin or
    in CARGO_DIRS (rustup's are not on PATH in every shell), else (None,
    the reason). Debian's cargo 0.66 has no sparse registries."""
    global _CARGO
    if _CARGO is None:
        seen, cands = [], [shutil.which("cargo"), os.path.expanduser("~/.cargo/bin/cargo")]
        cands += [os.path.join(d, "cargo") for d in CARGO_DIRS]
        for c in cands:
            if not c or c in seen or not os.access(c, os.X_OK):
                continue
            seen.append(c)
            v = _cargo_version(c)
            if v and v[:2] >= CARGO_MIN:
                _CARGO = (c, "")
                break
        else:
            where = ", ".join(("~/.cargo/bin",) + CARGO_DIRS)
            _CARGO = (None, "no cargo >= %d.%d (sparse registries) on PATH or in %s; found: %s"
                      % (CARGO_MIN[0], CARGO_MIN[1], where, ", ".join(seen) or "none"))
    return _CARGO


def cargo_env(cargo: str, cargo_home: Optional[str], home: Optional[str] = None,
              extra: Optional[dict] = None) -> dict:
    """The environment of a sandboxed cargo: no CARGO_*/RUSTUP_TOOLCHAIN of
    the machine, CARGO_HOME as given, cargo's directory first on PATH (it
    runs rustc from there), and RUSTUP_HOME kept pointing at the real one
    (rustup's proxies look for their toolchains under it, not under the
    sandbox's HOME)."""
    real_home = os.environ.get("HOME", "/root")
    env = _env(home, extra) if home else dict(os.environ)
    env = {k: v for k, v in env.items() if not k.startswith(("CARGO_", "RUSTUP_", "RUSTC", "RUSTFLAGS"))}
    rustup = os.environ.get("RUSTUP_HOME") or os.path.join(real_home, ".rustup")
    if os.path.isdir(rustup):
        env["RUSTUP_HOME"] = rustup
    env["PATH"] = os.path.dirname(cargo) + os.pathsep + env.get("PATH", "")
    if cargo_home:
        env["CARGO_HOME"] = cargo_home
    env["CARGO_TERM_COLOR"] = "never"
    env["CARGO_TERM_PROGRESS_WHEN"] = "never"
    env.update(extra or {})
    return env


def cargo_project(project_dir: str, index_url: str, deps: dict, retry: Optional[int] = None,
                  config: str = "") -> None:
    """A lib crate depending on deps ({name: requirement}) whose crates-io
    source is replaced by the sparse registry at index_url (final slash
    added when missing). retry: net.retry (cargo's default is 3)."""
    os.makedirs(os.path.join(project_dir, "src"), exist_ok=True)
    os.makedirs(os.path.join(project_dir, ".cargo"), exist_ok=True)
    lines = "".join('%s = "%s"\n' % (n, r) for n, r in sorted(deps.items()))
    with open(os.path.join(project_dir, "Cargo.toml"), "w") as f:
        f.write('[package]\nname = "sluice-e2e-project"\nversion = "0.1.0"\nedition = "2021"\n'
                'publish = false\n\n[dependencies]\n' + lines)
    with open(os.path.join(project_dir, "src", "lib.rs"), "w") as f:
        f.write("".join("pub use %s::hello as %s_hello;\n" % ((n.replace("-", "_"),) * 2) for n in sorted(deps)))
    cfg = ('[source.crates-io]\nreplace-with = "sluice"\n\n[source.sluice]\nregistry = "sparse+%s"\n'
           % (index_url.rstrip("/") + "/"))
    if retry is not None:
        cfg += "\n[net]\nretry = %d\n" % retry
    with open(os.path.join(project_dir, ".cargo", "config.toml"), "w") as f:
        f.write(cfg + config)


def parse_cargo_lock(project_dir: str) -> dict:
    """{name: version} of the registry packages in project_dir/Cargo.lock."""
    try:
        with open(os.path.join(project_dir, "Cargo.lock")) as f:
            text = f.read()
    except OSError:
        return {}
    out = {}
    for block in text.split("[[package]]")[1:]:
        name = re.search(r'^name = "([^"]+)"', block, re.M)
        ver = re.search(r'^version = "([^"]+)"', block, re.M)
        if name and ver and re.search(r"^source = \"(sparse|registry)\+", block, re.M):
            out[name.group(1)] = ver.group(1)
    return out


def cargo_fetch(index_url: str, project_dir: str, deps: dict, build: bool = False,
                retry: Optional[int] = None, cargo_home: Optional[str] = None, timeout: float = 180,
                env: Optional[dict] = None, config: str = "") -> ClientResult:
    """`cargo fetch` in project_dir (made by cargo_project: deps {name:
    requirement} from the sparse registry at index_url, whose URL is
    "sparse+" + index_url), then, with build=True, `cargo build --offline`
    of what was fetched. CARGO_HOME: a fresh one in the sandbox unless
    cargo_home is given. retry=0: net.retry = 0 (no retry of 5xx or a
    refused connection). The result's .installed is {name: version} of
    the registry packages in Cargo.lock (empty when the fetch failed).
    When no cargo >= 1.68 exists: returncode 127 and the reason."""
    project_dir = os.path.abspath(project_dir)
    cargo, why = find_cargo()
    if cargo is None:
        return ClientResult(["cargo", "fetch"], project_dir, 127, "", why + "\n", 0.0)
    cargo_project(project_dir, index_url, deps, retry, config)
    with _sandbox("sluice-cargo-") as box:
        home = os.path.join(box, "home")
        run_env = cargo_env(cargo, cargo_home or os.path.join(box, "cargo-home"), home, env)
        res = _run([cargo, "fetch"], project_dir, run_env, timeout)
        if res.ok and build:
            b = _run([cargo, "build", "--offline", "--target-dir", os.path.join(box, "target")],
                     project_dir, run_env, timeout)
            res = ClientResult(b.argv, project_dir, b.returncode, res.stdout + b.stdout,
                               res.stderr + b.stderr, res.elapsed + b.elapsed, b.timed_out)
    res.installed = parse_cargo_lock(project_dir) if res.ok else {}
    return res


# -------------------------------------------------------------------- maven

MAVEN_SYSTEM_REPO = "/usr/share/maven-repo"
MAVEN_DEPENDENCY_PLUGIN = "3.5.0"     # Debian's libmaven-dependency-plugin-java (bookworm)
# A short-lived JVM: C1 only and the serial GC start mvn about a third
# faster (a run is 3-5 s, mostly JVM start-up and plugin loading); nothing
# of Maven's HTTP behaviour changes.
MAVEN_OPTS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def maven_settings(repo_url: str) -> str:
    """settings.xml: every repository mirrored to repo_url, and a profile
    redefining `central` (and the plugin repository) with snapshots on and
    updatePolicy always, so snapshot metadata is asked for on every run."""
    repo = ("<id>central</id><url>%s</url>"
            "<releases><enabled>true</enabled><updatePolicy>always</updatePolicy></releases>"
            "<snapshots><enabled>true</enabled><updatePolicy>always</updatePolicy></snapshots>" % repo_url)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<settings>\n'
            '  <mirrors><mirror><id>sluice</id><mirrorOf>*</mirrorOf><url>%s</url></mirror></mirrors>\n'
            '  <profiles><profile><id>sluice</id>\n'
            '    <repositories><repository>%s</repository></repositories>\n'
            '    <pluginRepositories><pluginRepository>%s</pluginRepository></pluginRepositories>\n'
            '  </profile></profiles>\n'
            '  <activeProfiles><activeProfile>sluice</activeProfile></activeProfiles>\n'
            '</settings>\n' % (repo_url, repo, repo))


def maven_plugin_version(artifact_id: str = "maven-dependency-plugin") -> str:
    """The plugin's version in Debian's maven-repo (MAVEN_DEPENDENCY_PLUGIN
    when it cannot be read)."""
    d = os.path.join(MAVEN_SYSTEM_REPO, "org", "apache", "maven", "plugins", artifact_id)
    try:
        vs = [v for v in os.listdir(d) if re.match(r"^\d+(\.\d+)*$", v)]
    except OSError:
        vs = []
    return max(vs, key=lambda v: [int(x) for x in v.split(".")]) if vs else MAVEN_DEPENDENCY_PLUGIN


def maven_local_file(local_repo: str, coords: str, ext: str = "jar") -> str:
    """Where mvn puts g:a:v in a local repository (a -SNAPSHOT version under
    its non-timestamped name, beside the timestamped file)."""
    g, a, v = coords.split(":")[:3]
    return os.path.join(local_repo, *g.split("."), a, v, "%s-%s.%s" % (a, v, ext))


def mvn_get(repo_url: str, artifact: str, local_repo: Optional[str] = None, timeout: float = 180,
            extra_args=(), env: Optional[dict] = None, strict_checksums: bool = False,
            offline: bool = False, transitive: bool = False) -> ClientResult:
    """`mvn -B dependency:get -Dartifact=g:a:v` (the fully qualified Debian
    maven-dependency-plugin) with every repository mirrored to repo_url
    (maven_settings). local_repo: -Dmaven.repo.local (a fresh one in the
    sandbox when None, so everything, plugins included, is downloaded).
    strict_checksums: -C (a checksum mismatch fails; Maven's default only
    warns and downloads once more). transitive: also resolve the
    artifact's dependencies (from its pom). The result's .installed is
    {artifact: path of the jar in the local repository} when it is there
    (for RELEASE/LATEST: the one jar of that artifact; the path is gone
    once the run returns when local_repo was None)."""
    mvn = shutil.which("mvn")
    with _sandbox("sluice-mvn-") as box:
        home = os.path.join(box, "home")
        settings = os.path.join(box, "settings.xml")
        with open(settings, "w") as f:
            f.write(maven_settings(repo_url))
        local = os.path.abspath(local_repo) if local_repo else os.path.join(box, "m2")
        argv = [mvn or "mvn", "-B", "-s", settings, "-Dmaven.repo.local=" + local,
                "-Dstyle.color=never"]
        argv += ["-C"] if strict_checksums else []
        argv += ["-o"] if offline else []
        argv += list(extra_args)
        argv += ["org.apache.maven.plugins:maven-dependency-plugin:%s:get" % maven_plugin_version(),
                 "-Dartifact=" + artifact, "-Dtransitive=%s" % str(transitive).lower()]
        if mvn is None:
            return ClientResult(argv, box, 127, "", "mvn: not found on PATH (apt-get install maven)\n", 0.0)
        run_env = {k: v for k, v in _env(home, None).items()
                   if k not in ("MAVEN_OPTS", "MAVEN_ARGS", "MAVEN_CONFIG", "M2_HOME")}
        run_env["MAVEN_OPTS"] = MAVEN_OPTS
        run_env.update(env or {})
        res = _run(argv, box, run_env, timeout)
        jar = maven_local_file(local, artifact)
        if not os.path.isfile(jar):       # RELEASE, LATEST: the one version it resolved to
            g, a = artifact.split(":")[:2]
            found = glob.glob(os.path.join(local, *g.split("."), a, "*", "%s-*.jar" % a))
            jar = found[0] if len(found) == 1 else jar
        if res.ok and os.path.isfile(jar):
            res.installed = {artifact: jar}
        return res


# -------------------------------------------------------------------- tools


def tool_versions() -> dict:
    """{"node": ..., "npm": ..., "pnpm": ..., "pip": ..., "cargo": ...,
    "mvn": ...} of what is installed (None: missing; cargo: only one >=
    1.68 counts). pnpm's, pip's and mvn's are read from their metadata,
    which is much faster than starting them."""
    out = {}
    for name, argv in (("node", ["node", "--version"]), ("npm", ["npm", "--version"])):
        try:
            p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=60)
            out[name] = p.stdout.strip() if p.returncode == 0 else None
        except (OSError, subprocess.TimeoutExpired):
            out[name] = None
    try:
        with open(os.path.join(PNPM_DIR, "node_modules", "pnpm", "package.json")) as f:
            out["pnpm"] = json.load(f)["version"] if os.access(PNPM_BIN, os.X_OK) else None
    except (OSError, ValueError, KeyError):
        out["pnpm"] = None
    pips = glob.glob(os.path.join(PIP_VENV, "lib", "python*", "site-packages", "pip-*.dist-info"))
    out["pip"] = os.path.basename(pips[0])[4:-len(".dist-info")] if pips else None
    cargo = find_cargo()[0]
    v = _cargo_version(cargo) if cargo else None
    out["cargo"] = ".".join(map(str, v)) if v else None
    out["mvn"] = _mvn_version()
    return out


def _mvn_version() -> Optional[str]:
    """Maven's version from its install (Debian: /usr/share/maven), without
    starting a JVM; None when mvn is not on PATH."""
    mvn = shutil.which("mvn")
    if mvn is None:
        return None
    home = os.path.dirname(os.path.dirname(os.path.realpath(mvn)))
    try:
        with zipfile.ZipFile(glob.glob(os.path.join(home, "lib", "maven-core*.jar"))[0]) as z:
            props = z.read("META-INF/maven/org.apache.maven/maven-core/pom.properties").decode()
        return re.search(r"^version=(.+)$", props, re.M).group(1).strip()
    except (IndexError, OSError, KeyError, AttributeError, zipfile.BadZipFile):
        return "unknown"


def ensure_maven() -> str:
    """Check what the Maven e2e tests need: mvn, javac and Debian's
    maven-dependency-plugin (with junit4) in /usr/share/maven-repo. Returns
    mvn's version; raises RuntimeError naming the Debian packages to
    install (make test-deps installs them)."""
    missing = [t for t in ("mvn", "javac") if shutil.which(t) is None]
    plugin = os.path.join(MAVEN_SYSTEM_REPO, "org", "apache", "maven", "plugins", "maven-dependency-plugin")
    if not os.path.isdir(plugin):
        missing.append(plugin)
    if not os.path.isdir(os.path.join(MAVEN_SYSTEM_REPO, "junit", "junit")):
        missing.append("junit in " + MAVEN_SYSTEM_REPO)
    if missing:
        raise RuntimeError("missing %s (apt-get install maven default-jdk-headless "
                           "libmaven-dependency-plugin-java junit4)" % ", ".join(missing))
    return _mvn_version()


def ensure_tools() -> dict:
    """Install what is missing (pnpm; the pip venv) and return
    tool_versions(). Needs node and npm on PATH (and, on Debian, the
    python3-venv package); raises RuntimeError saying what is missing."""
    missing = [t for t in ("node", "npm") if shutil.which(t) is None]
    if missing:
        raise RuntimeError("not on PATH: %s (install Node.js 18+ with npm)" % ", ".join(missing))
    ensure_pnpm()
    ensure_pip_venv()
    return tool_versions()
