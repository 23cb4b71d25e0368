"""The ``upstream`` resource: the configured upstream source, as a Dagster resource.

A thin :class:`dagster.ConfigurableResource` over the plain sources of
:mod:`resources.sources`: ``kind`` picks the class from ``SOURCES``, and every method
delegates to :meth:`UpstreamSource.source`. The ``variables`` requirement is applied here,
once, to whatever kind reads the cycle.
"""

from __future__ import annotations

from datetime import datetime

import dagster as dg
import xarray as xr
from pydantic import Field, field_validator

from resources.sources import (
    ListedSource,
    Source,
    SourceConfig,
    make_source,
    require_variables,
    source_class,
)


class UpstreamSource(dg.ConfigurableResource):
    """Where the cycle analyses of one upstream source are read from."""

    name: str = Field(default="simulator", description="Source name; the raw_inputs/<name> asset.")
    kind: str = Field(
        default="zarr", description="Source format, a key of resources.sources.SOURCES."
    )
    url: str = Field(description="zarr: prefix of the path layout; grib/netcdf: file template.")
    data_kind: str = Field(default="analysis", description="zarr: the <data_kind>.zarr name.")
    endpoint_url: str | None = Field(default=None, description="S3-compatible endpoint, if any.")
    variables: list[str] | None = Field(
        default=None, description="Canonical variables every cycle must provide (None: any)."
    )
    ensemble: bool = Field(
        default=False,
        description="grib/netcdf: keep ensemble members (their own numbers); otherwise a file "
        "must hold member 0 only.",
    )

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        source_class(kind)  # ValueError naming the valid kinds
        return kind

    def source(self) -> Source:
        """The plain source object of this configuration."""
        config = SourceConfig(
            url=self.url,
            data_kind=self.data_kind,
            endpoint_url=self.endpoint_url,
            ensemble=self.ensemble,
        )
        return make_source(self.kind, config)

    def cycle_url(self, analysis_time: datetime) -> str:
        """Location of one cycle (its control member for zarr)."""
        return self.source().cycle_url(analysis_time)

    def read_cycle(self, analysis_time: datetime) -> xr.Dataset:
        """The cycle's analysis as a canonical dataset holding every required variable.

        FileNotFoundError naming the location when the cycle has not arrived; KeyError naming
        the required variables it lacks.
        """
        source = self.source()
        ds = source.read_cycle(analysis_time)
        return require_variables(ds, self.variables, source.cycle_url(analysis_time))

    def list_cycle_keys(self, start_after: str | None = None) -> list[str]:
        """Cycle names after ``start_after``, sorted (listable kinds only)."""
        source = self.source()
        if not isinstance(source, ListedSource):
            raise ValueError(f"source {self.name!r} is {self.kind}: its cycles cannot be listed")
        return source.list_cycle_keys(start_after)

    def cycle_version(self, key: str) -> str | None:
        """A version of cycle ``key`` (etag or size+mtime); None while absent or incomplete."""
        return self.source().cycle_version(key)
