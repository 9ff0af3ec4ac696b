"""Reload and shutdown (issue 16), with the real HAProxy in front.

SIGHUP re-reads the configuration and the route map without dropping what
is in flight; a bad one is refused and the old one keeps serving. SIGTERM
drains: downloads in flight finish byte for byte while new requests fail
open to the origin, up to drain_timeout. An HAProxy reload (-sf) hands over
to a new HAProxy while the old one finishes its downloads.

Every download in flight is checked byte for byte against the origin's
generated body; every wait is a condition with a deadline.
"""

import json
import os
import signal
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

from edge import ROOT, Edge  # noqa: E402
from httpclient import wait_until  # noqa: E402
from origin import OriginServer, body_for  # noqa: E402

SLOW_SIZE = 1_200_000


class Download:
    """One GET through the edge on a thread; .result once joined."""

    def __init__(self, edge, path, **kw):
        self.result = None
        self.thread = threading.Thread(target=self._run, args=(edge, path, kw))
        self.thread.start()

    def _run(self, edge, path, kw):
        self.result = edge.get(path, timeout=60, **kw)

    def join(self, timeout=60):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "download did not end"
        return self.result


def start_slow(edge, path, seconds=2.0, size=SLOW_SIZE, origin=None):
    """A download of `path` that the origin sends over about `seconds`;
    returns once the agent is receiving it."""
    origin = origin or edge.origin
    origin.set_object(path, size=size, rate=int(size / seconds))
    d = Download(edge, "/generic" + path)
    wait_until(lambda: origin.bytes_sent(path) > 0, 10, message="download did not start")
    return d


def assert_whole(test, result, path, size=SLOW_SIZE):
    test.assertEqual(result.status, 200, result.error)
    test.assertTrue(result.complete, result.error)
    test.assertEqual(result.body, body_for(path, size))


def spop_sessions(log):
    """From the agent's debug log: {peer: closed?} of the SPOP connections
    that said HELLO for traffic (health checks left out)."""
    out = {}
    for line in log.splitlines():
        if "spop " not in line:
            continue
        peer = line.split("spop ", 1)[1].split(":", 2)
        peer = ":".join(peer[:2])
        if "HELLO ok" in line and "health check" not in line:
            out[peer] = False
        elif line.endswith(": closed") and peer in out:
            out[peer] = True
    return out


class Reload(unittest.TestCase):
    def setUp(self):
        self.edge = Edge(settings={"origin_max_in_flight_per_origin": "1", "origin_queue_max": "0",
                                   "log_level": "debug"})
        self.edge.__enter__()
        self.other = None

    def tearDown(self):
        self.edge.__exit__(None, None, None)
        if self.other:
            self.other.stop()

    def test_origin_and_limits_change_live_without_dropping_anything(self):
        e = self.edge
        self.assertEqual(e.get("/generic/warm.bin").status, 200)
        before = spop_sessions(e.agent_log())
        self.assertTrue(before and not any(before.values()), before)
        slow = start_slow(e, "/slow.bin")
        busy = e.get("/generic/second.bin")
        self.assertEqual(busy.status, 503)          # the one slot is taken, no queue
        self.other = OriginServer().start()
        e.settings.update({"origin_generic": "http://127.0.0.1:%d" % self.other.port,
                           "origin_max_in_flight_per_origin": "4"})
        e.write_config()
        e.reload_agent()
        self.assertEqual(e.metric("sluice_config_generation"), 2)
        r = e.get("/generic/third.bin")             # a slot is free now, from the new origin
        self.assertEqual(r.status, 200, r.error)
        self.assertEqual(r.body, body_for("/third.bin", 1000))
        self.assertEqual(self.other.requests("/third.bin"), 1)
        self.assertEqual(e.origin.requests("/third.bin"), 0)
        assert_whole(self, slow.join(), "/slow.bin")
        self.assertEqual(e.origin.requests("/slow.bin"), 1)
        after = spop_sessions(e.agent_log())       # no SPOP connection was dropped
        self.assertFalse([p for p in before if after[p]], after)
        self.assertIn("reload: configuration 2 applied", e.agent_log())

    def test_bad_configuration_is_refused_and_the_old_one_serves(self):
        e = self.edge
        self.assertEqual(e.get("/generic/a.bin").status, 200)
        slow = start_slow(e, "/slow.bin")
        good = dict(e.settings)
        for bad, why in (({"cache_max_size": "10Q"}, "cache_max_size: bad size '10Q'"),
                         ({"routes_map": "/nonexistent/routes.map"}, "/nonexistent/routes.map"),
                         ({"origin_generic": "ftp://x"}, "origin_generic")):
            e.settings = dict(good, **bad, origin_max_in_flight_per_origin="4")
            e.write_config()
            e.reload_agent(expect="error")
            log = e.agent_log()
            self.assertIn("reload refused, the running configuration stays in force", log)
            self.assertIn(why, log)
        self.assertEqual(e.metric('sluice_config_reloads_total{result="error"}'), 3)
        self.assertEqual(e.metric('sluice_config_reloads_total{result="ok"}'), 0)
        self.assertEqual(e.metric("sluice_config_generation"), 1)
        # The old limits still hold (one slot, taken): the refused files' 4 did not apply.
        self.assertEqual(e.get("/generic/b.bin").status, 503)
        assert_whole(self, slow.join(), "/slow.bin")
        r = e.get("/generic/a.bin")
        self.assertEqual(r.status, 200)
        self.assertIn("hit", r.header("cache-status"))

    def test_new_route_in_the_map_and_restart_only_settings(self):
        e = self.edge
        path = os.path.join(e.tmp, "routes.map")
        with open(os.path.join(ROOT, "haproxy", "routes.map")) as f:
            text = f.read()
        with open(path, "w") as f:   # generic moves to /files/, a new route "extra" (no ecosystem: not cached)
            f.write(text.replace("/generic/ ", "/files/ ") + "/extra/ extra\n")
        self.assertEqual(e.get_agent("/extra/x.bin").status, 404)
        e.settings.update({"routes_map": path, "origin_extra": "http://127.0.0.1:%d" % e.origin.port,
                           "workers": "2", "http_listen": "127.0.0.1:1"})
        e.write_config()
        e.reload_agent()
        r = e.get_agent("/files/x.bin")
        self.assertEqual(r.status, 200, r.error)
        self.assertEqual(r.body, body_for("/x.bin", 1000))
        wait_until(lambda: e.get_agent("/files/x.bin").header("cache-status") == "sluice; hit", 10)
        self.assertEqual(e.get_agent("/generic/x.bin").status, 404)
        self.assertEqual(e.get_agent("/extra/x.bin").status, 421)   # a route now, one the agent does not cache
        log = e.agent_log()
        self.assertIn("reload: workers changed from '4' to '2' but needs a restart", log)
        self.assertIn("reload: http_listen changed", log)   # and the listener stayed where it was


