"""A new run of a cluster over the same keys: what ``fetcher enqueue --again`` does first (a nightly re-run).

A cluster's queue queues each URL once (``seen``), and keeps one final record
per URL (``records``, counted in ``totals``): one run.  ``new_round(url,
cluster)`` ends that run so that the next ``enqueue`` can queue the same URLs
again: in one script it empties the queue (its entries are all done: the
consumer group and its workers stay), and deletes ``seen``, the final records
and their counts.  It refuses while any URL is waiting or in progress, so a
run is never cut in two.

What stays is what makes the next run cheap: the cluster's state
(fetcher/state/redis_store.py: the validators of every saved file, the
partial files, the file names), kept under the cluster's name and never
touched here.  So a nightly re-run is the same cluster name every night,
``fetcher enqueue --again LIST`` once, then ``fetcher work`` on each machine:
tonight's workers ask with last night's validators whichever machine saved
each file.  Last night's final records are gone after it (export them first
with ``fetcher cluster export`` to keep them; each worker's own report in its
DEST keeps its share anyway).
"""

from __future__ import annotations

from .._errors import ConfigError
from .._text import escape, redact
from ..limits.redis import cluster_keys
from ..limits.redis_link import redis_client
from .queue import GROUP

# KEYS: queue, seen, records, totals.  ARGV: the consumer group.  Refused ({-1, pending}) while an entry is waiting
# (after the group's last delivered one) or pending (taken, not acknowledged); else {final records cleared, 0}.
_NEW_ROUND = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local info = {}
    for i = 1, #group, 2 do info[group[i]] = group[i + 1] end
    if info['name'] == ARGV[1] then
      local later = redis.call('XRANGE', KEYS[1], '(' .. info['last-delivered-id'], '+', 'COUNT', 1)
      if #later > 0 or tonumber(info['pending']) > 0 then return {-1, tonumber(info['pending'])} end
    end
  end
end
local cleared = redis.call('HLEN', KEYS[3])
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
redis.call('XTRIM', KEYS[1], 'MAXLEN', 0)
return {cleared, 0}
"""


def new_round(url: str, cluster: str) -> int:
    """End *cluster*'s run so that its URLs can be queued again (see the module docs): the final records cleared.

    A ConfigError when Redis cannot be used, or URLs of the run are still waiting or in progress.
    """
    keys = cluster_keys(cluster)
    with redis_client(url) as client:
        cleared, pending = client.eval(_NEW_ROUND, 4, keys["queue"], keys["seen"], keys["records"], keys["totals"],
                                       GROUP)  # fmt: skip
    if int(cleared) < 0:
        raise ConfigError(f"cluster {escape(cluster)} at {redact(url)} has URLs waiting or in progress "
                          f"({int(pending):,} in progress): its run is not over; let 'fetcher work' finish "
                          "it (see 'fetcher cluster status') before queuing its URLs again")  # fmt: skip
    return int(cleared)
