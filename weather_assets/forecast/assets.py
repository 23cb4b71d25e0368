"""Per-model Dagster assets, generated from one registry entry by ``build_model_assets``.

For a model ``<name>``:

- ``model_artifact/<name>`` (unpartitioned, observable source asset; none for
  persistence): the artifact sensor observes it, and its sha256 is the data version, so a new artifact makes
  every downstream forecast show as stale in the UI.
- ``normalized/<name>`` (per analysis time): the raw inputs stacked into the model's feature
  order and standardized with the artifact's statistics. Its blocking ``input_drift`` check
  compares them with the artifact's training statistics before they are committed: a cycle
  far outside them (a units mistake upstream) is refused, so no forecast runs on it.
- ``forecast/<name>`` (per analysis time): the rollout to the model's max lead time, written
  lead time by lead time into a staged store that is committed atomically.

Artifacts are loaded at run time only: a missing or tampered artifact fails that model's
steps with the artifact's error, never the loading of the definitions.
"""

# No `from __future__ import annotations`: Dagster inspects asset annotations at runtime.

import hashlib
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import dagster as dg
import numpy as np
import xarray as xr

from model_registry.architectures import get_architecture
from model_registry.artifact import LoadedArtifact
from model_registry.registry import k8s_config, pool_for
from model_registry.resolve import (
    DEFAULT_MODEL_CONFIG,
    load_model_artifact,
    model_config_of,
)
from model_registry.spec import ModelSpec, format_duration
from resources.cost import Cost, CostMeter
from resources.layout import (
    forecast_members,
    join_forecast_members,
    open_raw_inputs,
    store_relpath,
)
from resources.runners import RunRequest, runner_for, runner_resource_keys
from resources.storage import Storage, dataset_checksum, open_zarr_url
from weather_assets import paths
from weather_assets.audit import StagedWriteRefused, audit, refusal
from weather_assets.beta import quiet_beta
from weather_assets.forecast.checks import (
    drift_check_result,
    drift_check_specs,
    drift_thresholds,
    forecast_check_results,
    forecast_check_specs,
)
from weather_assets.forecast.drift import DEFAULT_THRESHOLDS, DriftThresholds
from weather_assets.forecast.normalize import (
    FEATURE_DIM,
    identity_stats,
    stack_features,
    standardize,
)
from weather_assets.forecast.ranges import (
    PartitionOutcome,
    is_partition_range,
    report_partitions,
)
from weather_assets.forecast.rollout import check_finite, check_grid
from weather_assets.keys import artifact_key, forecast_key, normalized_key
from weather_assets.lineage import DATA_VERSION_TAG, artifact_observation
from weather_assets.partitions import partition_key_to_time
from weather_assets.pictures import forecast_map_markdown
from weather_assets.retries import IO_RETRY
from weather_assets.settings import PlatformSettings

NORMALIZED_CODE_VERSION = "1"
FORECAST_CODE_VERSION = "1"
# UI groups: the graph labels a node with its key's last part (the model's name), so each of
# a model's assets sits in the group of its kind: inputs, forecasts, artifacts.
INPUTS_GROUP = "model_inputs"
GROUP = "forecast"
ARTIFACT_GROUP = "model_artifacts"


def _output_version(spec: ModelSpec) -> str:
    # What changes the numbers (not the pod size): steps, members, variables, architecture.
    fields = spec.model_dump(
        mode="json",
        include={
            "architecture",
            "input_variables",
            "output_variables",
            "timestep",
            "max_lead_time",
            "members",
            "container",
        },
    )
    if spec.forcings:  # only when set, so models without forcings keep their code version
        fields["forcings"] = list(spec.forcings)
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:8]


# ---------------------------------------------------------------------------------------------
# the factory


class ForecastConfig(dg.Config):
    """Run configuration of a forecast step."""

    force: bool = False  # recompute even if the same inputs already produced a forecast
    device: str | None = None  # e.g. "cpu" or "cuda:1"; default: CUDA when available


