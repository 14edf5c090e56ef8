"""Flower as an operator sees it: headless Chromium (Debian's chromium + chromium-driver, driven by
Selenium with no driver download) through basic auth to the tasks page, after a real delivery by
a worker started with task events (-E). The API-level checks are in test_flower.py; this one is
about what the browser shows: the delivery's task listed as webhooks.deliver, its arguments only
the delivery id, nothing of the payload; and a wrong password gets nothing."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest

import webhooks
from webhooks import events
from tests.integration.test_flower import PASSWORD, USER, _get, events_worker, flower  # noqa: F401 (fixtures)
from tests.support.worker import wait_until

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def _browser(profile: Path) -> Any:
    """Headless Chromium with a fresh profile (Flower's DataTables keeps search state in it)."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("Chromium is absent: install Debian's chromium and chromium-driver (.ci/run does)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the test extra")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--no-proxy-server", f"--user-data-dir={profile}", "--window-size=1400,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    driver = _browser(tmp_path / "profile")
    try:
        yield driver
    finally:
        driver.quit()


def _statuses(driver: Any, url_part: str) -> list[int]:
    """HTTP statuses of the responses the browser received for URLs containing ``url_part``."""
    found = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.responseReceived":
            response = message["params"]["response"]
            if url_part in response["url"]:
                found.append(int(response["status"]))
    return found


def test_flower_in_a_browser_lists_the_delivery_task_with_only_its_id(configured, events_worker, flower, receiver,
                                                                     account, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    base = flower
    worker_name = events_worker.args[events_worker.args.index("-n") + 1].split("@")[0]
    # Given Flower has seen the worker (started with -E), and one event delivered for real
    wait_until(lambda: f'flower_worker_online{{worker="{worker_name}@' in _get(f"{base}/metrics")[1], 60,
               message="Flower to see the worker")
    sub = webhooks.subscriptions.create(account, receiver.url("/browser"), ["conversation.ended"])
    secret = sub.signing_secrets()[0]
    published = webhooks.publish(account, "conversation.ended", events.sample("conversation.ended"))
    delivery_id = published.delivery_ids[0]
    receiver.wait_for(lambda r: len(r.requests_for("/browser")) == 1, timeout_s=30)

    # When an operator opens the tasks page with the credentials and searches for the delivery id
    host = base.removeprefix("http://")
    browser.get(f"http://{USER}:{PASSWORD}@{host}/tasks")
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "#tasks-table_filter input"), 20,
               message="the tasks table to load")
    assert 200 in _statuses(browser, "/tasks")
    box = browser.find_element(By.CSS_SELECTOR, "#tasks-table_filter input")
    box.send_keys(delivery_id, Keys.ENTER)

    from selenium.common.exceptions import StaleElementReferenceException

    seen: dict[str, str] = {}

    def found() -> bool:
        try:
            rows = browser.find_elements(By.CSS_SELECTOR, "#tasks-table tbody tr[id]")
            if len(rows) == 1 and "SUCCESS" in rows[0].text:
                seen.update(id=rows[0].get_attribute("id"), text=rows[0].text)
                return True
        except StaleElementReferenceException:  # the table was redrawn under us
            return False
        # Events arrive after the page loaded: ask the table to fetch again (Flower does not poll it)
        browser.execute_script("$('#tasks-table').DataTable().ajax.reload(null, false)")
        return False

    wait_until(found, 30, interval_s=1.0, message="the delivery's task row in the browser")
    task_id = seen["id"]
    # Then exactly one row matches: the webhooks.deliver task, succeeded, its uuid shown
    assert "webhooks.deliver" in seen["text"]
    assert task_id in seen["text"]

    # ... and its page shows the delivery id as the only argument, no keyword arguments
    browser.get(f"{base}/task/{task_id}")
    wait_until(lambda: browser.find_elements(By.ID, "taskid"), 20, message="the task page")
    assert browser.title.startswith("webhooks.deliver ")

    def shown(term: str) -> str:
        return str(browser.find_element(By.XPATH, f"//dt[normalize-space()='{term}']/following-sibling::dd[1]").text)

    assert shown("Arguments") == repr([delivery_id])
    assert shown("Keyword arguments") == "{}"
    page = browser.page_source
    for leak in (secret, secret.removeprefix("whsec_"), "jordan.lee@example.org", "charged twice", published.id):
        assert leak not in page


def test_flower_in_a_browser_with_a_wrong_password_shows_nothing(configured, events_worker, flower, receiver,
                                                                 account, browser):
    from selenium.webdriver.common.by import By

    base = flower
    host = base.removeprefix("http://")
    # Given a delivered event Flower knows about
    webhooks.subscriptions.create(account, receiver.url("/wrong"), ["conversation.ended"])
    delivery_id = webhooks.publish(account, "conversation.ended", events.sample("conversation.ended")).delivery_ids[0]
    receiver.wait_for(lambda r: len(r.requests_for("/wrong")) == 1, timeout_s=30)
    wait_until(lambda: delivery_id in _get(f"{base}/api/tasks?limit=1000", auth=True)[1], 30,
               message="Flower to know the task")
    task_id = next(uid for uid, t in json.loads(_get(f"{base}/api/tasks?limit=1000", auth=True)[1]).items()
                   if delivery_id in str(t.get("args")))

    # When a browser comes with a wrong password, to the list, a task page and the API
    for path in ("/tasks", f"/task/{task_id}", "/api/tasks"):
        browser.get(f"http://{USER}:not-the-password@{host}{path}")
        # Then Flower answers 401 and the page holds no task data
        wait_until(lambda: 401 in _statuses(browser, path), 10, message=f"a 401 for {path}")
        page = browser.page_source
        assert delivery_id not in page and task_id not in page
        assert not browser.find_elements(By.ID, "tasks-table") and not browser.find_elements(By.ID, "taskid")
