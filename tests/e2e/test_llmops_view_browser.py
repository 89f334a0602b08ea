"""The LLMOps view in a real browser: `llmops ui` (the embedded default: SimpleAuthManager, every user admin, so
the UI logs in by itself) on a prepared state (tests/llmops_view/world.py), headless Chromium from Debian driven by
Selenium with Debian's chromium-driver.

The test opens the view inside the Airflow UI (nav entry -> /plugin/llmops) and on its own (/llmops/), follows
its Retrain button to the `llmops_retrain` DAG, triggers it from the UI's trigger form with the Param
`max_train_minutes` changed, waits (bounded) for the run to succeed, and checks the task states: the champion was
trained on the newest snapshot, so `should_retrain` chooses `no_retrain` and the training branch is skipped (the
run takes seconds, not minutes). Screenshots of every step are saved under `test-artifacts/llmops-view/`
(gitignored) or `$LLMOPS_TEST_ARTIFACTS`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.llmops_view import world

pytestmark = [pytest.mark.slow, pytest.mark.integration]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = (
    Path(os.environ.get("LLMOPS_TEST_ARTIFACTS") or Path(__file__).parents[2] / "test-artifacts") / "llmops-view"
)
TRAIN_MINUTES = 7
SNAPSHOTS_PARAM = f"{world.DATASET}/{world.SNAPSHOTS[-1]}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _call(method: str, url: str, body: dict | None = None) -> tuple[int, dict | str]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            raw, status = response.read().decode(), response.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read().decode(), exc.code
    try:
        return status, json.loads(raw)
    except json.JSONDecodeError:
        return status, raw


def _wait(predicate, timeout: float, what: str, proc: subprocess.Popen, log: Path, every: float = 2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"llmops ui exited ({proc.returncode}) while waiting for {what}:\n{log.read_text()[-3000:]}")
        try:
            result = predicate()
            if result:
                return result
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(every)
    pytest.fail(f"timed out after {timeout}s waiting for {what}:\n{log.read_text()[-3000:]}")


@pytest.fixture
def ui(tmp_path: Path):
    home = tmp_path / "home"
    world.build(home)
    port = _free_port()
    log = tmp_path / "ui.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["LLMOPS_HOME"] = str(home)
    llmops = Path(sys.executable).with_name("llmops")
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(llmops), "ui", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}", proc, log
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--window-size=1400,1000", "--disable-dev-shm-usage"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _shot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), path
    return path


def _until(driver, condition, timeout: float, what: str):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        from selenium.common.exceptions import StaleElementReferenceException

        wait = WebDriverWait(driver, timeout, poll_frequency=0.5, ignored_exceptions=(StaleElementReferenceException,))
        return wait.until(condition)
    except TimeoutException:
        _shot(driver, f"timeout-{what.replace(' ', '-')}")
        pytest.fail(f"timed out after {timeout}s waiting for {what} at {driver.current_url}")


def _button(driver, text: str, dialog: str | None = None):
    """The enabled, visible button whose text is `text` (in the dialog titled `dialog` when given)."""
    from selenium.webdriver.common.by import By

    root = _dialog(driver, dialog) if dialog else driver
    if root is None:
        return None
    for element in root.find_elements(By.XPATH, f".//button[normalize-space()='{text}']"):
        if element.is_displayed() and element.is_enabled():
            return element
    return None


def _dialog(driver, title: str):
    from selenium.webdriver.common.by import By

    found = [e for e in driver.find_elements(By.CSS_SELECTOR, "[role='dialog']") if title in e.text]
    return found[0] if found else None


def test_the_view_in_the_ui_and_a_retrain_triggered_from_its_form(ui, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    base, proc, log = ui
    api = f"{base}/api/v2"

    def healthy():
        status, body = _call("GET", f"{api}/monitor/health")
        return status == 200 and all(body[c]["status"] == "healthy" for c in ("metadatabase", "scheduler"))

    _wait(healthy, 180, "a healthy scheduler and API", proc, log)
    _wait(lambda: _call("GET", f"{api}/dags/llmops_retrain")[0] == 200, 180, "llmops_retrain to be parsed", proc, log)

    # the nav entry renders the view inside the Airflow UI (no login needed: every user is admin here)
    browser.get(f"{base}/plugin/llmops")
    frame = _until(browser, lambda d: d.find_elements(By.TAG_NAME, "iframe"), 60, "the view's frame")[0]
    assert frame.get_attribute("src").endswith("/llmops/")
    browser.switch_to.frame(frame)
    _until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, '[data-alias="champion"]'), 60, "the view in its frame")
    browser.switch_to.default_content()
    _shot(browser, "01-view-in-airflow-ui")

    # the view on its own: models, drift plots, snapshots, audit
    browser.get(f"{base}/llmops/")
    page = browser.page_source
    assert f"Model {world.MODEL}" in page and "alert(" not in browser.execute_script("return document.title")
    cards = {c.get_attribute("data-alias"): c.text for c in browser.find_elements(By.CSS_SELECTOR, ".card")}
    assert set(cards) == {"champion", "candidate", "previous-champion"}
    assert "version 2" in cards["champion"] and "fail" in cards["candidate"]
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.drift-plot")) == 2
    assert world.EVIL in browser.find_element(By.CSS_SELECTOR, ".dataset").text  # shown as text, not run
    assert "chain: ok, 2 records" in browser.find_element(By.ID, "audit-status").text
    _shot(browser, "02-view")

    # its Retrain button opens the DAG whose Trigger button shows the Params form
    browser.find_element(By.CSS_SELECTOR, 'a.button[data-dag="llmops_retrain"]').click()
    _until(browser, lambda d: urllib.parse.urlparse(d.current_url).path == "/dags/llmops_retrain", 30, "the DAG page")
    trigger = _until(browser, lambda d: _button(d, "Trigger"), 60, "the Trigger button")
    _shot(browser, "03-dag-page")
    trigger.click()
    dialog = _until(browser, lambda d: _dialog(d, "Trigger Dag"), 30, "the trigger form")
    field = dialog.find_element(By.CSS_SELECTOR, "input[name='element_max_train_minutes']")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", field)
    assert field.get_attribute("value") == "30"  # the DAG's default, offered by the form
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(str(TRAIN_MINUTES))
    # the form requires every string Param without a null type, `snapshots` (default "") included: name the newest
    snapshots = dialog.find_element(By.CSS_SELECTOR, "input[name='element_snapshots']")
    snapshots.send_keys(SNAPSHOTS_PARAM)
    _shot(browser, "04-trigger-form")
    submit = _until(browser, lambda d: _button(d, "Trigger", "Trigger Dag"), 30, "the form's Trigger button")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", submit)
    submit.click()
    _until(browser, lambda d: not _dialog(d, "Trigger Dag"), 30, "the trigger form to close")

    def the_run():
        runs = _call("GET", f"{api}/dags/llmops_retrain/dagRuns")[1]["dag_runs"]
        manual = [r for r in runs if r["run_type"] == "manual"]
        return manual[0] if manual and manual[0]["state"] in ("success", "failed") else None

    run = _wait(the_run, 240, "the triggered llmops_retrain run to finish", proc, log)
    assert run["state"] == "success", run
    # the Params typed into the form reached the run
    assert (run["conf"]["max_train_minutes"], run["conf"]["snapshots"]) == (TRAIN_MINUTES, SNAPSHOTS_PARAM)
    run_path = f"{api}/dags/llmops_retrain/dagRuns/{urllib.parse.quote(run['dag_run_id'], safe='')}"
    tasks = {t["task_id"]: t["state"] for t in _call("GET", f"{run_path}/taskInstances")[1]["task_instances"]}
    assert tasks == {
        "should_retrain": "success",
        "no_retrain": "success",
        "fine_tune": "skipped",
        "evaluate": "skipped",
        "promote": "skipped",
    }
    browser.get(f"{base}/dags/llmops_retrain/runs/{urllib.parse.quote(run['dag_run_id'], safe='')}")
    _until(browser, lambda d: "no_retrain" in d.page_source, 60, "the run's grid")
    _shot(browser, "05-run")
    assert sorted(p.name for p in ARTIFACTS.glob("0*.png")) == [
        "01-view-in-airflow-ui.png", "02-view.png", "03-dag-page.png", "04-trigger-form.png", "05-run.png",
    ]  # fmt: skip
