"""``promotion/<product>`` and ``product/<product>``: the Dagster wiring of the products.

Both replay the product's state (:func:`weather_assets.products.promotion.replay`) from what
is in storage: the per-cycle scores of its models (their current artifacts), whether the
champion's forecast of a cycle exists and has the registry's layout, and the operator's pin
log (``promotion/<product>/pins/``, one object per ``wxplat product pin``). Nothing else
(no wall clock, no instance records) enters a decision, so re-running gives the same one.

- ``promotion/<product>`` (unpartitioned, one materialization per decision, after new
  scores): the decisions up to the latest cycle, the latest one with the table that justified
  it, written to ``promotion/<product>/decisions.parquet``; an ``ALERT`` line for every
  promotion or rollback not reported by an earlier run.
- ``product/<product>`` (per analysis time t): the model the state as of t publishes (the
  champion, or a fallback when its forecast fails its checks), copied to
  ``product/<product>/<bbox>/<res>/<t>/member0/forecast.zarr`` and written as GRIB2 beside
  it (``forecast.grib2`` and its JSON sidecar naming model and artifact version; the
  GRIB ``generatingProcessIdentifier`` is derived from them).

A committed forecast passed its blocking checks (layout, NaNs) when it was written (see
:mod:`weather_assets.forecast.checks`): here a forecast *fails its checks* when no committed
store exists for the cycle or its layout no longer matches the registry entry.
"""

# No `from __future__ import annotations`: Dagster inspects the config annotations at runtime.

import hashlib
import json
import posixpath
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from model_registry.products import ProductSpec
from model_registry.resolve import load_model_artifact, resolve_model_config
from model_registry.spec import ModelSpec
from resources.layout import (
    forecast_members,
    join_forecast_members,
    read_table,
    scores_relpath,
    store_relpath,
    write_table,
)
from resources.storage import Storage, StorageResource
from weather_assets import paths
from weather_assets.alerts import send_alert
from weather_assets.forecast.checks import forecast_schema_problems
from weather_assets.keys import forecast_key, product_key, promotion_key, verification_key
from weather_assets.partitions import partition_key_to_time, time_to_partition_key
from weather_assets.products.grib2 import sidecar_path, write_grib2
from weather_assets.products.promotion import (
    Decision,
    Pin,
    Rules,
    State,
    alert_line,
    decisions_table,
    pins_from_json,
    pins_to_json,
    published_model,
    replay,
    table_markdown,
)
from weather_assets.retries import IO_RETRY
from weather_assets.settings import PlatformSettings
from weather_assets.verification.automation import scorecard_condition
from weather_assets.verification.scores import empty_table, with_region

GROUP = "products"
PROMOTION_GROUP = "promotion"  # apart: both keys of a product end with its name
PROMOTION_CODE_VERSION = "1"
PRODUCT_CODE_VERSION = "1"
PINS_FILE = "pins.json"  # a whole log in one list (read first)
PINS_DIR = "pins"  # one object per pin, as wxplat product pin records them
DECISIONS_FILE = "decisions.parquet"


# ---------------------------------------------------------------------------------------------
# reading the product's inputs from storage


def read_pins(store: Storage, product: str) -> list[Pin]:
    """The operator's pin log of a product, in the order recorded (empty when nobody pinned).

    Each ``wxplat product pin``/``unpin`` is its own object under ``pins/``, named by the
    time it was recorded (microseconds) and a random suffix, so operators pinning at the
    same moment never overwrite each other's entries; a ``pins.json`` list comes first.
    """
    pins = pins_from_json(store.read_bytes(paths.promotion_path(product, PINS_FILE)))
    folder = paths.promotion_path(product, PINS_DIR)
    for name in store.list_dir(folder):  # sorted: recorded-at order
        if name.endswith(".json"):
            pins += pins_from_json(store.read_bytes(posixpath.join(folder, name)))
    return pins


def record_pin(store: Storage, product: str, pin: Pin) -> str:
    """Add ``pin`` to the product's pin log (one new object, nothing rewritten); its URL."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    name = f"{stamp}-{uuid.uuid4().hex[:8]}.json"
    return store.write_bytes(
        pins_to_json([pin]), posixpath.join(paths.promotion_path(product, PINS_DIR), name)
    )


def _model_dir(spec: ModelSpec, settings: PlatformSettings, config: str) -> str:
    cycle_store = store_relpath(spec, settings, datetime(2000, 1, 1), config, "forecast")
    return posixpath.dirname(posixpath.dirname(posixpath.dirname(cycle_store)))


def forecast_cycles(store: Storage, spec: ModelSpec, settings: PlatformSettings, config: str):
    """Analysis times with a folder of the model's stores (current artifact)."""
    out = set()
    for name in store.list_dir(_model_dir(spec, settings, config)):
        try:
            out.add(paths.parse_analysis_time(name))
        except ValueError:
            continue
    return out


