"""The results page (--multiarch-html) of a real run, opened in a real browser: headless
Chromium from Debian's packages (``multiarch host up`` installs it), driven by Selenium."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
from acceptance import BUSYBOX_IMAGE, Project

CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


@pytest.fixture
def browser(tmp_path: Path, unavailable: Callable[[str], NoReturn]) -> Iterator[Any]:
    chromium = shutil.which("chromium")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        unavailable("no chromium/chromedriver: run `multiarch host up` (or scripts/bootstrap)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        unavailable("selenium is not installed: pip install -e '.[dev]'")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (*CHROMIUM_ARGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        yield driver
    finally:
        driver.quit()


def test_results_page_in_a_browser(project: Project, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    project.image("box", BUSYBOX_IMAGE)
    project.tests(
        """
        import pytest

        pytestmark = pytest.mark.image("box")

        def test_ok(run, platform):
            assert run(["true"]).exit_code == 0

        def test_bad(run, platform):
            result = run(["sh", "-c", "echo 'disk <full> & sad' >&2; exit 3"])
            assert platform.short != "arm64" or result.exit_code == 0, result.stderr
        """
    )
    page = project.path / "out" / "results.html"
    result = project.run("--platforms", "amd64,arm64", "-n", "2", "--multiarch-html", str(page))
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines([f"multiarch: HTML report written to {page}"])
    html = page.read_text()
    assert "http://" not in html.replace("http://www.w3.org", "")  # nothing to fetch
    assert "<script src" not in html
    assert '<link rel="stylesheet"' not in html

    browser.get(page.as_uri())
    assert "pytest-multiarch" in browser.title
    assert browser.get_log("browser") == []  # no console errors, no CSP violations
    fetched = browser.execute_script("return performance.getEntriesByType('resource').length")
    assert fetched == 0

    failing = browser.find_element(
        By.CSS_SELECTOR, 'td.cell[data-image="box"][data-platform="arm64"]'
    )
    assert failing.text == "1 passed, 1 failed"
    assert "outcome-failed" in failing.get_attribute("class")
    passing = browser.find_element(
        By.CSS_SELECTOR, 'td.cell[data-image="box"][data-platform="amd64"]'
    )
    assert passing.text == "2 passed"
    assert passing.get_attribute("data-failures") is None

    details = browser.find_element(
        By.CSS_SELECTOR, 'details.failure[data-image="box"][data-platform="arm64"]'
    )
    assert details.get_attribute("data-nodeid") == "test_images.py::test_bad[arm64]"
    assert details.get_attribute("open") is None
    message = details.find_element(By.TAG_NAME, "pre")
    assert not message.is_displayed()

    failing.click()
    WebDriverWait(browser, 10).until(lambda _: details.get_attribute("open") is not None)
    assert message.is_displayed()
    text = details.text
    assert "disk <full> & sad" in text  # escaped in the page, shown as written
    assert "docker run --rm --platform linux/arm64" in text  # the command, to rerun by hand
    assert "# exit 3" in text
    platforms = browser.find_element(By.ID, "platforms").text
    assert "native" in platforms
    assert "emulated" in platforms
    assert "QEMU" in platforms
    builds = browser.find_element(By.ID, "builds").text
    assert "linux/arm64" in builds
    assert "sha256:" in builds
    assert browser.get_log("browser") == []
