"""The web console in a real browser: sign in, import (with problems shown at their lines, and
from an uploaded file), run an experiment and watch its timeline reach the end, pause and
terminate a long run, the overview; a screenshot of every page goes to the screenshots folder."""

import json

import pytest
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

# Generous: these bound how long a broken run may hang, they measure nothing.
WAIT = 120


def process(name, path, arguments="", kind="action", tolerance=None):
    provider = {"type": "process", "path": path}
    if arguments:
        provider["arguments"] = arguments
    activity = {"type": kind, "name": name, "provider": provider}
    if tolerance is not None:
        activity["tolerance"] = tolerance
    return activity


def experiment(title, method, tags):
    return {
        "version": "1.0.0",
        "title": title,
        "description": "Written by the console's browser test.",
        "tags": tags,
        "steady-state-hypothesis": {
            "title": "the service answers",
            "probes": [process("service-answers", "true", kind="probe", tolerance=0)],
        },
        "method": method,
        "rollbacks": [process("restore-service", "true")],
    }


def shoot(browser, screenshots, name):
    browser.save_screenshot(str(screenshots / f"{name}.png"))


def _between_documents(error):
    # Chromedriver reports an element whose page is being replaced (a form's redirect, the live page's
    # reload when the run ends) as stale, as missing, or, mid-navigation, as a generic inspector error.
    return isinstance(error, (NoSuchElementException, StaleElementReferenceException)) or \
        "does not belong to the document" in str(error)


def wait(browser, condition, timeout=WAIT):
    def settled(b):
        try:
            return condition(b)
        except WebDriverException as error:
            if _between_documents(error):
                return False
            raise
    return WebDriverWait(browser, timeout).until(settled)


def sign_in(browser, url, token):
    browser.get(url + "/console/sign-in")
    wait(browser, EC.presence_of_element_located((By.ID, "token")))
    field = browser.find_element(By.ID, "token")
    field.clear()
    field.send_keys(token)
    browser.find_element(By.CSS_SELECTOR, "form[action='/console/sign-in'] button").click()


def wait_until_run_ended(browser):
    """Until the execution page shows a finished run on a page rendered after the end: a page
    opened while the run was live marks the end and then reloads itself, for the journal."""
    def ended(b):
        timeline = b.find_element(By.ID, "timeline")
        return timeline.get_attribute("data-live") == "false" and timeline.get_attribute("data-ended") == "true"
    wait(browser, ended)
    return browser.find_element(By.ID, "timeline")


def run_and_open(browser):
    browser.find_element(By.ID, "run-experiment").click()
    wait(browser, EC.presence_of_element_located((By.ID, "timeline")))


