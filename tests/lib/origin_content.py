"""Content of the Sluice test origin: the generated bodies and the per-path
configuration (knobs -> ObjectSpec -> the _Plan of one response).

Part of origin.py, whose docstring documents the knobs; import from there.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Iterator, Optional

BLOCK = 64 * 1024
DEFAULT_SIZE = 1000
DEFAULT_LAST_MODIFIED = 1_600_000_000

_DEFAULT = object()  # "derive it" for etag / last_modified

# ----------------------------------------------------------------- content


def _key_bytes(path) -> bytes:
    if isinstance(path, bytes):
        return path
    return path.encode("utf-8", "surrogateescape")


def body_block(path, index: int) -> bytes:
    """Block `index` (BLOCK bytes) of the generated body of `path`."""
    seed = b"sluice-origin\0" + _key_bytes(path) + b"\0" + str(index).encode()
    return hashlib.shake_256(seed).digest(BLOCK)


def iter_body(path, size: int = DEFAULT_SIZE, piece: int = BLOCK) -> Iterator[bytes]:
    """The generated body of `path` in pieces of at most `piece` bytes."""
    src = _Body(path, size)
    off = 0
    while off < size:
        n = min(piece, BLOCK, size - off)
        yield src.read(off, n)
        off += n


def body_for(path, size: int = DEFAULT_SIZE) -> bytes:
    """The deterministic body the origin serves for `path` at `size` bytes."""
    return b"".join(iter_body(path, size))


def default_etag(path, size: int) -> str:
    """Strong ETag of the generated body of `path` at `size` bytes."""
    h = hashlib.sha256(b"gen\0" + _key_bytes(path) + b"\0" + str(size).encode())
    return '"g-%s"' % h.hexdigest()[:24]


def body_etag(body: bytes) -> str:
    """Strong ETag of an explicit body."""
    return '"b-%s"' % hashlib.sha256(body).hexdigest()[:24]


class _Body:
    """Random access to a response body, generated or explicit."""

    def __init__(self, path, size: int, data: Optional[bytes] = None):
        self.path = path
        self.data = data
        self.size = len(data) if data is not None else size
        self._idx = -1
        self._blk = b""

    def _block(self, index: int) -> bytes:
        if index != self._idx:
            self._blk = body_block(self.path, index)
            self._idx = index
        return self._blk

    def read(self, off: int, n: int) -> bytes:
        """n (<= BLOCK) bytes at offset off."""
        if self.data is not None:
            return self.data[off:off + n]
        first, start = divmod(off, BLOCK)
        out = self._block(first)[start:start + n]
        if len(out) < n:
            out += self._block(first + 1)[: n - len(out)]
        return out


# -------------------------------------------------------------- object config

_FAULT_KNOBS = ("status", "delay_ms", "rate", "stall_after", "stall_ms",
                "truncate_after", "reset_after", "hang_headers", "header_byte_ms")


@dataclass
class ObjectSpec:
    """Validated configuration of one path (see the module docstring)."""

    size: Optional[int] = None
    body: Optional[bytes] = None
    status: int = 200
    headers: object = None
    etag: object = _DEFAULT
    last_modified: object = _DEFAULT
    chunked: bool = False
    close_delimited: bool = False
    delay_ms: float = 0
    rate: float = 0
    stall_after: Optional[int] = None
    stall_ms: float = 0
    truncate_after: Optional[int] = None
    reset_after: Optional[int] = None
    hang_headers: bool = False
    header_byte_ms: float = 0
    fail_times: Optional[int] = None
    faults_left: int = field(default=0, repr=False)


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def make_spec(knobs: dict, json_body: bool = False) -> ObjectSpec:
    """Validate knobs and build an ObjectSpec; ValueError on a bad knob."""
    spec = ObjectSpec()
    names = set(ObjectSpec.__dataclass_fields__) - {"faults_left"}
    for k, v in knobs.items():
        _check(k in names, f"unknown knob {k!r}")
        _check_knob(k, v, json_body)
        if k == "body" and json_body:
            v = base64.b64decode(v, validate=True)
        if k == "headers" and isinstance(v, list):
            v = [(str(a), str(b)) for a, b in v]
        setattr(spec, k, v)
    _check(spec.size is None or spec.body is None, "give size or body, not both")
    _check(spec.truncate_after is None or spec.reset_after is None,
           "give truncate_after or reset_after, not both")
    _check(not (spec.chunked and spec.close_delimited),
           "chunked and close_delimited exclude each other")
    spec.faults_left = spec.fail_times or 0
    return spec


def _check_knob(k: str, v, json_body: bool) -> None:
    if k in ("size", "stall_after", "truncate_after", "reset_after", "fail_times"):
        _check(v is None or (_is_int(v) and v >= 0), f"{k} must be an int >= 0")
    elif k in ("delay_ms", "rate", "header_byte_ms"):
        _check(_is_num(v) and v >= 0, f"{k} must be a number >= 0")
    elif k == "stall_ms":
        _check(_is_num(v), "stall_ms must be a number")
    elif k == "status":
        _check(_is_int(v) and 100 <= v <= 999, "status must be an int 100..999")
    elif k in ("chunked", "close_delimited", "hang_headers"):
        _check(isinstance(v, bool), f"{k} must be a bool")
    elif k == "body":
        _check(isinstance(v, str) if json_body else isinstance(v, (bytes, bytearray)),
               "body must be base64 text" if json_body else "body must be bytes")
    elif k == "etag":
        _check(v is None or isinstance(v, str), "etag must be a string or None")
    elif k == "last_modified":
        _check(v is None or _is_num(v), "last_modified must be a unix time or None")
    elif k == "headers":
        ok = v is None or (isinstance(v, dict) and all(
            isinstance(a, str) and (b is None or isinstance(b, str)) for a, b in v.items()))
        ok = ok or (isinstance(v, list) and all(
            isinstance(p, (list, tuple)) and len(p) == 2 for p in v))
        _check(ok, "headers must be a {name: value} dict or a list of [name, value]")


@dataclass
class _Plan:
    """What one GET/HEAD response will look like (spec resolved + faults)."""

    body: _Body
    status: int
    etag: Optional[str]
    last_modified: Optional[float]
    headers: object
    chunked: bool
    close_delimited: bool
    delay: float = 0.0
    rate: float = 0.0
    stall_after: Optional[int] = None
    stall: Optional[float] = 0.0       # seconds, None = until the client closes
    cut_after: Optional[int] = None
    cut_reset: bool = False
    hang: bool = False
    header_byte: float = 0.0           # seconds between the head's bytes (0: at once)


def _plan_for(path: str, spec: Optional[ObjectSpec], default_size: int,
              faulty: bool) -> _Plan:
    spec = spec or ObjectSpec()
    if spec.body is not None:
        body = _Body(path, 0, bytes(spec.body))
        etag = body_etag(body.data)
    else:
        size = default_size if spec.size is None else spec.size
        body = _Body(path, size)
        etag = default_etag(path, size)
    plan = _Plan(
        body=body, status=200,
        etag=etag if spec.etag is _DEFAULT else spec.etag,
        last_modified=(DEFAULT_LAST_MODIFIED if spec.last_modified is _DEFAULT
                       else spec.last_modified),
        headers=spec.headers, chunked=spec.chunked,
        close_delimited=spec.close_delimited)
    if faulty:
        plan.status = spec.status
        plan.delay = spec.delay_ms / 1000.0
        plan.rate = float(spec.rate)
        plan.stall_after = spec.stall_after
        plan.stall = None if spec.stall_ms < 0 else spec.stall_ms / 1000.0
        plan.cut_after = spec.truncate_after if spec.reset_after is None else spec.reset_after
        plan.cut_reset = spec.reset_after is not None
        plan.hang = spec.hang_headers
        plan.header_byte = spec.header_byte_ms / 1000.0
    return plan
