"""When the verification assets run, and which analyses a cycle's verification depends on.

The truth for cycle t arrives up to L after t (L the model's max lead time), so cycle t's
verification depends on the analyses of partitions t .. t + L/cadence (a
``TimeWindowPartitionMapping`` with those offsets: lineage shows which analyses verified
which forecast).

``AutomationCondition.eager()`` only looks at the latest time window. The verification
condition is eager with that window widened to ``in_latest_time_window(L + cadence +
margin)``: when the last analysis t+L lands (or any of them is re-materialized), cycle t's
verification runs; it waits while an analysis in its window is missing. The climatology is
ignored by the condition (a missing climatology only skips ACC; a new one does not re-verify
history). The scorecard runs after any verification partition updates.
"""

from collections.abc import Sequence
from datetime import timedelta

import dagster as dg

from weather_assets.beta import quiet_beta
from weather_assets.partitions import partition_offset

DEFAULT_LOOKBACK_MARGIN = timedelta(days=1)


def truth_mapping(max_lead: timedelta, cadence: timedelta) -> dg.TimeWindowPartitionMapping:
    """Cycle t depends on the analyses of partitions t .. t + max_lead (on the cadence).

    Leads between analyses (a 6-hourly model on 12-hourly analyses) are never scored and show
    as missing. Partitions after the latest one do not exist yet; allowing them lets an
    operator run a recent cycle by hand with the leads that have analyses (automation still
    waits for all).
    """
    offset = partition_offset(max_lead, cadence)
    with quiet_beta():  # the allow_... parameter is beta
        return dg.TimeWindowPartitionMapping(
            start_offset=0, end_offset=offset, allow_nonexistent_upstream_partitions=True
        )


def verification_condition(
    max_lead: timedelta, cadence: timedelta, ignore: Sequence[dg.AssetKey] = ()
) -> dg.AutomationCondition:
    """Eager, with the time window widened to cover cycles whose truth is still arriving."""
    lookback = max_lead + cadence + DEFAULT_LOOKBACK_MARGIN
    condition = dg.AutomationCondition.eager().replace(
        "in_latest_time_window", dg.AutomationCondition.in_latest_time_window(lookback)
    )
    if ignore:
        condition = condition.ignore(dg.AssetSelection.assets(*ignore))
    return condition.with_label(f"eager_with_lookback({lookback})")


def scorecard_condition() -> dg.AutomationCondition:
    """After any dependency (a verification partition) is newly updated, unless in progress."""
    return (
        dg.AutomationCondition.any_deps_match(dg.AutomationCondition.newly_updated())
        .since_last_handled()
        .with_label("verification_updated")
        & ~dg.AutomationCondition.in_progress()
    ).with_label("after_new_scores")