class ProductInputs:
    """Scores, forecasts and pins of one product, read lazily and once per materialization."""

    def __init__(
        self,
        store: Storage,
        settings: PlatformSettings,
        product: ProductSpec,
        specs: dict[str, ModelSpec],
        rules: Rules,
        status: Callable[[str, datetime], dg.AssetPartitionStatus | None] | None = None,
    ):
        self.store, self.settings, self.product, self.specs = store, settings, product, specs
        self.rules = rules
        # The Dagster status of forecast/<model> at a cycle (None: never attempted): a missing
        # store is a failure only when its run failed; otherwise it is not there *yet*.
        self.status = status
        self.versions = {m: resolve_model_config(specs[m], settings) for m in rules.models}
        self._checks: dict[tuple[str, datetime], str | None] = {}

    def history(self, times: Sequence[datetime], as_of: datetime) -> list[datetime]:
        """The product's cycles up to ``as_of``: from the first one any of its models has a
        forecast for (the partitions' cycles only)."""
        found: set[datetime] = set()
        for model in self.rules.models:
            found |= forecast_cycles(
                self.store, self.specs[model], self.settings, self.versions[model]
            )
        if not found:
            return [t for t in times if t == as_of]
        first = min(found)
        return [t for t in times if first <= t <= as_of]

    def scores(self, cycles: Sequence[datetime]) -> pd.DataFrame:
        """Per-cycle scores of the product's models (current artifacts) for ``cycles``."""
        tables = []
        for model in self.rules.models:
            spec, config = self.specs[model], self.versions[model]
            for t in cycles:
                table = read_table(
                    self.store, scores_relpath(spec, self.settings, t, model_config=config)
                )
                if table is not None and len(table):
                    tables.append(with_region(table))  # tables from before regions: global
        if not tables:
            return empty_table()
        return pd.concat(tables, ignore_index=True)

    def problem(self, model: str, t: datetime) -> str | None:
        """Why ``model``'s forecast of ``t`` fails its checks; None when it passes."""
        key = (model, t)
        if key not in self._checks:
            self._checks[key] = self._problem(model, t)
        return self._checks[key]

    def _problem(self, model: str, t: datetime) -> str | None:
        spec, config = self.specs[model], self.versions[model]
        for member in forecast_members(spec):
            relpath = store_relpath(spec, self.settings, t, config, "forecast", member)
            if not self.store.exists(relpath):
                if self.status is not None and (
                    self.status(model, t) != dg.AssetPartitionStatus.FAILED
                ):
                    return None  # not run yet, or running: nothing to roll back from
                return (
                    f"no committed forecast (member {member}): it failed its checks or did not run"
                )
        ds = self.store.open_zarr(store_relpath(spec, self.settings, t, config, "forecast", 0))
        problems = forecast_schema_problems(ds, spec, t)
        return "; ".join(problems) or None

    def replay(self, times: Sequence[datetime], as_of: datetime) -> tuple[State, list[Decision]]:
        cycles = self.history(times, as_of)
        verified = [t for t in cycles if t + self.rules.lag <= as_of]
        return replay(
            self.rules,
            self.scores(verified),
            cycles=cycles,
            as_of=as_of,
            checks=self.problem,
            pins=read_pins(self.store, self.product.name),
        )


def forecast_status(
    instance: dg.DagsterInstance, partitions_def: dg.PartitionsDefinition
) -> Callable[[str, datetime], dg.AssetPartitionStatus | None]:
    """``(model, t) ->`` the instance's status of ``forecast/<model>`` at cycle ``t``."""

    def status(model: str, t: datetime) -> dg.AssetPartitionStatus | None:
        key = time_to_partition_key(t)
        found = instance.get_status_by_partition(forecast_key(model), [key], partitions_def)
        return (found or {}).get(key)

    return status


def product_relpath(product: str, settings: PlatformSettings, t: datetime) -> str:
    """The published zarr store of cycle ``t`` (the GRIB2 file: ``.grib2`` instead)."""
    return paths.product_path(product, settings.bbox, settings.grid_resolution, t)


