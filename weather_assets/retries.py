"""Retry policy of the I/O-bound steps (reading upstream, object-store writes).

Transient failures there (a throttled bucket, a dropped connection) are worth two more
tries with exponential back-off (2 s, then 4 s); a data error fails the same way every time and is reported
after the retries. Forecast steps are not retried: a GPU step that failed is expensive to
repeat blindly and its failure is rarely transient.
"""

import dagster as dg

IO_RETRY = dg.RetryPolicy(
    max_retries=2, delay=2, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)
