"""``wxplat metrics``: the platform's Prometheus metrics (``serve``, ``show``)."""

from __future__ import annotations

import typer

from weather_assets.cli.common import instance_home
from weather_assets.settings import load_settings

app = typer.Typer(help="Prometheus metrics read from the Dagster instance.", no_args_is_help=True)

CACHE_SECONDS = typer.Option(5.0, help="Scrapes within this many seconds share one refresh.")
UPSTREAM_SECONDS = typer.Option(60.0, help="Look at the upstream source at most this often.")
WINDOW = typer.Option(500, help="Records per asset key read at start (then only new ones).")


def _collector(cache_seconds: float, upstream_seconds: float, window: int):
    """The collector over the ``DAGSTER_HOME`` instance and this deployment's definitions."""
    import dagster as dg

    import definitions
    from model_registry.registry import load_registry_report
    from weather_assets.monitoring.collector import PlatformCollector
    from weather_assets.monitoring.reader import PlatformReader, targets_from_definitions

    settings = load_settings()
    home = instance_home(settings)
    if not home.is_dir():
        typer.echo(
            f"no Dagster instance at {home}: set DAGSTER_HOME, or run `wxplat instance` first",
            err=True,
        )
        raise typer.Exit(1)
    # The instance is only read: no dagster.yaml written, no pool limits set.
    instance = dg.DagsterInstance.from_config(str(home))
    defs = definitions.build_definitions(settings)
    specs = [s for s in load_registry_report(settings.registry_dir).specs if s.enabled]
    reader = PlatformReader(
        instance,
        targets_from_definitions(defs, specs),
        window=window,
        upstream_seconds=upstream_seconds,
    )
    return PlatformCollector(reader, cache_seconds=cache_seconds), home


@app.command("serve")
def metrics_serve(
    port: int = typer.Option(9464, help="TCP port of /metrics."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0 in a pod)."),
    cache_seconds: float = CACHE_SECONDS,
    upstream_seconds: float = UPSTREAM_SECONDS,
    window: int = WINDOW,
) -> None:
    """Serve the platform's metrics for Prometheus at http://HOST:PORT/metrics."""
    import signal

    from weather_assets.monitoring.collector import serve

    collector, home = _collector(cache_seconds, upstream_seconds, window)
    server, thread = serve(collector, host=host, port=port)

    def stop(signum, frame):  # SIGTERM (a pod stopping) ends like Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    typer.echo(f"metrics of the instance at {home} on http://{host}:{port}/metrics")
    try:
        thread.join()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        collector.reader.instance.dispose()


@app.command("show")
def metrics_show(
    upstream_seconds: float = UPSTREAM_SECONDS,
    window: int = WINDOW,
) -> None:
    """Print one scrape of the metrics (the Prometheus text format) and exit."""
    from prometheus_client import generate_latest

    from weather_assets.monitoring.collector import make_registry

    collector, _ = _collector(0.0, upstream_seconds, window)
    try:
        typer.echo(generate_latest(make_registry(collector)).decode(), nl=False)
    finally:
        collector.reader.instance.dispose()
