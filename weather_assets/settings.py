"""Where the environment is decided: one settings object, read once from ``WXPLAT_*`` variables.

Assets and resources never read ``os.environ`` themselves (secrets come through ``dg.EnvVar``);
``definitions.py`` builds everything from :func:`load_settings`.

| variable | meaning | default |
| --- | --- | --- |
| ``WXPLAT_HOME`` | working area of a local deployment | ``<project>/.wxplat`` |
| ``WXPLAT_STORAGE_ROOT`` | storage root, any fsspec URL | ``$WXPLAT_HOME/storage`` |
| ``WXPLAT_UPSTREAM_KIND`` | ``zarr``, ``grib`` or ``netcdf`` | ``zarr`` |
| ``WXPLAT_UPSTREAM_URL`` | zarr: path-layout prefix up to ``<resolution>``; grib/netcdf: file template | ``$WXPLAT_HOME/upstream/simulator/analysis/<bbox>/<res>`` |
| ``WXPLAT_UPSTREAM_NAME`` | source name, the ``raw_inputs/<name>`` asset | ``simulator`` |
| ``WXPLAT_UPSTREAM_ENDPOINT_URL`` | S3 endpoint for the upstream bucket | unset |
| ``WXPLAT_STORAGE_ENDPOINT_URL`` | S3 endpoint for the storage root | unset |
| ``WXPLAT_STORAGE_TIMEOUT_SECONDS`` | timeout of every object-store call | ``20`` |
| ``WXPLAT_UPSTREAM_VARIABLES`` | comma-separated variables every cycle must have | any |
| ``WXPLAT_UPSTREAM_ENSEMBLE`` | grib/netcdf upstream is an ensemble: keep its members (else member 0 only) | ``false`` |
| ``WXPLAT_PARTITIONS_START`` | first analysis time, ``%Y-%m-%dT%H%MZ`` | ``2026-01-01T0000Z`` |
| ``WXPLAT_PARTITIONS_END`` | last analysis time (empty: the current cycle, moving on with the clock) | unset |
| ``WXPLAT_PARTITIONS_CRON`` | cycle cadence | ``0 */6 * * *`` |
| ``WXPLAT_DOMAIN`` | bbox component of the grid, e.g. ``w0_s-90_e358_n90`` | simulator's global grid |
| ``WXPLAT_RESOLUTION`` | resolution component | ``dx2deg_dy2deg`` |
| ``WXPLAT_REGISTRY_DIR`` | folder of model registry YAML entries | ``model_registry/models`` |
| ``WXPLAT_DEPLOYMENT`` | ``local`` or ``kubernetes`` | ``local`` |
| ``WXPLAT_GPU_POOL_SIZE`` | GPUs available to the ``gpu`` pool | ``1`` |
| ``WXPLAT_ALERT_WEBHOOK_URL`` | where run-failure alerts are POSTed | unset (log only) |
| ``WXPLAT_DASK_SCHEDULER_ADDRESS`` | dask scheduler for large data steps | unset (local) |
| ``WXPLAT_SCORECARD_BASELINE`` | registry model the scorecard compares against | ``persistence`` |
| ``WXPLAT_AUTOMATION_LOOKBACK_HOURS`` | cycles this recent run by themselves (older: backfill) | ``48`` |
| ``WXPLAT_LATE_AFTER_MINUTES`` | a cycle not ingested this long after its time is late | ``180`` |
| ``WXPLAT_OWNER`` | owner of the platform's assets in the UI (e-mail or ``team:<name>``) | ``team:weather-platform`` |
| ``WXPLAT_MLFLOW_TRACKING_URI`` | MLflow tracking server of ``wxplat train`` and ``models:/`` artifacts | ``sqlite:///$WXPLAT_HOME/mlflow/mlflow.db`` |
| ``WXPLAT_VERIFICATION_REGIONS`` | extra verification regions by bounding box, ``name=lon_min,lat_min,lon_max,lat_max`` separated by ``;`` | none (global, tropics, extratropics only) |
| ``WXPLAT_VERIFICATION_BOUNDARY_POINTS`` | grid points excluded at each edge of a limited-area grid when scoring | ``10`` |
| ``WXPLAT_DRIFT_MAX_ABS_MEAN_Z`` | input drift: largest allowed absolute mean of a feature's standardized input | ``4`` |
| ``WXPLAT_DRIFT_MIN_STD_Z`` / ``WXPLAT_DRIFT_MAX_STD_Z`` | input drift: allowed spread of a feature's standardized input | ``0.1`` / ``10`` |
| ``WXPLAT_DRIFT_K`` / ``WXPLAT_DRIFT_MAX_FRAC_BEYOND_K`` | input drift: at most this fraction of points beyond k sigma | ``5`` / ``0.05`` |

A local deployment may also keep settings in ``$WXPLAT_HOME/settings.env`` (``NAME=value``
lines, written by ``wxplat demo`` for the demo's window of cycles): the environment wins
over the file, the file over the defaults.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from weather_assets import paths

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BBOX = "w0_s-90_e358_n90"
DEFAULT_RESOLUTION = "dx2deg_dy2deg"


# The named verification regions (weather_assets.verification.regions.REGIONS); a configured
# bounding box may not reuse their names.
NAMED_REGIONS = ("global", "tropics", "northern_extratropics", "southern_extratropics")


class RegionBox(BaseModel):
    """A verification region by bounding box, in degrees (longitudes either convention)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,39}$")
    lon_min: float = Field(ge=-360, le=360)
    lat_min: float = Field(ge=-90, le=90)
    lon_max: float = Field(ge=-360, le=360)
    lat_max: float = Field(ge=-90, le=90)

    @model_validator(mode="after")
    def _latitudes(self) -> RegionBox:
        if self.lat_min >= self.lat_max:
            raise ValueError(
                f"region {self.name!r}: lat_min {self.lat_min:g} must be below lat_max "
                f"{self.lat_max:g}"
            )
        return self

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """(lon_min, lat_min, lon_max, lat_max)."""
        return (self.lon_min, self.lat_min, self.lon_max, self.lat_max)