def grib_relpath(product: str, settings: PlatformSettings, t: datetime) -> str:
    return product_relpath(product, settings, t).removesuffix(".zarr") + ".grib2"


# ---------------------------------------------------------------------------------------------
# assets


class PromotionConfig(dg.Config):
    """Which cycle the decision is taken at."""

    as_of: str | None = Field(
        default=None,
        description="Decide as of this analysis time (YYYY-MM-DDThhmmZ); default the latest "
        "cycle any of the product's models has a forecast for.",
    )


def _versions_text(versions: dict[str, str]) -> str:
    return ", ".join(f"{m}@{v}" for m, v in versions.items())


def promotion_asset(
    product: ProductSpec,
    specs: dict[str, ModelSpec],
    *,
    settings: PlatformSettings,
    partitions_def: dg.TimeWindowPartitionsDefinition,
) -> dg.AssetsDefinition:
    """The champion/challenger decisions of one product."""
    rules = product.rules()

    @dg.asset(
        key=promotion_key(product.name),
        deps=[verification_key(m) for m in rules.models],
        group_name=PROMOTION_GROUP,
        code_version=PROMOTION_CODE_VERSION,
        retry_policy=IO_RETRY,
        owners=settings.owners(),
        kinds={"pandas", "parquet"},
        automation_condition=scorecard_condition(),
        metadata={
            "product": product.name,
            "champion_declared": rules.champion,
            "challengers": ", ".join(rules.challengers) or "none",
            "baseline": rules.baseline,
            "window": rules.window,
            "min_cycles": rules.min_cycles,
            "rollback_after": rules.rollback_after,
        },
        description=f"Champion/challenger decision of {product.name!r} after each verified "
        f"cycle: a challenger significantly better on the headline scores over the last "
        f"{rules.window} cycles, and not worse on a guard score, is promoted; rollback after "
        "failed checks or degraded scores; pins by hand.",
    )
    def promotion(
        context: dg.AssetExecutionContext, config: PromotionConfig, storage: StorageResource
    ) -> dg.MaterializeResult:
        """The product's decisions up to the latest cycle, with the table behind the latest."""
        store = storage.storage()
        status = forecast_status(context.instance, partitions_def)
        inputs = ProductInputs(store, settings, product, specs, rules, status)
        times = [partition_key_to_time(k) for k in partitions_def.get_partition_keys()]
        if config.as_of is not None:
            as_of = paths.parse_analysis_time(config.as_of)
        else:
            with_forecasts: set[datetime] = set()
            for m in rules.models:
                with_forecasts |= forecast_cycles(store, specs[m], settings, inputs.versions[m])
            with_forecasts &= set(times)
            if not with_forecasts:
                raise ValueError(
                    f"no forecast of {', '.join(rules.models)} in storage: nothing to decide"
                )
            as_of = max(with_forecasts)
        state, decisions = inputs.replay(times, as_of)
        history = decisions_table(decisions)
        path = paths.promotion_path(product.name, DECISIONS_FILE)
        before = read_table(store, path)
        reported = set()
        if before is not None:
            reported = set(zip(before["cycle"], before["event"], before["action"], strict=True))
        url = write_table(store, history, path)  # first: a failed alert never loses a decision
        for d, row in zip(decisions, history.itertuples(), strict=True):
            if d.changed and (row.cycle, row.event, row.action) not in reported:
                send_alert(
                    context.log,
                    alert_line(product.name, d, inputs.versions),
                    settings.alert_webhook_url,
                )
        latest = next((d for d in reversed(decisions) if d.event == "verified"), None)
        table = latest.table if latest is not None else None
        metadata: dict[str, Any] = {
            "product": product.name,
            "as_of": time_to_partition_key(as_of),
            "champion": state.champion,
            "previous_champions": ", ".join(state.previous) or "none",
            "pinned": state.pinned or "none",
            "artifact_versions": _versions_text(inputs.versions),
            "decisions_path": dg.MetadataValue.path(url),
            "decisions": len(decisions),
            "changes": sum(d.changed for d in decisions),
        }
        if latest is not None:
            metadata.update(
                {
                    "decision": latest.action,
                    "decision_cycle": time_to_partition_key(latest.cycle),
                    "old_champion": latest.old_champion,
                    "new_champion": latest.new_champion,
                    "reason": latest.reason,
                    "table": dg.MetadataValue.md(table_markdown(table)),
                }
            )
            if table is not None and not table.empty:
                table_path = paths.promotion_path(
                    product.name, f"table_{time_to_partition_key(latest.cycle)}.parquet"
                )
                out = table.assign(lead_time=pd.to_timedelta(table["lead_time"]))
                metadata["table_path"] = dg.MetadataValue.path(write_table(store, out, table_path))
        else:
            metadata.update(
                decision="none",
                reason=f"no cycle verified yet (a cycle counts {rules.lag} after its analysis)",
            )
        changes = [d for d in decisions if d.changed]
        if changes:
            metadata["history"] = dg.MetadataValue.md(
                "\n".join(
                    f"- {time_to_partition_key(d.cycle)} {d.event}: **{d.action}** "
                    f"{d.old_champion} -> {d.new_champion} ({d.reason})"
                    for d in changes[-10:]
                )
            )
        metadata["mlflow_alias"] = _mlflow_alias(
            context, settings, product.name, state.champion, {m: specs[m] for m in rules.models}
        )
        context.log.info(
            f"{product.name} as of {time_to_partition_key(as_of)}: champion {state.champion} "
            f"({metadata['decision']}: {metadata['reason']})"
        )
        return dg.MaterializeResult(metadata=metadata)

    return promotion