def build_model_assets(
    spec: ModelSpec,
    *,
    partitions_def: dg.PartitionsDefinition,
    raw_inputs_key: dg.AssetKey,
    settings: PlatformSettings,
    automation_condition: dg.AutomationCondition | None = None,
) -> list:
    """Artifact source asset (if any), normalized and forecast assets and checks of one model.

    Container models need a ``pipes_client`` resource (``PipesSubprocessClient`` locally,
    ``dagster_k8s.PipesK8sClient`` on Kubernetes).
    """
    name = spec.name
    out: list = []
    upstream_artifact: list[dg.AssetKey] = []
    if spec.artifact is not None:
        out.append(_artifact_asset(spec, settings))
        upstream_artifact.append(artifact_key(spec.name))
    static_md = {
        "model": name,
        "architecture": spec.architecture,
        "timestep": format_duration(spec.timestep),
        "max_lead_time": format_duration(spec.max_lead_time),
        "members": spec.members,
        "forcings": ", ".join(spec.forcings) or "none",
        "artifact_uri": spec.artifact.uri if spec.artifact else "none",
    }

    # Backfills run up to K cycles per run (K from the registry's runtime), so a run loads
    # the artifact once for K cycles; one partition still runs as it always did.
    backfill_policy = dg.BackfillPolicy.multi_run(spec.runtime.backfill_partitions)
    thresholds = drift_thresholds(settings)

    with quiet_beta():  # ``backfill_policy`` is a Dagster beta parameter, used on purpose
        as_normalized = dg.asset(
            key=normalized_key(spec.name),
            retry_policy=IO_RETRY,
            deps=[raw_inputs_key, *upstream_artifact],
            partitions_def=partitions_def,
            backfill_policy=backfill_policy,
            group_name=INPUTS_GROUP,
            code_version=NORMALIZED_CODE_VERSION,
            owners=settings.owners(spec.owners),
            kinds={"xarray", "zarr"},
            metadata=static_md,
            automation_condition=automation_condition,
            description=f"Inputs of {name} for one cycle: {raw_inputs_key.to_user_string()} "
            "stacked to the model's features and standardized with its artifact's statistics; "
            "refused before the commit when far outside the training statistics (input_drift).",
            required_resource_keys={"storage"},
            check_specs=drift_check_specs(normalized_key(spec.name), partitions_def, thresholds),
        )

    @as_normalized
    def normalized(context: dg.AssetExecutionContext):
        """The model's standardized input tensor (time, state_feature, latitude, longitude)."""
        loaded = load_model_artifact(spec, settings)  # fails here, before reading data
        store = context.resources.storage.storage()
        if not is_partition_range(context):
            try:
                data_version, metadata, results = _normalize_cycle(
                    spec, settings, loaded, store, context.partition_key, thresholds
                )
            except RefusedInputs as exc:
                yield from exc.results  # the failed check shows in the UI, tied to this run
                raise refusal(exc) from None
            yield dg.MaterializeResult(
                data_version=dg.DataVersion(data_version), metadata=metadata, check_results=results
            )
            return
        outcomes = []
        for key in context.partition_keys:  # a backfill run: each cycle commits on its own
            try:
                data_version, metadata, results = _normalize_cycle(
                    spec, settings, loaded, store, key, thresholds
                )
            except Exception as exc:  # noqa: BLE001 - reported per cycle, the step fails after
                context.log.error(f"{name} {key}: {type(exc).__name__}: {exc}")
                checks = exc.results if isinstance(exc, RefusedInputs) else []
                outcomes.append(PartitionOutcome(key, checks=checks, error=exc))
            else:
                outcomes.append(PartitionOutcome(key, metadata, results, data_version=data_version))
        # Through the output: the forecast may follow in the same run and needs it.
        yield from report_partitions(context, normalized_key(spec.name), outcomes, output=True)

    with quiet_beta():
        as_forecast = dg.asset(
            key=forecast_key(spec.name),
            deps=[normalized_key(spec.name), *upstream_artifact],
            partitions_def=partitions_def,
            group_name=GROUP,
            code_version=f"{FORECAST_CODE_VERSION}-{_output_version(spec)}",
            owners=settings.owners(spec.owners),
            kinds={get_architecture(spec.architecture).kind, "zarr"},
            op_tags={"dagster-k8s/config": k8s_config(spec)},
            pool=pool_for(spec),
            metadata=static_md,
            automation_condition=automation_condition,
            # Plus what the model's runner needs (Pipes models: the ``pipes_client``).
            required_resource_keys={"storage", *runner_resource_keys(spec)},
            description=f"Forecast of {name} ({spec.architecture}) from one cycle's analysis to "
            f"{format_duration(spec.max_lead_time)} every {format_duration(spec.timestep)}, "
            f"{spec.members} member(s); checked before it is committed.",
            check_specs=forecast_check_specs(forecast_key(spec.name), partitions_def),
            backfill_policy=backfill_policy,
            # A backfill run reports each cycle's materialization itself, not by the output.
            output_required=False,
        )

    @as_forecast
    def forecast(context: dg.AssetExecutionContext, config: ForecastConfig):
        """The model's rollout to its max lead time, one chunk per lead time and variable."""
        if is_partition_range(context):  # a backfill run of several cycles
            yield from _forecast_partitions(context, config, spec, settings)
            return
        key = context.partition_key
        loaded = load_model_artifact(spec, settings)
        store = context.resources.storage.storage()
        cycle = _forecast_cycle(spec, settings, loaded, store, key)
        if not config.force and _already_done(store, cycle.out_rels, cycle.fingerprint):
            context.log.info(f"{name} {key}: same inputs already forecast")
            metadata, results = _kept_forecast(spec, loaded, store, cycle)
            yield dg.MaterializeResult(metadata=metadata, check_results=results)
            return
        t0 = time.perf_counter()
        results: list[dg.AssetCheckResult] = []
        try:
            # Write-audit-publish: every member is staged, checked, then committed together.
            # Keyed by the fingerprint, a killed run's staged lead times are resumed by the
            # next run of the same inputs (``force`` recomputes from the start).
            resume_key = None if config.force else cycle.fingerprint
            with store.staged_zarrs(
                cycle.out_rels, label=cycle.label, resume_key=resume_key
            ) as urls:
                request = _run_request(spec, loaded, store, cycle, urls, config)
                with CostMeter() as meter:
                    md = runner_for(spec, context).run(request)
                md = {**md, **_run_cost(spec, md, meter).metadata()}
                joined, results = _check_staged(spec, store, cycle, urls, md)
                audit(results, f"forecast of {name} for {key}")
                picture = _forecast_map(context, joined, f"{name} {key}")
        except StagedWriteRefused as exc:
            yield from results  # the failed checks show in the UI, tied to this run
            raise refusal(exc) from None
        wall = time.perf_counter() - t0
        context.log.info(f"{name} {key}: forecast written in {wall:.1f} s")
        yield dg.MaterializeResult(
            metadata=_forecast_metadata(loaded, store, cycle, md, wall, picture),
            check_results=results,
        )

    out.extend([normalized, forecast])
    return out


