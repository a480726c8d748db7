"""``fetcher slots NAME``: a placeholder that reserves the command's name until it is written."""

from __future__ import annotations

import click

from .get import EXIT_USAGE


@click.command("slots", short_help="Show the shared download slots called NAME (not implemented yet).")
@click.argument("name", metavar="NAME")
def slots(name: str) -> int:
    """Show the shared download slots called NAME (not implemented yet)."""
    click.echo("fetcher slots: not implemented yet", err=True)
    return EXIT_USAGE
