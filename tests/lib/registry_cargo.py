"""An offline Cargo registry for the end-to-end tests: a sparse index and
its .crate downloads, built by the test with the real `cargo package`,
served on 127.0.0.1 with the fault knobs of registry_http.Fixture. The real
cargo (tests/lib/clients.py cargo_fetch) fetches from it, directly or
through the edge.

    from registry_cargo import CargoRegistry
    with CargoRegistry(tmp) as reg:               # serves at once; stop() on exit
        reg.add_crate("demo-b", "0.1.0")
        reg.add_crate("demo-a", "0.1.0", deps={"demo-b": "0.1"})
        # cargo fetch with registry = "sparse+" + reg.index_url

CargoRegistry(root_dir, dl_form="crate", port=None)
    add_crate(name, version, deps=None, yanked=False)
        A real .crate: `cargo package --offline --no-verify` of a tiny lib
        crate (src/lib.rs with `pub fn hello()` and `VERSION`) whose
        dependencies (deps: {name: requirement}) resolve against a local
        registry holding this fixture's crates, so add dependencies first.
        Built crates are kept for the whole test process (same arguments
        and dependency checksums -> the same bytes, no second cargo run).
        Written under root_dir/crates/<name>/, and the version's line
        appended to the index file at once. Returns a CargoCrate (name,
        version, cksum, file, url_path, ...).
    Routes (.base_url; .index_url = base_url + "/index/", what cargo's
    "sparse+" URL names):
    GET /index/config.json -> {"dl": ..., "api": base_url}; dl_form="crate":
        dl = base_url/crates/{crate}/{crate}-{version}.crate; dl_form=
        "download": dl = base_url/api/v1/crates (no marker: cargo appends
        /{crate}/{version}/download, as for crates.io).
    GET /index/1/<n>, /index/2/<n>, /index/3/<c>/<n>, /index/<ab>/<cd>/<n>
        (the lower-cased name) -> one JSON line per version (name, vers,
        deps, cksum = sha256 of the .crate, features, yanked, links, v),
        text/plain, strong ETag, Last-Modified; If-None-Match /
        If-Modified-Since -> 304. Unknown crates (or a name at the wrong
        path) -> 404, which cargo reads as "no such crate".
    GET /crates/<n>/<n>-<v>.crate and /api/v1/crates/<n>/<v>/download (both
        forms whatever dl_form says) -> the .crate (application/gzip,
        ETag, immutable Cache-Control, 304 on conditionals).
    Every other path or method -> 404 {"errors":[{"detail":"Not Found"}]}.
    corrupt(name, version) / uncorrupt(name, version): serve that .crate
        with bytes flipped (the same length) while the index keeps the
        true cksum, as a cache that stored a damaged copy would.
    For assertions: crate(name, version) -> CargoCrate, index_path(name),
    index_bytes(name), etag(name), dl_path(name, version) (the path the
    published dl gives), config().
Knobs and records: registry_http.Fixture (set_status, set_refuse,
set_rate, clear_faults, requests, request_log, conditional_requests,
reset_log), one listener, "registry".
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from typing import Optional
from urllib.parse import unquote

from registry_http import Response, SingleListenerFixture, flip_bytes, http_date, not_modified, strong_etag

CLOCK_START = 1704067200.0        # 2024-01-01T00:00:00Z, as registry.py
CRATE_MTIME = 1577836800          # 2020-01-01: the sources' mtime, so cargo package is repeatable


@dataclass
class CargoCrate:
    name: str
    version: str
    deps: dict               # {name: requirement}
    cksum: str               # sha256 hex of the .crate
    size: int
    file: str                # the .crate on disk
    published: float
    yanked: bool = False
    index_line: dict = field(default_factory=dict)

    @property
    def filename(self) -> str:
        return "%s-%s.crate" % (self.name, self.version)


def index_path(name: str) -> str:
    """The sparse index path of a crate (no leading /index)."""
    n = name.lower()
    if len(n) <= 2:
        return "/%d/%s" % (len(n), n)
    if len(n) == 3:
        return "/3/%s/%s" % (n[0], n)
    return "/%s/%s/%s" % (n[:2], n[2:4], n)


# ------------------------------------------------------------------ building

_BUILT: dict = {}                 # cache key -> .crate bytes, for the whole process
_BUILD_LOCK = threading.Lock()


def build_crate(name: str, version: str, deps: dict, dep_crates: list) -> bytes:
    """The bytes of `cargo package --offline --no-verify` of a tiny lib
    crate. dep_crates: the CargoCrates its dependencies may resolve to (a
    local registry is made of them). Cached per process."""
    key = (name, version, tuple(sorted(deps.items())), tuple(sorted(c.cksum for c in dep_crates)))
    with _BUILD_LOCK:
        if key not in _BUILT:
            _BUILT[key] = _cargo_package(name, version, deps, dep_crates)
        return _BUILT[key]


def _cargo_package(name, version, deps, dep_crates) -> bytes:
    from clients import cargo_env, find_cargo     # the tool lookup lives with the clients
    cargo, why = find_cargo()
    if cargo is None:
        raise RuntimeError("cannot build crates: %s" % why)
    work = tempfile.mkdtemp(prefix="sluice-crate-")
    try:
        proj = os.path.join(work, "src-" + name)
        os.makedirs(os.path.join(proj, "src"))
        dep_lines = "".join('%s = "%s"\n' % (d, req) for d, req in sorted(deps.items()))
        _write_text(os.path.join(proj, "Cargo.toml"),
                    '[package]\nname = "%s"\nversion = "%s"\nedition = "2021"\n'
                    'description = "Sluice test crate %s"\nlicense = "MIT"\n'
                    'repository = "https://example.invalid/%s"\n\n[dependencies]\n%s'
                    % (name, version, name, name, dep_lines))
        uses = "".join("pub use %s;\n" % d.replace("-", "_") for d in sorted(deps))
        _write_text(os.path.join(proj, "src", "lib.rs"),
                    '%spub const VERSION: &str = "%s";\n\npub fn hello() -> &\'static str {\n'
                    '    "hello from %s %s"\n}\n' % (uses, version, name, version))
        local = os.path.join(work, "local-registry")
        _local_registry(local, dep_crates)
        os.makedirs(os.path.join(proj, ".cargo"))
        _write_text(os.path.join(proj, ".cargo", "config.toml"),
                    '[source.crates-io]\nreplace-with = "sluice-local"\n\n'
                    '[source.sluice-local]\nlocal-registry = "%s"\n' % local)
        for dirpath, _, files in os.walk(proj):
            for f in files + ["."]:
                os.utime(os.path.join(dirpath, f), (CRATE_MTIME, CRATE_MTIME))
        env = cargo_env(cargo, os.path.join(work, "cargo-home"))
        p = subprocess.run([cargo, "package", "--offline", "--allow-dirty", "--no-verify", "--quiet"],
                           cwd=proj, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=120)
        out = os.path.join(proj, "target", "package", "%s-%s.crate" % (name, version))
        if p.returncode != 0 or not os.path.isfile(out):
            raise RuntimeError("cargo package %s %s failed:\n%s" % (name, version, p.stdout[-4000:]))
        with open(out, "rb") as f:
            return f.read()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _local_registry(root: str, crates: list) -> None:
    """A cargo local-registry: index/<path> lines and <name>-<version>.crate."""
    lines: dict = {}
    for c in crates:
        shutil.copyfile(c.file, os.path.join(_mkdir(root), c.filename))
        lines.setdefault(c.name, []).append(json.dumps(c.index_line))
    _mkdir(os.path.join(root, "index"))
    for name, ls in lines.items():
        _write_text(os.path.join(root, "index") + index_path(name), "\n".join(ls) + "\n")


def _mkdir(d: str) -> str:
    os.makedirs(d, exist_ok=True)
    return d


def _write_text(path: str, text: str) -> None:
    _mkdir(os.path.dirname(path))
    with open(path, "w") as f:
        f.write(text)


def _write(path: str, data: bytes) -> None:
    _mkdir(os.path.dirname(path))
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


# ------------------------------------------------------------------- fixture


class CargoRegistry(SingleListenerFixture):
    def __init__(self, root_dir: str, dl_form: str = "crate", port: Optional[int] = None):
        super().__init__("registry", port)
        if dl_form not in ("crate", "download"):
            raise ValueError("dl_form must be 'crate' or 'download', not %r" % (dl_form,))
        self.root_dir = root_dir
        os.makedirs(root_dir, exist_ok=True)
        self.dl_form = dl_form
        self._crates: dict = {}        # lower-cased name -> {version: CargoCrate}
        self._corrupt: set = set()     # (name, version)
        self._index: dict = {}         # lower-cased name -> (bytes, etag, mtime)
        self._now = CLOCK_START

    # ------------------------------------------------------------- urls

    @property
    def index_url(self) -> str:
        """What cargo's registry = "sparse+..." names (final slash required)."""
        return self.base_url + "/index/"

    def config(self) -> dict:
        if self.dl_form == "crate":
            dl = self.base_url + "/crates/{crate}/{crate}-{version}.crate"
        else:
            dl = self.base_url + "/api/v1/crates"
        return {"dl": dl, "api": self.base_url}

    def dl_path(self, name: str, version: str) -> str:
        """The path cargo downloads this version from, as config.json's dl gives it."""
        if self.dl_form == "crate":
            return "/crates/%s/%s-%s.crate" % (name, name, version)
        return "/api/v1/crates/%s/%s/download" % (name, version)

    @staticmethod
    def index_path(name: str) -> str:
        """/index/... of a crate's index file."""
        return "/index" + index_path(name)

    # -------------------------------------------------------- publishing
    def add_crate(self, name: str, version: str, deps: Optional[dict] = None,
                  yanked: bool = False) -> CargoCrate:
        """Build (or reuse) the .crate and publish the version (module doc)."""
        deps = dict(deps or {})
        with self._lock:
            missing = [d for d in deps if d.lower() not in self._crates]
            dep_crates = [c for d in deps for c in self._crates.get(d.lower(), {}).values()]
        if missing:
            raise ValueError("add the dependencies first: %s" % ", ".join(missing))
        data = build_crate(name, version, deps, dep_crates)
        disk = os.path.join(self.root_dir, "crates", name, "%s-%s.crate" % (name, version))
        _write(disk, data)
        cksum = hashlib.sha256(data).hexdigest()
        line = {"name": name, "vers": version,
                "deps": [{"name": d, "req": req, "features": [], "optional": False,
                          "default_features": True, "target": None, "kind": "normal"}
                         for d, req in sorted(deps.items())],
                "cksum": cksum, "features": {}, "yanked": yanked, "links": None, "v": 2}
        with self._lock:
            self._now += 60
            crate = CargoCrate(name, version, deps, cksum, len(data), disk, self._now, yanked, line)
            self._crates.setdefault(name.lower(), {})[version] = crate
            self._index.pop(name.lower(), None)
            return crate

    def corrupt(self, name: str, version: str) -> None:
        """Serve this .crate with flipped bytes; the index keeps the true cksum."""
        self.crate(name, version)
        with self._lock:
            self._corrupt.add((name.lower(), version))

    def uncorrupt(self, name: str, version: str) -> None:
        with self._lock:
            self._corrupt.discard((name.lower(), version))

    # ---------------------------------------------------------- documents
    def crate(self, name: str, version: str) -> CargoCrate:
        with self._lock:
            return self._crates[name.lower()][version]

    def index_bytes(self, name: str) -> bytes:
        return self._index_doc(name.lower())[0]

    def etag(self, name: str) -> str:
        return self._index_doc(name.lower())[1]

    def _index_doc(self, lname: str) -> tuple:
        with self._lock:
            hit = self._index.get(lname)
            if hit is None:
                versions = self._crates[lname].values()
                body = "".join(json.dumps(c.index_line, separators=(",", ":")) + "\n" for c in versions).encode()
                hit = self._index[lname] = (body, strong_etag(body), max(c.published for c in versions))
            return hit

    # ------------------------------------------------------------- routes
    @staticmethod
    def _not_found() -> Response:
        return Response(404, [("Content-Type", "application/json")],
                        b'{"errors":[{"detail":"Not Found"}]}')

    def _route(self, listener, method, path, target, headers) -> Response:
        if method not in ("GET", "HEAD"):
            return self._not_found()
        p = unquote(path)
        if p == "/index/config.json":
            body = json.dumps(self.config(), indent=2).encode()
            return self._document(body, strong_etag(body), CLOCK_START, "application/json", headers)
        if p.startswith("/index/"):
            name = p.rsplit("/", 1)[1]
            with self._lock:
                if name != name.lower() or name not in self._crates or p != self.index_path(name):
                    return self._not_found()
                body, etag, mtime = self._index_doc(name)
            return self._document(body, etag, mtime, "text/plain", headers)
        parts = p.split("/")
        if len(parts) == 4 and parts[1] == "crates" and parts[3].startswith(parts[2] + "-") \
                and parts[3].endswith(".crate"):
            return self._crate_file(parts[2], parts[3][len(parts[2]) + 1:-len(".crate")], headers)
        if len(parts) == 7 and parts[1:4] == ["api", "v1", "crates"] and parts[6] == "download":
            return self._crate_file(parts[4], parts[5], headers)
        return self._not_found()

    @staticmethod
    def _document(body, etag, mtime, ctype, headers) -> Response:
        hs = [("ETag", etag), ("Last-Modified", http_date(mtime)), ("Cache-Control", "public, max-age=600")]
        if not_modified(headers, etag, mtime):
            return Response(304, hs)
        return Response(200, [("Content-Type", ctype)] + hs, body)

    def _crate_file(self, name: str, version: str, headers) -> Response:
        with self._lock:
            c = self._crates.get(name.lower(), {}).get(version)
            bad = (name.lower(), version) in self._corrupt
        if c is None or c.name != name:
            return self._not_found()
        etag = '"%s"' % c.cksum[:32]
        hs = [("ETag", etag), ("Last-Modified", http_date(c.published)),
              ("Cache-Control", "public, max-age=31536000, immutable")]
        if not_modified(headers, etag, c.published):
            return Response(304, hs)
        if bad:
            with open(c.file, "rb") as f:
                return Response(200, [("Content-Type", "application/gzip")] + hs, flip_bytes(f.read()))
        return Response(200, [("Content-Type", "application/gzip")] + hs, file=c.file)
