"""Verification of forecasts against analyses: metrics and their aggregation."""
