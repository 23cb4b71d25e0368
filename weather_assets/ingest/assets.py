"""The ``raw_inputs/<source>`` asset: a cycle's analysis as canonical zarr in storage.

Write-audit-publish: every member of the cycle is staged, the blocking checks run on the
staged stores, and only a cycle that passes them is committed, all members at once. A
cycle that fails never replaces the stored one; its check results still show in the UI.
"""

import dagster as dg
import numpy as np
import xarray as xr

from resources.dask import DaskResource
from resources.layout import join_members, raw_inputs_relpath
from resources.storage import StorageResource, combine_checksums
from resources.upstream import UpstreamSource
from weather_assets.audit import StagedWriteRefused, audit, refusal
from weather_assets.ingest.checks import raw_inputs_check_results, raw_inputs_check_specs
from weather_assets.ingest.convert import subset_domain
from weather_assets.keys import raw_inputs_key, upstream_key
from weather_assets.partitions import partition_key_to_time
from weather_assets.retries import IO_RETRY
from weather_assets.settings import PlatformSettings

RAW_INPUTS_CODE_VERSION = "1"
UPSTREAM_VERSION = "upstream_version"  # metadata: the upstream version a cycle was read from


def build_ingest_assets(
    *, settings: PlatformSettings, partitions_def: dg.PartitionsDefinition
) -> list:
    """The upstream external asset and the raw_inputs asset of the configured source."""
    upstream = dg.AssetSpec(
        key=upstream_key(settings.upstream_name),
        description=f"Analyses published by the upstream source {settings.upstream_name!r} "
        f"({settings.upstream_kind} at {settings.upstream_url}). Not computed here: the "
        f"upstream sensor reports each cycle that has arrived, with its version.",
        group_name="upstream",
        partitions_def=partitions_def,
        kinds={settings.upstream_kind},
        owners=settings.owners(),
    )
    key = raw_inputs_key(settings.upstream_name)

    @dg.asset(
        key=key,
        deps=[upstream.key],
        partitions_def=partitions_def,
        group_name="ingest",
        code_version=RAW_INPUTS_CODE_VERSION,
        kinds={"xarray", "zarr"},
        retry_policy=IO_RETRY,
        metadata={"domain": settings.domain, "resolution": settings.resolution},
        check_specs=raw_inputs_check_specs(key, partitions_def),
        owners=settings.owners(),
        description=f"One cycle's analysis from {settings.upstream_name!r} in canonical names "
        f"and units, cut to the domain {settings.domain} at {settings.resolution}; every "
        "member is checked before it is committed.",
    )
    def raw_inputs(
        context: dg.AssetExecutionContext,
        storage: StorageResource,
        upstream: UpstreamSource,
        dask: DaskResource,
    ):
        """The cycle's analysis, in canonical names and units, cut to the domain."""
        t = partition_key_to_time(context.partition_key)
        source = upstream.cycle_url(t)
        # Taken before reading: if the cycle is republished meanwhile, the sensor sees a
        # newer version and ingests it again.
        upstream_version = upstream.cycle_version(context.partition_key)
        try:
            ds = upstream.read_cycle(t)
            # Everything is converted and checked before the first write: bad input writes
            # nothing.
            ds = subset_domain(ds, settings.bbox, settings.grid_resolution, source=source)
        except ValueError as exc:  # wrong data fails the same way every time: no retries
            raise dg.Failure(description=str(exc), allow_retries=False) from None
        members = [int(m) for m in ds["member"].values] if "member" in ds.dims else [0]
        stores = {
            raw_inputs_relpath(settings, t, m): (
                ds.sel(member=m, drop=True) if "member" in ds.dims else ds
            )
            for m in members
        }
        results: list[dg.AssetCheckResult] = []

        def check_staged(staged: list[xr.Dataset]) -> None:
            cycle = join_members(staged, members).load()
            analysis_time = np.datetime64(t.replace(tzinfo=None), "ns")
            results.extend(raw_inputs_check_results(cycle, analysis_time, source))
            audit(results, f"cycle {context.partition_key} from {source}")

        label = f"{key.to_user_string()} partition {context.partition_key}"
        try:
            with dask.client():  # a distributed cluster when one is configured, else local
                written = storage.storage().write_zarrs(
                    stores, chunks={"time": 1}, validate=check_staged, label=label
                )
        except StagedWriteRefused as exc:
            yield from results  # the failed checks show in the UI, tied to this run
            raise refusal(exc) from None
        checksum = combine_checksums([w.checksum for w in written])
        context.log.info(f"raw inputs for {context.partition_key} written to {written[0].url}")
        yield dg.MaterializeResult(
            data_version=dg.DataVersion(checksum[:16]),
            metadata={
                "path": dg.MetadataValue.path(written[0].url),
                "source": source,
                "analysis_time": context.partition_key,
                "shape": str(dict(ds.sizes)),
                "variables": ", ".join(map(str, ds.data_vars)),
                "members": len(members),
                "bytes": sum(w.nbytes for w in written),
                "sha256": checksum,
                UPSTREAM_VERSION: upstream_version or "unknown",
            },
            check_results=results,
        )

    return [upstream, raw_inputs]
