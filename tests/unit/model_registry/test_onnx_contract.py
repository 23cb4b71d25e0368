"""ONNX tensor contracts: validation, the canonical <-> contract mapping, clear errors."""

from datetime import timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from model_registry.artifact import ArtifactError, build_artifact, load_artifact
from model_registry.onnx_contract import (
    ContractError,
    OnnxContract,
    TensorSpec,
    check_graph,
    from_contract,
    parse_contract,
    to_contract,
)
from weather_assets.forecast.normalize import identity_stats

FEATURES = [
    "2m_temperature",
    "mean_sea_level_pressure",
    "temperature_500hPa",
    "temperature_850hPa",
    "geopotential_500hPa",
    "geopotential_850hPa",
]
UPPER = {
    "name": "input",
    "dims": ["variable", "level", "latitude", "longitude"],
    "variables": ["geopotential", "temperature"],
    "levels": [850, 500],
}
SURFACE = {
    "name": "input_surface",
    "dims": ["variable", "latitude", "longitude"],
    "variables": ["mean_sea_level_pressure", "2m_temperature"],
}


def pangu_like(**overrides) -> dict:
    out = {
        "inputs": [UPPER, SURFACE],
        "outputs": [
            {**UPPER, "name": "output"},
            {**SURFACE, "name": "output_surface"},
        ],
        "units": "physical",
        "output": "state",
        "latitude": "descending",
    }
    return {**out, **overrides}


def test_pangu_like_contract_maps_indices_and_flips_latitude():
    c = parse_contract(pangu_like())
    upper = c.inputs[0]
    assert upper.channels == [
        "geopotential_850hPa",
        "geopotential_500hPa",
        "temperature_850hPa",
        "temperature_500hPa",
    ]
    x = np.arange(2 * len(FEATURES) * 3 * 4, dtype=np.float32).reshape(2, len(FEATURES), 3, 4)
    feeds = to_contract(x, FEATURES, c.inputs, c)
    assert feeds["input"].shape == (2, 2, 2, 3, 4)  # (sample, variable, level, lat, lon)
    assert feeds["input_surface"].shape == (2, 2, 3, 4)
    # temperature (variable 1) at 500 hPa (level 1) is canonical channel 2, latitudes reversed
    np.testing.assert_array_equal(feeds["input"][:, 1, 1], x[:, 2, ::-1])
    np.testing.assert_array_equal(feeds["input_surface"][:, 0], x[:, 1, ::-1])
    outs = {"output": feeds["input"], "output_surface": feeds["input_surface"]}
    np.testing.assert_array_equal(from_contract(outs, FEATURES, c.outputs, c), x)


def test_level_major_layout():
    c = parse_contract(
        pangu_like(inputs=[{**UPPER, "dims": ["level", "variable", "latitude", "longitude"]}])
    )
    assert c.inputs[0].channels[:2] == ["geopotential_850hPa", "temperature_850hPa"]


@st.composite
def contracts(draw):
    """A random split of FEATURES over 1-3 tensors, in random order, either layout."""
    perm = draw(st.permutations(FEATURES))
    n = draw(st.integers(1, 3))
    cuts = sorted(draw(st.lists(st.integers(1, len(perm) - 1), min_size=n - 1, max_size=n - 1)))
    parts = [p for p in np.split(np.array(perm), cuts) if len(p)]
    batch = draw(st.booleans())
    tensors = [
        TensorSpec(
            name=f"t{i}",
            dims=(("batch",) if batch else ()) + ("variable", "latitude", "longitude"),
            variables=tuple(str(p) for p in part),
        )
        for i, part in enumerate(parts)
    ]
    lat = draw(st.sampled_from(["ascending", "descending"]))
    dtype = draw(st.sampled_from(["float32", "float64"]))
    return OnnxContract(inputs=tensors, outputs=tensors, latitude=lat, dtype=dtype)