def build_registry_assets(
    specs: Sequence[ModelSpec],
    *,
    partitions_def: dg.PartitionsDefinition,
    raw_inputs_key: dg.AssetKey,
    settings: PlatformSettings,
    automation_condition: dg.AutomationCondition | None = None,
) -> list:
    """``build_model_assets`` over every enabled registry entry."""
    out: list = []
    for spec in specs:
        if spec.enabled:
            out.extend(
                build_model_assets(
                    spec,
                    partitions_def=partitions_def,
                    raw_inputs_key=raw_inputs_key,
                    settings=settings,
                    automation_condition=automation_condition,
                )
            )
    return out


# ---------------------------------------------------------------------------------------------
# helpers of the assets


class RefusedInputs(StagedWriteRefused):
    """A cycle's inputs failed the blocking input-drift check: nothing was written."""

    def __init__(self, message: str, results: list[dg.AssetCheckResult]) -> None:
        super().__init__(message)
        self.results = results


def _normalize_cycle(
    spec: ModelSpec,
    settings: PlatformSettings,
    loaded: LoadedArtifact | None,
    store: Storage,
    key: str,
    thresholds: DriftThresholds = DEFAULT_THRESHOLDS,
) -> tuple[str, dict, list[dg.AssetCheckResult]]:
    """Write ``normalized/<model>`` of one cycle; its data version, metadata and checks.

    RefusedInputs (nothing written) when the standardized cycle fails the input-drift check.
    """
    t = partition_key_to_time(key)
    raw = open_raw_inputs(store, settings, t)
    if "member" in raw.dims:
        # Ensemble analyses: the control initializes; members come from perturbations.
        raw = raw.isel(member=0, drop=True)
    _check_time(raw, t)
    states = stack_features(raw, spec.input_features).load()
    check_finite(states.values, spec.input_features)
    if loaded is not None:
        check_grid(states["latitude"].values, states["longitude"].values, loaded.manifest.grid)
    stats = loaded.stats if loaded is not None else identity_stats(spec.input_features)
    z = standardize(states, stats)
    z = z.assign_coords({FEATURE_DIM: np.asarray(spec.input_features, dtype=object)})
    # Audit before anything is written: inputs far outside the training statistics (a units
    # mistake upstream) never reach the store, so no forecast starts from them.
    results = [drift_check_result(z, loaded.stats if loaded is not None else None, thresholds)]
    what = f"{normalized_key(spec.name).to_user_string()} partition {key}"
    try:
        audit(results, what)
    except StagedWriteRefused as exc:
        raise RefusedInputs(str(exc), results) from None
    ds = z.to_dataset(name="state")
    ds.attrs.update(model=spec.name, artifact_sha256=loaded.sha256 if loaded else "none")
    relpath = store_relpath(spec, settings, t, model_config_of(loaded), "normalized")
    # Validate, then commit: standardizing with a zero spread would give NaN/inf, and
    # the forecast must never start from a store that holds them.
    (written,) = store.write_zarrs(
        {relpath: ds},
        encoding={"state": {"chunks": (1, 1, *z.shape[2:])}},
        validate=lambda staged: check_finite(staged[0]["state"].values, spec.input_features),
        label=f"{normalized_key(spec.name).to_user_string()} partition {key}",
    )
    return (
        written.checksum[:16],
        {
            "path": dg.MetadataValue.path(written.url),
            "features": ", ".join(spec.input_features),
            "shape": str(dict(z.sizes)),
            "artifact_version": model_config_of(loaded),
            "artifact_sha256": loaded.sha256 if loaded else "none",
            "bytes": written.nbytes,
            "sha256": written.checksum,
        },
        results,
    )


