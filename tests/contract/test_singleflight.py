"""C5/C4: one origin fetch per key, streamed to every client as it arrives;
a client that stops reading is dropped without slowing anyone else."""

import statistics
import threading
import time
import unittest

from contract import ContractCase, KiB, MiB, across_routes, body_for, parallel, wait_until, wfail


@across_routes
class Stampede(ContractCase):
    """100 concurrent requests for one cold key."""

    N = 100
    SIZE = 1 * MiB
    RATE = 1 * MiB      # 1 s of body after a 0.5 s head
    DELAY_MS = 500

    def test_one_origin_request_every_body_exact_followers_stream(self):
        e = self.edge = self.start_edge()
        base = self.baseline(e)
        p = self.path("hot.bin", size=self.SIZE, delay_ms=self.DELAY_MS, rate=self.RATE)
        body = body_for(p, self.SIZE)
        go = threading.Event()

        def client(i):
            go.wait()
            return e.get(self.url(p), timeout=30)
        with_results = []
        t = threading.Thread(target=lambda: with_results.extend(parallel(client, range(self.N))))
        t.start()
        go.set()
        t.join()
        rs = with_results
        self.assert_exact(rs, body)
        self.assertEqual(e.origin.requests(p), 1, "singleflight broken: %d origin requests" % e.origin.requests(p))
        self.assertEqual(e.origin.stats()["paths"][p]["bytes_sent"], self.SIZE)
        leaders = [r for r in rs if "collapsed" not in r.header("Cache-Status")]
        followers = [r for r in rs if "collapsed" in r.header("Cache-Status")]
        self.assertEqual(len(leaders), 1, [r.header("Cache-Status") for r in rs])
        self.assertEqual(leaders[0].header("Cache-Status"), "sluice; fwd=uri-miss; stored")
        # Followers stream from the running fill: their first byte comes with
        # the leader's (the origin's head after delay_ms), not after the
        # 1 s body or the commit.
        lead = leaders[0].ttfb
        p50 = statistics.median(r.ttfb for r in followers)
        self.assertGreaterEqual(lead, self.DELAY_MS / 1000.0)
        self.assertLess(abs(p50 - lead), 0.3, "leader ttfb %.3f, followers p50 %.3f" % (lead, p50))
        self.assertLess(max(r.ttfb for r in followers), self.DELAY_MS / 1000.0 + self.SIZE / self.RATE,
                        "a follower waited for the whole body before its first byte")
        m = e.metrics()
        self.assertEqual(self.delta(base["metrics"], m, "sluice_followers_total"), self.N - 1)
        self.assertEqual(self.delta(base["metrics"], m, "sluice_misses_total"), 1)
        self.assert_contract(e, base, origin_pool_max=base["origin_pool"] + 1)
        e.wait_idle()
        r = e.get(self.url(p))
        self.assert_exact([r], body)
        self.assertEqual(r.header("Cache-Status"), "sluice; hit")
        self.assertEqual(e.origin.requests(p), 1)


