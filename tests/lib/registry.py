"""Offline package registries for the end-to-end tests: an npm registry and a
PyPI simple index with its files host, built by the test, served on
127.0.0.1, with fault knobs. The real clients (tests/lib/clients.py: npm,
pnpm, pip) install from them, directly or through the edge.

    from registry import NpmRegistry, PypiIndex
    with NpmRegistry(tmp) as npm:                 # serves at once; stop() on exit
        npm.add_package("demo-b", "1.0.0")
        npm.add_package("demo-a", "1.0.0", deps={"demo-b": "^1.0.0"})
        npm.add_package("@demo/c", "2.0.0", size=200_000)
        # npm install --registry npm.base_url/ demo-a @demo/c
    with PypiIndex(tmp) as pypi:
        pypi.add_wheel("demo-b", "1.1")
        pypi.add_wheel("demo-a", "1.0", requires=["demo-b>=1.0"])
        pypi.add_sdist("demo-c", "1.0")
        # pip install --index-url pypi.index_url demo-a demo-c

Where the parts live: registry.py (this: NpmRegistry, PypiIndex, their
documents and routes), registry_http.py (listeners, knobs, request log),
registry_build.py (tarballs, wheels, sdists). The Cargo and Maven fixtures,
on the same knobs, are registry_cargo.py (CargoRegistry) and
registry_maven.py (MavenRepo).

NpmRegistry(root_dir, tarball_base=None, port=None)
    add_package(name, version, deps=None, files=None, size=None, tag="latest")
        A real tarball (package/package.json + files, as npm pack makes it)
        written under root_dir, and the version added to the packument
        (dist-tags[tag] moves to it). Scoped names ("@demo/c") work. size:
        pad the tarball to about that many bytes (incompressible). Returns
        an NpmVersion (url_path, file, shasum, integrity, size, ...).
    bulk_packument(name, versions=1000, readme_bytes=21_000)
        A packument of at least versions * readme_bytes bytes (default: over
        20 MB): every version carries a long readme and description; only
        the latest version (the last) has a tarball. Returns its NpmVersion.
    Routes: GET /<name>, /@scope%2fname, /@scope/name -> the full packument
    (application/json), or the abbreviated "corgi" one when Accept names
    application/vnd.npm.install-v1+json (that Content-Type, its own ETag).
    GET /<name>/<version|tag> -> one version's manifest. Tarballs at
    /<name>/-/<base>-<ver>.tgz (application/octet-stream). Strong ETags,
    Last-Modified, Cache-Control, Vary: Accept; If-None-Match /
    If-Modified-Since -> 304. Unknown names, /-/... endpoints and every
    non-GET -> 404 {"error":"Not found"}.
    dist.tarball is absolute: tarball_base (default base_url) + the path.
    Point tarball_base elsewhere (constructor, or set .tarball_base while
    serving) to prove a cache rewrites it. .registry_url is base_url + "/".
    For assertions: tarball_path(name, ver), tarball_url(name, ver),
    versions(name) -> {ver: NpmVersion}, package_names(),
    packument(name, corgi=False) / packument_bytes(...) / etag(...). Published
    times come from a fixed clock (2024-01-01 plus a minute a publish), so
    documents and ETags are the same on every run.

PypiIndex(root_dir, files_base=None, core_metadata=False, serve_json=True,
          port=None, files_port=None)
    add_wheel(project, version, requires=(), size=None, requires_python=">=3.7")
    add_sdist(project, version, requires=(), backend="intree")
        Real files (registry_build) under root_dir/packages/<2hex>/<2hex>/<60hex>/,
        the path files.pythonhosted.org would give them (blake2b-256 of the
        file). Returns a PypiFile (url_path, file, sha256, size, ...). The
        sdist builds offline with its in-tree backend, with or without
        build isolation; backend="setuptools" needs `wheel` in the build env.
    Index routes (.base_url, .index_url = base_url + "/simple/"):
    GET /simple/ (every project), GET /simple/<normalized>/ -> PEP 503 HTML
    (text/html) or, when Accept prefers application/vnd.pypi.simple.v1+json
    (or ?format= names it), PEP 691 JSON (api-version 1.1) in that type.
    Strong ETags per representation, Last-Modified, Vary: Accept,
    X-PyPI-Last-Serial, 304 on conditionals. A name that is not normalised,
    or lacks the final slash, -> 301 to /simple/<normalized>/. Unknown -> 404.
    File links: files_base (default: this object's files server,
    .files_base_url) + /packages/...; files_base="relative": links
    ../../packages/... and the index serves the files itself (no files
    server). core_metadata=True also advertises and serves PEP 658/714
    <file>.metadata for wheels. serve_json=False (settable while serving):
    HTML whatever Accept says, like a static index. Non-GET -> 405.
    For assertions: files(project) -> [PypiFile], projects(), file_url(f),
    page_bytes(project=None, fmt="html"|"json"), etag(project, fmt).

Knobs and records, the same on both (registry_http.Fixture), thread-safe and
usable while serving:
    start()/stop(), context manager; .port, .base_url (no final slash)
    set_status(code, count=None, retry_after=None, match=None, only=None)
        every GET/HEAD answers `code` until set_status(None), or for the
        next `count` requests; match: one path or a compiled regex; only:
        one listener ("registry"; "index" or "files")
    set_refuse(True/False, only=None)   close / reopen the listening socket
        on the same port (closing also drops the open connections)
    clear_faults()
    requests(path=None, method="GET") -> int   path: exact path or target (also
        compared percent-decoded: "/@demo/c" counts "/@demo%2fc"), or a
        compiled regex searched in the target; method=None: any
    request_log() -> [LoggedRequest(method, target, path, headers, listener, time, status)]
    conditional_requests(path=None) -> [LoggedRequest] with If-None-Match or If-Modified-Since
    reset_log()
Publishing (add_package, add_wheel, ...) while serving updates the documents
and their ETags and Last-Modified at once.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import threading
from dataclasses import dataclass
from typing import Optional
from urllib.parse import parse_qs, quote, unquote, urlsplit

import registry_build as rb
from registry_http import (Fixture, LoggedRequest, SingleListenerFixture, Response, accept_q, http_date,  # noqa: F401
                           iso_time, not_modified, strong_etag)

CLOCK_START = 1704067200.0        # 2024-01-01T00:00:00Z
CORGI = "application/vnd.npm.install-v1+json"
PYPI_JSON = "application/vnd.pypi.simple.v1+json"
PYPI_HTML = "application/vnd.pypi.simple.v1+html"
NPM_USER = {"name": "sluice-test", "email": "test@sluice.invalid"}


def _write(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _json_bytes(doc) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


class _Clock:
    """Publish times: fixed start, one minute per publish (deterministic,
    and Last-Modified always moves forward)."""

    def __init__(self):
        self.now = CLOCK_START

    def tick(self) -> float:
        self.now += 60
        return self.now


# ====================================================================== npm


@dataclass
class NpmVersion:
    name: str
    version: str
    url_path: str        # /<name>/-/<base>-<ver>.tgz
    file: Optional[str]  # the tarball on disk (None for bulk filler versions)
    shasum: str          # sha1 hex
    integrity: str       # sha512 SRI
    size: int            # tarball bytes
    published: float     # unix time of the publish (the fixed clock)

    @property
    def filename(self) -> str:
        return self.url_path.rsplit("/", 1)[1]


class _NpmPackage:
    def __init__(self, name: str, created: float):
        self.name = name
        self.created = self.modified = created
        self.manifests: dict = {}      # version -> manifest without dist.tarball
        self.infos: dict = {}          # version -> NpmVersion
        self.tags: dict = {}
        self.readme = ""
        self.description = ""
        self.revision = 0


class NpmRegistry(SingleListenerFixture):
    def __init__(self, root_dir: str, tarball_base: Optional[str] = None, port: Optional[int] = None):
        super().__init__("registry", port)
        self.root_dir = root_dir
        os.makedirs(root_dir, exist_ok=True)
        self._tarball_base = tarball_base.rstrip("/") if tarball_base else None
        self._pkgs: dict = {}
        self._tarballs: dict = {}     # url path -> NpmVersion
        self._docs: dict = {}         # (name, corgi) -> (bytes, etag)
        self._clock = _Clock()

    # ------------------------------------------------------------- urls

    @property
    def registry_url(self) -> str:
        """base_url with the final slash npm configs usually carry."""
        return self.base_url + "/"

    @property
    def tarball_base(self) -> str:
        return self._tarball_base or self.base_url

    @tarball_base.setter
    def tarball_base(self, value: Optional[str]) -> None:
        with self._lock:
            self._tarball_base = value.rstrip("/") if value else None
            self._docs.clear()

    def _port_changed(self) -> None:
        with self._lock:
            self._docs.clear()

    def tarball_url(self, name: str, version: str) -> str:
        with self._lock:
            return self.tarball_base + self._pkgs[name].infos[version].url_path

    @staticmethod
    def tarball_path(name: str, version: str) -> str:
        return "/%s/-/%s-%s.tgz" % (name, name.split("/")[-1], version)

    # -------------------------------------------------------- publishing
    def add_package(self, name: str, version: str, deps: Optional[dict] = None,
                    files: Optional[dict] = None, size: Optional[int] = None,
                    tag: str = "latest") -> NpmVersion:
        """Make the tarball and publish the version (see the module doc)."""
        deps = dict(deps or {})
        pj = {"name": name, "version": version,
              "description": "Sluice test package %s" % name,
              "main": "index.js", "license": "MIT", "dependencies": deps}
        if files is None:
            files = {"index.js": "module.exports = %s;\n" % json.dumps({"name": name, "version": version}),
                     "README.md": "# %s\n\nVersion %s, made by the Sluice tests.\n" % (name, version)}
        data = rb.npm_tarball(pj, files, size)
        count, unpacked = rb.npm_unpacked(files, pj)
        url_path = self.tarball_path(name, version)
        disk = os.path.join(self.root_dir, url_path.lstrip("/"))
        _write(disk, data)
        return self._publish(name, version, pj, data, disk, url_path, count, unpacked, tag,
                             readme=files.get("README.md") if isinstance(files.get("README.md"), str) else None)

    def _publish(self, name, version, pj, data, disk, url_path, count, unpacked, tag,
                 readme=None, extra=None) -> NpmVersion:
        with self._lock:
            when = self._clock.tick()
            pkg = self._pkgs.get(name) or _NpmPackage(name, when)
            self._pkgs[name] = pkg
            info = NpmVersion(name, version, url_path, disk, rb.sha1_hex(data), rb.sha512_sri(data),
                              len(data), when)
            manifest = dict(pj)
            manifest.update({
                "keywords": ["sluice", "test"], "author": {"name": "Sluice tests"},
                "repository": {"type": "git", "url": "git+https://example.invalid/%s.git" % name},
                "_id": "%s@%s" % (name, version), "_nodeVersion": "20.20.2", "_npmVersion": "11.19.1",
                "_npmUser": dict(NPM_USER), "maintainers": [dict(NPM_USER)], "directories": {},
                "_hasShrinkwrap": False,
                "dist": {"shasum": info.shasum, "integrity": info.integrity,
                         "fileCount": count, "unpackedSize": unpacked},
            })
            manifest.update(extra or {})
            pkg.manifests[version] = manifest
            pkg.infos[version] = info
            pkg.tags[tag] = version
            pkg.modified = when
            pkg.revision += 1
            pkg.description = pj.get("description", "")
            if readme is not None:
                pkg.readme = readme
            if disk:
                self._tarballs[url_path] = info
            self._docs.pop((name, False), None)
            self._docs.pop((name, True), None)
            return info

    def bulk_packument(self, name: str, versions: int = 1000, readme_bytes: int = 21_000) -> NpmVersion:
        """A huge packument: `versions` versions, each with a readme of
        `readme_bytes` and a long description; the last one (the latest) is
        a real, installable tarball. Default size: over 20 MB."""
        with self._lock:
            for i in range(versions - 1):
                ver = "1.%d.%d" % (i // 100, i % 100)
                pj = {"name": name, "version": ver, "main": "index.js", "license": "MIT",
                      "description": rb.long_text("%s %s description" % (name, ver), 400)[:400],
                      "dependencies": {}}
                fake = ("%s@%s" % (name, ver)).encode()    # well-formed, never fetched
                self._publish(name, ver, pj, fake, None, self.tarball_path(name, ver), 2, 1000, "latest",
                              extra={"readme": rb.long_text("%s %s" % (name, ver), readme_bytes),
                                     "readmeFilename": "README.md"})
            last = "2.0.0"
            readme = rb.long_text("%s %s" % (name, last), readme_bytes)
            return self.add_package(name, last, files={"index.js": "module.exports = 'bulk';\n",
                                                       "README.md": readme})

    # ---------------------------------------------------------- documents
    def package_names(self) -> list:
        with self._lock:
            return sorted(self._pkgs)

    def versions(self, name: str) -> dict:
        """{version: NpmVersion} of a package, in publish order."""
        with self._lock:
            return dict(self._pkgs[name].infos)

    def packument(self, name: str, corgi: bool = False) -> dict:
        return json.loads(self.packument_bytes(name, corgi))

    def packument_bytes(self, name: str, corgi: bool = False) -> bytes:
        return self._doc(name, corgi)[0]

    def etag(self, name: str, corgi: bool = False) -> str:
        return self._doc(name, corgi)[1]

    def _doc(self, name: str, corgi: bool) -> tuple:
        with self._lock:
            hit = self._docs.get((name, corgi))
            if hit is None:
                pkg = self._pkgs[name]
                body = _json_bytes(self._render_corgi(pkg) if corgi else self._render_full(pkg))
                hit = self._docs[(name, corgi)] = (body, strong_etag(body))
            return hit

    def _dist(self, pkg: _NpmPackage, ver: str) -> dict:
        dist = dict(pkg.manifests[ver]["dist"])
        dist["tarball"] = self.tarball_base + pkg.infos[ver].url_path
        return dist

    def _render_full(self, pkg: _NpmPackage) -> dict:
        versions = {}
        for ver, m in pkg.manifests.items():
            m = dict(m)
            m["dist"] = self._dist(pkg, ver)
            versions[ver] = m
        times = {"created": iso_time(pkg.created), "modified": iso_time(pkg.modified)}
        times.update({v: iso_time(i.published) for v, i in pkg.infos.items()})
        return {
            "_id": pkg.name, "_rev": "%d-%s" % (pkg.revision, hashlib.md5(pkg.name.encode()).hexdigest()),
            "name": pkg.name, "description": pkg.description, "dist-tags": dict(pkg.tags),
            "versions": versions, "time": times, "maintainers": [dict(NPM_USER)],
            "author": {"name": "Sluice tests"}, "license": "MIT",
            "repository": {"type": "git", "url": "git+https://example.invalid/%s.git" % pkg.name},
            "homepage": "https://example.invalid/%s#readme" % pkg.name,
            "bugs": {"url": "https://example.invalid/%s/issues" % pkg.name},
            "keywords": ["sluice", "test"], "readme": pkg.readme, "readmeFilename": "README.md",
            "users": {},
        }

    def _render_corgi(self, pkg: _NpmPackage) -> dict:
        versions = {}
        for ver, m in pkg.manifests.items():
            d = self._dist(pkg, ver)
            versions[ver] = {"name": pkg.name, "version": ver, "dependencies": dict(m.get("dependencies") or {}),
                             "dist": {k: d[k] for k in ("tarball", "shasum", "integrity", "fileCount",
                                                        "unpackedSize")}}
        return {"name": pkg.name, "dist-tags": dict(pkg.tags), "modified": iso_time(pkg.modified),
                "versions": versions}

    # ------------------------------------------------------------- routes
    def _fault_body(self, status: int) -> bytes:
        return _json_bytes({"error": "injected %d" % status})

    def _fault_type(self) -> str:
        return "application/json"

    @staticmethod
    def _not_found(what: str = "Not found") -> Response:
        return Response(404, [("Content-Type", "application/json")], _json_bytes({"error": what}))

    def _route(self, listener, method, path, target, headers) -> Response:
        if method not in ("GET", "HEAD"):
            return self._not_found()
        p = unquote(path)
        if p == "/" or p.startswith("/-/") or p == "/-":
            return self._not_found()
        if "/-/" in p:
            with self._lock:
                info = self._tarballs.get(p)
            return self._tarball(info, headers) if info else self._not_found()
        parts = p[1:].split("/")
        n = 2 if parts[0].startswith("@") else 1
        name, rest = "/".join(parts[:n]), parts[n:]
        with self._lock:
            pkg = self._pkgs.get(name)
            if pkg is None or len(rest) > 1 or (rest and not rest[0]):
                return self._not_found()
            if rest:
                ver = pkg.tags.get(rest[0], rest[0])
                if ver not in pkg.manifests:
                    return self._not_found("version not found: %s" % rest[0])
                m = dict(pkg.manifests[ver])
                m["dist"] = self._dist(pkg, ver)
                body, mtime = _json_bytes(m), pkg.infos[ver].published
                return self._document(body, strong_etag(body), mtime, "application/json", headers)
            corgi = accept_q(headers.get("Accept"), CORGI) > 0
            body, etag = self._doc(name, corgi)
            mtime = pkg.modified
        return self._document(body, etag, mtime, CORGI if corgi else "application/json", headers)

    @staticmethod
    def _document(body, etag, mtime, ctype, headers) -> Response:
        hs = [("ETag", etag), ("Last-Modified", http_date(mtime)),
              ("Cache-Control", "public, max-age=300"), ("Vary", "Accept")]
        if not_modified(headers, etag, mtime):
            return Response(304, hs)
        return Response(200, [("Content-Type", ctype)] + hs, body)

    @staticmethod
    def _tarball(info: NpmVersion, headers) -> Response:
        etag = '"%s"' % info.shasum
        hs = [("ETag", etag), ("Last-Modified", http_date(info.published)),
              ("Cache-Control", "public, immutable, max-age=31557600")]
        if not_modified(headers, etag, info.published):
            return Response(304, hs)
        return Response(200, [("Content-Type", "application/octet-stream")] + hs, file=info.file)


# ===================================================================== PyPI


@dataclass
class PypiFile:
    project: str          # as given
    version: str
    filename: str
    url_path: str         # /packages/<2hex>/<2hex>/<60hex>/<filename>
    file: str             # on disk
    sha256: str
    size: int
    kind: str             # "wheel" | "sdist"
    requires_python: Optional[str]
    uploaded: float
    metadata: Optional[bytes] = None   # core metadata (wheels)

    @property
    def metadata_sha256(self) -> Optional[str]:
        return hashlib.sha256(self.metadata).hexdigest() if self.metadata is not None else None


class _Project:
    def __init__(self, name: str):
        self.name = name
        self.files: list = []
        self.modified = CLOCK_START
        self.serial = 0


class PypiIndex(Fixture):
    def __init__(self, root_dir: str, files_base: Optional[str] = None, core_metadata: bool = False,
                 port: Optional[int] = None, files_port: Optional[int] = None, serve_json: bool = True):
        super().__init__()
        self.serve_json = serve_json      # False: HTML whatever Accept says (a static index)
        self.root_dir = root_dir
        os.makedirs(root_dir, exist_ok=True)
        self.core_metadata = core_metadata
        self._relative = files_base == "relative"
        self._files_base = None if self._relative or not files_base else files_base.rstrip("/")
        self._index = self._add_listener("index", port)
        self._filesl = None if self._relative else self._add_listener("files", files_port)
        self._projects: dict = {}
        self._by_path: dict = {}      # url path -> PypiFile
        self._docs: dict = {}         # (normalized or "", "json"|"html") -> (bytes, etag)
        self._clock = _Clock()
        self._serial = 0
        self._serial_lock = threading.Lock()

    # ------------------------------------------------------------- urls
    @property
    def port(self) -> int:
        return self._index.port

    @property
    def base_url(self) -> str:
        return self._index.base_url

    @property
    def index_url(self) -> str:
        return self.base_url + "/simple/"

    @property
    def files_port(self) -> Optional[int]:
        return self._filesl.port if self._filesl else None

    @property
    def files_base_url(self) -> Optional[str]:
        """Where the files server listens (None with files_base="relative")."""
        return self._filesl.base_url if self._filesl else None

    @property
    def files_base(self) -> str:
        """What the file links start with ("relative" for ../../packages/...)."""
        if self._relative:
            return "relative"
        return self._files_base or self.files_base_url

    @files_base.setter
    def files_base(self, value: Optional[str]) -> None:
        if value == "relative" and not self._relative or value != "relative" and self._relative:
            raise ValueError("files_base can switch between absolute bases only")
        with self._lock:
            self._files_base = value.rstrip("/") if value and value != "relative" else None
            self._docs.clear()

    def _port_changed(self) -> None:
        with self._lock:
            self._docs.clear()

    def file_url(self, f: PypiFile) -> str:
        """The link as the index publishes it (relative ones as written)."""
        if self._relative:
            return "../.." + f.url_path
        return self.files_base + f.url_path

    # -------------------------------------------------------- publishing
    def add_wheel(self, project: str, version: str, requires=(), size: Optional[int] = None,
                  requires_python: Optional[str] = ">=3.7") -> PypiFile:
        fn, data, meta = rb.wheel(project, version, requires, size, requires_python)
        return self._add_file(project, version, fn, data, "wheel", requires_python, meta)

    def add_sdist(self, project: str, version: str, requires=(), backend: str = "intree",
                  requires_python: Optional[str] = ">=3.7") -> PypiFile:
        fn, data = rb.sdist(project, version, requires, backend, requires_python)
        return self._add_file(project, version, fn, data, "sdist", requires_python, None)

    def _add_file(self, project, version, fn, data, kind, requires_python, meta) -> PypiFile:
        h = hashlib.blake2b(data, digest_size=32).hexdigest()
        url_path = "/packages/%s/%s/%s/%s" % (h[:2], h[2:4], h[4:], fn)
        disk = os.path.join(self.root_dir, url_path.lstrip("/"))
        _write(disk, data)
        if meta is not None:
            _write(disk + ".metadata", meta)
        norm = rb.normalize(project)
        with self._lock:
            when = self._clock.tick()
            pf = PypiFile(project, version, fn, url_path, disk, hashlib.sha256(data).hexdigest(), len(data),
                          kind, requires_python, when, meta)
            proj = self._projects.get(norm) or _Project(norm)
            self._projects[norm] = proj
            proj.files = [x for x in proj.files if x.filename != fn] + [pf]
            proj.modified = when
            self._serial += 1
            proj.serial = self._serial
            self._by_path[url_path] = pf
            for key in [(norm, "json"), (norm, "html"), ("", "json"), ("", "html")]:
                self._docs.pop(key, None)
            return pf

    def projects(self) -> list:
        with self._lock:
            return sorted(self._projects)

    def files(self, project: str) -> list:
        with self._lock:
            return list(self._projects[rb.normalize(project)].files)

    # ---------------------------------------------------------- documents
    def page_bytes(self, project: Optional[str] = None, fmt: str = "html") -> bytes:
        """The index page as served (project None: /simple/)."""
        return self._page(rb.normalize(project) if project else "", fmt)[0]

    def etag(self, project: Optional[str] = None, fmt: str = "html") -> str:
        return self._page(rb.normalize(project) if project else "", fmt)[1]

    def _page(self, norm: str, fmt: str) -> tuple:
        with self._lock:
            hit = self._docs.get((norm, fmt))
            if hit is None:
                body = self._render_root(fmt) if not norm else self._render_project(self._projects[norm], fmt)
                hit = self._docs[(norm, fmt)] = (body, strong_etag(body))
            return hit

    def _render_root(self, fmt: str) -> bytes:
        if fmt == "json":
            return _json_bytes({"meta": {"api-version": "1.1", "_last-serial": self._serial},
                                "projects": [{"name": p, "_last-serial": self._projects[p].serial}
                                             for p in sorted(self._projects)]})
        links = "".join('    <a href="%s/">%s</a>\n' % (quote(p), html.escape(p)) for p in sorted(self._projects))
        return ('<!DOCTYPE html>\n<html>\n  <head>\n    <meta name="pypi:repository-version" content="1.1">\n'
                '    <title>Simple index</title>\n  </head>\n  <body>\n%s  </body>\n</html>\n' % links).encode()

    def _render_project(self, proj: _Project, fmt: str) -> bytes:
        if fmt == "json":
            files = []
            for f in proj.files:
                e = {"filename": f.filename, "url": self.file_url(f), "hashes": {"sha256": f.sha256}}
                if f.requires_python:
                    e["requires-python"] = f.requires_python
                e.update({"size": f.size, "upload-time": iso_time(f.uploaded).replace(".000Z", ".000000Z"),
                          "yanked": False})
                if self.core_metadata and f.metadata is not None:
                    # The keys PyPI sends. Not PEP 691's "dist-info-metadata":
                    # pip 23.0 crashes on a dict there (the reason for PEP 714).
                    e["core-metadata"] = e["data-dist-info-metadata"] = {"sha256": f.metadata_sha256}
                files.append(e)
            versions = sorted({f.version for f in proj.files})
            return _json_bytes({"meta": {"api-version": "1.1", "_last-serial": proj.serial},
                                "name": proj.name, "files": files, "versions": versions})
        rows = []
        for f in proj.files:
            attrs = ['href="%s#sha256=%s"' % (html.escape(self.file_url(f)), f.sha256)]
            if f.requires_python:
                attrs.append('data-requires-python="%s"' % html.escape(f.requires_python))
            if self.core_metadata and f.metadata is not None:
                attrs.append('data-dist-info-metadata="sha256=%s"' % f.metadata_sha256)
                attrs.append('data-core-metadata="sha256=%s"' % f.metadata_sha256)
            rows.append("    <a %s>%s</a><br />\n" % (" ".join(attrs), html.escape(f.filename)))
        return ('<!DOCTYPE html>\n<html>\n  <head>\n    <meta name="pypi:repository-version" content="1.1">\n'
                '    <title>Links for %s</title>\n  </head>\n  <body>\n    <h1>Links for %s</h1>\n%s'
                '  </body>\n</html>\n<!--SERIAL %d-->\n'
                % (html.escape(proj.name), html.escape(proj.name), "".join(rows), proj.serial)).encode()

    # ------------------------------------------------------------- routes
    def _wants_json(self, target: str, headers) -> bool:
        if not self.serve_json:
            return False
        q = parse_qs(urlsplit(target).query).get("format")
        if q:                                   # an unescaped "+" arrives as a space
            return q[0].replace(" ", "+") == PYPI_JSON
        accept = headers.get("Accept")
        j = accept_q(accept, PYPI_JSON)
        return j > 0 and j >= max(accept_q(accept, PYPI_HTML), accept_q(accept, "text/html"))

    @staticmethod
    def _plain(status: int, text: str, extra=()) -> Response:
        return Response(status, [("Content-Type", "text/plain; charset=utf-8")] + list(extra),
                        text.encode())

    def _route(self, listener, method, path, target, headers) -> Response:
        if method not in ("GET", "HEAD"):
            return self._plain(405, "Method Not Allowed\n")
        if path.startswith("/packages/") and (listener == "files" or self._relative):
            return self._file(path, headers)
        if listener == "files":
            return self._plain(404, "Not Found\n")
        if path == "/simple":
            return self._plain(301, "Moved\n", [("Location", "/simple/")])
        if not path.startswith("/simple/"):
            return self._plain(404, "Not Found\n")
        rest = unquote(path[len("/simple/"):])
        if rest and (rest.count("/") > 1 or "/" in rest[:-1]):
            return self._plain(404, "Not Found\n")
        name = rest.rstrip("/")
        if name and (rb.normalize(name) != name or not rest.endswith("/")):
            return self._plain(301, "Moved\n", [("Location", "/simple/%s/" % quote(rb.normalize(name)))])
        fmt = "json" if self._wants_json(target, headers) else "html"
        with self._lock:
            if name and name not in self._projects:
                return self._plain(404, "Not Found\n")
            body, etag = self._page(name, fmt)
            mtime = self._projects[name].modified if name else max(
                [p.modified for p in self._projects.values()] or [CLOCK_START])
            serial = self._projects[name].serial if name else self._serial
        hs = [("ETag", etag), ("Last-Modified", http_date(mtime)), ("Cache-Control", "max-age=600, public"),
              ("Vary", "Accept"), ("X-PyPI-Last-Serial", str(serial))]
        if not_modified(headers, etag, mtime):
            return Response(304, hs)
        return Response(200, [("Content-Type", PYPI_JSON if fmt == "json" else "text/html")] + hs, body)

    def _file(self, path: str, headers) -> Response:
        meta = path.endswith(".metadata")
        with self._lock:
            f = self._by_path.get(path[:-len(".metadata")] if meta else path)
        if f is None or (meta and (not self.core_metadata or f.metadata is None)):
            return self._plain(404, "Not Found\n")
        sha = f.metadata_sha256 if meta else f.sha256
        etag = '"%s"' % sha[:32]
        hs = [("ETag", etag), ("Last-Modified", http_date(f.uploaded)),
              ("Cache-Control", "max-age=365000000, immutable, public")]
        if not_modified(headers, etag, f.uploaded):
            return Response(304, hs)
        return Response(200, [("Content-Type", "application/octet-stream")] + hs,
                        file=f.file + ".metadata" if meta else f.file)
