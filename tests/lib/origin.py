#!/usr/bin/env python3
"""Deterministic, fault-injecting HTTP/1.1 origin server for the Sluice tests.

Tests put this server behind HAProxy + the sluice agent and then assert on
what it saw (request counts, concurrency, bytes sent, aborted responses), so
it is built to be exact rather than fast: one thread per connection, every
counter updated under one lock, every wait bounded or woken by stop().

Use it as a module::

    from origin import OriginServer, body_for
    with OriginServer() as origin:              # binds 127.0.0.1, port 0
        origin.set_object("/a.tgz", size=50_000, rate=100_000)
        ...  # fetch http://127.0.0.1:{origin.port}/a.tgz through the proxy
        assert origin.requests("/a.tgz") == 1
        assert body == body_for("/a.tgz", 50_000)

or as a script (runs until SIGTERM/SIGINT, then exits 0)::

    python3 tests/lib/origin.py --port 0 --port-file /tmp/origin.port

and drive it over HTTP with ``RemoteOrigin(port)`` or plain curl.

Content
-------
Every GET/HEAD path is served. The request target is the object key, exactly
as it appeared on the wire (path plus query, no normalisation; an absolute-form
target ``http://host/p`` is reduced to ``/p``). Unless configured, the body of
target P is ``body_for(P, default_size)`` (1000 bytes): 64 KiB blocks of
SHAKE-256(b"sluice-origin\\0" + P + b"\\0" + block number), so any test can
compute the expected bytes without fetching. The default ETag is strong and
derived from the content (``expected_etag()``); the default Last-Modified is
the fixed time ``DEFAULT_LAST_MODIFIED``.

Knobs (``set_object(path, **knobs)``, or ``POST /_origin/object`` with JSON
``{"path": P, ...knobs}``). set_object *replaces* the whole configuration of
P; ``set_object(P)`` with no knobs restores the default.

    size            int, body length of the generated body
    body            bytes (base64 string in JSON), explicit body; excludes size
    status          int, default 200; 204/304/1xx responses carry no body
    headers         dict: added, replacing a default header of the same name
                    (case-insensitive; value None removes it); or a list of
                    [name, value] pairs appended verbatim (duplicates allowed).
                    Overriding Content-Length/Transfer-Encoding/Connection
                    makes the server close the connection after the body.
    etag            str (sent verbatim, quote it yourself) or None for no ETag
    last_modified   unix time, or None for no Last-Modified
    chunked         bool, Transfer-Encoding: chunked instead of Content-Length
                    (an HTTP/1.0 request gets a close-delimited body instead)
    close_delimited bool, no length at all: the body ends when the server closes
    delay_ms        wait before the status line (time to first byte)
    rate            body bytes per second (0 = unlimited), sent in slices of
                    about 1/50 s so the cap is smooth
    stall_after     send this many body bytes, then go silent for stall_ms ...
    stall_ms        ... milliseconds (< 0: until the client closes), then resume
    truncate_after  headers promise the full body; only this many body bytes
                    are sent, then the connection is closed cleanly (FIN)
    reset_after     same, but closed with RST (SO_LINGER 0)
    hang_headers    bool, read the request and never answer (until the client
                    closes or the server stops)
    fail_times      int: the *fault* knobs (status, delay_ms, rate, stall_*,
                    truncate_after, reset_after, hang_headers) apply only to the
                    first N GET/HEAD requests for the path; later requests get a
                    normal 200. None (default) = always.

Faults that concern the body (rate, stall, truncate, reset) apply to GET only;
HEAD gets the headers a GET would get (after delay/hang). Waits (delay, stall,
pacing, hang) watch the socket: a client that closes meanwhile ends the
response at once and is counted in ``aborted_by_client``.

Conditional GET/HEAD: If-None-Match (weak comparison, ``*``) and, when there is
no If-None-Match, If-Modified-Since, answer 304 if they match and the status
would have been 200.

Other methods (POST, PUT, DELETE, ...) on any non-control path: the request
body is read (Content-Length or chunked, ``Expect: 100-continue`` honoured) and
the reply is 200 ``{"method": M, "path": P, "body_len": N}``.

Control API (same port, never counted in the stats; a connection whose first
request is a control request is not counted as a connection either):

    GET  /_origin/health     {"ok": true, "port": N}
    GET  /_origin/stats      the stats() dict
    GET  /_origin/requests   the request log (last 1000 requests, oldest first)
    POST /_origin/reset      clear stats, objects and the request log
    POST /_origin/object     {"path": P, ...knobs} (400 with a message if invalid)
    anything else under /_origin/ -> 404 (405 for a wrong method)

Stats (``stats()`` / ``GET /_origin/stats``)::

    total_requests        non-control requests whose headers were read
    methods               {method: count}
    paths                 {path: {"requests": {method: n}, "bytes_sent": n,
                                  "statuses": {"200": n}, "aborted_by_client": n}}
    statuses              {"200": n, ...} status lines sent
    in_flight             requests whose response is not finished yet
    max_in_flight         highest in_flight observed
    connections_accepted  connections accepted (minus control connections)
    connections_open      of those, still open
    aborted_by_client     responses ended because the peer closed/reset first
    responses_completed   responses fully handed to the kernel
    responses_cut         responses ended on purpose by truncate/reset_after
    send_timeouts         responses abandoned because a send blocked io_timeout
    bad_requests          malformed requests answered with 400/431

"Finished" means the last byte was handed to the kernel (or the response was
cut by a fault, or aborted). bytes_sent counts body bytes as they are handed
to the kernel, so tests can watch a transfer progress. Request counts are
updated before the first response byte, but the end-of-response counters
(bytes_sent's last slice, in_flight, responses_completed, connections_open)
settle just *after* the client may already hold the response: call
``wait_idle()`` (or wait_until) before asserting on them. reset() clears the
counters but not the gauges in_flight/connections_open; max_in_flight
restarts from the current in_flight, and responses that began before the
reset add nothing to the new counters.

A peer that half-closes (shutdown(SHUT_WR)) is treated as gone while the
server waits (delay, stall, hang); HTTP clients do not do that.
"""

