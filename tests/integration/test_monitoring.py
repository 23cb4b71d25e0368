"""The metrics exporter on a real (temporary) Dagster instance with known materializations.

Small stand-in assets under the platform's keys (``raw_inputs/src``, ``forecast/<model>``,
``verification/m1``) write the metadata the real assets write; the collector's exposition is
parsed back with ``prometheus_client``'s own parser and compared with the records. Also: the
Grafana dashboard under ``deploy/grafana/`` queries only metrics the exporter exposes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT
from weather_assets.keys import forecast_key, raw_inputs_key, upstream_key, verification_key
from weather_assets.monitoring import catalog
from weather_assets.monitoring.collector import PlatformCollector, make_registry
from weather_assets.monitoring.reader import (
    PlatformReader,
    Targets,
    Watched,
    analysis_timestamp,
    targets_from_definitions,
)
from weather_assets.partitions import analysis_time_partitions

PARTS = analysis_time_partitions("2026-01-01T0000Z")
CYCLES = ["2026-01-01T0000Z", "2026-01-01T0600Z", "2026-01-01T1200Z"]
RAW, UP = raw_inputs_key("src"), upstream_key("src")
FC1, FC2, FC3 = forecast_key("m1"), forecast_key("m2"), forecast_key("m3")
FC4 = forecast_key("m4")
VER = verification_key("m1")
BAD_CYCLE = CYCLES[1]  # its raw inputs fail the schema check
DASHBOARD = ROOT / "deploy" / "grafana" / "wxplat-dashboard.json"


# ---------------------------------------------------------------------------------------------
# stand-in assets with the real assets' metadata keys


@dg.asset(
    key=RAW,
    partitions_def=PARTS,
    check_specs=[
        dg.AssetCheckSpec("schema", asset=RAW),
        dg.AssetCheckSpec("freshness", asset=RAW),
    ],
)
def raw_inputs(context):
    yield dg.MaterializeResult(
        metadata={"bytes": 1000, "analysis_time": context.partition_key},
        check_results=[
            dg.AssetCheckResult(check_name="schema", passed=context.partition_key != BAD_CYCLE),
            dg.AssetCheckResult(
                check_name="freshness", passed=False, severity=dg.AssetCheckSeverity.WARN
            ),
        ],
    )


@dg.asset(key=FC1, partitions_def=PARTS, deps=[RAW])
def forecast_m1():
    """In-process on one GPU: 2 steps."""
    return dg.MaterializeResult(
        metadata={
            "device": "cuda:0",
            "steps": 2,
            "seconds_per_step": 1.0,
            "step_seconds": [0.5, 1.5],
            "bytes_written": 5000,
            "wall_seconds": 4.0,
        }
    )


@dg.asset(key=FC2, partitions_def=PARTS, deps=[RAW])
def forecast_m2():
    """A Pipes model (no device reported): its pod holds the registry's 2 GPUs."""
    return dg.MaterializeResult(metadata={"bytes_written": 7, "wall_seconds": 3.0})


@dg.asset(key=FC4, partitions_def=PARTS, deps=[RAW])
def forecast_m4():
    """A CPU model that measured its cost (``resources.cost``): 2 CPU-seconds in 3 s."""
    return dg.MaterializeResult(
        metadata={"device": "cpu", "cpu_seconds": 2.0, "bytes": 9, "wall_seconds": 3.0}
    )


@dg.asset(key=FC3, partitions_def=PARTS, deps=[RAW])
def forecast_m3():
    """A model whose step fails."""
    raise ValueError("artifact checksum mismatch")


def _scores_table(
    path: Path, cycle: str, leads: list[int], offset: float = 0.0, regions: bool = False
) -> str:
    """A scores table; ``regions``: with a ``region`` column and tropics rows far off (the
    gauges show the global rows), else as tables were before regions (all global)."""
    rows = [
        {
            "model": "m1",
            "analysis_time": pd.Timestamp(cycle.replace("Z", ""), tz=None),
            "lead_time": pd.Timedelta(hours=h),
            "variable": variable,
            "level": level,
            "metric": metric,
            "value": value + h + offset,
            "n": 100,
        }
        for h in leads
        for variable, level, metric, value in [
            ("geopotential", 500, "rmse", 100.0),
            ("2m_temperature", -1, "rmse", 1.0),
            ("2m_temperature", -1, "bias", 0.5),  # not a headline score
        ]
    ]
    if regions:
        rows = [{**r, "region": "global"} for r in rows] + [
            {**r, "region": "tropics", "value": r["value"] + 5000.0} for r in rows
        ]
    file = path / f"scores_{cycle}.parquet"
    pd.DataFrame(rows).to_parquet(file, index=False)
    return str(file)


