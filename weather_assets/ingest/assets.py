"""The ``raw_inputs/<source>`` asset: a cycle's analysis as canonical zarr in storage."""

import dagster as dg

from resources.dask import DaskResource
from resources.storage import StorageResource
from resources.upstream import UpstreamSource
from weather_assets.ingest.convert import subset_domain
from weather_assets.ingest.layout import raw_inputs_relpath
from weather_assets.partitions import partition_key_to_time
from weather_assets.retries import IO_RETRY
from weather_assets.settings import PlatformSettings

RAW_INPUTS_CODE_VERSION = "1"


def upstream_key(settings: PlatformSettings) -> dg.AssetKey:
    """Key of the external asset standing for the upstream provider's cycles."""
    return dg.AssetKey(["upstream", settings.upstream_name])


def raw_inputs_key(settings: PlatformSettings) -> dg.AssetKey:
    """Key of the raw inputs asset of the configured source."""
    return dg.AssetKey(["raw_inputs", settings.upstream_name])


def build_ingest_assets(
    *, settings: PlatformSettings, partitions_def: dg.PartitionsDefinition
) -> list:
    """The upstream external asset and the raw_inputs asset of the configured source."""
    upstream = dg.AssetSpec(
        key=upstream_key(settings),
        description=f"Analyses published by the upstream source {settings.upstream_name!r} "
        f"({settings.upstream_kind} at {settings.upstream_url}); observed, not materialized.",
        group_name="upstream",
        partitions_def=partitions_def,
        kinds={settings.upstream_kind},
    )

    @dg.asset(
        key=raw_inputs_key(settings),
        deps=[upstream.key],
        partitions_def=partitions_def,
        group_name="ingest",
        code_version=RAW_INPUTS_CODE_VERSION,
        kinds={"xarray", "zarr"},
        retry_policy=IO_RETRY,
        metadata={"domain": settings.domain, "resolution": settings.resolution},
    )
    def raw_inputs(
        context: dg.AssetExecutionContext,
        storage: StorageResource,
        upstream: UpstreamSource,
        dask: DaskResource,
    ) -> dg.MaterializeResult:
        """The cycle's analysis, in canonical names and units, cut to the domain."""
        t = partition_key_to_time(context.partition_key)
        source = upstream.cycle_url(t)
        ds = upstream.read_cycle(t)
        # Everything is converted and checked before the first write: bad input writes nothing.
        ds = subset_domain(ds, settings.bbox, settings.grid_resolution, source=source)
        members = [int(m) for m in ds["member"].values] if "member" in ds.dims else [0]
        store = storage.storage()
        written = []
        with dask.client():  # a distributed cluster when one is configured, else local
            for m in members:
                member_ds = ds.sel(member=m, drop=True) if "member" in ds.dims else ds
                member_ds = member_ds.chunk({"time": 1})
                written.append(store.write_zarr(member_ds, raw_inputs_relpath(settings, t, m)))
        checksum = (
            written[0].checksum if len(written) == 1 else _combine(w.checksum for w in written)
        )
        context.log.info(f"raw inputs for {context.partition_key} written to {written[0].url}")
        return dg.MaterializeResult(
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
            },
        )

    return [upstream, raw_inputs]


def _combine(checksums) -> str:
    import hashlib

    return hashlib.sha256("".join(checksums).encode()).hexdigest()
