"""End to end through real processes: `faultline up` (embedded Postgres, every service its own
process), fixture experiments imported through the JSON API and the CLI, run by the runner with
the real `chaos`, followed over SSE, ended with a journal and a score; then a service killed
mid-run and brought back by `up`, with nothing acknowledged lost."""
import json
import os
import pathlib
import signal
import subprocess
import time

import pytest

from conftest import REPO
from fl_platform import Platform

SHARED = pathlib.Path(os.environ.get("FAULTLINE_SHARED", REPO.parent / "shared"))
FIXTURES = SHARED / "fixtures" / "experiments"


@pytest.fixture(scope="module")
def platform(faultline, test_tmp):
    running = Platform(faultline, test_tmp / "state", test_tmp / "up.log")
    try:
        yield running.wait_ready()
    finally:
        running.stop()
    assert running.process.returncode == 0, running.log_tail()
    assert running.leftovers == [], "service processes outlived `faultline up`"


@pytest.fixture(scope="module")
def workspace(test_tmp) -> pathlib.Path:
    """What the fixtures expect beside them (chaostoolkit's tests/ tree). The runner runs each
    experiment in a fresh directory, so the experiments run there name these by absolute path."""
    root = test_tmp / "workspace"
    (root / "tests" / "fixtures").mkdir(parents=True, exist_ok=True)
    (root / "tests" / "conftest.py").write_text("")
    (root / "tests" / "fixtures" / "dummy.txt").write_text("dummy\n")
    (root / "tests" / "fixtures" / "force_failure.py").write_text((FIXTURES / "chaostoolkit__tests_fixtures_force_failure.py").read_text())
    return root


def fixture(name: str, workspace: pathlib.Path | None = None) -> bytes:
    """A fixture as shipped, or with its relative paths made absolute into `workspace`."""
    text = (FIXTURES / f"chaostoolkit__tests_fixtures_{name}.json").read_text()
    if workspace is not None:
        text = text.replace('"tests/', f'"{workspace}/tests/')
    return text.encode()


def follow(platform: Platform, execution_id: str, after=None) -> tuple[list[dict], dict]:
    """Events and the last execution snapshot of one SSE stream, read until the server ends it."""
    events, snapshot, ended = [], None, False
    for event, event_id, data in platform.events_stream(execution_id, after):
        if event == "event":
            assert event_id == data["sequence"]
            events.append(data)
        elif event == "execution":
            snapshot = data
        elif event == "end":
            ended = True
    assert ended, "the stream stopped without its end event"
    return events, snapshot