@dataclass
class _ForecastCycle:
    """One cycle of a forecast step: its input, its output stores, its fingerprint."""

    key: str
    time: datetime
    input_rel: str
    out_rels: list[str]
    normalized: xr.Dataset
    fingerprint: str
    label: str


def _forecast_cycle(
    spec: ModelSpec,
    settings: PlatformSettings,
    loaded: LoadedArtifact | None,
    store: Storage,
    key: str,
) -> _ForecastCycle:
    """Where cycle ``key``'s forecast starts and goes (FileNotFoundError: no input yet)."""
    t = partition_key_to_time(key)
    model_config = model_config_of(loaded)
    input_rel = store_relpath(spec, settings, t, model_config, "normalized")
    if not store.exists(input_rel):
        raise FileNotFoundError(
            f"normalized input of {spec.name} for {key} is missing at "
            f"{store.url(input_rel)}; materialize {normalized_key(spec.name).to_user_string()} "
            "first"
        )
    normalized_ds = store.open_zarr(input_rel, chunks=None)  # one state: no dask graph
    out_rels = [
        store_relpath(spec, settings, t, model_config, "forecast", m)
        for m in forecast_members(spec)
    ]
    return _ForecastCycle(
        key=key,
        time=t,
        input_rel=input_rel,
        out_rels=out_rels,
        normalized=normalized_ds,
        fingerprint=_fingerprint(spec, loaded, normalized_ds),
        label=f"{forecast_key(spec.name).to_user_string()} partition {key}",
    )


