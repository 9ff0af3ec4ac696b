"""An offline Go module proxy (the GOPROXY protocol) with a real checksum
database, for the end-to-end tests: built by the test, served on 127.0.0.1,
with the fault knobs of the other fixtures (registry_http.Fixture). The
real `go` (tests/lib/clients_go.py) downloads from it, directly or through
the edge, and verifies every module through it.

    from registry_go import GoProxy
    with GoProxy(tmp) as gp:                       # serves at once; stop() on exit
        gp.add_module("example.test/dep", "v1.0.0")
        gp.add_module("example.test/Hello", "v1.0.0", requires=["example.test/dep@v1.0.0"])
        # GOPROXY=gp.base_url GOSUMDB=gp.gosumdb go mod download ...

GoProxy(root_dir, sumdb_name="sumdb.sluice.test", port=None)
    add_module(path, version, files=None, requires=(), go="1.19")
        A go.mod ("module <path>", "go <go>", a require line for each
        "mod@ver" of requires) and a module zip written under root_dir as
        <escaped path>/@v/<version>.{mod,zip,info}; every zip entry is named
        <path>@<version>/<file>, as x/mod/zip makes them. files: {relative
        path: str | bytes}; the default is one Go file, package <last path
        element>, with `func Hello() string`, importing and calling each
        required module's Hello. The version's go.sum lines go into the
        checksum database at once. Returns a GoModule (path, version,
        escaped, h1, h1_mod, zip_path(), ...). Publishing while serving
        updates @v/list and @latest at once.
    Routes (.base_url; GOPROXY=base_url):
        GET /<escaped>/@v/list        text/plain, one version per line
        GET /<escaped>/@latest        {"Version", "Time"} of the highest version
        GET /<escaped>/@v/<v>.info    {"Version", "Time"}      application/json
        GET /<escaped>/@v/<v>.mod     the go.mod               text/plain
        GET /<escaped>/@v/<v>.zip     the module zip           application/zip
        Module paths are case-encoded ("example.test/!hello"), and may come
        percent-encoded ("%21hello"); an upper-case letter in the URL, an
        unknown module, version or prefix (/example.test/@v/v1.0.0.info,
        which go asks while it looks for the module holding a package) ->
        404 text/plain "not found: ...", as proxy.golang.org answers.
        list and @latest carry a strong ETag and Last-Modified (304 on
        conditionals) and Cache-Control max-age=60; the rest max-age=31536000.
        Non-GET/HEAD -> 405.
    Checksum database (a real one: golang.org/x/mod/sumdb in a small Go
    server, sumdb_helper.go, built once per source under
    build/tools/sumdb-helper-<hash>/ and started by the fixture, signing
    with a key made at start):
        GET /sumdb/<name>/supported   200 (empty): go sends its sumdb
                                      traffic through the proxy
        GET /sumdb/<name>/lookup/<escaped>@<v>, /latest, /tile/<H>/<L>/<K>[.p/<W>]
                                      relayed to the helper
        Any other /sumdb/... -> 404. .gosumdb is "<name>+<hash>+<key>", for
        GOSUMDB: go then verifies every module it downloads against it, and
        nothing else (no GONOSUMDB, no GOSUMDB=off). The tree holds one
        record per published version, in publish order.
    Faults beyond registry_http's: corrupt(path, version) serves a zip
    that is a well-formed zip but whose first file has bytes flipped (so
    its h1 is not the one in the checksum database, which keeps the true
    one); uncorrupt(path, version) serves the true zip again.
    For assertions: modules() -> {path: [versions]}, module(path, version)
    -> GoModule, versions(path), sumdb_requests(kind=None) (kind: "lookup",
    "tile", "latest", "supported"), escape(path).

Knobs and records: registry_http.Fixture (set_status, set_refuse,
clear_faults, requests(path, method), request_log(), reset_log()); the one
listener is "proxy". The Time of every version comes from a fixed clock
(2024-01-01 plus a minute a publish).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import json
import os
import re
import shutil
import subprocess
import threading
import time
import zipfile
from dataclasses import dataclass
from typing import Optional
from urllib.parse import unquote

from registry_http import Response, SingleListenerFixture, http_date, not_modified, strong_etag
from httpclient import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = os.path.join(ROOT, "build", "tools")
HELPER_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sumdb_helper.go")
GOCODE = "/usr/share/gocode"          # Debian's golang-golang-x-mod-dev
CLOCK_START = 1704067200.0            # 2024-01-01T00:00:00Z
ZIP_TIME = (2020, 1, 1, 0, 0, 0)
TEXT = "text/plain; charset=UTF-8"


# ------------------------------------------------------------ module paths


def escape(path: str) -> str:
    """Go's case encoding of a module path or version: "A" -> "!a"."""
    return "".join("!" + c.lower() if c.isupper() else c for c in path)


