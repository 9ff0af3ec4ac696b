"""An offline Maven 2 repository for the end-to-end tests: the artifacts the
test deploys, plus the plugins mvn itself needs, which come from Debian's
/usr/share/maven-repo (Maven Central is out of reach). Served on 127.0.0.1
with the fault knobs of registry_http.Fixture; the real mvn
(tests/lib/clients.py mvn_get) resolves from it, directly or through the
edge.

    from registry_maven import MavenRepo
    with MavenRepo(tmp) as repo:                  # serves at once; stop() on exit
        repo.deploy("com.example", "demo-lib", "1.0")
        repo.deploy("com.example", "demo-lib", "1.1-SNAPSHOT")
        # mvn dependency:get -Dartifact=com.example:demo-lib:1.1-SNAPSHOT
        #   with a mirror of * at repo.base_url + "/"

MavenRepo(root_dir, system_repo="/usr/share/maven-repo", port=None)
    deploy(group, artifact, version, deps=()) -> MavenArtifact
        What `mvn deploy:deploy-file -DgeneratePom=true` writes, written
        directly: a tiny jar (one class compiled once per process with
        javac, then zipped with its pom.properties, so every version has
        its own bytes), the generated pom (with deps, "g:a:v" strings, as
        its dependencies), .sha1/.md5/.sha256 beside each,
        and <g>/<a>/maven-metadata.xml (versions, latest, release,
        lastUpdated) with its own three checksums. A version ending in
        -SNAPSHOT is deployed as a timestamped build: <a>-<base>-<yyyyMMdd.
        HHmmss>-<n>.jar/.pom (n counts up per deploy of that snapshot) and
        <g>/<a>/<v>-SNAPSHOT/maven-metadata.xml naming the current build
        (snapshot timestamp/buildNumber and snapshotVersions), checksummed
        too. Times come from a fixed clock (2024-01-01 plus a minute a
        deploy), so Last-Modified always moves forward.
    Routes (.base_url; .repo_url = base_url + "/"): GET/HEAD /<path> ->
    the file at root_dir/<path>, else at system_repo/<path> (looked up per
    request, symlinks followed: nothing of Debian's 100+ MB is copied).
    ETag "<mtime hex>-<size hex>" (as nginx), Last-Modified, 304 on
    If-None-Match / If-Modified-Since; Content-Type by extension (jar,
    pom/xml, checksums text/plain). Directories, "..", missing files -> 404;
    other methods (PUT: a deploy) -> 405. Debian ships no checksum files:
    <system file>.sha1/.md5/.sha256 are computed on first request, so the
    plugins look as they do on Maven Central (no "no checksums" warnings,
    and an edge can verify them).
    corrupt(path) / uncorrupt(path): serve that file (a jar) with bytes
    flipped, the same length, while its .sha1/.sha256 stay true.
    For assertions: artifact(g, a, v) -> the latest MavenArtifact of that
    version, metadata_path(g, a, v=None), metadata_bytes(g, a, v=None),
    versions(g, a), plugin_version(artifact_id) (the version system_repo
    has, e.g. "3.5.0" for maven-dependency-plugin).
Knobs and records: registry_http.Fixture (set_status, set_refuse,
set_rate, clear_faults, requests, request_log, conditional_requests,
reset_log), one listener, "repo".
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass
from typing import Optional
from urllib.parse import unquote

from registry_http import Response, SingleListenerFixture, flip_bytes, http_date, not_modified

SYSTEM_REPO = "/usr/share/maven-repo"
CLOCK_START = 1704067200.0        # 2024-01-01T00:00:00Z, as registry.py
ZIP_TIME = (2020, 1, 1, 0, 0, 0)
SUMS = (("sha1", hashlib.sha1), ("md5", hashlib.md5), ("sha256", hashlib.sha256))
TYPES = {".jar": "application/java-archive", ".pom": "text/xml", ".xml": "text/xml",
         ".sha1": "text/plain", ".md5": "text/plain", ".sha256": "text/plain", ".sha512": "text/plain"}


@dataclass
class MavenArtifact:
    group: str
    artifact: str
    version: str             # as asked: "1.0" or "1.1-SNAPSHOT"
    file_version: str        # in the file names: "1.0" or "1.1-20240101.000100-1"
    jar_path: str            # url path
    pom_path: str
    jar_file: str            # on disk
    sha1: str                # of the jar
    sha256: str
    size: int
    published: float

    @property
    def snapshot(self) -> bool:
        return self.version.endswith("-SNAPSHOT")

    @property
    def coords(self) -> str:
        return "%s:%s:%s" % (self.group, self.artifact, self.version)


# ------------------------------------------------------------------ building

_CLASS: dict = {}
_CLASS_LOCK = threading.Lock()
DEMO_JAVA = """package sluice.demo;

