"""The soak's objects (tests/soak/soak.py): what each route serves on the
test origin, and what a client may legitimately receive for it.

An object is one request path on the edge. Artifacts are immutable: their
body is body_for(origin path, size), whatever happens. Metadata documents
(npm packuments, PyPI pages, cargo index files, go lists, maven-metadata)
get new versions while the soak runs; a client may receive any version
ever published (the edge may serve a stale copy) in either form the edge
may send it: as the origin wrote it (HAProxy passing a request straight
to the origin while the agent is down) or rewritten by the edge (npm's
tarball links point at public_url).

Invariants: every object the load asks for is published on the origin
before it is in the catalogue; a metadata document's list of versions only
grows; names are unique for the run (a counter), so no two objects share
an origin path and no object changes size.
"""

import hashlib
import base64
import json
import random
import threading

from origin import body_for
from registry_build import npm_tarball

KiB = 1024
MiB = 1024 * 1024


class Obj:
    """One request path and what may come back for it."""

    def __init__(self, route, prefix, opath, size=None, kind="artifact"):
        self.route = route
        self.path = prefix + opath          # what the client asks the edge for
        self.opath = opath                  # what the origin sees
        self.size = size
        self.kind = kind
        self.versions = []                  # metadata: [(raw, rewritten)] published
        self.etag = None                    # last ETag a client saw (conditional GETs)
        self.data = None                    # an explicit body (npm tarballs a real npm installs)

    def key(self):
        """The cache key of the object file / bucket object."""
        return "%s:%s" % (self.route, self.opath.lstrip("/"))

    def body(self):
        return self.data if self.data is not None else body_for(self.opath, self.size)

    def acceptable(self):
        """Every whole body a client may receive."""
        if self.kind == "artifact":
            return [self.body()]
        return [b for pair in self.versions for b in pair]


def sri(body):
    return "sha512-" + base64.b64encode(hashlib.sha512(body).digest()).decode()


class Catalogue:
    """Objects on every route, created and published on `origin`. `public`
    is the edge's public_url, `origin_url` the origin's base URL (what the
    edge rewrites npm tarball links from)."""

    def __init__(self, origin, public, seed):
        self.origin = origin
        self.public = public
        self.origin_url = "http://127.0.0.1:%d" % origin.port
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.seq = 0
        self.artifacts = []
        self.metadata = []
        self.by_key = {}

    # ------------------------------------------------------------ naming
    def name(self, stem):
        with self.lock:
            self.seq += 1
            return "%s%d" % (stem, self.seq)

    def add(self, obj):
        with self.lock:
            (self.artifacts if obj.kind == "artifact" else self.metadata).append(obj)
            self.by_key[obj.key()] = obj
        return obj

    # ------------------------------------------------------------ artifacts
    def size(self):
        """Mostly small, some medium, a few large (above the S3 multipart
        threshold of 5 MiB the soak sets: uploads in parts)."""
        r = self.rng.random()
        if r < 0.70:
            return self.rng.randint(1, 64 * KiB)
        if r < 0.95:
            return self.rng.randint(64 * KiB, 1 * MiB)
        return self.rng.randint(5 * MiB, 6 * MiB)

    def new_artifact(self, route=None, size=None, knobs=None):
        """A fresh artifact on `route` (random when None), published with
        the origin `knobs` (a fault, a rate)."""
        route = route or self.rng.choice(ARTIFACT_ROUTES)
        n = self.name("s")
        size = size if size is not None else self.size()
        obj = ARTIFACT_MAKERS[route](self, n, size)
        self.origin.set_object(obj.opath, size=size, **(knobs or {}))
        return self.add(obj)

    def _sidecars(self, obj):
        """Publish the digest sidecar the edge fetches beside the artifact."""
        if obj.route == "maven":
            self.origin.set_object(obj.opath + ".sha1", body=hashlib.sha1(obj.body()).hexdigest().encode())
        elif obj.route == "go":
            # no checksum database here: a 404 (stored unverified), as tests/contract does
            mod = obj.opath.split("/@v/")[0]
            self.origin.set_object("/sumdb/sum.golang.org/lookup%s@v1.0.0" % mod, status=404, body=b"not found")

    # ------------------------------------------------------------ metadata
    def new_metadata(self):
        """One document per metadata route, each with a first version."""
        for make in META_MAKERS:
            obj = self.add(make(self, self.name("m")))
            self.publish(obj)

    def publish(self, obj, knobs=None):
        """A new version of metadata document `obj` on the origin."""
        with self.lock:
            v = len(obj.versions) + 1
        raw, rewritten, ctype = obj.render(self, v)
        obj.ctype = ctype
        self.origin.set_object(obj.opath, body=raw, headers={"Content-Type": ctype}, **(knobs or {}))
        with self.lock:
            obj.versions.append((raw, rewritten))

    def fault_metadata(self, knobs):
        """The current version of a random document, served with a fault."""
        obj = self.rng.choice(self.metadata)
        raw, _ = obj.versions[-1]
        self.origin.set_object(obj.opath, body=raw, headers={"Content-Type": obj.ctype}, **knobs)

    def pick(self, kind=None):
        with self.lock:
            pool = self.artifacts if kind == "artifact" else self.metadata if kind == "meta" \
                else self.artifacts + self.metadata
            return self.rng.choice(pool) if pool else None


# ---------------------------------------------------------------- routes
# Artifact paths as agent/src/eco/<eco>.c classifies them immutable (the
# same shapes as tests/contract/contract.py's ROUTES).

def _generic(c, n, size):
    return Obj("generic", "/generic", "/soak/%s.bin" % n, size)


