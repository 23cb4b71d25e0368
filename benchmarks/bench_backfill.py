"""Backfill of 28 days of 6-hourly raw_inputs partitions: wall time, per-partition overhead.

Three ways over the same 112 simulated cycles (default grid), in one run:
* plain: a Python loop calling the same data functions (read, convert, cut, atomic write);
* dagster in-process: one ``execute_in_process`` run per partition (what ``wxplat demo`` does),
  with the blocking checks;
* the per-partition overhead is (dagster - plain) / partitions.

    .venv/bin/python benchmarks/bench_backfill.py [--days 28]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=28)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp()
    os.environ["WXPLAT_HOME"] = tmp
    import dagster as dg

    import definitions
    from resources.layout import raw_inputs_relpath
    from resources.storage import Storage
    from resources.upstream import UpstreamSource
    from weather_assets.ingest.convert import subset_domain
    from weather_assets.ingest.simulate import write_simulated_cycles
    from weather_assets.partitions import time_to_partition_key
    from weather_assets.settings import load_settings

    settings = load_settings()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    n = args.days * 4
    times = [start + timedelta(hours=6 * i) for i in range(n)]
    t0 = time.perf_counter()
    write_simulated_cycles(settings.upstream_url, times[0], times[-1])
    sim_s = time.perf_counter() - t0

    up = UpstreamSource(url=settings.upstream_url)
    plain_store = Storage(f"{tmp}/plain")
    t0 = time.perf_counter()
    for t in times:
        ds = subset_domain(up.read_cycle(t), settings.bbox, settings.grid_resolution, "bench")
        plain_store.write_zarr(ds.chunk({"time": 1}), raw_inputs_relpath(settings, t))
    plain_s = time.perf_counter() - t0

    defs = definitions.build_definitions(settings)
    job = defs.resolve_implicit_global_asset_job_def()
    sel = list(
        dg.AssetSelection.assets(["raw_inputs", "simulator"]).resolve(defs.resolve_asset_graph())
    )
    instance = dg.DagsterInstance.ephemeral()
    t0 = time.perf_counter()
    for t in times:
        result = job.execute_in_process(
            partition_key=time_to_partition_key(t), instance=instance, asset_selection=sel
        )
        assert result.success
    dagster_s = time.perf_counter() - t0
    print(
        f"{n} partitions ({args.days} days, 6-hourly), 91x180 grid, 8 fields; "
        f"simulating the upstream took {sim_s:.1f} s"
    )
    print("| way | wall (s) | per partition (s) | ratio to plain |")
    print("|---|---:|---:|---:|")
    print(f"| plain loop | {plain_s:.1f} | {plain_s / n:.3f} | 1.00 |")
    print(
        f"| dagster, run per partition (+3 checks) | {dagster_s:.1f} | {dagster_s / n:.3f} | "
        f"{dagster_s / plain_s:.2f} |"
    )
    print(f"\nper-partition orchestration overhead: {(dagster_s - plain_s) / n:.3f} s")


if __name__ == "__main__":
    main()
