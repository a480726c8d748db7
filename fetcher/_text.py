"""Making text from URLs and servers safe to show and to record.

Two rules hold everywhere fetcher shows or records a URL or a server's words:
credentials in a URL never leave the process, and a control character never
reaches a terminal raw (a hostile URL could otherwise move the cursor, retitle
the window or hide a line).
"""

from __future__ import annotations

import re


def redact(url: str) -> str:
    """Return *url* without its ``user:password@`` part.

    Works on junk too (a line that is not a URL at all), because invalid lines
    are recorded and printed as well.
    """
    if "@" not in url:
        return url  # no user or password anywhere (the common case: a run redacts each URL a few times)
    scheme, sep, rest = url.partition("//")
    if not sep:
        scheme, rest = "", url
    end = len(rest)
    for stop in "/?#":
        index = rest.find(stop)
        if index != -1:
            end = min(end, index)
    authority = rest[:end]
    if "@" not in authority:
        at = rest.find("@")
        port = authority.rpartition(":")[2] if ":" in authority else ""
        if at == -1 or not port or port.isdigit():
            return url
        # "user:pa/ss@host": a password with a raw "/" ends the authority
        # early; the line is invalid, but the password must still not show.
        end = at
        authority = rest[: at + 1]
    host = authority.rpartition("@")[2]
    if not sep:
        # Without "//" the part before "@" may or may not be userinfo; hide it
        # rather than guess, but keep a mark that something was there.
        host = "***@" + host
    return scheme + sep + host + rest[end:]


#: Messages of urllib and requests that quote a piece of a URL cut out of its context: after a
#: password with a raw "/", "?" or "#" (or a bad escape in it), that piece is part of the password.
#: The piece, and the rest of its line, is dropped.
_QUOTED_PIECES = (
    (re.compile(r"Port could not be cast to integer value as [^\n]*"), "port is not a number"),
    (re.compile(r"netloc [^\n]* contains invalid characters under NFKC normalization"),
     "host has characters that change under NFKC normalization"),
    (re.compile(r"Invalid percent-escape sequence: [^\n]*"), "invalid percent-escape sequence"),
)  # fmt: skip


def redact_message(text: str) -> str:
    """Return a library's message about a URL without the credentials it may hold, on one line.

    Every word that is or holds a URL is redacted, and the pieces of a URL that some
    messages quote without its ``@`` (so that ``redact`` cannot tell them for a password)
    are dropped.
    """
    for pattern, safe in _QUOTED_PIECES:
        text = pattern.sub(safe, text)
    return " ".join(redact(word) for word in text.split())


def escape(text: str) -> str:
    """Return *text* with every unprintable character written as an escape.

    ``str.isprintable`` is false for C0/C1 controls, the bidirectional
    overrides and other format characters, line and paragraph separators: all
    the things that can rewrite what a terminal shows.
    """
    if text.isprintable():
        return text
    out = []
    for char in text:
        if char.isprintable():
            out.append(char)
        else:
            code = ord(char)
            if code < 0x100:
                out.append(f"\\x{code:02x}")
            elif code < 0x10000:
                out.append(f"\\u{code:04x}")
            else:
                out.append(f"\\U{code:08x}")
    return "".join(out)


def shown(url: str) -> str:
    """A URL as fetcher prints it: redacted, then escaped."""
    return escape(redact(url))
