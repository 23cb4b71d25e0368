"""Where everything the platform writes lives under the storage root, and how it is opened.

One home for the relative paths of every asset kind, in the path convention of
:mod:`weather_assets.paths`, and for the functions that open them:

- raw inputs: ``raw_inputs/<source>/<bbox>/<res>/<t>/member<k>/analysis.zarr``;
- model stores (normalized inputs, forecasts):
  ``<model>/<model_config>/<bbox>/<res>/<t>/member<k>/<data_kind>.zarr``, where
  ``model_config`` is the artifact version (``default`` without artifact);
- scores: ``scores.parquet`` beside the control member's ``forecast.zarr``;
- climatology: ``climatology/<source>/<bbox>/<res>/climatology.zarr``;
- scorecards: ``scorecard/vs-<baseline>/<bbox>/<res>/<end>/member0/
  scorecard_<start>_<models>.<suffix>``: one file per period (first and last cycle) and
  model set (a short hash of the models and their artifact versions).

Plain functions over :class:`resources.storage.Storage`; no Dagster.
"""

from __future__ import annotations

import io
import posixpath
from collections.abc import Iterable, Sequence
from datetime import datetime

import pandas as pd
import xarray as xr

from model_registry.architectures import get_architecture
from model_registry.resolve import resolve_model_config
from model_registry.spec import ModelSpec
from resources.storage import Storage
from weather_assets import paths
from weather_assets.settings import PlatformSettings

RAW_INPUTS_MODEL = "raw_inputs"
RAW_INPUTS_KIND = "analysis"
FORECAST_KIND = "forecast"
NORMALIZED_KIND = "normalized"
SCORES_FILE = "scores.parquet"
MEMBER_DIM = "member"


# ---------------------------------------------------------------------------------------------
# members of a cycle


def member_numbers(names: Iterable[str]) -> list[int]:
    """The ``k`` of every ``member<k>`` among directory entry names, sorted."""
    return sorted(int(n[6:]) for n in names if n.startswith("member") and n[6:].isdigit())


def complete_members(storage: Storage, cycle_dir: str, data_kind: str) -> list[int]:
    """Members ``k`` with a committed ``<cycle_dir>/member<k>/<data_kind>.zarr``, sorted."""
    return [
        m
        for m in member_numbers(storage.list_dir(cycle_dir))
        if storage.exists(posixpath.join(cycle_dir, f"member{m}", f"{data_kind}.zarr"))
    ]


def join_members(stores: Sequence[xr.Dataset], members: Sequence[int]) -> xr.Dataset:
    """One dataset of a cycle's member stores: a ``member`` dim when there are several."""
    if len(stores) == 1:
        return stores[0]
    return xr.concat(stores, dim=xr.DataArray(list(members), dims=MEMBER_DIM, name=MEMBER_DIM))


def sibling(relpath: str, filename: str) -> str:
    """A file in the same folder as a store (``.../member0/forecast.zarr`` -> ``.../member0/x``)."""
    return posixpath.join(posixpath.dirname(relpath.rstrip("/")), filename)


# ---------------------------------------------------------------------------------------------
# raw inputs


def raw_inputs_relpath(settings: PlatformSettings, analysis_time: datetime, member: int = 0) -> str:
    """Path (relative to the storage root) of one member of a cycle's raw inputs."""
    return paths.create_path(
        model_name=RAW_INPUTS_MODEL,
        model_config=settings.upstream_name,
        bbox=settings.bbox,
        resolution=settings.grid_resolution,
        analysis_time=analysis_time,
        data_kind=RAW_INPUTS_KIND,
        member=member,
    )


def raw_inputs_members(
    storage: Storage, settings: PlatformSettings, analysis_time: datetime
) -> list[int]:
    """Members with a committed raw-inputs store for this cycle."""
    cycle_dir = posixpath.dirname(posixpath.dirname(raw_inputs_relpath(settings, analysis_time)))
    return complete_members(storage, cycle_dir, RAW_INPUTS_KIND)


def open_raw_inputs(
    storage: Storage, settings: PlatformSettings, analysis_time: datetime
) -> xr.Dataset:
    """A cycle's raw inputs, lazily; a ``member`` dim when the source is an ensemble."""
    members = raw_inputs_members(storage, settings, analysis_time)
    if not members:
        raise FileNotFoundError(
            f"raw inputs for {paths.format_analysis_time(analysis_time)} are not in storage: no "
            f"complete store at {storage.url(raw_inputs_relpath(settings, analysis_time))}"
        )
    stores = [storage.open_zarr(raw_inputs_relpath(settings, analysis_time, m)) for m in members]
    return join_members(stores, members)


# ---------------------------------------------------------------------------------------------
# model stores: normalized inputs, forecasts, scores


def store_relpath(
    spec: ModelSpec,
    settings: PlatformSettings,
    analysis_time: datetime,
    model_config: str,
    data_kind: str,
    member: int = 0,
) -> str:
    """Path of one of the model's stores, in the platform's path convention."""
    return paths.create_path(
        model_name=spec.name,
        model_config=model_config,
        bbox=settings.bbox,
        resolution=settings.grid_resolution,
        analysis_time=analysis_time,
        data_kind=data_kind,
        member=member,
    )


