"""One URL, start to finish: the request, the body, the temporary file, the final name.

Internal to fetcher (the public API is what ``fetcher`` exports).  Nothing here
opens the state database or asks a limit: the run passes in what a download
needs as values and records what comes back.
"""
