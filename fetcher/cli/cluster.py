"""``fetcher enqueue``, ``fetcher work`` and ``fetcher cluster status|export|report``: one list for many machines.

``enqueue`` puts a URL list into the cluster's queue, each URL once
(``--again`` starts a new run of the cluster first: a nightly re-run).
``work`` is ``get`` with its URLs taken from that queue (every download
option of ``get`` applies, and its report, display and exit codes are
``get``'s); it ends when the queue is drained.  ``cluster status`` reads
the queue, the slots and the workers; ``cluster export`` writes the final
records of every worker as one report, and ``cluster report`` summarises
them as ``fetcher report`` does.  The work itself is the library's
(fetcher/cluster/); these only parse options and print.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .._text import escape, redact
from .._urllist import open_url_list
from .exits import EXIT_FAILED, EXIT_OK
from .get import get
from .report import report
from .stderr import say

#: Invalid lines that enqueue names (it counts them all).
INVALID_NAMED = 20

_REDIS = click.option("--redis", "redis_url", required=True, metavar="URL",
                      help="The Redis server of the cluster (redis://HOST:6379/0).")  # fmt: skip
_CLUSTER = click.option("--cluster", required=True, metavar="NAME", help="The cluster's name.")
_Decorated = TypeVar("_Decorated", bound="Callable[..., Any] | click.Command")


def _cluster_options(command: _Decorated) -> _Decorated:
    """--redis and --cluster, which every command of a cluster takes."""
    return _REDIS(_CLUSTER(command))


@click.command("enqueue", short_help="Put a URL list into a cluster's queue, each URL once (for 'fetcher work').")
@click.argument("url_list", metavar="URL_LIST")
@_cluster_options
@click.option("--again", is_flag=True,
              help="Start a new run of the cluster first (a nightly re-run): its URLs may be queued again, its "
                   "final records are cleared; the validators stay.  Refused while URLs are waiting or in progress.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing unless a line is invalid.")
def enqueue(url_list: str, redis_url: str, cluster: str, again: bool, quiet: bool) -> int:
    """Put every URL of URL_LIST (a file, or - for standard input) into the queue of cluster NAME.

    A URL the cluster has queued before (in any list, in normal form) is not queued again, unless
    --again starts a new run first.  Invalid lines are named and not queued (exit 1).  'fetcher work'
    on any machine then downloads them.
    """
    from ..cluster.again import new_round
    from ..cluster.queue import ClusterQueue, valid_entries

    entries = open_url_list(url_list)
    invalid: list[Any] = []
    try:
        if again:
            cleared = new_round(redis_url, cluster)
            if not quiet:
                say(f"fetcher: a new run of cluster {escape(cluster)} ({cleared:,} final records of the last "
                    "one cleared)")  # fmt: skip
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
        more = len(invalid) - INVALID_NAMED
        say(f"fetcher: and {more:,} more invalid line{'s' if more != 1 else ''}")
    if not quiet or invalid:
        skipped = f", {len(invalid):,} invalid line{'s' if len(invalid) != 1 else ''}" if invalid else ""
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
        *_cluster_options(click.Command("x")).params,
    ],
    help=_work.__doc__,
    short_help="Download the URLs of a cluster's queue until it is drained.",
    epilog=get.epilog,
)


class NoCommandGiven(Exception):
    """A group given no command (``fetcher cluster``): main() prints the group's help, exit status 2."""

    def __init__(self, ctx: click.Context) -> None:
        super().__init__(ctx.command_path)
        self.ctx = ctx


# invoke_without_command, and the check here: click 8.2 and later raise for a group given no command,
# but click 8.1 (which pyproject allows) prints the help itself and exits 0.
@click.group(
    "cluster", invoke_without_command=True, subcommand_metavar="COMMAND [ARGS]...",
    short_help="See a cluster: its queue, slots and workers, and its whole run as one report.",
)  # fmt: skip
@click.pass_context
def cluster_group(ctx: click.Context) -> None:
    """Commands about a cluster of fetchers sharing a Redis server."""
    if ctx.invoked_subcommand is None:
        raise NoCommandGiven(ctx)


@cluster_group.command("status")
@_cluster_options
@click.option("--json", "as_json", is_flag=True, help="Print the status as one JSON object.")
def status(redis_url: str, cluster: str, as_json: bool) -> int:
    """Show the queue (waiting, in progress, done by status), the slots in use and the workers alive."""
    from ..cluster.status import read_status, status_text

    now = read_status(redis_url, cluster)
    click.echo(json.dumps(now.to_record()) if as_json else status_text(now), nl=as_json)
    return EXIT_OK


@cluster_group.command("export", short_help="Write every worker's final records as one report, for 'fetcher report'.")
@click.argument("path", metavar="FILE")
@_cluster_options
@click.option("--quiet", "-q", is_flag=True, help="Print nothing on success.")
def export(path: str, redis_url: str, cluster: str, quiet: bool) -> int:
    """Write the final records of every worker of cluster NAME as one report FILE (JSON Lines; - for stdout).

    The whole cluster is one run, cluster-NAME, which 'fetcher report FILE' summarises.  FILE is written
    under a temporary name beside it and renamed at the end: an export that fails leaves FILE as it was.
    Exit status 0; 2 when Redis cannot be used, the cluster has no final records, or FILE cannot be written.
    """
    from ..cluster.export import export_to, write_records

    if path == "-":
        done = write_records(redis_url, cluster, sys.stdout.buffer)
    else:
        done = export_to(redis_url, cluster, path)
    if not quiet:
        where = "standard output" if path == "-" else escape(path)
        left_out = f", {done.unreadable:,} unreadable left out" if done.unreadable else ""
        say(f"fetcher: exported {done.records:,} records of cluster {escape(cluster)} to {where} "
            f"(run {escape(done.run_id)}, {done.ended}{left_out})")  # fmt: skip
    return EXIT_OK


def _cluster_report(redis_url: str, cluster: str, **display: Any) -> int:
    """Summarise the whole run of cluster NAME, every worker's final records at once, as 'fetcher report' does.

    The same summary, --json and --html as 'fetcher report' on the file that 'fetcher cluster export' writes
    (exported to a temporary file, removed at the end).  Exit status 0; 2 when Redis cannot be used or the
    cluster has no final records.
    """
    import tempfile  # here, not at every start: with shutil, 2 ms

    from ..cluster.export import export_to

    with tempfile.TemporaryDirectory(prefix="fetcher-cluster-") as folder:
        path = Path(folder) / "cluster.jsonl"
        export_to(redis_url, cluster, path)
        return int(report.callback(path=str(path), run_id=None, last=False, **display))  # type: ignore[misc]


# report's display options (--html, --json); the report and its run are the cluster's.
cluster_group.add_command(click.Command(
    "report",
    callback=_cluster_report,
    params=[
        *(p for p in report.params if p.name not in {"path", "run_id", "last"}),
        *_cluster_options(click.Command("x")).params,
    ],
    help=_cluster_report.__doc__,
    short_help="Summarise the whole cluster's run, as 'fetcher report' does for one report.",
))  # fmt: skip
