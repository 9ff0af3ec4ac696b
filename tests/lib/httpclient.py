"""Raw-socket HTTP/1.1 client and process probes for the Sluice tests.

urllib and http.client hide exactly what the contract tests need to see:
whether a body arrived complete or the connection was cut, when the status
line arrived, whether the server closed the connection on a stalled reader.
This client reports all of it and never raises for network trouble; it puts
the trouble in ``Result.error``.

    r = fetch("127.0.0.1", port, "/npm/x.tgz")
    assert r.status == 200 and r.complete and r.error is None

Framing (RFC 9112 section 6.3):
  * HEAD, 1xx, 204, 304: no body, ``complete`` True.
  * Transfer-Encoding ending in chunked: ``complete`` only once the 0-size
    chunk and the end of the trailers arrived.
  * Content-Length: ``complete`` once that many bytes arrived. Invalid or
    conflicting lengths give ``error`` and ``complete`` False.
  * neither (close-delimited): ``complete`` True when the server closed with
    a FIN, False on RST or timeout. Note a close-delimited body cut short by a
    clean close is indistinguishable from a whole one; ``framing == "close"``
    tells you that you are in this case.

Slow and stalled readers:
  * ``read_rate`` (bytes/s) paces body reads (small recv()s, sleeping between
    them), so the server sees a slow but progressing client.
  * ``stop_reading_after`` (body bytes) reads at most that many body bytes,
    then reads nothing more and waits - without reading - until the server
    closes the connection (FIN or RST, seen with POLLRDHUP) or the overall
    timeout expires. ``stopped_reading``, ``server_closed`` and
    ``closed_after`` report what happened (error "timeout" if the server never
    closed). A server that closes while its unsent data is still queued
    behind our full receive window may not get its FIN through; check the
    server side too.
  * ``rcvbuf`` sets SO_RCVBUF before connecting, so a stalled reader fills
    its window quickly instead of absorbing megabytes in the kernel.

``timeout`` is one deadline for the whole exchange (connect, send, response).
``ttfb`` is measured from the start of the call to the first response byte.
The only sleeps are the read_rate pacing and wait_until()'s poll interval.

Helpers for C6 (return to baseline): count_fds(pid), threads(pid),
tcp_connections(pid, remote_port=None, local_port=None), plus wait_until()
and free_port().
"""

from __future__ import annotations

import errno
import json
import os
import random
import select
import socket
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional, Union

_POLLRDHUP = getattr(select, "POLLRDHUP", 0x2000)
MAX_HEAD = 1024 * 1024
RECV = 65536

HeaderArg = Union[None, dict, Iterable]


# ------------------------------------------------------------------ results


class Headers:
    """Ordered, case-insensitive multi-map of response headers."""

    def __init__(self, pairs: Iterable = ()):
        self._pairs = [(str(k), str(v)) for k, v in pairs]

    def get(self, name: str, default=None) -> Optional[str]:
        """First value of header `name`, or default."""
        low = name.lower()
        for k, v in self._pairs:
            if k.lower() == low:
                return v
        return default

    def get_all(self, name: str) -> list:
        """Every value of header `name`, in order."""
        low = name.lower()
        return [v for k, v in self._pairs if k.lower() == low]

    def items(self) -> list:
        return list(self._pairs)

    def __getitem__(self, name: str) -> str:
        v = self.get(name)
        if v is None:
            raise KeyError(name)
        return v

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __len__(self) -> int:
        return len(self._pairs)

    def __iter__(self):
        return iter(k for k, _ in self._pairs)

    def __repr__(self) -> str:
        return f"Headers({self._pairs!r})"