class Freshness(unittest.TestCase):
    def test_a_per_route_ttl_set_by_a_reload_applies_to_stored_metadata(self):
        with Edge(settings={"metadata_ttl": "1h"}, origin_routes=("generic", "npm")) as e:
            doc = b'{"name": "ttl", "dist-tags": {"latest": "1.0.0"}, "versions": {}}'
            e.origin.set_object("/ttl", body=doc, headers={"Content-Type": "application/json"})
            self.assertEqual(e.get("/npm/ttl").header("cache-status"), "sluice; fwd=uri-miss; stored")
            e.wait_idle()
            self.assertEqual(e.get("/npm/ttl").header("cache-status"), "sluice; hit")   # fresh for an hour
            e.settings["route_npm_metadata_ttl"] = "0"
            e.write_config()
            e.reload_agent()
            r = e.get("/npm/ttl")                        # stale now: served, revalidated behind it
            self.assertEqual(r.header("cache-status"), "sluice; hit; detail=stale-while-revalidate")
            self.assertEqual(json.loads(r.body)["name"], "ttl")
            wait_until(lambda: e.origin.requests("/ttl") == 2, 10, message="no revalidation")


class LogFile(unittest.TestCase):
    def test_sighup_reopens_the_log_file_and_follows_a_new_name(self):
        with Edge(haproxy=False) as e:
            path = os.path.join(e.tmp, "sluice.log")
            e.settings["log_file"] = path
            e.write_config()
            e.stop_agent()
            e.start_agent()
            os.rename(path, path + ".1")                 # what logrotate does first
            e.reload_agent()
            wait_until(lambda: os.path.exists(path), 5)
            with open(path) as f:
                self.assertIn("reload: configuration 2 applied", f.read())
            with open(path + ".1") as f:
                self.assertNotIn("reload: configuration 2 applied", f.read())
            other = os.path.join(e.tmp, "other.log")
            e.settings["log_file"] = other
            e.write_config()
            e.reload_agent()
            with open(other) as f:
                self.assertIn("reload: configuration 3 applied", f.read())
            with open(path) as f:
                self.assertIn("reload: log lines go to %s from here on" % other, f.read())


