"""Traffic between releases through HAProxy: the Runtime API client (``haproxy``), weight
switches and their reconciliation (``split``), the per-request log receiver (``log_receiver``)
and the counters they keep (``counters``). Nothing here decides whether a release is good."""
