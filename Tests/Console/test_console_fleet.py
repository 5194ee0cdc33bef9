"""The console's fleet pages in a real browser: score trends on the experiment list, one
experiment, an execution's journal, the overview's halt switch (off, halted, resumed, driven by
the keyboard), environments and integrations (secret values never on any page), the HTML 404 and
a session that ends with its API token. Every page gets a screenshot, also at phone width; every
form field must have a label and all text AA contrast."""

import json
import time
import urllib.error
import urllib.request

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select

from test_console_browser import WAIT, experiment, process, shoot, sign_in, wait

SECRET = "fleet-s3cret-value-that-never-shows"
REPLACED = "fleet-replaced-value-that-never-shows"

# Form controls without a label (by `for`, by wrapping, or aria-label): must be none.
UNLABELED = """
return Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea')).filter(function (e) {
  if (e.getAttribute('aria-label')) return false;
  if (e.id && document.querySelector('label[for="' + e.id + '"]')) return false;
  return !e.closest('label');
}).map(function (e) { return e.name || e.id || e.outerHTML; });
"""


# Text whose contrast with its background is under WCAG AA (4.5:1, 3:1 for large text);
# disabled controls are exempt, as WCAG exempts them. Must be none.
LOW_CONTRAST = """
function rgb(c) { var m = c.match(/rgba?\\(([^)]+)\\)/); if (!m) return null; var p = m[1].split(',').map(parseFloat);
  return (p.length > 3 && p[3] < 0.5) ? null : p.slice(0, 3); }
function lum(p) { return p.map(function (v) { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); })
  .reduce(function (a, v, i) { return a + v * [0.2126, 0.7152, 0.0722][i]; }, 0); }
function background(e) { for (; e; e = e.parentElement) { var c = rgb(getComputedStyle(e).backgroundColor); if (c) return c; } return [255, 255, 255]; }
var bad = [];
document.querySelectorAll('body *').forEach(function (e) {
  if (e.closest('svg, :disabled, .sr-only, option') || !e.getClientRects().length) return;
  var text = Array.from(e.childNodes).filter(function (n) { return n.nodeType === 3; }).map(function (n) { return n.textContent; }).join('').trim();
  if (!text) return;
  var style = getComputedStyle(e), size = parseFloat(style.fontSize), bold = parseInt(style.fontWeight, 10) >= 700;
  var a = lum(rgb(style.color)), b = lum(background(e));
  var ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  if (ratio < ((size >= 24 || (bold && size >= 18.66)) ? 3 : 4.5)) bad.push(text.slice(0, 40) + ' (' + ratio.toFixed(2) + ')');
});
return bad;
"""


def shoot_full(browser, screenshots, name, width=1280):
    """The whole page, not only the first screen."""
    browser.set_window_size(width, 1000)
    browser.execute_script("window.scrollTo(0, 0)")
    height = browser.execute_script("return Math.min(document.documentElement.scrollHeight, 5000)")
    browser.set_window_size(width, max(height + 160, 700))
    shoot(browser, screenshots, name)
    browser.set_window_size(1280, 1000)


def check_page(browser):
    """What every console page must be: labelled fields, and no secret value anywhere."""
    assert browser.execute_script(UNLABELED) == [], browser.current_url
    assert browser.execute_script(LOW_CONTRAST) == [], browser.current_url
    source = browser.page_source
    assert SECRET not in source and REPLACED not in source, browser.current_url


def finished_run(up, experiment_id):
    _, accepted, _ = up.api("POST", f"/api/v1/experiments/{experiment_id}/run", {}, expect=202)
    execution_id = accepted["execution_id"]
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        _, execution, _ = up.api("GET", f"/api/v1/executions/{execution_id}", expect=200)
        if execution["status"] not in ("pending", "running"):
            return execution
        time.sleep(0.5)
    raise AssertionError(f"{execution_id} never ended")


