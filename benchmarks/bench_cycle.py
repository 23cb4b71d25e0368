"""End-to-end latency of one cycle, new data to all verification inputs in storage.

For the demo models (persistence and fno-demo, default 91x180 grid, 72 h): ingest the new
cycle, normalize it per model and run every forecast. Three ways over the same cycle:

* plain: the same library calls in one Python script, no Dagster;
* dagster in-process: one ``execute_in_process`` run (assets + their checks);
* dagster CLI: ``dagster asset materialize`` (multiprocess executor, a process per step),
  which is what a launched run costs locally (the sensor tick interval comes on top).

    .venv/bin/python benchmarks/bench_cycle.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
T = datetime(2026, 1, 2, 6, tzinfo=UTC)
KEY = "2026-01-02T0600Z"


def _plain(settings, specs, root: str) -> None:
    from contextlib import ExitStack

    import numpy as np

    from model_registry.architectures import build_model
    from model_registry.resolve import load_model_artifact, model_config_of
    from resources.forecast_run import run_forecast
    from resources.layout import raw_inputs_relpath, store_relpath
    from resources.storage import Storage
    from resources.upstream import UpstreamSource
    from weather_assets.forecast.normalize import (
        FEATURE_DIM,
        identity_stats,
        stack_features,
        standardize,
    )
    from weather_assets.ingest.convert import subset_domain

    store = Storage(root)
    raw = UpstreamSource(url=settings.upstream_url).read_cycle(T)
    raw = subset_domain(raw, settings.bbox, settings.grid_resolution, "bench")
    store.write_zarr(raw.chunk({"time": 1}), raw_inputs_relpath(settings, T))
    for spec in specs:
        loaded = load_model_artifact(spec, settings)
        stats = loaded.stats if loaded is not None else identity_stats(spec.input_features)
        z = standardize(stack_features(raw, spec.input_features), stats)
        z = z.assign_coords({FEATURE_DIM: np.asarray(spec.input_features, dtype=object)})
        rel = store_relpath(spec, settings, T, model_config_of(loaded), "normalized")
        store.write_zarr(z.to_dataset(name="state"), rel)
        model = build_model(
            spec.architecture,
            loaded.manifest.architecture.hyperparameters if loaded else {},
            spec.in_channels,
            len(spec.output_features),
            state_dict=loaded.state_dict if loaded else None,
        )
        with ExitStack() as stack:
            url = stack.enter_context(
                store.staged_zarr(
                    store_relpath(spec, settings, T, model_config_of(loaded), "forecast")
                )
            )
            run_forecast(
                z,
                model,
                stats,
                steps=spec.steps,
                timestep=spec.timestep,
                stores=[url],
                grid=loaded.manifest.grid if loaded else None,
                forcings=spec.forcings,
            )


def main() -> None:
    home = tempfile.mkdtemp()
    os.environ["WXPLAT_HOME"] = home
    os.environ["DAGSTER_HOME"] = f"{home}/dagster"
    Path(os.environ["DAGSTER_HOME"]).mkdir()
    import dagster as dg

    import definitions
    from model_registry.registry import load_registry
    from weather_assets.backfill import materialize_command
    from weather_assets.demo import _ensure_demo_artifacts
    from weather_assets.ingest.simulate import write_simulated_cycles
    from weather_assets.keys import forecast_key, normalized_key, raw_inputs_key
    from weather_assets.settings import load_settings

    settings = load_settings()
    specs = [s for s in load_registry(settings.registry_dir) if s.enabled]
    _ensure_demo_artifacts(specs, print)
    write_simulated_cycles(settings.upstream_url, T, T)

    keys = [raw_inputs_key(settings.upstream_name)]
    keys += [k(s.name) for s in specs for k in (normalized_key, forecast_key)]

    def in_process(root: str) -> None:
        rooted = load_settings({**os.environ, "WXPLAT_STORAGE_ROOT": root})
        job = definitions.build_definitions(rooted).resolve_implicit_global_asset_job_def()
        result = job.execute_in_process(
            partition_key=KEY,
            instance=dg.DagsterInstance.ephemeral(),
            asset_selection=keys,
            run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
        )
        assert result.success

    # Warm both ways first (imports, torch kernels, file caches), each into its own root:
    # otherwise whichever runs first pays the warm-up for the other.
    _plain(settings, specs, f"{home}/plain-warm")
    in_process(f"{home}/dagster-warm")
    t0 = time.perf_counter()
    _plain(settings, specs, f"{home}/plain")
    plain = time.perf_counter() - t0
    t0 = time.perf_counter()
    in_process(f"{home}/dagster-run")
    in_process_s = time.perf_counter() - t0

    os.environ["WXPLAT_STORAGE_ROOT"] = f"{home}/cli"
    select = ",".join(k.to_user_string() for k in keys)
    t0 = time.perf_counter()
    subprocess.run(
        materialize_command(select, KEY),
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    cli = time.perf_counter() - t0
    models = ", ".join(f"{s.name} ({s.steps} steps)" for s in specs)
    print(f"one cycle, models: {models}; 91x180 grid, CPU; both ways warmed up first")
    print("| way | seconds | ratio to plain |")
    print("|---|---:|---:|")
    for name, sec in (
        ("plain script", plain),
        ("dagster in-process run (+checks)", in_process_s),
        ("dagster asset materialize (process per step, +checks)", cli),
    ):
        print(f"| {name} | {sec:.2f} | {sec / plain:.2f} |")


if __name__ == "__main__":
    main()
