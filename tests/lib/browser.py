"""A real headless browser for tests: Debian's chromium, driven over the
DevTools protocol on a pipe (--remote-debugging-pipe: JSON messages ended
by NUL on fds 3 and 4), with no third-party package.

    with Browser() as b:
        b.open("http://127.0.0.1:PORT/")
        b.evaluate("document.title")        # the value, JSON-decoded
        b.problems                           # console errors, warnings, JS
                                             # exceptions, failed loads seen

Everything is bounded: every command waits at most `timeout` seconds, and
the browser is killed on exit. Chromium's own stderr (D-Bus chatter in a
container) goes to a file and is never parsed.
"""

import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time

CHROMIUM = shutil.which("chromium")


class BrowserError(AssertionError):
    pass


class Browser:
    def __init__(self, timeout=20.0):
        self.timeout = timeout
        self.problems = []           # ["kind: text"], in the order seen
        self._next_id = 0
        self._replies = {}
        self._cv = threading.Condition()
        self._events = queue.Queue()
        self.proc = None

    # ------------------------------------------------------------ lifecycle
    def __enter__(self):
        if not CHROMIUM:
            raise BrowserError("chromium is not installed (Makefile TEST_PKGS)")
        self.tmp = tempfile.mkdtemp(prefix="sluice-browser-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def fds():   # the child's fd 3 reads commands, fd 4 writes answers
            r, w = os.dup(to_child_r), os.dup(from_child_w)   # neither may be 3 or 4 already
            r, w = os.dup2(r, 100), os.dup2(w, 101)
            os.dup2(r, 3)
            os.dup2(w, 4)
        self._log = open(os.path.join(self.tmp, "chromium.log"), "wb")
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-extensions", "--disable-background-networking", "--remote-debugging-pipe",
             "--user-data-dir=" + os.path.join(self.tmp, "profile"), "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, preexec_fn=fds,
            pass_fds=(3, 4))   # subprocess closes the others after fds() ran
        os.close(to_child_r)
        os.close(from_child_w)
        threading.Thread(target=self._reader, daemon=True).start()
        try:
            self._attach()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for fd in (self._to_child, self._from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        self._log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ------------------------------------------------------------- protocol
    def _reader(self):
        buf = b""
        while True:
            try:
                data = os.read(self._from_child, 65536)
            except OSError:
                data = b""
            if not data:
                with self._cv:
                    self._replies[None] = "closed"
                    self._cv.notify_all()
                return
            buf += data
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                self._dispatch(json.loads(raw))

    def _dispatch(self, msg):
        if "id" in msg:
            with self._cv:
                self._replies[msg["id"]] = msg
                self._cv.notify_all()
            return
        self._note(msg.get("method"), msg.get("params", {}))

    def _note(self, method, p):
        if method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            self.problems.append("exception: %s" % (d.get("exception", {}).get("description") or d.get("text")))
        elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning", "assert"):
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            self.problems.append("console.%s: %s" % (p["type"], args))
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") in ("error", "warning"):
            e = p["entry"]
            self.problems.append("log %s: %s %s" % (e["level"], e.get("text"), e.get("url", "")))

    def send(self, method, params=None, session=None):
        with self._cv:
            self._next_id += 1
            mid = self._next_id
        msg = {"id": mid, "method": method, "params": params or {}}
        if session or getattr(self, "session", None):
            msg["sessionId"] = session or self.session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        with self._cv:
            while mid not in self._replies:
                if None in self._replies:
                    raise BrowserError("chromium exited")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BrowserError("no answer to %s in %ss" % (method, self.timeout))
                self._cv.wait(left)
            reply = self._replies.pop(mid)
        if "error" in reply:
            raise BrowserError("%s: %s" % (method, reply["error"]))
        return reply.get("result", {})

    def _attach(self):
        self.session = None
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            self.send(domain + ".enable")

    # ------------------------------------------------------------ helpers
    def open(self, url):
        r = self.send("Page.navigate", {"url": url})
        if r.get("errorText"):
            raise BrowserError("navigation failed: %s" % r["errorText"])

    def evaluate(self, expression):
        r = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in r:
            raise BrowserError("evaluate %r: %s" % (expression, r["exceptionDetails"].get("text")))
        return r["result"].get("value")
