"""The serving half of registry.py: listeners, fault knobs, the request log.

A fixture (NpmRegistry, PypiIndex; registry_cargo.CargoRegistry,
registry_maven.MavenRepo) owns one or more named listeners ("registry";
"index" and "files"; "repo") and answers every request through
``_route(listener, request) -> Response``. This module does the rest, the
same way for every fixture:

  * each listener is a ThreadingHTTPServer (HTTP/1.1, keep-alive) on
    127.0.0.1 whose port is chosen once, at construction, from below the
    ephemeral range (httpclient.free_port), so that set_refuse(False) can
    bind the SAME port again and no outgoing connection can take it
    meanwhile;
  * every request is logged (method, target, headers) before it is
    answered, so counts are exact as soon as a client holds a response;
  * the knobs set_status/set_refuse are checked on every request, under one
    lock, and may be turned while serving;
  * stop() (and set_refuse(True)) shuts down the open connections too, so
    every handler thread ends and is joined: nothing outlives the fixture.
"""

from __future__ import annotations

import email.utils
import hashlib
import os
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional, Union
from urllib.parse import unquote, urlsplit

from httpclient import Headers, free_port

HOST = "127.0.0.1"
SEND_PIECE = 256 * 1024


# ------------------------------------------------------------------ records


class LogHeaders(Headers):
    """httpclient.Headers (ordered, case-insensitive) that dict() accepts."""

    def keys(self):
        return [k for k, _ in self.items()]


@dataclass
class LoggedRequest:
    """One request as the fixture saw it. Attribute or item access:
    ``r.path`` and ``r["path"]`` are the same; ``r.headers.get("accept")``
    is case-insensitive."""

    method: str
    target: str                 # the request target as sent (path + query)
    path: str                   # target without the query string
    headers: LogHeaders
    listener: str               # "registry" | "index" | "files"
    time: float                 # time.monotonic() when the head was read
    status: Optional[int] = None  # filled in once the status line is chosen

    def __getitem__(self, key):
        return getattr(self, key)

    def get(self, key, default=None):
        return getattr(self, key, default)

    @property
    def accept(self) -> Optional[str]:
        return self.headers.get("Accept")

    @property
    def if_none_match(self) -> Optional[str]:
        return self.headers.get("If-None-Match")

    @property
    def if_modified_since(self) -> Optional[str]:
        return self.headers.get("If-Modified-Since")

    @property
    def conditional(self) -> bool:
        return self.if_none_match is not None or self.if_modified_since is not None


@dataclass
class Response:
    status: int
    headers: list = field(default_factory=list)   # [(name, value)]
    body: bytes = b""
    file: Optional[str] = None                    # serve this file instead of body


@dataclass
class _Fault:
    status: int
    remaining: Optional[int]
    retry_after: Optional[int]
    match: object
    only: Optional[str]


PathMatch = Union[None, str, "re.Pattern"]


def path_matches(match: PathMatch, path: str, target: str) -> bool:
    """None matches everything; a str matches the path or the whole target
    (with its query), also once both are percent-decoded (so "/@demo/c"
    counts "/@demo%2fc" and "/@demo%2Fc"); a compiled regex is searched in
    the target as sent."""
    if match is None:
        return True
    if isinstance(match, str):
        return match == path or match == target or unquote(match) in (unquote(path), unquote(target))
    return bool(match.search(target))


# ------------------------------------------------------------------ helpers


def strong_etag(body: bytes) -> str:
    return '"%s"' % hashlib.sha256(body).hexdigest()[:40]


def http_date(ts: float) -> str:
    return email.utils.formatdate(ts, usegmt=True)


