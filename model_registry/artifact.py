"""Inference artifacts: a zip holding everything needed to run one trained model.

Layout::

    artifact.yaml             manifest: name, version, architecture + hyper-parameters,
                              features, forcings, timestep, grid, provenance, sha256 of every
                              other file
    weights.pt                a state_dict (torch.save); loaded with weights_only=True only
    model.onnx                the graph of an ``onnx`` artifact (instead of weights.pt), whose
                              tensor contract is the manifest's architecture hyper-parameters
                              (``model_registry.onnx_contract``)
    configs/model.yaml        the model configuration as trained
    stats/stats.zarr/...      mllam-data-prep statistics (a zarr directory inside the zip)
    training_cli_args.yaml    the arguments the training was run with

Entries are written sorted with a fixed timestamp, so the zip's bytes depend only on its
contents. Readers never unpickle anything but tensors, refuse unsafe entry names (absolute,
``..``, symlinks) and check every file against the manifest before using it.

``forcings`` (names from ``weather_assets.forecast.normalize.FORCINGS``) are the computed
inputs the network takes after the state features: its input channels are
``input_features + forcings``, its outputs ``output_features``. The key is written only when
the list is non-empty, and a manifest without it (older artifacts) means no forcings.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import platform
import re
import shutil
import socket
import stat
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import metadata as importlib_metadata
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import xarray as xr
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from model_registry.architectures import names_where
from model_registry.onnx_contract import ONNX_MODEL, parse_contract
from model_registry.registry import load_yaml
from model_registry.spec import Duration, format_duration
from weather_assets.forecast.normalize import check_forcings

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "artifact.yaml"
WEIGHTS = "weights.pt"
MODEL_CONFIG = "configs/model.yaml"
STATS_PREFIX = "stats/stats.zarr/"
CLI_ARGS = "training_cli_args.yaml"
# Architectures whose artifact must hold weights.pt (from the one architecture table).
WEIGHTED_ARCHITECTURES = frozenset(names_where(lambda a: a.needs_weights))
# Architectures whose artifact must hold model.onnx, its contract as hyper-parameters.
ONNX_ARCHITECTURES = frozenset(names_where(lambda a: a.runner == "onnx"))
# neuraloperator adds its constructor kwargs (functions, classes) to state_dict(); they are not
# weights, cannot load with weights_only=True, and the manifest's hyper-parameters replace them.
NEURALOP_METADATA = "_metadata"
# Fixed entry timestamp: the archive's digest then depends on content only.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
# Guards against zip bombs: far above any real model, far below a full disk.
MAX_ENTRIES = 100_000
MAX_UNCOMPRESSED_BYTES = 64 * 1024**3
# Largest single entry a reader inflates (declared or real): above the weights of the models we
# run, below the memory of a worker. A caller with bigger genuine weights passes its own limit.
DEFAULT_MAX_ENTRY_BYTES = 2 * 1024**3
MAX_MANIFEST_BYTES = 16 * 1024**2
_BLOCK = 1 << 20  # entries are inflated, hashed and written one 1 MiB block at a time
# What zipfile/zlib raise on a damaged archive (flipped bits, truncation, bad headers).
_CORRUPT_ZIP = (zipfile.BadZipFile, zlib.error, EOFError)
_VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_PACKAGES = ("weather-platform", "torch", "neuraloperator", "numpy", "xarray", "zarr", "dagster")


class ArtifactError(ValueError):
    """An artifact is missing, unsafe, tampered with or does not match its manifest."""


class AxisSummary(BaseModel):
    """A regular coordinate axis: first value, spacing, number of points."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    first: float
    step: float
    size: int = Field(ge=1)

    def values(self) -> np.ndarray:
        """The axis as an array (rounded like the simulator's grids)."""
        return np.round(self.first + self.step * np.arange(self.size), 6)

    def describe(self) -> str:
        """``first+step*size`` text for error messages."""
        return f"{self.first:g}..{self.first + self.step * (self.size - 1):g} step {self.step:g}"


