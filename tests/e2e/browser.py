"""Headless Chromium (Debian's ``chromium`` + ``chromium-driver``, driven by selenium) on the
Dagster UI: start the browser, open the pages an operator looks at, read the console.

Shared by ``test_browser_ui.py`` and ``scripts/screenshots.py``. No pytest here. Every wait is
bounded (``WebDriverWait`` with an explicit timeout). Selectors are those of Dagster 1.13's UI
(pinned in pyproject.toml): the asset graph draws groups and asset nodes as SVG
``foreignObject``s, and a markdown metadata entry is a ``[Show Markdown]`` link in the
metadata table that opens a dialog with the rendered markdown.
"""

from __future__ import annotations

import os
import shutil
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass

from tests.e2e.webserver import graphql

# Seconds: a page and its GraphQL queries on a two-core machine that is also running the
# webserver and its code server.
PAGE_TIMEOUT = 60
WINDOW = (1600, 1000)

BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
DRIVER_NAMES = ("chromedriver",)
INSTALL_HINT = "as root, `make browser` installs Debian's chromium and chromium-driver"

# Console messages (level SEVERE) that are Dagster's own and harmless: a substring of the
# message -> why it is allowed. Anything else fails the test. Dagster 1.13.27 logs none on
# the graph, partition and event pages (checked with Chromium 156), so the list is empty.
BENIGN_CONSOLE_ERRORS: dict[str, str] = {}


class BrowserUnavailable(RuntimeError):
    """No usable headless Chromium here (the reason is the message)."""


@dataclass(frozen=True)
class GraphNode:
    """An asset node as drawn in the asset graph: its label, its group box, whether on screen."""

    label: str
    group: str | None
    visible: bool


def find_browser() -> tuple[str, str]:
    """Paths of the Chromium binary and its chromedriver; ``BrowserUnavailable`` if missing.

    ``CHROME_BIN`` / ``CHROMEDRIVER`` override the search of ``PATH``.
    """
    try:
        import selenium  # noqa: F401
    except ImportError:
        raise BrowserUnavailable(
            "selenium is not installed (it is in the test extra: pip install -e '.[test]')"
        ) from None
    browser = os.environ.get("CHROME_BIN") or next(
        (p for p in map(shutil.which, BROWSER_NAMES) if p), None
    )
    if not browser:
        raise BrowserUnavailable(
            f"no Chromium on PATH (looked for {', '.join(BROWSER_NAMES)}); {INSTALL_HINT}"
        )
    driver = os.environ.get("CHROMEDRIVER") or next(
        (p for p in map(shutil.which, DRIVER_NAMES) if p), None
    )
    if not driver:
        raise BrowserUnavailable(f"Chromium is at {browser} but no chromedriver; {INSTALL_HINT}")
    return browser, driver


def start_browser(window: tuple[int, int] = WINDOW):
    """A headless Chromium under chromedriver that records the console (``browser`` log).

    Uses the local binaries only (selenium's own driver download is never used).
    ``BrowserUnavailable`` when they are not found; ``RuntimeError`` when they do not start.
    """
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    browser, driver = find_browser()
    options = Options()
    options.binary_location = browser
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in containers and CI has no user namespace for the sandbox
        "--disable-dev-shm-usage",  # small /dev/shm in containers
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        f"--window-size={window[0]},{window[1]}",
        "--force-device-scale-factor=1",
        "--lang=en-US",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        session = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    except WebDriverException as exc:  # found but broken: an error, not a reason to skip
        raise RuntimeError(
            f"Chromium ({browser}) did not start under {driver}: {exc.msg}"
        ) from None
    session.set_page_load_timeout(PAGE_TIMEOUT)
    session.set_script_timeout(PAGE_TIMEOUT)
    # --window-size is the outer window: grow it so that the page itself (and each
    # screenshot) is ``window``.
    dw, dh = session.execute_script(
        "return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight]"
    )
    if dw or dh:
        session.set_window_size(window[0] + dw, window[1] + dh)
    return session


def dismiss_community_dialog(url: str) -> None:
    """Mark the "Join the Dagster community" dialog seen on this instance (what "Skip" does);
    it would cover every page on a fresh instance served at 127.0.0.1."""
    graphql(url, "mutation { setNuxSeen }")


def console_errors(driver, allowed: Iterable[str] = BENIGN_CONSOLE_ERRORS) -> list[str]:
    """The SEVERE console messages since the last call (reading empties the log), less the
    allowed ones."""
    allowed = list(allowed)
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE" and not any(a in entry["message"] for a in allowed)
    ]


def _wait(driver, timeout: float):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.25)


# -- the asset graph ---------------------------------------------------------------------------

