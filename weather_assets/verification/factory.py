"""Every verification asset of a registry: one per model, the climatology and the scorecard."""

from collections.abc import Sequence

import dagster as dg

from model_registry.spec import ModelSpec
from weather_assets.keys import climatology_key
from weather_assets.partitions import partition_cadence
from weather_assets.settings import PlatformSettings
from weather_assets.verification.assets import verification_asset
from weather_assets.verification.climatology_asset import climatology_asset
from weather_assets.verification.scorecard_asset import scorecard_asset


def build_verification_assets(
    specs: Sequence[ModelSpec],
    *,
    settings: PlatformSettings,
    partitions_def: dg.TimeWindowPartitionsDefinition,
    raw_inputs_key: dg.AssetKey,
    baseline: str | None = "persistence",
) -> list[dg.AssetsDefinition]:
    """``verification/<model>`` per spec, ``climatology/<source>`` and the ``scorecard``.

    ``specs`` are registry entries (``ModelSpec``); ``baseline`` names one of them (None: no
    scorecard). Forecasts and scores are found by :mod:`resources.layout`.
    """
    names = [s.name for s in specs]
    if baseline is not None and specs and baseline not in names:
        raise ValueError(
            f"scorecard baseline {baseline!r} is not a registered model; registered: "
            f"{', '.join(names)}"
        )
    cadence = partition_cadence(partitions_def)
    clim_key = climatology_key(settings.upstream_name)
    assets = [
        climatology_asset(
            settings=settings,
            partitions_def=partitions_def,
            raw_inputs_key=raw_inputs_key,
            clim_key=clim_key,
        )
    ]
    for spec in specs:
        assets.append(
            verification_asset(
                spec,
                settings=settings,
                partitions_def=partitions_def,
                raw_inputs_key=raw_inputs_key,
                clim_key=clim_key,
                cadence=cadence,
            )
        )
    if baseline is not None and specs:
        assets.append(
            scorecard_asset(
                specs, settings=settings, partitions_def=partitions_def, baseline=baseline
            )
        )
    return assets
