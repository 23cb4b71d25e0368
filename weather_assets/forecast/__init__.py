"""Forecast domain: normalization and rollout (pure logic), and the per-model Dagster assets."""
