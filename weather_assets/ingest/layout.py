"""Where raw inputs live in storage, and how downstream assets open them."""

from __future__ import annotations

import posixpath
from datetime import datetime

import xarray as xr

from resources.storage import Storage
from weather_assets import paths
from weather_assets.settings import PlatformSettings


def raw_inputs_relpath(settings: PlatformSettings, analysis_time: datetime, member: int = 0) -> str:
    """Path (relative to the storage root) of one member of a cycle's raw inputs."""
    return paths.create_path(
        model_name="raw_inputs",
        model_config=settings.upstream_name,
        bbox=settings.bbox,
        resolution=settings.grid_resolution,
        analysis_time=analysis_time,
        data_kind="analysis",
        member=member,
    )


def raw_inputs_members(
    storage: Storage, settings: PlatformSettings, analysis_time: datetime
) -> list[int]:
    """Members with a committed raw-inputs store for this cycle."""
    cycle_dir = posixpath.dirname(posixpath.dirname(raw_inputs_relpath(settings, analysis_time)))
    members = []
    for base in storage.list_dir(cycle_dir):
        if base.startswith("member") and base[6:].isdigit():
            if storage.exists(raw_inputs_relpath(settings, analysis_time, int(base[6:]))):
                members.append(int(base[6:]))
    return sorted(members)


def join_members(stores: list[xr.Dataset], members: list[int]) -> xr.Dataset:
    """One dataset of a cycle's member stores: a ``member`` dim when there are several."""
    if len(stores) == 1:
        return stores[0]
    return xr.concat(stores, dim=xr.DataArray(members, dims="member", name="member"))


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