public final class Demo {
    public static String hello() {
        return "hello from the Sluice tests";
    }
}
"""


def demo_class() -> bytes:
    """sluice/demo/Demo.class, compiled with javac once per process."""
    with _CLASS_LOCK:
        if "class" not in _CLASS:
            javac = shutil.which("javac")
            if javac is None:
                raise RuntimeError("javac not found (Debian: apt-get install default-jdk-headless)")
            work = tempfile.mkdtemp(prefix="sluice-javac-")
            try:
                src = os.path.join(work, "Demo.java")
                with open(src, "w") as f:
                    f.write(DEMO_JAVA)
                p = subprocess.run([javac, "--release", "8", "-d", work, src], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, timeout=120)
                if p.returncode != 0:
                    raise RuntimeError("javac failed:\n%s" % p.stdout)
                with open(os.path.join(work, "sluice", "demo", "Demo.class"), "rb") as f:
                    _CLASS["class"] = f.read()
            finally:
                shutil.rmtree(work, ignore_errors=True)
        return _CLASS["class"]


def build_jar(group: str, artifact: str, version: str) -> bytes:
    """A jar as `jar cf` makes it: the manifest, the demo class and the
    pom.properties Maven adds (which make every version's bytes differ)."""
    files = [
        ("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\r\nCreated-By: Sluice tests\r\n\r\n"),
        ("sluice/demo/Demo.class", demo_class()),
        ("META-INF/maven/%s/%s/pom.properties" % (group, artifact),
         ("groupId=%s\nartifactId=%s\nversion=%s\n" % (group, artifact, version)).encode()),
    ]
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files:
            z.writestr(zipfile.ZipInfo(name, ZIP_TIME), data)
    return raw.getvalue()


def pom(group: str, artifact: str, version: str, deps=()) -> bytes:
    """The pom deploy-file generates (-DgeneratePom=true), with a
    <dependencies> section when deps ("g:a:v" strings) are given."""
    dep_xml = "".join("    <dependency>\n      <groupId>%s</groupId>\n      <artifactId>%s</artifactId>\n"
                      "      <version>%s</version>\n    </dependency>\n" % tuple(d.split(":")[:3]) for d in deps)
    dep_xml = "  <dependencies>\n%s  </dependencies>\n" % dep_xml if deps else ""
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<project xmlns="http://maven.apache.org/POM/4.0.0" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            'xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 '
            'http://maven.apache.org/xsd/maven-4.0.0.xsd">\n'
            '  <modelVersion>4.0.0</modelVersion>\n  <groupId>%s</groupId>\n'
            '  <artifactId>%s</artifactId>\n  <version>%s</version>\n'
            '  <description>POM was created by the Sluice tests</description>\n%s</project>\n'
            % (group, artifact, version, dep_xml)).encode()


def _stamp(ts: float, fmt: str) -> str:
    return time.strftime(fmt, time.gmtime(ts))


# ------------------------------------------------------------------- fixture


