"""DaskResource: a heavy xarray step gives identical results locally and on a dask cluster.

The cluster is a ``LocalCluster`` in this process (one worker, one thread) reached over TCP on
127.0.0.1, the way a step reaches the dask-kubernetes scheduler Service.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import xarray as xr
from distributed import LocalCluster
from distributed.client import _get_global_client

from resources.dask import DaskResource
from resources.storage import Storage, dataset_checksum
from weather_assets import paths
from weather_assets.ingest.convert import subset_domain
from weather_assets.simulator import simulate_state
from weather_assets.verification.metrics import area_weights, rmse

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BBOX = paths.parse_bbox("w-30_s30_e60_n72")
RESOLUTION = paths.parse_resolution("dx2deg_dy2deg")


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=False,
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address=None,
    ) as local:
        yield local


def _analyses() -> xr.Dataset:
    """Four simulated cycles, dask-backed, one chunk per time as raw_inputs writes them."""
    states = [simulate_state(T0 + timedelta(hours=6 * i)) for i in range(4)]
    return xr.concat(states, dim="time").chunk({"time": 1})


def heavy_step(dask_resource: DaskResource, storage: Storage) -> tuple[str, xr.Dataset]:
    """Subset, write atomically, reopen and score persistence: what ingest + verification do."""
    with dask_resource.client():
        ds = subset_domain(_analyses(), BBOX, RESOLUTION, source="simulator")
        written = storage.write_zarr(ds, "raw_inputs/analysis.zarr")
        truth = storage.open_zarr("raw_inputs/analysis.zarr")
        # Persistence forecast: each analysis held 6 h, scored against the next one.
        forecast = truth.isel(time=slice(0, -1))
        later = truth.isel(time=slice(1, None)).assign_coords(time=forecast["time"])
        scores = rmse(forecast, later, area_weights(truth["latitude"]), time_dims=("time",))
        return written.checksum, scores.compute()


def test_local_by_default_yields_no_client():
    resource = DaskResource()
    assert not resource.distributed
    with resource.client() as client:
        assert client is None


def test_heavy_step_identical_with_and_without_cluster(cluster, tmp_path):
    local_checksum, local_scores = heavy_step(DaskResource(), Storage(str(tmp_path / "local")))

    resource = DaskResource(scheduler_address=cluster.scheduler_address)
    assert resource.distributed and cluster.scheduler_address.startswith("tcp://127.0.0.1:")
    before = cluster.scheduler.transition_counter
    dist_checksum, dist_scores = heavy_step(resource, Storage(str(tmp_path / "dist")))
    assert cluster.scheduler.transition_counter > before, "nothing ran on the cluster"
    assert _get_global_client() is None  # the cluster is no longer the default scheduler

    assert dist_checksum == local_checksum
    xr.testing.assert_identical(dist_scores, local_scores)
    assert np.isfinite(local_scores["2m_temperature"].values).all()
    a = Storage(str(tmp_path / "local")).open_zarr("raw_inputs/analysis.zarr").load()
    b = Storage(str(tmp_path / "dist")).open_zarr("raw_inputs/analysis.zarr").load()
    xr.testing.assert_identical(a, b)
    assert dataset_checksum(a) == dataset_checksum(b) == local_checksum


def test_unreachable_scheduler_fails_fast():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    resource = DaskResource(scheduler_address=f"tcp://127.0.0.1:{port}", connect_timeout="2s")
    with pytest.raises(OSError, match="127.0.0.1"):
        with resource.client():
            pass
