"""Plans in a real browser: create a cron plan and watch the live preview follow the typing (an
error at the field, then the next five fires), save it and see its next fires, pause and
resume it, trigger it now and follow its run to the execution, on a laptop and a phone. Every
page goes to the screenshots folder as plans-*.png."""

import json
import urllib.request

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select

from test_console_browser import wait, wait_until_run_ended
from test_console_browser import sign_in as console_sign_in


def shoot(browser, screenshots, name, show=None):
    """`show`: the id of what the picture is about, scrolled into view."""
    if show:
        browser.execute_script("document.getElementById(arguments[0]).scrollIntoView({block: 'center'})", show)
    browser.save_screenshot(str(screenshots / f"plans-{name}.png"))


def sign_in(browser, url, token):
    console_sign_in(browser, url, token)
    wait(browser, EC.presence_of_element_located((By.ID, "running-now")))


def import_experiment(url, token, title):
    """Through the JSON API: the plan pages are what this test is about."""
    definition = {
        "version": "1.0.0", "title": title, "description": "Planned by the console's browser test.", "tags": ["plans"],
        "steady-state-hypothesis": {"title": "the service answers", "probes": [
            {"type": "probe", "name": "service-answers", "tolerance": 0, "provider": {"type": "process", "path": "true"}}]},
        "method": [{"type": "action", "name": "poke", "provider": {"type": "process", "path": "true"}}],
        "rollbacks": [],
    }
    return api(url, token, "POST", "/api/v1/experiments", definition)["experiment"]["id"]


def api(url, token, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method=method,
                                     headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        raw = response.read()
        return json.loads(raw) if raw else None


def history_rows(browser):
    """The history's rows as text, newest first (read inside `wait`: the page may replace them)."""
    return [row.text for row in browser.find_elements(By.CSS_SELECTOR, "#history tbody tr")]


def retype(browser, element_id, text):
    field = browser.find_element(By.ID, element_id)
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.DELETE)
    field.send_keys(text)