def iso_time(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


def not_modified(headers, etag: Optional[str], mtime: Optional[float]) -> bool:
    """RFC 9110 13.2.2: If-None-Match (weak comparison) decides when present;
    otherwise If-Modified-Since against the last modification."""
    inm = headers.get("If-None-Match")
    if inm is not None:
        if etag is None:
            return False
        mine = etag[2:] if etag.startswith("W/") else etag
        for tag in inm.split(","):
            tag = tag.strip()
            if tag == "*" or (tag[2:] if tag.startswith("W/") else tag) == mine:
                return True
        return False
    ims = headers.get("If-Modified-Since")
    if ims is not None and mtime is not None:
        try:
            since = email.utils.parsedate_to_datetime(ims).timestamp()
        except (TypeError, ValueError, IndexError):
            return False
        return int(mtime) <= since
    return False


def flip_bytes(data: bytes) -> bytes:
    """A corrupted copy of the same length: every byte of the second half
    XORed with 0x5A (the corrupt() knobs of the Cargo and Maven fixtures)."""
    out = bytearray(data)
    for i in range(len(out) // 2, len(out)):
        out[i] ^= 0x5A
    return bytes(out)


def accept_q(accept: Optional[str], media_type: str) -> float:
    """The q-value `accept` gives `media_type` exactly (0 when absent)."""
    if not accept:
        return 0.0
    for part in accept.split(","):
        bits = [b.strip() for b in part.split(";")]
        if bits[0].lower() != media_type:
            continue
        q = 1.0
        for b in bits[1:]:
            if b.lower().startswith("q="):
                try:
                    q = float(b[2:])
                except ValueError:
                    q = 0.0
        return q
    return 0.0


# ---------------------------------------------------------------- listeners


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sluice-test-registry/1"
    sys_version = ""
    timeout = 60                    # an idle keep-alive connection ends after this
    # TCP_NODELAY: the head and the body go out in two writes; with Nagle
    # the body waits for the client's delayed ACK (40 ms a request), which
    # made mvn's 500 small GETs take 20 s.
    disable_nagle_algorithm = True

    def setup(self):
        super().setup()
        self.server.listener.track(self.connection, True)

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass
        self.server.listener.track(self.connection, False)

    def handle(self):
        try:
            super().handle()
        except OSError:             # peer gone, or shut down by stop()/refuse
            self.close_connection = True

    def log_message(self, *args):
        pass

    def _any(self):
        self.server.listener.fixture._dispatch(self, self.server.listener)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _any


class _Server(ThreadingHTTPServer):
    daemon_threads = False          # server_close() joins every handler thread
    block_on_close = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass


class Listener:
    """One port of a fixture. open()/close() may be repeated (set_refuse)."""

    def __init__(self, fixture, name: str, port: Optional[int] = None):
        self.fixture = fixture
        self.name = name
        self.port = port or free_port()
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None
        self._conns: set = set()
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return "http://%s:%d" % (HOST, self.port)

    @property
    def is_open(self) -> bool:
        return self._server is not None

    def track(self, conn, add: bool) -> None:
        with self._lock:
            (self._conns.add if add else self._conns.discard)(conn)

    def open(self, retry_other_port: bool = False) -> None:
        if self._server is not None:
            return
        for attempt in range(20):
            try:
                server = _Server((HOST, self.port), _Handler)
                break
            except OSError:
                if not retry_other_port or attempt == 19:
                    raise
                self.port = free_port()
                self.fixture._port_changed()
        server.listener = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="registry-%s-%d" % (self.name, self.port), daemon=True)
        self._thread.start()

    def close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()           # the accept loop ends
        self._thread.join()
        server.socket.close()       # from now on, connections are refused
        with self._lock:
            conns = list(self._conns)
        for c in conns:             # wake handlers blocked on keep-alive reads or sends
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        server.server_close()       # joins every handler thread


# ------------------------------------------------------------------ fixture


class Fixture:
    """Listeners, knobs and the request log shared by NpmRegistry and
    PypiIndex. Subclasses define _route() and list their listeners."""

    def __init__(self):
        self._lock = threading.RLock()          # knobs, log, documents
        self._state_lock = threading.Lock()     # opening/closing listeners; never
        self._listeners: dict = {}              # held by a handler thread
        self._log: list = []
        self._fault: Optional[_Fault] = None
        self._refused: set = set()
        self._started = False
        self._rate: Optional[float] = None       # body bytes per second, None: as fast as possible

    # -------------------------------------------------------- lifecycle
    def _add_listener(self, name: str, port: Optional[int] = None) -> Listener:
        lst = Listener(self, name, port)
        self._listeners[name] = lst
        return lst

    def start(self):
        """Open every listener (the port chosen at construction; another one
        only if that bind fails at the first start). Returns self."""
        try:
            with self._state_lock:
                for lst in self._listeners.values():
                    lst.open(retry_other_port=not self._started)
                self._started = True
                self._refused.clear()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Close every listener and connection; joins every thread."""
        with self._state_lock:
            for lst in self._listeners.values():
                lst.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _port_changed(self) -> None:
        """A listener moved to another port before anything was served."""

    # -------------------------------------------------------------- knobs
    def _names(self, only: Optional[str]) -> list:
        if only is None:
            return list(self._listeners)
        if only not in self._listeners:
            raise ValueError("no listener %r (have %s)" % (only, ", ".join(self._listeners)))
        return [only]

    def set_status(self, code: Optional[int], count: Optional[int] = None,
                   retry_after: Optional[int] = None, match: PathMatch = None,
                   only: Optional[str] = None) -> None:
        """Every GET/HEAD answers `code` (with a small body) until cleared
        (set_status(None) or clear_faults()), or for the next `count`
        requests only. `match` limits it to one path (str) or a regex;
        `only` to one listener ("index"/"files" for PypiIndex);
        `retry_after` adds that Retry-After header."""
        if only is not None:
            self._names(only)
        with self._lock:
            self._fault = None if code is None else _Fault(code, count, retry_after, match, only)

    def set_rate(self, bytes_per_second: Optional[float]) -> None:
        """Send every body at about this many bytes per second (None: as
        fast as the socket takes it), as a registry across the internet
        does; loopback is faster than any disk the cache writes to."""
        with self._lock:
            self._rate = bytes_per_second

    def clear_faults(self) -> None:
        """set_status(None) and set_refuse(False)."""
        self.set_status(None)
        self.set_refuse(False)

    def set_refuse(self, refuse: bool, only: Optional[str] = None) -> None:
        """True: close the listening socket(s), and the open connections,
        so new connections are refused. False: listen again on the same
        port(s). Returns once the change is in effect."""
        with self._state_lock:      # not self._lock: close() joins handlers that take it
            for name in self._names(only):
                lst = self._listeners[name]
                if refuse:
                    self._refused.add(name)
                    lst.close()
                elif name in self._refused:
                    self._refused.discard(name)
                    lst.open()

    def _take_fault(self, method: str, path: str, target: str, listener: str) -> Optional[_Fault]:
        with self._lock:
            f = self._fault
            if f is None or method not in ("GET", "HEAD") \
                    or (f.only is not None and f.only != listener) \
                    or not path_matches(f.match, path, target):
                return None
            if f.remaining is not None:
                f.remaining -= 1
                if f.remaining <= 0:
                    self._fault = None
            return f

    # ---------------------------------------------------------------- log
    def request_log(self) -> list:
        """Every request so far (LoggedRequest), oldest first."""
        with self._lock:
            return list(self._log)

    def reset_log(self) -> None:
        with self._lock:
            self._log.clear()

    def requests(self, path: PathMatch = None, method: Optional[str] = "GET") -> int:
        """How many requests had this path (None: any; str: exact path, or
        the target with its query; compiled regex: searched in the target)
        and method (None: any)."""
        with self._lock:
            return sum(1 for r in self._log
                       if (method is None or r.method == method)
                       and path_matches(path, r.path, r.target))

    def conditional_requests(self, path: PathMatch = None) -> list:
        """The logged requests (LoggedRequest) that carried If-None-Match or
        If-Modified-Since, optionally only those for `path`."""
        with self._lock:
            return [r for r in self._log if r.conditional and path_matches(path, r.path, r.target)]

    # ----------------------------------------------------------- dispatch
    def _dispatch(self, h: BaseHTTPRequestHandler, listener: Listener) -> None:
        target = h.path
        if "://" in target.split("?", 1)[0]:     # absolute-form
            parts = urlsplit(target)
            target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        path = target.split("?", 1)[0]
        entry = LoggedRequest(h.command, target, path, LogHeaders(h.headers.items()),
                              listener.name, time.monotonic())
        with self._lock:
            self._log.append(entry)
        self._drain_body(h)
        fault = self._take_fault(h.command, path, target, listener.name)
        if fault is not None:
            resp = self._fault_response(fault)
        else:
            try:
                resp = self._route(listener.name, h.command, path, target, h.headers)
            except Exception as e:          # a fixture bug: say so instead of hanging
                resp = Response(500, [("Content-Type", "text/plain")],
                                ("fixture error: %r\n" % (e,)).encode())
        entry.status = resp.status
        self._send(h, resp, self._rate)

    @staticmethod
    def _drain_body(h) -> None:
        n = h.headers.get("Content-Length")
        if n and n.isdigit():
            left = int(n)
            while left > 0:
                chunk = h.rfile.read(min(left, 65536))
                if not chunk:
                    break
                left -= len(chunk)
        elif "chunked" in (h.headers.get("Transfer-Encoding") or "").lower():
            h.close_connection = True   # not worth parsing: answer, then close

    def _fault_response(self, f: _Fault) -> Response:
        body = b"" if f.status in (204, 304) or f.status < 200 else self._fault_body(f.status)
        headers = [("Content-Type", self._fault_type())]
        if f.retry_after is not None:
            headers.append(("Retry-After", str(f.retry_after)))
        return Response(f.status, headers, body)

    def _fault_body(self, status: int) -> bytes:
        return b"injected %d\n" % status

    def _fault_type(self) -> str:
        return "text/plain"

    @staticmethod
    def _send(h, resp: Response, rate: Optional[float] = None) -> None:
        no_body = resp.status in (204, 304) or resp.status < 200
        size = os.path.getsize(resp.file) if resp.file else len(resp.body)
        h.send_response(resp.status)
        for k, v in resp.headers:
            h.send_header(k, v)
        if not no_body:
            h.send_header("Content-Length", str(size))
        h.end_headers()
        if h.command == "HEAD" or no_body:
            return
        start, sent = time.monotonic(), 0

        def write(piece):
            nonlocal sent
            h.wfile.write(piece)
            sent += len(piece)
            if rate:     # pace the body like a registry across the internet
                ahead = start + sent / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        if resp.file and not rate:  # the kernel copies: the origin costs next to no CPU
            h.wfile.flush()
            # the header block must not wait for an ACK behind Nagle (a 40 ms
            # delayed ACK before the body's first byte)
            h.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with open(resp.file, "rb") as f:
                h.connection.sendfile(f)
        elif resp.file:
            with open(resp.file, "rb") as f:
                while True:
                    piece = f.read(SEND_PIECE)
                    if not piece:
                        break
                    write(piece)
        else:
            view = memoryview(resp.body)
            for i in range(0, len(view), SEND_PIECE):
                write(view[i:i + SEND_PIECE])

    def _route(self, listener: str, method: str, path: str, target: str, headers) -> Response:
        raise NotImplementedError


class SingleListenerFixture(Fixture):
    """A fixture served on one listener (a registry, a proxy, a repository):
    its port and base URL."""

    def __init__(self, name: str, port: Optional[int] = None):
        super().__init__()
        self._listener = self._add_listener(name, port)

    @property
    def port(self) -> int:
        return self._listener.port

    @property
    def base_url(self) -> str:
        return self._listener.base_url


