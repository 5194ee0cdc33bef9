"""`faultline runner` refuses an empty or malformed organisation list at startup, naming the setting,
before it listens or registers anywhere (an empty list must never read as "every organisation")."""
import os
import subprocess

import pytest

HOSTILE = ["", " ", ",", "org-a,,org-b", "org a", "org-a;DROP TABLE runners", "org-a,org-a", "org\x1b[31m"]


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("via", ["env", "flag"])
def test_a_bad_organisation_list_stops_the_runner(faultline, tmp_path, value, via):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAULTLINE_")}
    args = [str(faultline), "runner", "--listen", "127.0.0.1:0", "--experiment-service", "127.0.0.1:9",
            "--state-dir", str(tmp_path / "state")]
    if via == "env":
        env["FAULTLINE_RUNNER_ORGANIZATIONS"] = value
    else:
        args.append(f"--organizations={value}")
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "FAULTLINE_RUNNER_ORGANIZATIONS" in out.stderr, out.stderr
    assert "\x1b" not in out.stderr, "control characters are escaped, not echoed"