def forecast_members(spec: ModelSpec) -> list[int]:
    """Members stored separately (``member<k>``), or one store when the model's own code
    writes all members (container models)."""
    if get_architecture(spec.architecture).member_stores:
        return list(range(spec.members))
    return [0]


def forecast_relpath(
    spec: ModelSpec,
    settings: PlatformSettings,
    analysis_time: datetime,
    member: int = 0,
    *,
    model_config: str | None = None,
) -> str:
    """Path of one member's forecast store (``model_config`` resolved from the artifact if None)."""
    config = resolve_model_config(spec, settings) if model_config is None else model_config
    return store_relpath(spec, settings, analysis_time, config, FORECAST_KIND, member)


def scores_relpath(
    spec: ModelSpec,
    settings: PlatformSettings,
    analysis_time: datetime,
    *,
    model_config: str | None = None,
) -> str:
    """Path of a cycle's verification scores: ``scores.parquet`` beside the control forecast."""
    control = forecast_relpath(spec, settings, analysis_time, 0, model_config=model_config)
    return sibling(control, SCORES_FILE)


def model_configs(storage: Storage, spec: ModelSpec) -> list[str]:
    """Every ``model_config`` (artifact version) folder a model has in storage, sorted."""
    return [c for c in storage.list_dir(spec.name) if not c.startswith(".")]


def scores_versions(
    storage: Storage,
    spec: ModelSpec,
    settings: PlatformSettings,
    analysis_time: datetime,
    configs: Sequence[str] | None = None,
) -> list[str]:
    """The artifact versions (``model_config``) of a model with scores for a cycle, sorted.

    Every version is listed, not only the one the registry runs now: cycles scored with a
    superseded artifact keep their scores at that artifact's path. ``configs``: the model's
    :func:`model_configs`, when the caller lists them once for many cycles.
    """
    return [
        config
        for config in (model_configs(storage, spec) if configs is None else configs)
        if SCORES_FILE
        in storage.list_dir(
            posixpath.dirname(scores_relpath(spec, settings, analysis_time, model_config=config))
        )
    ]


def join_forecast_members(stores: Sequence[xr.Dataset], spec: ModelSpec) -> xr.Dataset:
    """One forecast of its per-member stores, joined along a ``member`` dim."""
    if len(stores) == 1:
        return stores[0]
    joined = join_members(stores, forecast_members(spec))
    # The forecast layout puts member after (time, lead_time), before level and the grid.
    return joined.transpose("time", "lead_time", MEMBER_DIM, ...)


def open_forecast(
    storage: Storage,
    spec: ModelSpec,
    settings: PlatformSettings,
    analysis_time: datetime,
    *,
    model_config: str | None = None,
) -> xr.Dataset:
    """A committed forecast, lazily; per-member stores joined along a ``member`` dim.

    A container model's single store may hold a ``member`` dim itself. FileNotFoundError
    naming the store when a member is not in storage.
    """
    config = resolve_model_config(spec, settings) if model_config is None else model_config
    stores = []
    for m in forecast_members(spec):
        relpath = store_relpath(spec, settings, analysis_time, config, FORECAST_KIND, m)
        if not storage.exists(relpath):
            raise FileNotFoundError(
                f"no forecast in storage for {spec.name} at "
                f"{paths.format_analysis_time(analysis_time)}: no complete store at "
                f"{storage.url(relpath)}"
            )
        stores.append(storage.open_zarr(relpath))
    return join_forecast_members(stores, spec)


# ---------------------------------------------------------------------------------------------
# climatology and scorecards


def climatology_relpath(settings: PlatformSettings) -> str:
    """``climatology/<source>/<bbox>/<resolution>/climatology.zarr`` (no analysis time)."""
    return posixpath.join(
        "climatology",
        settings.upstream_name,
        settings.domain,
        settings.resolution,
        "climatology.zarr",
    )


def scorecard_relpath(
    settings: PlatformSettings,
    baseline: str,
    start: datetime,
    end: datetime,
    models_hash: str,
    suffix: str,
) -> str:
    """Scorecard files of the period ``start .. end`` (first and last cycle) and a model set.

    ``scorecard/vs-<baseline>/<bbox>/<res>/<end>/member0/scorecard_<start>_<models_hash>``
    plus ``suffix``: a scorecard of another period, or of other models or artifact versions,
    never overwrites this one.
    """
    kind = f"scorecard_{paths.format_analysis_time(start)}_{models_hash}"
    store = paths.create_path(
        model_name="scorecard",
        model_config=f"vs-{baseline}",
        bbox=settings.bbox,
        resolution=settings.grid_resolution,
        analysis_time=end,
        data_kind=kind,
    )
    return store.removesuffix(".zarr") + suffix


# ---------------------------------------------------------------------------------------------
# tables (scores, scorecards)


def write_table(storage: Storage, table: pd.DataFrame, relpath: str) -> str:
    """Write a table as parquet, atomically; returns its URL."""
    return storage.write_bytes(table.to_parquet(index=False), relpath)


def read_table(storage: Storage, relpath: str) -> pd.DataFrame | None:
    """A parquet table under the root, None if absent."""
    data = storage.read_bytes(relpath)
    return None if data is None else pd.read_parquet(io.BytesIO(data))