def _verification_asset(tables: dict[str, tuple[str, bool]]):
    @dg.asset(key=VER, partitions_def=PARTS, deps=[FC1])
    def verification(context):
        path, complete = tables[context.partition_key]
        return dg.MaterializeResult(
            metadata={"path": dg.MetadataValue.path(path), "complete": complete}
        )

    return verification


class FakeSource:
    """A listed upstream source holding ``cycles`` (or failing to list, if ``error``)."""

    marks_complete = True

    def __init__(self, cycles: list[str], error: Exception | None = None):
        self.cycles, self.error, self.listed = cycles, error, 0

    def cycle_url(self, analysis_time):
        return f"memory://{analysis_time:%Y-%m-%dT%H%MZ}"

    def read_cycle(self, analysis_time):
        raise NotImplementedError

    def cycle_version(self, key: str) -> str | None:
        return "v1" if key in self.cycles else None

    def list_cycle_keys(self, start_after: str | None = None) -> list[str]:
        self.listed += 1
        if self.error is not None:
            raise self.error
        return sorted(k for k in self.cycles if start_after is None or k > start_after)


def _targets(source=None) -> Targets:
    return Targets(
        assets=(
            Watched(UP, "upstream"),
            Watched(RAW, "raw_inputs"),
            Watched(FC1, "forecast", "m1", gpus=1),
            Watched(FC2, "forecast", "m2", gpus=2),
            Watched(FC3, "forecast", "m3"),
            Watched(FC4, "forecast", "m4"),
            Watched(VER, "verification", "m1"),
        ),
        checks=(dg.AssetCheckKey(RAW, "schema"), dg.AssetCheckKey(RAW, "freshness")),
        source_name="src",
        source=source,
        partitions_def=PARTS,
    )


def _scrape(collector: PlatformCollector) -> dict[tuple[str, tuple], float]:
    """Every sample of one scrape: (name, sorted labels) -> value."""
    text = generate_latest(make_registry(collector)).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(samples: dict, name: str, **labels) -> float:
    key = (name, tuple(sorted(labels.items())))
    assert key in samples, (
        f"{name}{labels} not exposed; exposed: {sorted(k for k in samples if k[0] == name)}"
    )
    return samples[key]


def _labels(stage: str, asset: dg.AssetKey, model: str = "") -> dict[str, str]:
    return {"stage": stage, "asset": asset.to_user_string(), "model": model}


@pytest.fixture
def platform(tmp_path):
    """A temporary instance: 2 cycles of everything, one failed raw_inputs check, one failed
    forecast, an upstream arrival recorded, verification tables in ``tmp_path``."""
    tables = {
        CYCLES[0]: (_scores_table(tmp_path, CYCLES[0], [6, 12, 24], regions=True), True),
        CYCLES[1]: (_scores_table(tmp_path, CYCLES[1], [6], offset=1000.0), False),
    }
    assets = [raw_inputs, forecast_m1, forecast_m2, forecast_m3, forecast_m4]
    assets.append(_verification_asset(tables))
    with dg.instance_for_test() as instance:
        for cycle in CYCLES[:2]:
            instance.report_runless_asset_event(dg.AssetMaterialization(UP, partition=cycle))
            # one run per cycle; forecast/m3 fails it, the others materialize
            dg.materialize(assets, instance=instance, partition_key=cycle, raise_on_error=False)
        yield instance, assets, tables