def preview_fires(browser):
    return [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#preview-fires li")]


def test_create_preview_pause_resume_trigger(platform, browser, screenshots):
    url, token = platform
    experiment = import_experiment(url, token, "<i>nightly</i> smoke")
    # The viewer sits in New York: times show in that zone, with its name.
    browser.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": "America/New_York"})
    try:
        run_plans(browser, screenshots, url, token, experiment)
    finally:
        browser.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": ""})


def run_plans(browser, screenshots, url, token, experiment):
    sign_in(browser, url, token)

    browser.get(url + "/console/plans")
    assert browser.find_element(By.CSS_SELECTOR, "nav a[aria-current='page']").text == "Plans"
    shoot(browser, screenshots, "01-list-empty")
    browser.find_element(By.ID, "new-plan").click()
    wait(browser, EC.presence_of_element_located((By.ID, "plan-form")))
    # With JavaScript the zone starts as the browser's, and only the chosen kind's fields show.
    assert browser.find_element(By.ID, "time_zone").get_attribute("value") == "America/New_York"
    assert not browser.find_element(By.ID, "interval_minutes").is_displayed()

    browser.find_element(By.ID, "name").send_keys("Weekday smoke <b>test</b>")
    Select(browser.find_element(By.ID, "experiment_id")).select_by_value(experiment)
    retype(browser, "time_zone", "Europe/Paris")
    # A mistake is named at its field while typing...
    retype(browser, "cron_expression", "30 25 * * 1-5")
    wait(browser, lambda b: "hour field" in b.find_element(By.ID, "cron_expression-error").text)
    assert browser.find_element(By.ID, "cron_expression").get_attribute("aria-invalid") == "true"
    assert preview_fires(browser) == []
    shoot(browser, screenshots, "02-preview-error", show="cron_expression")
    # ...and fixed, the next five fires appear with the schedule in words.
    retype(browser, "cron_expression", "30 2 * * 1-5")
    wait(browser, lambda b: b.find_element(By.ID, "preview-description").text
         == "at 02:30 on Monday to Friday (Europe/Paris)" and len(preview_fires(b)) == 5)
    assert browser.find_element(By.ID, "cron_expression-error").text == ""
    assert all("02:30 Europe/Paris" in fire for fire in preview_fires(browser)), preview_fires(browser)
    shoot(browser, screenshots, "03-preview", show="preview")
    # A window, by keyboard: Monday to Friday 01:00-04:00 in the plan's zone.
    for day in ("mon", "tue", "wed", "thu", "fri"):
        browser.find_element(By.ID, f"w0_{day}").send_keys(Keys.SPACE)
    browser.execute_script("document.getElementById('w0_start').value = '01:00';"
                           "document.getElementById('w0_end').value = '04:00';"
                           "document.getElementById('w0_start').dispatchEvent(new Event('change', {bubbles: true}));")
    wait(browser, lambda b: "inside its window" in b.find_element(By.ID, "preview-description").text)
    browser.find_element(By.ID, "save-plan").click()

    wait(browser, EC.presence_of_element_located((By.ID, "next-fires")))
    assert browser.find_element(By.ID, "notice").text == "The plan was created."
    assert browser.find_element(By.TAG_NAME, "h1").text == "Plan: Weekday smoke <b>test</b>"
    fires = browser.find_elements(By.CSS_SELECTOR, "#next-fires time")
    assert len(fires) == 5
    # The script showed each in the browser's zone, keeping the UTC text as its title.
    assert all(fire.get_attribute("title").endswith(" UTC") for fire in fires)
    # 02:30 in Paris is the evening before in New York.
    assert all("(America/New_York)" in fire.text and "PM" in fire.text for fire in fires), [fire.text for fire in fires]
    assert browser.find_element(By.ID, "schedule-words").text.startswith("at 02:30 on Monday to Friday (Europe/Paris)")
    shoot(browser, screenshots, "04-plan")
    plan_url = browser.current_url.split("?")[0]

    browser.find_element(By.ID, "pause-plan").click()
    wait(browser, EC.presence_of_element_located((By.ID, "resume-plan")))
    assert browser.find_element(By.ID, "plan-state").text == "paused"
    assert browser.find_elements(By.CSS_SELECTOR, "#next-fires li") == []
    shoot(browser, screenshots, "05-paused")
    browser.find_element(By.ID, "resume-plan").click()
    wait(browser, EC.presence_of_element_located((By.ID, "pause-plan")))
    assert browser.find_element(By.ID, "plan-state").text == "active"

    # Trigger now, outside the window, and follow the run to its execution: the history refreshes
    # itself while the page is open, so the run's execution and its end appear without a reload.
    browser.find_element(By.ID, "ignore-windows").click()
    browser.find_element(By.ID, "trigger-plan").click()
    wait(browser, lambda b: "triggered" in b.find_element(By.ID, "notice").text)
    assert browser.find_element(By.ID, "history-status").text == "Updates itself while this page is open."
    wait(browser, lambda b: all(word in (history_rows(b) or [""])[0] for word in ("manual", "completed"))
         and b.find_element(By.CSS_SELECTOR, "#history a.execution-link"))
    shoot(browser, screenshots, "06-triggered", show="history")
    # A run started elsewhere (here through the API) shows up too, still without a reload.
    plan_id = plan_url.rsplit("/", 1)[1]
    api(url, token, "POST", f"/api/v1/plans/{plan_id}/trigger", {"ignore_windows": True})
    wait(browser, lambda b: len(history_rows(b)) == 2 and all("completed" in row for row in history_rows(b)))
    assert browser.find_element(By.ID, "history-region").get_attribute("data-replaced")
    assert browser.current_url.split("?")[0] == plan_url
    shoot(browser, screenshots, "15-history-refreshed", show="history")
    # The older run's link; the page may refresh the table under a click, so go by its address.
    first_run = wait(browser, lambda b: [link.get_attribute("href") for link in b.find_elements(By.CSS_SELECTOR, "#history a.execution-link")][-1:])[0]
    browser.get(first_run)
    timeline = wait_until_run_ended(browser)
    wait(browser, EC.presence_of_element_located((By.ID, "journal")))
    assert timeline.get_attribute("data-status") == "completed"
    shoot(browser, screenshots, "07-execution")

    browser.get(url + "/console/plans")
    table = browser.find_element(By.ID, "plans").text
    assert "Weekday smoke <b>test</b>" in table and "<i>nightly</i> smoke" in table and "completed" in table, table
    shoot(browser, screenshots, "08-list")

    # Edit: the form comes back filled; a bad zone is refused at its field, server side.
    browser.get(plan_url + "/edit")
    assert browser.find_element(By.ID, "cron_expression").get_attribute("value") == "30 2 * * 1-5"
    shoot(browser, screenshots, "09-edit")
    retype(browser, "time_zone", "Mars/Olympus")
    browser.find_element(By.ID, "save-plan").click()
    wait(browser, EC.presence_of_element_located((By.ID, "form-problems")))
    assert "Mars/Olympus" in browser.find_element(By.ID, "time_zone-error").text
    shoot(browser, screenshots, "10-edit-error", show="time_zone")
    retype(browser, "time_zone", "Asia/Tokyo")
    browser.find_element(By.ID, "save-plan").click()
    wait(browser, lambda b: b.find_elements(By.ID, "notice") and b.find_element(By.ID, "notice").text == "The plan was saved.")
    assert "(Asia/Tokyo)" in browser.find_element(By.ID, "schedule-words").text

    # A phone.
    browser.set_window_size(390, 844)
    try:
        browser.get(url + "/console/plans")
        shoot(browser, screenshots, "11-list-phone")
        browser.get(url + "/console/plans/new")
        wait(browser, lambda b: len(preview_fires(b)) == 5)
        shoot(browser, screenshots, "12-form-phone", show="preview")
        browser.get(plan_url)
        shoot(browser, screenshots, "13-plan-phone")
    finally:
        browser.set_window_size(1280, 1000)

    # Delete, confirmed by keyboard.
    browser.get(plan_url)
    browser.find_element(By.CSS_SELECTOR, "details.danger-zone summary").send_keys(Keys.ENTER)
    browser.find_element(By.ID, "confirm-delete").send_keys(Keys.SPACE)
    shoot(browser, screenshots, "14-delete", show="confirm-delete")
    browser.find_element(By.ID, "delete-plan").send_keys(Keys.ENTER)
    wait(browser, lambda b: b.find_elements(By.ID, "notice") and "deleted" in b.find_element(By.ID, "notice").text)
    assert "Weekday smoke" not in browser.find_element(By.TAG_NAME, "main").text


def test_plan_integrations_by_keyboard(platform, browser, screenshots):
    """The plan form's integrations: ticked by keyboard, kept when the form comes back with an
    error (an id not the organisation's, forged into the post), shown on the plan, ticked on edit."""
    url, token = platform
    experiment = import_experiment(url, token, "integrations smoke")
    gate = api(url, token, "POST", "/api/v1/integrations",
               {"name": "<b>status</b> gate", "config": {"http_pre_check": {"probe": {"url": "https://status.example"}}}})["id"]
    sign_in(browser, url, token)
    browser.get(url + "/console/plans/new?experiment_id=" + experiment)
    wait(browser, EC.presence_of_element_located((By.ID, "integration_ids")))
    browser.find_element(By.ID, "name").send_keys("with integrations")
    box = browser.find_element(By.ID, "integration_" + gate)
    label = browser.find_element(By.CSS_SELECTOR, f"label:has(#integration_{gate})").text
    assert label == "<b>status</b> gate (HTTP pre-check)", label
    box.send_keys(Keys.SPACE)
    assert box.is_selected()
    browser.find_element(By.ID, "paused").send_keys(Keys.SPACE)  # it never fires while the test runs
    shoot(browser, screenshots, "16-form-integrations", show="integration_ids")

    # A forged choice: refused at the field, the real one still ticked.
    browser.execute_script("""
        var box = document.createElement('input'); box.type = 'checkbox'; box.checked = true; box.hidden = true;
        box.name = 'integration_int_0193aaaaaaaaaaaaaaaaaaaaaaaaaaaa'; document.getElementById('plan-form').appendChild(box);""")
    browser.find_element(By.ID, "save-plan").click()
    wait(browser, EC.presence_of_element_located((By.ID, "form-problems")))
    assert "not one of your organisation" in browser.find_element(By.ID, "integration_ids-error").text
    assert browser.find_element(By.ID, "integration_ids").get_attribute("aria-invalid") == "true"
    assert browser.find_element(By.ID, "integration_" + gate).is_selected()
    forged = browser.find_element(By.ID, "integration_int_0193aaaaaaaaaaaaaaaaaaaaaaaaaaaa")
    assert forged.is_selected()
    shoot(browser, screenshots, "17-integrations-error", show="integration_ids")
    forged.send_keys(Keys.SPACE)
    browser.find_element(By.ID, "save-plan").click()

    wait(browser, EC.presence_of_element_located((By.ID, "plan-integrations")))
    assert browser.find_element(By.ID, "plan-integrations").text == "<b>status</b> gate (HTTP pre-check)"
    shoot(browser, screenshots, "18-plan-integrations", show="plan-integrations")
    plan_id = browser.current_url.split("?")[0].rsplit("/", 1)[1]
    assert api(url, token, "GET", f"/api/v1/plans/{plan_id}")["spec"]["integration_ids"] == [gate]
    browser.get(url + f"/console/plans/{plan_id}/edit")
    wait(browser, EC.presence_of_element_located((By.ID, "integration_" + gate)))
    assert browser.find_element(By.ID, "integration_" + gate).is_selected()

    # Signed out while the plan is open: the history stops refreshing and says so, instead of retrying.
    browser.get(url + f"/console/plans/{plan_id}")
    wait(browser, lambda b: b.find_element(By.ID, "history-status").text == "Updates itself while this page is open.")
    browser.delete_cookie("faultline_session")
    wait(browser, lambda b: b.find_element(By.ID, "history-status").text == "Updates stopped: reload the page.")
    sign_in(browser, url, token)
    api(url, token, "DELETE", f"/api/v1/plans/{plan_id}")
    api(url, token, "DELETE", f"/api/v1/integrations/{gate}")
