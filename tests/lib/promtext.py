"""Prometheus text exposition, parsed for the tests and the benchmark.

The agent labels what happens per route (``sluice_hits_total{route="npm"}``)
and some families by kind (``sluice_verdicts_total{route=...,verdict=...}``).
A test rarely cares about every label, so a selector names a metric and
*some* of its labels, and gets the sum of every series that has them::

    m = parse(text)
    m.get("sluice_hits_total")                         # all routes
    m.get('sluice_hits_total{route="generic"}')        # one route
    m.get('sluice_verdicts_total{verdict="hit"}')      # all routes, one verdict
    m.by_label("sluice_verdicts_total", "verdict")     # {"hit": 3.0, "fill": 1.0, ...}

An exact series name is also a selector, so old lookups keep working. A
selector that matches nothing gives the default (0.0 unless told).
"""

import re

_SERIES = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def _split(series):
    m = _SERIES.match(series.strip())
    if not m:
        raise ValueError("not a metric selector: %r" % series)
    return m.group(1), dict(_LABEL.findall(m.group(2) or ""))


class MetricSet(dict):
    """Exact series -> value, with selector lookups (see the module doc)."""

    def select(self, selector):
        name, want = _split(selector)
        for series, value in self.items():
            n, labels = _split(series)
            if n == name and all(labels.get(k) == v for k, v in want.items()):
                yield labels, value

    def get(self, selector, default=0.0):
        found = list(self.select(selector))
        return sum(v for _, v in found) if found else default

    def __getitem__(self, selector):
        found = list(self.select(selector))
        if not found:
            raise KeyError(selector)
        return sum(v for _, v in found)

    def __contains__(self, selector):
        return any(True for _ in self.select(selector))

    def by_label(self, name, label):
        out = {}
        for labels, value in self.select(name):
            out[labels.get(label, "")] = out.get(labels.get(label, ""), 0.0) + value
        return out


def parse(text):
    out = MetricSet()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            try:
                dict.__setitem__(out, series, float(value))
            except ValueError:
                pass
    return out
