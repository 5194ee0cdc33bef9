"""New experiment from a template in a real browser: pick a template, see problems next to their
fields, watch the live preview, preview, save, land on the experiment page, and run it against an
HTTP server and a victim process this test starts, until the run completes. Screenshots go to the
screenshots folder as templates-*.png."""

import http.server
import subprocess
import sys
import threading
import uuid

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select

from test_console_browser import run_and_open, shoot, sign_in, wait, wait_until_run_ended


class _Health(http.server.BaseHTTPRequestHandler):
    """Answers every GET with 200 and counts them: the experiment's probes."""

    requests = []

    def do_GET(self):
        _Health.requests.append(self.path)
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def health_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Health.requests.clear()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def victim():
    """A process the experiment kills, found by a marker on its command line (pkill -f)."""
    marker = f"faultline-template-victim-{uuid.uuid4().hex[:12]}"
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", marker])
    try:
        yield marker, process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def field(browser, name):
    return browser.find_element(By.ID, f"input-{name}")


def fill(browser, name, value):
    element = field(browser, name)
    element.clear()
    element.send_keys(value)


def test_template_to_completed_run(platform, browser, screenshots, health_server, victim):
    url, token = platform
    marker, victim_process = victim
    sign_in(browser, url, token)
    wait(browser, EC.presence_of_element_located((By.ID, "running-now")))

    # The catalogue, reached from the main navigation.
    browser.find_element(By.CSS_SELECTOR, "nav a[href='/console/templates']").click()
    wait(browser, EC.presence_of_element_located((By.ID, "templates")))
    cards = browser.find_elements(By.CSS_SELECTOR, "#templates .card")
    assert len(cards) >= 5, [card.text for card in cards]
    shoot(browser, screenshots, "templates-01-catalogue")

    browser.find_element(By.ID, "template-http-healthy-while-process-killed").click()
    wait(browser, EC.presence_of_element_located((By.ID, "template-form")))
    # Only this template's inputs, with their defaults, and the defaults previewed.
    names = [element.get_attribute("data-input") for element in browser.find_elements(By.CSS_SELECTOR, "#template-form [data-input]")]
    assert names == ["title", "service_url", "expected_status", "request_timeout", "process_pattern", "signal", "grace", "restart_command"], names
    assert field(browser, "service_url").get_attribute("value") == "http://localhost:8080/health"
    assert '"pkill"' in browser.find_element(By.ID, "preview").text
    for name in names:  # every control has a visible label
        assert browser.find_element(By.CSS_SELECTOR, f"label[for='input-{name}']").text
    shoot(browser, screenshots, "templates-02-form")

    # Problems come back next to the fields they concern; the values stay as typed.
    fill(browser, "service_url", "localhost:8080/health")
    fill(browser, "expected_status", "700")
    browser.find_element(By.ID, "preview-button").click()
    wait(browser, EC.presence_of_element_located((By.ID, "template-problems")))
    assert "http:// or https://" in browser.find_element(By.ID, "error-service_url").text
    assert "from 100 to 599" in browser.find_element(By.ID, "error-expected_status").text
    assert field(browser, "service_url").get_attribute("aria-invalid") == "true"
    assert field(browser, "service_url").get_attribute("value") == "localhost:8080/health"
    assert browser.find_element(By.ID, "error-grace").text == ""
    shoot(browser, screenshots, "templates-03-problems")

    # Fixing them refreshes the preview live (the page's script), errors clear as they are fixed.
    title = f"<b>checkout</b> stays up while {marker} is killed"
    fill(browser, "title", title)
    fill(browser, "expected_status", "200")
    fill(browser, "process_pattern", marker)
    Select(field(browser, "signal")).select_by_value("TERM")
    fill(browser, "grace", "1s")
    fill(browser, "service_url", health_server + "/health")
    wait(browser, lambda b: health_server in b.find_element(By.ID, "preview").text
         and marker in b.find_element(By.ID, "preview").text)
    wait(browser, lambda b: b.find_element(By.ID, "error-service_url").text == ""
         and b.find_element(By.ID, "error-expected_status").text == "")
    assert field(browser, "service_url").get_attribute("aria-invalid") is None

    # The Preview button renders the same on the server.
    browser.find_element(By.ID, "preview-button").click()
    wait(browser, lambda b: not b.find_elements(By.ID, "template-problems")
         and health_server in b.find_element(By.ID, "preview").text)
    preview = browser.find_element(By.ID, "preview").text
    assert '"title": "<b>checkout</b> stays up' in preview, preview
    assert '"${process_pattern}"' in preview and f'"process_pattern": "{marker}"' in preview, preview
    shoot(browser, screenshots, "templates-04-preview")

    # Save: the experiment's own page.
    browser.find_element(By.ID, "save-button").click()
    wait(browser, EC.presence_of_element_located((By.ID, "definition")))
    assert "/console/experiments/exp_" in browser.current_url
    assert browser.find_element(By.TAG_NAME, "h1").text == title
    steps = [ol.text for ol in browser.find_elements(By.CSS_SELECTOR, "ol.steps")]
    assert "endpoint-answers" in steps[0] and "kill-process" in steps[1], steps
    shoot(browser, screenshots, "templates-05-experiment")

    # Run it: the probes reach the server, the victim dies, the run completes.
    run_and_open(browser)
    timeline = wait_until_run_ended(browser)
    wait(browser, EC.presence_of_element_located((By.ID, "journal")))
    assert timeline.get_attribute("data-status") == "completed", browser.find_element(By.TAG_NAME, "main").text
    rows = timeline.find_elements(By.TAG_NAME, "li")
    assert [row.get_attribute("data-state") for row in rows if "Steady state" in row.text] == ["met", "met"], [r.text for r in rows]
    assert any("kill-process" in row.text for row in rows)
    assert victim_process.wait(timeout=30) == -15  # SIGTERM, as chosen in the form
    assert _Health.requests.count("/health") >= 2, _Health.requests  # before and after the kill
    shoot(browser, screenshots, "templates-06-run-completed")

    # A phone: one column, the form first, then the preview.
    browser.set_window_size(390, 844)
    try:
        browser.get(url + "/console/templates/latency-under-budget-while-dependency-slow")
        wait(browser, EC.presence_of_element_located((By.ID, "template-form")))
        form = browser.find_element(By.ID, "template-form").rect
        preview_box = browser.find_element(By.ID, "preview").rect
        assert preview_box["y"] > form["y"] + form["height"] - 1, (form, preview_box)
        assert form["width"] <= 390
        shoot(browser, screenshots, "templates-07-form-phone")
    finally:
        browser.set_window_size(1280, 1000)