@dataclass
class Result:
    """Everything observed about one request/response exchange."""

    status: Optional[int] = None       # None if no status line arrived
    reason: str = ""
    version: str = ""
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    complete: bool = False             # the whole framed body arrived
    error: Optional[str] = None        # None, or what went wrong
    ttfb: Optional[float] = None       # seconds to the first response byte
    elapsed: float = 0.0               # seconds for the whole call
    framing: str = ""                  # "length" | "chunked" | "close" | "none"
    content_length: Optional[int] = None
    server_closed: bool = False        # we saw the server's FIN or RST
    reset: bool = False                # ... and it was an RST
    stopped_reading: bool = False      # stop_reading_after kicked in
    closed_after: Optional[float] = None  # seconds from stopping to the close

    @property
    def ok(self) -> bool:
        """2xx, complete, no error."""
        return self.status is not None and 200 <= self.status < 300 \
            and self.complete and self.error is None

    def header(self, name: str, default=None) -> Optional[str]:
        return self.headers.get(name, default)

    def json(self):
        return json.loads(self.body)


class _Failure(Exception):
    """Ends reading with Result.error = message."""


class _StopReading(Exception):
    """stop_reading_after reached."""


# -------------------------------------------------------------------- wire


class _Wire:
    """A connected socket with a buffer, a deadline and body pacing."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = bytearray()
        self.eof = False
        self.reset = False
        self.deadline = 0.0
        self.first_byte: Optional[float] = None
        self.body_mode = False
        self.body_count = 0
        self.body_start = 0.0
        self.rate: Optional[float] = None
        self.stop_after: Optional[int] = None

    def prepare(self, deadline: float, rate: Optional[float], stop_after: Optional[int]):
        self.deadline = deadline
        self.rate = rate if rate and rate > 0 else None
        self.stop_after = stop_after
        self.first_byte = None
        self.body_mode = False
        self.body_count = 0

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def _wait_readable(self) -> None:
        p = select.poll()
        p.register(self.sock.fileno(), select.POLLIN)
        while True:
            left = self.left()
            if left <= 0:
                raise _Failure("timeout")
            if p.poll(max(1, int(left * 1000))):
                return

    def _recv(self, n: int, flags: int = 0) -> bytes:
        self._wait_readable()
        try:
            data = self.sock.recv(n, flags)
        except ConnectionResetError:
            self.eof = self.reset = True
            return b""
        except OSError as e:
            self.eof = True
            raise _Failure(f"recv failed: {e}") from None
        if not data:
            self.eof = True
        elif self.first_byte is None:
            self.first_byte = time.monotonic()
        return data

    def fill(self, want: int = RECV) -> bool:
        """Read more into buf (paced/limited in body mode); False on EOF."""
        if self.eof:
            return False
        if self.body_mode:
            want = self._body_allowance(want)
        data = self._recv(want)
        self.buf += data
        return bool(data)

    def _body_allowance(self, want: int) -> int:
        if self.stop_after is not None:
            allow = self.stop_after - self.body_count
            if allow <= 0:
                raise _StopReading()
            want = min(want, allow)
        if self.rate:
            want = min(want, max(1, int(self.rate / 20)))
            self._pace()
        return want

    def _pace(self) -> None:
        due = self.body_start + self.body_count / self.rate
        delay = min(due - time.monotonic(), self.left())
        if delay > 0:
            time.sleep(delay)
        if self.left() <= 0:
            raise _Failure("timeout")

    def start_body(self) -> None:
        self.body_mode = True
        self.body_start = time.monotonic()

    def take(self, n: int) -> bytes:
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    # ---- the response head, read without over-reading into the body
    def read_head(self) -> bytes:
        """Bytes up to and including the blank line ending the head."""
        head = bytearray(self.buf)
        self.buf.clear()
        while True:
            idx = head.find(b"\r\n\r\n")
            if idx >= 0:
                self.buf[:0] = head[idx + 4:]
                return bytes(head[:idx + 4])
            if len(head) > MAX_HEAD:
                raise _Failure("response head too large")
            data = self._recv(RECV, socket.MSG_PEEK)
            if not data:
                what = "reset" if self.reset else "closed"
                raise _Failure(f"connection {what} before the response head"
                               if not head else f"connection {what} inside the response head")
            end = (head + data).find(b"\r\n\r\n", max(0, len(head) - 3))
            need = len(data) if end < 0 else end + 4 - len(head)
            head += self._recv_exact(need)

    def _recv_exact(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            data = self.sock.recv(n - len(out))
            if not data:
                break
            out += data
        return bytes(out)

    def read_line(self) -> bytes:
        while True:
            idx = self.buf.find(b"\r\n")
            if idx >= 0:
                line = self.take(idx)
                del self.buf[:2]
                return line
            if len(self.buf) > MAX_HEAD:
                raise _Failure("chunk line too long")
            if not self.fill():
                raise _Failure(self.cut_message("before the last chunk"))

    def cut_message(self, where: str) -> str:
        return f"connection {'reset' if self.reset else 'closed'} {where}"

    def wait_close(self) -> bool:
        """Without reading, wait for the peer's FIN/RST until the deadline."""
        if self.eof:
            return True
        p = select.poll()
        p.register(self.sock.fileno(), _POLLRDHUP)
        while True:
            left = self.left()
            if left <= 0:
                return False
            events = p.poll(max(1, int(left * 1000)))
            if events:
                err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                self.reset = err == errno.ECONNRESET or bool(events[0][1] & select.POLLERR)
                self.eof = True
                return True