_GRAPH_NODES_JS = """
const rect = (f) => ({x: +f.getAttribute('x'), y: +f.getAttribute('y'),
                      w: +f.getAttribute('width'), h: +f.getAttribute('height')});
const firstLine = (el) => (el.innerText || el.textContent || '').trim().split('\\n')[0].trim();
const objects = Array.from(document.querySelectorAll('foreignObject'));
const groups = objects.filter((f) => f.classList.contains('group'))
  .map((f) => ({name: firstLine(f), ...rect(f)}));
return objects.filter((f) => f.querySelector('[class*="AssetNode_assetNodeContainer"]'))
  .map((f) => {
    const r = rect(f);
    const g = groups.find((g) => r.x >= g.x && r.y >= g.y &&
                                 r.x + r.w <= g.x + g.w && r.y + r.h <= g.y + g.h);
    const b = f.querySelector('[class*="AssetNode_assetNodeContainer"]').getBoundingClientRect();
    const visible = b.width > 0 && b.height > 0 && b.right > 0 && b.bottom > 0 &&
                    b.left < window.innerWidth && b.top < window.innerHeight;
    return {label: firstLine(f), group: g ? g.name : null, visible: visible};
  });
"""


def asset_groups(url: str) -> dict[str, str]:
    """Asset key (``a/b``) -> its group name, from the webserver's GraphQL."""
    data = graphql(url, "{ assetNodes { assetKey { path } groupName } }")
    return {"/".join(n["assetKey"]["path"]): n["groupName"] for n in data["assetNodes"]}


def graph_url(url: str) -> str:
    """The global asset lineage with every group expanded (query parameter ``expanded``).

    Dagster names a group ``global@global:<group>`` or, with per-location groups,
    ``<repository>@<location>:<group>``; both are given (unknown ids are ignored).
    """
    data = graphql(url, "{ assetNodes { groupName repository { name location { name } } } }")[
        "assetNodes"
    ]
    ids: list[str] = []
    for node in data:
        repo = node["repository"]
        for gid in (
            f"global@global:{node['groupName']}",
            f"{repo['name']}@{repo['location']['name']}:{node['groupName']}",
        ):
            if gid not in ids:
                ids.append(gid)
    return f"{url}/asset-groups?" + urllib.parse.urlencode({"expanded": ",".join(ids)})


def open_asset_graph(driver, url: str, expect: Iterable[str], timeout: float = PAGE_TIMEOUT):
    """Open the asset graph, all groups expanded; wait until the asset keys ``expect`` are
    drawn as nodes. Returns ``{asset key: GraphNode}`` for those keys.

    A node is matched by its label (the key's last component, as the graph shows it, or the
    whole key) inside the box of the key's group.
    """
    from selenium.common.exceptions import TimeoutException

    groups = asset_groups(url)
    expect = list(expect)
    unknown = [k for k in expect if k not in groups]
    if unknown:
        raise AssertionError(f"no asset {', '.join(unknown)} in the code location at {url}")
    driver.get(graph_url(url))

    def matched(_driver) -> dict[str, GraphNode] | None:
        nodes = [GraphNode(**n) for n in driver.execute_script(_GRAPH_NODES_JS)]
        found = {}
        for key in expect:
            labels = {key, key.rsplit("/", 1)[-1]}
            hits = [n for n in nodes if n.label in labels and n.group == groups[key]]
            if hits:
                found[key] = hits[0]
        return found if len(found) == len(expect) else None

    try:
        return _wait(driver, timeout).until(matched)
    except TimeoutException:
        drawn = [GraphNode(**n) for n in driver.execute_script(_GRAPH_NODES_JS)]
        raise AssertionError(
            f"the asset graph did not draw {expect} within {timeout:.0f} s; drawn: "
            + ", ".join(f"{n.group}:{n.label}" for n in drawn)
        ) from None


_NODE_BOXES_JS = """
return Array.from(document.querySelectorAll('foreignObject')).map((f) => {
  const b = f.getBoundingClientRect();
  return [Math.round(b.left), Math.round(b.top), Math.round(b.width), Math.round(b.height)];
});
"""


def wait_settled(driver, timeout: float = 10, interval: float = 0.5) -> None:
    """Wait (at most ``timeout`` s) until the graph's boxes stop moving (zoom-to-fit)."""
    import time

    deadline = time.monotonic() + timeout
    before = driver.execute_script(_NODE_BOXES_JS)
    while time.monotonic() < deadline:
        time.sleep(interval)
        now = driver.execute_script(_NODE_BOXES_JS)
        if now == before:
            return
        before = now


# -- asset pages, metadata and markdown pictures ------------------------------------------------


def asset_url(url: str, key: str, **params: str) -> str:
    """The asset's page (``view=partitions``/``events``, ``partition=...``)."""
    path = "/".join(urllib.parse.quote(part, safe="") for part in key.split("/"))
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    return f"{url}/assets/{path}{query}"