def test_exposes_what_the_instance_recorded(platform):
    instance, _, _ = platform
    source = FakeSource([*CYCLES[:2], "2026-01-01T1800Z"])
    collector = PlatformCollector(PlatformReader(instance, _targets(source)), cache_seconds=0)
    samples = _scrape(collector)

    # cycle latency: newest cycle's first materialization minus its analysis time
    newest = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=FC1, asset_partitions=[CYCLES[1]]), limit=1
    ).records[0]
    latency = _value(samples, "wxplat_cycle_latency_seconds", **_labels("forecast", FC1, "m1"))
    assert latency == pytest.approx(newest.timestamp - analysis_timestamp(CYCLES[1]))
    for stage, key, model in [
        ("upstream", UP, ""),
        ("raw_inputs", RAW, ""),
        ("forecast", FC2, "m2"),
        ("verification", VER, "m1"),
    ]:
        labels = _labels(stage, key, model)
        assert _value(samples, "wxplat_cycle_newest_analysis_timestamp_seconds", **labels) == (
            analysis_timestamp(CYCLES[1])
        )
        assert _value(samples, "wxplat_cycle_latency_seconds", **labels) > 0
        assert _value(samples, "wxplat_materializations_total", **labels) == 2
    # the failed model: no materialization, two failures, no latency
    fc3 = _labels("forecast", FC3, "m3")
    assert _value(samples, "wxplat_step_failures_total", **fc3) == 2
    assert _value(samples, "wxplat_materializations_total", **fc3) == 0
    assert ("wxplat_cycle_latency_seconds", tuple(sorted(fc3.items()))) not in samples
    assert _value(samples, "wxplat_runs_failed_total") == 2

    # bytes and forecast steps
    assert _value(samples, "wxplat_bytes_written_total", **_labels("raw_inputs", RAW)) == 2000
    assert _value(samples, "wxplat_bytes_written_total", **_labels("forecast", FC1, "m1")) == 10000
    assert _value(samples, "wxplat_forecast_step_seconds_count", model="m1") == 4
    assert _value(samples, "wxplat_forecast_step_seconds_sum", model="m1") == pytest.approx(4.0)
    assert _value(samples, "wxplat_forecast_last_step_seconds", model="m1") == pytest.approx(1.0)
    assert _value(samples, "wxplat_forecast_wall_seconds_sum", model="m1") == pytest.approx(8.0)
    # GPU-seconds: in process on cuda:0 = wall; a Pipes pod = wall x its 2 GPUs
    assert _value(samples, "wxplat_forecast_device_seconds_total", model="m1", device="gpu") == 8
    assert _value(samples, "wxplat_forecast_device_seconds_total", model="m1", device="cpu") == 0
    assert _value(samples, "wxplat_forecast_device_seconds_total", model="m2", device="gpu") == 12
    # measured by the step: its CPU-seconds, not its wall time
    assert _value(samples, "wxplat_forecast_device_seconds_total", model="m4", device="cpu") == 4
    assert _value(samples, "wxplat_forecast_device_seconds_total", model="m4", device="gpu") == 0

    # checks by check and severity
    schema = {"asset": "raw_inputs/src", "check": "schema"}
    fresh = {"asset": "raw_inputs/src", "check": "freshness"}
    assert _value(samples, "wxplat_check_failures_total", **schema, severity="ERROR") == 1
    assert _value(samples, "wxplat_check_failures_total", **fresh, severity="WARN") == 2
    assert _value(samples, "wxplat_check_failing", **schema) == 1  # the newest cycle failed it

    # scores: the newest cycle verified at each lead, headline scores only, with units
    score = "wxplat_verification_score"
    z500 = {"model": "m1", "metric": "rmse", "variable": "geopotential_500hPa", "units": "m2 s-2"}
    assert _value(samples, score, **z500, lead="+6h") == 1106.0  # from the newer cycle
    assert _value(samples, score, **z500, lead="+24h") == 124.0  # only the older one has +24h
    assert (
        _value(
            samples,
            score,
            model="m1",
            metric="rmse",
            variable="2m_temperature",
            units="K",
            lead="+12h",
        )
        == 13.0
    )
    assert not [k for k in samples if k[0] == score and ("metric", "bias") in k[1]]

    # sensor lag: upstream holds 1800Z, ingest is at 0600Z
    assert _value(samples, "wxplat_upstream_up", source="src") == 1
    assert _value(samples, "wxplat_upstream_newest_cycle_timestamp_seconds", source="src") == (
        analysis_timestamp("2026-01-01T1800Z")
    )
    assert _value(samples, "wxplat_sensor_lag_seconds", source="src") == 12 * 3600

    # every family of the catalog is exposed, and nothing else under the prefix
    exposed = {name for name, _ in samples if name.startswith(catalog.PREFIX)}
    assert exposed == catalog.sample_names()


