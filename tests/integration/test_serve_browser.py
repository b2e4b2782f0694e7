"""The page at `/` in headless Chromium (Debian's chromium + chromium-driver, driven by selenium).

A person pastes a marked text, then a human one, then drops a signed bundle, and reads the
verdicts. Nothing downloads a browser: the test uses /usr/bin/chromium and its chromedriver,
and skips when they are missing, except under CI (CI=true), where .ci/run installs them.
Set MINTLINE_SCREENSHOT_DIR to keep the screenshots.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from serve_support import running_server, serve_materials

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        if os.environ.get("CI") == "true":
            pytest.fail("chromium / chromedriver missing under CI: .ci/run should have installed them")
        pytest.skip(
            "Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)"
        )
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium must never fetch a browser or a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1200,1700",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def page_url(request, tmp_path_factory):
    materials = serve_materials(request, tmp_path_factory)
    with running_server(materials, tmp_path_factory.mktemp("serve-browser")) as url:  # the defaults
        yield url, materials


def _screenshot(driver, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    driver.save_screenshot(str(path))
    keep = os.environ.get("MINTLINE_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, Path(keep) / name)
    return path


def _verdict_after(driver, element_id: str, previous: str | None = None) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def ready(d):
        found = d.find_elements(By.ID, element_id)
        if not found:
            errors = d.find_elements(By.CSS_SELECTOR, ".result .error")
            return errors[0].text if errors else False
        text = found[0].text
        return text if text and text != previous else False

    return WebDriverWait(driver, 60).until(ready)


def _paste(driver, text: str) -> None:
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.ID, "text")
    box.clear()
    # put the text into the box as a paste does (typing 1,000 characters key by key is slow), then
    # let the page see an input event
    driver.execute_script(
        "arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input', {bubbles: true}));",
        box,
        text,
    )
    driver.find_element(By.ID, "check-text").click()


def _drop_file(driver, path: str, zone_id: str) -> None:
    """Drop a file on a drop zone as the browser delivers a drag from the desktop (a DataTransfer)."""
    from selenium.webdriver.common.by import By

    source = driver.execute_script(
        "const input = document.createElement('input'); input.type = 'file'; input.id = 'drag-source';"
        "document.body.append(input); return input;"
    )
    source.send_keys(path)
    driver.execute_script(
        "const file = arguments[0].files[0]; const data = new DataTransfer(); data.items.add(file);"
        "const zone = document.getElementById(arguments[1]);"
        "for (const type of ['dragover', 'drop']) zone.dispatchEvent("
        "  new DragEvent(type, {dataTransfer: data, bubbles: true, cancelable: true}));"
        "arguments[0].remove();",
        source,
        zone_id,
    )
    assert not driver.find_elements(By.ID, "drag-source")


def test_page_gives_text_and_bundle_verdicts(browser, page_url, tmp_path):
    from selenium.webdriver.common.by import By

    url, materials = page_url
    browser.get(url + "/")
    assert "mintline verification" in browser.title
    key_ids = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "ul li code")]
    assert any(k.startswith("wmk1-") for k in key_ids)

    _paste(browser, Path(materials["texts"]["mixed"]).read_text(encoding="utf-8"))
    assert _verdict_after(browser, "text-verdict") == "watermarked"
    marks = browser.find_elements(By.CSS_SELECTOR, "#text-view mark")
    assert marks and sum(len(m.text) for m in marks) > 200  # the marked part is highlighted
    _screenshot(browser, tmp_path, "serve-marked.png")

    _paste(browser, Path(materials["texts"]["human0"]).read_text(encoding="utf-8"))
    assert _verdict_after(browser, "text-verdict", previous="watermarked") == "not watermarked"
    assert not browser.find_elements(By.CSS_SELECTOR, "#text-view mark")

    _paste(browser, Path(materials["texts"]["marked2"]).read_text(encoding="utf-8"))
    assert _verdict_after(browser, "text-verdict", previous="not watermarked") == "watermarked"

    _drop_file(browser, materials["texts"]["human1"], "text-drop")  # a text file dropped on the page
    assert _verdict_after(browser, "text-verdict", previous="watermarked") == "not watermarked"
    assert "file human1.txt" in browser.find_element(By.ID, "text-result").text

    _drop_file(browser, materials["bundles"]["good"], "bundle-drop")
    assert _verdict_after(browser, "bundle-verdict") == "verified"
    page_text = browser.find_element(By.ID, "bundle-result").text
    assert "signed by" in page_text and "serve-test 1.0.0" in page_text
    shot = _screenshot(browser, tmp_path, "serve-verified.png")
    assert shot.stat().st_size > 10_000

    browser.get(url + "/")  # a fresh page: a tampered bundle, chosen with the file picker, is refused
    browser.find_element(By.ID, "bundle-file").send_keys(materials["bundles"]["tampered"])
    assert _verdict_after(browser, "bundle-verdict") == "not verified"
    reasons = browser.find_element(By.ID, "bundle-reasons").text
    assert "config.json" in reasons
    _screenshot(browser, tmp_path, "serve-not-verified.png")
