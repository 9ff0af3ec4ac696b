"""The shipped examples (examples/) are checked by the tools that will read
them in production, and the SPOE drop-in is run for real:

  drop-in/spoe   composed into a minimal "existing" haproxy.cfg (a frontend
                 and a default backend), `haproxy -c`, then started against
                 a live agent: a miss, a hit, an inline hit, and fail-open
                 to the existing backend with the agent stopped
  *.conf         the agent's `--check` on every example agent config (with
                 a placeholder AWS key pair: multi-edge-s3's has an S3 tier;
                 test_multi_edge_example runs that example for real)
  systemd        `systemd-analyze verify` (needs no running systemd) on
                 copies whose /usr/local/bin/sluice points at the built
                 binary, since verify insists that ExecStart exists
  monitoring     `promtool check rules` and `promtool test rules` (the
                 alerts fire on the series they are meant for), the
                 dashboard's JSON structure, and every metric name either
                 file uses exists in a live agent's /metrics or in HAProxy's
                 Prometheus exporter (docs/operations.md's names too)
"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

import promtext  # noqa: E402
from edge import AGENT_BIN, HAPROXY, ROOT, Edge  # noqa: E402
from httpclient import fetch, free_port, wait_until  # noqa: E402
from origin import body_for  # noqa: E402

EXAMPLES = os.path.join(ROOT, "examples")
DROPIN = os.path.join(EXAMPLES, "drop-in", "spoe")
MONITORING = os.path.join(EXAMPLES, "monitoring")
SYSTEMD = os.path.join(EXAMPLES, "systemd")
PROMTOOL = shutil.which("promtool")
METRIC_NAME = re.compile(r"\b((?:sluice|haproxy)_[a-z0-9_]+)")

# The "existing" configuration the drop-in goes into: one frontend whose
# default backend reaches the origin itself (as a site's own backend for
# /generic/ would), with the drop-in's lines pasted before its routing.
EXISTING = """
global
    log stdout format raw local0 notice
    maxconn 256
{global_lines}

defaults
    mode http
    log global
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend www
    bind 127.0.0.1:{listen}
{dropin}
    default_backend app

backend app
    http-request replace-path ^/generic(/.*) \\1
    server origin 127.0.0.1:{origin}