class GridSummary(BaseModel):
    """The regular latitude/longitude grid a model was trained on."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    latitude: AxisSummary
    longitude: AxisSummary

    @classmethod
    def from_coords(cls, latitude: Sequence[float], longitude: Sequence[float]) -> GridSummary:
        """Summarize 1-D coordinate arrays; ``ValueError`` if they are not evenly spaced."""
        return cls(latitude=_axis("latitude", latitude), longitude=_axis("longitude", longitude))

    def describe(self) -> str:
        """Human-readable grid for error messages."""
        return (
            f"{self.latitude.size}x{self.longitude.size} (lat {self.latitude.describe()}, "
            f"lon {self.longitude.describe()})"
        )

    def matches(self, latitude: Sequence[float], longitude: Sequence[float]) -> bool:
        """True when the coordinates are this grid (to 1e-4 degree)."""
        lat, lon = np.asarray(latitude, float), np.asarray(longitude, float)
        return (
            lat.size == self.latitude.size
            and lon.size == self.longitude.size
            and np.allclose(lat, self.latitude.values(), atol=1e-4)
            and np.allclose(lon, self.longitude.values(), atol=1e-4)
        )


def _axis(name: str, values: Sequence[float]) -> AxisSummary:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D coordinate")
    step = float(np.round(arr[1] - arr[0], 6)) if arr.size > 1 else 0.0
    if arr.size > 2 and not np.allclose(np.diff(arr), step, atol=1e-4):
        raise ValueError(f"{name} is not evenly spaced; artifacts need a regular grid")
    return AxisSummary(first=float(np.round(arr[0], 6)), step=step, size=int(arr.size))


class ArchitectureSpec(BaseModel):
    """Architecture name and the keyword arguments its builder takes."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    hyperparameters: dict[str, Any] = Field(default_factory=dict)


class Manifest(BaseModel):
    """Parsed ``artifact.yaml``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    format_version: int
    name: str
    version: str
    architecture: ArchitectureSpec
    input_features: tuple[str, ...] = Field(min_length=1)
    output_features: tuple[str, ...] = Field(min_length=1)
    forcings: tuple[str, ...] = ()  # absent in artifacts made before forcings existed
    timestep: Duration
    grid: GridSummary | None = None
    provenance: dict[str, Any] = Field(default_factory=dict)
    files: dict[str, str]

    @field_validator("forcings")
    @classmethod
    def _known_forcings(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_forcings(v))

    @property
    def in_channels(self) -> int:
        """Network input channels: the state features, then the forcings."""
        return len(self.input_features) + len(self.forcings)

    @model_validator(mode="after")
    def _onnx_contract(self) -> Manifest:
        # An onnx artifact's hyper-parameters are its tensor contract: parse it and check that
        # it maps every feature and forcing, so a wrong contract fails here, before compute.
        if self.architecture.name not in ONNX_ARCHITECTURES:
            return self
        try:
            contract = parse_contract(self.architecture.hyperparameters)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise ValueError(
                f"onnx contract field 'architecture.hyperparameters.{where}': {err['msg']}"
            ) from None
        try:
            contract.check_channels([*self.input_features, *self.forcings], self.output_features)
        except ValueError as exc:
            raise ValueError(f"onnx contract (architecture.hyperparameters): {exc}") from None
        return self

    @field_validator("version")
    @classmethod
    def _path_safe(cls, v: str) -> str:
        # The version becomes a storage path component (model_config), so keep it plain.
        if not _VERSION_PATTERN.match(v):
            raise ValueError("must be letters, digits, '.', '_' or '-' (a path component)")
        return v


@dataclass(frozen=True)
class LoadedArtifact:
    """A validated artifact in memory: manifest, statistics and weights."""

    path: Path
    sha256: str
    manifest: Manifest
    stats: xr.Dataset
    state_dict: dict[str, torch.Tensor]
    onnx_model: bytes | None = None  # the serialized graph of an onnx artifact

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version


def sha256_file(path: Path | str, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def package_versions(names: Iterable[str] = _PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that shape a model's numerics."""
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


def _state_dict_bytes(state_dict: Mapping[str, torch.Tensor]) -> bytes:
    import torch  # only writing and loading weights needs it, not reading manifests

    clean = {}
    for key, value in state_dict.items():
        if key == NEURALOP_METADATA:
            continue
        if not isinstance(value, torch.Tensor):
            raise ArtifactError(f"state_dict entry {key!r} is not a tensor; only tensors are saved")
        clean[str(key)] = value.detach().to("cpu").contiguous()
    buf = io.BytesIO()
    torch.save(clean, buf)
    return buf.getvalue()


