"""The state database: what fetcher last saved for each URL, which partial downloads it may resume, and the file
name each URL was given.

One SQLite file, by default ``DEST/.fetcher-state.db`` (hidden, so no download
can get its name), shared by every run that uses that DEST, overlapping cron
runs included.  The next run reads it to send a conditional GET, or to resume a
kept ``.part`` file with Range + If-Range.

It stores records and returns them; it does not decide what to send, look at
the files in DEST, or hold bodies.  Every failure is a ``StateError``.
"""

from .store import DEFAULT_STATE_NAME, Names, Partial, Saved, StateStore

__all__ = ["DEFAULT_STATE_NAME", "Names", "Partial", "Saved", "StateStore"]
