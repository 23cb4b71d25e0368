import pytest

from weather_assets.settings import load_settings


def test_defaults_live_under_home(tmp_path):
    s = load_settings({"WXPLAT_HOME": str(tmp_path)})
    assert s.storage_root == str(tmp_path / "storage")
    assert s.upstream_url.startswith(str(tmp_path / "upstream"))
    assert s.bbox == {"lon_min": 0, "lat_min": -90, "lon_max": 358, "lat_max": 90}
    assert s.grid_resolution["dx"] == 2 and s.grid_resolution["units"] == "deg"


def test_bad_setting_names_the_variable(tmp_path):
    with pytest.raises(ValueError, match="WXPLAT_DOMAIN"):
        load_settings({"WXPLAT_HOME": str(tmp_path), "WXPLAT_DOMAIN": "w0_s10"})
    with pytest.raises(ValueError, match="WXPLAT_UPSTREAM_KIND"):
        load_settings({"WXPLAT_HOME": str(tmp_path), "WXPLAT_UPSTREAM_KIND": "csv"})


def test_variables_list(tmp_path):
    s = load_settings(
        {"WXPLAT_HOME": str(tmp_path), "WXPLAT_UPSTREAM_VARIABLES": "geopotential, temperature"}
    )
    assert s.upstream_variables == ("geopotential", "temperature")


def test_upstream_ensemble_flag(tmp_path):
    assert load_settings({"WXPLAT_HOME": str(tmp_path)}).upstream_ensemble is False
    s = load_settings({"WXPLAT_HOME": str(tmp_path), "WXPLAT_UPSTREAM_ENSEMBLE": "true"})
    assert s.upstream_ensemble is True
    with pytest.raises(ValueError, match="WXPLAT_UPSTREAM_ENSEMBLE"):
        load_settings({"WXPLAT_HOME": str(tmp_path), "WXPLAT_UPSTREAM_ENSEMBLE": "sometimes"})