def test_reads_only_new_records_after_the_first_window(platform):
    instance, assets, tables = platform
    reader = PlatformReader(instance, _targets(), window=1)
    collector = PlatformCollector(reader, cache_seconds=0)
    raw = _labels("raw_inputs", RAW)
    first = _scrape(collector)
    assert _value(first, "wxplat_materializations_total", **raw) == 1  # the window: newest only
    dg.materialize(assets, selection=[raw_inputs], instance=instance, partition_key=CYCLES[2])
    second = _scrape(collector)
    assert _value(second, "wxplat_materializations_total", **raw) == 2
    assert _value(second, "wxplat_bytes_written_total", **raw) == 2000
    assert _value(second, "wxplat_cycle_newest_analysis_timestamp_seconds", **raw) == (
        analysis_timestamp(CYCLES[2])
    )
    assert _value(second, "wxplat_check_failing", asset="raw_inputs/src", check="schema") == 0
    assert _platform_samples(_scrape(collector)) == _platform_samples(second)  # nothing new


def _platform_samples(samples: dict) -> dict:
    # all but the exporter's own numbers (process, refresh time), which change every scrape
    return {
        k: v for k, v in samples.items() if k[0].startswith("wxplat_") and "exporter" not in k[0]
    }


def test_scrapes_within_the_cache_share_one_refresh(platform):
    instance, assets, _ = platform
    source = FakeSource(CYCLES[:2])
    reader = PlatformReader(instance, _targets(source), upstream_seconds=3600)
    collector = PlatformCollector(reader, cache_seconds=3600)
    raw = _labels("raw_inputs", RAW)
    assert _value(_scrape(collector), "wxplat_materializations_total", **raw) == 2
    dg.materialize(assets, selection=[raw_inputs], instance=instance, partition_key=CYCLES[2])
    assert _value(_scrape(collector), "wxplat_materializations_total", **raw) == 2  # cached
    collector.cache_seconds = 0
    assert _value(_scrape(collector), "wxplat_materializations_total", **raw) == 3
    assert source.listed == 1  # the upstream source is looked at once an hour here


def test_an_unreachable_upstream_is_reported_not_fatal(platform):
    instance, _, _ = platform
    source = FakeSource(CYCLES, error=OSError("bucket unreachable"))
    samples = _scrape(PlatformCollector(PlatformReader(instance, _targets(source))))
    assert _value(samples, "wxplat_upstream_up", source="src") == 0
    assert _value(samples, "wxplat_exporter_errors_total", part="upstream") == 1
    assert _value(samples, "wxplat_materializations_total", **_labels("raw_inputs", RAW)) == 2


def test_an_unreadable_scores_table_falls_back_to_the_metadata(tmp_path):
    label = "rmse geopotential_500hPa +24h [m2 s-2]"

    @dg.asset(key=VER, partitions_def=PARTS)
    def verification():
        return dg.MaterializeResult(
            metadata={"path": dg.MetadataValue.path(str(tmp_path / "gone.parquet")), label: 42.5}
        )

    with dg.instance_for_test() as instance:
        dg.materialize([verification], instance=instance, partition_key=CYCLES[0])
        targets = Targets(assets=(Watched(VER, "verification", "m1"),))
        samples = _scrape(PlatformCollector(PlatformReader(instance, targets)))
    assert _value(samples, "wxplat_exporter_errors_total", part="scores") == 1
    assert (
        _value(
            samples,
            "wxplat_verification_score",
            model="m1",
            metric="rmse",
            variable="geopotential_500hPa",
            lead="+24h",
            units="m2 s-2",
        )
        == 42.5
    )


def test_targets_of_the_platform_definitions(wx_env, persistence_registry):
    import definitions
    from model_registry.registry import load_registry
    from weather_assets.settings import load_settings

    settings = load_settings()
    defs = definitions.build_definitions(settings)
    targets = targets_from_definitions(defs, load_registry(persistence_registry))
    by_asset = {w.asset: w for w in targets.assets}
    assert set(by_asset) == {
        "upstream/simulator",
        "raw_inputs/simulator",
        "normalized/persistence",
        "forecast/persistence",
        "verification/persistence",
    }
    assert by_asset["forecast/persistence"].labels == (
        "forecast",
        "forecast/persistence",
        "persistence",
    )
    assert by_asset["raw_inputs/simulator"].model == ""
    checks = {(k.asset_key.to_user_string(), k.name) for k in targets.checks}
    assert {("forecast/persistence", "no_nans"), ("raw_inputs/simulator", "schema")} <= checks
    assert targets.source_name == "simulator" and targets.source is not None
    assert targets.partitions_def is not None


