"""A whole platform (`faultline up`) and headless Chromium (Debian's chromium + chromium-driver,
driven by Selenium) for the console's browser tests."""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

ROOT = Path(__file__).resolve().parents[2]


def _find(env_name, *candidates):
    value = os.environ.get(env_name)
    if value:
        return value
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return str(candidate)
    raise RuntimeError(f"{env_name}: none of {candidates} exists (scripts/bootstrap installs chromium and chromium-driver)")


@pytest.fixture(scope="session")
def screenshots():
    """Where every page's screenshot goes, for people to review (gitignored)."""
    folder = Path(os.environ.get("FAULTLINE_SCREENSHOTS", ROOT / "test-artifacts" / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def platform():
    """`faultline up` on a free port in a throwaway state directory; yields (base URL, owner token)."""
    binary = _find("FAULTLINE_BIN", ROOT / ".build" / "debug" / "faultline")
    parent = os.environ.get("FAULTLINE_TEST_TMP") or None
    state = tempfile.mkdtemp(prefix="console-up-", dir=parent)
    os.chmod(state, 0o755)  # the embedded Postgres runs as the postgres user when we are root
    env = dict(os.environ)
    env.setdefault("FAULTLINE_VENV", str(ROOT / ".venv"))
    env.pop("DATABASE_URL", None)  # the embedded Postgres under the state directory
    process = subprocess.Popen([binary, "up", "--state-dir", state, "--port", "0"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
    found = {}
    output = []
    ready = threading.Event()

    def read():
        for line in process.stdout:
            output.append(line)
            match = re.search(r"gateway: (http://\S+)", line)
            if match:
                found["url"] = match.group(1)
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        ready.wait(300)
        if "url" not in found:
            raise RuntimeError("faultline up announced no gateway:\n" + "".join(output[-40:]))
        token_file = Path(state) / "owner-token"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(found["url"] + "/readyz", timeout=5) as response:
                    if response.status == 200 and token_file.exists() and token_file.read_text().strip():
                        break
            except OSError:
                pass
            time.sleep(0.5)
        else:
            raise RuntimeError("the gateway never became ready:\n" + "".join(output[-40:]))
        yield found["url"], token_file.read_text().strip()
    finally:
        process.send_signal(signal.SIGTERM)  # up stops its services, then Postgres
        try:
            process.wait(90)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="session")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = _find("CHROMIUM", "/usr/bin/chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000",
                     "--disable-gpu", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    service = Service(executable_path=_find("CHROMEDRIVER", "/usr/bin/chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
