"""Forecast domain: normalization, rollout and the per-model Dagster assets.

``build_model_assets`` is imported lazily so that the pure data logic (``normalize``,
``rollout``) can be used without importing Dagster.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_model_assets"]


def __getattr__(name: str) -> Any:
    if name == "build_model_assets":
        from weather_assets.forecast.assets import build_model_assets

        return build_model_assets
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
