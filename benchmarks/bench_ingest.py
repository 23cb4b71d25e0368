"""Ingest of one cycle: the platform's raw_inputs path vs plain ``open_dataset().to_zarr()``.

A simulated 0.25 degree global cycle (721x1440, 13 levels, 8+ variables) is written once as
NetCDF; each variant then runs in its own process, with its imports before the clock, and
reports that process's own peak RSS (the kernel's VmHWM, not the parent's inherited maximum).

    .venv/bin/python benchmarks/bench_ingest.py [--step 0.25] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

T = datetime(2026, 1, 1, 6, tzinfo=UTC)
LEVELS = (50, 100, 150, 200, 250, 300, 400, 500, 600, 700, 850, 925, 1000)


def _variant(name: str, src: str, out: str, step: float) -> dict:
    # Imports happen before the clock for both ways: the platform's heavier imports (dagster,
    # dask) are a per-process cost, not a per-cycle one.
    import xarray as xr

    from resources.storage import Storage
    from resources.upstream import UpstreamSource
    from weather_assets.ingest.convert import subset_domain

    start = time.perf_counter()
    if name == "plain":
        xr.open_dataset(src).to_zarr(out, mode="w", zarr_format=2, consolidated=True)
    else:
        ds = UpstreamSource(kind="netcdf", url=src).read_cycle(T)
        bbox = {"lon_min": 0, "lat_min": -90, "lon_max": 360 - step, "lat_max": 90}
        ds = subset_domain(ds, bbox, {"dx": step, "dy": step, "units": "deg"}, source=src)
        Storage(out).write_zarr(ds.chunk({"time": 1}), "cycle/analysis.zarr")
    seconds = time.perf_counter() - start
    return {"variant": name, "seconds": seconds, "peak_mb": _peak_rss_mb()}


def _peak_rss_mb() -> float:
    """This process's peak RSS as the kernel counts it (VmHWM: reset at exec, unlike
    getrusage's ru_maxrss, which a child inherits from the parent that forked it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--step", type=float, default=0.25)
    parser.add_argument("--repeat", type=int, default=3, help="Runs of each way (best kept).")
    parser.add_argument("--variant")
    parser.add_argument("--src")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(_variant(args.variant, args.src, args.out, args.step)))
        return
    from weather_assets.simulator import Grid, simulate_state

    with tempfile.TemporaryDirectory() as tmp:
        grid = Grid(lat_min=-90, lat_max=90, lon_min=0, lon_max=360 - args.step, step=args.step)
        t0 = time.perf_counter()
        ds = simulate_state(T, grid=grid, levels=LEVELS)
        sim_s = time.perf_counter() - t0
        src = f"{tmp}/cycle.nc"
        ds.to_netcdf(src, engine="h5netcdf")
        size_mb = Path(src).stat().st_size / 1e6
        rows = []
        for name in ("plain", "platform") * args.repeat:  # interleaved: same conditions
            out = f"{tmp}/{name}"
            res = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--variant",
                    name,
                    "--src",
                    src,
                    "--out",
                    out,
                    "--step",
                    str(args.step),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
    rows = [
        min((r for r in rows if r["variant"] == name), key=lambda r: r["seconds"])
        for name in ("plain", "platform")
    ]
    base = rows[0]
    print(
        f"grid {ds.sizes['latitude']}x{ds.sizes['longitude']}, {len(LEVELS)} levels, "
        f"{len(ds.data_vars)} variables, NetCDF {size_mb:.0f} MB; simulating it took {sim_s:.2f} s"
    )
    print(f"best of {args.repeat} runs of each, each in its own process")
    print("| variant | seconds | ratio to plain | peak RSS (MB) |")
    print("|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['variant']} | {r['seconds']:.2f} | {r['seconds'] / base['seconds']:.2f} | "
            f"{r['peak_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()