def test_sign_in_import_run_and_watch(platform, browser, screenshots, tmp_path):
    url, token = platform

    browser.get(url + "/console")
    assert browser.current_url.endswith("/console/sign-in")
    shoot(browser, screenshots, "01-sign-in")
    sign_in(browser, url, "flt_" + "x" * 43)
    wait(browser, EC.presence_of_element_located((By.ID, "sign-in-error")))
    shoot(browser, screenshots, "02-sign-in-refused")
    sign_in(browser, url, token)
    wait(browser, EC.presence_of_element_located((By.ID, "running-now")))
    assert browser.execute_script("return document.cookie") == ""  # HttpOnly: invisible to script
    shoot(browser, screenshots, "03-overview-empty")

    # An invalid experiment: the problem is shown under the line it concerns.
    browser.get(url + "/console/import")
    invalid = json.dumps(experiment("broken", [{"type": "action", "name": "no-provider"}], ["web"]), indent=2)
    browser.find_element(By.ID, "source").send_keys(invalid)
    browser.find_element(By.ID, "import-submit").click()
    wait(browser, EC.presence_of_element_located((By.ID, "import-problems")))
    # method[0] spans from its "{" two lines above its name to its "}" one line below.
    name_line = invalid.splitlines().index('      "name": "no-provider"') + 1
    placed = [int(row.get_attribute("id").rsplit("-", 1)[1])
              for row in browser.find_elements(By.CSS_SELECTOR, "tr.problem.error[id^='problem-line-']")]
    assert placed and all(name_line - 2 <= line <= name_line + 1 for line in placed), (placed, name_line)
    shoot(browser, screenshots, "04-import-problems")

    # A valid one, uploaded as a YAML-compatible JSON file through the file input.
    good = experiment("<b>checkout</b> survives a slow dependency",
                      [process("slow-dependency", "sleep", "1"), process("check-latency", "true", kind="probe")],
                      ["checkout", "latency"])
    upload = tmp_path / "checkout.json"
    upload.write_text(json.dumps(good, indent=2))
    browser.get(url + "/console/import")
    browser.find_element(By.ID, "source-file").send_keys(str(upload))
    wait(browser, lambda b: b.find_element(By.ID, "source").get_attribute("value").startswith("{"))
    Select(browser.find_element(By.ID, "format")).select_by_value("json")
    shoot(browser, screenshots, "05-import-filled")
    browser.find_element(By.ID, "import-submit").click()
    wait(browser, EC.presence_of_element_located((By.ID, "definition")))
    assert browser.find_element(By.TAG_NAME, "h1").text == "<b>checkout</b> survives a slow dependency"
    steps = [ol.text for ol in browser.find_elements(By.CSS_SELECTOR, "ol.steps")]  # hypothesis, method, rollbacks
    assert len(steps) == 3 and "slow-dependency" in steps[1] and "restore-service" in steps[2], steps
    shoot(browser, screenshots, "06-experiment")

    # Run it and watch the live timeline reach its end (the page reloads once, then replays).
    run_and_open(browser)
    shoot(browser, screenshots, "07-execution-live")
    timeline = wait_until_run_ended(browser)
    wait(browser, EC.presence_of_element_located((By.ID, "journal")))
    assert timeline.get_attribute("data-status") == "completed", browser.find_element(By.TAG_NAME, "main").text
    rows = timeline.find_elements(By.TAG_NAME, "li")
    labels = [row.text for row in rows]
    # Hypothesis before, its probe, two method activities, hypothesis after, its probe, a rollback.
    assert any("slow-dependency" in label for label in labels), labels
    assert any("restore-service" in label for label in labels), labels
    assert [row.get_attribute("data-state") for row in rows if "Steady state" in row.text] == ["met", "met"], labels
    assert all(row.get_attribute("data-state") in ("met", "succeeded") for row in rows), labels
    for button in ("pause-button", "resume-button", "terminate-button"):
        assert not browser.find_element(By.ID, button).is_enabled()
    shoot(browser, screenshots, "08-execution-completed")

    browser.get(url + "/console/experiments?q=checkout")
    table = browser.find_element(By.ID, "experiments")
    assert "completed" in table.text and "checkout" in table.text
    shoot(browser, screenshots, "09-experiments")

    browser.get(url + "/console")
    assert browser.find_element(By.CSS_SELECTOR, "svg.chart")
    cells = browser.find_elements(By.CSS_SELECTOR, "#runs-table tbody tr td")
    assert sum(int(cell.get_attribute("textContent")) for cell in cells) >= 1
    shoot(browser, screenshots, "10-overview")
    browser.set_window_size(390, 844)  # a phone
    browser.get(url + "/console/experiments")
    shoot(browser, screenshots, "11-experiments-phone")
    browser.set_window_size(1280, 1000)


def test_pause_and_terminate_a_long_run(platform, browser, screenshots):
    url, token = platform
    sign_in(browser, url, token)
    wait(browser, EC.presence_of_element_located((By.ID, "running-now")))
    long_run = experiment("long soak", [process("warm-up", "sleep", "10"), process("soak", "sleep", "300"),
                                        process("never-reached", "true")], ["soak"])
    browser.get(url + "/console/import")
    browser.execute_script("document.getElementById('source').value = arguments[0]", json.dumps(long_run))
    browser.find_element(By.ID, "import-submit").click()
    wait(browser, EC.presence_of_element_located((By.ID, "run-experiment")))
    run_and_open(browser)
    execution_url = browser.current_url

    # Pause while warm-up runs (long enough for a slow machine to click in time): the control
    # stops before the next activity.
    wait(browser, lambda b: "warm-up" in b.find_element(By.ID, "timeline").text)
    browser.find_element(By.ID, "pause-button").click()
    wait(browser, lambda b: b.find_element(By.ID, "resume-button").is_enabled())
    wait(browser, lambda b: any(row.get_attribute("data-state") == "paused"
                                for row in b.find_elements(By.CSS_SELECTOR, "#timeline li")))
    shoot(browser, screenshots, "12-execution-paused")
    browser.find_element(By.ID, "resume-button").click()
    wait(browser, lambda b: "soak" in b.find_element(By.ID, "timeline").text)
    browser.get(url + "/console")
    running = browser.find_elements(By.CSS_SELECTOR, "main table a[href^='/console/executions/']")
    assert execution_url in [a.get_attribute("href") for a in running]
    assert "long soak" in browser.find_element(By.CSS_SELECTOR, "main table").text  # the first: running now
    shoot(browser, screenshots, "13-overview-running")

    browser.get(execution_url)
    browser.find_element(By.ID, "terminate-button").click()
    timeline = wait_until_run_ended(browser)
    status = timeline.get_attribute("data-status")
    assert status in ("interrupted", "aborted"), status
    labels = timeline.text
    assert "never-reached" not in labels
    shoot(browser, screenshots, "14-execution-terminated")

    browser.find_element(By.CSS_SELECTOR, "form[action='/console/sign-out'] button").click()
    wait(browser, EC.presence_of_element_located((By.ID, "token")))
    browser.get(url + "/console/experiments")
    assert browser.current_url.endswith("/console/sign-in")
