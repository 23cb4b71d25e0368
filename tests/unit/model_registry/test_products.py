"""Product declarations: the shipped demo product loads; bad files name the file and field."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml

from model_registry.products import (
    RegistryError,
    get_product,
    load_product,
    load_products_report,
    products_dir,
)
from model_registry.registry import DEFAULT_REGISTRY_DIR, load_registry

GOOD = {
    "name": "p",
    "champion": "a",
    "challengers": ["b"],
    "baseline": "base",
    "headline_scores": [
        {"metric": "rmse", "variable": "geopotential", "level": 500, "lead_time": "48h"}
    ],
}
MODELS = ("a", "b", "base")


def write(tmp_path, data, name="p.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_the_shipped_demo_product_names_registered_models():
    names = [s.name for s in load_registry()]
    product = get_product("demo-medium-range", products_dir(DEFAULT_REGISTRY_DIR), names)
    assert product.champion == "fno-demo" and product.challengers == ("fno-challenger",)
    assert product.baseline == "persistence" and product.lag == timedelta(hours=24)
    rules = product.rules()
    assert rules.models == ("fno-demo", "fno-challenger", "persistence")
    assert rules.window >= rules.min_cycles >= 3


def test_a_good_product_and_its_rules(tmp_path):
    product = load_product(write(tmp_path, GOOD), MODELS)
    assert product.lag == timedelta(hours=48)
    assert product.rules().headline[0].label() == "rmse geopotential 500 +48h"


@pytest.mark.parametrize(
    ("change", "needles"),
    [
        ({"champions": "a"}, ["field 'champions' is not a known field", "valid fields are"]),
        ({"challengers": ["zz"]}, ["field 'challengers' names 'zz'", "registered: a, b, base"]),
        ({"champion": "b"}, ["also listed as a challenger"]),
        ({"headline_scores": []}, ["field 'headline_scores'"]),
        ({"headline_scores": [{"metric": "rsme"}]}, ["field 'headline_scores.0.metric'", "rmse"]),
        ({"headline_scores": [{"variable": "t2"}]}, ["'headline_scores.0.variable'"]),
        (
            {"guard_scores": [{"metric": "bias"}]},
            ["'guard_scores.0.metric'", "'bias' cannot rank models", "rmse, mae, acc"],
        ),
        ({"window": 2}, ["field 'window'"]),
        ({"min_cycles": 9, "window": 8}, ["min_cycles 9 exceeds the window 8"]),
    ],
)
def test_bad_products_name_the_file_and_field(tmp_path, change, needles):
    path = write(tmp_path, {**GOOD, **change})
    with pytest.raises(RegistryError) as err:
        load_product(path, MODELS)
    message = str(err.value)
    assert message.startswith(str(path)) and "\n" not in message
    for needle in needles:
        assert needle in message


def test_a_bad_file_is_reported_and_the_others_load(tmp_path):
    write(tmp_path, GOOD)
    write(tmp_path, "name: [unclosed", name="broken.yaml")
    report = load_products_report(tmp_path, MODELS)
    assert [p.name for p in report.products] == ["p"]
    assert len(report.problems) == 1 and "broken.yaml: malformed YAML" in report.problems[0]
    assert load_products_report(tmp_path / "absent", MODELS).products == []
    with pytest.raises(KeyError, match="no product 'q'"):
        get_product("q", tmp_path, MODELS)