def test_completed_fixture_through_the_api_and_sse(platform, workspace):
    _, created, _ = platform.api("POST", "/api/v1/experiments", fixture("check-file-exists", workspace), expect=201)
    experiment_id = created["experiment"]["id"]
    _, before, _ = platform.api("GET", f"/api/v1/experiments/{experiment_id}", expect=200)
    assert before.get("score") is None

    _, accepted, _ = platform.api("POST", f"/api/v1/experiments/{experiment_id}/run", {}, expect=202)
    execution_id = accepted["execution_id"]
    events, snapshot = follow(platform, execution_id)

    types = [e["type"] for e in events]
    # The control is global (PROTOCOL.md §1), so it sees the loader first.
    assert types[:3] == ["loading-before", "loading-after", "experiment-before"] and types[-1] == "experiment-after", types
    assert [e["sequence"] for e in events] == list(range(events[0]["sequence"], events[0]["sequence"] + len(events)))
    activities = [(e["payload"]["name"], e["payload"]["status"]) for e in events if e["type"] == "activity-after"]
    # Both baseline probes, the action, both probes again after it.
    assert activities == [("list-all-files-in-directory", "succeeded"), ("check-file-exists", "succeeded"),
                          ("touch-file", "succeeded"), ("list-all-files-in-directory", "succeeded"),
                          ("check-file-exists", "succeeded")]
    assert snapshot["status"] == "completed"

    _, execution, _ = platform.api("GET", f"/api/v1/executions/{execution_id}", expect=200)
    assert execution["status"] == "completed" and execution["deviated"] is False
    assert execution["score"] == 1
    _, journal, _ = platform.api("GET", f"/api/v1/executions/{execution_id}/journal", expect=200)
    assert journal["status"] == "completed" and journal["deviated"] is False
    assert journal["faultline"]["execution_id"] == execution_id
    assert journal["faultline"]["last_seq"] == events[-1]["sequence"]
    _, after, _ = platform.api("GET", f"/api/v1/experiments/{experiment_id}", expect=200)
    assert after["score"] == 1 and after["last_execution"]["id"] == execution_id

    # Replaying from the middle with Last-Event-ID gives exactly the rest.
    middle = events[len(events) // 2]["sequence"]
    rest, _ = follow(platform, execution_id, after=middle)
    assert rest == [e for e in events if e["sequence"] > middle]


def cli_import(platform: Platform, path: pathlib.Path) -> str:
    out = platform.cli("experiment", "import", str(path), "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["experiment"]["id"]


def cli_run(platform: Platform, experiment_id: str) -> tuple[int, list[dict]]:
    out = platform.cli("run", experiment_id, "--json")
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert lines and lines[-1]["event"] == "result", out.stdout + out.stderr
    return out.returncode, lines


@pytest.mark.parametrize("name,status,code,score", [
    ("check-file-exists-deviated", "deviated", 10, 0),  # the method deletes what the hypothesis checks
    ("check-file-exists-fail", "failed", 11, 0.5),       # the baseline probe raises
])
def test_deviated_and_failing_fixtures_through_the_cli(platform, workspace, test_tmp, name, status, code, score):
    path = test_tmp / f"{name}.json"
    path.write_bytes(fixture(name, workspace))
    (workspace / "tests" / "fixtures" / "dummy.txt").write_text("dummy\n")  # the deviated one removes it
    experiment_id = cli_import(platform, path)

    returncode, lines = cli_run(platform, experiment_id)
    assert returncode == code, lines
    result = lines[-1]["data"]
    assert result["status"] == status and result["score"] == score
    events = [line["data"] for line in lines if line["event"] == "event"]
    types = [e["type"] for e in events]
    if status == "deviated":
        assert types[:3] == ["loading-before", "loading-after", "experiment-before"] and types[-1] == "experiment-after", types
        assert events[-1]["payload"]["deviated"] is True
        hypotheses = [(e["payload"]["phase"], e["payload"]["steady_state_met"]) for e in events if e["type"] == "hypothesis-after"]
        assert hypotheses == [("before", True), ("after", False)], hypotheses
    else:
        # chaos refuses the experiment while loading it (its probe's module does not import),
        # so the run ends after the loader's events.
        assert types == ["loading-before", "loading-after"], types

    shown = platform.cli("execution", "show", result["id"], "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["status"] == status
    journal = platform.cli("execution", "journal", result["id"])
    if status == "deviated":
        assert journal.returncode == 0 and json.loads(journal.stdout)["deviated"] is True
    else:
        assert journal.returncode in (0, 65), journal.stderr
    experiment = json.loads(platform.cli("experiment", "show", experiment_id, "--json").stdout)
    assert experiment["score"] == score


def test_cli_reports_the_gateways_problems_clearly(platform, test_tmp):
    missing = platform.cli("experiment", "show", "exp_0190a0a0a0a07a0a8a0a0a0a0a0a0a0a")
    assert missing.returncode == 65
    assert "HTTP 404" in missing.stderr and "request id:" in missing.stderr

    invalid = test_tmp / "invalid.json"
    invalid.write_bytes((FIXTURES / "invalid" / "chaostoolkit__tests_fixtures_invalid-plan.json").read_bytes())
    refused = platform.cli("experiment", "import", str(invalid))
    assert refused.returncode == 65
    assert "experiment.invalid" in refused.stderr and " at " in refused.stderr

    bad_token = platform.cli("experiment", "list", env={"FAULTLINE_TOKEN": "fl_nope"})
    assert bad_token.returncode == 65 and "HTTP 401" in bad_token.stderr

    nowhere = platform.cli("experiment", "list", env={"FAULTLINE_URL": "http://127.0.0.1:1"})
    assert nowhere.returncode == 69 and "cannot reach the Gateway" in nowhere.stderr

    https = platform.cli("experiment", "list", env={"FAULTLINE_URL": "https://example.invalid"})
    assert https.returncode == 64


def slow_experiment(workspace: pathlib.Path) -> bytes:
    """Four one-second actions: long enough to kill a service between two of them."""
    sleep = lambda n: {"type": "action", "name": f"sleep-{n}", "provider": {"type": "process", "path": "sleep", "arguments": "1"}}
    return json.dumps({
        "title": "slow", "description": "a run to kill a service in",
        "steady-state-hypothesis": {"title": "marker", "probes": [{
            "type": "probe", "name": "marker-exists", "tolerance": True,
            "provider": {"type": "python", "module": "os.path", "func": "exists",
                         "arguments": {"path": str(workspace / "tests" / "conftest.py")}}}]},
        "method": [sleep(n) for n in range(4)],
    }).encode()


def test_a_killed_service_comes_back_and_nothing_acknowledged_is_lost(platform, workspace):
    _, created, _ = platform.api("POST", "/api/v1/experiments", slow_experiment(workspace), expect=201)
    experiment_id = created["experiment"]["id"]
    _, accepted, _ = platform.api("POST", f"/api/v1/experiments/{experiment_id}/run", {}, expect=202)
    execution_id = accepted["execution_id"]

    # Wait until the method is under way, then record what the platform has acknowledged.
    seen = []
    for event, _, data in platform.events_stream(execution_id):
        if event == "event":
            seen.append(data)
            if data["type"] == "activity-before" and data["payload"]["name"] == "sleep-0":
                break
    acknowledged = platform.all_events(execution_id)
    assert [e["sequence"] for e in seen] == [e["sequence"] for e in acknowledged[:len(seen)]]

    lines_before = len(platform.lines)
    victim = platform.child_pid("experiment-service")
    os.kill(victim, signal.SIGKILL)
    # `up` restarts it on the same address and announces it again.
    again = platform.wait_for_line(lambda line: line.startswith("experiment-service: "), after=lines_before)
    assert platform.child_pid("experiment-service") != victim
    assert again.split(": ", 1)[1] == platform.addresses["experiment-service"]

    # The CLI follows it to the end through the restart (reconnecting as needed).
    watched = platform.cli("execution", "watch", execution_id, "--json")
    assert watched.returncode == 0, watched.stdout + watched.stderr
    result = json.loads(watched.stdout.splitlines()[-1])["data"]
    assert result["status"] == "completed"

    final = platform.all_events(execution_id)
    by_sequence = {e["sequence"]: e for e in final}
    for event in acknowledged:
        assert by_sequence[event["sequence"]] == event, "an acknowledged event changed or vanished"
    assert sorted(by_sequence) == list(range(1, len(final) + 1)), "a gap in the stored events"
    assert [e["payload"]["name"] for e in final if e["type"] == "activity-after"] == \
        ["marker-exists", "sleep-0", "sleep-1", "sleep-2", "sleep-3", "marker-exists"]
    _, experiment, _ = platform.api("GET", f"/api/v1/experiments/{experiment_id}", expect=200)
    assert experiment["last_execution"]["id"] == execution_id


def test_run_local_reports_to_the_platform(platform, workspace):
    """`run --local`: plain `chaos run` here, in the fixture's own directory, reporting through
    the control's HTTP mode as an external execution."""
    out = platform.cli("run", "--local", str(FIXTURES / "chaostoolkit__tests_fixtures_check-file-exists.json"), "--json",
                       cwd=workspace)
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["outcome"] == "completed"
    execution_id = result["data"]["id"]
    events = platform.all_events(execution_id)
    assert events[0]["type"] == "loading-before" and events[-1]["type"] == "experiment-after"
    assert [e["payload"]["name"] for e in events if e["type"] == "activity-after"] == [
        "list-all-files-in-directory", "check-file-exists", "touch-file", "list-all-files-in-directory", "check-file-exists"]
    _, execution, _ = platform.api("GET", f"/api/v1/executions/{execution_id}", expect=200)
    assert execution["events_received"] == len(events)
    # The control completed it from the local journal (PROTOCOL.md §8): nobody else could.
    assert (execution["status"], execution["deviated"]) == ("completed", False)
    _, journal, _ = platform.api("GET", f"/api/v1/executions/{execution_id}/journal", expect=200)
    assert journal["status"] == "completed" and journal["faultline"]["mode"] == "http"


def test_run_local_by_id_runs_the_export(platform, workspace, test_tmp):
    path = test_tmp / "local.json"
    path.write_bytes(fixture("check-file-exists"))  # relative paths: resolved in the cwd, as chaos does
    experiment_id = cli_import(platform, path)
    out = platform.cli("run", "--local", experiment_id, "--json", cwd=workspace)
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["outcome"] == "completed" and result["data"]["experiment_id"] == experiment_id

    refused = platform.cli("run", "--local", experiment_id, "--environment", "env_1")
    assert refused.returncode == 64


def test_cli_run_follows_through_a_gateway_restart(platform, workspace):
    """`faultline run` keeps following when the Gateway it streams from is killed: `up` brings
    it back on the same port and the CLI resumes with Last-Event-ID, every event once."""
    _, created, _ = platform.api("POST", "/api/v1/experiments", slow_experiment(workspace), expect=201)
    experiment_id = created["experiment"]["id"]
    env = dict(os.environ, FAULTLINE_URL=platform.url, FAULTLINE_TOKEN=platform.token)
    run = subprocess.Popen([str(platform.faultline), "run", experiment_id, "--json"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    for line in run.stdout:
        lines.append(json.loads(line))
        if lines[-1]["event"] == "event" and lines[-1]["data"]["type"] == "activity-before" \
                and lines[-1]["data"]["payload"]["name"] == "sleep-0":
            break
    before = len(platform.lines)
    os.kill(platform.child_pid("gateway"), signal.SIGKILL)
    platform.wait_for_line(lambda line: line.startswith("gateway: "), after=before)
    lines += [json.loads(line) for line in run.stdout]
    assert run.wait(timeout=300) == 0, run.stderr.read()
    assert lines[-1]["event"] == "result" and lines[-1]["data"]["status"] == "completed"
    shown = [line["data"]["sequence"] for line in lines if line["event"] == "event"]
    stored = [e["sequence"] for e in platform.all_events(lines[-1]["data"]["id"])]
    assert shown == stored, "the CLI skipped or repeated events across the restart"


def secret_checking_experiment() -> dict:
    """Its hypothesis holds only if the environment's secret reached the `chaos` process."""
    return {
        "title": "The environment's secret reaches the run",
        "description": "A plan with an environment, dispatched by ScheduleService to the runner.",
        "steady-state-hypothesis": {
            "title": "the secret is there",
            "probes": [{
                "type": "probe", "name": "secret-arrived", "tolerance": 0,
                "provider": {"type": "process", "path": "sh",
                             "arguments": ["-c", 'test "$FLT_E2E_SECRET" = "$(cat "$FLT_E2E_EXPECTED")"']},
            }],
        },
        "method": [{"type": "action", "name": "noop", "provider": {"type": "process", "path": "true"}}],
    }


def wait_for_plan_execution(platform: Platform, plan_id: str, limit=300.0) -> dict:
    """The plan's execution once it ended; the limit only turns a hang into a failure."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        _, page, _ = platform.api("GET", f"/api/v1/executions?plan_id={plan_id}", expect=200)
        ended = [e for e in page["executions"] if e["status"] not in ("pending", "running")]
        if ended:
            return ended[0]
        time.sleep(0.5)
    raise AssertionError(f"plan {plan_id} produced no ended execution; log: {platform.log_tail()}")


def test_a_plan_with_an_environment_runs_through_the_scheduler(platform, workspace, test_tmp):
    """CLI → Gateway → ScheduleService (durable plan run, dispatch) → runner (reveal from
    SecretService) → real `chaos run` whose hypothesis sees the secret → completed, secret nowhere."""
    secret = "e2e-s3cr3t-" + os.urandom(6).hex()
    secret_file = test_tmp / "secret.txt"
    secret_file.write_text(secret)
    expected = test_tmp / "expected.txt"
    expected.write_text(secret)
    env = platform.cli("env", "create", "--name", "e2e", "--var", f"FLT_E2E_EXPECTED={expected}",
                       "--secret", f"FLT_E2E_SECRET=@{secret_file}", "--json")
    assert env.returncode == 0, env.stdout + env.stderr
    environment = json.loads(env.stdout)
    assert secret not in env.stdout
    listed = platform.cli("env", "list", "--json")
    assert listed.returncode == 0 and environment["id"] in listed.stdout and secret not in listed.stdout

    path = test_tmp / "secret-experiment.json"
    path.write_text(json.dumps(secret_checking_experiment()))
    experiment_id = cli_import(platform, path)
    created = platform.cli("plan", "create", "--experiment", experiment_id, "--now",
                           "--environment", environment["id"], "--json")
    assert created.returncode == 0, created.stdout + created.stderr
    plan = json.loads(created.stdout)
    execution = wait_for_plan_execution(platform, plan["id"])
    assert (execution["status"], execution["deviated"]) == ("completed", False), execution
    _, journal, _ = platform.api("GET", f"/api/v1/executions/{execution['id']}/journal", expect=200)
    assert secret not in json.dumps(journal)
    assert secret not in platform.log_tail(size=10_000_000)
    plans = platform.cli("plan", "list", "--json")
    assert plans.returncode == 0 and plan["id"] in plans.stdout


def test_plan_pause_resume_and_the_kill_switch_through_the_cli(platform, workspace, test_tmp):
    path = test_tmp / "cron-experiment.json"
    path.write_bytes(fixture("check-file-exists", workspace))
    experiment_id = cli_import(platform, path)
    created = platform.cli("plan", "create", "--experiment", experiment_id, "--cron", "0 3 * * MON-FRI",
                           "--time-zone", "Europe/Paris", "--json")
    assert created.returncode == 0, created.stdout + created.stderr
    plan = json.loads(created.stdout)
    for verb, state in (("pause", "paused"), ("resume", "active")):
        out = platform.cli("plan", verb, plan["id"], "--json")
        assert out.returncode == 0, out.stdout + out.stderr
        assert json.loads(out.stdout)["state"] == state
    bad = platform.cli("plan", "create", "--experiment", experiment_id, "--cron", "61 * * * *")
    assert bad.returncode == 65, bad.stdout + bad.stderr

    halted = platform.cli("halt", "--reason", "e2e", "--json")
    assert halted.returncode == 0, halted.stdout + halted.stderr
    status = platform.cli("halt", "--status", "--json")
    assert status.returncode == 0 and json.loads(status.stdout)["halted"] is True, status.stdout
    refused = platform.api("POST", f"/api/v1/experiments/{experiment_id}/run", {})
    assert refused[0] == 409 and refused[1]["code"] == "organization.halted", refused
    resumed = platform.cli("resume", "--json")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    status = platform.cli("halt", "--status", "--json")
    assert json.loads(status.stdout)["halted"] is False, status.stdout


def alive(pid: int) -> bool:
    try:
        return (pathlib.Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def processes_under(directory: pathlib.Path) -> list[int]:
    """Live processes whose working directory is below `directory` (a run's `chaos` and its children)."""
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd.startswith(str(directory) + "/") and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def test_a_runner_killed_mid_run_ends_it_lost_and_leaves_no_orphan(platform, workspace):
    """SIGKILL the runner while `chaos` sleeps in an activity: `up` restarts it, the restarted
    runner ends the run it owned as LOST and kills the orphaned `chaos` process group."""
    experiment = {
        "title": "long", "description": "a run whose runner dies",
        "method": [{"type": "action", "name": "sleep-long", "provider": {"type": "process", "path": "sleep", "arguments": "300"}}],
    }
    _, created, _ = platform.api("POST", "/api/v1/experiments", experiment, expect=201)
    _, accepted, _ = platform.api("POST", f"/api/v1/experiments/{created['experiment']['id']}/run", {}, expect=202)
    execution_id = accepted["execution_id"]
    for event, _, data in platform.events_stream(execution_id):
        if event == "event" and data["type"] == "activity-before" and data["payload"]["name"] == "sleep-long":
            break
    runs = platform.state_dir / "runner"
    orphans = processes_under(runs)
    assert orphans, "no process runs in a run directory"

    lines_before = len(platform.lines)
    os.kill(platform.child_pid("runner"), signal.SIGKILL)
    platform.wait_for_line(lambda line: line.startswith("runner: "), after=lines_before)

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        _, execution, _ = platform.api("GET", f"/api/v1/executions/{execution_id}", expect=200)
        if execution["status"] not in ("pending", "running"):
            break
        time.sleep(0.25)
    assert execution["status"] == "lost", execution
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in orphans) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in orphans), "the dead runner's chaos outlived it"
