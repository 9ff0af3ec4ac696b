"""Connection handling of the Sluice test origin: reading requests off a
connection, writing responses with their faults, and the control API.

Part of origin.py, whose docstring documents the behaviour; import from there.
"""

from __future__ import annotations

import email.utils
import json
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Optional
from urllib.parse import urlsplit

from origin_content import BLOCK, _Plan, make_spec

CONTROL_PREFIX = "/_origin/"
MAX_HEAD = 64 * 1024
MAX_CONTROL_BODY = 64 * 1024 * 1024
SERVER_NAME = "sluice-test-origin"

_POLLRDHUP = getattr(select, "POLLRDHUP", 0x2000)


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


# ------------------------------------------------------------------ handler


class _Handler:
    """The serving half of OriginServer (origin.py), mixed into it: the accept
    loop, one request loop per connection, GET/HEAD and echo responses, the
    control API. It uses the server's state (_lock, _stats, _objects,
    _stopping, ...) and bookkeeping (_plan, _begin, _end, _count_*)."""


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
        self._send_head(conn, head, plan.header_byte)
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

    @staticmethod
    def _send_head(conn: _Conn, head: bytes, interval: float) -> None:
        """The head at once, or one byte per `interval` seconds."""
        if interval <= 0:
            conn.send(head)
            return
        for i in range(len(head)):
            if i:
                _Handler._stall(conn, interval)
            conn.send(head[i:i + 1])

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
        _Handler._stall(conn, when - time.monotonic())

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
