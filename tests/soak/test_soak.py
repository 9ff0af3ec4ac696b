"""The soak as a suite of `make test` (tests/run-suites soak): the whole
soak of tests/soak/soak.py for SOAK_S seconds (60 unless set), failing on
any violation it reports. `make soak` runs the long one (docs/soak.md).
"""

import io
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import soak  # noqa: E402


class Soak(unittest.TestCase):
    def test_mixed_load_under_scheduled_faults_breaks_no_contract(self):
        seconds = float(os.environ.get("SOAK_S", "60"))
        out = io.StringIO()
        rc = soak.run(seconds=seconds, seed=int(os.environ.get("SOAK_SEED", "1")), out=out)
        sys.stdout.write(out.getvalue())
        self.assertEqual(rc, 0, out.getvalue()[-8000:])


if __name__ == "__main__":
    unittest.main()