def _npm(c, n, size):
    return Obj("npm", "/npm", "/%s/-/%s-1.0.0.tgz" % (n, n), size)


def _pypi_files(c, n, size):
    return Obj("pypi_files", "/pypi/files", "/packages/soak/%s-1.0-py3-none-any.whl" % n, size)


def _cargo_dl(c, n, size):
    return Obj("cargo_dl", "/crates/dl", "/crates/%s/%s-1.0.0.crate" % (n, n), size)


def _go(c, n, size):
    o = Obj("go", "/go", "/example.com/soak/%s/@v/v1.0.0.zip" % n, size)
    c._sidecars(o)
    return o


def _maven(c, n, size):
    o = Obj("maven", "/maven", "/org/sluice/soak/%s/1.0/%s-1.0.jar" % (n, n), size)
    c._sidecars(o)
    return o


ARTIFACT_MAKERS = {"generic": _generic, "npm": _npm, "pypi_files": _pypi_files,
                   "cargo_dl": _cargo_dl, "go": _go, "maven": _maven}
ARTIFACT_ROUTES = sorted(ARTIFACT_MAKERS)


class Meta(Obj):
    """A metadata document; render(catalogue, version) gives (raw body,
    body as the edge rewrites it, content type)."""

    ctype = "application/json"

    def __init__(self, route, prefix, opath, render):
        super().__init__(route, prefix, opath, kind="meta")
        self._render = render

    def render(self, c, v):
        return self._render(self, c, v)


def _npm_doc(obj, c, v):
    """A packument whose versions' tarballs are artifacts of the catalogue:
    real .tgz files (what `npm install` unpacks) with their sha512
    integrity, so tarball fills are verified."""
    name = obj.opath.lstrip("/")
    versions = {}
    for i in range(1, v + 1):
        tgz = "/%s/-/%s-1.0.%d.tgz" % (name, name, i)
        t = c.by_key.get("npm:" + tgz.lstrip("/"))
        if t is None:
            t = Obj("npm", "/npm", tgz)
            t.data = npm_tarball({"name": name, "version": "1.0.%d" % i}, size=2000 + 37 * i)
            t.size = len(t.data)
            c.origin.set_object(tgz, body=t.data)
            c.add(t)
        versions["1.0.%d" % i] = {"name": name, "version": "1.0.%d" % i,
                                  "dist": {"tarball": c.origin_url + tgz, "integrity": sri(t.data)}}
    raw = json.dumps({"name": name, "dist-tags": {"latest": "1.0.%d" % v}, "versions": versions},
                     indent=1).encode()
    rewritten = raw.replace((c.origin_url + "/").encode(), (c.public + "/npm/").encode())
    return raw, rewritten, "application/json"


def _pypi_page(obj, c, v):
    proj = obj.opath.split("/")[2]
    raw = ("<!DOCTYPE html>\n<html><body>\n%s</body></html>\n" % "".join(
        "<p>%s-1.%d.tar.gz</p>\n" % (proj, i) for i in range(1, v + 1))).encode()
    return raw, raw, "text/html"


def _pypi_json(obj, c, v):
    proj = obj.opath.split("/")[2]
    raw = json.dumps({"info": {"name": proj, "version": "1.%d" % v}, "releases": {}}).encode()
    return raw, raw, "application/json"


def _cargo_index(obj, c, v):
    """Index lines whose crates are artifacts with their real cksum."""
    name = obj.opath.rsplit("/", 1)[1]
    lines = []
    for i in range(1, v + 1):
        crate = "/crates/%s/%s-1.0.%d.crate" % (name, name, i)
        size = 3000 + 41 * i
        if c.by_key.get("cargo_dl:" + crate.lstrip("/")) is None:
            c.origin.set_object(crate, size=size)
            c.add(Obj("cargo_dl", "/crates/dl", crate, size))
        lines.append(json.dumps({"name": name, "vers": "1.0.%d" % i, "deps": [],
                                 "cksum": hashlib.sha256(body_for(crate, size)).hexdigest(),
                                 "features": {}, "yanked": False}))
    raw = ("\n".join(lines) + "\n").encode()
    return raw, raw, "text/plain"


def _go_list(obj, c, v):
    raw = "".join("v1.0.%d\n" % i for i in range(v)).encode()
    return raw, raw, "text/plain"


def _maven_meta(obj, c, v):
    raw = ("<?xml version=\"1.0\"?>\n<metadata><groupId>org.sluice.soak</groupId><versioning>"
           "<latest>1.%d</latest><versions>%s</versions></versioning></metadata>\n"
           % (v, "".join("<version>1.%d</version>" % i for i in range(1, v + 1)))).encode()
    return raw, raw, "application/xml"


def _cargo_path(n):
    return "/%s/%s/%s" % (n[0:2], n[2:4], n)


META_MAKERS = [
    lambda c, n: Meta("npm", "/npm", "/pkg%s" % n, _npm_doc),
    lambda c, n: Meta("pypi", "/pypi", "/simple/proj%s/" % n, _pypi_page),
    lambda c, n: Meta("pypi", "/pypi", "/pypi/proj%s/json" % n, _pypi_json),
    lambda c, n: Meta("cargo_index", "/crates", _cargo_path("crate%s" % n), _cargo_index),
    lambda c, n: Meta("go", "/go", "/example.com/soakmeta/%s/@v/list" % n, _go_list),
    lambda c, n: Meta("maven", "/maven", "/org/sluice/soakmeta/%s/maven-metadata.xml" % n, _maven_meta),
]
