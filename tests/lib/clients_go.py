"""The real `go` command, run in a sandbox, for the end-to-end tests against
a GOPROXY (tests/lib/registry_go.py's GoProxy, directly or through the
edge). Like clients.py, every function returns a clients.ClientResult and
raises nothing for a failed command: the test decides what a failure means.

    from clients_go import ensure_go, go_download, go_command
    ensure_go()                                      # setUpClass: the version, or RuntimeError
    r = go_download(gp.base_url, proj, ["example.test/Hello@v1.0.0"], gosumdb=gp.gosumdb)
    assert r.ok, r
    r = go_command(gp.base_url, proj, ["list", "-m", "-versions", "example.test/Hello"],
                   gosumdb=gp.gosumdb)

Sandboxing: every run has its own GOPATH, GOCACHE and module cache
(GOMODCACHE; pass modcache= to share one between runs) in a temporary
directory, deleted afterwards (GOFLAGS=-modcacherw makes the module cache
deletable). Every GO* and CGO_* variable of the machine is dropped; then
GOPROXY=<url> (plain http:// works without GOINSECURE), GOSUMDB=<gosumdb>
(the fixture's "<name>+<hash>+<key>": go asks <url>/sumdb/<name>/supported
and then verifies every module through the proxy), GONOSUMDB, GONOPROXY,
GOPRIVATE and GOINSECURE unset, GO111MODULE=on, GOWORK=off, GOENV=off,
GOTOOLCHAIN=local (go 1.21+ only: 1.19 does not know it, and must not
fetch a toolchain anyway), HOME in the sandbox.

go has no retries (a 5xx or a refused connection fails the command at
once) and sends no conditional requests.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Optional

from clients import ClientResult, _env, _run, _sandbox

_GO_VERSION: Optional[tuple] = None


def go_version() -> Optional[tuple]:
    """(major, minor) of the go on PATH, None when there is none."""
    global _GO_VERSION
    if _GO_VERSION is None:
        go = shutil.which("go")
        if go is None:
            return None
        out = subprocess.run([go, "env", "GOVERSION"], stdout=subprocess.PIPE, text=True,
                             env=_go_env("/", {})).stdout
        m = re.match(r"go(\d+)\.(\d+)", out.strip())
        _GO_VERSION = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    return _GO_VERSION


def ensure_go() -> str:
    """"go1.19"-style version of the go on PATH; RuntimeError when missing
    (Debian: golang-go, and golang-golang-x-mod-dev for the fixture)."""
    v = go_version()
    if v is None:
        raise RuntimeError("go is not on PATH (Debian: apt-get install golang-go golang-golang-x-mod-dev)")
    return "go%d.%d" % v


def _go_env(home: str, extra: dict) -> dict:
    env = {k: v for k, v in _env(home, None).items() if not k.startswith(("GO", "CGO_"))}
    env.update(extra)
    return env


def _settings(box: str, goproxy_url: str, gosumdb: Optional[str], modcache: Optional[str]) -> dict:
    s = {"GOPROXY": goproxy_url.rstrip("/"), "GOPATH": os.path.join(box, "gopath"),
         "GOMODCACHE": modcache or os.path.join(box, "gopath", "pkg", "mod"),
         "GOCACHE": os.path.join(box, "gocache"), "GOFLAGS": "-modcacherw",
         "GO111MODULE": "on", "GOWORK": "off", "GOENV": "off"}
    if gosumdb is not None:
        s["GOSUMDB"] = gosumdb
    v = go_version()
    if v is not None and v >= (1, 21):
        s["GOTOOLCHAIN"] = "local"
    return s


def _requires(requires) -> list:
    """["mod@ver", ...] from a string, a list of "mod@ver" or of (mod, ver)."""
    if isinstance(requires, str):
        requires = [requires]
    return [r if isinstance(r, str) else "%s@%s" % tuple(r) for r in requires]


def write_project(project_dir: str, requires=(), module: str = "sluice.test/e2e") -> None:
    """go.mod requiring each "mod@ver", and main.go importing each module's
    root package (blank imports: a build compiles them all)."""
    reqs = _requires(requires)
    os.makedirs(project_dir, exist_ok=True)
    mod = "module %s\n\ngo 1.19\n" % module
    if reqs:
        mod += "\nrequire (\n%s)\n" % "".join("\t%s %s\n" % tuple(r.split("@", 1)) for r in reqs)
    with open(os.path.join(project_dir, "go.mod"), "w") as f:
        f.write(mod)
    imports = "".join('\t_ "%s"\n' % r.split("@", 1)[0] for r in reqs)
    with open(os.path.join(project_dir, "main.go"), "w") as f:
        f.write("package main\n\n%sfunc main() {}\n" % ("import (\n%s)\n\n" % imports if imports else ""))


def go_command(goproxy_url: str, project_dir: str, args, gosumdb: Optional[str] = None,
               modcache: Optional[str] = None, env: Optional[dict] = None,
               timeout: float = 120) -> ClientResult:
    """`go <args>` in project_dir, sandboxed (see the module doc)."""
    return _go([list(args)], goproxy_url, project_dir, gosumdb, modcache, env, timeout)


def go_download(goproxy_url: str, project_dir: str, requires, gosumdb: Optional[str] = None,
                build: bool = True, modcache: Optional[str] = None, env: Optional[dict] = None,
                timeout: float = 120) -> ClientResult:
    """A project requiring `requires` ("mod@ver" each) written to
    project_dir, then `go mod tidy` (adds the indirect requirements and
    every go.sum line: since Go 1.17 a bare `go mod download` neither
    fetches the dependencies of a pruned module graph nor records their
    sums, and `go build` then fails on "missing go.sum entry"), `go mod
    download -x all` (every module of the build list; each one go accepts
    was verified through the checksum database) and, with build=True,
    `go build` of the main package, which imports every required module.
    The result joins the commands (argv, output, time); returncode is the
    first failure's, and the commands after a failure do not run."""
    project_dir = os.path.abspath(project_dir)
    write_project(project_dir, requires)
    cmds = [["mod", "tidy"], ["mod", "download", "-x", "all"]]
    if build:
        cmds.append(["build", "-o", os.devnull, "."])
    return _go(cmds, goproxy_url, project_dir, gosumdb, modcache, env, timeout)


def _go(cmds: list, goproxy_url, project_dir, gosumdb, modcache, env, timeout) -> ClientResult:
    go = shutil.which("go")
    project_dir = os.path.abspath(project_dir)
    os.makedirs(project_dir, exist_ok=True)
    if go is None:
        return ClientResult(["go"] + cmds[0], project_dir, 127, "", "go: not found on PATH\n", 0.0)
    with _sandbox("sluice-go-") as box:
        extra = _settings(box, goproxy_url, gosumdb, modcache)
        extra.update(env or {})
        genv = _go_env(os.path.join(box, "home"), extra)
        total = None
        for cmd in cmds:
            r = _run([go] + cmd, project_dir, genv, timeout)
            if total is None:
                total = r
            else:
                total.argv += ["&&", go] + cmd
                total.stdout += r.stdout
                total.stderr += r.stderr
                total.elapsed += r.elapsed
                total.returncode, total.timed_out = r.returncode, r.timed_out
            if not r.ok:
                break
        return total
