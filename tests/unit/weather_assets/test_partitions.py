from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from weather_assets import paths
from weather_assets.partitions import (
    analysis_time_partitions,
    partition_key_to_time,
    time_to_partition_key,
)


def test_default_is_six_hourly_with_path_format_keys():
    pd = analysis_time_partitions("2026-01-01T0000Z")
    keys = pd.get_partition_keys(current_time=datetime(2026, 1, 2, 1, tzinfo=UTC))
    # The current cycle (00Z of the 2nd) is a partition as soon as its analysis time passed.
    assert keys == [
        "2026-01-01T0000Z",
        "2026-01-01T0600Z",
        "2026-01-01T1200Z",
        "2026-01-01T1800Z",
        "2026-01-02T0000Z",
    ]


def test_twelve_hourly_source():
    pd = analysis_time_partitions("2017-01-01T0000Z", "0 */12 * * *")
    keys = pd.get_partition_keys(current_time=datetime(2017, 1, 2, 23, tzinfo=UTC))
    assert keys == ["2017-01-01T0000Z", "2017-01-01T1200Z", "2017-01-02T0000Z", "2017-01-02T1200Z"]


@given(
    st.datetimes(
        min_value=datetime(1950, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ).map(lambda t: t.replace(second=0, microsecond=0))
)
def test_partition_key_is_the_path_component(t):
    key = time_to_partition_key(t)
    assert key == paths.format_analysis_time(t)
    assert partition_key_to_time(key) == t


def test_tz_aware_time_converted_to_utc():
    t = datetime(2026, 1, 1, 8, tzinfo=timezone(timedelta(hours=2)))
    assert time_to_partition_key(t) == "2026-01-01T0600Z"


def test_malformed_key_names_it():
    with pytest.raises(ValueError, match="2026-01-01 06:00"):
        partition_key_to_time("2026-01-01 06:00")


def test_cadence_and_offsets_for_data_at_partition_times():
    from weather_assets.partitions import partition_cadence, partition_offset

    six = timedelta(hours=6)
    assert partition_cadence(analysis_time_partitions("2026-01-01T0000Z")) == six
    twelve = analysis_time_partitions("2026-01-01T0000Z", "0 */12 * * *")
    assert partition_cadence(twelve) == timedelta(hours=12)
    assert partition_offset(timedelta(days=5), six) == 20
    # A 6-hourly model's 18 h lead on 12-hourly analyses: the last analysis is at +12 h.
    assert partition_offset(timedelta(hours=18), timedelta(hours=12)) == 1
    assert partition_offset(timedelta(0), six) == 0
    with pytest.raises(ValueError, match="negative"):
        partition_offset(-six, six)


def test_fixed_window_of_cycles():
    parts = analysis_time_partitions("2026-01-01T0000Z", end="2026-01-04T1800Z")
    keys = parts.get_partition_keys()
    assert (len(keys), keys[0], keys[-1]) == (16, "2026-01-01T0000Z", "2026-01-04T1800Z")
    with pytest.raises(ValueError, match="not a cycle of the cadence"):
        analysis_time_partitions("2026-01-01T0000Z", end="2026-01-04T1900Z")
    with pytest.raises(ValueError, match="at or after"):
        analysis_time_partitions("2026-01-02T0000Z", end="2026-01-01T0000Z")