# ---------------------------------------------------------------------------------------------
# the Grafana dashboard

_PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}


def dashboard_queries(dashboard: dict) -> list[str]:
    """Every PromQL expression of the dashboard's panels (rows' nested panels included)."""
    panels = list(dashboard["panels"])
    for panel in dashboard["panels"]:
        panels += panel.get("panels", [])
    return [t["expr"] for p in panels for t in p.get("targets", []) if "expr" in t]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, labels or keywords)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings (label values)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges, $__rate_interval
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\w+", " ", text)  # Grafana variables
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word, after = match.group(0), text[match.end() :].lstrip()
        if after.startswith("(") or word.lower() in _PROMQL_WORDS:
            continue  # a function or aggregation, or a keyword
        if re.fullmatch(r"\d+[smhdwy]", word):
            continue
        names.add(word)
    return names


def test_metric_names_are_found_in_promql():
    expr = (
        'sum by (model) (rate(wxplat_forecast_step_seconds_sum{model=~"$model"}[$__rate_interval]))'
        " / on (model) sum by (model) (rate(wxplat_forecast_step_seconds_count[5m])) > bool 0"
    )
    assert metric_names(expr) == {
        "wxplat_forecast_step_seconds_sum",
        "wxplat_forecast_step_seconds_count",
    }
    assert metric_names("max(time() - wxplat_cycle_newest_analysis_timestamp_seconds)") == {
        "wxplat_cycle_newest_analysis_timestamp_seconds"
    }


def test_grafana_dashboard_is_valid_and_queries_only_exposed_metrics():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] and dashboard["uid"] and isinstance(dashboard["schemaVersion"], int)
    assert dashboard.get("id") is None  # importable into any Grafana
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert {"id", "type", "title", "gridPos"} <= set(panel)
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] != "row":
            assert panel["targets"], f"panel {panel['title']!r} has no query"
            assert panel["datasource"]["uid"] == "${datasource}"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    queries = dashboard_queries(dashboard)
    used = set().union(*(metric_names(q) for q in queries))
    for variable in variables.values():  # label_values(<metric>, <label>) of query variables
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else ""
        used |= set(re.findall(r"label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)", text))
    assert used <= catalog.sample_names(), f"not exposed: {sorted(used - catalog.sample_names())}"
    # what the issue asks the dashboard to show
    for needed in (
        "wxplat_cycle_latency_seconds",
        "wxplat_forecast_step_seconds_sum",
        "wxplat_forecast_device_seconds_total",
        "wxplat_check_failures_total",
        "wxplat_verification_score",
        "wxplat_sensor_lag_seconds",
        "wxplat_runs_failed_total",
        "wxplat_bytes_written_total",
    ):
        assert needed in used, f"the dashboard does not show {needed}"


def test_exporter_metric_catalog_is_well_formed():
    names = [m.name for m in catalog.METRICS]
    assert len(names) == len(set(names))
    for metric in catalog.METRICS:
        assert re.fullmatch(r"wxplat_[a-z0-9_]+", metric.name)
        assert not metric.name.endswith("_total"), "counters get _total from the client"
        assert metric.type in {"gauge", "counter", "summary"}
        assert metric.help.endswith(".")


# ---------------------------------------------------------------------------------------------
# the alert rules

ALERTS = ROOT / "deploy" / "prometheus" / "wxplat-alerts.yml"


def test_alert_rules_query_only_exposed_metrics():
    import yaml

    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert rules and all(rule["alert"].startswith("Wxplat") for rule in rules)
    used = set().union(*(metric_names(rule["expr"]) for rule in rules))
    assert used <= catalog.sample_names(), f"not exposed: {sorted(used - catalog.sample_names())}"


def test_alert_rules_pass_promtool():
    import shutil
    import subprocess

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian's prometheus package, `make prometheus`) is not installed")
    done = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
