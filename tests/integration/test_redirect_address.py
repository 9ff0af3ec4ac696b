"""Redirects to non-public addresses: an origin at a public address may not
send the agent to loopback (or any private address), even through a host
the route lists, because the check is made on the address actually
connected to (agent/src/origin/redirect.h).

Every test origin elsewhere is on 127.0.0.1, where loopback redirects are
the origin's own kind of address and allowed. So this test runs its
scenario in a network namespace of its own (`unshare -n`, gone when the
child exits), where the loopback device also carries 203.0.113.7 and
203.0.113.8 (TEST-NET-3, public as far as the policy is concerned): the
origin listens there, and a second service listens on 127.0.0.1.
"""

import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

from edge import Edge  # noqa: E402
from httpclient import free_port  # noqa: E402

PUBLIC, PUBLIC_CDN = "203.0.113.7", "203.0.113.8"


def serve(host, port, handler):
    srv = http.server.ThreadingHTTPServer((host, port), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def scenario():
    """Runs inside the namespace; prints what happened as JSON."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for a in (PUBLIC, PUBLIC_CDN):
        subprocess.run(["ip", "addr", "add", a + "/32", "dev", "lo"], check=True)
    seen = []
    origin_port, svc_port, cdn_port = free_port(), free_port(), free_port()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append("%s:%d%s" % (self.server.server_address[0], self.server.server_address[1], self.path))
            targets = {"/to-loopback": "http://127.0.0.1:%d/secret" % svc_port,
                       "/to-cdn": "http://%s:%d/file" % (PUBLIC_CDN, cdn_port)}
            body = b"payload from " + self.path.encode()
            if self.path in targets:
                self.send_response(302)
                self.send_header("Location", targets[self.path])
                body = b""
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    servers = [serve(PUBLIC, origin_port, Handler), serve("127.0.0.1", svc_port, Handler),
               serve(PUBLIC_CDN, cdn_port, Handler)]
    listed = "127.0.0.1:%d, %s:%d" % (svc_port, PUBLIC_CDN, cdn_port)
    out = {}
    with Edge(origin=False, haproxy=False,
              settings={"origin_generic": "http://%s:%d" % (PUBLIC, origin_port),
                        "origin_generic_redirect_hosts": '"%s"' % listed}) as e:
        r = e.get_agent("/generic/to-loopback")
        out["loopback"] = {"status": r.status, "cache_status": r.header("Cache-Status"), "body": r.body.decode()}
        r = e.get_agent("/generic/to-cdn")
        out["cdn"] = {"status": r.status, "body": r.body.decode()}
        e.wait_idle()
        out["address_refusals"] = e.metric('sluice_origin_redirects_total{outcome="address"}')
        out["temp_files"] = e.temp_files()
    for s in servers:
        s.shutdown()
    out["seen"] = seen
    print(json.dumps(out))


class RedirectToNonPublicAddress(unittest.TestCase):
    def test_public_origin_cannot_redirect_to_loopback_even_through_a_listed_host(self):
        if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
            self.skipTest("needs root, unshare and ip (make test installs iproute2 and util-linux)")
        env = dict(os.environ, SLUICE_REDIRECT_SCENARIO="1")
        p = subprocess.run(["unshare", "-n", sys.executable, os.path.abspath(__file__)], env=env,
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr[-4000:])
        out = json.loads(p.stdout.strip().splitlines()[-1])
        loop = out["loopback"]
        self.assertEqual(loop["status"], 502, loop)
        self.assertEqual(loop["cache_status"], "sluice; fwd=uri-miss; detail=redirect-refused")
        self.assertIn("non-public address", loop["body"])
        self.assertFalse([s for s in out["seen"] if s.endswith("/secret")], out["seen"])
        self.assertEqual(out["address_refusals"], 1)
        # A listed host at a public address is followed.
        self.assertEqual(out["cdn"], {"status": 200, "body": "payload from /file"})
        self.assertEqual(out["temp_files"], [])


if __name__ == "__main__":
    if os.environ.get("SLUICE_REDIRECT_SCENARIO") == "1":
        scenario()
    else:
        unittest.main()
