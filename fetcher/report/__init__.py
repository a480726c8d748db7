"""The report: one record per URL and one per run, appended to a JSON Lines or CSV file, and read back.

The writer and the reader know the file formats and nothing of how a run is
carried out (threads, slots, the display); the command hands them values.
"""

from .reader import Report, is_run, read_report
from .runs import ENDED, RUN_FIELDS, RunRecord
from .writer import DEFAULT_REPORT_NAME, RUNS_SUFFIX, ReportWriter, report_format, runs_path

__all__ = [
    "DEFAULT_REPORT_NAME",
    "ENDED",
    "RUNS_SUFFIX",
    "RUN_FIELDS",
    "Report",
    "ReportWriter",
    "RunRecord",
    "is_run",
    "read_report",
    "report_format",
    "runs_path",
]
