"""Commands about cycles: simulate upstream analyses, run the demo, backfill, list stale
cycles, the instance."""

from __future__ import annotations

from datetime import timedelta

import typer

from weather_assets import paths
from weather_assets.cli.common import instance_home, local_instance, parse_time
from weather_assets.keys import model_keys
from weather_assets.settings import load_settings

app = typer.Typer()


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
    from weather_assets.partitions import settings_partitions

    settings = load_settings()
    first, last, every = parse_time(start), parse_time(end), timedelta(hours=every_hours)
    parts = settings_partitions(settings)
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


@app.command()
def instance() -> None:
    """Prepare the local Dagster instance (dagster.yaml, pool limits) and print its home."""
    local_instance().dispose()
    typer.echo(str(instance_home(load_settings())))


@app.command()
def demo(
    cycles: int = typer.Option(16, help="Number of 6-hourly cycles to simulate and ingest."),
    start: str = typer.Option(
        None, help="First analysis time (default: the cycles end with the one due now)."
    ),
) -> None:
    """Run the embedded default end to end: simulate upstream cycles and materialize assets."""
    from weather_assets.demo import run_demo

    run_demo(
        instance=local_instance(),
        start=parse_time(start) if start else None,
        cycles=cycles,
        echo=typer.echo,
    )


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
    instance = local_instance()
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


@app.command()
def stale(
    model: list[str] = typer.Option(None, help="Model(s) to look at (default: every model)."),
    backfill: bool = typer.Option(
        False, help="Re-run the stale cycles of those models as one backfill (webserver)."
    ),
    url: str = typer.Option("http://127.0.0.1:3000", help="Dagster webserver URL."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON lines instead of a table."),
) -> None:
    """Cycles made with a superseded artifact or from inputs that changed since.

    Records what the sensors see now (artifact sha256s, upstream versions), then asks
    Dagster's stale-status resolver, the one the UI's "Unsynced" marker comes from.
    """
    import json

    import definitions
    from weather_assets.lineage import record_sensor_events, stale_partitions

    defs = definitions.build_definitions(load_settings())
    graph = defs.resolve_asset_graph()
    models = model or sorted(
        {k.path[1] for k in graph.get_all_asset_keys() if k.path[0] == "forecast"}
    )
    keys = [k for m in models for k in model_keys(m)]
    unknown = sorted({m for m in models if not graph.has(model_keys(m)[1])})
    if unknown:
        raise typer.BadParameter(f"no such model in the code location: {', '.join(unknown)}")
    keys = [k for k in keys if graph.has(k)]
    instance = local_instance()
    record_sensor_events(instance, defs)
    found = stale_partitions(instance, graph, keys)
    if as_json:
        for item in found:
            typer.echo(json.dumps(item.as_dict()))
    elif not found:
        typer.echo(f"nothing stale: every materialized cycle of {', '.join(models)} is up to date")
    else:
        for item in found:
            typer.echo(
                f"{item.asset.to_user_string():28} {item.partition}  made with {item.made_with}"
                f"  stale: {'; '.join(item.causes)}"
            )
    if not backfill or not found:
        return
    from weather_assets.backfill import WebserverUnreachable, launch_backfill

    stale_models = sorted({item.asset.path[1] for item in found})
    targets = [k for m in stale_models for k in model_keys(m) if graph.has(k)]
    cycles = sorted({item.partition for item in found if item.partition is not None})
    try:
        backfill_id = launch_backfill(url, targets, cycles)
    except WebserverUnreachable:
        typer.echo(
            f"no Dagster webserver answers at {url}: start it with `make dev` and run this again",
            err=True,
        )
        raise typer.Exit(1) from None
    except (RuntimeError, ValueError) as exc:
        typer.echo(f"the backfill was not launched: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"backfill {backfill_id}: {len(cycles)} cycle(s) of "
        f"{', '.join(k.to_user_string() for k in targets)}; see {url}/overview/backfills"
    )
