"""Upstream NWP sources: where a cycle's analysis comes from.

Three kinds, one narrow interface (``cycle_url``, ``cycle_members``, ``read_cycle``):

* ``zarr``: stores laid out by the path convention under a prefix (any fsspec URL, e.g. an
  NWP provider's bucket): ``<url>/<analysis_time>/member<k>/<data_kind>.zarr``, where ``url``
  ends at the resolution component (``.../<model>/<config>/<bbox>/<resolution>``);
* ``grib`` / ``netcdf``: files named by a template formatted with the analysis time, e.g.
  ``/data/era5/era5_{analysis_time:%Y%m%d%H}.grib``; a name without placeholder is one file
  holding many analysis times. Only analyses are read from them (a forecast is refused), and
  ensemble members only when the source is configured as an ensemble (``ensemble``).
"""

from __future__ import annotations

import posixpath
from datetime import datetime
from typing import Literal

import dagster as dg
import fsspec
import numpy as np
import xarray as xr
from pydantic import Field

from resources.layout import complete_members
from resources.storage import COMPLETE_MARKER, Storage, s3_options
from weather_assets import paths
from weather_assets.ingest.readers import read_grib, read_netcdf, read_zarr


class UpstreamSource(dg.ConfigurableResource):
    """Where the cycle analyses of one upstream source are read from."""

    name: str = Field(default="simulator", description="Source name; the raw_inputs/<name> asset.")
    kind: Literal["zarr", "grib", "netcdf"] = "zarr"
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

    def _fs(self) -> tuple[fsspec.AbstractFileSystem, str]:
        options = s3_options(self.endpoint_url) if "://" in self.url else {}
        return fsspec.core.url_to_fs(self.url, **options)

    def cycle_url(self, analysis_time: datetime, member: int = 0) -> str:
        """Location of one cycle (one member for zarr)."""
        if self.kind == "zarr":
            key = paths.format_analysis_time(analysis_time)
            return f"{self.url.rstrip('/')}/{key}/member{member}/{self.data_kind}.zarr"
        return self.url.format(analysis_time=analysis_time)

    def list_cycle_keys(self, start_after: str | None = None) -> list[str]:
        """Analysis-time names under a zarr prefix, after ``start_after``, sorted.

        On S3 this is one ListObjectsV2 with a delimiter and ``StartAfter``, so its cost grows
        with the cycles after ``start_after``, not with the bucket's history. Names are not
        validated here: the sensor reports malformed ones.
        """
        if self.kind != "zarr":
            raise ValueError(f"source {self.name!r} is {self.kind}: only zarr sources are listed")
        if self.url.startswith("s3://"):
            return self._list_s3(start_after)
        fs, root = self._fs()
        if not fs.exists(root):
            return []
        names = sorted(posixpath.basename(p.rstrip("/")) for p in fs.ls(root, detail=False))
        # Hidden entries (a writer's .staging area) are never cycles.
        return [
            n for n in names if not n.startswith(".") and (start_after is None or n > start_after)
        ]

    def _list_s3(self, start_after: str | None) -> list[str]:
        import boto3

        bucket, _, prefix = self.url[len("s3://") :].partition("/")
        prefix = prefix.rstrip("/") + "/" if prefix else ""
        client = boto3.client("s3", endpoint_url=self.endpoint_url)
        kwargs = {"Bucket": bucket, "Prefix": prefix, "Delimiter": "/"}
        if start_after:
            # '0' sorts just after '/': skip every object of the start_after cycle itself.
            kwargs["StartAfter"] = f"{prefix}{start_after}0"
        names = []
        for page in client.get_paginator("list_objects_v2").paginate(**kwargs):
            for common in page.get("CommonPrefixes", []):
                name = common["Prefix"][len(prefix) :].rstrip("/")
                if not name.startswith("."):
                    names.append(name)
        return sorted(names)

    def cycle_version(self, key: str) -> str | None:
        """A version of a cycle's control member (etag or size+mtime); None if incomplete.

        zarr: complete once its consolidated metadata exists. Files: the size and mtime; the
        sensor only trusts a file whose version did not change between two ticks.
        """
        fs, root = self._fs()
        if self.kind == "zarr":
            target = posixpath.join(root, key, "member0", f"{self.data_kind}.zarr", COMPLETE_MARKER)
        else:
            target = fs._strip_protocol(self.cycle_url(paths.parse_analysis_time(key)))
        try:
            info = fs.info(target)
        except FileNotFoundError:
            return None
        etag = info.get("ETag") or info.get("etag")
        if etag:
            return str(etag).strip('"')
        return f"{info.get('size')}-{info.get('mtime') or info.get('LastModified')}"

    def cycle_members(self, analysis_time: datetime) -> list[int]:
        """Members of a complete zarr cycle (complete = consolidated metadata present)."""
        if self.kind != "zarr":
            return [0]
        options = s3_options(self.endpoint_url) if "://" in self.url else {}
        cycle_dir = paths.format_analysis_time(analysis_time)
        return complete_members(Storage(self.url, options), cycle_dir, self.data_kind)

    def read_cycle(self, analysis_time: datetime) -> xr.Dataset:
        """The cycle's analysis as a canonical dataset (with a ``member`` dim if several).

        FileNotFoundError naming the location when the cycle has not arrived.
        """
        ds = self._read(analysis_time)
        missing = [v for v in self.variables or [] if v not in ds.data_vars]
        if missing:
            raise KeyError(
                f"{self.cycle_url(analysis_time)} lacks required variable(s) "
                f"{', '.join(missing)}; it provides {', '.join(map(str, ds.data_vars))}"
            )
        return ds

    def _read(self, analysis_time: datetime) -> xr.Dataset:
        t64 = np.datetime64(analysis_time.replace(tzinfo=None), "ns")
        if self.kind == "grib":
            return read_grib(self.cycle_url(analysis_time), t64, ensemble=self.ensemble)
        if self.kind == "netcdf":
            return read_netcdf(self.cycle_url(analysis_time), t64, ensemble=self.ensemble)
        members = self.cycle_members(analysis_time)
        if not members:
            raise FileNotFoundError(
                f"cycle {paths.format_analysis_time(analysis_time)} has not arrived: no complete "
                f"store at {self.cycle_url(analysis_time)}"
            )
        options = s3_options(self.endpoint_url) if "://" in self.url else {}
        datasets = [read_zarr(self.cycle_url(analysis_time, m), options) for m in members]
        for ds in datasets:
            if t64 not in ds["time"].values.astype("datetime64[ns]"):
                raise ValueError(
                    f"zarr store {self.cycle_url(analysis_time)} holds times "
                    f"{ds['time'].values} but its path says {t64}"
                )
        if len(datasets) == 1:
            return datasets[0].sel(time=[t64])
        return xr.concat(datasets, dim=xr.DataArray(members, dims="member", name="member")).sel(
            time=[t64]
        )
