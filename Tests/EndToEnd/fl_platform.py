"""A running `faultline up` for the end-to-end tests, and the three ways to talk to it: the JSON
API (urllib), its SSE stream (http.client, read line by line as it arrives), and the CLI."""
import http.client
import json
import os
import pathlib
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request

READY_NAMES = ("experiment-service", "secret-service", "schedule-service", "runner", "gateway")


class Platform:
    def __init__(self, faultline: pathlib.Path, state_dir: pathlib.Path, log_path: pathlib.Path):
        self.faultline = faultline
        self.state_dir = state_dir
        self.log_path = log_path
        self.lines: list[str] = []
        self.addresses: dict[str, str] = {}
        self._changed = threading.Condition()
        env = dict(os.environ)
        env.pop("DATABASE_URL", None)  # the embedded Postgres under the state directory
        env.setdefault("FAULTLINE_VENV", str(pathlib.Path(".venv").resolve()))
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(
            [str(faultline), "up", "--state-dir", str(state_dir), "--port", "0"],
            stdout=subprocess.PIPE, stderr=self._log, env=env, start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for raw in self.process.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._changed:
                self.lines.append(line)
                name, _, address = line.partition(": ")
                if address:
                    self.addresses[name] = address
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for_line(self, predicate, limit=300.0, after=0) -> str:
        """The first announced line (from index `after`) that satisfies `predicate`; a generous
        limit only so that a broken platform fails the test instead of hanging it."""
        deadline = time.monotonic() + limit
        with self._changed:
            while True:
                for line in self.lines[after:]:
                    if predicate(line):
                        return line
                if self.process.poll() is not None:
                    raise AssertionError(f"faultline up exited ({self.process.returncode}); log: {self.log_tail()}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no matching line from faultline up; got {self.lines}; log: {self.log_tail()}")
                self._changed.wait(remaining)

    def wait_ready(self):
        for name in READY_NAMES:
            self.wait_for_line(lambda line, name=name: line.startswith(name + ": "))
        self.url = self.addresses["gateway"]
        assert self.url.startswith("http://127.0.0.1:")
        token_file = self.state_dir / "owner-token"
        assert oct(token_file.stat().st_mode & 0o777) == "0o600"
        self.token = token_file.read_text().strip()
        return self

    def log_tail(self, size=4000) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_bytes()[-size:].decode("utf-8", "replace")

    def child_pid(self, name: str) -> int:
        """The pid of `faultline NAME` started by this `up`."""
        for entry in pathlib.Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == self.process.pid and len(cmdline) > 1 and cmdline[1] == name.encode():
                return int(entry.name)
        raise AssertionError(f"no {name} child of faultline up")

    def children(self) -> list[int]:
        """The pids of the processes `up` started (its service processes), now."""
        found = []
        for entry in pathlib.Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == self.process.pid:
                found.append(int(entry.name))
        return found

    @staticmethod
    def alive(pid: int) -> bool:
        """A zombie (exited, not yet reaped by whoever inherited it) counts as gone."""
        try:
            return (pathlib.Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    def stop(self):
        """SIGTERM to `up`; `leftovers` then lists its service processes still alive after it exited."""
        children = self.children() if self.process.poll() is None else []
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.leftovers = [pid for pid in children if self.alive(pid)]
        for pid in self.leftovers:
            os.kill(pid, signal.SIGKILL)
        self._log.close()

    # MARK: the JSON API

    def api(self, method: str, path: str, body=None, content_type="application/json", expect=None):
        """(status, JSON or None, headers). `body` may be bytes or a JSON-able value."""
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, raw, headers = response.status, response.read(), response.headers
        except urllib.error.HTTPError as error:
            status, raw, headers = error.code, error.read(), error.headers
        value = json.loads(raw) if raw else None
        if expect is not None:
            assert status == expect, f"{method} {path}: {status} {value}"
        return status, value, headers

    def events_stream(self, execution_id: str, last_event_id=None):
        """Yields (event, id, data) from the SSE stream, as they arrive, until the server ends it."""
        host, port = self.url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=300)
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        connection.request("GET", f"/api/v1/executions/{execution_id}/events/stream", headers=headers)
        response = connection.getresponse()
        assert response.status == 200, response.read()
        assert response.getheader("Content-Type").startswith("text/event-stream")
        event, event_id, data = "message", None, []
        try:
            while True:
                raw = response.readline()  # de-chunked; b"" at the end of the body
                if not raw:
                    return
                line = raw.decode().rstrip("\r\n")
                if line == "":
                    if data:
                        yield event, event_id, json.loads("\n".join(data))
                    event, event_id, data = "message", None, []
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("id:"):
                    event_id = int(line[3:].strip())
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip(" "))
        finally:
            connection.close()

    def all_events(self, execution_id: str) -> list[dict]:
        events, after = [], 0
        while True:
            _, page, _ = self.api("GET", f"/api/v1/executions/{execution_id}/events?after={after}&page_size=1000", expect=200)
            events += page["events"]
            if not page["events"]:
                return events
            after = page["events"][-1]["sequence"]

    # MARK: the CLI

    def cli(self, *args, cwd=None, env=None, timeout=600) -> subprocess.CompletedProcess:
        full = dict(os.environ, FAULTLINE_URL=self.url, FAULTLINE_TOKEN=self.token)
        full.update(env or {})
        return subprocess.run([str(self.faultline), *args], capture_output=True, text=True, cwd=cwd, env=full, timeout=timeout)
