"""The Passerelle view in a real browser (Debian's Chromium through selenium and chromium-driver)
under a real ``airflow api-server``: log in through Airflow's own login page, see a quarantined
order with words a shop manager can act on, dismiss one with a note, map a shop label and replay
from the page, and find "Passerelle" in the Airflow UI's navigation; then start a DAG run from a
DAG's own trigger form in the Airflow UI. Screenshots go to ``var/screenshots/``."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from desk.conftest import PASSWORDS, ensure_chromium, shop_label

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


@pytest.fixture
def browser():
    binary, driver_path = ensure_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1366,1000",
        "--lang=en-GB",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(120)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def shot(driver, name: str) -> Path:
    path = SCREENSHOTS / f"desk-{name}.png"
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 5_000, f"{path} looks empty"
    return path


def group(driver, order: str):
    return driver.find_element(By.CSS_SELECTOR, f'section.group[data-order="{order}"]')


def groups(driver) -> list[str]:
    return [g.get_attribute("data-order") for g in driver.find_elements(By.CSS_SELECTOR, "section.group")]


def quarantine_status(dsn: str, order: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT status, note, resolved_by FROM passerelle.quarantine WHERE shop_order_id = %s", (order,)
        ).fetchall()


def log_in(browser, wait, url: str, path: str, screenshot: str | None = None) -> None:
    """Open *path* without a session: Airflow's own login page, then back to *path*."""
    browser.get(f"{url}{path}")
    wait.until(ec.url_contains("/auth/login"))
    user = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "input[name=username]")))
    user.send_keys("admin")
    browser.find_element(By.CSS_SELECTOR, "input[type=password]").send_keys(PASSWORDS["admin"])
    if screenshot:
        shot(browser, screenshot)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(ec.url_to_be(f"{url}{path}"))


def submit(browser, wait, button) -> None:
    """Click a form's button and wait until the page it posts to has replaced this one: a message
    looked for too soon is the old page's, gone stale under the test."""
    page = browser.find_element(By.TAG_NAME, "html")
    button.click()
    wait.until(ec.staleness_of(page))


def test_a_quarantined_order_is_seen_dismissed_and_replayed_from_the_page(desk_server, quarantined, browser):
    wait = WebDriverWait(browser, 90)
    url = desk_server.url

    # Not logged in: Airflow's own login page, then back to the quarantine.
    log_in(browser, wait, url, "/passerelle/quarantine", "01-airflow-login")
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "section.group")))

    # Seen: grouped by file and order, the reason in words, the shop's line behind a fold.
    found = groups(browser)
    assert f"{quarantined}2" in found and f"{quarantined}3" in found, found
    unknown = group(browser, f"{quarantined}2")
    assert f"in orders_{quarantined}.csv" in unknown.find_element(By.TAG_NAME, "h2").text
    assert f"The shop sold “{shop_label(quarantined)}”" in unknown.text
    nobody = group(browser, f"{quarantined}3")
    assert "Nobody to bill" in nobody.text
    assert "signed in to Airflow as admin" in browser.find_element(By.TAG_NAME, "header").text
    shot(browser, "02-quarantine")

    # Dismissed with a note.
    note = "Customer phoned: order re-entered by hand as WEB-TEST"
    nobody.find_element(By.CSS_SELECTOR, "form.dismiss textarea[name=note]").send_keys(note)
    submit(browser, wait, nobody.find_element(By.CSS_SELECTOR, "form.dismiss button"))
    message = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".msg")))
    assert message.text == "Dismissed 1 row(s) with your note."
    assert f"{quarantined}3" not in groups(browser)
    assert quarantine_status(desk_server.erp_dsn, f"{quarantined}3") == [("resolved", note, "admin")]
    shot(browser, "03-dismissed")

    # A wrong reference is refused with the value named, nothing changes.
    form = group(browser, f"{quarantined}2").find_element(By.CSS_SELECTOR, "form.map")
    form.find_element(By.CSS_SELECTOR, "input[name=reference]").send_keys("ART-999999")
    submit(browser, wait, form.find_element(By.TAG_NAME, "button"))
    error = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".error")))
    assert "reference 'ART-999999'" in error.text and "no article or variant" in error.text

    # Mapped, then replayed from the page: the order is integrated.
    form = group(browser, f"{quarantined}2").find_element(By.CSS_SELECTOR, "form.map")
    form.find_element(By.CSS_SELECTOR, "input[name=reference]").send_keys("ART-000001")
    submit(browser, wait, form.find_element(By.TAG_NAME, "button"))
    message = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".msg")))
    assert f"Shop label “{shop_label(quarantined)}” now means “ART-000001”" in message.text
    submit(browser, wait, browser.find_element(By.ID, "replay"))
    message = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".msg")))
    assert message.text.startswith("Replayed 1 row(s)"), message.text
    assert f"{quarantined}2" not in groups(browser)
    assert quarantine_status(desk_server.erp_dsn, f"{quarantined}2")[0][0] == "replayed"
    shot(browser, "04-replayed")

    # The order is now among the web orders, with its line.
    browser.get(f"{url}/passerelle/orders?q={quarantined}2")
    browser.find_element(By.LINK_TEXT, f"WEB-{quarantined}2").click()
    wait.until(ec.url_matches(r"/passerelle/orders/\d+$"))
    assert "ART-000001" in browser.find_element(By.TAG_NAME, "main").text
    shot(browser, "05-web-order")

    # And the view is in Airflow's own navigation, framed in the UI.
    browser.get(f"{url}/")
    link = wait.until(
        ec.element_to_be_clickable((By.CSS_SELECTOR, "[data-testid=nav-sidebar] a[href*='plugin/passerelle']"))
    )
    shot(browser, "06-airflow-home")
    link.click()
    wait.until(ec.url_contains("/plugin/passerelle"))
    frame = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "iframe[title=Passerelle]")))
    assert frame.get_attribute("src").rstrip("/").endswith("/passerelle")
    browser.switch_to.frame(frame)
    heading = wait.until(ec.presence_of_element_located((By.TAG_NAME, "h1")))
    assert heading.text == "Overview"
    browser.switch_to.default_content()
    shot(browser, "07-in-airflow-ui")


