"""Debian's headless Chromium, driven by Debian's chromedriver, with fake media devices:
what the browser tests record with. A missing browser is a broken set-up, not a reason to
skip: it fails loudly, naming the package."""
import contextlib
import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
HTTP_TIMEOUT = 30

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--window-size=1100,1400", "--auto-select-desktop-capture-source=Entire screen",
]


@contextlib.contextmanager
def chromium(work: Path, refuse_permissions: bool = False):
    """A fresh headless Chromium with its own profile under `work`: nothing shared with
    another. The fake UI says yes to every camera, microphone and screen request;
    refuse_permissions swaps it for one that says no, as a person who refuses would."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("selenium is not installed (pip install -r requirements-dev.txt)")
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not path.exists():
            pytest.fail(f"{path} is missing: apt-get install -y {package}")
    previous = os.environ.get("SE_OFFLINE")
    os.environ["SE_OFFLINE"] = "true"  # never let Selenium Manager download anything
    work.mkdir(parents=True, exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    flags = list(CHROMIUM_FLAGS)
    if refuse_permissions:
        flags.remove("--use-fake-ui-for-media-stream")
        flags.append("--deny-permission-prompts")
    for flag in flags:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={work / 'profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console and CSP reports
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(work / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.set_page_load_timeout(HTTP_TIMEOUT)
        driver.set_script_timeout(HTTP_TIMEOUT)
        yield driver
    finally:
        driver.quit()
        if previous is None:
            os.environ.pop("SE_OFFLINE", None)
        else:
            os.environ["SE_OFFLINE"] = previous
