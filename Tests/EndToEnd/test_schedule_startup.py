"""`faultline schedule-service` refuses a malformed FAULTLINE_SCHEDULE_SKIPPED_RETENTION at startup, naming
the variable, before it connects to Postgres (a typo must not silently keep, or delete, history)."""
import os
import subprocess

import pytest

HOSTILE = ["", " ", "30", "30 d", "-1d", "1.5d", "0d", "30m", "OFF", "3651d", "99999999999999999999d", "３０d",
           "30d\x1b[31m"]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_bad_retention_stops_the_schedule_service(faultline, value):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAULTLINE_")}
    # Unreachable: the refusal must come first.
    env["DATABASE_URL"] = "postgres://nobody@127.0.0.1:9/none"
    env["FAULTLINE_SCHEDULE_SKIPPED_RETENTION"] = value
    out = subprocess.run([str(faultline), "schedule-service", "--listen", "127.0.0.1:0"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "FAULTLINE_SCHEDULE_SKIPPED_RETENTION" in out.stderr, out.stderr
    assert "\x1b" not in out.stderr, "control characters are escaped, not echoed"
