"""The admin status page (GET /) in a real headless browser (Debian's
chromium over the DevTools protocol, tests/lib/browser.py): it loads with
no console error, warning or JS exception, shows numbers, and its numbers
follow the traffic (it refreshes itself from /status.json)."""

import os
import re
import sys
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

from browser import Browser  # noqa: E402
from edge import Edge  # noqa: E402
from httpclient import wait_until  # noqa: E402

HITS = "document.querySelector('tr[data-route=\"generic\"] td[data-field=\"hits\"]').textContent"


def text(b, element_id):
    """The element's text, None while the page (or the element) is not there yet."""
    return b.evaluate("(function () { var e = document.getElementById('%s'); return e ? e.textContent : null; })()"
                      % element_id)


class StatusPage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.edge = Edge(settings={"edge_tier_max_size": "0"})   # every hit reaches the agent, whose counts the page shows
        cls.edge.__enter__()
        cls.url = "http://127.0.0.1:%d/" % cls.edge.ports["admin"]

    @classmethod
    def tearDownClass(cls):
        cls.edge.__exit__(None, None, None)

    def test_page_is_self_contained(self):
        with urllib.request.urlopen(self.url, timeout=5) as r:
            self.assertEqual(r.headers["Content-Type"], "text/html; charset=utf-8")
            html = r.read().decode()
        self.assertIn("<script>", html)
        self.assertIn("<style>", html)
        # No external asset: every src/href is inline data.
        for ref in re.findall(r'\b(?:src|href)\s*=\s*"([^"]*)"', html):
            self.assertTrue(ref.startswith("data:"), ref)
        self.assertNotIn("@import", html)

    def test_page_loads_cleanly_and_follows_traffic(self):
        with Browser() as b:
            b.open(self.url)
            wait_until(lambda: (text(b, "stamp") or "").startswith("updated"),
                       15, message="the page never drew /status.json")
            self.assertEqual(text(b, "state"), "ready")
            self.assertRegex(text(b, "fills"), r"^\d+$")
            self.assertRegex(text(b, "objects"), r"^\d+$")
            self.assertRegex(text(b, "disk"), r"of 10\.0 GiB")
            before = int(b.evaluate(HITS))
            p = "/generic/status-page/one.bin"
            self.assertTrue(self.edge.get(p).ok)
            self.edge.wait_idle()
            for _ in range(3):
                self.assertEqual(self.edge.get(p).header("Cache-Status"), "sluice; hit")
            wait_until(lambda: int(b.evaluate(HITS)) >= before + 3, 15,
                       message="the hit count on the page did not move")
            ratio = b.evaluate("document.querySelector('tr[data-route=\"generic\"] td:nth-child(2)').textContent")
            self.assertRegex(ratio, r"^\d+\.\d %$")
            self.assertEqual(b.problems, [])


if __name__ == "__main__":
    unittest.main()
