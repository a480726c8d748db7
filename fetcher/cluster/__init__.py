"""Several fetchers on several machines as one: the shared list (a Redis Stream) and the cluster's status.

The cluster's slots are a kind of gate (fetcher/limits/redis.py); this package
holds what a cluster shares besides: the queue of URLs and the final records
(``queue.py``), a new run over the same keys (``again.py``), and what
``fetcher cluster status`` reads (``status.py``).  The cluster's shared state
(validators, partial files, file names) is fetcher/state/redis_store.py.
redis-py is imported only when a cluster is used (``pip install 'fetcher[redis]'``).
"""

from .queue import ClusterQueue

__all__ = ["ClusterQueue"]