def parse_region_boxes(text: str) -> tuple[RegionBox, ...]:
    """``europe=-10,35,30,70;alps=5,43,17,49`` as region boxes; ValueError naming a bad entry."""
    boxes = []
    for entry in (e.strip() for e in text.split(";")):
        if not entry:
            continue
        name, sep, numbers = entry.partition("=")
        values = [v.strip() for v in numbers.split(",")]
        if not sep or len(values) != 4:
            raise ValueError(
                f"region {entry!r} is not name=lon_min,lat_min,lon_max,lat_max (degrees)"
            )
        try:
            lon_min, lat_min, lon_max, lat_max = (float(v) for v in values)
        except ValueError:
            raise ValueError(f"region {entry!r}: the bounds must be numbers") from None
        try:
            boxes.append(
                RegionBox(
                    name=name.strip(),
                    lon_min=lon_min,
                    lat_min=lat_min,
                    lon_max=lon_max,
                    lat_max=lat_max,
                )
            )
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(x) for x in err["loc"]) or "bounds"
            raise ValueError(f"region {entry!r}: {where}: {err['msg']}") from None
    return tuple(boxes)


def check_owner(owner: str) -> str:
    """An asset owner as Dagster takes it: an e-mail address or ``team:<name>``."""
    if owner.startswith("team:") and len(owner) > 5 and " " not in owner:
        return owner
    if re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", owner):
        return owner
    raise ValueError(f"owner {owner!r} is neither an e-mail address nor 'team:<name>'")