@settings(max_examples=50, deadline=None)
@given(
    contract=contracts(),
    samples=st.integers(1, 3),
    n_lat=st.integers(1, 5),
    n_lon=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
def test_mapping_round_trip(contract, samples, n_lat, n_lon, seed):
    x = np.random.default_rng(seed).normal(size=(samples, len(FEATURES), n_lat, n_lon))
    x = x.astype(np.float32)
    feeds = to_contract(x, FEATURES, contract.inputs, contract)
    for t in contract.inputs:
        assert feeds[t.name].shape == (samples, len(t.variables), n_lat, n_lon)
        assert feeds[t.name].dtype == np.dtype(contract.dtype)
    back = from_contract(feeds, FEATURES, contract.outputs, contract)
    np.testing.assert_array_equal(back, x)
    # any channel subset comes back in the order asked for
    order = FEATURES[::-1][:3]
    np.testing.assert_array_equal(
        from_contract(feeds, order, contract.outputs, contract),
        x[:, [FEATURES.index(f) for f in order]],
    )


@pytest.mark.parametrize(
    ("hp", "match"),
    [
        (pangu_like(units="kelvin"), "units"),
        (pangu_like(inputs=[{**UPPER, "levels": []}]), "list its 'levels'"),
        (
            pangu_like(inputs=[{**UPPER, "dims": ["variable", "latitude", "level", "longitude"]}]),
            "must end with latitude, longitude",
        ),  # fmt: skip
        (
            pangu_like(inputs=[{**SURFACE, "variables": ["2m_temperature", "2m_temperature"]}]),
            "lists a variable twice",
        ),  # fmt: skip
        (pangu_like(inputs=[UPPER, {**SURFACE, "name": "input"}]), "repeat a tensor name"),
        (
            pangu_like(inputs=[{**UPPER, "variables": ["2m_temperature"]}]),
            "'2m_temperature' is not a canonical variable with pressure levels",
        ),  # fmt: skip
    ],
)
def test_invalid_contract_names_the_field(hp, match):
    with pytest.raises(ValidationError, match=match):
        parse_contract(hp)


def test_channels_the_platform_cannot_map():
    c = parse_contract(pangu_like())
    c.check_channels(FEATURES, FEATURES)
    with pytest.raises(ContractError, match="needs channel 'temperature_850hPa', which is not"):
        c.check_channels([f for f in FEATURES if f != "temperature_850hPa"], FEATURES[:2])
    with pytest.raises(ContractError, match="input channel 'cos_local_hour' of the model goes"):
        c.check_channels([*FEATURES, "cos_local_hour"], FEATURES)
    with pytest.raises(
        ContractError, match="output feature '10m_u_component_of_wind' of the model comes out"
    ):
        c.check_channels(FEATURES, [*FEATURES, "10m_u_component_of_wind"])


def test_graph_mismatch_is_one_clear_error():
    c = parse_contract(pangu_like())
    f = "tensor(float)"
    good_in = {"input": ([2, 2, 3, 4], f), "input_surface": ([2, 3, 4], f)}
    good_out = {"output": ([2, 2, 3, 4], f), "output_surface": ([2, 3, 4], f)}
    check_graph(c, good_in, good_out, 3, 4)
    with pytest.raises(ContractError, match="graph input 'input' has 5 along 'level'"):
        check_graph(c, {**good_in, "input": ([2, 5, 3, 4], f)}, good_out)
    with pytest.raises(ContractError, match="has 7 along 'latitude', the contract gives 3"):
        check_graph(c, {**good_in, "input_surface": ([2, 7, 4], f)}, good_out, 3, 4)
    with pytest.raises(ContractError, match="contract output 'output' is not a graph output"):
        check_graph(c, good_in, {"out": ([2, 2, 3, 4], f)})
    with pytest.raises(ContractError, match="is tensor\\(double\\), the contract's dtype float32"):
        check_graph(c, {**good_in, "input": ([2, 2, 3, 4], "tensor(double)")}, good_out)
    with pytest.raises(ContractError, match="rank 3 \\[2, 3, 4\\], the contract declares dims"):
        check_graph(c, {**good_in, "input": ([2, 3, 4], f)}, good_out)
    with pytest.raises(ContractError, match="the graph's input 'time' is not in the contract"):
        check_graph(c, {**good_in, "time": ([1], f)}, good_out)


def _onnx_artifact(tmp_path, hp, features=FEATURES, onnx_model=b"graph"):
    return build_artifact(
        tmp_path / "m.zip",
        name="pangu-like",
        architecture="onnx",
        hyperparameters=hp,
        input_features=features,
        output_features=features,
        timestep=timedelta(hours=6),
        stats=identity_stats(features),
        onnx_model=onnx_model,
        version="v1",
    )


def test_onnx_artifact_holds_graph_and_contract(tmp_path):
    path = _onnx_artifact(tmp_path, pangu_like())
    loaded = load_artifact(path)
    assert loaded.onnx_model == b"graph" and loaded.state_dict == {}
    assert parse_contract(loaded.manifest.architecture.hyperparameters).latitude == "descending"


def test_wrong_contract_fails_when_the_artifact_is_built(tmp_path):
    # the registry entry has 10 m winds that the contract feeds to no graph input
    features = [*FEATURES, "10m_u_component_of_wind"]
    with pytest.raises(ArtifactError, match="'10m_u_component_of_wind' of the model goes to no"):
        _onnx_artifact(tmp_path, pangu_like(), features=features)
    with pytest.raises(ArtifactError, match="hyperparameters.inputs.0.levels"):
        _onnx_artifact(tmp_path, pangu_like(inputs=[{**UPPER, "levels": ["high"]}]))
    with pytest.raises(ArtifactError, match="architecture 'onnx' needs model.onnx"):
        _onnx_artifact(tmp_path, pangu_like(), onnx_model=None)