def _stats_files(stats: xr.Dataset) -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "stats.zarr"
        # zarr format 2 with consolidated metadata: what mllam-data-prep and most readers use.
        stats.to_zarr(store, mode="w", zarr_format=2, consolidated=True)
        return {
            STATS_PREFIX + p.relative_to(store).as_posix(): p.read_bytes()
            for p in sorted(store.rglob("*"))
            if p.is_file()
        }


def _yaml_bytes(data: Any) -> bytes:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True).encode("utf-8")


def _plain(value: Any) -> Any:
    """Hyper-parameters as YAML-safe builtins (tuples to lists, numpy scalars to Python)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def build_artifact(
    out_path: Path | str,
    *,
    name: str,
    architecture: str,
    hyperparameters: Mapping[str, Any],
    input_features: Sequence[str],
    output_features: Sequence[str],
    timestep: timedelta | str,
    stats: xr.Dataset,
    forcings: Sequence[str] = (),
    state_dict: Mapping[str, torch.Tensor] | None = None,
    onnx_model: bytes | None = None,
    grid: GridSummary | None = None,
    version: str | None = None,
    model_config: Mapping[str, Any] | None = None,
    training_cli_args: Mapping[str, Any] | None = None,
    training_data: Any = None,
    command: str | None = None,
) -> Path:
    """Write an artifact zip atomically (temporary file, then rename) and return its path."""
    out_path = Path(out_path)
    if architecture in WEIGHTED_ARCHITECTURES and state_dict is None:
        raise ArtifactError(f"architecture {architecture!r} needs weights (a state_dict)")
    if (architecture in ONNX_ARCHITECTURES) != (onnx_model is not None):
        raise ArtifactError(
            f"architecture {architecture!r} "
            + ("needs" if architecture in ONNX_ARCHITECTURES else "takes no")
            + f" {ONNX_MODEL}"
        )
    created = datetime.now(UTC)
    version = version or created.strftime("%Y%m%dT%H%M%SZ")
    hp = _plain(dict(hyperparameters))
    config = (
        _plain(dict(model_config))
        if model_config is not None
        else {
            "name": name,
            "architecture": architecture,
            "hyperparameters": hp,
            "input_features": list(input_features),
            "output_features": list(output_features),
            **({"forcings": list(forcings)} if forcings else {}),
        }
    )
    files: dict[str, bytes] = {
        MODEL_CONFIG: _yaml_bytes(config),
        CLI_ARGS: _yaml_bytes(_plain(dict(training_cli_args or {}))),
        **_stats_files(stats),
    }
    if state_dict is not None:
        files[WEIGHTS] = _state_dict_bytes(state_dict)
    if onnx_model is not None:
        files[ONNX_MODEL] = bytes(onnx_model)
    td = timestep if isinstance(timestep, timedelta) else None
    manifest_data: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "version": version,
        "architecture": {"name": architecture, "hyperparameters": hp},
        "input_features": list(input_features),
        "output_features": list(output_features),
        **({"forcings": list(forcings)} if forcings else {}),
        "timestep": format_duration(td) if td is not None else str(timestep),
        "grid": grid.model_dump() if grid is not None else None,
        "provenance": {
            "command": command if command is not None else " ".join(sys.argv),
            "host": socket.gethostname(),
            "created_utc": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "packages": package_versions(),
            "training_data": _plain(training_data),
        },
        "files": {k: hashlib.sha256(v).hexdigest() for k, v in sorted(files.items())},
    }
    try:
        Manifest.model_validate(manifest_data)
    except ValidationError as exc:
        raise ArtifactError(f"cannot build artifact {out_path}: {_first_error(exc)}") from None
    files[MANIFEST] = _yaml_bytes(manifest_data)

    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out_path.name}.", dir=out_path.parent)
    try:
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w") as zf:
            for entry in [MANIFEST, *sorted(k for k in files if k != MANIFEST)]:
                info = zipfile.ZipInfo(entry, date_time=_ZIP_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = (stat.S_IFREG | 0o644) << 16
                zf.writestr(info, files[entry])
        os.replace(tmp_name, out_path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return out_path


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "<manifest>"
    return f"field '{field}': {err['msg']}"


def _open_zip(path: Path) -> zipfile.ZipFile:
    if not path.is_file():
        raise ArtifactError(f"artifact file not found: {path}")
    if not zipfile.is_zipfile(path):
        raise ArtifactError(f"{path} is not a zip archive")
    try:
        return zipfile.ZipFile(path)
    except _CORRUPT_ZIP as exc:
        raise ArtifactError(f"{path} is a damaged zip archive ({exc})") from None


def _too_large(path: Path | str, name: str, size: str, limit: int) -> ArtifactError:
    return ArtifactError(
        f"{path}: entry {name!r} {size} uncompressed, over the limit of {limit} bytes per "
        "entry (max_entry_bytes, --max-entry-bytes); refused as a possible zip bomb"
    )


def check_entries(
    zf: zipfile.ZipFile,
    path: Path | str = "<zip>",
    *,
    max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES,
) -> list[zipfile.ZipInfo]:
    """Refuse unsafe entries (absolute, ``..``, symlinks, duplicates, bombs); return files."""
    infos = zf.infolist()
    if len(infos) > MAX_ENTRIES:
        raise ArtifactError(f"{path}: {len(infos)} entries exceed the limit of {MAX_ENTRIES}")
    seen: set[str] = set()
    total = 0
    files = []
    for info in infos:
        name = info.filename
        pure = PurePosixPath(name)
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or "\\" in name:
            raise ArtifactError(f"{path}: unsafe entry {name!r} (absolute path)")
        if ".." in pure.parts:
            raise ArtifactError(f"{path}: unsafe entry {name!r} (contains '..')")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise ArtifactError(f"{path}: unsafe entry {name!r} (symbolic link)")
        if info.flag_bits & 0x1:
            raise ArtifactError(f"{path}: entry {name!r} is encrypted")
        if name in seen:
            raise ArtifactError(f"{path}: duplicate entry {name!r}")
        if info.file_size > max_entry_bytes:
            raise _too_large(path, name, f"declares {info.file_size} bytes", max_entry_bytes)
        seen.add(name)
        total += info.file_size
        if total > MAX_UNCOMPRESSED_BYTES:
            raise ArtifactError(f"{path}: uncompressed size exceeds {MAX_UNCOMPRESSED_BYTES} bytes")
        if not info.is_dir():
            files.append(info)
    return files


def _stream_entry(
    zf: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    path: Path,
    out: BinaryIO | None,
    max_entry_bytes: int,
) -> str:
    """Inflate one entry block by block into ``out`` (if any) and return its sha256.

    Memory stays at one block whatever the entry's size. Bit rot (bad CRC, bad deflate data,
    truncation) becomes an ``ArtifactError`` naming the zip and the entry.
    """
    digest = hashlib.sha256()
    size = 0
    try:
        with zf.open(info) as src:
            while block := src.read(_BLOCK):
                size += len(block)
                # zipfile stops at the declared size (check_entries bounds it); counting keeps
                # the limit whatever a damaged or forged directory claims.
                if size > max_entry_bytes:
                    raise _too_large(
                        path, info.filename, f"inflates past {size} bytes", max_entry_bytes
                    )
                digest.update(block)
                if out is not None:
                    out.write(block)
    except _CORRUPT_ZIP as exc:
        raise ArtifactError(
            f"{path}: entry {info.filename!r} is corrupt ({exc}); rebuild or re-download the "
            "artifact"
        ) from None
    return digest.hexdigest()


def _unpack(
    zf: zipfile.ZipFile,
    path: Path,
    infos: Iterable[zipfile.ZipInfo],
    dest: Path,
    max_entry_bytes: int,
) -> dict[str, str]:
    """Stream entries (already passed by ``check_entries``) under ``dest``; their sha256s."""
    root = dest.resolve()
    digests = {}
    for info in infos:
        target = (dest / info.filename).resolve()
        if not target.is_relative_to(root):  # belt and braces after check_entries
            raise ArtifactError(f"{path}: unsafe entry {info.filename!r} (leaves {dest})")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as out:
                digests[info.filename] = _stream_entry(zf, info, path, out, max_entry_bytes)
        except OSError as exc:  # a full disk, or a forged zip holding both 'a' and 'a/b'
            raise ArtifactError(
                f"{path}: entry {info.filename!r} cannot be written to {target} ({exc.strerror})"
            ) from None
    return digests


def _read_manifest(zf: zipfile.ZipFile, path: Path, max_entry_bytes: int) -> Manifest:
    try:
        info = zf.getinfo(MANIFEST)
    except KeyError:
        raise ArtifactError(f"{path}: missing {MANIFEST}") from None
    buf = io.BytesIO()
    _stream_entry(zf, info, path, buf, min(max_entry_bytes, MAX_MANIFEST_BYTES))
    try:
        data = load_yaml(buf.getvalue())
        return Manifest.model_validate(data)
    except yaml.YAMLError as exc:
        raise ArtifactError(f"{path}: {MANIFEST} is not valid YAML ({exc})") from None
    except ValidationError as exc:
        raise ArtifactError(f"{path}: {MANIFEST} {_first_error(exc)}") from None


def _unpack_verified(
    zf: zipfile.ZipFile, path: Path, manifest: Manifest, dest: Path, max_entry_bytes: int
) -> None:
    """Stream every listed file under ``dest``, each checked against its manifest sha256."""
    infos = {i.filename: i for i in zf.infolist() if not i.is_dir() and i.filename != MANIFEST}
    listed = set(manifest.files)
    if missing := sorted(listed - set(infos)):
        raise ArtifactError(f"{path}: file {missing[0]!r} listed in {MANIFEST} is missing")
    if extra := sorted(set(infos) - listed):
        raise ArtifactError(f"{path}: file {extra[0]!r} is not listed in {MANIFEST}")
    required = [MODEL_CONFIG, CLI_ARGS]
    if manifest.architecture.name in WEIGHTED_ARCHITECTURES:
        required.append(WEIGHTS)
    if manifest.architecture.name in ONNX_ARCHITECTURES:
        required.append(ONNX_MODEL)
    for name in required:
        if name not in listed:
            raise ArtifactError(f"{path}: required file {name!r} is absent")
    if not any(n.startswith(STATS_PREFIX) for n in listed):
        raise ArtifactError(f"{path}: required statistics {STATS_PREFIX} are absent")
    digests = _unpack(zf, path, [infos[n] for n in sorted(listed)], dest, max_entry_bytes)
    for name, actual in digests.items():
        if actual != manifest.files[name]:
            raise ArtifactError(
                f"{path}: file {name!r} was modified (sha256 {actual}, "
                f"{MANIFEST} lists {manifest.files[name]})"
            )


def _load_weights(weights: Path, path: Path) -> dict[str, torch.Tensor]:
    import torch  # only writing and loading weights needs it, not reading manifests

    try:
        # weights_only: the unpickler accepts tensors and plain containers, nothing else.
        obj = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types; all mean "bad weights"
        raise ArtifactError(f"{path}: {WEIGHTS} is not a loadable state_dict ({exc})") from None
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ArtifactError(f"{path}: {WEIGHTS} must hold a dict of tensors (a state_dict)")
    return obj


def _load_stats(store: Path, path: Path) -> xr.Dataset:
    try:
        # chunks=None: read into numpy directly, no dask graph for a few small arrays.
        with xr.open_zarr(store, consolidated=None, chunks=None) as ds:
            return ds.load()
    except Exception as exc:  # zarr/xarray raise many types
        raise ArtifactError(
            f"{path}: {STATS_PREFIX} is not a readable zarr store ({exc})"
        ) from None


def _check_digest(path: Path, expected_sha256: str | None) -> str:
    actual = sha256_file(path)
    if expected_sha256 is not None and actual != expected_sha256.lower():
        raise ArtifactError(
            f"{path}: checksum mismatch: sha256 is {actual}, the registry expects "
            f"{expected_sha256.lower()}"
        )
    return actual


def _check_digest_of(uri: str, path: Path, expected_sha256: str) -> None:
    """A download's digest against the pinned one, the error naming the URI and both."""
    actual = sha256_file(path)
    if actual != expected_sha256:
        raise ArtifactError(
            f"{uri}: checksum mismatch: the download has sha256 {actual}, the registry "
            f"expects {expected_sha256}; refused"
        )


