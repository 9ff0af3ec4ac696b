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

Where the parts live (import everything from ``origin``; it re-exports the
public names of the other two):

    origin.py          this documentation, OriginServer (lifecycle,
                       configuration, stats and their bookkeeping),
                       RemoteOrigin, the script entry point
    origin_content.py  generated bodies (body_for, iter_body, ETags) and the
                       knobs: ObjectSpec, make_spec, the plan of one response
    origin_handler.py  the connection: reading requests, writing responses
                       with their faults, conditional GET, the control API
                       (the _Handler mixin of OriginServer)

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
    header_byte_ms  send the status line and headers one byte at a time, this
                    many milliseconds apart (an origin that trickles its head);
                    the body follows as usual. 0 (default): the head at once
    fail_times      int: the *fault* knobs (status, delay_ms, rate, stall_*,
                    truncate_after, reset_after, hang_headers, header_byte_ms)
                    apply only to the first N GET/HEAD requests for the path;
                    later requests get a normal 200. None (default) = always.

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
import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Optional

from origin_content import (  # noqa: F401  (re-exported: origin.X for every public name)
    BLOCK, DEFAULT_LAST_MODIFIED, DEFAULT_SIZE, ObjectSpec, _Plan, _plan_for,
    body_block, body_etag, body_for, default_etag, iter_body, make_spec)
from origin_handler import (  # noqa: F401
    CLOSED, CONTROL_PREFIX, MAX_CONTROL_BODY, MAX_HEAD, SERVER_NAME, STOPPED, TIMEOUT,
    _Conn, _Handler, _Request)

HOST = "127.0.0.1"
LOG_SIZE = 1000

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


class OriginServer(_Handler, _Queries):
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