@across_routes(always=False)
class StampedeDiskFull(ContractCase):
    """50 clients on one cold object while the cache disk refuses every
    write (ENOSPC): from the start, or from the middle of the body. The
    followers come in two waves, the second once the cache writer has
    given up on the disk and the first wave has read past the first
    chunks, so the bytes the second wave needs are in no spool file: they
    still join the running fill (its memory spool holds the body from
    byte 0) - one origin request, every body exact, nothing stored."""

    SIZE = 4 * MiB
    RATE = 1 * MiB      # 4 s of body: the second wave arrives long before its end
    WAVE1, WAVE2 = 10, 40

    def start_wave(self, e, p, n, out):
        ts = [threading.Thread(target=lambda: out.append(e.get(self.url(p), timeout=40))) for _ in range(n)]
        for t in ts:
            t.start()
        return ts

    def run_waves(self, e, base, p, toggle_at=None):
        """Wave 1, ENOSPC (now, or once toggle_at bytes went by), wave 2 once
        the writer is detached and wave 1 has read 512 KiB past where it was."""
        def fill_bytes():
            return self.delta(base["metrics"], e.metrics(), "sluice_fill_bytes_total")
        if toggle_at is None:
            e.fault("kind=enospc&after=0")
        rs = []
        ts = self.start_wave(e, p, self.WAVE1, rs)
        if toggle_at is not None:
            wait_until(lambda: e.origin.bytes_sent(p) >= toggle_at, 20, message="the fill never got under way")
            e.fault("kind=enospc&after=0")
        wait_until(lambda: self.delta(base["metrics"], e.metrics(), wfail("enospc")) >= 1, 20,
                   message="the cache writer never saw ENOSPC")
        past = fill_bytes() + self.WAVE1 * 512 * KiB
        wait_until(lambda: fill_bytes() >= past, 20, message="the first wave stopped reading")
        self.assertLess(e.origin.bytes_sent(p), self.SIZE, "the fill ended before the second wave: too slow")
        ts += self.start_wave(e, p, self.WAVE2, rs)
        for t in ts:
            t.join()
        e.fault("kind=none")
        return rs

    def check(self, e, base, p, rs):
        self.assert_exact(rs, body_for(p, self.SIZE))
        self.assertEqual(e.origin.requests(p), 1,
                         "a follower after the disk gave up started a second fill: %s"
                         % sorted(r.header("Cache-Status") for r in rs))
        statuses = [r.header("Cache-Status") for r in rs]
        self.assertEqual(sum("collapsed" in s for s in statuses), self.WAVE1 + self.WAVE2 - 1, statuses)
        m = e.metrics()
        self.assertEqual(self.delta(base["metrics"], m, "sluice_misses_total"), 1)
        self.assertEqual(self.delta(base["metrics"], m, "sluice_fills_committed_total"), 0)
        self.assert_contract(e, base, origin_pool_max=base["origin_pool"] + 1)
        self.assertIsNone(e.object_file_for(p), "a fill whose writer failed was stored")
        # The disk is back: the next request stores it.
        r = e.get(self.url(p), timeout=30)
        self.assert_exact([r], body_for(p, self.SIZE))
        self.assertEqual(r.header("Cache-Status"), "sluice; fwd=uri-miss; stored")

    def test_disk_full_from_the_start_one_origin_request(self):
        e = self.edge = self.start_edge()
        base = self.baseline(e)
        p = self.path("full.bin", size=self.SIZE, rate=self.RATE)
        self.check(e, base, p, self.run_waves(e, base, p))

    def test_disk_full_midway_one_origin_request(self):
        e = self.edge = self.start_edge()
        base = self.baseline(e)
        p = self.path("midway.bin", size=self.SIZE, rate=self.RATE)
        self.check(e, base, p, self.run_waves(e, base, p, toggle_at=1 * MiB))


@across_routes(always=False)
class CommitWindow(ContractCase):
    """A request right after a fill's last byte. Between that byte and the
    object in the index (the commit window: the last write, the header,
    fsync, rename) the key is still a fill: a request then joins it late,
    is counted (sluice_fill_late_joins_total) and is served at once from
    the finished spool, a hit for its client (`hit; detail=committing`: the
    origin is not involved); after it, a plain hit. The window is short: in the
    common case the next request is already a hit."""

    SIZE = 2 * MiB
    N = 10

    def late(self, base, e):
        return self.delta(base["metrics"], e.metrics(), "sluice_fill_late_joins_total")

    def test_request_after_the_last_byte_is_a_hit_or_a_counted_late_join(self):
        # The origin at 16 MiB/s, slower than the disk as origins are: the
        # writer keeps pace, and the window is the last write and the commit.
        e = self.edge = self.start_edge()
        base = self.baseline(e)
        statuses = []
        for i in range(self.N):
            p = self.path("w%d.bin" % i, size=self.SIZE, rate=16 * MiB)
            body = body_for(p, self.SIZE)
            first = e.get(self.url(p))
            again = e.get(self.url(p))
            self.assert_exact([first, again], body)
            self.assertEqual(first.header("Cache-Status"), "sluice; fwd=uri-miss; stored")
            statuses.append(again.header("Cache-Status"))
            self.assertIn(statuses[-1], ("sluice; hit", "sluice; hit; detail=committing"))
            # A late joiner is served from the finished spool at once.
            self.assertLess(again.elapsed, 1.0, statuses[-1])
            e.wait_idle()
            last = e.get(self.url(p))
            self.assert_exact([last], body)
            self.assertEqual(last.header("Cache-Status"), "sluice; hit")
            self.assertEqual(e.origin.requests(p), 1)
        m = e.metrics()
        windows = self.delta(base["metrics"], m, "sluice_fill_commit_window_seconds_count")
        mean = self.delta(base["metrics"], m, "sluice_fill_commit_window_seconds_sum") / max(windows, 1)
        late = statuses.count("sluice; hit; detail=committing")
        self.assertEqual(self.late(base, e), late, statuses)
        self.assertEqual(windows, self.N)
        print("\n  commit window: mean %.1f ms; %d of %d requests right after the last byte were late joins"
              % (mean * 1000, late, self.N))
        self.assert_contract(e, base)

    def test_late_joiner_in_a_slow_commit_is_served_from_the_finished_spool(self):
        e = self.edge = self.start_edge()
        base = self.baseline(e)
        p = self.path("slow.bin", size=self.SIZE)
        body = body_for(p, self.SIZE)
        e.fault("commit_delay=2s")   # a slow disk's fsync
        first = e.get(self.url(p))
        again = e.get(self.url(p))
        self.assert_exact([first, again], body)
        self.assertEqual(again.header("Cache-Status"), "sluice; hit; detail=committing")
        self.assertLess(again.elapsed, 1.0, "the late joiner waited for the commit")
        self.assertEqual(self.late(base, e), 1)
        self.assertEqual(self.delta(base["metrics"], e.metrics(), "sluice_fills_committed_total"), 0,
                         "committed already: the test proves nothing")
        wait_until(lambda: self.delta(base["metrics"], e.metrics(), "sluice_fills_committed_total") == 1, 10,
                   message="never committed")
        e.fault("kind=none")
        r = e.get(self.url(p))
        self.assert_exact([r], body)
        self.assertEqual(r.header("Cache-Status"), "sluice; hit")
        self.assertEqual(e.origin.requests(p), 1)
        self.assertEqual(self.late(base, e), 1)
        self.assert_contract(e, base)