def load_artifact(
    path: Path | str,
    expected_sha256: str | None = None,
    *,
    max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES,
) -> LoadedArtifact:
    """Validate and load an artifact: manifest, statistics Dataset and state_dict.

    Entries are inflated one block at a time into a temporary directory and hashed on the
    way, so memory holds the loaded tensors and statistics, never an entry's raw bytes.
    """
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"artifact file not found: {path}")
    digest = _check_digest(path, expected_sha256)
    with _open_zip(path) as zf, tempfile.TemporaryDirectory(prefix="wxplat-artifact-") as tmp:
        # Unsafe names and oversized entries are refused before anything is read.
        check_entries(zf, path, max_entry_bytes=max_entry_bytes)
        manifest = _read_manifest(zf, path, max_entry_bytes)
        files = Path(tmp)
        _unpack_verified(zf, path, manifest, files, max_entry_bytes)
        state_dict = _load_weights(files / WEIGHTS, path) if WEIGHTS in manifest.files else {}
        stats = _load_stats(files / STATS_PREFIX, path)
        graph = (files / ONNX_MODEL).read_bytes() if ONNX_MODEL in manifest.files else None
    return LoadedArtifact(path, digest, manifest, stats, state_dict, graph)


def validate_artifact(
    path: Path | str,
    expected_sha256: str | None = None,
    *,
    max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES,
) -> Manifest:
    """Check safety, digests, completeness and weights of an artifact; return its manifest."""
    return load_artifact(path, expected_sha256, max_entry_bytes=max_entry_bytes).manifest