def unescape(escaped: str) -> Optional[str]:
    """The inverse of escape(); None for an invalid escaped path (an
    upper-case letter, or "!" not followed by a lower-case letter)."""
    out, bang = [], False
    for c in escaped:
        if bang:
            if not c.islower():
                return None
            out.append(c.upper())
            bang = False
        elif c == "!":
            bang = True
        elif c.isupper():
            return None
        else:
            out.append(c)
    return None if bang else "".join(out)


def h1(files) -> str:
    """go.sum's h1: hash (x/mod/sumdb/dirhash.Hash1) of [(name, bytes)]."""
    lines = "".join("%s  %s\n" % (hashlib.sha256(d).hexdigest(), n) for n, d in sorted(files))
    return "h1:" + base64.b64encode(hashlib.sha256(lines.encode()).digest()).decode()


def zip_h1(data: bytes) -> str:
    """The h1 of a module zip: over its files, names with their prefix."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return h1([(i.filename, z.read(i)) for i in z.infolist() if not i.is_dir()])


def _semver_key(v: str):
    """Sort key for v<major>.<minor>.<patch>[-pre]: releases after their
    pre-releases (enough for the versions tests publish)."""
    m = re.match(r"^v(\d+)\.(\d+)\.(\d+)(?:-([^+]*))?", v)
    if not m:
        return (-1, 0, 0, 0, v)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3)), 0 if m.group(4) else 1, m.group(4) or "")


def _package_name(path: str) -> str:
    """The package name of a module's root: its last element (the one
    before a /vN suffix), reduced to an identifier."""
    parts = path.split("/")
    last = parts[-2] if len(parts) > 1 and re.fullmatch(r"v\d+", parts[-1]) else parts[-1]
    name = re.sub(r"[^a-z0-9_]", "", last.lower())
    return name if name and not name[0].isdigit() else "p" + name


def _write(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


# ------------------------------------------------------------ module files


def go_mod(path: str, requires=(), go: str = "1.19") -> bytes:
    text = "module %s\n\ngo %s\n" % (path, go)
    if requires:
        text += "\nrequire (\n%s)\n" % "".join("\t%s %s\n" % tuple(r.split("@", 1)) for r in requires)
    return text.encode()


def default_files(path: str, version: str, requires=()) -> dict:
    """One Go file whose Hello() names the module and calls each
    dependency's Hello (so a build needs them all)."""
    imports = [r.split("@", 1)[0] for r in requires]
    body = "package %s\n\n" % _package_name(path)
    if imports:
        body += "import (\n%s)\n\n" % "".join("\tdep%d %s\n" % (i, json.dumps(p)) for i, p in enumerate(imports))
    calls = "".join(' + " " + dep%d.Hello()' % i for i in range(len(imports)))
    body += ('// Hello says which module version this is.\nfunc Hello() string {\n'
             '\treturn "hello from %s %s"%s\n}\n' % (path, version, calls))
    return {"%s.go" % _package_name(path): body}


def module_zip(path: str, version: str, mod: bytes, files: dict) -> bytes:
    """A module zip as x/mod/zip writes it: go.mod and the files, every
    name prefixed <path>@<version>/, in name order."""
    entries = {"go.mod": mod}
    entries.update({k.lstrip("/"): (v.encode() if isinstance(v, str) else bytes(v))
                    for k, v in files.items() if k != "go.mod"})
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w") as z:
        for name in sorted(entries):
            zi = zipfile.ZipInfo("%s@%s/%s" % (path, version, name), ZIP_TIME)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            z.writestr(zi, entries[name])
    return raw.getvalue()