"""


def agent_env():
    e = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    e["ASAN_OPTIONS"] = "detect_leaks=0"
    return e


def read(path):
    with open(path) as f:
        return f.read()


def compose_dropin(tmp, listen, origin, stats, spop_sock, http_sock, extra=""):
    """Write the drop-in as an operator would install it, with its fixed
    paths (/etc/sluice, /run/sluice, the exporter's port) pointed into tmp.
    Returns the haproxy -f arguments."""
    etc = os.path.join(tmp, "etc")
    os.makedirs(etc, exist_ok=True)
    for src in (os.path.join(DROPIN, "spoe.conf"), os.path.join(ROOT, "haproxy", "sluice.lua"),
                os.path.join(ROOT, "haproxy", "routes.map")):
        shutil.copy(src, etc)

    def local(text):
        text = text.replace("/etc/sluice/", etc + "/").replace("127.0.0.1:8405", "127.0.0.1:%d" % stats)
        return text.replace("/run/sluice/spop.sock", spop_sock).replace("/run/sluice/http.sock", http_sock)
    main_cfg = os.path.join(tmp, "haproxy.cfg")
    with open(main_cfg, "w") as f:
        f.write(EXISTING.format(listen=listen, origin=origin,
                                global_lines=local(read(os.path.join(DROPIN, "global.cfg"))),
                                dropin=local(read(os.path.join(DROPIN, "frontend.cfg"))) + extra))
    backends = os.path.join(tmp, "sluice-backends.cfg")
    with open(backends, "w") as f:
        f.write(local(read(os.path.join(DROPIN, "backends.cfg"))))
    return ["-f", main_cfg, "-f", backends]


def scrape(port):
    r = fetch("127.0.0.1", port, "/metrics", timeout=10)
    assert r.status == 200, r
    return r.body.decode()


SELECTOR = re.compile(r"\b((?:sluice|haproxy)_[a-z0-9_]+)\{([^}]*)\}")
MATCHER = re.compile(r'([a-z_]+)\s*(=~|=)\s*"([^"]*)"')


def label_values_in(text):
    """(metric, label) -> the values that label takes in an exposition."""
    seen = {}
    for line in text.splitlines():
        m = SELECTOR.match(line)
        if m:
            for k, _, v in MATCHER.findall(m.group(2)):
                seen.setdefault((m.group(1), k), set()).add(v)
    return seen


def label_values_used(exprs):
    """(metric, label) -> the literal values the expressions match on (each
    alternative of a `=~"a|b"`); matchers on template variables are skipped."""
    used = {}
    for expr in exprs:
        for name, labels in SELECTOR.findall(expr):
            for k, op, v in MATCHER.findall(labels):
                if "$" not in v:
                    used.setdefault((name, k), set()).update(v.split("|") if op == "=~" else [v])
    return used


def names_in(text):
    """Metric names of an exposition: every series' and every family's (a
    histogram's family name has no series of its own)."""
    series = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    return series | set(re.findall(r"(?m)^# TYPE (\S+)", text))


def rules_exprs():
    """The expr of every rule: one line, or a `|` block indented below it
    (read by hand: no YAML module is a test dependency)."""
    exprs, block, indent = [], None, 0
    for line in read(os.path.join(MONITORING, "sluice-rules.yml")).splitlines():
        if block is not None:
            if line.strip() and len(line) - len(line.lstrip()) > indent:
                block.append(line.strip())
                continue
            exprs.append(" ".join(block))
            block = None
        m = re.match(r"^(\s*)expr:\s*(.*)$", line)
        if m and m.group(2) in ("|", ">", "|-", ">-"):
            block, indent = [], len(m.group(1))
        elif m:
            exprs.append(m.group(2))
    if block is not None:
        exprs.append(" ".join(block))
    return exprs


def dashboard():
    return json.loads(read(os.path.join(MONITORING, "sluice-dashboard.json")))


def dashboard_exprs():
    d = dashboard()
    return ([t["expr"] for p in d["panels"] for t in p.get("targets", [])] +
            [v["query"] for v in d["templating"]["list"] if v["type"] == "query"])


class DropIn(unittest.TestCase):
    """The SPOE drop-in inside an existing configuration, live."""

    @classmethod
    def setUpClass(cls):
        cls.edge = Edge(transport="unix", haproxy=False)
        cls.edge.__enter__()
        cls.haproxy = cls.log = None
        try:
            cls.start_haproxy()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def start_haproxy(cls):
        cls.tmp = cls.edge.tmp
        cls.listen, cls.stats = free_port(), free_port()
        cls.cfgs = compose_dropin(cls.tmp, cls.listen, cls.edge.origin.port, cls.stats,
                                  cls.edge.unix_paths["spop"], cls.edge.unix_paths["http"])
        cls.log = open(os.path.join(cls.tmp, "dropin-haproxy.log"), "ab")
        cls.haproxy = subprocess.Popen([HAPROXY, "-db"] + cls.cfgs, stdout=cls.log, stderr=subprocess.STDOUT)
        wait_until(cls.haproxy_ready, 15, message="the drop-in's HAProxy did not start")
        cls.wait_agent_up()

    @classmethod
    def wait_agent_up(cls):
        """Until HAProxy's checks see both sides of the agent up (before
        that, a fill verdict goes to the existing backend: a second origin
        request)."""
        def up():
            m = promtext.parse(scrape(cls.stats))
            return all(m.get('haproxy_backend_active_servers{proxy="%s"}' % b) == 1
                       for b in ("be_sluice", "be_sluice_spop"))
        wait_until(up, 15, message="HAProxy never saw the agent up")

    @classmethod
    def haproxy_ready(cls):
        if cls.haproxy.poll() is not None:
            raise AssertionError("haproxy exited: " + read(cls.log.name)[-3000:])
        return fetch("127.0.0.1", cls.stats, "/metrics").status == 200

    @classmethod
    def tearDownClass(cls):
        if cls.haproxy:
            cls.haproxy.terminate()
            cls.haproxy.wait(10)
        if cls.log:
            cls.log.close()
        cls.edge.__exit__(None, None, None)

    def get(self, path):
        return fetch("127.0.0.1", self.listen, path, timeout=10)

    def test_haproxy_accepts_the_composed_configuration(self):
        r = subprocess.run([HAPROXY, "-c"] + self.cfgs, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotIn("[WARNING]", r.stdout + r.stderr)

    def test_haproxy_accepts_it_with_the_agents_generated_origin_backends(self):
        # README's variant: pass and fail-open to the agent's own origins.
        tmp = os.path.join(self.tmp, "with-generated")
        os.makedirs(tmp)
        gen = os.path.join(tmp, "generated.cfg")
        with open(gen, "w") as f:
            subprocess.run([AGENT_BIN, "-c", self.edge.config_path, "--print-haproxy"], stdout=f,
                           env=agent_env(), check=True)
        to_origins = "    use_backend be_origin_%[var(txn.sluice_route)] if { var(txn.sluice_route) -m found }\n"
        cfgs = compose_dropin(tmp, free_port(), self.edge.origin.port, free_port(), self.edge.unix_paths["spop"],
                              self.edge.unix_paths["http"], extra=to_origins)
        r = subprocess.run([HAPROXY, "-c", "-f", gen] + cfgs, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotIn("[WARNING]", r.stdout + r.stderr)

    def test_miss_then_hit_through_the_agent(self):
        p = "/dropin/big.bin"
        self.edge.origin.set_object(p, size=200_000)   # above inline_hit_max: the HTTP side
        miss = self.get("/generic" + p)
        self.assertEqual((miss.status, miss.body), (200, body_for(p, 200_000)))
        self.assertEqual(miss.header("Cache-Status"), "sluice; fwd=uri-miss; stored")
        self.edge.wait_idle()
        hit = self.get("/generic" + p)
        self.assertEqual((hit.status, hit.header("Cache-Status")), (200, "sluice; hit"))
        self.assertEqual(hit.body, body_for(p, 200_000))
        self.assertEqual(self.edge.origin.requests(p), 1)

    def test_small_hit_is_sent_inline_by_the_lua_service(self):
        p = "/dropin/small.bin"
        self.edge.origin.set_object(p, size=100)
        wait_until(lambda: self.get("/generic" + p).header("Cache-Status") == "sluice; hit", 15,
                   message="no hit for the small object")
        before = self.edge.metric('sluice_verdicts_total{verdict="inline"}')
        r = self.get("/generic" + p)
        self.assertEqual((r.status, r.body), (200, body_for(p, 100)))
        self.assertEqual(self.edge.metric('sluice_verdicts_total{verdict="inline"}'), before + 1)

    def test_unrouted_paths_are_left_alone(self):
        self.edge.origin.set_object("/other/plain.bin", size=10)
        before = self.edge.metric("sluice_verdicts_total")
        r = self.get("/other/plain.bin")
        self.assertEqual((r.status, r.body), (200, body_for("/other/plain.bin", 10)))
        self.assertEqual(self.edge.metric("sluice_verdicts_total"), before)

    def test_fails_open_to_the_existing_backend_when_the_agent_stops(self):
        p = "/dropin/open.bin"
        self.edge.origin.set_object(p, size=50_000)
        self.edge.stop_agent()
        try:
            r = self.get("/generic" + p)
            self.assertEqual((r.status, r.body), (200, body_for(p, 50_000)))
            self.assertNotIn("sluice", r.header("Cache-Status") or "")
        finally:
            self.edge.start_agent()
            self.wait_agent_up()
        wait_until(lambda: self.get("/generic" + p).header("Cache-Status") == "sluice; hit", 15,
                   message="no hit after the agent came back")

    def test_monitoring_uses_only_metrics_that_exist(self):
        p = "/dropin/metrics.bin"
        self.edge.origin.set_object(p, size=20_000)
        self.get("/generic" + p)
        live = names_in(self.edge_metrics()) | names_in(scrape(self.stats))
        # Settings may share the prefix (haproxy_socket_dir): they are
        # what docs/configuration.md lists in backquotes, not metrics.
        settings = set(re.findall(r"^\| `([a-z0-9_]+)`", read(os.path.join(ROOT, "docs", "configuration.md")), re.M))
        used = set(METRIC_NAME.findall(read(os.path.join(ROOT, "docs", "operations.md")))) - settings
        for expr in rules_exprs() + dashboard_exprs():
            used |= set(METRIC_NAME.findall(expr))
        self.assertTrue(any(n.startswith("haproxy_") for n in used))
        self.assertEqual(sorted(used - live), [],
                         "metric names in examples/monitoring or docs/operations.md that nothing exports")

    def test_monitoring_matches_only_label_values_that_exist(self):
        # A typo in a label value (reason="ENOSPC") is valid PromQL that
        # never matches: the alert would never fire.
        live = label_values_in(self.edge_metrics() + scrape(self.stats))
        used = label_values_used(rules_exprs() + dashboard_exprs())
        self.assertIn(("sluice_cache_write_failures_total", "reason"), used)
        missing = {key: sorted(vals - live.get(key, set())) for key, vals in used.items()
                   if vals - live.get(key, set())}
        self.assertEqual(missing, {})

    def edge_metrics(self):
        return scrape(self.edge.ports["admin"])


class AgentConfigs(unittest.TestCase):
    def test_every_example_agent_config_passes_check(self):
        confs = [c for c in glob.glob(os.path.join(EXAMPLES, "**", "sluice*.conf"), recursive=True)
                 if "service.d" not in c]
        self.assertIn(os.path.join(EXAMPLES, "sluice.conf"), confs)
        e = agent_env()
        e["SLUICE_ROUTES_MAP"] = os.path.join(ROOT, "haproxy", "routes.map")
        # A config with an S3 tier (multi-edge-s3) needs a key pair in the
        # environment to pass --check; its example script sets the store's.
        e.update(AWS_ACCESS_KEY_ID="AKIAEXAMPLECHECK", AWS_SECRET_ACCESS_KEY="example-check-secret")
        for conf in confs:
            r = subprocess.run([AGENT_BIN, "-c", conf, "--check"], capture_output=True, text=True, env=e, cwd=ROOT)
            self.assertEqual(r.returncode, 0, conf + ": " + r.stderr)


@unittest.skipUnless(shutil.which("systemd-analyze"), "systemd-analyze not installed")
class Systemd(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="sluice-units-")
        self.addCleanup(shutil.rmtree, self.tmp)

    def install(self, src, dst):
        """A copy of an example unit file whose agent binary is the built one."""
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(dst, "w") as f:
            f.write(read(src).replace("/usr/local/bin/sluice", os.path.abspath(AGENT_BIN)))

    def verify(self, unit):
        r = subprocess.run(["systemd-analyze", "verify", unit], capture_output=True, text=True,
                           env=dict(os.environ, SYSTEMD_LOG_COLOR="0"), cwd=self.tmp)
        # Unknown keys and bad values are only warnings: none is allowed.
        self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""), unit)

    def test_agent_unit_verifies(self):
        self.install(os.path.join(SYSTEMD, "sluice.service"), os.path.join(self.tmp, "sluice.service"))
        self.verify(os.path.join(self.tmp, "sluice.service"))

    def test_haproxy_drop_in_verifies_beside_the_agent_unit(self):
        # Debian's own haproxy.service with the drop-in next to it: verify
        # reads drop-ins from the unit's directory.
        shutil.copy("/lib/systemd/system/haproxy.service", self.tmp)
        self.install(os.path.join(SYSTEMD, "sluice.service"), os.path.join(self.tmp, "sluice.service"))
        self.install(os.path.join(SYSTEMD, "haproxy.service.d", "sluice.conf"),
                     os.path.join(self.tmp, "haproxy.service.d", "sluice.conf"))
        self.verify(os.path.join(self.tmp, "haproxy.service"))

    def test_agent_unit_checks_the_config_and_reloads_with_sighup(self):
        unit = read(os.path.join(SYSTEMD, "sluice.service"))
        self.assertIn("ExecStartPre=/usr/local/bin/sluice -c /etc/sluice/sluice.conf --check", unit)
        self.assertIn("ExecReload=/bin/kill -HUP $MAINPID", unit)
        self.assertRegex(unit, r"(?m)^ReadWritePaths=/var/cache/sluice$")


NO_PROMTOOL = "promtool not installed (Debian package prometheus, in the Makefile's TEST_PKGS)"


class Monitoring(unittest.TestCase):
    @unittest.skipUnless(PROMTOOL, NO_PROMTOOL)
    def test_rules_pass_promtool_check(self):
        r = subprocess.run([PROMTOOL, "check", "rules", os.path.join(MONITORING, "sluice-rules.yml")],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    @unittest.skipUnless(PROMTOOL, NO_PROMTOOL)
    def test_alerts_fire_on_their_series(self):
        r = subprocess.run([PROMTOOL, "test", "rules", os.path.join(MONITORING, "sluice-rules.test.yml")],
                           capture_output=True, text=True, cwd=MONITORING)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_every_runbook_link_names_a_section_of_operations_md(self):
        heads = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
                 for h in re.findall(r"(?m)^#+ (.+)$", read(os.path.join(ROOT, "docs", "operations.md")))}
        links = re.findall(r"docs/operations\.md#([a-z0-9-]+)", read(os.path.join(MONITORING, "sluice-rules.yml")))
        self.assertTrue(links)
        self.assertEqual(sorted(set(links) - heads), [])

    def test_dashboard_structure(self):
        d = dashboard()
        self.assertTrue(d["title"] and d["uid"])
        self.assertIsInstance(d["schemaVersion"], int)
        ids = [p["id"] for p in d["panels"]]
        self.assertEqual(len(ids), len(set(ids)), "duplicate panel ids")
        for p in d["panels"]:
            self.assertTrue({"type", "title", "gridPos"} <= set(p), p.get("title"))
            if p["type"] != "row":
                self.assertTrue(p["targets"], p["title"])
                for t in p["targets"]:
                    self.assertTrue(t["expr"] and t["refId"], p["title"])
        titles = " ".join(p["title"].lower() for p in d["panels"])
        for want in ("hit ratio", "fills in flight", "queue", "origin", "bytes", "disk", "integrity"):
            self.assertIn(want, titles)


if __name__ == "__main__":
    unittest.main()
