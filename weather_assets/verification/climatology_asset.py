"""``climatology/<source>`` (unpartitioned): the climatology of the analyses in storage.

Used for ACC when present; see :mod:`weather_assets.verification.climatology` for the maths.
"""

from datetime import datetime, timedelta

import dagster as dg
import xarray as xr
from pydantic import Field

from resources.layout import climatology_relpath, open_raw_inputs, raw_inputs_relpath
from resources.storage import Storage, StorageResource
from weather_assets.partitions import partition_key_to_time, time_to_partition_key
from weather_assets.retries import IO_RETRY
from weather_assets.settings import PlatformSettings
from weather_assets.verification.climatology import compute_climatology
from weather_assets.verification.scores import select_truth_member

CLIMATOLOGY_CODE_VERSION = "1"


class ClimatologyConfig(dg.Config):
    """How much history the climatology uses and how it is smoothed."""

    window_days: int = Field(default=61, description="Day-of-year smoothing window (days).")
    max_history_days: float | None = Field(
        default=None, description="Use at most this many days of the latest history."
    )


def history_times(
    storage: Storage,
    settings: PlatformSettings,
    partition_keys: list[str],
    max_days: float | None,
) -> list[datetime]:
    """Analysis times whose raw inputs are in storage (the latest ``max_days`` if given)."""
    times = [partition_key_to_time(k) for k in partition_keys]
    if max_days is not None and times:
        first = times[-1] - timedelta(days=max_days)
        times = [t for t in times if t >= first]
    return [t for t in times if storage.exists(raw_inputs_relpath(settings, t, 0))]


def open_history(storage: Storage, settings: PlatformSettings, times: list[datetime]) -> xr.Dataset:
    """The control analyses at ``times``, lazily, along ``time``."""
    return xr.concat(
        [select_truth_member(open_raw_inputs(storage, settings, t), 0) for t in times],
        dim="time",
        data_vars="all",
        join="exact",
    )


def climatology_asset(
    *,
    settings: PlatformSettings,
    partitions_def: dg.TimeWindowPartitionsDefinition,
    raw_inputs_key: dg.AssetKey,
    clim_key: dg.AssetKey,
) -> dg.AssetsDefinition:
    """The climatology of ``raw_inputs_key``'s analyses, written under the storage root."""

    @dg.asset(
        key=clim_key,
        retry_policy=IO_RETRY,
        deps=[raw_inputs_key],
        # Its own group: the graph labels nodes by their key's last part, the source's name,
        # which raw_inputs/<source> and upstream/<source> share.
        group_name="climatology",
        code_version=CLIMATOLOGY_CODE_VERSION,
        owners=settings.owners(),
        kinds={"xarray", "zarr"},
        description=f"Climatology of {raw_inputs_key.to_user_string()} (per day of year and "
        "hour, smoothed; hourly mean while history is shorter than a year), for ACC.",
    )
    def climatology(
        context: dg.AssetExecutionContext, config: ClimatologyConfig, storage: StorageResource
    ) -> dg.MaterializeResult:
        """Climatology of the analyses in storage, for anomaly correlation."""
        store = storage.storage()
        keys = partitions_def.get_partition_keys()
        times = history_times(store, settings, keys, config.max_history_days)
        if not times:
            raise FileNotFoundError(
                f"no raw inputs of {settings.upstream_name!r} in storage at {store.root}: "
                "materialize raw_inputs partitions before the climatology"
            )
        history = open_history(store, settings, times)
        # Computed once into memory (it is small next to the history it reads), then written.
        clim = compute_climatology(history, window_days=config.window_days).load()
        clim = clim.chunk({d: 1 for d in ("dayofyear", "hour") if d in clim.dims})
        written = store.write_zarr(clim, climatology_relpath(settings))
        method = clim.attrs["method"]
        if method != "dayofyear_hour":
            context.log.warning(
                f"only {len(times)} analyses over less than a year: the climatology is the "
                "hourly mean of the history (no seasonal cycle); ACC is indicative only"
            )
        return dg.MaterializeResult(
            data_version=dg.DataVersion(written.checksum[:16]),
            metadata={
                "path": dg.MetadataValue.path(written.url),
                "method": method,
                "history_times": len(times),
                "history_start": time_to_partition_key(times[0]),
                "history_end": time_to_partition_key(times[-1]),
                "window_days": config.window_days,
                "bytes": written.nbytes,
            },
        )

    return climatology
