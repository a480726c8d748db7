"""Several fetchers on several machines as one: the shared list (a Redis Stream) and the cluster's status.

The cluster's slots are a kind of gate (fetcher/limits/redis.py); this package
holds what a cluster shares besides: the queue of URLs and the final records
(``queue.py``), and what ``fetcher cluster status`` reads (``status.py``).
redis-py is imported only when a cluster is used (``pip install 'fetcher[redis]'``).
"""

from .queue import ClusterQueue

__all__ = ["ClusterQueue"]
