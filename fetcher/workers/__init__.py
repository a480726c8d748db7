"""Worker processes: the downloads of a long list spread over every core.

``pool.py`` is the run's side (start the processes, hand them tasks in
batches, settle what comes back), ``child.py`` the process's side, and
``wire.py`` the values that cross between them.  A newcomer can read them
in that order.  ``cores.py`` says which core each process keeps to,
``spawn.py`` and ``zygote.py`` how a worker process is started.
"""

from .pool import ProcessPool

__all__ = ["ProcessPool"]
