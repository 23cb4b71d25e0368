"""End-to-end fixtures: a webserver on a demo instance, and a headless Chromium.

``demo_ui`` is session-scoped and shared by every UI test: treat it as read-only (a test
that materializes, launches runs or changes settings starts its own instance with
``tests.e2e.webserver.demo_instance``).
"""

from __future__ import annotations

import time

import pytest

from tests.e2e.webserver import DemoInstance, demo_instance, write_demo_registry

# Six cycles: forecasts, verifications with some truth for most cycles, and a scorecard.
DEMO_UI_CYCLES = 6


@pytest.fixture(scope="session")
def demo_ui(tmp_path_factory) -> DemoInstance:
    """The demo (``wxplat demo --cycles 6``) in a temporary WXPLAT_HOME, and
    ``dagster-webserver`` on it (127.0.0.1, a free port; no daemon, so nothing runs by itself).

    The registry holds the ``persistence`` baseline and ``fno-tiny`` (see
    ``write_demo_registry``), which the demo trains first. Yields url, env, home and models;
    about 1.5 minutes on two cores.
    """
    home = tmp_path_factory.mktemp("demo_ui")
    registry = write_demo_registry(home / "registry")
    started = time.monotonic()
    with demo_instance(home, cycles=DEMO_UI_CYCLES, registry_dir=registry) as demo:
        print(f"\ndemo_ui ready in {time.monotonic() - started:.0f} s at {demo.url}")
        yield demo


@pytest.fixture
def browser():
    """A headless Chromium (selenium + Debian's chromium-driver) recording the console.

    Skips, saying why, only when no browser or driver can be found here; one that is found
    but does not start is an error.
    """
    from tests.e2e.browser import BrowserUnavailable, find_browser, start_browser

    try:
        find_browser()
    except BrowserUnavailable as exc:
        pytest.skip(f"no headless browser: {exc}")
    driver = start_browser()
    try:
        yield driver
    finally:
        driver.quit()