def tampered_zip(data: bytes) -> bytes:
    """The same zip, well-formed (CRCs right), with the bytes of its first
    non-go.mod file flipped: what a corrupted or malicious origin serves."""
    out = io.BytesIO()
    done = False
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            body = src.read(info)
            if not done and not info.filename.endswith("/go.mod") and body:
                body = bytes(b ^ 0x5A for b in body[:16]) + body[16:]
                done = True
            dst.writestr(info, body)
    return out.getvalue()


@dataclass
class GoModule:
    path: str             # the module path as written ("example.test/Hello")
    version: str
    mod: bytes            # the go.mod
    zip_file: str         # the true zip on disk
    h1: str               # go.sum hash of the zip
    h1_mod: str           # go.sum hash of the go.mod
    published: float      # unix time (the fixed clock)

    @property
    def escaped(self) -> str:
        return escape(self.path)

    @property
    def info(self) -> dict:
        return {"Version": self.version, "Time": _rfc3339(self.published)}

    @property
    def gosum(self) -> str:
        """The module's two go.sum lines, as the checksum database holds them."""
        return "%s %s %s\n%s %s/go.mod %s\n" % (self.path, self.version, self.h1,
                                                self.path, self.version, self.h1_mod)

    def url_path(self, ext: str) -> str:
        """/<escaped>/@v/<version>.<ext> (ext: info, mod, zip)."""
        return "/%s/@v/%s.%s" % (self.escaped, escape(self.version), ext)

    def zip_path(self) -> str:
        return self.url_path("zip")


def _rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


# ------------------------------------------------------------ sumdb helper


_HELPER_LOCK = threading.Lock()


