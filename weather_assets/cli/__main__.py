"""``python -m weather_assets.cli``: the same as ``wxplat``."""

from weather_assets.cli import app

app()
