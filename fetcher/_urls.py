"""One URL: whether it can be downloaded, which host its per-host limits count against,
and the normal form in which two URLs are compared.

Not the URL list (``_urllist``), and not what is sent: a URL is requested as
the user wrote it; ``normalize`` only says which URLs are one.
"""

from __future__ import annotations

import functools
import re
from urllib.parse import quote, urlsplit

from ._text import redact_message

#: Longer URLs are refused: servers reject them anyway, and they bloat the report.
MAX_URL_LENGTH = 8192

_SPACE = re.compile(r"\s")


#: An http(s) URL that passes every check below, as it nearly always is: ASCII, a host name
#: without user, brackets or a leading "*" or ".", and a port of at most five digits (checked
#: for its range).  Anything else goes through the checks one by one.
_PLAIN_URL = re.compile(r"(?i:https?)://[^/?#@\[\]:*.][^/?#@\[\]:]*(?::([0-9]{1,5}))?(?:[/?#]|\Z)")


def check_url(url: str) -> str | None:
    """Return why *url* cannot be downloaded, or None if it can."""
    if len(url) <= MAX_URL_LENGTH and url.isascii() and url.isprintable() and " " not in url:
        # An ASCII text is printable only without control characters, so " " was its last blank to look for.
        plain = _PLAIN_URL.match(url)
        if plain is not None and (plain.group(1) is None or int(plain.group(1)) <= 65535):
            return None
    return _check_url_fully(url)


def _check_url_fully(url: str) -> str | None:
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
        return f"not a valid URL ({redact_message(str(exc))})"
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
        import requests  # here: a run of ASCII URLs whose downloads all run in worker processes never needs it

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
    match = _PARTS.match(url)
    if match is None:
        return _host_key(url)
    # A list has few hosts: their keys are worked out once (urlsplit's properties each parse the netloc again).
    return _host_key(f"{match.group(1)}://{match.group(2)}")


@functools.lru_cache(maxsize=1024)
def _host_key(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower(), 0)
    return f"{parts.hostname or ''}:{port}"


#: RFC 3986 unreserved characters: a percent-escape of one of them means the character itself.
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
#: What stays as written besides the unreserved characters: the reserved ones, and "%" of an escape.
#: The set requests' requote_uri keeps, so that normal form and what is sent agree.
_KEEP = "!$&'()*+,/:;=?@[]~%"
_ESCAPE = re.compile("%([0-9A-Fa-f]{2})")
#: RFC 3986 appendix B: scheme, authority, path, query (the fragment is dropped).
_PARTS = re.compile(r"([^:/?#]+)://([^/?#]*)([^?#]*)(?:\?([^#]*))?")
#: A path or query made only of what needs no quoting and no escape (the common case).
_PLAIN = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,/:;=@?]*")
_LONE_PERCENT = re.compile("%(?![0-9A-Fa-f]{2})")


def normalize(url: str) -> str:
    """*url* in the form in which two URLs are compared: equal forms are the same resource.

    RFC 3986 section 6.2.2 (syntax-based) and 6.2.3 (scheme-based): scheme and
    host in lower case, an international host name in punycode (IDNA 2008, as
    requests sends it), no default port, no empty port, percent-escapes of
    unreserved characters decoded and the others in upper case, characters
    that cannot stand in a URL (non-ASCII as UTF-8) percent-encoded, no ``.``
    or ``..`` segments, an empty path as ``/``, no empty query, and no fragment
    (a server never sees it).  A user name and password stay (escapes normalised only): the
    caller removes them where they must not show.

    Only for URLs that ``check_url`` passed.  Idempotent.
    """
    match = _PARTS.match(url)
    if match is None:  # not for check_url's URLs, which all match
        return url
    scheme, authority, path, query = match.groups()
    scheme = scheme.lower()
    userinfo, at, hostport = authority.rpartition("@")
    if hostport.startswith("["):
        host, _, port = hostport[1:].partition("]")
        netloc = f"[{host.lower()}]"
        port = port[1:]
    else:
        host, _, port = hostport.partition(":")
        netloc = _host(host.lower())
    if port and int(port) != _DEFAULT_PORTS.get(scheme):
        netloc += f":{int(port)}"
    if at:
        netloc = f"{_escapes(userinfo)}@{netloc}"
    path = _dot_segments(_escapes(path)) or "/"
    query = f"?{_escapes(query)}" if query else ""  # requests sends no empty "?"
    return f"{scheme}://{netloc}{path}{query}"


def _host(host: str) -> str:
    """The (lower-case) host name as requests sends it: an international name in IDNA 2008 punycode."""
    return host if host.isascii() else _punycode(host)


@functools.lru_cache(maxsize=256)  # the idna package takes ~60 µs a name, and a list has few hosts
def _punycode(host: str) -> str:
    import idna  # here: most lists have no international host name

    try:
        # urllib3's way, label by label: what requests sends.
        return b".".join(idna.encode(label, strict=True, std3_rules=True) for label in host.split(".")).decode()
    except idna.IDNAError:
        # check_url refuses such hosts; stay total for others (UTS 46 maps what it can).
        try:
            return idna.encode(host, uts46=True).decode()
        except idna.IDNAError:
            return host


def _escapes(text: str) -> str:
    """Percent-escapes in one form: unreserved ones decoded, the rest upper case, raw characters escaped."""
    if "%" in text:
        # A "%" that starts no escape is a literal one.  (requests and urllib3 each
        # treat that malformed case their own way; this form is the plain reading.)
        text = _ESCAPE.sub(_one_escape, _LONE_PERCENT.sub("%25", text))
    if _PLAIN.fullmatch(text):
        return text
    return quote(text, safe=_KEEP)


def _one_escape(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if char in _UNRESERVED else match.group(0).upper()


def _dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4: the path without ``.`` and ``..`` segments (as urllib3 sends it)."""
    if "." not in path:
        return path
    segments = path.split("/")
    if "." not in segments and ".." not in segments:
        return path
    out: list[str] = []
    for segment in segments:
        if segment == "..":
            if len(out) > 1:
                out.pop()
        elif segment != ".":
            out.append(segment)
    if segments[-1] in (".", ".."):
        out.append("")  # "/a/b/.." names the folder "/a/"
    return "/".join(out)
