"""Late-data check: a cycle expected but not ingested some minutes after its analysis time."""

import re
import warnings

import dagster as dg

from weather_assets.settings import PlatformSettings


def deadline_cron(cycle_cron: str, late_after_minutes: int) -> str:
    """The cron of the moments each cycle must have arrived by (cycle time + delay).

    Handles the cadences of analysis cycles (``0 */N * * *`` and explicit hour lists);
    anything else falls back to the cycle cron itself (the next cycle is the deadline).
    """
    match = re.fullmatch(r"0 (\*/(\d+)|[\d,]+) \* \* \*", cycle_cron.strip())
    if not match:
        return cycle_cron
    if match.group(2):
        hours = list(range(0, 24, int(match.group(2))))
    else:
        hours = [int(h) for h in match.group(1).split(",")]
    minute = late_after_minutes % 60
    shifted = sorted({(h + late_after_minutes // 60) % 24 for h in hours})
    return f"{minute} {','.join(map(str, shifted))} * * *"


def build_freshness(
    *, settings: PlatformSettings, raw_inputs: dg.AssetsDefinition
) -> tuple[list, dg.SensorDefinition]:
    """The freshness check on raw_inputs and the sensor that evaluates it.

    Dagster marks time-partition freshness checks as superseded by ``FreshnessPolicy``, but
    the new policies judge an asset's last update, not whether the *latest partition*
    arrived: a backfill of an old cycle would make a late cycle look fresh. For cycles the
    partition-aware check is the right tool, so its warning is silenced here.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.SupersessionWarning)
        checks = dg.build_time_partition_freshness_checks(
            assets=[raw_inputs],
            deadline_cron=deadline_cron(settings.partitions_cron, settings.late_after_minutes),
            timezone="UTC",
        )
        sensor = dg.build_sensor_for_freshness_checks(
            freshness_checks=checks,
            name="raw_inputs_freshness_sensor",
            default_status=dg.DefaultSensorStatus.RUNNING,
        )
    return list(checks), sensor