def _kept_forecast(
    spec: ModelSpec, loaded: LoadedArtifact | None, store: Storage, cycle: _ForecastCycle
) -> tuple[dict, list[dg.AssetCheckResult]]:
    """Metadata and checks of a forecast kept because the same inputs already made it."""
    kept = join_forecast_members([store.open_zarr(rel) for rel in cycle.out_rels], spec)
    metadata = {
        **_artifact_md(loaded),
        "path": dg.MetadataValue.path(store.url(cycle.out_rels[0])),
        "skipped": True,
        "fingerprint": cycle.fingerprint,
    }
    return metadata, forecast_check_results(kept, spec, cycle.time)


def _run_request(
    spec: ModelSpec,
    loaded: LoadedArtifact | None,
    store: Storage,
    cycle: _ForecastCycle,
    urls: Sequence[str],
    config: ForecastConfig,
) -> RunRequest:
    attrs = {
        "model": spec.name,
        "architecture": spec.architecture,
        "artifact_version": model_config_of(loaded),
        "artifact_sha256": loaded.sha256 if loaded else "none",
        "fingerprint": cycle.fingerprint,
    }
    return RunRequest(
        spec=spec,
        artifact=loaded,
        analysis_time=cycle.time,
        output_urls=urls,
        input_url=store.url(cycle.input_rel),
        normalized=cycle.normalized,
        device=config.device,
        attrs=attrs,
        storage_options=store.storage_options or None,
    )


# Staged forecasts up to this size are read back whole for their checks (no dask graph over
# their chunks: 0.05 s instead of 0.3 s for the demo's 72 h at 2 deg); larger ones lazily,
# one chunk at a time, so memory stays bounded.
CHECK_IN_MEMORY_BYTES = 256 * 2**20


def _check_staged(
    spec: ModelSpec, store: Storage, cycle: _ForecastCycle, urls: Sequence[str], md: dict
) -> tuple[xr.Dataset, list[dg.AssetCheckResult]]:
    """The staged forecast (as it would be committed) and its check results."""
    written = md.get("bytes_written")
    if isinstance(written, int) and written <= CHECK_IN_MEMORY_BYTES:
        staged = [open_zarr_url(url, store.storage_options, chunks=None).load() for url in urls]
    else:
        staged = [open_zarr_url(url, store.storage_options) for url in urls]
    joined = join_forecast_members(staged, spec)
    return joined, forecast_check_results(joined, spec, cycle.time)


def _forecast_metadata(
    loaded: LoadedArtifact | None,
    store: Storage,
    cycle: _ForecastCycle,
    md: dict,
    wall: float,
    picture: dict,
) -> dict:
    return {
        **_artifact_md(loaded),
        **md,
        "wall_seconds": round(wall, 3),
        # What the committed stores hold (the monitoring exporter's ``bytes``).
        "bytes": sum(store.nbytes(rel) for rel in cycle.out_rels),
        "path": dg.MetadataValue.path(store.url(cycle.out_rels[0])),
        "stores": len(cycle.out_rels),
        "fingerprint": cycle.fingerprint,
        **picture,
    }


def _run_cost(spec: ModelSpec, md: dict, meter: CostMeter) -> Cost:
    """The cost of a run: on the device the runner reports (a Pipes run that reports none ran
    where its registry entry asked: on GPUs if it asks any), holding one GPU in process or
    the entry's GPUs in a subprocess or pod (``resources.cost``)."""
    external = "runner" in md  # Pipes runners say which client ran them
    device = str(md.get("device") or ("cuda" if external and spec.runtime.gpu > 0 else "cpu"))
    return meter.cost(device, gpus=max(spec.runtime.gpu, 1) if external else 1)


