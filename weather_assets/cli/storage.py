"""``wxplat storage``: housekeeping of the storage root."""

from __future__ import annotations

import typer

from weather_assets.settings import load_settings

app = typer.Typer(help="The storage root: housekeeping.", no_args_is_help=True)


@app.command("clean")
def storage_clean(
    max_age_hours: float = typer.Option(
        6.0, min=0.0, help="Staging older than this counts as abandoned even on another host."
    ),
) -> None:
    """Finish interrupted commits and remove staging left by dead writers (never a live one)."""
    from datetime import timedelta

    from resources.storage import StorageResource

    settings = load_settings()
    resource = StorageResource(
        root=settings.storage_root,
        endpoint_url=settings.storage_endpoint_url,
        timeout_seconds=settings.storage_timeout_seconds,
    )
    report = resource.storage().clean_staging(timedelta(hours=max_age_hours))
    for label in report.rolled_forward:
        typer.echo(f"completed the interrupted commit of {label}")
    for url in report.removed:
        typer.echo(f"removed {url}")
    typer.echo(
        f"{len(report.rolled_forward)} commit(s) completed, {len(report.removed)} removed, "
        f"{len(report.kept)} live write(s) kept under {settings.storage_root}"
    )