class Shutdown(unittest.TestCase):
    def test_sigterm_lets_a_download_finish_while_new_requests_fail_open(self):
        with Edge() as e:
            self.assertEqual(e.get("/generic/a.bin").status, 200)
            slow = start_slow(e, "/slow.bin", seconds=3.0)
            e.agent.send_signal(signal.SIGTERM)
            wait_until(lambda: e.metric("sluice_stopping") == 1, 5)
            r = e.get("/generic/a.bin")                 # cached, but the agent is draining
            self.assertEqual(r.status, 200, r.error)
            self.assertEqual(r.body, body_for("/a.bin", 1000))
            self.assertIn("fwd=bypass", r.header("cache-status"))
            self.assertIsNone(e.agent.poll())           # still there for the download
            assert_whole(self, slow.join(), "/slow.bin")
            self.assertEqual(e.agent.wait(10), 0)
            e.check_agent_exit()
            self.assertIn("drain: every transfer finished", e.agent_log())

    def test_sigterm_with_a_stalled_client_exits_at_drain_timeout(self):
        with Edge(settings={"drain_timeout": "1s", "client_stall_timeout": "60s"}) as e:
            e.origin.set_object("/big.bin", size=40_000_000)
            stalled = Download(e, "/generic/big.bin", stop_reading_after=100_000, rcvbuf=4096)
            wait_until(lambda: e.origin.bytes_sent("/big.bin") > 4_000_000, 20,
                       message="the fill did not get ahead of the stalled client")
            t0 = time.monotonic()
            e.agent.send_signal(signal.SIGTERM)
            self.assertEqual(e.agent.wait(15), 0)
            waited = time.monotonic() - t0
            self.assertGreaterEqual(waited, 1.0)
            self.assertLess(waited, 8.0)
            e.check_agent_exit()
            self.assertIn("still running after drain_timeout (1.0s), cutting them", e.agent_log())
            self.assertFalse(stalled.join().complete)

    def test_second_sigterm_cuts_the_drain_short(self):
        with Edge() as e:
            slow = start_slow(e, "/slow.bin", seconds=20.0)
            t0 = time.monotonic()
            e.agent.send_signal(signal.SIGTERM)
            wait_until(lambda: "draining" in e.agent_log(), 5)
            e.agent.send_signal(signal.SIGTERM)
            self.assertEqual(e.agent.wait(10), 0)
            self.assertLess(time.monotonic() - t0, 8.0)
            e.check_agent_exit()
            self.assertFalse(slow.join().complete)


class HAProxyReload(unittest.TestCase):
    # HAProxy 2.6's old worker, soft-stopping, holds the streams it still
    # forwards until its SPOE applet's `timeout idle` (30 s in spoe.conf)
    # runs out, even though the agent answers its DISCONNECT at once: the
    # download completes, but late (docs/architecture.md, reload).
    def test_sf_reload_keeps_the_download_and_the_new_haproxy_gets_hits(self):
        with Edge() as e:
            slow = start_slow(e, "/slow.bin", seconds=3.0)
            old = e.reload_haproxy()
            assert_whole(self, slow.join(), "/slow.bin")
            self.assertEqual(old.wait(15), 0)           # the old one left after its download
            e.wait_idle()
            r = e.get("/generic/slow.bin")              # through the new HAProxy: a hit
            self.assertEqual(r.status, 200, r.error)
            self.assertEqual(r.header("cache-status"), "sluice; hit")
            self.assertEqual(r.body, body_for("/slow.bin", SLOW_SIZE))
            self.assertEqual(e.origin.requests("/slow.bin"), 1)
            self.assertIsNone(e.agent.poll())

    def test_master_worker_reload(self):
        with Edge(haproxy=False) as e:
            e.start_haproxy(master_worker=True)
            slow = start_slow(e, "/slow.bin", seconds=3.0)
            def reloaded():
                # SIGUSR2: the master re-executes and replaces its workers. One
                # sent while the master still starts up can be lost: repeat.
                if e.haproxy_log().count("New worker") >= 2:
                    return True
                e.haproxy.send_signal(signal.SIGUSR2)
                return False
            wait_until(reloaded, 10, interval=1.0, message="the master did not start new workers")
            assert_whole(self, slow.join(), "/slow.bin")
            wait_until(lambda: "Former worker" in e.haproxy_log(), 10,
                       message="the old worker did not leave after its download")
            e.wait_idle()
            r = wait_until(lambda: hit_or_none(e.get("/generic/slow.bin")), 10,
                           message="the new workers got no hit")
            self.assertEqual(r.body, body_for("/slow.bin", SLOW_SIZE))
            self.assertEqual(e.origin.requests("/slow.bin"), 1)
            self.assertIsNone(e.haproxy.poll())


def hit_or_none(r):
    return r if r.header("cache-status") == "sluice; hit" else None


if __name__ == "__main__":
    unittest.main()
