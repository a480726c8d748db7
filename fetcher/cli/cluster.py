"""``fetcher enqueue``, ``fetcher work`` and ``fetcher cluster status``: one list for many machines, on Redis.

``enqueue`` puts a URL list into the cluster's queue, each URL once.
``work`` is ``get`` with its URLs taken from that queue (every download
option of ``get`` applies, and its report, display and exit codes are
``get``'s); it ends when the queue is drained.  ``cluster status`` reads
the queue, the slots and the workers.  The work itself is the library's
(fetcher/cluster/); these only parse options and print.
"""

from __future__ import annotations

import json
from typing import Any

import click

from .._text import escape, redact
from .._urllist import open_url_list
from .exits import EXIT_FAILED, EXIT_OK
from .get import get
from .stderr import say

#: Invalid lines that enqueue names (it counts them all).
INVALID_NAMED = 20

_REDIS = click.option("--redis", "redis_url", required=True, metavar="URL",
                      help="The Redis server of the cluster (redis://HOST:6379/0).")  # fmt: skip
_CLUSTER = click.option("--cluster", required=True, metavar="NAME", help="The cluster's name.")


@click.command("enqueue", short_help="Put a URL list into a cluster's queue, each URL once (for 'fetcher work').")
@click.argument("url_list", metavar="URL_LIST")
@_REDIS
@_CLUSTER
@click.option("--quiet", "-q", is_flag=True, help="Print nothing unless a line is invalid.")
def enqueue(url_list: str, redis_url: str, cluster: str, quiet: bool) -> int:
    """Put every URL of URL_LIST (a file, or - for standard input) into the queue of cluster NAME.

    A URL the cluster has queued before (in any list, in normal form) is not queued again.  Invalid
    lines are named and not queued (exit 1).  'fetcher work' on any machine then downloads them.
    """
    from ..cluster.queue import ClusterQueue, valid_entries

    entries = open_url_list(url_list)
    invalid: list[Any] = []
    try:
        queue = ClusterQueue(redis_url, cluster)
        try:
            added, before = queue.enqueue(valid_entries(entries, invalid))
        finally:
            queue.close()
    finally:
        entries.close()
    for entry, why in invalid[:INVALID_NAMED]:
        say(f"fetcher: line {entry.line}: {escape(why)}: {escape(redact(entry.url))}")
    if len(invalid) > INVALID_NAMED:
        say(f"fetcher: and {len(invalid) - INVALID_NAMED:,} more invalid lines")
    if not quiet or invalid:
        skipped = f", {len(invalid):,} invalid lines" if invalid else ""
        say(f"fetcher: queued {added:,} URLs in cluster {escape(cluster)} ({before:,} queued before{skipped})")
    return EXIT_FAILED if invalid else EXIT_OK


def _work(**params: Any) -> int:
    """Download the URLs of cluster NAME's queue, until it is drained; every option of 'fetcher get' applies.

    Each URL is taken by one worker; a worker that dies holding URLs (kill -9, a lost machine) leaves them
    to the others after the --lease (10 s).  Each worker writes its own report, as 'get' does; the final
    records of all are also kept in Redis.  With --redis and --cluster, --max is the cluster's, shared.
    """
    from ..cluster.queue import ClusterQueue

    # A batch as big as the slots: what a worker takes beyond what it can start soon waits in its hands.
    queue = ClusterQueue(params["redis_url"], params["cluster"], lease_s=params["lease"],
                         unreachable_s=params["timeout"], batch=params["max_concurrent"])  # fmt: skip
    try:
        source = f"cluster {params['cluster']} at {queue.where}"
        return int(get.callback(url_list=source, input_file=None, queue=queue, **params))  # type: ignore[misc]
    finally:
        queue.close()


# get's options, less the list (and -O, for one URL); --redis and --cluster are required here.
_LIST_OPTIONS = {"url_list", "input_file", "output"}
work = click.Command(
    "work",
    callback=_work,
    params=[
        *(p for p in get.params if p.name not in _LIST_OPTIONS | {"redis_url", "cluster"}),
        *_REDIS(_CLUSTER(click.Command("x"))).params,
    ],
    help=_work.__doc__,
    short_help="Download the URLs of a cluster's queue until it is drained.",
    epilog=get.epilog,
)


@click.group("cluster", short_help="See a cluster: its queue, slots and workers.")
def cluster_group() -> None:
    """Commands about a cluster of fetchers sharing a Redis server."""


@cluster_group.command("status")
@_REDIS
@_CLUSTER
@click.option("--json", "as_json", is_flag=True, help="Print the status as one JSON object.")
def status(redis_url: str, cluster: str, as_json: bool) -> int:
    """Show the queue (waiting, in progress, done by status), the slots in use and the workers alive."""
    from ..cluster.status import read_status, status_text

    now = read_status(redis_url, cluster)
    click.echo(json.dumps(now.to_record()) if as_json else status_text(now), nl=as_json)
    return EXIT_OK