def helper_binary() -> str:
    """sumdb_helper built (once per source and go version) under
    build/tools/sumdb-helper-<hash>/, offline, in GOPATH mode against
    Debian's golang.org/x/mod. Raises RuntimeError saying what is missing."""
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("go is not on PATH (Debian: apt-get install golang-go golang-golang-x-mod-dev)")
    if not os.path.isdir(os.path.join(GOCODE, "src", "golang.org", "x", "mod", "sumdb")):
        raise RuntimeError("no golang.org/x/mod under %s (Debian: apt-get install golang-golang-x-mod-dev)"
                           % GOCODE)
    with open(HELPER_SRC, "rb") as f:
        src = f.read()
    version = subprocess.run([go, "version"], stdout=subprocess.PIPE, text=True).stdout
    key = hashlib.sha256(src + version.encode()).hexdigest()[:16]
    out_dir = os.path.join(TOOLS, "sumdb-helper-" + key)
    binary = os.path.join(out_dir, "sumdb_helper")
    with _HELPER_LOCK:
        if os.access(binary, os.X_OK):
            return binary
        os.makedirs(out_dir, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GO", "CGO_"))}
        env.update(GO111MODULE="off", GOPATH=GOCODE, GOCACHE=os.path.join(TOOLS, "go-build-cache"),
                   GOFLAGS="", GOPROXY="off", GOTOOLCHAIN="local")
        tmp = binary + ".tmp%d" % os.getpid()
        p = subprocess.run([go, "build", "-o", tmp, HELPER_SRC], cwd=out_dir, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if p.returncode != 0:
            raise RuntimeError("building %s failed:\n%s" % (HELPER_SRC, p.stdout))
        os.replace(tmp, binary)           # complete or absent, never half
    return binary


class _Sumdb:
    """One running sumdb_helper: its key, its address, its records."""

    def __init__(self, name: str):
        self.name = name
        port = free_port()
        self.proc = subprocess.Popen([helper_binary(), "-name", name, "-listen", "127.0.0.1:%d" % port],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.vkey = self._field("vkey")
        host, _, port_s = self._field("addr").rpartition(":")
        self.host, self.port = host, int(port_s)

    def _field(self, want: str) -> str:
        line = self.proc.stdout.readline().decode().strip()
        key, _, value = line.partition(" ")
        if key != want:
            err = self.proc.stderr.read().decode() if self.proc.poll() is not None else ""
            self.close()
            raise RuntimeError("sumdb_helper said %r, not %s (%s)" % (line, want, err))
        return value

    def request(self, method: str, path: str, body: Optional[bytes] = None) -> tuple:
        """(status, content type, body) of one request to the helper."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            conn.request(method, path, body=body)
            r = conn.getresponse()
            return r.status, r.getheader("Content-Type") or TEXT, r.read()
        finally:
            conn.close()

    def add(self, record: str) -> int:
        status, _, body = self.request("POST", "/add", record.encode())
        if status != 200:
            raise RuntimeError("sumdb_helper /add: %d %s" % (status, body.decode(errors="replace")))
        return int(body)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()       # the helper exits when its stdin closes
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr, self.proc.stdin):
            if f and not f.closed:
                f.close()


# ------------------------------------------------------------------ fixture


class GoProxy(SingleListenerFixture):
    def __init__(self, root_dir: str, sumdb_name: str = "sumdb.sluice.test", port: Optional[int] = None):
        super().__init__("proxy", port)
        self.root_dir = root_dir
        os.makedirs(root_dir, exist_ok=True)
        self.sumdb_name = sumdb_name
        self._mods: dict = {}          # path -> {version: GoModule}
        self._modified: dict = {}      # path -> time of its last publish
        self._corrupt: dict = {}       # (path, version) -> tampered zip bytes
        self._clock = CLOCK_START
        self._sumdb: Optional[_Sumdb] = None
        self._records: list = []       # every go.sum record, in publish order

    # ------------------------------------------------------------- urls

    @property
    def gosumdb(self) -> str:
        """GOSUMDB for go: "<name>+<hash>+<public key>" of this database."""
        return self._db().vkey

    # -------------------------------------------------------- lifecycle
    def _db(self) -> _Sumdb:
        with self._lock:
            if self._sumdb is None:
                db = _Sumdb(self.sumdb_name)
                for rec in self._records:      # a restart: same records, a new key
                    db.add(rec)
                self._sumdb = db
            return self._sumdb

    def start(self):
        self._db()
        return super().start()

    def stop(self) -> None:
        super().stop()
        with self._lock:
            db, self._sumdb = self._sumdb, None
        if db is not None:
            db.close()

    # -------------------------------------------------------- publishing
    def add_module(self, path: str, version: str, files: Optional[dict] = None, requires=(),
                   go: str = "1.19") -> GoModule:
        """Write the module version and publish it (see the module doc)."""
        requires = [requires] if isinstance(requires, str) else list(requires)
        mod = go_mod(path, requires, go)
        data = module_zip(path, version, mod, default_files(path, version, requires) if files is None else files)
        disk = os.path.join(self.root_dir, escape(path), "@v", escape(version) + ".zip")
        _write(disk, data)
        _write(disk[:-4] + ".mod", mod)
        with self._lock:
            self._clock += 60
            m = GoModule(path, version, mod, disk, zip_h1(data), h1([("go.mod", mod)]), self._clock)
            _write(disk[:-4] + ".info", json.dumps(m.info, separators=(",", ":")).encode())
            self._db().add(m.gosum)
            self._records.append(m.gosum)
            self._mods.setdefault(path, {})[version] = m
            self._modified[path] = m.published
            return m

    def corrupt(self, path: str, version: str) -> None:
        """Serve a tampered (well-formed) zip for this version; the checksum
        database keeps the true h1."""
        with self._lock:
            m = self._mods[path][version]
            with open(m.zip_file, "rb") as f:
                self._corrupt[(path, version)] = tampered_zip(f.read())

    def uncorrupt(self, path: str, version: str) -> None:
        with self._lock:
            self._corrupt.pop((path, version), None)

    # ------------------------------------------------------- assertions
    def modules(self) -> dict:
        with self._lock:
            return {p: sorted(vs, key=_semver_key) for p, vs in self._mods.items()}

    def versions(self, path: str) -> list:
        return self.modules().get(path, [])

    def module(self, path: str, version: str) -> GoModule:
        with self._lock:
            return self._mods[path][version]

    def sumdb_requests(self, kind: Optional[str] = None) -> list:
        """The logged requests under /sumdb/ (kind: "supported", "lookup",
        "tile", "latest" keeps only those)."""
        pre = "/sumdb/%s/" % self.sumdb_name
        return [r for r in self.request_log() if r.path.startswith(pre)
                and (kind is None or r.path[len(pre):].split("/", 1)[0] == kind)]

    # ------------------------------------------------------------- routes
    @staticmethod
    def _not_found(what: str) -> Response:
        return Response(404, [("Content-Type", TEXT)], ("not found: %s\n" % what).encode())

    def _route(self, listener, method, path, target, headers) -> Response:
        if method not in ("GET", "HEAD"):
            return Response(405, [("Content-Type", TEXT), ("Allow", "GET, HEAD")], b"method not allowed\n")
        p = unquote(path)
        if p.startswith("/sumdb/"):
            return self._sumdb_route(p)
        if "/@v/" in p:
            esc, _, file = p[1:].partition("/@v/")
        elif p.endswith("/@latest"):
            esc, file = p[1:-len("/@latest")], "@latest"
        else:
            return self._not_found(p)
        mod = unescape(esc)
        with self._lock:
            versions = self._mods.get(mod) if mod else None
            if not versions:
                return self._not_found("module %s: no such module" % (mod or esc))
            if file in ("list", "@latest"):
                return self._metadata(mod, versions, file, headers)
            base, dot, ext = file.rpartition(".")
            m = versions.get(unescape(base) or "") if dot else None
            if m is None or ext not in ("info", "mod", "zip"):
                return self._not_found("%s@%s: invalid version: unknown revision" % (mod, base or file))
            immutable = [("Cache-Control", "public, max-age=31536000, immutable"),
                         ("Last-Modified", http_date(m.published))]
            if ext == "info":
                return Response(200, [("Content-Type", "application/json")] + immutable,
                                json.dumps(m.info, separators=(",", ":")).encode())
            if ext == "mod":
                return Response(200, [("Content-Type", TEXT)] + immutable, m.mod)
            bad = self._corrupt.get((mod, m.version))
        if bad is not None:
            return Response(200, [("Content-Type", "application/zip")] + immutable, bad)
        return Response(200, [("Content-Type", "application/zip")] + immutable, file=m.zip_file)

    def _metadata(self, mod: str, versions: dict, file: str, headers) -> Response:
        ordered = sorted(versions, key=_semver_key)
        if file == "list":
            body, ctype = "".join(v + "\n" for v in ordered).encode(), TEXT
        else:
            body, ctype = json.dumps(versions[ordered[-1]].info, separators=(",", ":")).encode(), "application/json"
        etag, mtime = strong_etag(body), self._modified[mod]
        hs = [("ETag", etag), ("Last-Modified", http_date(mtime)), ("Cache-Control", "public, max-age=60")]
        if not_modified(headers, etag, mtime):
            return Response(304, hs)
        return Response(200, [("Content-Type", ctype)] + hs, body)

    def _sumdb_route(self, p: str) -> Response:
        pre = "/sumdb/%s/" % self.sumdb_name
        if not p.startswith(pre):
            return self._not_found("no checksum database %s" % p[len("/sumdb/"):].split("/", 1)[0])
        rest = "/" + p[len(pre):]
        if rest == "/supported":
            return Response(200, [("Content-Type", TEXT)], b"")
        if not (rest == "/latest" or rest.startswith(("/lookup/", "/tile/"))):
            return self._not_found(p)
        status, ctype, body = self._db().request("GET", rest)
        hs = [("Content-Type", ctype)]
        if rest.startswith("/tile/") and status == 200:
            hs.append(("Cache-Control", "public, max-age=31536000, immutable"))
        return Response(status, hs, body)
