"""The state database: what fetcher last saved for each URL, and which partial downloads it may resume.

One SQLite file, by default ``DEST/.fetcher-state.db`` (hidden, so no download
can get its name), shared by every run that uses that DEST, overlapping cron
runs included.  The next run reads it to send a conditional GET, or to resume a
kept ``.part`` file with Range + If-Range.

It stores records and returns them; it does not decide what to send, look at
the files in DEST, or hold bodies.  Every failure is a ``StateError``.
"""

from .store import DEFAULT_STATE_NAME, Partial, Saved, StateStore

__all__ = ["DEFAULT_STATE_NAME", "Partial", "Saved", "StateStore"]
