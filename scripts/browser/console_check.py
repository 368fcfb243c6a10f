"""Uses the controller's browser console in headless Chromium as a person
would: types into the fields and presses the buttons, then reads what the
page shows. Driven by selenium (pinned in scripts/tools.sh) through Debian's
chromium and chromedriver (scripts/browser-check.sh installs them).

Usage: console_check.py BASE_URL OUT_DIR [--screenshot PATH]

1. without a principal, asking shows the 401 ErrorResponse's code and
   message; a budget out of range shows HTTP 400 ERR_INVALID_PARAMS and its message;
2. as dev, the dev-up question streams live steps and ends SUPPORTED, citing
   the public safe-view row (source pg_safeview, its object id);
3. as guest, the same question ends INSUFFICIENT_PERMISSION; the identity
   survives a reload only while "Keep for this tab" is on (sessionStorage,
   never localStorage or cookies); OIDC mode without a token asks for one;
4. as dev, the replay list holds the run and opening it shows its question;
5. the scorecards view lists the baseline engine.

After every step the page's whole text must not hold a fixture canary, the
address bar must still be the bare page (credentials never go into a URL),
and the browser must not have reported a Content-Security-Policy refusal or
an uncaught script error. On a failure the screenshot, the page's text and
the browser's log go to OUT_DIR. --screenshot PATH saves the page showing
the SUPPORTED answer (docs/console.png).

Exits 0 with one line per step, 1 at the first step that fails.
"""

import argparse
import pathlib
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

QUERY = "What is the customer status and plan tier?"
# Every canary string of the fixtures starts with this (fixtures/pg,
# fixtures/fs_corpus; tests/security scans for the same).
CANARY = "PECR_CANARY_"
# The row of fixtures/pg/safeview_fixtures.sql the dev question is answered from.
SAFE_VIEW_SOURCE = "pg_safeview"
SAFE_VIEW_ROW = "safe_customer_view_public:local:cust_public_1"
# Browser log lines that mean the page broke its own policy or crashed.
BROWSER_FAULTS = ("Content Security Policy", "Refused to", "TrustedHTML", "Trusted Type", "Uncaught")
RUN_TIMEOUT_S = 30


class CheckFailed(Exception):
    pass


class Console:
    """The console page in one browser window, through what a person sees."""

    def __init__(self, driver: webdriver.Chrome, base_url: str):
        self.driver = driver
        self.base_url = base_url.rstrip("/")
        self.page_url = f"{self.base_url}/"
        self.log: list[str] = []

    def by_id(self, element_id: str):
        return self.driver.find_element(By.ID, element_id)

    def text_of(self, element_id: str) -> str:
        return self.by_id(element_id).text.strip()

    def wait(self, condition, what: str, timeout: float = 10):
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(lambda _: condition())
        except TimeoutException as err:
            raise CheckFailed(f"timed out after {timeout} s waiting for {what}") from err

    def open(self):
        self.driver.get(self.page_url)
        self.wait(
            lambda: self.driver.execute_script("return document.documentElement.dataset.ready") == "true",
            "the console's script to start",
        )

    def type_into(self, element_id: str, text: str):
        field = self.by_id(element_id)
        field.clear()
        if text:
            field.send_keys(text)

    def sign_in_locally(self, principal: str):
        self.by_id("auth-local").click()
        self.type_into("principal-id", principal)

    def ask(self, question: str) -> str:
        """Asks; returns the answer panel's final state (done or failed)."""
        self.show("ask")
        self.type_into("query", question)
        self.by_id("ask").click()
        self.wait(
            lambda: self.by_id("answer").get_attribute("data-state") in ("done", "failed", "stopped"),
            "the run to end",
            RUN_TIMEOUT_S,
        )
        return self.by_id("answer").get_attribute("data-state")

    def set_budget(self, **values):
        """Sends a budget with these fields changed; None sends none."""
        details = self.by_id("budget")
        if details.get_attribute("open") is None:
            details.find_element(By.TAG_NAME, "summary").click()
        send = self.by_id("budget-on")
        if send.is_selected() != bool(values):
            send.click()
        for field, value in values.items():
            self.type_into(f"budget-{field}", value)
        if not values:
            details.find_element(By.TAG_NAME, "summary").click()

    def show(self, view: str):
        self.by_id(f"nav-{view}").click()
        self.wait(lambda: self.by_id(f"view-{view}").is_displayed(), f"the {view} view")

    def alert(self) -> str:
        alert = self.by_id("alert")
        return alert.text.strip() if alert.is_displayed() else ""

    def evidence_rows(self) -> list[dict]:
        rows = []
        for row in self.driver.find_elements(By.CSS_SELECTOR, "#evidence-rows tr"):
            cells = [cell.text.strip() for cell in row.find_elements(By.TAG_NAME, "td")]
            rows.append(
                {"source": cells[1], "object": cells[2], "version": cells[3], "transforms": cells[4]}
            )
        return rows

    def live_steps(self) -> list[str]:
        return [item.get_attribute("data-kind") for item in self.driver.find_elements(By.CSS_SELECTOR, "#steps > li")]

    def page_text(self) -> str:
        # textContent: hidden elements too, not only what is on screen.
        return self.driver.execute_script("return document.documentElement.textContent") or ""

    def check_invariants(self, step: str):
        text = self.page_text()
        if CANARY in text:
            raise CheckFailed(f"{step}: the page shows a canary ({CANARY}…)")
        if self.driver.current_url != self.page_url:
            raise CheckFailed(f"{step}: the address changed to {self.driver.current_url}")
        for entry in self.driver.get_log("browser"):
            line = f"{entry.get('level')} {entry.get('message')}"
            self.log.append(line)
            if any(fault in line for fault in BROWSER_FAULTS):
                raise CheckFailed(f"{step}: the browser reported: {line}")


