"""The verification tables' one declaration: the pandera schemas built from it refuse bad
tables with the same messages, the UI's column schemas read it, and neither needs pandera at
import."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest

from tests.conftest import ROOT
from weather_assets.verification.report import card_column_schema, column_schema
from weather_assets.verification.schemas import (
    AGGREGATE_TABLE,
    CARD_TABLE,
    SCORES_TABLE,
    ColumnSpec,
    TableSpec,
    aggregate_schema,
    card_schema,
    pandera_schema,
    scores_schema,
    validate_scores,
)
from weather_assets.verification.scores import COLUMNS


def _scores() -> pd.DataFrame:
    """A valid two-row scores table."""
    return pd.DataFrame(
        {
            "model": ["fno", "fno"],
            "analysis_time": pd.to_datetime(["2026-01-01", "2026-01-01"]),
            "region": ["global", "global"],
            "lead_time": pd.to_timedelta([6, 6], unit="h"),
            "variable": ["geopotential", "geopotential"],
            "level": np.array([500, 500], dtype=np.int64),
            "metric": ["rmse", "acc"],
            "value": [12.5, 0.9],
            "n": np.array([10, 10], dtype=np.int64),
        }
    )


def _checks_failed(frame: pd.DataFrame) -> set[str]:
    """The names of the checks ``frame`` fails (lazy validation: every one of them)."""
    with pytest.raises(pa.errors.SchemaErrors) as err:
        validate_scores(frame)
    return set(err.value.failure_cases["check"])


def test_valid_scores_pass():
    assert len(validate_scores(_scores())) == 2


@pytest.mark.parametrize(
    ("change", "check"),
    [
        (
            lambda t: t.assign(value=[-1.0, 0.9]),
            "rmse, mae, crps_fair, spread and spread_skill are >= 0",
        ),
        (lambda t: t.assign(value=[12.5, 1.5]), "acc is within [-1, 1]"),
        (lambda t: t.assign(value=[np.inf, 0.9]), "value is infinite"),
        (
            lambda t: t.assign(n=np.array([0, 10], dtype=np.int64)),
            "a finite score needs at least one valid point (n > 0)",
        ),
        (lambda t: t.assign(variable="2t"), "isin"),
        (lambda t: t.assign(metric="skill"), "isin"),
        (lambda t: t.assign(model="Bad Name"), "str_matches"),
        (lambda t: t.assign(level=np.array([-2, 500], dtype=np.int64)), "greater_than_or_equal"),
        (lambda t: t.assign(lead_time=pd.to_timedelta([-6, 6], unit="h")), "greater_than_or"),
        (lambda t: pd.concat([t, t.iloc[:1]]), "multiple_fields_uniqueness"),
        (lambda t: t.assign(extra=1), "column_in_schema"),
    ],
)
def test_scores_schema_refuses_bad_tables_by_name(change, check):
    failed = _checks_failed(change(_scores()))
    assert any(name.startswith(check) for name in failed), failed


def test_unknown_variable_message_lists_the_canonical_names():
    with pytest.raises(pa.errors.SchemaErrors) as err:
        validate_scores(_scores().assign(variable="2t"))
    assert "Column 'variable' failed element-wise validator" in str(err.value)
    assert "'geopotential'" in str(err.value) and "2t" in str(err.value)


def test_card_schema_is_strict_and_ordered():
    card = card_schema()
    assert list(card.columns) == list(CARD_TABLE.columns)
    assert card.ordered and card.strict
    empty = pd.DataFrame({name: pd.Series(dtype=object) for name in reversed(CARD_TABLE.columns)})
    with pytest.raises(pa.errors.SchemaErrors):
        card.validate(empty, lazy=True)


@pytest.mark.parametrize(
    ("spec", "build"),
    [(SCORES_TABLE, scores_schema), (AGGREGATE_TABLE, aggregate_schema), (CARD_TABLE, card_schema)],
)
def test_pandera_schemas_follow_the_specs_and_are_built_once(spec: TableSpec, build):
    schema = build()
    assert build() is schema
    assert (schema.name, schema.description) == (spec.name, spec.description)
    assert schema.unique == list(spec.unique)
    assert [check.error for check in schema.checks] == [rc.error for rc in spec.row_checks]
    assert list(schema.columns) == list(spec.columns)
    for name, col in spec.columns.items():
        built = schema.columns[name]
        assert str(built.dtype) == col.dtype, name
        assert (built.nullable, built.description) == (col.nullable, col.description), name
        assert len(built.checks) == len(col.checks), name


def test_unknown_column_check_is_refused():
    spec = TableSpec("t", "a table", {"x": ColumnSpec("int64", "x", checks=(("le", 1),))}, ())
    with pytest.raises(ValueError, match="unknown column check 'le'"):
        pandera_schema(spec)


def test_specs_are_read_only():
    with pytest.raises(TypeError):
        SCORES_TABLE.columns["extra"] = ColumnSpec("int64", "no")  # type: ignore[index]


def test_ui_column_schemas_list_every_column_from_the_specs():
    for ui, spec, order in [
        (column_schema(), SCORES_TABLE, list(COLUMNS)),
        (card_column_schema(), CARD_TABLE, list(CARD_TABLE.columns)),
    ]:
        assert [c.name for c in ui.columns] == order
        assert set(order) == set(spec.columns)
        for column in ui.columns:
            want = spec.columns[column.name]
            assert column.description == want.description and column.description
            assert column.type == want.dtype
            assert column.constraints.nullable == want.nullable


def test_schemas_and_ui_column_schemas_import_without_pandera():
    probe = (
        "import sys\n"
        "from weather_assets.verification import report, scorecard, schemas\n"
        "report.column_schema(); report.card_column_schema()\n"
        "print('pandera' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "False"
