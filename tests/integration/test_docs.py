"""Documentation that is generated must match the code it describes."""

import os
import subprocess
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("SLUICE_TEST_BIN", os.path.join(ROOT, "build", "asan", "sluice"))


def env():
    e = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    e["ASAN_OPTIONS"] = "detect_leaks=0"
    return e


class Docs(unittest.TestCase):
    def test_configuration_table_matches_the_settings_table(self):
        table = subprocess.run([BIN, "--print-config-doc"], capture_output=True, text=True, check=True,
                               env=env()).stdout
        with open(os.path.join(ROOT, "docs", "configuration.md")) as f:
            doc = f.read()
        begin = doc.index("<!-- BEGIN SETTINGS")
        begin = doc.index("\n", begin) + 1
        end = doc.index("<!-- END SETTINGS -->")
        self.assertEqual(doc[begin:end], table,
                         "docs/configuration.md is stale: regenerate with `sluice --print-config-doc`")

    def test_example_configuration_is_valid(self):
        e = env()
        e["SLUICE_ROUTES_MAP"] = os.path.join(ROOT, "haproxy", "routes.map")
        for conf in ("examples/sluice.conf", "haproxy/sluice.conf"):
            r = subprocess.run([BIN, "-c", os.path.join(ROOT, conf), "--check"], capture_output=True,
                               text=True, env=e, cwd=ROOT)
            self.assertEqual(r.returncode, 0, conf + ": " + r.stderr)


if __name__ == "__main__":
    unittest.main()
