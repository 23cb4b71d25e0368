"""Inference artifacts: layout, round trip, tampering, unsafe zips and the artifact CLI."""

from __future__ import annotations

import hashlib
import io
import pickle
import stat
import struct
import tracemalloc
import zipfile
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import yaml
from typer.testing import CliRunner

from model_registry.architectures import build_model, new_model
from model_registry.artifact import (
    DEFAULT_MAX_ENTRY_BYTES,
    MANIFEST,
    MODEL_CONFIG,
    WEIGHTS,
    ArtifactError,
    GridSummary,
    build_artifact,
    extract_artifact,
    fetch_artifact,
    inspect_artifact,
    load_artifact,
    sha256_file,
    validate_artifact,
)
from weather_assets.cli import app
from weather_assets.forecast.normalize import compute_stats, stack_features
from weather_assets.simulator import Grid, simulate_state

GRID = Grid(-90.0, 90.0, 0.0, 340.0, 20.0)  # 10 x 18
HP = {"n_modes": [4, 8], "hidden_channels": 4, "n_layers": 1}


@pytest.fixture(scope="module")
def parts():
    ds = xr.concat([simulate_state(f"2026-01-01T{h:02d}", GRID) for h in (0, 6, 12)], "time")
    features = ["2m_temperature", "geopotential_500hPa", "temperature_850hPa"]
    stats = compute_stats(stack_features(ds, features))
    torch.manual_seed(0)
    model = new_model("fno", HP, len(features), len(features))
    grid = GridSummary.from_coords(ds["latitude"].values, ds["longitude"].values)
    return {"features": features, "stats": stats, "model": model, "grid": grid}


def make(path: Path, parts, **overrides) -> Path:
    kwargs = dict(
        name="tiny",
        architecture="fno",
        hyperparameters=HP,
        input_features=parts["features"],
        output_features=parts["features"],
        timestep=timedelta(hours=6),
        stats=parts["stats"],
        state_dict=parts["model"].state_dict(),
        grid=parts["grid"],
        version="v1",
        training_cli_args={"steps": 3},
        training_data={"source": "simulator"},
        command="pytest",
    )
    kwargs.update(overrides)
    return build_artifact(path, **kwargs)


@pytest.fixture
def artifact(tmp_path, parts) -> Path:
    return make(tmp_path / "tiny.zip", parts)