def test_experiment_trends_detail_and_journal(running_platform, browser, screenshots):
    up = running_platform
    steady = experiment("payments stay up while a pod restarts", [process("restart-pod", "true")], ["payments", "fleet"])
    shaky = experiment("search survives a cache flush", [process("flush-cache", "true")], ["search", "fleet"])
    shaky["steady-state-hypothesis"]["probes"][0]["provider"]["path"] = "false"  # never met: the run fails
    _, created, _ = up.api("POST", "/api/v1/experiments", steady, expect=201)
    steady_id = created["experiment"]["id"]
    _, created, _ = up.api("POST", "/api/v1/experiments", shaky, expect=201)
    shaky_id = created["experiment"]["id"]
    runs = [finished_run(up, steady_id), finished_run(up, shaky_id), finished_run(up, steady_id)]
    assert [r["status"] for r in runs][0] == "completed", runs

    sign_in(browser, up.url, up.token)
    wait(browser, EC.presence_of_element_located((By.ID, "running-now")))
    browser.get(up.url + "/console/experiments?tag=fleet")
    table = browser.find_element(By.ID, "experiments")
    sparks = table.find_elements(By.CSS_SELECTOR, "svg.spark")
    assert len(sparks) == 2, table.text
    labels = {row.find_element(By.CSS_SELECTOR, "td a").text: row.find_element(By.CSS_SELECTOR, "svg.spark").get_attribute("aria-label")
              for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")}
    assert labels["payments stay up while a pod restarts"].endswith("100%, 100%"), labels
    assert "completed" in table.text
    check_page(browser)
    shoot(browser, screenshots, "20-experiments-trends")

    browser.find_element(By.LINK_TEXT, "payments stay up while a pod restarts").click()
    wait(browser, EC.presence_of_element_located((By.ID, "definition")))
    assert len(browser.find_elements(By.CSS_SELECTOR, "ol.steps")) == 3
    assert browser.find_element(By.CSS_SELECTOR, "dl.facts svg.spark")
    check_page(browser)
    shoot_full(browser, screenshots, "21-experiment-detail")

    browser.get(up.url + f"/console/executions/{runs[1]['id']}")
    wait(browser, EC.presence_of_element_located((By.ID, "journal-activities")))
    journal = browser.find_element(By.ID, "journal-activities").text
    assert "service-answers" in journal and "hypothesis before" in journal, journal
    assert "not met" in browser.find_element(By.ID, "journal-facts").text
    assert "tolerance not met" in journal, journal
    log = browser.find_element(By.ID, "log").get_attribute("textContent")
    assert "Running experiment" in log and "\x1b" not in log and "\ufffd" not in log  # chaos colours it
    check_page(browser)
    shoot_full(browser, screenshots, "22-execution-journal")

    browser.get(up.url + "/console")
    assert browser.find_element(By.ID, "score-chart-title")
    assert browser.find_elements(By.CSS_SELECTOR, "svg.chart circle.score-point")


def test_experiments_filter_by_several_tags(running_platform, browser, screenshots):
    """Several tags typed into the form's one field, comma-separated: only experiments carrying all
    of them are listed; each tag in force is a link that removes it; a bad filter is said at the field."""
    up = running_platform
    for title, tags in (("tags: checkout and db", ["tagdemo-checkout", "tagdemo-db"]), ("tags: checkout only", ["tagdemo-checkout"]),
                        ("tags: db only", ["tagdemo-db"])):
        up.api("POST", "/api/v1/experiments", experiment(title, [process("noop", "true")], tags), expect=201)

    def titles(b):
        return sorted(row.find_element(By.CSS_SELECTOR, "td a").text
                      for row in b.find_elements(By.CSS_SELECTOR, "#experiments tbody tr"))

    sign_in(browser, up.url, up.token)
    wait(browser, EC.presence_of_element_located((By.ID, "running-now")))
    browser.get(up.url + "/console/experiments")
    wait(browser, EC.presence_of_element_located((By.ID, "tags")))
    assert "all" in browser.find_element(By.ID, "tags-hint").text
    field = browser.find_element(By.ID, "tags")
    field.send_keys("tagdemo-checkout,  tagdemo-db")
    field.send_keys(Keys.ENTER)
    wait(browser, EC.presence_of_element_located((By.ID, "tag-filter")))
    assert titles(browser) == ["tags: checkout and db"], titles(browser)
    assert browser.find_element(By.ID, "tags").get_attribute("value") == "tagdemo-checkout, tagdemo-db"
    check_page(browser)
    shoot(browser, screenshots, "36-experiments-tags")

    # Removing one tag keeps the other.
    browser.find_element(By.CSS_SELECTOR, "#tag-filter a[aria-label='Remove the tag tagdemo-db from the filter']").click()
    wait(browser, lambda b: b.find_element(By.ID, "tags").get_attribute("value") == "tagdemo-checkout")
    assert titles(browser) == ["tags: checkout and db", "tags: checkout only"], titles(browser)
    # A URL of the old kind still filters.
    browser.get(up.url + "/console/experiments?tag=tagdemo-db&tag=tagdemo-checkout")
    wait(browser, EC.presence_of_element_located((By.ID, "tag-filter")))
    assert titles(browser) == ["tags: checkout and db"], titles(browser)

    browser.get(up.url + "/console/experiments?tags=" + ",".join(f"t{n}" for n in range(51)))
    wait(browser, lambda b: "at most 50 tags" in b.find_element(By.ID, "tags-error").text)
    assert browser.find_element(By.ID, "tags").get_attribute("aria-invalid") == "true"
    assert not browser.find_elements(By.ID, "experiments")
    shoot(browser, screenshots, "37-experiments-tags-error")


def test_halt_switch_by_keyboard(running_platform, browser, screenshots):
    up = running_platform
    sign_in(browser, up.url, up.token)
    wait(browser, EC.presence_of_element_located((By.ID, "halt-state")))
    assert browser.find_element(By.ID, "halt-state").get_attribute("data-halted") == "false"
    check_page(browser)
    shoot_full(browser, screenshots, "23-overview-halt-off")

    # Open the halt form, fill it and submit it with the keyboard alone.
    summary = browser.find_element(By.CSS_SELECTOR, "#halt-state details summary")
    summary.send_keys(Keys.ENTER)
    wait(browser, lambda b: b.find_element(By.ID, "halt-reason").is_displayed())
    browser.find_element(By.ID, "halt-reason").send_keys("game day <b>over</b>")
    browser.find_element(By.ID, "halt-skip-rollbacks").send_keys(Keys.SPACE)
    # Unconfirmed: the browser keeps the form (required), nothing is halted.
    browser.find_element(By.ID, "halt-fleet").send_keys(Keys.ENTER)
    _, status, _ = up.api("GET", "/api/v1/organization/halt", expect=200)
    assert status["halted"] is False
    browser.find_element(By.ID, "halt-confirm").send_keys(Keys.SPACE)
    shoot(browser, screenshots, "24-overview-halt-form")
    browser.find_element(By.ID, "halt-fleet").send_keys(Keys.ENTER)
    wait(browser, lambda b: b.find_element(By.ID, "halt-state").get_attribute("data-halted") == "true")
    text = browser.find_element(By.ID, "halt-state").text
    assert "game day <b>over</b>" in text and "skipped" in text, text
    _, status, _ = up.api("GET", "/api/v1/organization/halt", expect=200)
    assert status["halted"] is True and status["skip_rollbacks"] is True
    check_page(browser)
    shoot_full(browser, screenshots, "25-overview-halted")
    browser.set_window_size(390, 844)  # a phone
    browser.refresh()
    shoot(browser, screenshots, "26-overview-halted-phone")
    browser.set_window_size(1280, 1000)

    browser.find_element(By.ID, "resume-fleet").send_keys(Keys.ENTER)
    wait(browser, lambda b: b.find_element(By.ID, "halt-state").get_attribute("data-halted") == "false")
    _, status, _ = up.api("GET", "/api/v1/organization/halt", expect=200)
    assert status["halted"] is False


def test_environments_and_integrations(running_platform, browser, screenshots):
    up = running_platform
    sign_in(browser, up.url, up.token)
    wait(browser, EC.presence_of_element_located((By.ID, "running-now")))

    browser.get(up.url + "/console/environments")
    browser.find_element(By.ID, "new-environment").click()
    wait(browser, EC.presence_of_element_located((By.ID, "environment-form")))
    browser.find_element(By.ID, "env-name").send_keys("checkout-staging")
    browser.find_element(By.ID, "env-description").send_keys("The staging cluster of checkout")
    browser.find_element(By.ID, "env-variables").send_keys("REGION=eu-west-1\nthis line is wrong")
    browser.find_element(By.ID, "secret_name_0").send_keys("SLACK_TOKEN")
    browser.find_element(By.ID, "secret_value_0").send_keys(SECRET)
    browser.find_element(By.ID, "save-environment").click()
    # The page before the submit may show an error too: wait for the new one's text.
    wait(browser, EC.text_to_be_present_in_element((By.ID, "form-error"), "line 2"))
    assert browser.find_element(By.ID, "secret_value_0").get_attribute("value") == ""  # never sent back
    check_page(browser)
    shoot_full(browser, screenshots, "27-environment-form-error")

    variables = browser.find_element(By.ID, "env-variables")
    variables.clear()
    variables.send_keys("REGION=eu-west-1\nLOG_LEVEL=debug")
    browser.find_element(By.ID, "secret_value_0").send_keys(SECRET)
    browser.find_element(By.ID, "secret_name_1").send_keys("KUBECONFIG")
    browser.find_element(By.ID, "secret_value_1").send_keys(SECRET)
    Select(browser.find_element(By.ID, "secret_delivery_1")).select_by_value("file")
    browser.find_element(By.ID, "secret_target_1").send_keys("secrets/kubeconfig")
    browser.find_element(By.ID, "save-environment").click()
    wait(browser, EC.presence_of_element_located((By.ID, "saved")))
    secrets = browser.find_element(By.ID, "secrets").text
    assert "SLACK_TOKEN" in secrets and "KUBECONFIG" in secrets and "secrets/kubeconfig" in secrets, secrets
    environment_id = browser.current_url.rsplit("/", 1)[1].split("?")[0]
    check_page(browser)
    # Replace one value: the page still only says it is set.
    browser.find_element(By.ID, "existing_value_0").send_keys(REPLACED)
    browser.find_element(By.ID, "save-environment").click()
    wait(browser, EC.presence_of_element_located((By.ID, "saved")))
    check_page(browser)
    shoot_full(browser, screenshots, "28-environment-edit")
    browser.get(up.url + "/console/environments")
    assert "checkout-staging" in browser.find_element(By.ID, "environments").text
    check_page(browser)
    shoot(browser, screenshots, "29-environments")
    browser.set_window_size(390, 844)
    browser.get(up.url + f"/console/environments/{environment_id}")
    shoot(browser, screenshots, "30-environment-phone")
    browser.set_window_size(1280, 1000)
    _, env, _ = up.api("GET", f"/api/v1/environments/{environment_id}", expect=200)
    assert SECRET not in json.dumps(env) and REPLACED not in json.dumps(env)

    # An integration: pick the kind, fill its fields, its token kept write-only in the environment.
    browser.get(up.url + "/console/integrations")
    browser.find_element(By.ID, "new-integration").click()
    wait(browser, EC.presence_of_element_located((By.ID, "kind-slack")))
    check_page(browser)
    shoot(browser, screenshots, "31-integration-kinds")
    browser.find_element(By.ID, "kind-slack").click()
    wait(browser, EC.presence_of_element_located((By.ID, "integration-form")))
    browser.find_element(By.ID, "int-name").send_keys("chaos-channel")
    browser.find_element(By.ID, "channel").send_keys("#chaos")
    browser.find_element(By.ID, "events").send_keys("run-started, run-finished")
    Select(browser.find_element(By.ID, "environment_id")).select_by_visible_text("checkout-staging")
    browser.find_element(By.ID, "token_secret").send_keys("SLACK_TOKEN")
    browser.find_element(By.ID, "token_secret_value").send_keys(REPLACED)
    check_page(browser)
    browser.find_element(By.ID, "save-integration").click()
    wait(browser, EC.presence_of_element_located((By.ID, "saved")))
    assert "set" in browser.find_element(By.ID, "token_secret_state").text
    assert browser.find_element(By.ID, "token_secret_value").get_attribute("value") == ""
    check_page(browser)
    shoot_full(browser, screenshots, "32-integration-edit")

    # A webhook with a mistake: the problem is said next to the form, which keeps the fields.
    browser.get(up.url + "/console/integrations/new?kind=webhook")
    browser.find_element(By.ID, "int-name").send_keys("deploy-hook")
    browser.find_element(By.ID, "url").send_keys("http://hooks.example/chaos")
    browser.find_element(By.ID, "signing_secret").send_keys("HOOK_KEY")
    browser.find_element(By.ID, "timeout_us").send_keys("a while")
    browser.find_element(By.ID, "save-integration").click()
    # The page before the submit may show an error too: wait for the new one's text.
    wait(browser, EC.text_to_be_present_in_element((By.ID, "form-error"), "seconds"))
    assert browser.find_element(By.ID, "url").get_attribute("value") == "http://hooks.example/chaos"
    check_page(browser)
    browser.find_element(By.ID, "timeout_us").clear()
    browser.find_element(By.ID, "timeout_us").send_keys("5")
    browser.find_element(By.ID, "save-integration").click()  # no environment: the service refuses
    # The page before the submit may show an error too: wait for the new one's text.
    wait(browser, EC.text_to_be_present_in_element((By.ID, "form-error"), "environment"))
    Select(browser.find_element(By.ID, "environment_id")).select_by_visible_text("checkout-staging")
    browser.find_element(By.ID, "save-integration").click()
    wait(browser, EC.presence_of_element_located((By.ID, "saved")))
    assert "Not set" in browser.find_element(By.ID, "signing_secret_state").text

    browser.get(up.url + "/console/integrations")
    listed = browser.find_element(By.ID, "integrations").text
    assert "chaos-channel" in listed and "deploy-hook" in listed and "checkout-staging" in listed, listed
    check_page(browser)
    shoot(browser, screenshots, "33-integrations")

    # Delete the webhook (confirmed by its checkbox).
    browser.find_element(By.LINK_TEXT, "deploy-hook").click()
    wait(browser, EC.presence_of_element_located((By.ID, "delete-integration-form")))
    browser.find_element(By.CSS_SELECTOR, "#delete-integration-form input[name=confirm]").send_keys(Keys.SPACE)
    browser.find_element(By.ID, "delete-integration").click()
    wait(browser, EC.presence_of_element_located((By.ID, "new-integration")))
    assert "deploy-hook" not in browser.find_element(By.TAG_NAME, "main").text


def test_not_found_and_revoked_session(running_platform, browser, screenshots):
    up = running_platform
    sign_in(browser, up.url, up.token)
    wait(browser, EC.presence_of_element_located((By.ID, "running-now")))
    browser.get(up.url + "/console/no/such/page")
    assert browser.find_element(By.TAG_NAME, "h1").text == "404 Not Found"
    shoot(browser, screenshots, "34-not-found")

    # A session from a token of its own ends when that token is revoked.
    _, created, _ = up.api("POST", "/api/v1/tokens", {"name": "browser laptop", "role": "viewer"}, expect=201)
    sign_in(browser, up.url, created["value"])
    wait(browser, EC.presence_of_element_located((By.ID, "running-now")))
    browser.get(up.url + "/console/environments")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Environments"
    assert not browser.find_elements(By.ID, "new-environment")  # a viewer
    up.api("DELETE", f"/api/v1/tokens/{created['token']['id']}", expect=204)
    browser.get(up.url + "/console/environments")
    wait(browser, EC.presence_of_element_located((By.ID, "token")))
    assert browser.current_url.endswith("/console/sign-in")
    shoot(browser, screenshots, "35-session-ended")
    # The cookie is dead server-side too, not just in this browser.
    cookie = {"faultline_session": c["value"] for c in browser.get_cookies() if c["name"] == "faultline_session"}
    if cookie:
        request = urllib.request.Request(up.url + "/console", headers={"Cookie": "faultline_session=" + cookie["faultline_session"]})
        try:
            urllib.request.build_opener(NoRedirect).open(request, timeout=30)
            raise AssertionError("the revoked session still opened the console")
        except urllib.error.HTTPError as error:
            assert error.code == 302


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None
