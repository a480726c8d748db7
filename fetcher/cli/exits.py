"""The exit statuses of every fetcher command, and SIGTERM as an exception."""

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TIMEOUTS_ONLY, EXIT_CUT_SHORT = 0, 1, 2, 3, 4
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so the same cleanup as Ctrl-C runs."""
