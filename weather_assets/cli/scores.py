"""``wxplat scores``: verification scores aggregated over a period of cycles."""

from __future__ import annotations

from pathlib import Path

import typer

from weather_assets.cli.common import parse_time
from weather_assets.settings import load_settings

app = typer.Typer()


@app.command()
def scores(
    tables: list[str] = typer.Argument(
        ..., help="scores.parquet files or folders of them (paths or URLs, e.g. s3://...)."
    ),
    start: str = typer.Option(None, help="First analysis time (YYYY-MM-DDThhmmZ or ISO 8601)."),
    end: str = typer.Option(None, help="Last analysis time, inclusive."),
    out: Path = typer.Option(None, help="Also write the aggregate to this parquet file."),
) -> None:
    """Aggregate verification scores over a period of cycles (RMSE: root of the mean MSE)."""
    from resources.storage import s3_options
    from weather_assets.verification.scores import aggregate_tables, format_aggregate

    first = parse_time(start) if start else None
    last = parse_time(end) if end else None
    remote = any(t.startswith("s3://") for t in tables)
    options = s3_options(load_settings().storage_endpoint_url) if remote else None
    try:
        aggregate = aggregate_tables(tables, first, last, storage_options=options)
    except FileNotFoundError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    if out is not None:
        aggregate.to_parquet(out, index=False)
    typer.echo(format_aggregate(aggregate))