# ------------------------------------------------------------------ parsing


def _parse_head(raw: bytes, res: Result) -> None:
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise _Failure(f"bad status line {lines[0]!r}")
    res.version, res.status = parts[0], int(parts[1])
    res.reason = parts[2] if len(parts) > 2 else ""
    pairs = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise _Failure(f"bad header line {line!r}")
        pairs.append((name.strip(), value.strip()))
    res.headers = Headers(pairs)


def _framing(method: str, res: Result) -> str:
    if method == "HEAD" or res.status < 200 or res.status in (204, 304):
        return "none"
    te = res.headers.get_all("transfer-encoding")
    if te:
        return "chunked" if te[-1].split(",")[-1].strip().lower() == "chunked" else "close"
    cls = res.headers.get_all("content-length")
    if not cls:
        return "close"
    values = {v.strip() for v in ",".join(cls).split(",")}
    if len(values) != 1 or not next(iter(values)).isdigit():
        raise _Failure(f"invalid content-length {cls!r}")
    res.content_length = int(next(iter(values)))
    return "length"


def _read_length(wire: _Wire, n: int, body: bytearray) -> None:
    while len(body) < n:
        if not wire.buf and not wire.fill(min(RECV, n - len(body))):
            raise _Failure(wire.cut_message(f"after {len(body)} of {n} body bytes"))
        body += wire.take(n - len(body))
        wire.body_count = len(body)


def _read_chunked(wire: _Wire, body: bytearray) -> None:
    while True:
        line = wire.read_line().split(b";")[0].strip()
        try:
            size = int(line, 16)
        except ValueError:
            raise _Failure(f"bad chunk size {line!r}") from None
        if size == 0:
            while wire.read_line():
                pass
            return
        target = len(body) + size
        while len(body) < target:
            if not wire.buf and not wire.fill(min(RECV, target - len(body))):
                raise _Failure(wire.cut_message("before the last chunk"))
            body += wire.take(target - len(body))
            wire.body_count = len(body)
        if wire.read_line():
            raise _Failure("missing CRLF after chunk data")


def _read_until_close(wire: _Wire, body: bytearray) -> None:
    while True:
        if wire.buf:
            body += wire.take(len(wire.buf))
            wire.body_count = len(body)
        if not wire.fill():
            if wire.reset:
                raise _Failure("connection reset in a close-delimited body")
            return


