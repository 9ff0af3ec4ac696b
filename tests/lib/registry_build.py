"""The building half of registry.py: real package files made in Python.

  npm_tarball()   a gzip tar with package/package.json and the given files,
                  laid out as `npm pack` writes it (package/ prefix, mode
                  0644, npm's fixed mtime 1985-10-26 08:15:00 UTC)
  wheel()         a py3-none-any wheel: the module, METADATA, WHEEL, RECORD
  sdist()         a .tar.gz sdist with PKG-INFO, pyproject.toml and the module.
                  Its default build backend is _sluice_backend.py, shipped in
                  the sdist itself (PEP 517 backend-path, stdlib only), so
                  pip builds it offline with or without build isolation.
                  backend="setuptools" writes a classic setuptools project
                  instead; building that needs `wheel` (setuptools < 70.1
                  has no bdist_wheel of its own) in the build environment.
  pad_bytes()     deterministic incompressible bytes (SHAKE-256), used to
                  give a package about the size a test asks for

Everything is deterministic: the same arguments give the same bytes, hence
the same hashes, on every run.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import re
import tarfile
import zipfile
from typing import Optional

NPM_MTIME = 499162500          # 1985-10-26T08:15:00Z, what npm pack writes
ZIP_TIME = (2020, 1, 1, 0, 0, 0)


def pad_bytes(seed: str, n: int) -> bytes:
    """n incompressible bytes, the same for the same seed."""
    if n <= 0:
        return b""
    return hashlib.shake_256(b"sluice-registry\0" + seed.encode()).digest(n)


def sha1_hex(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def sha512_sri(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def _fit(build, size: Optional[int], seed: str) -> bytes:
    """build(pad) -> bytes; choose the pad so the result has about `size`
    bytes (within a few hundred), or no pad when size is None."""
    data = build(b"")
    if not size or size <= len(data):
        return data
    n = size - len(data)
    for _ in range(4):
        data = build(pad_bytes(seed, n))
        miss = size - len(data)
        if abs(miss) <= 256 or n + miss <= 0:
            break
        n += miss
    return data


# ---------------------------------------------------------------------- npm


def npm_tarball(package_json: dict, files: Optional[dict] = None, size: Optional[int] = None) -> bytes:
    """The .tgz `npm pack` would make. files: {relative path: str | bytes}
    (package.json is always the generated one). size pads package/pad.bin."""
    files = {k: v for k, v in (files or {}).items() if k != "package.json"}
    pj = (json.dumps(package_json, indent=2) + "\n").encode()
    seed = "%s@%s" % (package_json.get("name"), package_json.get("version"))

    def build(pad: bytes) -> bytes:
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            entries = [("package.json", pj)] + sorted(
                (p, v.encode() if isinstance(v, str) else bytes(v)) for p, v in files.items())
            if pad:
                entries.append(("pad.bin", pad))
            for rel, data in entries:
                ti = tarfile.TarInfo("package/" + rel.lstrip("/"))
                ti.size, ti.mode, ti.mtime = len(data), 0o644, NPM_MTIME
                ti.uid = ti.gid = 0
                ti.uname = ti.gname = ""
                tar.addfile(ti, io.BytesIO(data))
        level = 1 if len(pad) > (1 << 20) else 9
        return gzip.compress(raw.getvalue(), compresslevel=level, mtime=0)

    return _fit(build, size, seed)


def npm_unpacked(files: Optional[dict], package_json: dict) -> tuple:
    """(fileCount, unpackedSize) for dist, as npm publish reports them."""
    files = {k: v for k, v in (files or {}).items() if k != "package.json"}
    size = len(json.dumps(package_json, indent=2)) + 1
    size += sum(len(v.encode() if isinstance(v, str) else v) for v in files.values())
    return len(files) + 1, size


# --------------------------------------------------------------------- PyPI


def normalize(name: str) -> str:
    """PEP 503 project name normalisation."""
    return re.sub(r"[-_.]+", "-", name).lower()


def dist_name(name: str) -> str:
    """The file-name form of a project name (PEP 427/625)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def core_metadata(name: str, version: str, requires=(), requires_python: Optional[str] = ">=3.7",
                  summary: Optional[str] = None) -> bytes:
    lines = ["Metadata-Version: 2.1", "Name: " + name, "Version: " + version,
             "Summary: " + (summary or "Sluice test package %s %s" % (name, version))]
    if requires_python:
        lines.append("Requires-Python: " + requires_python)
    lines += ["Requires-Dist: " + r for r in requires]
    return ("\n".join(lines) + "\n\n").encode()


def wheel(name: str, version: str, requires=(), size: Optional[int] = None,
          requires_python: Optional[str] = ">=3.7") -> tuple:
    """(filename, bytes, METADATA bytes) of a py3-none-any wheel."""
    dist = dist_name(name)
    di = "%s-%s.dist-info" % (dist, version)
    meta = core_metadata(name, version, requires, requires_python)

    def build(pad: bytes) -> bytes:
        files = {dist + "/__init__.py": ("VERSION = %r\nNAME = %r\n" % (version, name)).encode()}
        if pad:
            files[dist + "/pad.bin"] = pad
        files[di + "/METADATA"] = meta
        files[di + "/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: sluice-test-registry\n"
                                b"Root-Is-Purelib: true\nTag: py3-none-any\n")
        files[di + "/RECORD"] = ("\n".join(["%s,sha256=%s,%d" % (p, _b64(d), len(d)) for p, d in files.items()]
                                           + [di + "/RECORD,,"]) + "\n").encode()
        raw = io.BytesIO()
        with zipfile.ZipFile(raw, "w") as z:
            for p, d in files.items():
                zi = zipfile.ZipInfo(p, ZIP_TIME)
                zi.compress_type = zipfile.ZIP_STORED if p.endswith("pad.bin") else zipfile.ZIP_DEFLATED
                zi.external_attr = 0o644 << 16
                z.writestr(zi, d)
        return raw.getvalue()

    data = _fit(build, size, "%s==%s" % (name, version))
    return "%s-%s-py3-none-any.whl" % (dist, version), data, meta