def check(page: Console, screenshot: pathlib.Path | None):
    page.open()
    page.check_invariants("opening the page")
    print(f"    {page.page_url} loads with its script and style under its policy")

    # 1. No principal: the server's refusal, as it sent it.
    page.sign_in_locally("")
    state = page.ask(QUERY)
    alert = page.alert()
    if state != "failed" or "ERR_POLICY_DENIED" not in alert or "401" not in alert:
        raise CheckFailed(f"asking without a principal: state {state}, alert {alert!r}")
    if page.text_of("alert-message") == "":
        raise CheckFailed("asking without a principal: the error message is not shown")
    page.check_invariants("asking without a principal")
    print(f"    no principal: HTTP 401 {page.text_of('alert-code')} — {page.text_of('alert-message')}")

    # 1b. A budget out of range: refused before the stream, as HTTP 400.
    page.sign_in_locally("dev")
    page.set_budget(max_operator_calls="20000")
    state = page.ask(QUERY)
    alert = page.alert()
    if (
        state != "failed"
        or page.text_of("alert-code") != "ERR_INVALID_PARAMS"
        or "max_operator_calls" not in alert
        or "HTTP 400" not in page.text_of("alert-status")
    ):
        raise CheckFailed(f"a budget out of range: state {state}, alert {alert!r}")
    page.set_budget()
    page.check_invariants("a budget out of range")
    print(f"    budget out of range: HTTP 400 {page.text_of('alert-code')} — {page.text_of('alert-message')}")

    # 2. dev: live steps, then SUPPORTED citing the safe-view row.
    page.sign_in_locally("dev")
    state = page.ask(QUERY)
    if state != "done":
        raise CheckFailed(f"as dev: the run ended {state}: {page.alert()!r}")
    mode = page.text_of("terminal-mode")
    if mode != "SUPPORTED":
        raise CheckFailed(f"as dev: terminal mode {mode!r}, not SUPPORTED")
    rows = page.evidence_rows()
    if not any(r["source"] == SAFE_VIEW_SOURCE and r["object"] == SAFE_VIEW_ROW for r in rows):
        raise CheckFailed(f"as dev: {SAFE_VIEW_SOURCE} {SAFE_VIEW_ROW} is not among the cited evidence {rows}")
    if any(not r["version"] or not r["transforms"] for r in rows):
        raise CheckFailed(f"as dev: a cited unit shows no version or transforms: {rows}")
    steps = page.live_steps()
    # The baseline's first step opens the session, so step_started may come
    # before session_created; finalizing and the result always come last.
    if steps.count("session") != 1 or "step" not in steps or steps[-2:] != ["finalizing", "result"]:
        raise CheckFailed(f"as dev: live steps {steps}")
    calls = page.driver.find_elements(By.CSS_SELECTOR, "#steps .call")
    if not calls:
        raise CheckFailed("as dev: no operator call listed under the steps")
    if not page.text_of("response-text") or not page.text_of("run-id") or not page.text_of("trace-id"):
        raise CheckFailed("as dev: the response text, run id or trace id is missing")
    run_id = page.text_of("run-id")
    page.check_invariants("asking as dev")
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.driver.save_screenshot(str(screenshot))
        print(f"    screenshot of the answer: {screenshot}")
    print(
        f"    as dev: SUPPORTED, {len(rows)} cited unit(s) incl. {SAFE_VIEW_SOURCE} {SAFE_VIEW_ROW} "
        f"({rows[0]['transforms']}); {steps.count('step')} step(s), {len(calls)} operator call(s) streamed"
    )

    # 3. guest: refused by policy.
    page.sign_in_locally("guest")
    state = page.ask(QUERY)
    mode = page.text_of("terminal-mode") if state == "done" else page.alert()
    if state != "done" or mode != "INSUFFICIENT_PERMISSION":
        raise CheckFailed(f"as guest: state {state}, {mode!r}, not INSUFFICIENT_PERMISSION")
    if any(r["source"] == SAFE_VIEW_SOURCE for r in page.evidence_rows()):
        raise CheckFailed("as guest: safe-view evidence is cited")
    page.check_invariants("asking as guest")
    print("    as guest: INSUFFICIENT_PERMISSION, no safe-view evidence")

    # Credentials: page memory by default, the tab's sessionStorage only when
    # asked, never localStorage or cookies.
    page.by_id("remember").click()
    page.open()
    kept = page.by_id("principal-id").get_attribute("value")
    page.by_id("remember").click()
    page.open()
    forgotten = page.by_id("principal-id").get_attribute("value")
    stored = page.driver.execute_script("return [localStorage.length, sessionStorage.length]")
    if kept != "guest" or forgotten != "" or stored != [0, 0] or page.driver.get_cookies():
        raise CheckFailed(
            f"credentials: kept {kept!r}, after forgetting {forgotten!r}, storage {stored}, "
            f"cookies {page.driver.get_cookies()}"
        )
    page.by_id("auth-oidc").click()
    page.type_into("bearer-token", "")
    state = page.ask(QUERY)
    if state != "failed" or "bearer token" not in page.text_of("alert-message"):
        raise CheckFailed(f"OIDC mode without a token: state {state}, alert {page.alert()!r}")
    page.check_invariants("keeping and forgetting credentials")
    print("    credentials: kept across a reload only when asked; OIDC mode asks for a token first")

    # 4. dev's replays: the run is listed and opens.
    page.sign_in_locally("dev")
    page.show("replays")
    page.by_id("replays-load").click()
    row_selector = f'#replays-rows tr[data-run-id="{run_id}"]'
    page.wait(lambda: page.driver.find_elements(By.CSS_SELECTOR, row_selector), f"replay {run_id} in the list")
    listed = len(page.driver.find_elements(By.CSS_SELECTOR, "#replays-rows tr"))
    page.driver.find_element(By.CSS_SELECTOR, f"{row_selector} button.open").click()
    page.wait(
        lambda: page.by_id("replay-detail").is_displayed()
        and page.by_id("replay-detail").get_attribute("data-run-id") == run_id,
        f"replay {run_id} to open",
    )
    if page.text_of("replay-query") != QUERY:
        raise CheckFailed(f"the replay shows the question {page.text_of('replay-query')!r}")
    if "SUPPORTED" not in page.text_of("replay-detail"):
        raise CheckFailed("the replay does not show its terminal mode")
    page.check_invariants("opening a replay")
    print(f"    replays as dev: {listed} listed, {run_id} opens with its question")

    # 5. Scorecards.
    page.show("scorecards")
    page.by_id("scorecards-load").click()
    page.wait(
        lambda: page.driver.find_elements(By.CSS_SELECTOR, '#scorecards-rows tr[data-engine="baseline"]'),
        "the baseline scorecard",
    )
    runs = page.driver.find_element(By.CSS_SELECTOR, '#scorecards-rows tr[data-engine="baseline"] td:nth-child(2)').text
    page.check_invariants("the scorecards view")
    print(f"    scorecards as dev: baseline over {runs} run(s)")