def _mlflow_alias(
    context: dg.AssetExecutionContext,
    settings: PlatformSettings,
    product: str,
    champion: str,
    specs: dict[str, ModelSpec],
) -> str:
    """Where MLflow is in use, ``champion-<product>`` follows the champion (what the
    metadata says of it); an MLflow store that fails is a warning, not a failed decision."""
    from model_registry import tracking  # mlflow itself only where it is configured

    if not tracking.mlflow_configured(settings):
        return "MLflow not configured"
    names = {
        m: tracking.registered_name(m, s.artifact.uri if s.artifact else None)
        for m, s in specs.items()
    }
    others = [names[m] for m in specs if m != champion]
    try:
        spec = specs[champion]
        sha256 = spec.artifact.sha256 if spec.artifact else None
        if spec.artifact and sha256 is None:  # not pinned in the registry: the file's digest
            loaded = load_model_artifact(spec, settings)
            sha256 = loaded.sha256 if loaded is not None else None
        target = tracking.set_champion_alias(settings, product, (names[champion], sha256), others)
    except Exception as exc:  # noqa: BLE001 - the store's errors are many; the decision stands
        context.log.warning(f"MLflow alias {tracking.champion_alias(product)} not set: {exc}")
        return f"not set: {exc}"
    alias = tracking.champion_alias(product)
    if target is None:
        return f"{alias} removed: {champion}'s artifact is not a registered model version"
    return f"models:/{names[champion]}@{alias} -> {target}"


def product_condition(settings: PlatformSettings, ignore: dg.AssetKey) -> dg.AutomationCondition:
    """Eager on the product's forecasts for recent cycles, without waiting for every model:
    a champion whose forecast failed is exactly when the product must run (on a fallback)."""
    lookback = timedelta(hours=settings.automation_lookback_hours)
    condition = (
        dg.AutomationCondition.eager()
        .replace("in_latest_time_window", dg.AutomationCondition.in_latest_time_window(lookback))
        .without(~dg.AutomationCondition.any_deps_missing())
    )
    return condition.ignore(dg.AssetSelection.assets(ignore)).with_label(
        f"eager_recent_any_forecast({lookback})"
    )