class PlatformSettings(BaseModel):
    """Deployment settings of the platform, validated once at load."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    home: Path
    storage_root: str
    storage_endpoint_url: str | None = None
    storage_timeout_seconds: float = Field(default=20.0, gt=0)
    upstream_kind: Literal["zarr", "grib", "netcdf"] = "zarr"
    upstream_url: str
    upstream_name: str = "simulator"
    upstream_endpoint_url: str | None = None
    upstream_variables: tuple[str, ...] | None = None
    upstream_ensemble: bool = False
    partitions_start: str = "2026-01-01T0000Z"
    partitions_end: str | None = None
    partitions_cron: str = "0 */6 * * *"
    domain: str = DEFAULT_BBOX
    resolution: str = DEFAULT_RESOLUTION
    registry_dir: Path = PROJECT_ROOT / "model_registry" / "models"
    deployment: Literal["local", "kubernetes"] = "local"
    gpu_pool_size: int = Field(default=1, ge=0)
    alert_webhook_url: str | None = None
    dask_scheduler_address: str | None = None
    scorecard_baseline: str = "persistence"
    automation_lookback_hours: int = Field(default=48, ge=0)
    late_after_minutes: int = Field(default=180, ge=0)
    owner: str = "team:weather-platform"
    mlflow_tracking_uri: str | None = None  # None: a local store under home (tracking.py)
    # Verification regions beyond the named ones (weather_assets.verification.regions), and
    # the boundary zone of a limited-area grid left out of every score.
    verification_regions: tuple[RegionBox, ...] = ()
    verification_boundary_points: int = Field(default=10, ge=0)
    # Input drift thresholds of the blocking ``input_drift`` check (forecast/drift.py).
    drift_max_abs_mean_z: float = Field(default=4.0, gt=0)
    drift_min_std_z: float = Field(default=0.1, ge=0)
    drift_max_std_z: float = Field(default=10.0, gt=0)
    drift_k: float = Field(default=5.0, gt=0)
    drift_max_frac_beyond_k: float = Field(default=0.05, ge=0, le=1)

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        paths.parse_bbox(value)
        return value

    @field_validator("resolution")
    @classmethod
    def _resolution(cls, value: str) -> str:
        paths.parse_resolution(value)
        return value

    @field_validator("partitions_start", "partitions_end")
    @classmethod
    def _start(cls, value: str | None) -> str | None:
        if value is not None:
            paths.parse_analysis_time(value)
        return value

    @field_validator("owner")
    @classmethod
    def _owner(cls, value: str) -> str:
        return check_owner(value)

    @field_validator("verification_regions", mode="before")
    @classmethod
    def _regions(cls, value: object) -> object:
        return parse_region_boxes(value) if isinstance(value, str) else value

    @field_validator("verification_regions")
    @classmethod
    def _distinct_regions(cls, value: tuple[RegionBox, ...]) -> tuple[RegionBox, ...]:
        names = [box.name for box in value]
        clash = sorted({n for n in names if names.count(n) > 1 or n in NAMED_REGIONS})
        if clash:
            raise ValueError(
                f"region name(s) {clash} used twice or taken by a named region "
                f"({', '.join(NAMED_REGIONS)})"
            )
        return value

    @model_validator(mode="after")
    def _drift_spread(self) -> PlatformSettings:
        if self.drift_min_std_z >= self.drift_max_std_z:
            raise ValueError(
                f"drift_min_std_z (WXPLAT_DRIFT_MIN_STD_Z) {self.drift_min_std_z:g} must be "
                f"below drift_max_std_z (WXPLAT_DRIFT_MAX_STD_Z) {self.drift_max_std_z:g}"
            )
        return self

    def owners(self, model_owners: tuple[str, ...] = ()) -> list[str]:
        """Owners shown on an asset: the model's own, else the platform's."""
        return list(model_owners) or [self.owner]

    @field_validator("upstream_name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value or not value.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"source name {value!r} must be letters, digits, '-' or '_'")
        return value

    @property
    def bbox(self) -> dict:
        """The domain as a bbox dict (lon_min, lat_min, lon_max, lat_max)."""
        return paths.parse_bbox(self.domain)

    @property
    def grid_resolution(self) -> dict:
        """The resolution as a dict (dx, dy, units)."""
        return paths.parse_resolution(self.resolution)


_ENV = {
    "storage_root": "WXPLAT_STORAGE_ROOT",
    "storage_endpoint_url": "WXPLAT_STORAGE_ENDPOINT_URL",
    "storage_timeout_seconds": "WXPLAT_STORAGE_TIMEOUT_SECONDS",
    "upstream_kind": "WXPLAT_UPSTREAM_KIND",
    "upstream_url": "WXPLAT_UPSTREAM_URL",
    "upstream_name": "WXPLAT_UPSTREAM_NAME",
    "upstream_endpoint_url": "WXPLAT_UPSTREAM_ENDPOINT_URL",
    "upstream_variables": "WXPLAT_UPSTREAM_VARIABLES",
    "upstream_ensemble": "WXPLAT_UPSTREAM_ENSEMBLE",
    "partitions_start": "WXPLAT_PARTITIONS_START",
    "partitions_end": "WXPLAT_PARTITIONS_END",
    "partitions_cron": "WXPLAT_PARTITIONS_CRON",
    "domain": "WXPLAT_DOMAIN",
    "resolution": "WXPLAT_RESOLUTION",
    "registry_dir": "WXPLAT_REGISTRY_DIR",
    "deployment": "WXPLAT_DEPLOYMENT",
    "gpu_pool_size": "WXPLAT_GPU_POOL_SIZE",
    "alert_webhook_url": "WXPLAT_ALERT_WEBHOOK_URL",
    "dask_scheduler_address": "WXPLAT_DASK_SCHEDULER_ADDRESS",
    "scorecard_baseline": "WXPLAT_SCORECARD_BASELINE",
    "automation_lookback_hours": "WXPLAT_AUTOMATION_LOOKBACK_HOURS",
    "late_after_minutes": "WXPLAT_LATE_AFTER_MINUTES",
    "owner": "WXPLAT_OWNER",
    "mlflow_tracking_uri": "WXPLAT_MLFLOW_TRACKING_URI",
    "verification_regions": "WXPLAT_VERIFICATION_REGIONS",
    "verification_boundary_points": "WXPLAT_VERIFICATION_BOUNDARY_POINTS",
    "drift_max_abs_mean_z": "WXPLAT_DRIFT_MAX_ABS_MEAN_Z",
    "drift_min_std_z": "WXPLAT_DRIFT_MIN_STD_Z",
    "drift_max_std_z": "WXPLAT_DRIFT_MAX_STD_Z",
    "drift_k": "WXPLAT_DRIFT_K",
    "drift_max_frac_beyond_k": "WXPLAT_DRIFT_MAX_FRAC_BEYOND_K",
}
HOME_SETTINGS = "settings.env"  # a local deployment's own settings, under WXPLAT_HOME


def read_home_settings(home: Path) -> dict[str, str]:
    """``NAME=value`` lines of ``<home>/settings.env`` (comments and blank lines skipped)."""
    path = home / HOME_SETTINGS
    if not path.is_file():
        return {}
    values = {}
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or name.strip() not in _ENV.values():
            raise ValueError(f"{path}, line {n}: {line!r} is not a WXPLAT_<NAME>=value setting")
        values[name.strip()] = value.strip()
    return values


def write_home_settings(home: Path, values: Mapping[str, str | None]) -> Path:
    """Update ``<home>/settings.env`` with ``values`` (None removes a setting), atomically."""
    current = read_home_settings(home)
    for name, value in values.items():
        if name not in _ENV.values():
            raise ValueError(f"{name} is not a platform setting")
        if value is None:
            current.pop(name, None)
        else:
            current[name] = value
    home.mkdir(parents=True, exist_ok=True)
    path = home / HOME_SETTINGS
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        "# Settings of this local deployment (the environment overrides them).\n"
        + "".join(f"{k}={v}\n" for k, v in sorted(current.items()))
    )
    tmp.replace(path)
    return path


def load_settings(environ: Mapping[str, str] | None = None) -> PlatformSettings:
    """Settings from ``WXPLAT_*`` variables (``os.environ`` by default), with local defaults."""
    env = os.environ if environ is None else environ
    home = Path(env.get("WXPLAT_HOME") or PROJECT_ROOT / ".wxplat").resolve()
    env = {**read_home_settings(home), **{k: v for k, v in env.items() if v}}
    values: dict[str, object] = {
        "home": home,
        "storage_root": str(home / "storage"),
        "upstream_url": str(
            home / "upstream" / "simulator" / "analysis" / DEFAULT_BBOX / DEFAULT_RESOLUTION
        ),
    }
    for field, var in _ENV.items():
        if env.get(var):
            values[field] = env[var]
    if isinstance(values.get("upstream_variables"), str):
        values["upstream_variables"] = tuple(
            v.strip() for v in str(values["upstream_variables"]).split(",") if v.strip()
        )
    try:
        return PlatformSettings(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        if not err["loc"]:  # a check across several settings names them itself
            raise ValueError(f"settings are invalid: {err['msg']}") from None
        field = str(err["loc"][0])
        var = _ENV.get(field, field)
        raise ValueError(f"setting {var}={values.get(field)!r} is invalid: {err['msg']}") from None
