"""Ingest of one cycle: the platform's raw_inputs path vs plain ``open_dataset().to_zarr()``.

A simulated 0.25 degree global cycle (721x1440, 13 levels) is written once as NetCDF; each
variant then runs in its own process, interleaved with the others (best of ``--repeat``).
Imports happen before the clock in every variant, ``dask.array``, ``zarr`` and xarray's file
backends included (xarray imports them on first use: 0.8, 0.15 and 0.3 s here; a tiny NetCDF
file is opened before the clock for the backends): they are a per-process cost, not a
per-cycle one. Each process reports its own peak RSS (the kernel's VmHWM, not the parent's
inherited maximum) and its RSS when the clock starts; their difference is the memory the
ingest itself needed, compared with the size of one cycle (the goal: at most 1.5x).

The platform variant is what ``raw_inputs`` does: read the cycle through the upstream
source, cut it to the domain, write it with ``Storage.write_zarrs`` (staged, hashed, committed;
one chunk per time step). Its write step is timed on its own, against a third way, run
interleaved with the others in its own process: the cycle's arrays (read before its clock)
written to one file with a plain ``numpy.tofile``, the disk's sequential write bandwidth
measured in the same run. Both write clocks end with ``os.sync()`` (and start after one):
they are timed to the disk, not to the page cache (a page-cache copy is a memcpy, whose
speed swings 2-5x from run to run here). The whole-ingest ratio against plain is unsynced.

    .venv/bin/python benchmarks/bench_ingest.py [--step 0.25] [--repeat 3] [--codecs]
        [--baseline-root DIR] [--malloc-trim]

``--codecs`` adds platform runs with the zarr compressor set to none, blosc-lz4 (zarr's
default, level 5), blosc-lz4 level 1 and blosc-zstd level 1, and a table of their size and
throughput. ``--baseline-root DIR`` adds the platform path of another checkout (say a git
worktree of the previous main), interleaved in the same run: a before/after comparison.
``--malloc-trim`` runs every variant with ``MALLOC_TRIM_THRESHOLD_=65536`` (glibc returns freed
memory to the system at once instead of keeping up to 2x its dynamic mmap threshold, 64 MB
at most, in each thread's arena: dask's advice for its workers).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

T = datetime(2026, 1, 1, 6, tzinfo=UTC)
LEVELS = (50, 100, 150, 200, 250, 300, 400, 500, 600, 700, 850, 925, 1000)
CODECS = ("none", "blosc-lz4-5", "blosc-lz4-1", "blosc-zstd-1")


def _compressors(codec: str) -> tuple | None:
    """The zarr ``compressors`` encoding of a codec name (None: uncompressed)."""
    from numcodecs import Blosc

    if codec == "none":
        return None
    _, cname, level = codec.split("-")
    return (Blosc(cname=cname, clevel=int(level), shuffle=Blosc.SHUFFLE),)


def _variant(name: str, src: str, out: str, step: float, codec: str | None, tiny: str) -> dict:
    # Imports before the clock for every way: the platform's heavier imports (dagster, torch
    # through resources.layout, dask) are a per-process cost, not a per-cycle one.
    t_import = time.perf_counter()
    import dask.array  # noqa: F401  (xarray imports it on first use: outside both clocks)
    import numpy as np
    import xarray as xr
    import zarr  # noqa: F401  (likewise, on the first to_zarr)

    from resources.storage import Storage
    from resources.upstream import UpstreamSource
    from weather_assets.ingest.convert import subset_domain

    xr.open_dataset(tiny).load().close()  # the backend's lazy imports (h5py, cfgrib ...)
    import_s = time.perf_counter() - t_import
    rss_start = _rss_mb("VmRSS")
    result: dict = {"variant": name, "import_s": import_s}
    start = time.perf_counter()
    if name == "plain":
        xr.open_dataset(src).to_zarr(out, mode="w", zarr_format=2, consolidated=True)
        result["seconds"] = time.perf_counter() - start
    elif name == "tofile":
        with xr.open_dataset(src) as raw:
            arrays = [np.asarray(v.values) for v in raw.data_vars.values()]
        os.makedirs(out, exist_ok=True)
        os.sync()  # nothing else's dirty pages inside the clock
        start = time.perf_counter()
        with open(f"{out}/cycle.bin", "wb") as f:
            for a in arrays:
                a.tofile(f)
        os.sync()  # timed to the disk, not to the page cache
        result["seconds"] = time.perf_counter() - start
        result["logical_bytes"] = sum(a.nbytes for a in arrays)
    else:
        ds = UpstreamSource(kind="netcdf", url=src).read_cycle(T)
        bbox = {"lon_min": 0, "lat_min": -90, "lon_max": 360 - step, "lat_max": 90}
        ds = subset_domain(ds, bbox, {"dx": step, "dy": step, "units": "deg"}, source=src)
        encoding = (
            {str(v): {"compressors": _compressors(codec)} for v in ds.data_vars} if codec else None
        )
        storage, rel = Storage(out), "cycle/analysis.zarr"
        os.sync()
        t_write = time.perf_counter()
        if "chunks" in inspect.signature(storage.write_zarrs).parameters:
            written = storage.write_zarrs({rel: ds}, encoding, chunks={"time": 1})[0]
        else:  # an older checkout (--baseline-root): the call raw_inputs made then
            written = storage.write_zarr(ds.chunk({"time": 1}), rel, encoding)
        end = time.perf_counter()
        os.sync()  # the write step timed to the disk, as the tofile way
        result.update(
            seconds=end - start,
            write_s=time.perf_counter() - t_write,
            logical_bytes=int(sum(v.nbytes for v in ds.data_vars.values())),
            store_bytes=written.nbytes,
        )
    result["peak_mb"], result["start_mb"] = _rss_mb("VmHWM"), rss_start
    return result


def _rss_mb(field: str) -> float:
    """This process's RSS (VmRSS) or peak RSS (VmHWM: reset at exec, unlike getrusage's
    ru_maxrss, which a child inherits from the parent that forked it), in MB (1e6 bytes)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024 / 1e6
    return float("nan")


