"""The platform's one Dagster code location: assembles assets, checks, sensors and resources.

Everything environment-specific comes from :func:`weather_assets.settings.load_settings`.
"""

from __future__ import annotations

import dagster as dg

from resources.storage import StorageResource
from resources.upstream import UpstreamSource
from weather_assets.ingest.assets import build_ingest_assets, raw_inputs_key
from weather_assets.ingest.checks import build_ingest_checks
from weather_assets.partitions import analysis_time_partitions
from weather_assets.settings import PlatformSettings, load_settings


def build_definitions(settings: PlatformSettings) -> dg.Definitions:
    """All definitions of the code location for one deployment's settings."""
    partitions_def = analysis_time_partitions(settings.partitions_start, settings.partitions_cron)
    assets: list = build_ingest_assets(settings=settings, partitions_def=partitions_def)
    checks: list = build_ingest_checks(settings=settings, asset_key=raw_inputs_key(settings))
    resources = {
        "storage": StorageResource(
            root=settings.storage_root, endpoint_url=settings.storage_endpoint_url
        ),
        "upstream": UpstreamSource(
            name=settings.upstream_name,
            kind=settings.upstream_kind,
            url=settings.upstream_url,
            endpoint_url=settings.upstream_endpoint_url,
            variables=list(settings.upstream_variables) if settings.upstream_variables else None,
        ),
    }
    return dg.Definitions(assets=assets, asset_checks=checks, resources=resources)


defs = build_definitions(load_settings())
