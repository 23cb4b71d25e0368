"""Every asset key of the platform, in one place (keys are contracts: the UI, the CLI, runs
and backfills name assets by them).

Keys are built from names (a source's or a model's), so that any layer can name an asset
without the objects that describe it.
"""

import dagster as dg

SCORECARD_KEY = dg.AssetKey(["scorecard"])
REGISTRY_KEY = dg.AssetKey(["model_registry"])
# The per-model assets a model's backfill covers, in lineage order.
MODEL_KINDS = ("normalized", "forecast", "verification")


def upstream_key(source: str) -> dg.AssetKey:
    """The external asset standing for an upstream provider's cycles."""
    return dg.AssetKey(["upstream", source])


def raw_inputs_key(source: str) -> dg.AssetKey:
    """A source's cycles as canonical zarr."""
    return dg.AssetKey(["raw_inputs", source])


def climatology_key(source: str) -> dg.AssetKey:
    """The climatology of a source's analyses."""
    return dg.AssetKey(["climatology", source])


def artifact_key(model: str) -> dg.AssetKey:
    """A model's inference artifact (observed; data version = sha256)."""
    return dg.AssetKey(["model_artifact", model])


def normalized_key(model: str) -> dg.AssetKey:
    """A model's standardized inputs."""
    return dg.AssetKey(["normalized", model])


def forecast_key(model: str) -> dg.AssetKey:
    """A model's forecasts."""
    return dg.AssetKey(["forecast", model])


def verification_key(model: str) -> dg.AssetKey:
    """A model's verification scores."""
    return dg.AssetKey(["verification", model])


def model_keys(model: str) -> list[dg.AssetKey]:
    """The partitioned assets of one model: normalized, forecast, verification."""
    return [dg.AssetKey([kind, model]) for kind in MODEL_KINDS]


def promotion_key(product: str) -> dg.AssetKey:
    """A product's champion/challenger decisions (unpartitioned, one materialization each)."""
    return dg.AssetKey(["promotion", product])


def product_key(product: str) -> dg.AssetKey:
    """A product's published forecast per cycle (zarr and GRIB2)."""
    return dg.AssetKey(["product", product])
