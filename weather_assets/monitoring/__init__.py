"""Prometheus metrics of the platform, read from the Dagster instance (and the storage).

- ``catalog``: every metric the exporter exposes (name, type, labels, help): the contract the
  Grafana dashboard (``deploy/grafana/``) and alert rules are written against;
- ``reader``: what to watch (asset keys, check keys, the upstream source) and the incremental
  reading of the instance's records into running totals and latest values;
- ``collector``: the ``prometheus_client`` collector that refreshes on scrape (cached for a
  few seconds) and the HTTP server behind ``wxplat metrics serve``.
"""