BACKEND = '''"""A PEP 517 build backend in the stdlib only, shipped inside Sluice's test
sdists so that pip builds them offline, with or without build isolation."""
import base64, hashlib, os, re, zipfile


def _pkg_info():
    with open("PKG-INFO", encoding="utf-8") as f:
        text = f.read()
    fields = {}
    for line in text.split("\\n\\n", 1)[0].splitlines():
        k, _, v = line.partition(": ")
        fields.setdefault(k, v)
    return fields["Name"], fields["Version"], text.split("\\n\\n", 1)[0] + "\\n\\n"


def _dist(name):
    return re.sub(r"[-_.]+", "_", name).lower()


def _dist_info(name, version, meta):
    di = "%s-%s.dist-info" % (_dist(name), version)
    wheel = (b"Wheel-Version: 1.0\\nGenerator: sluice-test-backend\\n"
             b"Root-Is-Purelib: true\\nTag: py3-none-any\\n")
    return di, {di + "/METADATA": meta.encode(), di + "/WHEEL": wheel}


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    di, files = _dist_info(*_pkg_info())
    for path, data in files.items():
        os.makedirs(os.path.join(metadata_directory, os.path.dirname(path)), exist_ok=True)
        with open(os.path.join(metadata_directory, path), "wb") as f:
            f.write(data)
    return di


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name, version, meta = _pkg_info()
    files = {}
    for root, dirs, names in os.walk(_dist(name)):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for n in sorted(names):
            with open(os.path.join(root, n), "rb") as f:
                files[os.path.join(root, n).replace(os.sep, "/")] = f.read()
    di, info = _dist_info(name, version, meta)
    files.update(info)
    b64 = lambda d: base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b"=").decode()
    files[di + "/RECORD"] = ("\\n".join(["%s,sha256=%s,%d" % (p, b64(d), len(d)) for p, d in files.items()]
                                       + [di + "/RECORD,,"]) + "\\n").encode()
    fn = "%s-%s-py3-none-any.whl" % (_dist(name), version)
    with zipfile.ZipFile(os.path.join(wheel_directory, fn), "w", zipfile.ZIP_DEFLATED) as z:
        for path, data in files.items():
            z.writestr(zipfile.ZipInfo(path, (2020, 1, 1, 0, 0, 0)), data)
    return fn
'''


def sdist(name: str, version: str, requires=(), backend: str = "intree",
          requires_python: Optional[str] = ">=3.7") -> tuple:
    """(filename, bytes) of a minimal sdist that pip can build offline."""
    dist = dist_name(name)
    top = "%s-%s" % (dist, version)
    pkg_info = core_metadata(name, version, requires, requires_python)
    if backend == "intree":
        pyproject = ('[build-system]\nrequires = []\nbuild-backend = "_sluice_backend"\n'
                     'backend-path = ["."]\n')
        extra = {"_sluice_backend.py": BACKEND.encode()}
    elif backend == "setuptools":
        deps = ", ".join(json.dumps(r) for r in requires)
        pyproject = ('[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n'
                     '[project]\nname = %s\nversion = %s\ndependencies = [%s]\n%s\n'
                     '[tool.setuptools]\npackages = [%s]\n'
                     % (json.dumps(name), json.dumps(version), deps,
                        "requires-python = %s\n" % json.dumps(requires_python) if requires_python else "",
                        json.dumps(dist)))
        extra = {}
    else:
        raise ValueError("backend must be 'intree' or 'setuptools', not %r" % (backend,))
    files = {"PKG-INFO": pkg_info, "pyproject.toml": pyproject.encode(),
             dist + "/__init__.py": ("VERSION = %r\nNAME = %r\nFROM_SDIST = True\n" % (version, name)).encode()}
    files.update(extra)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in [dist] + sorted(files):
            data = files.get(rel)
            ti = tarfile.TarInfo(top + "/" + rel)
            ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = 1577836800, 0, 0, "", ""
            if data is None:
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(ti)
            else:
                ti.size, ti.mode = len(data), 0o644
                tar.addfile(ti, io.BytesIO(data))
    return top + ".tar.gz", gzip.compress(raw.getvalue(), compresslevel=9, mtime=0)


# -------------------------------------------------------------------- texts


_LOREM = ("Sluice test package. This paragraph stands in for the long readme of a popular "
          "package: installation, usage, options, a changelog and many examples. ")


def long_text(seed: str, n: int) -> str:
    """About n characters of readme-like text starting with the seed."""
    head = "# %s\n\n" % seed
    body = _LOREM * (max(0, n - len(head)) // len(_LOREM) + 1)
    return (head + body)[:max(n, len(head))]
