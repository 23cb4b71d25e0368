"""Upstream sensor tick time vs history size, on a moto S3 server on 127.0.0.1.

With 10, 1,000 and 10,000 cycles already in the bucket and one new one, a tick of the
platform's sensor (cursor-based, delimiter listing with StartAfter) against the plain way
(list every cycle under the prefix with s3fs and diff against the set already seen).

    .venv/bin/python benchmarks/bench_sensor.py [--sizes 10 1000 10000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 1000, 10000])
    args = parser.parse_args()
    import boto3
    import s3fs
    from moto.server import ThreadedMotoServer

    from resources.upstream import UpstreamSource
    from weather_assets.ingest.sensors import evaluate_upstream
    from weather_assets.partitions import analysis_time_partitions, time_to_partition_key

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=endpoint)
    start = datetime(2010, 1, 1, tzinfo=UTC)
    parts = analysis_time_partitions(time_to_partition_key(start))
    rows = []
    try:
        for n in args.sizes:
            bucket = f"bench-{n}"
            client.create_bucket(Bucket=bucket)
            prefix = "nwp/sim/analysis/w0_s-90_e358_n90/dx2deg_dy2deg"

            def put(i: int, bucket: str = bucket, prefix: str = prefix) -> str:
                key = time_to_partition_key(start + timedelta(hours=6 * i))
                client.put_object(
                    Bucket=bucket,
                    Key=f"{prefix}/{key}/member0/analysis.zarr/.zmetadata",
                    Body=b"{}",
                )
                return key

            keys = [put(i) for i in range(n)]
            up = UpstreamSource(url=f"s3://{bucket}/{prefix}", endpoint_url=endpoint)
            now = start + timedelta(hours=6 * (n + 2))
            lookback = timedelta(days=2)
            seen = {k: up.cycle_version(k) for k in keys[-16:]}
            cursor = {"newest": keys[-1], "seen": seen, "sizes": {}}
            put(n)  # the one new cycle
            t0 = time.perf_counter()
            found, _, _ = evaluate_upstream(up, parts, cursor, now, lookback)
            ours = time.perf_counter() - t0
            assert [k for k, _ in found] == [time_to_partition_key(start + timedelta(hours=6 * n))]
            fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint})
            known = set(keys)
            t0 = time.perf_counter()
            listed = [p.rsplit("/", 1)[-1] for p in fs.ls(f"{bucket}/{prefix}", refresh=True)]
            new = [k for k in listed if k not in known]
            plain = time.perf_counter() - t0
            assert len(new) == 1
            rows.append((n, ours, plain))
    finally:
        server.stop()
    print("| cycles in bucket | sensor tick (s) | plain full listing (s) | ratio tick/plain |")
    print("|---:|---:|---:|---:|")
    for n, ours, plain in rows:
        print(f"| {n} | {ours:.3f} | {plain:.3f} | {ours / plain:.2f} |")


if __name__ == "__main__":
    main()