def product_asset(
    product: ProductSpec,
    specs: dict[str, ModelSpec],
    *,
    settings: PlatformSettings,
    partitions_def: dg.TimeWindowPartitionsDefinition,
) -> dg.AssetsDefinition:
    """The published forecast of one product, per cycle, as zarr and GRIB2."""
    rules = product.rules()

    @dg.asset(
        key=product_key(product.name),
        deps=[promotion_key(product.name), *(forecast_key(m) for m in rules.models)],
        partitions_def=partitions_def,
        group_name=GROUP,
        code_version=PRODUCT_CODE_VERSION,
        retry_policy=IO_RETRY,
        owners=settings.owners(),
        kinds={"zarr", "grib2"},
        output_required=False,  # nothing while the model to publish has not forecast yet
        automation_condition=product_condition(settings, promotion_key(product.name)),
        metadata={"product": product.name, "models": ", ".join(rules.models)},
        description=f"The published forecast of {product.name!r} per cycle: the champion's "
        "forecast (or its fallback when it fails its checks), as zarr and GRIB2, with the "
        "model and artifact version that produced it.",
    )
    def published(
        context: dg.AssetExecutionContext, storage: StorageResource
    ) -> Iterator[dg.MaterializeResult]:
        """The champion's forecast of this cycle, as zarr and GRIB2."""
        store = storage.storage()
        t = partition_key_to_time(context.partition_key)
        status = forecast_status(context.instance, partitions_def)
        inputs = ProductInputs(store, settings, product, specs, rules, status)
        times = [partition_key_to_time(k) for k in partitions_def.get_partition_keys()]
        state, decisions = inputs.replay(sorted({*times, t}), t)
        model = published_model(state, decisions, t)
        today = [d for d in decisions if d.cycle == t and d.event == "checks"]
        if model is None:
            raise dg.Failure(
                f"nothing to publish for {product.name} at {context.partition_key}: "
                + (today[0].reason if today else "no model passes its checks")
            )
        spec, version = specs[model], inputs.versions[model]
        missing = [
            m
            for m in forecast_members(spec)
            if not store.exists(store_relpath(spec, settings, t, version, "forecast", m))
        ]
        if missing:  # its forecast has not failed, it is not there yet: publish it once it is
            context.log.info(
                f"{product.name} {context.partition_key}: waiting for forecast/{model} "
                f"({status(model, t) or 'not run'}); this partition runs again when it lands"
            )
            return
        members = [
            store.open_zarr(store_relpath(spec, settings, t, version, "forecast", m))
            for m in forecast_members(spec)
        ]
        forecast = join_forecast_members(members, spec).load()
        action = today[0].action if today else "champion"
        attrs = {
            "product": product.name,
            "model": model,
            "artifact_version": version,
            "champion": state.champion,
            "published_as": action,
            "analysis_time": context.partition_key,
        }
        forecast.attrs.update({f"wxplat_{k}": v for k, v in attrs.items()})
        zarr_rel = product_relpath(product.name, settings, t)
        grib_rel = grib_relpath(product.name, settings, t)
        # The GRIB2 is encoded before anything is written: a forecast it cannot encode leaves
        # the published zarr and GRIB2 as they were, never one model's beside another's.
        with tempfile.TemporaryDirectory(prefix="wxplat-grib-") as tmp:
            local = Path(tmp) / posixpath.basename(grib_rel)
            write_grib2(forecast, local, attrs=attrs, bits_per_value=product.grib_bits_per_value)
            data = local.read_bytes()
            sidecar = sidecar_path(local).read_bytes()
        written = store.write_zarr(forecast, zarr_rel, label=f"product {product.name}")
        # The sidecar first: a reader that finds the GRIB file finds what produced it.
        store.write_bytes(sidecar, grib_rel + ".json")
        grib_url = store.write_bytes(data, grib_rel)
        for d in today:  # after the writes: an alert that fails never holds back the product
            send_alert(
                context.log,
                alert_line(product.name, d, inputs.versions),
                settings.alert_webhook_url,
            )
        side = json.loads(sidecar)
        yield dg.MaterializeResult(
            metadata={
                "product": product.name,
                "model": model,
                "artifact_version": version,
                "champion": state.champion,
                "published_as": action,
                "reason": today[0].reason if today else "the champion's forecast",
                "zarr_path": dg.MetadataValue.path(written.url),
                "grib2_path": dg.MetadataValue.path(grib_url),
                "grib2_sha256": hashlib.sha256(data).hexdigest(),
                "grib2_bytes": len(data),
                "generating_process_identifier": side.get("generatingProcessIdentifier", "n/a"),
                "dagster/row_count": int(forecast.sizes.get("lead_time", 0)),
            }
        )

    return published


def build_product_assets(
    products: Sequence[ProductSpec],
    specs: Sequence[ModelSpec],
    *,
    settings: PlatformSettings,
    partitions_def: dg.TimeWindowPartitionsDefinition,
) -> list[dg.AssetsDefinition]:
    """``promotion/<product>`` and ``product/<product>`` per product whose models are all
    enabled registry entries (the loader already checked they are registered)."""
    by_name = {s.name: s for s in specs}
    assets: list[dg.AssetsDefinition] = []
    for product in products:
        if any(m not in by_name for m in product.models):
            continue
        assets.append(
            promotion_asset(product, by_name, settings=settings, partitions_def=partitions_def)
        )
        assets.append(
            product_asset(product, by_name, settings=settings, partitions_def=partitions_def)
        )
    return assets
