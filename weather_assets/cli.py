"""``wxplat``: the platform's command line (simulate upstream cycles, run the demo, models)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer

from weather_assets import paths
from weather_assets.keys import model_keys
from weather_assets.settings import load_settings

app = typer.Typer(
    help="Operational platform for ML weather models on Dagster.", no_args_is_help=True
)

DEMO_START = "2026-01-01T0000Z"


def _time(text: str) -> datetime:
    try:
        return paths.parse_analysis_time(text)
    except ValueError:
        try:
            t = datetime.fromisoformat(text)
        except ValueError:
            raise typer.BadParameter(
                f"{text!r} is not a time: use YYYY-MM-DDThhmmZ or ISO 8601"
            ) from None
        return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


@app.command()
def simulate(
    start: str = typer.Option(..., help="First analysis time (YYYY-MM-DDThhmmZ)."),
    end: str = typer.Option(..., help="Last analysis time, inclusive."),
    every_hours: int = typer.Option(6, min=1, help="Hours between cycles."),
    out: str = typer.Option(None, help="Upstream prefix (default: the configured upstream URL)."),
    overwrite: bool = typer.Option(False, help="Rewrite cycles that already exist."),
) -> None:
    """Write simulated analysis cycles into an upstream area, in the path layout.

    The cycles must be on the platform's partition cadence (WXPLAT_PARTITIONS_CRON).
    """
    from resources.storage import s3_options
    from weather_assets.ingest.simulate import check_cycle_range, write_simulated_cycles
    from weather_assets.partitions import analysis_time_partitions

    settings = load_settings()
    parts = analysis_time_partitions(settings.partitions_start, settings.partitions_cron)
    first, last, every = _time(start), _time(end), timedelta(hours=every_hours)
    try:
        check_cycle_range(first, last, every, parts)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    prefix = out or settings.upstream_url
    options = s3_options(settings.upstream_endpoint_url) if "://" in prefix else {}
    results = write_simulated_cycles(
        prefix,
        first,
        last,
        every,
        storage_options=options,
        overwrite=overwrite,
        partitions_def=parts,
    )
    for t, url, written in results:
        typer.echo(f"{'wrote ' if written else 'exists'} {paths.format_analysis_time(t)} {url}")


LOCAL_INSTANCE_YAML = """\
# Local Dagster instance of the platform (SQLite under this folder), written by `wxplat instance`.
telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: 4
    granularity: op
# The default launcher plus a worker health check: run monitoring fails a run whose process
# was killed instead of leaving it STARTED.
run_launcher:
  module: resources.run_launcher
  class: LocalRunLauncher
run_monitoring:
  enabled: true
  poll_interval_seconds: 30
  max_resume_run_attempts: 0
  # A crashed run frees its pool slots (the gpu pool above all) after this long.
  free_slots_after_run_end_seconds: 300
# Storage retries and interrupted commits show in the run's log.
python_logs:
  managed_python_loggers:
    - wxplat.storage
"""


def _instance():
    """The local Dagster instance under WXPLAT_HOME (what `make dev` shows in the UI)."""
    import dagster as dg

    from resources.execution import apply_pool_limits, pool_limits

    settings = load_settings()
    home = Path(os.environ.get("DAGSTER_HOME") or settings.home / "dagster")
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text(LOCAL_INSTANCE_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    instance = dg.DagsterInstance.get()
    apply_pool_limits(instance, pool_limits(settings))
    return instance


@app.command()
def instance() -> None:
    """Prepare the local Dagster instance (dagster.yaml, pool limits) and print its home."""
    inst = _instance()
    typer.echo(os.environ["DAGSTER_HOME"])
    inst.dispose()


@app.command()
def demo(
    cycles: int = typer.Option(16, help="Number of 6-hourly cycles to simulate and ingest."),
    start: str = typer.Option(DEMO_START, help="First analysis time."),
) -> None:
    """Run the embedded default end to end: simulate upstream cycles and materialize assets."""
    from weather_assets.demo import run_demo

    run_demo(instance=_instance(), start=_time(start), cycles=cycles, echo=typer.echo)


@app.command()
def backfill(
    start: str = typer.Option(..., help="First analysis time (partition key)."),
    end: str = typer.Option(..., help="Last analysis time, inclusive."),
    model: list[str] = typer.Option(
        None, help="Model(s): backfill normalized/, forecast/ and verification/<model>."
    ),
    asset: list[str] = typer.Option(None, help="Other asset keys, e.g. raw_inputs/simulator."),
    url: str = typer.Option("http://127.0.0.1:3000", help="Dagster webserver URL."),
    force: bool = typer.Option(False, help="Also redo partitions already materialized."),
) -> None:
    """Backfill a range of cycles through the webserver (runs execute under the daemon)."""
    import urllib.error

    import dagster as dg

    import definitions
    from weather_assets.backfill import (
        WebserverUnreachable,
        launch_backfill,
        partitions_to_backfill,
    )

    # A model's backfill is its whole chain for those cycles: inputs, forecast, scores.
    keys = [key for m in model or [] for key in model_keys(m)]
    keys += [dg.AssetKey.from_user_string(a) for a in asset or []]
    if not keys:
        raise typer.BadParameter("name at least one --model or --asset")
    graph = definitions.build_definitions(load_settings()).resolve_asset_graph()
    instance = _instance()
    todo: set[str] = set()
    for key in keys:
        if not graph.has(key):
            raise typer.BadParameter(f"no asset {key.to_user_string()} in the code location")
        parts = graph.get(key).partitions_def
        try:
            todo |= set(partitions_to_backfill(instance, key, parts, start, end, force))
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
    if not todo:
        typer.echo("every partition in the range is already materialized (use --force to redo)")
        return
    try:
        backfill_id = launch_backfill(url, keys, sorted(todo))
    except WebserverUnreachable:
        typer.echo(
            f"no Dagster webserver answers at {url}: start it with `make dev` "
            "(or point --url at a running one) and run this again",
            err=True,
        )
        raise typer.Exit(1) from None
    except urllib.error.HTTPError as exc:
        typer.echo(f"{url} answered {exc} instead of a Dagster webserver's GraphQL", err=True)
        raise typer.Exit(1) from None
    except (RuntimeError, ValueError) as exc:  # refused by the webserver, or not its JSON
        typer.echo(f"the backfill was not launched: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"backfill {backfill_id}: {len(todo)} partition(s) of "
        f"{', '.join(k.to_user_string() for k in keys)}; see {url}/overview/backfills"
    )


storage_app = typer.Typer(help="The storage root: housekeeping.", no_args_is_help=True)
app.add_typer(storage_app, name="storage")


@storage_app.command("clean")
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

    first = _time(start) if start else None
    last = _time(end) if end else None
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


def _mount_model_commands() -> None:
    try:
        from model_registry.cli import app as model_app
    except ImportError:  # the model tooling is optional for ingest-only installs
        return
    for command in model_app.registered_commands:
        app.registered_commands.append(command)
    for group in model_app.registered_groups:
        app.registered_groups.append(group)


_mount_model_commands()

if __name__ == "__main__":
    app()