def _entry_row_xpath(label: str) -> str:
    return f"//tr[td[1][normalize-space()='{label}']]"


def metadata_labels(driver) -> list[str]:
    """Labels of the metadata entries shown on the page now (first column of the tables)."""
    from selenium.webdriver.common.by import By

    return [td.text.strip() for td in driver.find_elements(By.XPATH, "//tr/td[1]") if td.text]


def wait_for_entry(driver, label: str, timeout: float = PAGE_TIMEOUT):
    """The row of metadata entry ``label`` once it is on the page."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    try:
        return _wait(driver, timeout).until(
            ec.presence_of_element_located((By.XPATH, _entry_row_xpath(label)))
        )
    except TimeoutException:
        raise AssertionError(
            f"no metadata entry {label!r} on {driver.current_url} within {timeout:.0f} s; "
            f"entries shown: {', '.join(metadata_labels(driver)) or 'none'}"
        ) from None


_IMG_STATE_JS = """
const img = arguments[0];
return {src: (img.getAttribute('src') || '').slice(0, 32), complete: img.complete,
        width: img.naturalWidth, height: img.naturalHeight};
"""


def show_markdown_image(driver, label: str, timeout: float = PAGE_TIMEOUT):
    """Open markdown entry ``label``'s ``[Show Markdown]`` dialog; the decoded ``<img>`` in it
    whose ``src`` is a ``data:image/png`` URI (waits until the PNG has decoded)."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By

    row = wait_for_entry(driver, label, timeout)
    links = row.find_elements(By.XPATH, ".//a[contains(normalize-space(), 'Show Markdown')]")
    if not links:
        raise AssertionError(
            f"metadata entry {label!r} on {driver.current_url} is not markdown: {row.text[:200]}"
        )
    links[0].click()
    selector = "[role=dialog] .dagster-markdown img[src^='data:image/png']"

    def decoded(_driver):
        # The dialog has finished opening (no fade left: screenshots show it whole) and the
        # PNG has decoded.
        if not driver.find_elements(
            By.CSS_SELECTOR, ".bp5-dialog-container.bp5-overlay-enter-done"
        ):
            return None
        for img in driver.find_elements(By.CSS_SELECTOR, selector):
            state = driver.execute_script(_IMG_STATE_JS, img)
            if state["complete"] and state["width"] > 0 and img.is_displayed():
                return img
        return None

    try:
        return _wait(driver, timeout).until(decoded)
    except TimeoutException:
        dialogs = driver.find_elements(By.CSS_SELECTOR, "[role=dialog]")
        raise AssertionError(
            f"metadata entry {label!r} on {driver.current_url}: no decoded PNG "
            f"(<img src=data:image/png...>) in its markdown dialog within {timeout:.0f} s; "
            f"dialog: {dialogs[0].text[:300] if dialogs else 'not open'}"
        ) from None


def close_dialog(driver, timeout: float = 10) -> None:
    """Close the open markdown dialog (its Close button) and wait until it is gone."""
    from selenium.webdriver.common.by import By

    buttons = driver.find_elements(
        By.XPATH, "//*[@role='dialog']//button[normalize-space()='Close']"
    )
    if not buttons:
        raise AssertionError(f"no dialog with a Close button open on {driver.current_url}")
    buttons[0].click()
    _wait(driver, timeout).until(
        lambda d: not d.find_elements(By.CSS_SELECTOR, ".bp5-dialog-container")
    )


def latest_partition(url: str, key: str) -> str:
    """The partition of the asset's latest materialization (GraphQL)."""
    query = """
    query($path: [String!]!) {
      assetOrError(assetKey: {path: $path}) {
        ... on Asset { assetMaterializations(limit: 1) { partition } }
        ... on AssetNotFoundError { message }
      }
    }
    """
    data = graphql(url, query, {"path": key.split("/")})["assetOrError"]
    events = data.get("assetMaterializations")
    if not events or not events[0]["partition"]:
        raise AssertionError(f"{key} has no partitioned materialization at {url}: {data}")
    return events[0]["partition"]


def open_forecast_map(driver, url: str, key: str, partition: str, entry: str = "map"):
    """A forecast partition's page (Partitions tab) with its ``map`` entry's picture open;
    the ``<img>``."""
    driver.get(asset_url(url, key, view="partitions", partition=partition))
    return show_markdown_image(driver, entry)


def open_scorecard(driver, url: str, key: str = "scorecard", entry: str = "scorecard"):
    """The scorecard's latest materialization (Events tab) with its picture open; the
    ``<img>``."""
    driver.get(asset_url(url, key, view="events"))
    return show_markdown_image(driver, entry)
