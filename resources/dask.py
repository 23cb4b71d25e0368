"""Where heavy xarray computations run: in the step's process, or on a distributed dask cluster.

Data logic stays plain dask-backed xarray; a step wraps its heavy part in
``with dask_resource.client():`` and, when ``scheduler_address`` is set, every ``compute``,
``load`` and ``to_zarr`` inside goes to that cluster (the client is made the default
scheduler for the block and closed after it). Without an address the block runs on dask's
local threaded scheduler, so the same asset code serves a laptop and a cluster.

On a remote cluster the *workers* read and write the data: the storage root must be an
object store they can reach (``s3://``), with the same credentials and endpoint in their
environment; a local path would be written on the workers' disks.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

if TYPE_CHECKING:
    from dask.distributed import Client


class DaskResource(dg.ConfigurableResource):
    """Optional distributed dask cluster for large data steps."""

    scheduler_address: str | None = Field(
        default=None,
        description="Scheduler of a running dask cluster, e.g. "
        "tcp://wxplat-dask-scheduler.wxplat.svc.cluster.local:8786; None computes locally.",
    )
    connect_timeout: str = Field(
        default="30s", description="How long to wait for the scheduler before failing the step."
    )

    @property
    def distributed(self) -> bool:
        """Whether computations go to a distributed cluster."""
        return bool(self.scheduler_address)

    @contextmanager
    def client(self) -> Iterator[Client | None]:
        """The cluster's client as the default scheduler for the block, or None (local)."""
        if not self.scheduler_address:
            yield None
            return
        from dask.distributed import Client

        # set_as_default: plain .compute()/.to_zarr() calls inside the block use the cluster.
        with Client(
            self.scheduler_address, timeout=self.connect_timeout, set_as_default=True
        ) as client:
            yield client