def _read_response(wire: _Wire, method: str, res: Result) -> None:
    """Fill `res` from the wire; raises _Failure/_StopReading midway."""
    while True:
        _parse_head(wire.read_head(), res)
        if not 100 <= res.status < 200 or res.status == 101:
            break
    res.framing = _framing(method, res)
    body = bytearray()
    res.body = b""
    wire.start_body()
    try:
        if res.framing == "length":
            _read_length(wire, res.content_length, body)
        elif res.framing == "chunked":
            _read_chunked(wire, body)
        elif res.framing == "close":
            _read_until_close(wire, body)
    finally:
        res.body = bytes(body)
    res.complete = True


# ------------------------------------------------------------------ clients


def _build_request(host: str, port: int, method: str, path: str,
                   headers: HeaderArg, body: Optional[bytes]) -> bytes:
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or ())
    names = {k.lower() for k, _ in pairs}
    if "host" not in names:
        pairs.insert(0, ("Host", "localhost" if host.startswith("/") else f"{host}:{port}"))
    if body is not None and "content-length" not in names \
            and "transfer-encoding" not in names:
        pairs.append(("Content-Length", str(len(body))))
    lines = [f"{method} {path} HTTP/1.1"]
    lines += [f"{k}: {v}" for k, v in pairs if v is not None]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + (body or b"")


class Session:
    """Several requests on one keep-alive connection (reconnects if closed).

    ``connections`` counts the TCP connections opened so far, so a test can
    check that requests really shared one.
    """

    def __init__(self, host: str, port: int, timeout: float = 10.0,
                 rcvbuf: Optional[int] = None):
        self.host = host
        self.port = port
        self.timeout = timeout
        self.rcvbuf = rcvbuf
        self.connections = 0
        self._wire: Optional[_Wire] = None

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._wire is not None:
            self._wire.sock.close()
            self._wire = None

    @property
    def connected(self) -> bool:
        return self._wire is not None

    def _connect(self, deadline: float) -> _Wire:
        if self.host.startswith("/"):   # a UNIX socket's path (port unused)
            family, stype, proto, addr = socket.AF_UNIX, socket.SOCK_STREAM, 0, self.host
        else:
            family, stype, proto, _, addr = socket.getaddrinfo(
                self.host, self.port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, stype, proto)
        try:
            if self.rcvbuf:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            sock.connect(addr)
            if family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            sock.close()
            raise
        self.connections += 1
        return _Wire(sock)

    def request(self, path: str, method: str = "GET", headers: HeaderArg = None,
                body: Optional[bytes] = None, timeout: Optional[float] = None,
                read_rate: Optional[float] = None,
                stop_reading_after: Optional[int] = None,
                raw: Optional[bytes] = None) -> Result:
        """Send one request (or `raw` bytes verbatim) and read its response.

        With `raw`, `method` still decides the response framing (pass
        method="HEAD" for a raw HEAD request)."""
        t0 = time.monotonic()
        deadline = t0 + (self.timeout if timeout is None else timeout)
        res = Result()
        try:
            if self._wire is None:
                self._wire = self._connect(deadline)
        except OSError as e:
            res.error = f"connect failed: {e}"
            res.elapsed = time.monotonic() - t0
            return res
        wire = self._wire
        wire.prepare(deadline, read_rate, stop_reading_after)
        data = raw if raw is not None else _build_request(
            self.host, self.port, method.upper(), path, headers, body)
        send_error = self._send(wire, data, deadline)
        self._exchange(wire, method.upper(), res)
        if res.status is None and send_error:
            res.error = send_error
        res.ttfb = None if wire.first_byte is None else wire.first_byte - t0
        res.elapsed = time.monotonic() - t0
        if self._must_close(res):
            self.close()
        return res

    @staticmethod
    def _send(wire: _Wire, data: bytes, deadline: float) -> Optional[str]:
        try:
            wire.sock.settimeout(max(0.001, deadline - time.monotonic()))
            wire.sock.sendall(data)
            return None
        except socket.timeout:
            return "timeout"
        except OSError as e:
            return f"send failed: {e}"

    @staticmethod
    def _exchange(wire: _Wire, method: str, res: Result) -> None:
        try:
            _read_response(wire, method, res)
        except _Failure as e:
            res.error = str(e)
        except _StopReading:
            res.stopped_reading = True
            t = time.monotonic()
            if wire.wait_close():
                res.closed_after = time.monotonic() - t
            else:
                res.error = "timeout"
        res.server_closed = wire.eof
        res.reset = wire.reset

    @staticmethod
    def _must_close(res: Result) -> bool:
        conn = (res.headers.get("connection") or "").lower()
        return (res.server_closed or not res.complete or res.error is not None
                or res.framing == "close" or "close" in conn
                or (res.version == "HTTP/1.0" and "keep-alive" not in conn))