class MavenRepo(SingleListenerFixture):
    def __init__(self, root_dir: str, system_repo: Optional[str] = SYSTEM_REPO, port: Optional[int] = None):
        super().__init__("repo", port)
        self.root_dir = os.path.abspath(root_dir)
        os.makedirs(self.root_dir, exist_ok=True)
        self.system_repo = system_repo
        self._arts: dict = {}          # (g, a) -> [MavenArtifact] in deploy order
        self._builds: dict = {}        # (g, a, snapshot version) -> last build number
        self._corrupt: set = set()
        self._sums: dict = {}          # url path -> computed checksum of a system_repo file
        self._now = CLOCK_START


    @property
    def repo_url(self) -> str:
        return self.base_url + "/"

    # -------------------------------------------------------- publishing
    def deploy(self, group: str, artifact: str, version: str, deps=()) -> MavenArtifact:
        """Write the jar, pom, checksums and metadata (module doc). deps:
        "g:a:v" dependencies named in the pom."""
        jar = build_jar(group, artifact, version)
        with self._lock:
            self._now += 60
            now = self._now
            fv = version
            if version.endswith("-SNAPSHOT"):
                n = self._builds.get((group, artifact, version), 0) + 1
                self._builds[(group, artifact, version)] = n
                fv = "%s-%s-%d" % (version[:-len("-SNAPSHOT")], _stamp(now, "%Y%m%d.%H%M%S"), n)
            vdir = "/%s/%s/%s" % (group.replace(".", "/"), artifact, version)
            jar_path = "%s/%s-%s.jar" % (vdir, artifact, fv)
            pom_path = "%s/%s-%s.pom" % (vdir, artifact, fv)
            self._write_with_sums(jar_path, jar, now)
            self._write_with_sums(pom_path, pom(group, artifact, version, deps), now)
            art = MavenArtifact(group, artifact, version, fv, jar_path, pom_path, self._disk(jar_path),
                                hashlib.sha1(jar).hexdigest(), hashlib.sha256(jar).hexdigest(), len(jar), now)
            self._arts.setdefault((group, artifact), []).append(art)
            if art.snapshot:
                self._write_with_sums(self.metadata_path(group, artifact, version),
                                      self._snapshot_metadata(art), now)
            self._write_with_sums(self.metadata_path(group, artifact),
                                  self._artifact_metadata(group, artifact), now)
            return art

    def _disk(self, url_path: str) -> str:
        return os.path.join(self.root_dir, url_path.lstrip("/"))

    def _write_with_sums(self, url_path: str, data: bytes, mtime: float) -> None:
        for suffix, body in [("", data)] + [("." + n, f(data).hexdigest().encode()) for n, f in SUMS]:
            disk = self._disk(url_path + suffix)
            os.makedirs(os.path.dirname(disk), exist_ok=True)
            with open(disk + ".tmp", "wb") as f:
                f.write(body)
            os.utime(disk + ".tmp", (mtime, mtime))
            os.replace(disk + ".tmp", disk)

    def _artifact_metadata(self, group: str, artifact: str) -> bytes:
        arts = self._arts[(group, artifact)]
        versions = list(dict.fromkeys(a.version for a in arts))
        releases = [a.version for a in arts if not a.snapshot]
        rel = "    <release>%s</release>\n" % releases[-1] if releases else ""
        return ('<?xml version="1.0" encoding="UTF-8"?>\n<metadata>\n  <groupId>%s</groupId>\n'
                '  <artifactId>%s</artifactId>\n  <versioning>\n    <latest>%s</latest>\n%s'
                '    <versions>\n%s    </versions>\n    <lastUpdated>%s</lastUpdated>\n'
                '  </versioning>\n</metadata>\n'
                % (group, artifact, arts[-1].version, rel,
                   "".join("      <version>%s</version>\n" % v for v in versions),
                   _stamp(arts[-1].published, "%Y%m%d%H%M%S"))).encode()

    @staticmethod
    def _snapshot_metadata(art: MavenArtifact) -> bytes:
        ts, n = art.file_version.rsplit("-", 2)[1:]
        updated = _stamp(art.published, "%Y%m%d%H%M%S")
        svs = "".join('      <snapshotVersion>\n        <extension>%s</extension>\n'
                      '        <value>%s</value>\n        <updated>%s</updated>\n'
                      '      </snapshotVersion>\n' % (ext, art.file_version, updated) for ext in ("jar", "pom"))
        return ('<?xml version="1.0" encoding="UTF-8"?>\n<metadata modelVersion="1.1.0">\n'
                '  <groupId>%s</groupId>\n  <artifactId>%s</artifactId>\n  <version>%s</version>\n'
                '  <versioning>\n    <snapshot>\n      <timestamp>%s</timestamp>\n'
                '      <buildNumber>%s</buildNumber>\n    </snapshot>\n    <lastUpdated>%s</lastUpdated>\n'
                '    <snapshotVersions>\n%s    </snapshotVersions>\n  </versioning>\n</metadata>\n'
                % (art.group, art.artifact, art.version, ts, n, updated, svs)).encode()

    def corrupt(self, url_path: str) -> None:
        """Serve this file with flipped bytes; its checksum files stay true."""
        with self._lock:
            self._corrupt.add(url_path)

    def uncorrupt(self, url_path: str) -> None:
        with self._lock:
            self._corrupt.discard(url_path)

    # ---------------------------------------------------------- lookups
    @staticmethod
    def metadata_path(group: str, artifact: str, version: Optional[str] = None) -> str:
        base = "/%s/%s" % (group.replace(".", "/"), artifact)
        return base + ("/%s" % version if version else "") + "/maven-metadata.xml"

    def metadata_bytes(self, group: str, artifact: str, version: Optional[str] = None) -> bytes:
        with open(self._disk(self.metadata_path(group, artifact, version)), "rb") as f:
            return f.read()

    def artifact(self, group: str, artifact: str, version: str) -> MavenArtifact:
        """The latest deploy of that version (the current snapshot build)."""
        with self._lock:
            return [a for a in self._arts[(group, artifact)] if a.version == version][-1]

    def versions(self, group: str, artifact: str) -> list:
        with self._lock:
            return list(dict.fromkeys(a.version for a in self._arts.get((group, artifact), [])))

    def plugin_version(self, artifact_id: str, group: str = "org.apache.maven.plugins") -> Optional[str]:
        """The highest numbered version of a plugin in system_repo."""
        d = os.path.join(self.system_repo or "", group.replace(".", "/"), artifact_id)
        try:
            vs = [v for v in os.listdir(d) if v[:1].isdigit()]
        except OSError:
            return None
        key = lambda v: [int(x) if x.isdigit() else 0 for x in v.replace("-", ".").split(".")]  # noqa: E731
        return max(vs, key=key) if vs else None

    # ------------------------------------------------------------- routes
    @staticmethod
    def _plain(status: int, text: str) -> Response:
        return Response(status, [("Content-Type", "text/plain; charset=utf-8")], text.encode())

    def _system_sum(self, path: str) -> Optional[bytes]:
        """The .sha1/.md5/.sha256 of a system_repo file, computed once
        (Debian ships none; a real repository has them)."""
        base, ext = os.path.splitext(path)
        algo = dict(SUMS).get(ext[1:])
        disk = self._find(base) if algo else None
        if disk is None or not self.system_repo or not disk.startswith(self.system_repo + os.sep):
            return None
        with self._lock:
            hit = self._sums.get(path)
        if hit is None:
            h = algo()
            with open(disk, "rb") as f:
                for piece in iter(lambda: f.read(1 << 20), b""):
                    h.update(piece)
            hit = h.hexdigest().encode()
            with self._lock:
                self._sums[path] = hit
        return hit

    def _find(self, path: str) -> Optional[str]:
        parts = unquote(path).split("/")[1:]
        if not parts or any(p in ("", ".", "..") or "\\" in p for p in parts):
            return None
        for root in (self.root_dir, self.system_repo):
            if root:
                disk = os.path.join(root, *parts)
                if os.path.isfile(disk):
                    return disk
        return None

    def _route(self, listener, method, path, target, headers) -> Response:
        if method not in ("GET", "HEAD"):
            return self._plain(405, "Method Not Allowed\n")
        disk = self._find(path)
        if disk is None:
            body = self._system_sum(path)
            if body is None:
                return self._plain(404, "Not Found\n")
            return Response(200, [("Content-Type", "text/plain"), ("ETag", '"%s"' % body.decode()[:32])], body)
        st = os.stat(disk)
        etag = '"%x-%x"' % (int(st.st_mtime), st.st_size)
        hs = [("ETag", etag), ("Last-Modified", http_date(st.st_mtime))]
        if not_modified(headers, etag, st.st_mtime):
            return Response(304, hs)
        hs.insert(0, ("Content-Type", TYPES.get(os.path.splitext(disk)[1], "application/octet-stream")))
        with self._lock:
            bad = path in self._corrupt
        if bad:
            with open(disk, "rb") as f:
                return Response(200, hs, flip_bytes(f.read()))
        return Response(200, hs, file=disk)