def read_manifest(path: Path | str, *, max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES) -> Manifest:
    """The artifact's ``artifact.yaml`` only (name, version, provenance), without the weights."""
    path = Path(path)
    with _open_zip(path) as zf:
        return _read_manifest(zf, path, max_entry_bytes)


def inspect_artifact(
    path: Path | str, *, max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES
) -> dict[str, Any]:
    """Manifest and archive facts (size, digest, entries, parameter count) as a plain dict."""
    path = Path(path)
    with _open_zip(path) as zf, tempfile.TemporaryDirectory(prefix="wxplat-artifact-") as tmp:
        infos = check_entries(zf, path, max_entry_bytes=max_entry_bytes)
        manifest = _read_manifest(zf, path, max_entry_bytes)
        n_params = None
        weights = [i for i in infos if i.filename == WEIGHTS]
        if weights:
            _unpack(zf, path, weights, Path(tmp), max_entry_bytes)
            state_dict = _load_weights(Path(tmp) / WEIGHTS, path)
            n_params = int(sum(t.numel() for t in state_dict.values()))
    info = manifest.model_dump(mode="json")
    info["archive"] = {
        "path": str(path),
        "sha256": sha256_file(path),
        "bytes": path.stat().st_size,
        "entries": len(infos),
        "parameters": n_params,
    }
    return info


