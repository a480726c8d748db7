"""The PreparedRequest of a plain GET, without re-deriving what is the same for every URL.

``PreparedRequest.prepare`` costs a small download about a sixth of its CPU:
it parses every URL apart and puts it together again (urllib3's
``parse_url``, then ``requote_uri``), and checks every header of the session
against requests' validity patterns, on every request.  Most URLs in a list
are already in the form requests would give them, and the session's headers
do not change within a run, so:

- a URL that ``NORMAL_URL`` admits is used as it is: for these URLs
  ``prepare_url`` is the identity (tests/transfer/test_prepare.py checks that
  with requests itself, over generated URLs); any other URL goes through
  ``prepare_url``;
- the session's headers are checked once and copied for each request, and
  checked again only when they change; the request's own headers (a
  validator, a range) are checked each time.

The result is the PreparedRequest requests would make: the same URL, headers
in the same order and case, an empty cookie jar and no body.  Cookies and
auth stay with the caller (FetcherSession), as in ``Session.prepare_request``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import requests
from requests.structures import CaseInsensitiveDict
from requests.utils import check_header_validity

# Characters urllib3 leaves as they are in a path or query and requote_uri keeps (no "%":
# requote_uri would decode an escaped unreserved character).
_PATH_CHARS = r"[-A-Za-z0-9._~!$&'()*+,;=:@]"

#: A URL in the form requests gives it: a lowercase http(s) scheme and host, a port without a
#: leading zero, a path of at least "/" without "." or ".." segments (urllib3 removes them),
#: a non-empty query or none, and no user, fragment, escape or character that needs quoting.
NORMAL_URL = re.compile(
    r"https?://[a-z0-9](?:[-a-z0-9.]*[a-z0-9])?(?::(?P<port>[1-9][0-9]{0,4}))?"
    rf"(?:/(?!\.\.?(?:[/?]|$)){_PATH_CHARS}*)+"
    rf"(?:\?(?:{_PATH_CHARS}|[/?])+)?"
)

_HIGHEST_PORT = 65535  # urllib3 refuses a higher one; such a URL takes requests' path and its error


def is_normal(url: str) -> bool:
    """Whether requests' ``prepare_url`` would give *url* back unchanged (see NORMAL_URL)."""
    match = NORMAL_URL.fullmatch(url)
    if match is None:
        return False
    port = match["port"]
    return port is None or int(port) <= _HIGHEST_PORT


class PlainPreparer:
    """Makes the PreparedRequest of a GET or HEAD without body, params, auth or hooks.

    Not thread-safe: one per session, and a session belongs to one thread.
    """

    def __init__(self) -> None:
        self._headers_of: tuple[tuple[str, str | bytes], ...] | None = None
        self._headers: CaseInsensitiveDict[str | bytes] = CaseInsensitiveDict()

    def prepare(
        self,
        method: str,
        url: str,
        session_headers: Mapping[str, str | bytes],
        headers: Mapping[str, str | bytes | None] | None,
    ) -> requests.PreparedRequest:
        """The request of *url* with *session_headers* (none of them None), then *headers* (None removes one)."""
        prepared = requests.PreparedRequest()
        prepared.method = method.upper()
        if is_normal(url):
            prepared.url = url
        else:
            prepared.prepare_url(url, None)
        prepared.headers = self._checked(session_headers).copy()
        for name, value in (headers or {}).items():
            if value is None:
                prepared.headers.pop(name, None)
            else:
                check_header_validity((name, value))
                prepared.headers[name] = value
        return prepared

    def _checked(self, session_headers: Mapping[str, str | bytes]) -> CaseInsensitiveDict[str | bytes]:
        """*session_headers*, checked as prepare_headers checks them, once for as long as they stay the same."""
        snapshot = tuple(session_headers.items())
        if snapshot != self._headers_of:
            checked: CaseInsensitiveDict[str | bytes] = CaseInsensitiveDict()
            for header in snapshot:
                check_header_validity(header)
                checked[header[0]] = header[1]
            self._headers, self._headers_of = checked, snapshot
        return self._headers
