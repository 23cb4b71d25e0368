"""A registry with one bad entry: the code location loads the others and reports the bad one."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from model_registry.registry import DEFAULT_REGISTRY_DIR
from tests.conftest import ROOT

CHECK_KEY = dg.AssetCheckKey(dg.AssetKey("model_registry"), "valid_entries")


@pytest.fixture
def typo_registry(tmp_path, wx_env, monkeypatch) -> Path:
    """The shipped entries plus ``typo.yaml``: a persistence copy with a misspelled field."""
    registry = tmp_path / "registry"
    registry.mkdir()
    for path in DEFAULT_REGISTRY_DIR.glob("*.yaml"):
        shutil.copy(path, registry)
    data = yaml.safe_load((DEFAULT_REGISTRY_DIR / "persistence.yaml").read_text())
    data["name"] = "typo"
    data["max_lead_tme"] = data.pop("max_lead_time")
    (registry / "typo.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.setenv("WXPLAT_REGISTRY_DIR", str(registry))
    return registry


def _build():
    import definitions
    from weather_assets.settings import load_settings

    return definitions.build_definitions(load_settings())


def test_bad_entry_is_skipped_and_reported(typo_registry, caplog):
    with caplog.at_level(logging.WARNING, logger="definitions"):
        defs = _build()
    assert f"model registry entry skipped: {typo_registry / 'typo.yaml'}: field" in caplog.text
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    for model in ("persistence", "fno-demo"):
        assert {f"normalized/{model}", f"forecast/{model}", f"verification/{model}"} <= keys
    assert not any(k.endswith("/typo") for k in keys)
    assert "scorecard" in keys  # the baseline (persistence) is still an enabled model
    spec = defs.resolve_asset_graph().get(dg.AssetKey("model_registry"))
    assert "typo.yaml" in spec.description and not spec.is_materializable
    result = defs.get_asset_checks_def(CHECK_KEY)()
    assert not result.passed
    (problem,) = result.metadata["skipped"].data
    assert problem.startswith(f"{typo_registry / 'typo.yaml'}: field 'max_lead_time' is required")
    assert result.metadata["loaded"].data == {
        "fno-challenger": str(typo_registry / "fno-challenger.yaml"),
        "fno-demo": str(typo_registry / "fno-demo.yaml"),
        "persistence": str(typo_registry / "persistence.yaml"),
    }


def test_clean_registry_passes_the_check(wx_env, persistence_registry):
    # wx_env first: it clears WXPLAT_* before persistence_registry sets the registry.
    result = _build().get_asset_checks_def(CHECK_KEY)()
    assert result.passed and list(result.metadata["loaded"].data) == ["persistence"]
    assert result.metadata["skipped"].data == []


@pytest.mark.slow
def test_code_location_loads_with_a_bad_entry(typo_registry):
    dagster = Path(sys.executable).with_name("dagster")
    proc = subprocess.run(
        [str(dagster), "definitions", "validate", "-f", "definitions.py"],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "typo.yaml" in proc.stderr  # the skipped entry is in the code server's log
