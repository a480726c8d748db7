"""The report: one record per URL and one per run, appended to a JSON Lines or CSV file, and read back.

The writer and the reader know the file formats and nothing of how a run is
carried out (threads, slots, the display); the command hands them values.
"""

from .writer import DEFAULT_REPORT_NAME, ReportWriter

__all__ = ["DEFAULT_REPORT_NAME", "ReportWriter"]
