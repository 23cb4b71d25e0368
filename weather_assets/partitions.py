"""Analysis-time partitions: one partition per forecast cycle.

Keys use ``%Y-%m-%dT%H%MZ`` (``2026-01-01T0600Z``), the same string as the analysis-time
component of storage paths, so a partition key *is* a path component.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg

from weather_assets.settings import PlatformSettings

PARTITION_FMT = "%Y-%m-%dT%H%MZ"


def analysis_time_partitions(
    start: str = "2026-01-01T0000Z", cron_schedule: str = "0 */6 * * *", end: str | None = None
) -> dg.TimeWindowPartitionsDefinition:
    """Analysis-time partitions from ``start`` (in the key format) on a UTC cron cadence.

    A time window is normally a partition only once it has ended; a cycle's analysis exists
    at the start of its window, so ``end_offset=1`` makes the current cycle a partition too.
    With ``end`` (a cycle on the cadence, inclusive) the partitions stop there: a demo or a
    reforecast archive has a fixed set of cycles, not one per cycle up to today.
    """
    open_ended = dg.TimeWindowPartitionsDefinition(
        start=start,
        fmt=PARTITION_FMT,
        cron_schedule=cron_schedule,
        timezone="UTC",
        end_offset=1,
    )
    if end is None:
        return open_ended
    last = partition_key_to_time(end)
    if not on_cadence(open_ended, last) or last < partition_key_to_time(start):
        raise ValueError(
            f"last partition {end!r} is not a cycle of the cadence {cron_schedule!r} "
            f"at or after {start!r}"
        )
    return dg.TimeWindowPartitionsDefinition(
        start=start,
        fmt=PARTITION_FMT,
        cron_schedule=cron_schedule,
        timezone="UTC",
        # exclusive: the end of the last cycle's window
        end=open_ended.time_window_for_partition_key(end).end.strftime(PARTITION_FMT),
    )


def settings_partitions(settings: PlatformSettings) -> dg.TimeWindowPartitionsDefinition:
    """The deployment's analysis-time partitions (``WXPLAT_PARTITIONS_START/END/CRON``)."""
    return analysis_time_partitions(
        settings.partitions_start, settings.partitions_cron, settings.partitions_end
    )


def after_last_partition(partitions_def: dg.TimeWindowPartitionsDefinition, time: datetime) -> bool:
    """Whether ``time`` lies after the last partition of partitions with a fixed end."""
    end = partitions_def.end
    return end is not None and time >= end.astimezone(UTC)


def partition_key_to_time(key: str) -> datetime:
    """The analysis time (tz-aware UTC) of a partition key; ValueError on a malformed key."""
    try:
        return datetime.strptime(key, PARTITION_FMT).replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(
            f"partition key {key!r} is not an analysis time in the format YYYY-MM-DDThhmmZ"
        ) from None


def time_to_partition_key(time: datetime) -> str:
    """The partition key of an analysis time (naive times are taken as UTC)."""
    if time.tzinfo is None:
        time = time.replace(tzinfo=UTC)
    return time.astimezone(UTC).strftime(PARTITION_FMT)


def cadence_neighbours(
    partitions_def: dg.TimeWindowPartitionsDefinition, time: datetime
) -> tuple[str, str]:
    """The keys on the partitions' cadence at or before ``time`` and after it.

    Whether they lie between the first and the last partition is not checked; ``time`` is on
    the cadence when the first of them is its own key.
    """
    before = partitions_def.get_partition_key_for_timestamp(time.timestamp())
    after = partitions_def.time_window_for_partition_key(before).end
    return before, time_to_partition_key(after)


def on_cadence(partitions_def: dg.TimeWindowPartitionsDefinition, time: datetime) -> bool:
    """Whether ``time`` is a tick of the partitions' cadence (start and end not checked)."""
    return partition_key_to_time(cadence_neighbours(partitions_def, time)[0]) == time


def partition_cadence(partitions_def: dg.TimeWindowPartitionsDefinition) -> timedelta:
    """Spacing of the analysis-time partitions (from the first window)."""
    first = partitions_def.get_first_partition_window()
    if first is None:
        raise ValueError("the partitions definition has no partitions yet")
    return first.end - first.start


def partition_offset(span: timedelta, cadence: timedelta) -> int:
    """Number of partitions after t that start at or before t + ``span``.

    Data that exists only at partition times (analyses) is therefore found up to the latest
    partition at or before t + span; times between partitions (a 6-hourly model's leads on
    12-hourly analyses) have no partition.
    """
    if span < timedelta(0):
        raise ValueError(f"time span {span} is negative")
    return int(span // cadence)
