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


def test_home_settings_file_is_read_below_the_environment(tmp_path):
    from weather_assets.settings import read_home_settings, write_home_settings

    write_home_settings(tmp_path, {"WXPLAT_PARTITIONS_END": "2026-01-04T1800Z"})
    assert load_settings({"WXPLAT_HOME": str(tmp_path)}).partitions_end == "2026-01-04T1800Z"
    env = {"WXPLAT_HOME": str(tmp_path), "WXPLAT_PARTITIONS_END": "2026-01-02T0000Z"}
    assert load_settings(env).partitions_end == "2026-01-02T0000Z"  # the environment wins
    write_home_settings(tmp_path, {"WXPLAT_PARTITIONS_END": None})
    assert read_home_settings(tmp_path) == {}
    assert load_settings({"WXPLAT_HOME": str(tmp_path)}).partitions_end is None


def test_bad_home_settings_line_names_the_file_and_line(tmp_path):
    (tmp_path / "settings.env").write_text(
        "# demo\nWXPLAT_PARTITIONS_END=2026-01-04T1800Z\nPATH=/x\n"
    )
    with pytest.raises(ValueError, match=r"settings.env, line 3: 'PATH=/x'"):
        load_settings({"WXPLAT_HOME": str(tmp_path)})
    (tmp_path / "settings.env").write_text("WXPLAT_PARTITIONS_END=tomorrow\n")
    with pytest.raises(ValueError, match="WXPLAT_PARTITIONS_END"):
        load_settings({"WXPLAT_HOME": str(tmp_path)})


def test_owner_must_be_an_email_or_a_team(tmp_path):
    assert load_settings({"WXPLAT_HOME": str(tmp_path)}).owners() == ["team:weather-platform"]
    s = load_settings({"WXPLAT_HOME": str(tmp_path), "WXPLAT_OWNER": "ops@met.example"})
    assert s.owners(("team:ml",)) == ["team:ml"] and s.owners() == ["ops@met.example"]
    with pytest.raises(ValueError, match="WXPLAT_OWNER"):
        load_settings({"WXPLAT_HOME": str(tmp_path), "WXPLAT_OWNER": "bob"})


def test_verification_regions_and_drift_thresholds(tmp_path):
    s = load_settings(
        {
            "WXPLAT_HOME": str(tmp_path),
            "WXPLAT_VERIFICATION_REGIONS": "europe=-10,35,30,70; alps=5,43,17,49",
            "WXPLAT_VERIFICATION_BOUNDARY_POINTS": "8",
            "WXPLAT_DRIFT_MAX_ABS_MEAN_Z": "3",
        }
    )
    assert [r.name for r in s.verification_regions] == ["europe", "alps"]
    assert s.verification_regions[0].bbox == (-10.0, 35.0, 30.0, 70.0)
    assert s.verification_boundary_points == 8 and s.drift_max_abs_mean_z == 3.0
    defaults = load_settings({"WXPLAT_HOME": str(tmp_path)})
    assert defaults.verification_regions == () and defaults.verification_boundary_points == 10
    bad = {
        "europe=1,2,3": "is not name=lon_min,lat_min,lon_max,lat_max",
        "Europe=-10,35,30,70": "name",
        "tropics=0,0,10,10": "taken by a named region",
        "e=0,50,10,40": "lat_min 50 must be below lat_max 40",
        "e=0,-95,10,40": "lat_min",
    }
    for value, message in bad.items():
        with pytest.raises(ValueError, match="WXPLAT_VERIFICATION_REGIONS") as err:
            load_settings({"WXPLAT_HOME": str(tmp_path), "WXPLAT_VERIFICATION_REGIONS": value})
        assert message in str(err.value)
    with pytest.raises(ValueError, match="WXPLAT_DRIFT_MIN_STD_Z.*WXPLAT_DRIFT_MAX_STD_Z"):
        load_settings({"WXPLAT_HOME": str(tmp_path), "WXPLAT_DRIFT_MIN_STD_Z": "20"})
    with pytest.raises(ValueError, match="WXPLAT_DRIFT_MAX_FRAC_BEYOND_K"):
        load_settings({"WXPLAT_HOME": str(tmp_path), "WXPLAT_DRIFT_MAX_FRAC_BEYOND_K": "2"})


def test_the_named_regions_settings_refuse_are_the_regions_verification_scores():
    """A configured box may not take a named region's name: both lists are the same one."""
    from weather_assets.settings import NAMED_REGIONS
    from weather_assets.verification.regions import REGIONS

    assert tuple(NAMED_REGIONS) == tuple(REGIONS)
