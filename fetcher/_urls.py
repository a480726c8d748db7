"""One URL: whether it can be downloaded, and which host its per-host limits count against."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import requests

#: Longer URLs are refused: servers reject them anyway, and they bloat the report.
MAX_URL_LENGTH = 8192

_SPACE = re.compile(r"\s")


def check_url(url: str) -> str | None:
    """Return why *url* cannot be downloaded, or None if it can."""
    if len(url) > MAX_URL_LENGTH:
        return f"URL longer than {MAX_URL_LENGTH} characters"
    if "://" not in url:
        return "not a URL (expected http:// or https://)"
    if not url.isprintable() or _SPACE.search(url):
        return "URL contains spaces or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    scheme = parts.scheme.lower()
    if not scheme:
        return "not a URL (expected http:// or https://)"
    if scheme not in ("http", "https"):
        return f"unsupported scheme '{scheme}:' (only http and https)"
    if not parts.hostname:
        return "URL has no host"
    if parts.hostname.startswith(("*", ".")):
        return "URL has an invalid host"
    if not url.isascii():
        # requests' own checks of international host names (IDNA), with no
        # network.  An ASCII URL passes them whenever it passes the above.
        try:
            requests.PreparedRequest().prepare_url(url, None)
        except requests.exceptions.RequestException as exc:
            return f"not a valid URL ({exc.__class__.__name__})"
    return None


_DEFAULT_PORTS = {"http": 80, "https": 443}


def host_key(url: str) -> str:
    """The host a URL's per-host limits count against: host name and port, as ``example.org:443``.

    Case and a default port written out do not make another host; nor does
    the scheme (http and https on their default ports are two hosts, as they
    are two ports).  Only for URLs that ``check_url`` passed.
    """
    parts = urlsplit(url)
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower(), 0)
    return f"{parts.hostname or ''}:{port}"