@across_routes(always=False)
class StalledFollower(ContractCase):
    """One follower stops reading while 20 others read at full speed.

    The stalled follower is connected straight to the agent's HTTP side with
    a 16 KiB receive buffer: that is what HAProxy's connection to the agent
    looks like once HAProxy's own buffers are full, minus the buffers
    themselves, whose size (kernel autotuning, up to tcp_rmem's 32 MiB here)
    would make the moment the stall reaches the agent a matter of luck.
    StalledBehindHaproxy checks the same through HAProxy, alone."""

    settings = {"client_stall_timeout": "2s"}
    SIZE = 8 * MiB
    RATE = 8 * MiB      # ~1 s of origin time
    OTHERS = 20

    def run_stall(self, e, p):
        body = body_for(p, self.SIZE)
        go = threading.Barrier(self.OTHERS + 1)

        def client(i):
            go.wait()
            if i == 0:
                return e.get_agent(self.url(p), timeout=5, stop_reading_after=64 * KiB, rcvbuf=16 * KiB)
            return e.get(self.url(p), timeout=30)
        t0 = time.monotonic()
        rs = parallel(client, range(self.OTHERS + 1))
        stalled, others = rs[0], rs[1:]
        self.assert_exact(others, body, what="reading follower")
        self.assertTrue(stalled.stopped_reading)
        self.assertFalse(stalled.complete)
        self.assertTrue(body.startswith(stalled.body))
        return t0, stalled, others

    def watch_drop(self, e, before):
        dropped_at = []

        def watch():
            wait_until(lambda: e.metric("sluice_stalled_clients_dropped_total")
                       > before.get("sluice_stalled_clients_dropped_total", 0), 10,
                       message="the stalled client was never dropped")
            dropped_at.append(time.monotonic())
        w = threading.Thread(target=watch)
        w.start()
        return w, dropped_at

    def test_stalled_follower_is_dropped_others_finish_at_full_speed(self):
        e = self.edge = self.start_edge()
        base = self.baseline(e)
        # Control: what "full speed" is on this machine - the same 20 readers
        # of a same-sized object with nobody stalling.
        ctl = self.path("control.bin", size=self.SIZE, rate=self.RATE, delay_ms=200)
        control = parallel(lambda i: e.get(self.url(ctl), timeout=30), range(self.OTHERS))
        self.assert_exact(control, body_for(ctl, self.SIZE), what="control reader")
        full_speed = max(r.elapsed for r in control)
        e.wait_idle()
        p = self.path("big.bin", size=self.SIZE, rate=self.RATE, delay_ms=200)
        before = e.metrics()
        w, dropped_at = self.watch_drop(e, before)
        t0, stalled, others = self.run_stall(e, p)
        w.join()
        self.assertTrue(dropped_at, "the stalled client was never dropped")
        slowest = max(r.elapsed for r in others)
        self.assertLess(slowest, full_speed + 0.5,
                        "readers slowed by the stalled follower: %.2fs vs %.2fs with nobody stalling"
                        % (slowest, full_speed))
        self.assertGreater(dropped_at[0] - t0, 2.0, "dropped before the stall window")
        self.assertLess(dropped_at[0] - t0, 0.2 + 1.0 + 2.0 + 1.0, "dropped long after the stall window")
        m = e.metrics()
        self.assertEqual(self.delta(before, m, "sluice_stalled_clients_dropped_total"), 1)
        self.assertEqual(e.origin.requests(p), 1)
        self.assert_contract(e, base, origin_pool_max=base["origin_pool"] + 1)
        # The writer was healthy: the object is committed.
        r = e.get(self.url(p))
        self.assert_exact([r], body_for(p, self.SIZE))
        self.assertEqual(r.header("Cache-Status"), "sluice; hit")

    def test_stalled_follower_with_a_failed_writer_holds_others_at_most_the_window(self):
        # The writer failed at once, so memory is the only spool: the stalled
        # follower pins it and, once fill_buffer_size is full, the origin is
        # paused (ordinary flow control) until the stall window drops it.
        # The others are held by at most that window, never longer.
        e = self.edge = self.start_edge({"fill_buffer_size": "2M"})
        base = self.baseline(e)
        p = self.path("big.bin", size=self.SIZE, rate=self.RATE, delay_ms=200)
        e.fault("kind=eio&after=0")
        before = e.metrics()
        w, dropped_at = self.watch_drop(e, before)
        t0, stalled, others = self.run_stall(e, p)
        w.join()
        e.fault("kind=none")
        self.assertTrue(dropped_at, "the stalled client was never dropped")
        slowest = max(r.elapsed for r in others)
        self.assertLess(slowest, (dropped_at[0] - t0) + 1.0 + 1.5, "readers held longer than the stall window")
        m = e.metrics()
        self.assertEqual(self.delta(before, m, "sluice_stalled_clients_dropped_total"), 1)
        # Detached by the injected EIO - or for lagging, if the open of its
        # temp file was slow enough on a loaded machine: either way, gone.
        self.assertEqual(self.delta(before, m, "sluice_writers_detached_total"), 1)
        self.assertEqual(e.origin.requests(p), 1)
        self.assert_contract(e, base, origin_pool_max=base["origin_pool"] + 1)
        self.assertIsNone(e.object_file_for(p))