def extract_artifact(
    path: Path | str, dest: Path | str, *, max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES
) -> Path:
    """Extract after refusing unsafe entries (absolute paths, ``..``, symlinks, bombs)."""
    path, dest = Path(path), Path(dest)
    with _open_zip(path) as zf:
        infos = check_entries(zf, path, max_entry_bytes=max_entry_bytes)
        dest.mkdir(parents=True, exist_ok=True)
        _unpack(zf, path, infos, dest, max_entry_bytes)
    return dest


def fetch_artifact(
    uri: str, sha256: str | None, cache_dir: Path | str, settings: Any = None
) -> tuple[Path, str]:
    """Local path and sha256 of an artifact; remote URIs are downloaded once into the cache.

    A remote URI needs its sha256 (the registry enforces it); the cached copy is named by
    that digest and re-downloaded when its content does not match. ``models:/<name>/<version>``
    and ``models:/<name>@<alias>`` are resolved through the MLflow client of ``settings``
    (``WXPLAT_MLFLOW_TRACKING_URI``; default: the environment's settings).
    """
    models = uri.startswith("models:/")
    if not models and ("://" not in uri or uri.startswith("file://")):
        path = Path(uri.removeprefix("file://"))
        if not path.is_file():
            raise ArtifactError(f"artifact file not found: {path}")
        return path, _check_digest(path, sha256)
    if sha256 is None:
        raise ArtifactError(f"remote artifact {uri} needs a sha256 in its registry entry")
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    sha256 = sha256.lower()
    target = cache / f"{sha256}.zip"
    if target.is_file() and sha256_file(target) == sha256:
        return target, sha256
    fd, tmp = tempfile.mkstemp(prefix=".download.", dir=cache)
    try:
        if models:
            os.close(fd)
            from model_registry.tracking import download_model_artifact  # needs mlflow

            download_model_artifact(uri, Path(tmp), settings)
            _check_digest_of(uri, Path(tmp), sha256)
        else:
            import fsspec  # only remote artifacts need it

            with os.fdopen(fd, "wb") as out, fsspec.open(uri, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
            _check_digest(Path(tmp), sha256)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target, sha256
