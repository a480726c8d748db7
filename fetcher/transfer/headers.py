"""A response's header block read without the email package, when it is the plain kind servers send.

``http.client`` parses every response's headers with ``email.parser``, a
general RFC 5322 message parser: on a small file it costs a worker about 60
µs of CPU a response, a tenth of the whole download (bench/README.md).  The
blocks real servers send are far simpler than what that parser handles:
one ``Name: value`` a line, nothing folded, no multipart body to look for.

``parse_headers`` reads such a block into the same ``HTTPMessage`` the email
parser makes (the same headers, in order, with the same values, no defects,
an empty payload; tests/transfer/test_headers.py holds it to
``http.client.parse_headers`` over generated blocks), and hands any other
block to ``http.client.parse_headers`` itself.  ``HTTPResponse`` is
``http.client``'s own response with only that one call changed: its
``begin`` is the standard library's own code, given this ``parse_headers``
in place of the module's (no copy of it here to fall out of step).  Only the
connections of the sessions fetcher makes use it (hangup.py).
"""

from __future__ import annotations

import http.client
import re
import types
from typing import IO, Any

#: A line the email parser takes as one whole header: a name of printable characters other than the colon,
#: a colon, and a value with no CR or LF in it, ended by CRLF (or LF).  Anything else (a folded line, a
#: space before the colon, a stray CR) goes to the email parser.
_PLAIN_LINE = re.compile(rb"[\x21-\x39\x3b-\x7e]+:[^\r\n]*\r?\n")

#: Content types whose (absent) body the email parser looks into, leaving defects that urllib3 reads.
_PARSED_BODIES = re.compile(r"\s*(multipart|message)/", re.IGNORECASE)


def parse_headers(fp: IO[bytes], _class: type[http.client.HTTPMessage] = http.client.HTTPMessage) -> Any:
    """``http.client.parse_headers``, faster for a plain block (see the module's docstring)."""
    lines = http.client._read_headers(fp)  # type: ignore[attr-defined]  # its limits: line length, count
    fields = lines[:-1] if lines and lines[-1] in (b"\r\n", b"\n", b"") else lines  # the block's end
    if not all(_PLAIN_LINE.fullmatch(line) for line in fields):
        return _parsed_by_email(lines, _class)
    message = _class()
    for line in fields:
        name, _, value = line.decode("iso-8859-1").partition(":")
        if name.lower() == "content-type" and _PARSED_BODIES.match(value):
            return _parsed_by_email(lines, _class)
        message[name] = value.lstrip(" \t").rstrip("\r\n")
    message.set_payload("")
    return message


def _parsed_by_email(lines: list[bytes], _class: type[http.client.HTTPMessage]) -> Any:
    """What ``http.client.parse_headers`` makes of *lines* (already read from the response)."""
    import email.parser

    return email.parser.Parser(_class=_class).parsestr(b"".join(lines).decode("iso-8859-1"))


def _begin_with_our_parse() -> types.FunctionType:
    """``http.client.HTTPResponse.begin``, the same code, finding this module's ``parse_headers``."""
    begin = http.client.HTTPResponse.begin
    found = {**vars(http.client), "parse_headers": parse_headers}
    return types.FunctionType(begin.__code__, found, begin.__name__, begin.__defaults__, begin.__closure__)


class HTTPResponse(http.client.HTTPResponse):
    """``http.client.HTTPResponse`` with the header block read by ``parse_headers`` above.

    On a Python whose http.client lacks what this relies on (``_read_headers``, a ``begin`` that calls
    the module's ``parse_headers``), it is http.client's own response, unchanged.
    """

    if hasattr(http.client, "_read_headers") and "parse_headers" in http.client.HTTPResponse.begin.__code__.co_names:
        begin = _begin_with_our_parse()