def _forecast_partitions(
    context: dg.AssetExecutionContext,
    config: ForecastConfig,
    spec: ModelSpec,
    settings: PlatformSettings,
) -> Iterator:
    """``forecast/<model>`` of a run's partition range (a backfill run of up to K cycles).

    The artifact is loaded and the network built once for the run; the cycles go through
    the network ``runtime.batch_cycles`` at a time; each cycle is staged, checked and
    committed (or refused) on its own, and reported as its own partition
    (``weather_assets.forecast.ranges``). A run of several cycles draws no maps: one costs
    0.3-0.6 s, several times the platform's whole overhead per backfilled cycle (a run of
    one partition, as automation launches, draws it as a partition run does).
    """
    keys = list(context.partition_keys)
    loaded = load_model_artifact(spec, settings)  # once per run, for all its cycles
    store = context.resources.storage.storage()
    runner = runner_for(spec, context)  # one runner: the network is built once
    outcomes: dict[str, PartitionOutcome] = {}
    todo: list[_ForecastCycle] = []
    for key in keys:
        try:
            cycle = _forecast_cycle(spec, settings, loaded, store, key)
            if config.force or not _already_done(store, cycle.out_rels, cycle.fingerprint):
                todo.append(cycle)
                continue
            context.log.info(f"{spec.name} {key}: same inputs already forecast")
            metadata, results = _kept_forecast(spec, loaded, store, cycle)
            outcomes[key] = PartitionOutcome(key, metadata, results)
        except Exception as exc:  # noqa: BLE001 - reported per cycle, the step fails after
            context.log.error(f"{spec.name} {key}: {type(exc).__name__}: {exc}")
            outcomes[key] = PartitionOutcome(key, error=exc)
    batch = spec.runtime.batch_cycles
    for i in range(0, len(todo), batch):
        for outcome in _forecast_batch(
            context, config, spec, loaded, store, runner, todo[i : i + batch], maps=len(keys) == 1
        ):
            outcomes[outcome.key] = outcome
    # Each cycle its own materialization: exact per-cycle lineage (nothing downstream of a
    # forecast runs in its run: verification waits for later analyses).
    outcomes_in_order = [outcomes[k] for k in keys]
    yield from report_partitions(context, forecast_key(spec.name), outcomes_in_order, output=False)


class _Staging:
    """A cycle's open ``Storage.staged_zarrs``: committed or discarded on its own."""

    def __init__(self, store: Storage, cycle: _ForecastCycle, resume_key: str | None) -> None:
        self._cm = store.staged_zarrs(cycle.out_rels, label=cycle.label, resume_key=resume_key)
        self.urls = self._cm.__enter__()
        self.open = True

    def commit(self) -> None:
        self.open = False
        self._cm.__exit__(None, None, None)

    def discard(self, exc: BaseException) -> None:
        if self.open:
            self.open = False
            self._cm.__exit__(type(exc), exc, exc.__traceback__)


def _forecast_batch(
    context: dg.AssetExecutionContext,
    config: ForecastConfig,
    spec: ModelSpec,
    loaded: LoadedArtifact | None,
    store: Storage,
    runner,
    cycles: Sequence[_ForecastCycle],
    maps: bool,
) -> list[PartitionOutcome]:
    """Run ``cycles`` through the network together; stage, check and commit each alone."""
    stagings: list[_Staging] = []
    try:
        for cycle in cycles:
            # One cycle at a time runs as a partition run does, resumable after a kill (a
            # batch through the network is not: it starts again).
            resumable = len(cycles) == 1 and not config.force
            stagings.append(_Staging(store, cycle, cycle.fingerprint if resumable else None))
        requests = [
            _run_request(spec, loaded, store, cycle, staging.urls, config)
            for cycle, staging in zip(cycles, stagings, strict=True)
        ]
        t0 = time.perf_counter()
        with CostMeter() as meter:
            mds = runner.run_batch(requests)
        run_share = (time.perf_counter() - t0) / len(cycles)
        # The batch's cost shared evenly between its cycles (its peak memory is theirs).
        mds = [{**md, **_run_cost(spec, md, meter).share(len(cycles)).metadata()} for md in mds]
    except Exception as exc:  # noqa: BLE001 - the whole batch failed: nothing of it commits
        for staging in stagings:
            staging.discard(exc)
        context.log.error(
            f"{spec.name} {', '.join(c.key for c in cycles)}: {type(exc).__name__}: {exc}"
        )
        return [PartitionOutcome(cycle.key, error=exc) for cycle in cycles]
    except BaseException as exc:  # interrupted: discard everything staged, then stop
        for staging in stagings:
            staging.discard(exc)
        raise
    outcomes = []
    try:
        for cycle, staging, md in zip(cycles, stagings, mds, strict=True):
            t0 = time.perf_counter()
            results: list[dg.AssetCheckResult] = []
            try:
                joined, results = _check_staged(spec, store, cycle, staging.urls, md)
                audit(results, f"forecast of {spec.name} for {cycle.key}")
                title = f"{spec.name} {cycle.key}"
                picture = _forecast_map(context, joined, title) if maps else {}
                staging.commit()
            except Exception as exc:  # noqa: BLE001 - refused or failed: this cycle only
                staging.discard(exc)
                context.log.error(f"{spec.name} {cycle.key}: {exc}")
                outcomes.append(PartitionOutcome(cycle.key, checks=results, error=exc))
                continue
            wall = run_share + time.perf_counter() - t0
            metadata = _forecast_metadata(loaded, store, cycle, md, wall, picture)
            outcomes.append(PartitionOutcome(cycle.key, metadata, results))
    except BaseException as exc:
        for staging in stagings:
            staging.discard(exc)
        raise
    return outcomes