from __future__ import annotations

import argparse
import base64
import collections
import copy
import email.utils
import hashlib
import json
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Iterator, Optional
from urllib.parse import urlsplit

HOST = "127.0.0.1"
BLOCK = 64 * 1024
DEFAULT_SIZE = 1000
DEFAULT_LAST_MODIFIED = 1_600_000_000
CONTROL_PREFIX = "/_origin/"
MAX_HEAD = 64 * 1024
MAX_CONTROL_BODY = 64 * 1024 * 1024
LOG_SIZE = 1000
SERVER_NAME = "sluice-test-origin"

_POLLRDHUP = getattr(select, "POLLRDHUP", 0x2000)
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
                "truncate_after", "reset_after", "hang_headers")


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
    elif k in ("delay_ms", "rate"):
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
    return plan


# ------------------------------------------------------------------ requests


class _BadRequest(Exception):
    def __init__(self, status: int, msg: str):
        super().__init__(msg)
        self.status = status


class _Gone(Exception):
    """The peer closed or reset the connection."""


class _Stopped(Exception):
    """The server is stopping."""


class _Timeout(Exception):
    """An idle or I/O timeout expired."""


@dataclass
class _Request:
    method: str
    target: str
    version: str
    headers: list
    body_len: int = 0
    body: bytes = b""
    epoch: int = 0          # stats epoch the request was counted in

    def header(self, name: str) -> Optional[str]:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    @property
    def is_control(self) -> bool:
        return self.target.startswith(CONTROL_PREFIX)

    def wants_close(self) -> bool:
        conn = (self.header("connection") or "").lower()
        tokens = {t.strip() for t in conn.split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" not in tokens
        return "close" in tokens


TIMEOUT, CLOSED, STOPPED = "timeout", "closed", "stopped"


class _Conn:
    """One accepted connection: buffered reads, stop-aware waits, writes."""

    def __init__(self, sock: socket.socket, server: "OriginServer"):
        self.sock = sock
        self.server = server
        self.buf = bytearray()
        self.counted = True
        self.closed = False
        sock.settimeout(server.io_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # ---- waiting
    def _poll(self, events: int, seconds: Optional[float]) -> str:
        """Wait for `events` on the socket; TIMEOUT / STOPPED / 'ready'."""
        p = select.poll()
        p.register(self.sock.fileno(), events)
        p.register(self.server._wake_r, select.POLLIN)
        deadline = None if seconds is None else time.monotonic() + seconds
        while True:
            ms = None
            if deadline is not None:
                ms = max(0, int((deadline - time.monotonic()) * 1000 + 0.999))
            ready = p.poll(ms)
            if self.server._stopping.is_set():
                return STOPPED
            if ready:
                return "ready"
            if deadline is not None and time.monotonic() >= deadline:
                return TIMEOUT

    def wait_peer(self, seconds: Optional[float]) -> str:
        """Sleep `seconds` (None: forever) unless the peer goes away first."""
        if seconds is not None and seconds <= 0:
            return TIMEOUT
        r = self._poll(_POLLRDHUP, seconds)
        return CLOSED if r == "ready" else r

    # ---- reading
    def _recv(self, timeout: float) -> bytes:
        r = self._poll(select.POLLIN, timeout)
        if r == STOPPED:
            raise _Stopped()
        if r == TIMEOUT:
            raise _Timeout()
        try:
            return self.sock.recv(65536)
        except (ConnectionError, socket.timeout, OSError):
            return b""

    def _fill(self, timeout: float) -> None:
        data = self._recv(timeout)
        if not data:
            raise _Gone()
        self.buf += data

    def read_request(self) -> Optional[_Request]:
        """Next request, or None on a clean close between requests."""
        while True:
            while self.buf[:2] == b"\r\n":
                del self.buf[:2]
            idx = self.buf.find(b"\r\n\r\n")
            if idx >= 0:
                break
            if len(self.buf) > MAX_HEAD:
                raise _BadRequest(431, "request head too large")
            timeout = self.server.io_timeout if self.buf else self.server.idle_timeout
            try:
                self._fill(timeout)
            except _Gone:
                if self.buf.strip():
                    raise
                return None
            except _Timeout:
                if self.buf:
                    raise
                return None
        head = bytes(self.buf[:idx]).decode("latin-1")
        del self.buf[:idx + 4]
        req = _parse_head(head)
        self._read_request_body(req)
        return req

    def _read_request_body(self, req: _Request) -> None:
        te = req.header("transfer-encoding")
        cl = req.header("content-length")
        if te is None and cl is None:
            return
        if (req.header("expect") or "").lower() == "100-continue":
            self.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        keep = req.is_control
        if te is not None:
            if te.split(",")[-1].strip().lower() != "chunked":
                raise _BadRequest(400, "unsupported transfer-encoding")
            self._read_chunked(req, keep)
        else:
            lengths = {v.strip() for k, v in req.headers if k.lower() == "content-length"}
            if len(lengths) != 1 or not next(iter(lengths)).isdigit():
                raise _BadRequest(400, "bad content-length")
            self._read_exact(req, int(next(iter(lengths))), keep)

    def _take(self, req: _Request, n: int, keep: bool) -> None:
        chunk = bytes(self.buf[:n])
        del self.buf[:n]
        req.body_len += len(chunk)
        if keep:
            if req.body_len > MAX_CONTROL_BODY:
                raise _BadRequest(413, "control body too large")
            req.body += chunk

    def _read_exact(self, req: _Request, n: int, keep: bool) -> None:
        while n > 0:
            if not self.buf:
                self._fill(self.server.io_timeout)
            take = min(n, len(self.buf))
            self._take(req, take, keep)
            n -= take

    def _read_line(self) -> bytes:
        while True:
            idx = self.buf.find(b"\r\n")
            if idx >= 0:
                line = bytes(self.buf[:idx])
                del self.buf[:idx + 2]
                return line
            if len(self.buf) > MAX_HEAD:
                raise _BadRequest(400, "chunk line too long")
            self._fill(self.server.io_timeout)

    def _read_chunked(self, req: _Request, keep: bool) -> None:
        while True:
            line = self._read_line().split(b";")[0].strip()
            try:
                size = int(line, 16)
            except ValueError:
                raise _BadRequest(400, "bad chunk size") from None
            if size == 0:
                while self._read_line():
                    pass
                return
            self._read_exact(req, size, keep)
            if self._read_line():
                raise _BadRequest(400, "missing CRLF after chunk")

    # ---- writing
    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except socket.timeout:
            raise _Timeout() from None
        except OSError:
            if self.server._stopping.is_set():
                raise _Stopped() from None
            raise _Gone() from None

    # ---- closing
    def close(self, reset: bool = False) -> None:
        """Close with RST, or gracefully: FIN, drain briefly, close."""
        if self.closed:
            return
        self.closed = True
        try:
            if reset:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                     struct.pack("ii", 1, 0))
            else:
                self.sock.shutdown(socket.SHUT_WR)
                self._drain(1.0)
        except OSError:
            pass
        self.sock.close()

    def _drain(self, seconds: float) -> None:
        """Read and drop until the peer closes (bounded), so close() sends no RST."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or self._poll(select.POLLIN, left) != "ready":
                return
            try:
                if not self.sock.recv(65536):
                    return
            except OSError:
                return


def _parse_head(head: str) -> _Request:
    lines = head.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[2].startswith("HTTP/1."):
        raise _BadRequest(400, "bad request line")
    method, target, version = parts
    if target.startswith(("http://", "https://")):
        u = urlsplit(target)
        target = (u.path or "/") + ("?" + u.query if u.query else "")
    if not target.startswith("/"):
        raise _BadRequest(400, "bad request target")
    target = target.encode("latin-1").decode("utf-8", "surrogateescape")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or " " in name:
            raise _BadRequest(400, "bad header line")
        headers.append((name, value.strip()))
    return _Request(method=method.upper(), target=target, version=version, headers=headers)


# --------------------------------------------------------------- responses


def _http_date(t: float) -> str:
    return email.utils.formatdate(t, usegmt=True)


_REASONS = {200: "OK", 204: "No Content", 206: "Partial Content", 304: "Not Modified",
            400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            413: "Content Too Large", 429: "Too Many Requests",
            431: "Request Header Fields Too Large", 500: "Internal Server Error",
            502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


def _status_line(status: int) -> str:
    return f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"


def _apply_extra(headers: list, extra) -> bool:
    """Merge the `headers` knob into the header list; True if framing changed."""
    if not extra:
        return False
    framing = {"content-length", "transfer-encoding", "connection"}
    if isinstance(extra, list):
        headers.extend(extra)
        return any(k.lower() in framing for k, _ in extra)
    changed = False
    for name, value in extra.items():
        low = name.lower()
        headers[:] = [(k, v) for k, v in headers if k.lower() != low]
        if value is not None:
            headers.append((name, value))
        changed = changed or low in framing
    return changed


def _not_modified(req: _Request, plan: _Plan) -> bool:
    inm = req.header("if-none-match")
    if inm is not None:
        if plan.etag is None:
            return False
        if inm.strip() == "*":
            return True
        ours = plan.etag.removeprefix("W/")
        return any(t.strip().removeprefix("W/") == ours for t in inm.split(","))
    ims = req.header("if-modified-since")
    if ims is None or plan.last_modified is None:
        return False
    try:
        since = email.utils.parsedate_to_datetime(ims).timestamp()
    except (TypeError, ValueError, IndexError):
        return False
    return int(plan.last_modified) <= since


# ------------------------------------------------------------------- server


def _new_stats() -> dict:
    return {
        "total_requests": 0, "methods": {}, "paths": {}, "statuses": {},
        "in_flight": 0, "max_in_flight": 0,
        "connections_accepted": 0, "connections_open": 0,
        "aborted_by_client": 0, "responses_completed": 0, "responses_cut": 0,
        "send_timeouts": 0, "bad_requests": 0,
    }


class _Queries:
    """Convenience readers shared by OriginServer and RemoteOrigin."""

    def stats(self) -> dict:  # pragma: no cover - overridden
        raise NotImplementedError

    def requests(self, path: str, method: Optional[str] = "GET") -> int:
        """Requests seen for `path` with `method` (None: all methods)."""
        rec = self.stats()["paths"].get(path)
        if rec is None:
            return 0
        if method is None:
            return sum(rec["requests"].values())
        return rec["requests"].get(method.upper(), 0)

    def bytes_sent(self, path: str) -> int:
        """Body bytes handed to the kernel for `path` so far."""
        rec = self.stats()["paths"].get(path)
        return rec["bytes_sent"] if rec else 0


class OriginServer(_Queries):
    """Threaded HTTP/1.1 test origin on 127.0.0.1 (see the module docstring)."""

    host = HOST

    def __init__(self, port: int = 0, default_size: int = DEFAULT_SIZE,
                 idle_timeout: float = 60.0, io_timeout: float = 120.0):
        self.port = port
        self.default_size = default_size
        self.idle_timeout = idle_timeout
        self.io_timeout = io_timeout
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._objects: dict[str, ObjectSpec] = {}
        self._stats = _new_stats()
        self._epoch = 0
        self._log: collections.deque = collections.deque(maxlen=LOG_SIZE)
        self._conns: set[_Conn] = set()
        self._threads: set[threading.Thread] = set()
        self._stopping = threading.Event()
        self._listener: Optional[socket.socket] = None
        self._accept_thread: Optional[threading.Thread] = None
        self._wake_r = self._wake_w = -1

    # ---- lifecycle
    def start(self) -> "OriginServer":
        """Bind, listen and start accepting; returns self (port is set)."""
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((HOST, self.port))
        ls.listen(1024)
        self.port = ls.getsockname()[1]
        self._listener = ls
        self._wake_r, self._wake_w = os.pipe()
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"origin-accept-{self.port}", daemon=True)
        self._accept_thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, cut every connection, join the threads (bounded)."""
        if self._listener is None or self._stopping.is_set():
            return
        self._stopping.set()
        os.write(self._wake_w, b"x")
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        if self._accept_thread is not None:
            self._accept_thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self._listener.close()
        # Close the wake pipe only when every thread is gone: a straggler
        # still polls it and must not poll a reused descriptor.
        if not any(t.is_alive() for t in threads):
            os.close(self._wake_r)
            os.close(self._wake_w)

    def __enter__(self) -> "OriginServer":
        return self.start() if self._listener is None else self

    def __exit__(self, *exc) -> None:
        self.stop()

    def url(self, path: str = "/") -> str:
        return f"http://{HOST}:{self.port}{path}"

    # ---- configuration and queries
    def set_object(self, path: str, **knobs) -> None:
        """Replace the configuration of `path` (no knobs: back to default)."""
        spec = make_spec(knobs)
        with self._lock:
            if knobs:
                self._objects[path] = spec
            else:
                self._objects.pop(path, None)

    def reset(self) -> None:
        """Forget objects, counters and the request log (gauges survive)."""
        with self._lock:
            self._objects.clear()
            self._log.clear()
            old = self._stats
            self._stats = _new_stats()
            self._epoch += 1
            for gauge in ("in_flight", "connections_open"):
                self._stats[gauge] = old[gauge]
            self._stats["max_in_flight"] = old["in_flight"]

    def stats(self) -> dict:
        """A deep copy of the counters (layout in the module docstring)."""
        with self._lock:
            return copy.deepcopy(self._stats)

    def wait_idle(self, timeout: float = 5.0, connections: bool = False) -> dict:
        """Wait until no response is in flight (and, with connections=True,
        no counted connection is open); return stats(). AssertionError on
        timeout. Use it before asserting on counters that settle after the
        client has its response (bytes_sent, in_flight, responses_completed)."""
        def idle() -> bool:
            s = self._stats
            return s["in_flight"] == 0 and (not connections or s["connections_open"] == 0)
        with self._changed:
            if not self._changed.wait_for(idle, timeout):
                raise AssertionError(
                    f"origin not idle after {timeout}s: in_flight={self._stats['in_flight']}"
                    f" connections_open={self._stats['connections_open']}")
            return copy.deepcopy(self._stats)

    def request_log(self, path: Optional[str] = None) -> list:
        """Recent requests (method, path, headers, body_len, time), oldest first."""
        with self._lock:
            log = copy.deepcopy(list(self._log))
        return [e for e in log if path is None or e["path"] == path]

    def expected_body(self, path: str) -> bytes:
        """The body a normal 200 GET of `path` returns with the current knobs."""
        plan = self._plan(path, consume=False)
        return b"".join(plan.body.read(o, min(BLOCK, plan.body.size - o))
                        for o in range(0, plan.body.size, BLOCK))

    def expected_etag(self, path: str) -> Optional[str]:
        """The ETag header a GET of `path` carries with the current knobs."""
        return self._plan(path, consume=False).etag

    # ---- internals: bookkeeping
    def _plan(self, path: str, consume: bool) -> _Plan:
        with self._lock:
            spec = self._objects.get(path)
            faulty = True
            if spec is not None and spec.fail_times is not None:
                faulty = spec.faults_left > 0
                if faulty and consume:
                    spec.faults_left -= 1
            return _plan_for(path, spec, self.default_size, faulty)

    def _path_rec(self, path: str) -> dict:
        return self._stats["paths"].setdefault(
            path, {"requests": {}, "bytes_sent": 0, "statuses": {}, "aborted_by_client": 0})

    def _begin(self, req: _Request) -> None:
        with self._lock:
            req.epoch = self._epoch
            s = self._stats
            s["total_requests"] += 1
            s["methods"][req.method] = s["methods"].get(req.method, 0) + 1
            reqs = self._path_rec(req.target)["requests"]
            reqs[req.method] = reqs.get(req.method, 0) + 1
            s["in_flight"] += 1
            s["max_in_flight"] = max(s["max_in_flight"], s["in_flight"])
            self._log.append({"method": req.method, "path": req.target,
                              "headers": [list(h) for h in req.headers],
                              "body_len": req.body_len, "time": time.time()})

    def _end(self, req: _Request, outcome: str) -> None:
        with self._lock:
            s = self._stats
            s["in_flight"] -= 1
            if req.epoch != self._epoch:
                pass  # began before a reset(): only the gauge is adjusted
            elif outcome == "complete":
                s["responses_completed"] += 1
            elif outcome == "cut":
                s["responses_cut"] += 1
            elif outcome == CLOSED:
                s["aborted_by_client"] += 1
                self._path_rec(req.target)["aborted_by_client"] += 1
            elif outcome == TIMEOUT:
                s["send_timeouts"] += 1
            self._changed.notify_all()

    def _count_status(self, req: _Request, status: int) -> None:
        with self._lock:
            if req.epoch != self._epoch:
                return
            for d in (self._stats["statuses"], self._path_rec(req.target)["statuses"]):
                d[str(status)] = d.get(str(status), 0) + 1

    def _count_bytes(self, req: _Request, n: int) -> None:
        with self._lock:
            if req.epoch == self._epoch:
                self._path_rec(req.target)["bytes_sent"] += n

    def _uncount_conn(self, conn: _Conn) -> None:
        with self._lock:
            if conn.counted:
                conn.counted = False
                self._stats["connections_accepted"] -= 1
                self._stats["connections_open"] -= 1

    # ---- internals: accept and serve
    def _accept_loop(self) -> None:
        p = select.poll()
        p.register(self._listener.fileno(), select.POLLIN)
        p.register(self._wake_r, select.POLLIN)
        while not self._stopping.is_set():
            p.poll()
            if self._stopping.is_set():
                return
            try:
                sock, _ = self._listener.accept()
            except OSError:
                continue
            self._spawn(sock)

    def _spawn(self, sock: socket.socket) -> None:
        conn = _Conn(sock, self)
        t = threading.Thread(target=self._serve, args=(conn,),
                             name=f"origin-conn-{self.port}", daemon=True)
        with self._lock:
            self._conns.add(conn)
            self._threads.add(t)
            self._stats["connections_accepted"] += 1
            self._stats["connections_open"] += 1
        t.start()

    def _serve(self, conn: _Conn) -> None:
        reset = False
        first = True
        try:
            while not self._stopping.is_set():
                try:
                    req = conn.read_request()
                except _BadRequest as e:
                    self._bad_request(conn, e)
                    break
                if req is None:
                    break
                if req.is_control and first:
                    self._uncount_conn(conn)
                first = False
                if req.is_control:
                    keep = self._control(conn, req)
                else:
                    keep, reset = self._handle(conn, req)
                if not keep:
                    break
        except (_Gone, _Stopped, _Timeout):
            pass
        finally:
            conn.close(reset=reset)
            with self._lock:
                if conn.counted:
                    self._stats["connections_open"] -= 1
                self._conns.discard(conn)
                self._changed.notify_all()
                self._threads.discard(threading.current_thread())

    def _bad_request(self, conn: _Conn, e: _BadRequest) -> None:
        with self._lock:
            self._stats["bad_requests"] += 1
        body = (str(e) + "\n").encode()
        head = (_status_line(e.status) + "Content-Type: text/plain\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
        try:
            conn.send(head.encode() + body)
        except (_Gone, _Stopped, _Timeout):
            pass

    def _handle(self, conn: _Conn, req: _Request) -> tuple[bool, bool]:
        """Serve one counted request; returns (keep_alive, close_with_rst)."""
        self._begin(req)
        outcome, keep, reset = "complete", False, False
        try:
            if req.method in ("GET", "HEAD"):
                outcome, keep, reset = self._serve_object(conn, req)
            else:
                keep = self._echo(conn, req)
        except _Gone:
            outcome = CLOSED
        except _Stopped:
            outcome = STOPPED
        except _Timeout:
            outcome = TIMEOUT
        finally:
            self._end(req, outcome)
        return keep and outcome == "complete", reset

    def _echo(self, conn: _Conn, req: _Request) -> bool:
        body = json.dumps({"method": req.method, "path": req.target,
                           "body_len": req.body_len}).encode()
        close = req.wants_close()
        self._count_status(req, 200)
        conn.send(self._simple_head(200, "application/json", len(body), close) + body)
        return not close

    @staticmethod
    def _simple_head(status: int, ctype: str, length: int, close: bool) -> bytes:
        head = (_status_line(status) + f"Server: {SERVER_NAME}\r\n"
                f"Date: {_http_date(time.time())}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {length}\r\n")
        if close:
            head += "Connection: close\r\n"
        return (head + "\r\n").encode()

    def _serve_object(self, conn: _Conn, req: _Request) -> tuple[str, bool, bool]:
        """GET/HEAD of an object; returns (outcome, keep_alive, rst)."""
        plan = self._plan(req.target, consume=True)
        if plan.hang:
            return conn.wait_peer(None), False, False
        if plan.delay > 0:
            r = conn.wait_peer(plan.delay)
            if r != TIMEOUT:
                return r, False, False
        status = plan.status
        if status == 200 and _not_modified(req, plan):
            status = 304
        head, has_body, close = self._object_head(req, plan, status)
        self._count_status(req, status)
        conn.send(head)
        if not has_body or req.method == "HEAD":
            return "complete", not close, False
        cut = self._send_body(conn, req, plan)
        if cut:
            return "cut", False, plan.cut_reset
        return "complete", not close, False

    def _object_head(self, req: _Request, plan: _Plan, status: int):
        """Status line + headers; returns (bytes, has_body, close_after)."""
        has_body = status >= 200 and status not in (204, 304)
        sends_body = has_body and req.method == "GET"
        chunked = plan.chunked and req.version != "HTTP/1.0"
        unframed = plan.close_delimited or (plan.chunked and not chunked)
        plan.chunked = chunked
        headers = [("Server", SERVER_NAME), ("Date", _http_date(time.time()))]
        if has_body:
            headers.append(("Content-Type", "application/octet-stream"))
            if chunked:
                headers.append(("Transfer-Encoding", "chunked"))
            elif not unframed:
                headers.append(("Content-Length", str(plan.body.size)))
        if plan.etag is not None:
            headers.append(("ETag", plan.etag))
        if plan.last_modified is not None:
            headers.append(("Last-Modified", _http_date(plan.last_modified)))
        reframed = _apply_extra(headers, plan.headers)
        close = req.wants_close() or (sends_body and (
            unframed or reframed or plan.cut_after is not None))
        if close:
            headers = [(k, v) for k, v in headers if k.lower() != "connection"]
            headers.append(("Connection", "close"))
        elif req.version == "HTTP/1.0":
            headers.append(("Connection", "keep-alive"))
        text = _status_line(status) + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
        return text.encode("utf-8", "surrogateescape"), has_body, close

    def _send_body(self, conn: _Conn, req: _Request, plan: _Plan) -> bool:
        """Send the body with pacing and faults; True if it was cut on purpose."""
        size = plan.body.size
        end = size if plan.cut_after is None else min(plan.cut_after, size)
        stall_at = plan.stall_after if plan.stall_after is not None and plan.stall_after < end \
            else None
        piece = _slice_size(plan.rate)
        sent = paced = 0
        t0 = time.monotonic()
        while sent < end:
            if stall_at is not None and sent == stall_at:
                self._stall(conn, plan.stall)
                stall_at, paced, t0 = None, 0, time.monotonic()
                continue
            limit = end if stall_at is None else stall_at
            n = min(piece, limit - sent)
            if plan.rate > 0:
                self._pace(conn, t0 + paced / plan.rate)
            data = plan.body.read(sent, n)
            conn.send(b"%x\r\n%s\r\n" % (n, data) if plan.chunked else data)
            sent += n
            paced += n
            self._count_bytes(req, n)
        if plan.cut_after is not None:
            return True
        if plan.chunked:
            conn.send(b"0\r\n\r\n")
        return False

    @staticmethod
    def _stall(conn: _Conn, seconds: Optional[float]) -> None:
        r = conn.wait_peer(seconds)
        if r == CLOSED:
            raise _Gone()
        if r == STOPPED:
            raise _Stopped()

    @staticmethod
    def _pace(conn: _Conn, when: float) -> None:
        OriginServer._stall(conn, when - time.monotonic())

    # ---- control API
    def _control(self, conn: _Conn, req: _Request) -> bool:
        path = req.target.split("?", 1)[0][len(CONTROL_PREFIX):]
        routes = {"health": ("GET", lambda: {"ok": True, "port": self.port}),
                  "stats": ("GET", self.stats),
                  "requests": ("GET", self.request_log),
                  "reset": ("POST", self._control_reset),
                  "object": ("POST", lambda: self._control_object(req.body))}
        status, payload = 200, None
        if path not in routes:
            status, payload = 404, {"error": f"unknown control path {req.target}"}
        elif req.method != routes[path][0]:
            status, payload = 405, {"error": f"use {routes[path][0]}"}
        else:
            try:
                payload = routes[path][1]()
            except (ValueError, TypeError, KeyError) as e:
                status, payload = 400, {"error": str(e)}
        body = json.dumps(payload).encode()
        close = req.wants_close()
        conn.send(self._simple_head(status, "application/json", len(body), close) + body)
        return not close

    def _control_reset(self) -> dict:
        self.reset()
        return {"ok": True}

    def _control_object(self, raw: bytes) -> dict:
        try:
            knobs = json.loads(raw or b"null")
        except ValueError:
            raise ValueError("body must be JSON") from None
        if not isinstance(knobs, dict) or not isinstance(knobs.get("path"), str):
            raise ValueError('body must be a JSON object with a string "path"')
        path = knobs.pop("path")
        spec = make_spec(knobs, json_body=True)
        with self._lock:
            if knobs:
                self._objects[path] = spec
            else:
                self._objects.pop(path, None)
        return {"ok": True}


def _slice_size(rate: float) -> int:
    """Body slice: ~1/50 s of data when rate-capped, else one block."""
    if rate <= 0:
        return BLOCK
    return int(max(1, min(16384, rate / 50)))


# -------------------------------------------------------------- remote client


class RemoteOrigin(_Queries):
    """Control-API client for an origin running in another process."""

    def __init__(self, port: int, host: str = HOST, timeout: float = 5.0):
        self.port = port
        self.host = host
        self.timeout = timeout

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def _call(self, method: str, name: str, payload=None):
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(self.url(CONTROL_PREFIX + name), data=data,
                                     method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise ValueError(f"{name}: {e.code} {e.read().decode(errors='replace')}") from None

    def set_object(self, path: str, **knobs) -> None:
        if isinstance(knobs.get("body"), (bytes, bytearray)):
            knobs["body"] = base64.b64encode(knobs["body"]).decode()
        self._call("POST", "object", {"path": path, **knobs})

    def reset(self) -> None:
        self._call("POST", "reset", {})

    def stats(self) -> dict:
        return self._call("GET", "stats")

    def request_log(self, path: Optional[str] = None) -> list:
        return [e for e in self._call("GET", "requests") if path is None or e["path"] == path]

    def health(self) -> dict:
        return self._call("GET", "health")

    def wait_idle(self, timeout: float = 5.0, connections: bool = False) -> dict:
        """Poll stats until idle (see OriginServer.wait_idle)."""
        deadline = time.monotonic() + timeout
        while True:
            s = self.stats()
            if s["in_flight"] == 0 and (not connections or s["connections_open"] == 0):
                return s
            if time.monotonic() >= deadline:
                raise AssertionError(f"origin not idle after {timeout}s: {s}")
            time.sleep(0.02)


# -------------------------------------------------------------------- script


def _write_port_file(path: str, port: int) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(f"{port}\n")
    os.replace(tmp, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Sluice test origin (127.0.0.1 only)")
    ap.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    ap.add_argument("--port-file", help="write the bound port here (atomically)")
    ap.add_argument("--default-size", type=int, default=DEFAULT_SIZE)
    ap.add_argument("--idle-timeout", type=float, default=60.0)
    args = ap.parse_args(argv)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    server = OriginServer(port=args.port, default_size=args.default_size,
                          idle_timeout=args.idle_timeout).start()
    print(server.port, flush=True)
    if args.port_file:
        _write_port_file(args.port_file, server.port)
    while not done.wait(1.0):
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
