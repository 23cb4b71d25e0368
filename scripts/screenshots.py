"""Screenshots of the Dagster UI on a demo instance, for docs/ (rerun after UI changes).

    .venv/bin/python scripts/screenshots.py [--home DIR] [--cycles N] [--out DIR]

Runs the demo into the platform home (only what is missing: an existing demo instance is
reused; default: ``.wxplat``, the one `make demo` fills and `make dev` serves), starts
``dagster-webserver`` on it (127.0.0.1, a free port), opens the pages in headless Chromium
(Debian's ``chromium`` + ``chromium-driver``: `make browser`) and writes

- ``asset-graph.png``: the global asset lineage, every group expanded;
- ``forecast-partition.png``: a forecast partition of the first non-baseline model, its
  ``map`` metadata picture open;
- ``scorecard.png``: the scorecard's latest materialization, its picture open.

Then it stops the webserver and the browser. The models are the shipped registry's unless
``--registry`` (or ``WXPLAT_REGISTRY_DIR``) names another.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.browser import (  # noqa: E402  (needs ROOT on sys.path)
    close_dialog,
    console_errors,
    dismiss_community_dialog,
    latest_partition,
    open_asset_graph,
    open_forecast_map,
    open_scorecard,
    start_browser,
    wait_settled,
)
from tests.e2e.webserver import demo_instance  # noqa: E402

BASELINE = "persistence"


def take(home: Path, cycles: int, out: Path, registry: Path | None) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    print(
        f"demo instance in {home} ({cycles} cycles; only what is missing is run; "
        f"its output: {home / 'demo.log'}) ..."
    )
    started = time.monotonic()
    with demo_instance(home, cycles=cycles, registry_dir=registry) as demo:
        print(f"webserver at {demo.url} after {time.monotonic() - started:.0f} s")
        models = [m for m in demo.models if m != BASELINE] or list(demo.models)
        model = models[0]
        dismiss_community_dialog(demo.url)
        driver = start_browser()
        try:
            keys = ["raw_inputs/simulator", f"forecast/{model}", f"verification/{model}"]
            open_asset_graph(driver, demo.url, [*keys, "scorecard"])
            wait_settled(driver)
            written.append(_save(driver, out / "asset-graph.png"))

            key = f"forecast/{model}"
            partition = latest_partition(demo.url, key)
            open_forecast_map(driver, demo.url, key, partition)
            written.append(_save(driver, out / "forecast-partition.png"))
            close_dialog(driver)

            open_scorecard(driver, demo.url)
            written.append(_save(driver, out / "scorecard.png"))
            close_dialog(driver)
            errors = console_errors(driver)
            if errors:
                print("errors in the browser console:\n" + "\n".join(errors), file=sys.stderr)
        finally:
            driver.quit()
    return written


def _save(driver, path: Path) -> Path:
    if not driver.save_screenshot(str(path)):
        raise RuntimeError(f"the browser could not write {path}")
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--home",
        type=Path,
        default=ROOT / ".wxplat",
        help="platform home (WXPLAT_HOME) of the demo instance (default: .wxplat)",
    )
    parser.add_argument("--cycles", type=int, default=16, help="demo cycles (default 16)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="folder (default docs/)")
    parser.add_argument(
        "--registry",
        type=Path,
        default=os.environ.get("WXPLAT_REGISTRY_DIR") or None,
        help="model registry folder (default: the shipped one)",
    )
    args = parser.parse_args(argv)
    take(args.home.resolve(), args.cycles, args.out.resolve(), args.registry)
    return 0


if __name__ == "__main__":
    sys.exit(main())