def fetch(host: str, port: int, path: str, method: str = "GET",
          headers: HeaderArg = None, timeout: float = 10.0,
          read_rate: Optional[float] = None, stop_reading_after: Optional[int] = None,
          body: Optional[bytes] = None, rcvbuf: Optional[int] = None,
          raw: Optional[bytes] = None) -> Result:
    """One request on a fresh connection, closed afterwards. Never raises
    for network trouble: see Result.error / complete / server_closed."""
    with Session(host, port, timeout=timeout, rcvbuf=rcvbuf) as s:
        return s.request(path, method=method, headers=headers, body=body,
                         read_rate=read_rate, stop_reading_after=stop_reading_after,
                         raw=raw)


# ------------------------------------------------------------------ helpers


def wait_until(predicate: Callable[[], object], timeout: float = 5.0,
               interval: float = 0.02, message: str = "condition not met"):
    """Poll predicate() until it is truthy (returns its value) or raise
    AssertionError(message) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{message} (waited {timeout}s, last value {value!r})")
        time.sleep(min(interval, left))


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_PORTS_GIVEN: set[int] = set()


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago, taken from below
    the kernel's ephemeral range. A port from inside that range (what
    binding port 0 returns) can be taken by any outgoing connection - HAProxy
    to an origin, a test client - between this check and the server's own
    bind, which made a test fail with "Address already in use" now and then.
    A port is never handed out twice in one process."""
    high = min(_ephemeral_low(), 32768) - 1
    rng = random.Random()
    for _ in range(1000):
        port = rng.randint(10000, high)
        if port in _PORTS_GIVEN:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _PORTS_GIVEN.add(port)
        return port
    raise RuntimeError("no free TCP port below the ephemeral range")


def count_fds(pid: int) -> int:
    """Number of open file descriptors of process `pid`."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def _status_field(pid: int, name: str) -> Optional[int]:
    """The number after `name:` in /proc/PID/status, or None."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    return None


def threads(pid: int) -> int:
    """Number of threads of process `pid`."""
    n = _status_field(pid, "Threads")
    if n is None:
        raise ValueError(f"no Threads: line for pid {pid}")
    return n


def rss_kib(pid: int) -> int:
    """Resident set size of process `pid` in KiB (0 for a zombie)."""
    return _status_field(pid, "VmRSS") or 0


def _socket_inodes(pid: int) -> set:
    inodes = set()
    base = f"/proc/{pid}/fd"
    for fd in os.listdir(base):
        try:
            target = os.readlink(f"{base}/{fd}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def tcp_connections(pid: int, remote_port: Optional[int] = None,
                    local_port: Optional[int] = None, any_state: bool = False) -> int:
    """Established TCP sockets (IPv4 and IPv6) held by process `pid`,
    optionally only those to `remote_port` and/or from `local_port`;
    any_state=True counts them in every state (a socket its peer closed,
    CLOSE_WAIT, still holds a descriptor)."""
    inodes = _socket_inodes(pid)
    count = 0
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                rows = f.read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) < 10 or (cols[3] != "01" and not any_state) or cols[9] not in inodes:
                continue
            if remote_port is not None and int(cols[2].rsplit(":", 1)[1], 16) != remote_port:
                continue
            if local_port is not None and int(cols[1].rsplit(":", 1)[1], 16) != local_port:
                continue
            count += 1
    return count