def browser(out_dir: pathlib.Path) -> webdriver.Chrome:
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container has no user namespaces for the sandbox
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
        "--hide-scrollbars",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--lang=en-US",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path="/usr/bin/chromedriver", log_output=str(out_dir / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    # --window-size counts the window's frame; make the page itself 1280x900.
    width, height = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    driver.set_window_size(1280 + (1280 - width), 900 + (900 - height))
    return driver


def save_failure(page: Console | None, out_dir: pathlib.Path):
    if page is None:
        return
    try:
        page.driver.save_screenshot(str(out_dir / "failure.png"))
        (out_dir / "failure.txt").write_text(
            f"url: {page.driver.current_url}\n\n"
            + (page.driver.execute_script("return document.body.innerText") or "")
        )
        page.log.extend(f"{e.get('level')} {e.get('message')}" for e in page.driver.get_log("browser"))
    except WebDriverException as err:
        print(f"console check: could not save the failure: {err}", file=sys.stderr)
    print(f"console check: screenshot, page text and browser log in {out_dir}", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("base_url")
    parser.add_argument("out_dir", type=pathlib.Path)
    parser.add_argument("--screenshot", type=pathlib.Path)
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    driver = browser(args.out_dir)
    page = Console(driver, args.base_url)
    try:
        check(page, args.screenshot)
    except (CheckFailed, WebDriverException) as err:
        print(f"console check: {err}", file=sys.stderr)
        save_failure(page, args.out_dir)
        return 1
    finally:
        (args.out_dir / "browser.log").write_text("\n".join(page.log) + "\n")
        driver.quit()
    print(f"    browser checks took {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