def _artifact_asset(spec: ModelSpec, settings: PlatformSettings) -> dg.AssetsDefinition:
    """``model_artifact/<model>``: observable (sha256 as data version, with provenance).

    The artifact sensor observes it every minute; "Observe" in the UI does it at once.
    """
    asset_spec = dg.AssetSpec(
        key=artifact_key(spec.name),
        group_name=ARTIFACT_GROUP,
        description=f"Inference artifact of {spec.name} ({spec.artifact.uri}). Its data "
        "version is the file's sha256 (observed by model_artifacts_sensor), so a replaced "
        "artifact marks the forecasts made with the old one stale (list them: wxplat stale).",
        metadata={"uri": spec.artifact.uri, "pinned_sha256": spec.artifact.sha256 or "none"},
        kinds={"zip", get_architecture(spec.architecture).kind},
        owners=settings.owners(spec.owners),
    )
    with quiet_beta():  # observable source assets are a Dagster beta

        @dg.multi_observable_source_asset(
            specs=[asset_spec], name=f"observe_{artifact_key(spec.name).to_python_identifier()}"
        )
        def model_artifact(context):
            """Hash the artifact and read its manifest."""
            observation = artifact_observation(spec, settings)
            yield dg.ObserveResult(
                asset_key=observation.asset_key,
                data_version=dg.DataVersion(observation.tags[DATA_VERSION_TAG]),
                metadata=observation.metadata,
            )

    return model_artifact


def _forecast_map(context: dg.AssetExecutionContext, forecast: xr.Dataset, title: str) -> dict:
    """``{"map": markdown}``: headline fields at a few leads, for the UI (empty if none)."""
    try:
        return {"map": dg.MetadataValue.md(forecast_map_markdown(forecast, title=title))}
    except ValueError as exc:  # nothing drawable: the forecast itself is fine
        context.log.warning(f"no map for {title}: {exc}")
        return {}


def _check_time(raw: xr.Dataset, t: datetime) -> None:
    # The model starts from the partition's analysis; anything else is a wiring error.
    expected = np.datetime64(t.replace(tzinfo=None), "ns")
    times = raw["time"].values
    if times.size != 1 or times[0] != expected:
        raise ValueError(
            f"raw inputs hold time(s) {[str(v) for v in times]}, expected the analysis time "
            f"{paths.format_analysis_time(t)}"
        )


def _fingerprint(spec: ModelSpec, loaded: LoadedArtifact | None, normalized: xr.Dataset) -> str:
    parts = [
        FORECAST_CODE_VERSION,
        _output_version(spec),
        loaded.sha256 if loaded else "none",
        dataset_checksum(normalized[["state"]].load()),
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _already_done(store, relpaths: Sequence[str], fingerprint: str) -> bool:
    # Idempotency: an existing forecast made from the same inputs and code is kept.
    for rel in relpaths:
        if not store.exists(rel):
            return False
        with store.open_zarr(rel) as ds:
            if ds.attrs.get("fingerprint") != fingerprint:
                return False
    return True


def _artifact_md(loaded: LoadedArtifact | None) -> dict:
    if loaded is None:
        return {"artifact_name": "none", "artifact_version": DEFAULT_MODEL_CONFIG}
    return {
        "artifact_name": loaded.name,
        "artifact_version": loaded.version,
        "artifact_sha256": loaded.sha256,
    }
