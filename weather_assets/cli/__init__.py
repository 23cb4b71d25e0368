"""``wxplat``: the platform's one command line, one module per group of commands.

- ``cycles``: ``simulate``, ``demo``, ``backfill``, ``instance``
- ``models``: ``train``, ``artifact build|validate|inspect``, ``registry list|validate``
- ``scores``: ``scores`` (verification aggregated over a period)
- ``storage``: ``storage clean``
- ``pools``: ``pools apply``
- ``metrics``: ``metrics serve|show`` (Prometheus)
- ``products``: ``product pin|unpin|show`` (champion by hand, decisions)

A new command is a function in the module of its group (or a new module registered below).
"""

import typer

from weather_assets.cli import cycles, metrics, models, pools, products, scores, storage

app = typer.Typer(
    help="Operational platform for ML weather models on Dagster.", no_args_is_help=True
)
for group in (cycles, models, scores):  # commands at the top level
    app.registered_commands += group.app.registered_commands
    app.registered_groups += group.app.registered_groups
app.add_typer(storage.app, name="storage")
app.add_typer(pools.app, name="pools")
app.add_typer(metrics.app, name="metrics")
app.add_typer(products.app, name="product")
