"""``wxplat pools``: the instance's concurrency pools (the ``gpu`` pool sized to the GPUs)."""

from __future__ import annotations

import typer

from weather_assets.settings import load_settings

app = typer.Typer(help="Concurrency pools of the Dagster instance.", no_args_is_help=True)


@app.command("apply")
def pools_apply() -> None:
    """Set the pool limits of the current settings on the ``DAGSTER_HOME`` instance."""
    import dagster as dg

    from resources.execution import apply_pool_limits, pool_limits

    with dg.DagsterInstance.get() as instance:
        for pool, slots in apply_pool_limits(instance, pool_limits(load_settings())).items():
            typer.echo(f"pool {pool}: {slots} slots")