def _run(
    name: str, src: str, out: str, step: float, code_root: Path, codec: str | None, env: dict
) -> dict:
    cmd = [sys.executable, __file__, "--variant", name, "--src", src, "--out", out]
    cmd += ["--step", str(step), "--code-root", str(code_root)]
    cmd += ["--codec", codec] if codec else []
    res = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if res.returncode:
        raise RuntimeError(f"{name} failed:\n{res.stderr[-3000:]}")
    shutil.rmtree(out, ignore_errors=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--step", type=float, default=0.25)
    parser.add_argument("--repeat", type=int, default=3, help="Runs of each way (best kept).")
    parser.add_argument("--codecs", action="store_true", help="Also compare zarr compressors.")
    parser.add_argument("--baseline-root", type=Path, help="Another checkout to compare with.")
    parser.add_argument(
        "--malloc-trim", action="store_true", help="MALLOC_TRIM_THRESHOLD_=65536 for every way."
    )
    parser.add_argument("--variant")
    parser.add_argument("--src")
    parser.add_argument("--out")
    parser.add_argument("--codec")
    parser.add_argument("--code-root", type=Path, default=ROOT)
    args = parser.parse_args()
    sys.path.insert(0, str(args.code_root.resolve()))
    if args.variant:
        tiny = str(Path(args.src).with_name("tiny.nc"))
        print(json.dumps(_variant(args.variant, args.src, args.out, args.step, args.codec, tiny)))
        return
    from weather_assets.simulator import Grid, simulate_state

    # (label, variant, code root, codec)
    ways = [
        ("plain", "plain", ROOT, None),
        ("platform", "platform", ROOT, None),
        ("tofile", "tofile", ROOT, None),
    ]
    if args.baseline_root:
        ways.append((f"platform @ {args.baseline_root}", "platform", args.baseline_root, None))
    if args.codecs:
        ways += [(f"platform, {c}", "platform", ROOT, c) for c in CODECS]
    with tempfile.TemporaryDirectory() as tmp:
        grid = Grid(lat_min=-90, lat_max=90, lon_min=0, lon_max=360 - args.step, step=args.step)
        t0 = time.perf_counter()
        ds = simulate_state(T, grid=grid, levels=LEVELS)
        sim_s = time.perf_counter() - t0
        cycle_mb = sum(v.nbytes for v in ds.data_vars.values()) / 1e6
        src = f"{tmp}/cycle.nc"
        ds.to_netcdf(src, engine="h5netcdf")
        ds.isel(latitude=slice(0, 2), longitude=slice(0, 2)).to_netcdf(f"{tmp}/tiny.nc")
        env = dict(os.environ, **({"MALLOC_TRIM_THRESHOLD_": "65536"} if args.malloc_trim else {}))
        size_mb = Path(src).stat().st_size / 1e6
        runs: dict[str, list[dict]] = {label: [] for label, *_ in ways}
        for _ in range(args.repeat):  # interleaved: every way under the same conditions
            for i, (label, variant, code_root, codec) in enumerate(ways):
                out = f"{tmp}/out{i}"
                runs[label].append(_run(variant, src, out, args.step, code_root, codec, env))
    best = {label: min(rs, key=lambda r: r["seconds"]) for label, rs in runs.items()}
    base, tofile = best.pop("plain"), best.pop("tofile")
    best = {"plain": base, **best}
    print(
        f"grid {ds.sizes['latitude']}x{ds.sizes['longitude']}, {len(LEVELS)} levels, "
        f"{len(ds.data_vars)} variables: one cycle is {cycle_mb:.0f} MB of float32, NetCDF "
        f"{size_mb:.0f} MB; simulating it took {sim_s:.2f} s"
    )
    print(
        f"best of {args.repeat} interleaved runs of each, each in its own process; memory is "
        "the process's peak RSS minus its RSS when the clock started (imports done)"
        + ("; MALLOC_TRIM_THRESHOLD_=65536" if args.malloc_trim else "")
    )
    print(
        "| variant | seconds | ratio to plain | peak RSS (MB) | memory (MB) | memory / cycle "
        "| imports (s) |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, r in best.items():
        mem = r["peak_mb"] - r["start_mb"]
        print(
            f"| {label} | {r['seconds']:.2f} | {r['seconds'] / base['seconds']:.2f} | "
            f"{r['peak_mb']:.0f} | {mem:.0f} | {mem / cycle_mb:.2f} | {r['import_s']:.2f} |"
        )
    print()
    tofile_mbs = tofile["logical_bytes"] / 1e6 / tofile["seconds"]
    print(
        "write throughput: the platform's write step (stage, hash, encode, write, commit) in MB "
        "of the cycle's data per second, against a numpy tofile of the same arrays in the same "
        f"run ({tofile['logical_bytes'] / 1e6:.0f} MB in {tofile['seconds']:.3f} s: "
        f"{tofile_mbs:.0f} MB/s; best of each), both timed to the disk (os.sync in the clock)"
    )
    print("| variant | cycle MB | store MB | write (s) | MB/s | tofile MB/s | % of tofile |")
    print("|---|---|---|---|---|---|---|")
    for label, rs in runs.items():
        if "write_s" not in rs[0]:
            continue
        w = min(rs, key=lambda r: r["write_s"])
        mb = w["logical_bytes"] / 1e6
        print(
            f"| {label} | {mb:.0f} | {w['store_bytes'] / 1e6:.0f} | {w['write_s']:.2f} | "
            f"{mb / w['write_s']:.0f} | {tofile_mbs:.0f} | "
            f"{100 * mb / w['write_s'] / tofile_mbs:.0f} % |"
        )


if __name__ == "__main__":
    main()
