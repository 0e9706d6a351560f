"""Real Chromium for the page tests: Debian's /usr/bin/chromium driven by Playwright.

When Chromium or Playwright is missing the tests skip, except under CI=true,
where they fail: CI must never pass without having loaded the page."""
import os
import shutil
import time

import pytest

CHROMIUM = "/usr/bin/chromium"


def browser_problem():
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright (PyPI) is not installed"
    return None


@pytest.fixture
def chromium():
    problem = browser_problem()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser unavailable under CI=true: {problem}")
        pytest.skip(problem)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser, url, errors):
    page = browser.new_page(viewport={"width": 1300, "height": 760})
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" and
            "favicon" not in msg.text and "404" not in msg.text else None)
    page.goto(url)
    return page


def process_counts_until_finished(page, limit=90):
    """The process counts the page showed, each time it changed, until its
    state says finished (the limit only ends a hung test)."""
    seen = []
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        n = page.evaluate("Number(document.getElementById('status').dataset.processes || 0)")
        if not seen or n != seen[-1]:
            seen.append(n)
        if page.inner_text("#state") == "finished":
            break
        time.sleep(0.1)
    return seen