def rewrite(src: Path, dst: Path, change) -> Path:
    """Copy a zip entry by entry through ``change(name, data) -> (name, data) | None``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            result = change(info.filename, zin.read(info.filename))
            if result is not None:
                zout.writestr(result[0], result[1])
    return dst


def relist(manifest_bytes: bytes, name: str, data: bytes) -> bytes:
    """The manifest with ``name`` listed at the digest of ``data`` (a consistent forgery)."""
    manifest = yaml.safe_load(manifest_bytes)
    manifest["files"][name] = hashlib.sha256(data).hexdigest()
    return yaml.safe_dump(manifest, sort_keys=False).encode()


def test_layout_and_manifest(artifact, parts):
    with zipfile.ZipFile(artifact) as zf:
        names = zf.namelist()
        manifest = yaml.safe_load(zf.read(MANIFEST))
    assert names[0] == MANIFEST
    assert {WEIGHTS, MODEL_CONFIG, "training_cli_args.yaml"} <= set(names)
    assert any(n.startswith("stats/stats.zarr/") and n.endswith(".zmetadata") for n in names)
    assert set(manifest["files"]) == set(names) - {MANIFEST}
    assert manifest["architecture"] == {"name": "fno", "hyperparameters": HP}
    assert manifest["timestep"] == "6h"
    assert manifest["grid"]["latitude"] == {"first": -90.0, "step": 20.0, "size": 10}
    prov = manifest["provenance"]
    assert prov["command"] == "pytest" and prov["host"] and prov["created_utc"].endswith("Z")
    assert {"python", "torch", "xarray"} <= set(prov["packages"])
    assert prov["training_data"] == {"source": "simulator"}
    assert "_metadata" not in torch.load(
        io.BytesIO(zipfile.ZipFile(artifact).read(WEIGHTS)), weights_only=True
    )


def test_round_trip(artifact, parts):
    loaded = load_artifact(artifact)
    assert loaded.name == "tiny" and loaded.version == "v1"
    assert loaded.sha256 == sha256_file(artifact)
    assert list(loaded.manifest.input_features) == parts["features"]
    xr.testing.assert_identical(loaded.stats, parts["stats"])
    expected = {k: v for k, v in parts["model"].state_dict().items() if k != "_metadata"}
    assert loaded.state_dict.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(loaded.state_dict[key], value)
    assert loaded.manifest.grid.matches(*(np.asarray(a) for a in (GRID.latitude, GRID.longitude)))


FORCINGS = ["cos_local_hour", "sin_local_hour"]


def test_round_trip_with_forcings(tmp_path, parts):
    n = len(parts["features"])
    torch.manual_seed(0)
    model = new_model("fno", HP, n + len(FORCINGS), n)  # inputs: state, then forcings
    path = make(tmp_path / "f.zip", parts, forcings=FORCINGS, state_dict=model.state_dict())
    with zipfile.ZipFile(path) as zf:
        manifest = yaml.safe_load(zf.read(MANIFEST))
        config = yaml.safe_load(zf.read(MODEL_CONFIG))
    assert manifest["forcings"] == FORCINGS == config["forcings"]
    loaded = load_artifact(path)
    assert list(loaded.manifest.forcings) == FORCINGS
    assert loaded.manifest.in_channels == n + 2
    # The statistics cover the state only: forcings are O(1) by construction.
    assert list(loaded.stats["state_feature"].values) == parts["features"]
    rebuilt = build_model("fno", HP, loaded.manifest.in_channels, n, loaded.state_dict)
    assert rebuilt(torch.zeros(1, n + 2, 10, 18)).shape == (1, n, 10, 18)
    assert inspect_artifact(path)["forcings"] == FORCINGS


def test_artifact_without_forcings_key_still_loads(artifact, tmp_path):
    # Artifacts written before forcings existed have no 'forcings' key in their manifest.
    with zipfile.ZipFile(artifact) as zf:
        assert "forcings" not in yaml.safe_load(zf.read(MANIFEST))
    loaded = load_artifact(artifact)
    assert loaded.manifest.forcings == () and loaded.manifest.in_channels == 3
    assert inspect_artifact(artifact)["forcings"] == []


def test_unknown_forcing_refused(tmp_path, parts, artifact):
    with pytest.raises(ArtifactError, match="unknown forcing 'moon'; valid forcings are"):
        make(tmp_path / "x.zip", parts, forcings=["moon"])
    assert not (tmp_path / "x.zip").exists()

    def forge(name, data):  # a manifest edited to name an unknown forcing
        if name == MANIFEST:
            manifest = yaml.safe_load(data)
            manifest["forcings"] = ["moon"]
            return name, yaml.safe_dump(manifest, sort_keys=False).encode()
        return name, data

    bad = rewrite(artifact, tmp_path / "moon.zip", forge)
    with pytest.raises(ArtifactError, match="artifact.yaml field 'forcings'.*unknown forcing"):
        validate_artifact(bad)


def test_same_content_same_layout(tmp_path, parts):
    a = make(tmp_path / "a.zip", parts)
    b = make(tmp_path / "b.zip", parts)
    with zipfile.ZipFile(a) as za, zipfile.ZipFile(b) as zb:
        # Only the manifest (creation time) may differ; the files have identical digests.
        assert (
            yaml.safe_load(za.read(MANIFEST))["files"] == yaml.safe_load(zb.read(MANIFEST))["files"]
        )


def test_validate_and_checksum_mismatch(artifact):
    manifest = validate_artifact(artifact, expected_sha256=sha256_file(artifact))
    assert manifest.name == "tiny"
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        validate_artifact(artifact, expected_sha256="0" * 64)


def test_tampered_file_is_named(artifact, tmp_path):
    def flip(name, data):
        if name == WEIGHTS:
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        return name, data

    bad = rewrite(artifact, tmp_path / "bad.zip", flip)
    with pytest.raises(ArtifactError, match="file 'weights.pt' was modified"):
        load_artifact(bad)


def test_missing_and_extra_files(artifact, tmp_path):
    missing = rewrite(
        artifact, tmp_path / "m.zip", lambda n, d: None if n == MODEL_CONFIG else (n, d)
    )
    with pytest.raises(
        ArtifactError, match="'configs/model.yaml' listed in artifact.yaml is missing"
    ):
        validate_artifact(missing)

    def add(name, data):
        return name, data

    extra = rewrite(artifact, tmp_path / "e.zip", add)
    with zipfile.ZipFile(extra, "a") as zf:
        zf.writestr("notes.txt", b"hello")
    with pytest.raises(ArtifactError, match="'notes.txt' is not listed"):
        validate_artifact(extra)


class _Payload:
    """Unpickling this would run code: weights_only loading must refuse it."""

    def __reduce__(self):
        return (Path.touch, (Path("/tmp/wxplat-pwned-by-test"),))


def test_weights_are_never_unpickled(artifact, tmp_path):
    evil = pickle.dumps({"w": _Payload()}, protocol=2)
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(1)}, buf)

    def swap(name, data):
        if name == WEIGHTS:
            return name, evil
        if name == MANIFEST:
            return name, relist(data, WEIGHTS, evil)
        return name, data

    bad = rewrite(artifact, tmp_path / "evil.zip", swap)
    Path("/tmp/wxplat-pwned-by-test").unlink(missing_ok=True)
    with pytest.raises(ArtifactError, match="weights.pt is not a loadable state_dict"):
        load_artifact(bad)
    assert not Path("/tmp/wxplat-pwned-by-test").exists()


def test_non_tensor_state_dict_refused(artifact, tmp_path):
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(1), "note": "text"}, buf)

    def swap(name, data):
        if name == WEIGHTS:
            return name, buf.getvalue()
        if name == MANIFEST:
            return name, relist(data, WEIGHTS, buf.getvalue())
        return name, data

    with pytest.raises(ArtifactError, match="dict of tensors"):
        load_artifact(rewrite(artifact, tmp_path / "s.zip", swap))


@pytest.mark.parametrize(
    ("entry", "reason"),
    [("../evil.txt", "contains '..'"), ("/abs/evil.txt", "absolute path"), ("a/../../x", "'..'")],
)
def test_zip_slip_refused(tmp_path, entry, reason):
    bad = tmp_path / "slip.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("ok.txt", b"fine")
        zf.writestr(zipfile.ZipInfo(entry), b"evil")
    dest = tmp_path / "out"
    with pytest.raises(ArtifactError, match=reason):
        extract_artifact(bad, dest)
    assert not dest.exists() or not any(dest.rglob("*"))
    assert not (tmp_path / "evil.txt").exists()
    with pytest.raises(ArtifactError, match="unsafe entry"):
        validate_artifact(bad)


def test_symlink_entry_refused(tmp_path):
    bad = tmp_path / "link.zip"
    info = zipfile.ZipInfo("stats/link")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(ArtifactError, match="symbolic link"):
        extract_artifact(bad, tmp_path / "out")


def test_extract_safe_artifact(artifact, tmp_path):
    out = extract_artifact(artifact, tmp_path / "x")
    assert (out / WEIGHTS).is_file() and (out / "stats" / "stats.zarr" / ".zmetadata").is_file()


def test_not_a_zip_and_missing(tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ArtifactError, match="not a zip archive"):
        validate_artifact(junk)
    with pytest.raises(ArtifactError, match="artifact file not found"):
        load_artifact(tmp_path / "absent.zip")


def test_fno_without_weights_refused(tmp_path, parts):
    with pytest.raises(ArtifactError, match="needs weights"):
        make(tmp_path / "x.zip", parts, state_dict=None)
    with pytest.raises(ArtifactError, match="version"):
        make(tmp_path / "y.zip", parts, version="../up")


def test_inspect(artifact):
    info = inspect_artifact(artifact)
    assert info["name"] == "tiny" and info["archive"]["sha256"] == sha256_file(artifact)
    assert info["archive"]["parameters"] > 0


def test_fetch_local_and_remote(artifact, tmp_path):
    digest = sha256_file(artifact)
    assert fetch_artifact(str(artifact), None, tmp_path / "cache") == (artifact, digest)
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        fetch_artifact(str(artifact), "f" * 64, tmp_path / "cache")
    # fsspec's in-memory filesystem stands in for s3:// (same code path: a URL with a scheme).
    import fsspec

    with fsspec.open("memory://bucket/tiny.zip", "wb") as fh:
        fh.write(artifact.read_bytes())
    path, got = fetch_artifact("memory://bucket/tiny.zip", digest, tmp_path / "cache")
    assert path == tmp_path / "cache" / f"{digest}.zip" and got == digest
    assert fetch_artifact("memory://bucket/tiny.zip", digest, tmp_path / "cache")[0] == path
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        fetch_artifact("memory://bucket/tiny.zip", "e" * 64, tmp_path / "cache2")
    assert not any((tmp_path / "cache2").glob("*.zip"))


def test_cli_build_validate_inspect(tmp_path, parts, artifact):
    src = tmp_path / "src"
    extract_artifact(artifact, src)
    config = {
        "name": "tiny-cli",
        "architecture": "fno",
        "hyperparameters": HP,
        "input_features": parts["features"],
        "timestep": "6h",
        "grid": parts["grid"].model_dump(),
    }
    (src / MODEL_CONFIG).write_text(yaml.safe_dump(config))
    (src / MANIFEST).unlink()
    runner = CliRunner()
    result = runner.invoke(app, ["artifact", "validate", str(artifact)])
    assert result.exit_code == 0 and "forcings: none" in result.output
    out = tmp_path / "cli.zip"
    result = runner.invoke(
        app, ["artifact", "build", str(src), "--out", str(out), "--version", "v2"]
    )
    assert result.exit_code == 0, result.output
    assert f"sha256 {sha256_file(out)}" in result.output
    result = runner.invoke(app, ["artifact", "validate", str(out), "--sha256", sha256_file(out)])
    assert result.exit_code == 0 and "OK" in result.output and "tiny-cli v2" in result.output
    result = runner.invoke(app, ["artifact", "validate", str(out), "--sha256", "0" * 64])
    assert result.exit_code == 1 and "checksum mismatch" in result.output
    result = runner.invoke(app, ["artifact", "inspect", str(out), "--json"])
    assert result.exit_code == 0 and '"name": "tiny-cli"' in result.output


def test_cli_build_with_forcings(tmp_path, parts, artifact):
    src = tmp_path / "src"
    extract_artifact(artifact, src)
    n = len(parts["features"])
    torch.manual_seed(0)
    weights = new_model("fno", HP, n + 2, n).state_dict()
    torch.save({k: v for k, v in weights.items() if k != "_metadata"}, src / WEIGHTS)
    config = {
        "name": "tiny-forced",
        "architecture": "fno",
        "hyperparameters": HP,
        "input_features": parts["features"],
        "forcings": FORCINGS,
        "timestep": "6h",
    }
    (src / MODEL_CONFIG).write_text(yaml.safe_dump(config))
    (src / MANIFEST).unlink()
    runner = CliRunner()
    out = tmp_path / "forced.zip"
    result = runner.invoke(app, ["artifact", "build", str(src), "--out", str(out)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["artifact", "validate", str(out)])
    assert result.exit_code == 0 and "forcings: cos_local_hour, sin_local_hour" in result.output
    result = runner.invoke(app, ["artifact", "inspect", str(out)])
    assert (
        result.exit_code == 0 and "forcings:\n- cos_local_hour\n- sin_local_hour" in result.output
    )
    config["forcings"] = ["sunshine"]
    (src / MODEL_CONFIG).write_text(yaml.safe_dump(config))
    result = runner.invoke(app, ["artifact", "build", str(src), "--out", str(tmp_path / "b.zip")])
    assert result.exit_code == 1 and "unknown forcing 'sunshine'" in result.output


# --- zip bombs and bit rot ---------------------------------------------------------------------

PAD = "stats/stats.zarr/pad"  # an extra listed file; zarr ignores it, readers must still hash it
MIB = 1 << 20


def padded(artifact: Path, dst: Path, mib: int) -> Path:
    """The artifact plus a listed entry of ``mib`` MiB of zeros, written in 1 MiB blocks."""
    block = bytes(MIB)
    digest = hashlib.sha256()
    for _ in range(mib):
        digest.update(block)

    def relist_pad(name, data):
        if name == MANIFEST:
            manifest = yaml.safe_load(data)
            manifest["files"][PAD] = digest.hexdigest()
            return name, yaml.safe_dump(manifest, sort_keys=False).encode()
        return name, data

    rewrite(artifact, dst, relist_pad)
    with zipfile.ZipFile(dst, "a", zipfile.ZIP_DEFLATED) as zf, zf.open(PAD, "w") as fh:
        for _ in range(mib):
            fh.write(block)
    return dst


def declare_size(path: Path, name: str, size: int) -> Path:
    """Make the central directory claim ``size`` uncompressed bytes for entry ``name``."""
    data = bytearray(path.read_bytes())
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        (name_len,) = struct.unpack_from("<H", data, at + 28)
        if data[at + 46 : at + 46 + name_len] == name.encode():
            struct.pack_into("<I", data, at + 24, size)
            path.write_bytes(bytes(data))
            return path
        at = data.find(b"PK\x01\x02", at + 4)
    raise AssertionError(f"{name} not in {path}")


def peak_bytes(fn, *args, **kwargs) -> int:
    """Peak Python heap allocated while ``fn`` runs (tracemalloc), whatever it returns or raises."""
    tracemalloc.start()
    try:
        fn(*args, **kwargs)
    except ArtifactError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_large_entry_is_hashed_in_bounded_memory(artifact, tmp_path):
    big = padded(artifact, tmp_path / "big.zip", 64)
    assert validate_artifact(big).name == "tiny"  # under the default limit: accepted
    # Streamed in 1 MiB blocks: the 64 MiB entry is never held in memory at once.
    assert peak_bytes(validate_artifact, big) < 16 * MIB


def test_entry_over_the_limit_is_refused_before_reading(artifact, tmp_path):
    big = padded(artifact, tmp_path / "big.zip", 64)
    with pytest.raises(ArtifactError) as err:
        validate_artifact(big, max_entry_bytes=16 * MIB)
    message = str(err.value)
    assert message.startswith(f"{big}: entry '{PAD}' declares {64 * MIB} bytes uncompressed")
    assert f"over the limit of {16 * MIB} bytes" in message and "\n" not in message
    assert peak_bytes(validate_artifact, big, max_entry_bytes=16 * MIB) < 4 * MIB
    for fn in (inspect_artifact, lambda p, **kw: extract_artifact(p, tmp_path / "x", **kw)):
        with pytest.raises(ArtifactError, match=f"entry '{PAD}' declares"):
            fn(big, max_entry_bytes=16 * MIB)
    runner = CliRunner()
    result = runner.invoke(
        app, ["artifact", "validate", str(big), "--max-entry-bytes", str(16 * MIB)]
    )
    assert result.exit_code == 1 and f"entry '{PAD}' declares" in result.output
    assert isinstance(result.exception, SystemExit)  # a clean exit, no traceback


def test_default_limit_refuses_a_bomb_declaring_gigabytes(artifact, tmp_path):
    # A real 4 GiB bomb takes ~10 s to deflate; the refusal only reads the declared size.
    bomb = declare_size(padded(artifact, tmp_path / "bomb.zip", 1), PAD, 3 * 1024**3)
    assert DEFAULT_MAX_ENTRY_BYTES < 3 * 1024**3
    with pytest.raises(ArtifactError, match=f"entry '{PAD}' declares {3 * 1024**3} bytes"):
        validate_artifact(bomb)


def test_central_directory_understating_a_size_is_caught(artifact, tmp_path):
    # Declared 1 KiB, really 64 MiB: zipfile stops at the declared size and the CRC fails.
    liar = declare_size(padded(artifact, tmp_path / "liar.zip", 64), PAD, 1024)
    with pytest.raises(ArtifactError) as err:
        validate_artifact(liar)
    message = str(err.value)
    assert message.startswith(f"{liar}: entry '{PAD}' is corrupt") and "\n" not in message
    assert peak_bytes(validate_artifact, liar) < 16 * MIB


def test_bit_rot_names_the_zip_and_the_entry(artifact, tmp_path):
    with zipfile.ZipFile(artifact) as zf:
        info = zf.getinfo(WEIGHTS)
    data = bytearray(artifact.read_bytes())
    (name_len, extra_len) = struct.unpack_from("<HH", data, info.header_offset + 26)
    start = info.header_offset + 30 + name_len + extra_len  # the compressed weights
    middle = start + info.compress_size // 2
    data[middle : middle + 8] = bytes(b ^ 0xFF for b in data[middle : middle + 8])
    rotten = tmp_path / "rotten.zip"
    rotten.write_bytes(bytes(data))
    for fn in (validate_artifact, inspect_artifact, lambda p: extract_artifact(p, tmp_path / "x")):
        with pytest.raises(ArtifactError) as err:
            fn(rotten)
        message = str(err.value)
        assert message.startswith(f"{rotten}: entry '{WEIGHTS}' is corrupt (")
        assert "\n" not in message
    result = CliRunner().invoke(app, ["artifact", "validate", str(rotten)])
    assert result.exit_code == 1 and f"entry '{WEIGHTS}' is corrupt" in result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(artifact.read_bytes()[: artifact.stat().st_size // 2])
    with pytest.raises(ArtifactError, match=f"{truncated} is not a zip archive"):
        validate_artifact(truncated)