@across_routes(always=False)
class StalledBehindHaproxy(ContractCase):
    """A client that stops reading, through HAProxy: once HAProxy's buffers
    are full (about 8 MiB here) the agent's socket stalls and the agent drops
    the connection after client_stall_timeout; HAProxy then has nothing more
    to send, and the client's connection goes when the client does."""

    # A 16 MiB window gives the ASan build's writer slack at 20 MiB/s, so
    # the fill is committed after its client is gone.
    settings = {"client_stall_timeout": "2s", "fill_buffer_size": "16M"}

    def test_stall_propagates_through_haproxy_and_is_dropped(self):
        e = self.edge = self.start_edge()
        base = self.baseline(e)
        size = 40 * MiB
        p = self.path("huge.bin", size=size, rate=20 * MiB)
        before = e.metrics()
        stalled = e.get(self.url(p), timeout=5, stop_reading_after=64 * KiB, rcvbuf=16 * KiB)
        self.assertTrue(stalled.stopped_reading)
        self.assertFalse(stalled.complete)
        m = e.metrics()
        self.assertEqual(self.delta(before, m, "sluice_stalled_clients_dropped_total"), 1,
                         "the agent never saw the stall (HAProxy absorbed all %d bytes?)" % size)
        self.assert_contract(e, base, origin_pool_max=base["origin_pool"] + 1)
        # The writer was healthy: the fill finished without its client.
        r = e.get(self.url(p), timeout=30)
        self.assert_exact([r], body_for(p, size))
        self.assertEqual(r.header("Cache-Status"), "sluice; hit")
        self.assertEqual(e.origin.requests(p), 1)


if __name__ == "__main__":
    unittest.main()
