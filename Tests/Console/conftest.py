"""A whole platform (`faultline up`: every service, schedule-service included, and a runner,
started by the end-to-end suite's `fl_platform`) and headless Chromium (Debian's chromium +
chromium-driver, driven by Selenium) for the console's browser tests."""

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "Tests" / "EndToEnd"))
from fl_platform import Platform  # noqa: E402  (the one way the tests start `faultline up`)


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
def running_platform():
    """`faultline up` on a free port in a throwaway state directory, shared by every console test."""
    binary = Path(_find("FAULTLINE_BIN", ROOT / ".build" / "debug" / "faultline"))
    os.environ.setdefault("FAULTLINE_VENV", str(ROOT / ".venv"))
    folder = Path(tempfile.mkdtemp(prefix="console-up-", dir=os.environ.get("FAULTLINE_TEST_TMP") or None))
    os.chmod(folder, 0o755)  # the embedded Postgres runs as the postgres user when we are root
    up = Platform(binary, folder / "state", folder / "up.log")
    try:
        yield up.wait_ready()
    finally:
        up.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def platform(running_platform):
    """(base URL, owner token)."""
    return running_platform.url, running_platform.token


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
