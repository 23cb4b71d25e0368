"""Backfills: wall time and per-partition overhead of raw_inputs and forecast backfills.

Three parts, each a table (``--what``, default all):

* ``raw_inputs``: 28 days of 6-hourly partitions (default grid). A plain Python loop calling
  the same data functions (read, convert, cut, atomic write) against one ``execute_in_process``
  run per partition (what ``wxplat demo`` does), with the blocking checks.
* ``forecast``: a reforecast of N cycles (``--cycles``, 32) of an fno-demo-sized FNO (its
  hyper-parameters and forcings, seeded random weights; default 91x180 grid, 72 h every 6 h):

  - plain loop: load the artifact and build the network once, then for each cycle read its
    normalized input, roll out and write with the platform's writer (``run_forecast``), no
    staging, no checks, no Dagster;
  - Dagster, one run per partition (how a backfill ran before ``BackfillPolicy.multi_run``);
  - Dagster, runs of K partitions (``--k``, 16: the registry default), as the backfill
    daemon launches them for ``BackfillPolicy.multi_run(K)``: the artifact loaded once per
    run, each cycle staged, checked and committed on its own, one materialization and check
    set per partition;
  - the same with ``batch_cycles`` = B (``--batch``, 4): B cycles per network call.

  The per-cycle overhead is (way - plain) / N of the time spent *outside* the forecast run
  (``run_forecast`` / ``run_forecasts``: model steps and writes, the same work in every way),
  both measured in the same run: on a shared 2-core machine the model's own time swings
  with the load by more than the overhead being measured. Runs are in process on an
  in-memory instance, so a launched run's process start is not counted (it is paid per run:
  N times one by one, N / K times in runs of K), nor the instance's disk.
* ``network``: the fno-demo network alone, B cycles of S steps in one batch
  (``rollout_cycles``) against the same cycles one by one (``rollout``), forcings included:
  whether batching pays on this machine.

Every way is warmed up once, then timed ``--repeats`` times interleaved (each round in another
order); the best is kept.

    .venv/bin/python benchmarks/bench_backfill.py [--what forecast] [--cycles 32] [--k 16]
        [--batch 4] [--repeats 3] [--days 28] [--device cpu]
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

HP = {"n_modes": [16, 32], "hidden_channels": 16, "n_layers": 3}  # the fno-demo network
START = datetime(2026, 1, 1, tzinfo=UTC)


def raw_inputs_rows(days: int, tmp: str) -> None:
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
    n = days * 4
    times = [START + timedelta(hours=6 * i) for i in range(n)]
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
        f"\nraw_inputs: {n} partitions ({days} days, 6-hourly), 91x180 grid, 8 fields; "
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


# -- forecast backfill ------------------------------------------------------------------------


class ForecastBench:
    """N cycles of raw and normalized inputs, an fno-demo-sized artifact and its assets."""

    def __init__(self, tmp: str, cycles: int, k: int, batch: int, device: str | None) -> None:
        import dagster as dg
        import yaml

        from model_registry.registry import DEFAULT_REGISTRY_DIR, load_spec
        from model_registry.spec import RuntimeSpec
        from model_registry.training import untrained_artifact
        from resources.layout import raw_inputs_relpath
        from resources.storage import Storage, StorageResource
        from resources.upstream import UpstreamSource
        from weather_assets.ingest.convert import subset_domain
        from weather_assets.ingest.simulate import write_simulated_cycles
        from weather_assets.partitions import analysis_time_partitions, time_to_partition_key
        from weather_assets.settings import load_settings
        from weather_assets.simulator import DEFAULT_GRID

        self.tmp, self.device = Path(tmp), device
        self.settings = load_settings({"WXPLAT_HOME": tmp})
        self.times = [START + timedelta(hours=6 * i) for i in range(cycles)]
        self.keys = [time_to_partition_key(t) for t in self.times]
        store = Storage(self.settings.storage_root)
        write_simulated_cycles(self.settings.upstream_url, self.times[0], self.times[-1])
        up = UpstreamSource(url=self.settings.upstream_url)
        for t in self.times:
            ds = up.read_cycle(t)
            ds = subset_domain(ds, self.settings.bbox, self.settings.grid_resolution, "bench")
            store.write_zarr(ds.chunk({"time": 1}), raw_inputs_relpath(self.settings, t))
        artifact = untrained_artifact(
            self.tmp / "fno.zip",
            grid=DEFAULT_GRID,
            hyperparameters=HP,
            forcings=["cos_local_hour", "sin_local_hour"],
            name="bench-fno",
            version="bench",
        )
        entry = yaml.safe_load((DEFAULT_REGISTRY_DIR / "fno-demo.yaml").read_text())
        entry["artifact"] = {"uri": str(artifact)}
        entry.pop("training", None)
        registry = self.tmp / "registry"
        registry.mkdir(exist_ok=True)
        self.specs = {}
        for name, runtime in (("one", {"batch_cycles": 1}), ("batch", {"batch_cycles": batch})):
            if "backfill_partitions" in RuntimeSpec.model_fields:  # absent before issue 12
                entry["runtime"] = {**entry["runtime"], "backfill_partitions": k, **runtime}
            (registry / f"{name}.yaml").write_text(yaml.safe_dump(entry))
            self.specs[name] = load_spec(registry / f"{name}.yaml")
        parts = analysis_time_partitions(self.keys[0])
        self.assets = {}
        for name, spec in self.specs.items():
            from weather_assets.forecast.assets import build_model_assets

            self.assets[name] = build_model_assets(
                spec,
                partitions_def=parts,
                raw_inputs_key=dg.AssetKey(["raw_inputs", "simulator"]),
                settings=self.settings,
            )
        self.spec = self.specs["one"]
        self.resources = {"storage": StorageResource(root=self.settings.storage_root)}
        # In memory, as the raw_inputs rows: what is measured is the platform, not the disk
        # under the instance's event log (SQLite on disk adds ~5 ms per event here, and a
        # cycle records 5: planned, materialized, 3 checks).
        self.instance = dg.DagsterInstance.ephemeral()
        self.k = k
        # The normalized inputs of every cycle, once (not timed: every way reads them).
        for key in self.keys:
            self._materialize("one", partition_key=key, what="normalized")

    def _materialize(self, name: str, *, what: str = "forecast", **kw) -> None:
        import dagster as dg

        from weather_assets.keys import forecast_key, normalized_key

        key = (forecast_key if what == "forecast" else normalized_key)(self.spec.name)
        config = {"force": True, "device": self.device}
        result = dg.materialize(
            self.assets[name],
            instance=self.instance,
            resources=self.resources,
            selection=[key],
            run_config={"ops": {"forecast__fno_demo": {"config": config}}}
            if what == "forecast"
            else None,
            **kw,
        )
        assert result.success

    def clear(self) -> None:
        """Remove every forecast store (not timed): each way writes a fresh reforecast."""
        import shutil

        for path in Path(self.settings.storage_root).glob("**/forecast.zarr"):
            shutil.rmtree(path)
        shutil.rmtree(self.tmp / "plain", ignore_errors=True)

    def plain(self) -> None:
        """Load once, then roll out and write every cycle, as a script would."""
        from model_registry.architectures import build_model
        from model_registry.resolve import load_model_artifact, model_config_of
        from resources.forecast_run import run_forecast
        from resources.layout import store_relpath
        from resources.storage import Storage

        spec, settings = self.spec, self.settings
        loaded = load_model_artifact(spec, settings)
        model = build_model(
            spec.architecture,
            loaded.manifest.architecture.hyperparameters,
            spec.in_channels,
            len(spec.output_features),
            state_dict=loaded.state_dict,
        )
        store = Storage(settings.storage_root)
        timed = InForecast.wrap(run_forecast)
        for t, key in zip(self.times, self.keys, strict=True):
            rel = store_relpath(spec, settings, t, model_config_of(loaded), "normalized")
            timed(
                store.open_zarr(rel)["state"].load(),
                model,
                loaded.stats,
                steps=spec.steps,
                timestep=spec.timestep,
                stores=[str(self.tmp / "plain" / key / "forecast.zarr")],
                grid=loaded.manifest.grid,
                device=self.device,
                forcings=spec.forcings,
            )

    def per_partition(self) -> None:
        for key in self.keys:
            self._materialize("one", partition_key=key)

    def runs_of_k(self, name: str = "one") -> None:
        for i in range(0, len(self.keys), self.k):
            chunk = self.keys[i : i + self.k]
            tags = {
                "dagster/asset_partition_range_start": chunk[0],
                "dagster/asset_partition_range_end": chunk[-1],
            }
            self._materialize(name, tags=tags)


class InForecast:
    """Seconds spent inside the forecast run itself (``run_forecast``: model steps and writes).

    Patched into ``resources.runners`` for the Dagster ways and timed around the call in the
    plain loop: the rest of a way's wall time (reading inputs, staging, checks, commits,
    Dagster) is measured in the same run as the model's own time, so the model's (noisy, on
    a shared 2-core machine) compute cancels out of the overhead column.
    """

    seconds = 0.0

    @classmethod
    def wrap(cls, fn):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                cls.seconds += time.perf_counter() - t0

        return timed

    @classmethod
    def install(cls) -> None:
        import resources.runners as runners

        for name in ("run_forecast", "run_forecasts"):  # run_forecasts: since issue 12
            if hasattr(runners, name):
                setattr(runners, name, cls.wrap(getattr(runners, name)))


class InChecks(InForecast):
    """Seconds spent reading the staged forecast back and checking it (before its commit)."""

    seconds = 0.0

    @classmethod
    def install(cls) -> bool:
        import weather_assets.forecast.assets as assets

        if not hasattr(assets, "_check_staged"):  # before issue 12 the checks were inline
            return False
        assets._check_staged = cls.wrap(assets._check_staged)
        return True


def forecast_rows(args, tmp: str) -> None:
    ways = [w.strip() for w in args.ways.split(",") if w.strip()]
    t0 = time.perf_counter()
    bench = ForecastBench(tmp, args.cycles, args.k, args.batch, args.device)
    setup_s = time.perf_counter() - t0
    InForecast.install()
    checks_timed = InChecks.install()
    runs = {
        "plain": ("plain loop (load once, roll out, same writer)", bench.plain),
        "per-partition": ("dagster, one run per partition", bench.per_partition),
        "runs-of-k": (f"dagster, runs of K={args.k} partitions", bench.runs_of_k),
        "runs-of-k-batched": (
            f"dagster, runs of K={args.k}, batch_cycles={args.batch}",
            lambda: bench.runs_of_k("batch"),
        ),
    }
    todo = [w for w in runs if w in ways]
    for way in todo:  # warm-up: imports, caches, the first run of each way
        bench.clear()
        runs[way][1]()
    wall = {w: float("inf") for w in todo}
    outside = {w: float("inf") for w in todo}
    checks = {w: float("inf") for w in todo}
    inside = {w: float("inf") for w in todo}
    for r in range(args.repeats):
        # Interleaved, and each round in another order, so that drifts in the machine's load
        # (it is shared) hit every way alike.
        for way in todo[r % len(todo) :] + todo[: r % len(todo)]:
            bench.clear()
            InForecast.seconds = InChecks.seconds = 0.0
            t0 = time.perf_counter()
            runs[way][1]()
            seconds = time.perf_counter() - t0
            wall[way] = min(wall[way], seconds)
            outside[way] = min(outside[way], seconds - InForecast.seconds)
            checks[way] = min(checks[way], InChecks.seconds)
            inside[way] = min(inside[way], InForecast.seconds)
    n = args.cycles
    spec = bench.spec
    print(
        f"\nforecast backfill: {n} cycles of an fno-demo-sized FNO (91x180, {spec.steps} steps "
        f"of {spec.timestep}, forcings {', '.join(spec.forcings)}); best of {args.repeats} "
        f"interleaved after a warm-up; setup {setup_s:.0f} s"
    )
    print(
        "| way | wall (s) | in the forecast run, per cycle (s) | outside it, per cycle (s) | "
        "overhead per cycle vs plain (s) | of which read-back + checks (s) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for way in todo:
        over = (
            f"{(outside[way] - outside['plain']) / n:+.3f}"
            if "plain" in outside and way != "plain"
            else "-"
        )
        check = f"{checks[way] / n:.3f}" if checks_timed and way != "plain" else "-"
        print(
            f"| {runs[way][0]} | {wall[way]:.1f} | {inside[way] / n:.3f} | "
            f"{outside[way] / n:.3f} | {over} | {check} |"
        )
    print(
        "\n(in the forecast run: inside run_forecast / run_forecasts, the model steps and the "
        "writes, the same work in every way; outside it: the rest of the wall time, measured "
        "in the same run. On a shared machine the model's time swings with the load, so "
        "compare ways by the overhead column, not by the wall time.)"
    )


# -- the network alone, batched or not -----------------------------------------------------


def network_rows(args) -> None:
    import numpy as np
    import torch

    from model_registry.architectures import new_model
    from weather_assets.forecast.normalize import identity_stats
    from weather_assets.forecast.rollout import rollout, rollout_cycles, select_device
    from weather_assets.simulator import DEFAULT_GRID

    forcings = ["cos_local_hour", "sin_local_hour"]
    features = [f"f{i}" for i in range(8)]
    stats = identity_stats(features)
    stats["state__train__diff_std"] = stats["state__train__diff_std"] * np.float32(0.01)
    torch.manual_seed(0)
    model = new_model("fno", HP, len(features) + 2, len(features)).eval()
    dev = select_device(args.device)
    lat, lon = DEFAULT_GRID.latitude, DEFAULT_GRID.longitude
    rng = np.random.default_rng(0)
    steps = args.network_steps
    grid_kw = dict(features=features, timestep=timedelta(hours=6), device=dev, forcings=forcings)
    grid_kw.update(latitude=lat, longitude=lon)
    print(
        f"\nnetwork alone: fno-demo network ({HP}), {lat.size}x{lon.size}, {steps} steps per "
        f"cycle, forcings; {dev}; best of {args.repeats} interleaved after a warm-up"
    )
    print(
        "| cycles | one by one (s per cycle) | batched (s per cycle) | batched / one by one "
        "(best) | batched / one by one (median of rounds) |"
    )
    print("|---:|---:|---:|---:|---:|")
    for b in args.network_batches:
        x0 = rng.standard_normal((b, len(features), lat.size, lon.size)).astype(np.float32)
        times = [START + timedelta(hours=6 * i) for i in range(b)]

        def one_by_one(x0=x0, times=times) -> None:
            for c in range(len(times)):
                for _ in rollout(x0[c], model, stats, steps, analysis_time=times[c], **grid_kw):
                    pass

        def batched(x0=x0, times=times) -> None:
            for _ in rollout_cycles(x0, model, stats, steps, analysis_times=times, **grid_kw):
                pass

        one_by_one(), batched()  # warm-up
        seconds: dict[str, list[float]] = {"one": [], "batch": []}
        for r in range(args.repeats):
            pair = (("one", one_by_one), ("batch", batched))
            for name, fn in pair if r % 2 == 0 else pair[::-1]:
                t0 = time.perf_counter()
                fn()
                seconds[name].append(time.perf_counter() - t0)
        one, batch = min(seconds["one"]), min(seconds["batch"])
        # Each round's two ways ran back to back, under about the same load: their ratio is
        # steadier than the ratio of two bests taken minutes apart.
        paired = float(np.median(np.divide(seconds["batch"], seconds["one"])))
        print(f"| {b} | {one / b:.3f} | {batch / b:.3f} | {batch / one:.2f} | {paired:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--what", choices=["all", "raw_inputs", "forecast", "network"], default="all"
    )
    parser.add_argument("--days", type=int, default=28, help="raw_inputs: days of cycles")
    parser.add_argument("--cycles", type=int, default=32, help="forecast: cycles (N)")
    parser.add_argument("--k", type=int, default=16, help="forecast: partitions per run")
    parser.add_argument("--batch", type=int, default=4, help="forecast: cycles per network call")
    parser.add_argument(
        "--ways",
        default="plain,per-partition,runs-of-k,runs-of-k-batched",
        help="forecast: which ways to time (comma-separated)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: CUDA if any)")
    parser.add_argument("--network-steps", type=int, default=4)
    parser.add_argument(
        "--network-batches", type=lambda s: [int(v) for v in s.split(",")], default=[4, 16]
    )
    args = parser.parse_args()
    tmp = tempfile.mkdtemp()
    os.environ["WXPLAT_HOME"] = tmp
    if args.what in ("all", "raw_inputs"):
        raw_inputs_rows(args.days, tmp)
    if args.what in ("all", "forecast"):
        forecast_rows(args, tempfile.mkdtemp(dir=tmp))
    if args.what in ("all", "network"):
        network_rows(args)


if __name__ == "__main__":
    main()
