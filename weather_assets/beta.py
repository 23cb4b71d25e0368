"""Dagster beta and preview parameters the platform uses on purpose.

Each is named where it is used (sensor ``owners``, partitioned check specs, partition
mappings that allow partitions not yet there); their warnings would otherwise repeat on
every load of the code location (each run, step and sensor process) and drown useful lines.
"""

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg


@contextmanager
def quiet_beta() -> Iterator[None]:
    """Build definitions with deliberate beta/preview parameters without their warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        warnings.simplefilter("ignore", dg.PreviewWarning)
        yield
