"""The agent's /metrics: Prometheus text that a scraper accepts, with what
happens to each route's requests under a `route` label."""

import os
import re
import sys
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

from edge import Edge  # noqa: E402

ROUTES = {"generic", "npm", "pypi", "pypi_files", "cargo_index", "cargo_dl", "maven", "go", "none"}


class Metrics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.edge = Edge()
        cls.edge.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.edge.__exit__(None, None, None)

    def text(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.edge.ports["admin"], timeout=5) as r:
            self.assertEqual(r.headers["Content-Type"], "text/plain; version=0.0.4")
            return r.read().decode()

    def test_every_series_belongs_to_a_described_family(self):
        families, series = {}, []
        for line in self.text().splitlines():
            m = re.match(r"# (HELP|TYPE) (\S+) (.+)$", line)
            if m:
                families.setdefault(m.group(2), {})[m.group(1)] = m.group(3)
                continue
            m = re.match(r'^([a-z_]+)(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? (-?[0-9.e+]+|[+-]Inf|NaN)$', line)
            self.assertIsNotNone(m, "unparseable line %r" % line)
            name = re.sub(r"_(bucket|sum|count)$", "", m.group(1)) if m.group(1) not in families else m.group(1)
            self.assertIn(name, families, "series before its # HELP/# TYPE: %r" % line)
            series.append(line.rsplit(" ", 1)[0])
        for name, f in families.items():
            self.assertIn(f.get("TYPE"), ("counter", "gauge", "histogram"), name)
            self.assertTrue(f.get("HELP"), name)
            if f["TYPE"] == "counter":
                self.assertTrue(name.endswith("_total"), name)
        self.assertEqual(len(series), len(set(series)), "a series appears twice")

    def test_route_label_names_the_route(self):
        p = "/generic/metrics/one.bin"
        self.edge.get(p)
        self.edge.wait_idle()
        self.edge.get(p)
        self.edge.get("/npm/left-pad")   # pass-through route, off in tests: no verdict
        m = self.edge.metrics()
        self.assertGreaterEqual(m.get('sluice_hits_total{route="generic"}'), 1)
        self.assertEqual(m.get('sluice_hits_total{route="npm"}', None), 0)
        self.assertGreaterEqual(m.get('sluice_misses_total{route="generic"}'), 1)
        self.assertGreaterEqual(m.get('sluice_verdicts_total{route="generic",verdict="fill"}'), 1)
        self.assertEqual(set(m.by_label("sluice_hits_total", "route")), ROUTES)
        self.assertEqual(m.get("sluice_hits_total"), sum(m.by_label("sluice_hits_total", "route").values()))


if __name__ == "__main__":
    unittest.main()
