"""The Dagster UI in a real headless browser (Debian's chromium via selenium) on the demo
instance: the asset graph, a forecast partition with its map, the scorecard's picture, and
no errors in the browser console on any of those pages."""

from __future__ import annotations

import pytest

from tests.e2e.browser import (
    BrowserUnavailable,
    console_errors,
    dismiss_community_dialog,
    find_browser,
    latest_partition,
    open_asset_graph,
    open_forecast_map,
    open_scorecard,
)
from tests.e2e.webserver import TINY_MODEL


def _missing_browser() -> str | None:
    try:
        find_browser()
    except BrowserUnavailable as exc:
        return str(exc)
    return None


# Decided before any fixture runs, so a machine without a browser does not run the demo.
MISSING = _missing_browser()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(MISSING is not None, reason=f"no headless browser: {MISSING}"),
]


@pytest.fixture
def ui(demo_ui, browser):
    """The demo instance and the browser, the community dialog dismissed."""
    dismiss_community_dialog(demo_ui.url)
    return demo_ui, browser


def assert_console_clean(browser) -> None:
    errors = console_errors(browser)
    assert not errors, "errors in the browser console:\n" + "\n".join(errors)


def test_asset_graph_shows_the_pipeline(ui):
    demo, browser = ui
    keys = [
        "raw_inputs/simulator",
        f"forecast/{TINY_MODEL}",
        f"verification/{TINY_MODEL}",
        "forecast/persistence",
        "scorecard",
    ]
    nodes = open_asset_graph(browser, demo.url, keys)
    hidden = [key for key, node in nodes.items() if not node.visible]
    assert not hidden, f"asset nodes drawn off screen: {hidden}"
    assert_console_clean(browser)


def test_forecast_partition_shows_its_map(ui):
    demo, browser = ui
    key = f"forecast/{TINY_MODEL}"
    partition = latest_partition(demo.url, key)
    img = open_forecast_map(browser, demo.url, key, partition)
    assert img.get_attribute("src").startswith("data:image/png;base64,")
    assert img.size["width"] > 100 and img.size["height"] > 50, img.size
    assert_console_clean(browser)


def test_scorecard_shows_its_picture(ui):
    demo, browser = ui
    img = open_scorecard(browser, demo.url)
    assert img.get_attribute("src").startswith("data:image/png;base64,")
    assert img.size["width"] > 100 and img.size["height"] > 50, img.size
    assert_console_clean(browser)
