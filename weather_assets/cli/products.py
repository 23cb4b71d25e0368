"""``wxplat product``: pin or unpin a product's champion by hand, show its state.

A pin is an entry of the product's pin log (one object under ``promotion/<product>/pins/`` in
the storage root, so that two operators never overwrite each other's), effective from a cycle
on (default: the latest cycle); the promotion and product assets replay it with the scores
(:mod:`weather_assets.products.promotion`), so a pin changes the products of its cycle and
later ones (materialize them again to republish) and never those before it.
"""

from __future__ import annotations

import getpass
from datetime import UTC, datetime

import typer

from weather_assets.cli.common import parse_time
from weather_assets.settings import load_settings

app = typer.Typer(
    help="Products: pin or unpin the champion by hand, show the decisions.", no_args_is_help=True
)


def _context(name: str):
    """(settings, product spec, storage) of a declared product; exit 1 naming what is wrong."""
    from model_registry.products import get_product, products_dir
    from model_registry.registry import load_registry_report
    from resources.storage import StorageResource

    settings = load_settings()
    report = load_registry_report(settings.registry_dir)
    registered = [s.name for s in report.specs if s.enabled]
    try:
        product = get_product(name, products_dir(settings.registry_dir), registered)
    except KeyError as exc:
        typer.echo(str(exc.args[0]), err=True)
        raise typer.Exit(1) from None
    storage = StorageResource(
        root=settings.storage_root,
        endpoint_url=settings.storage_endpoint_url,
        timeout_seconds=settings.storage_timeout_seconds,
    ).storage()
    return settings, product, storage


def _from_cycle(settings, text: str | None) -> datetime:
    if text:
        return parse_time(text)
    from weather_assets.partitions import partition_key_to_time, settings_partitions

    return partition_key_to_time(settings_partitions(settings).get_last_partition_key())


def _record(storage, product: str, kind: str, start: datetime, model: str | None, reason: str):
    """Append a pin log entry by this user, now."""
    from weather_assets.products.assets import record_pin
    from weather_assets.products.promotion import Pin

    pin = Pin(
        kind,
        start,
        model,
        reason=reason,
        by=getpass.getuser(),
        recorded_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    record_pin(storage, product, pin)


@app.command("pin")
def pin(
    product: str = typer.Argument(..., help="Product name (model_registry/products/<name>.yaml)."),
    model: str = typer.Argument(..., help="The model to publish: one of the product's models."),
    from_cycle: str = typer.Option(
        None, "--from", help="First cycle the pin applies to (default: the latest cycle)."
    ),
    reason: str = typer.Option("", help="Why (kept in the pin log and the decisions)."),
) -> None:
    """Pin the product's champion: no promotion or degradation rollback until unpinned."""
    from weather_assets.partitions import time_to_partition_key

    settings, spec, storage = _context(product)
    if model not in spec.models:
        typer.echo(
            f"{model!r} is not a model of {product}; its models: {', '.join(spec.models)}",
            err=True,
        )
        raise typer.Exit(1)
    start = _from_cycle(settings, from_cycle)
    _record(storage, product, "pin", start, model, reason)
    typer.echo(
        f"{product}: pinned to {model} from {time_to_partition_key(start)} on; materialize "
        f"product/{product} for those cycles (and promotion/{product}) to republish"
    )


@app.command("unpin")
def unpin(
    product: str = typer.Argument(..., help="Product name."),
    from_cycle: str = typer.Option(
        None, "--from", help="First cycle without the pin (default: the latest cycle)."
    ),
    reason: str = typer.Option("", help="Why."),
) -> None:
    """Remove the pin: automatic promotion and rollback resume from that cycle on."""
    from weather_assets.partitions import time_to_partition_key

    settings, _, storage = _context(product)
    start = _from_cycle(settings, from_cycle)
    _record(storage, product, "unpin", start, None, reason)
    typer.echo(f"{product}: unpinned from {time_to_partition_key(start)} on")


@app.command("show")
def show(
    product: str = typer.Argument(..., help="Product name."),
    last: int = typer.Option(10, min=1, help="How many of the latest decisions to list."),
) -> None:
    """The product's models, pins and latest decisions (as the promotion asset recorded)."""
    from resources.layout import read_table
    from weather_assets import paths
    from weather_assets.products.assets import DECISIONS_FILE, read_pins

    _, spec, storage = _context(product)
    typer.echo(
        f"{spec.name}: champion (declared) {spec.champion}, challengers "
        f"{', '.join(spec.challengers) or 'none'}, baseline {spec.baseline}"
    )
    typer.echo(
        f"rules: window {spec.window} cycles (at least {spec.min_cycles}), alpha {spec.alpha}, "
        f"rollback after {spec.rollback_after} degraded cycle(s)"
    )
    for p in read_pins(storage, product):
        who = f" by {p.by}" if p.by else ""
        why = f": {p.reason}" if p.reason else ""
        target = f" {p.model}" if p.model else ""
        typer.echo(f"{p.action}{target} from {paths.format_analysis_time(p.from_cycle)}{who}{why}")
    decisions = read_table(storage, paths.promotion_path(product, DECISIONS_FILE))
    if decisions is None or decisions.empty:
        typer.echo(f"no decisions yet: materialize promotion/{product}")
        return
    latest = decisions.iloc[-1]
    typer.echo(f"champion now: {latest['new_champion']} (pinned: {latest['pinned'] or 'no'})")
    for row in decisions.tail(last).itertuples():
        typer.echo(
            f"{row.cycle} {row.event:8} {row.action:12} {row.old_champion} -> "
            f"{row.new_champion}  {row.reason}"
        )