def test_a_dag_run_is_started_from_the_dags_trigger_form(desk_server, browser):
    """The orders_in DAG's trigger form in the Airflow UI holds its two options, worded for it;
    ticking "Dry run" and pressing Trigger starts a run whose conf says so (read back through
    Airflow's REST API)."""
    wait = WebDriverWait(browser, 90)
    url = desk_server.url
    run_id = f"browser__{uuid.uuid4().hex[:8]}"

    log_in(browser, wait, url, "/dags/orders_in")
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "[data-testid=trigger-dag-button]"))).click()
    dialog = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "[role=dialog][data-state=open]")))
    assert "Trigger Dag - orders_in" in dialog.text

    # The DAG's own options, in their section, with the words of params.py; nothing else.
    dialog.find_element(By.XPATH, ".//button[contains(., 'Run options')]").click()
    options = wait.until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, "[role=dialog][data-state=open] [role=region]"))
    )
    switches = [e.get_attribute("name") for e in options.find_elements(By.CSS_SELECTOR, "input[type=checkbox]")]
    assert switches == ["element_dry_run", "element_replay_quarantine"], switches
    assert "Download and read the shop's files and show what would be integrated" in options.text
    assert "mode" not in switches and "entities" not in [s.removeprefix("element_") for s in switches]

    # Dry run on, a run id we can find again, then Trigger.
    options.find_element(By.ID, "switch:element_dry_run:control").click()
    wait.until(lambda d: d.find_element(By.ID, "switch:element_dry_run").get_attribute("data-state") == "checked")
    dialog.find_element(By.XPATH, ".//button[contains(., 'Advanced Options')]").click()
    run_field = wait.until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, "[role=dialog][data-state=open] input[name=dagRunId]"))
    )
    run_field.send_keys(run_id)
    shot(browser, "08-trigger-form")
    dialog.find_element(By.CSS_SELECTOR, "[data-testid=trigger-dag-submit]").click()
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), "Dag Run Triggered"))
    shot(browser, "09-triggered")

    with desk_server.client() as admin:
        run = admin.get(f"/api/v2/dags/orders_in/dagRuns/{run_id}")
    assert run.status_code == 200, run.text
    assert run.json()["conf"] == {"dry_run": True, "replay_quarantine": False}
    assert run.json()["run_type"] == "manual"
