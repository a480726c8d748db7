"""A response's header block read without the email package: what http.client's own parse makes of it."""

from __future__ import annotations

import http.client
import io
import threading
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from hypothesis import strategies as st

from fetcher._config import FetcherConfig
from fetcher.transfer.headers import HTTPResponse, parse_headers
from fetcher.transfer.session import new_session
from tests import server as srv

NGINX = (
    b"Server: nginx/1.22.1\r\nDate: Sat, 05 Dec 2026 17:00:00 GMT\r\nContent-Type: application/octet-stream\r\n"
    b"Content-Length: 2048\r\nLast-Modified: Sat, 05 Dec 2026 10:00:00 GMT\r\nConnection: keep-alive\r\n"
    b'ETag: "6b144339-800"\r\nAccept-Ranges: bytes\r\n\r\n'
)

# Header lines, plain and awkward: folded, a space before the colon, stray CR or LF, no colon, an empty name,
# Latin-1 bytes, control characters, a "From " line, bodies the email parser looks into.
_NAMES = st.sampled_from([b"Content-Type", b"content-length", b"ETag", b"X-A", b"Set-Cookie", b"From", b"", b"A B",
                          b"\xe9t\xe9", b"X\x7f"])  # fmt: skip
_VALUES = st.one_of(
    st.binary(max_size=12),
    st.sampled_from(
        [
            b" text/html",
            b"multipart/mixed; boundary=x",
            b" message/rfc822",
            b"\t v \t",
            b" a\rb",
            b" \x85 \x0b \x0c \x1c",
            b"  ",
        ]
    ),  # fmt: skip
)
# Values as servers send them: any Latin-1 character but CR and LF.
_PLAIN_VALUES = st.text(st.characters(max_codepoint=255, blacklist_characters="\r\n"), max_size=16).map(
    lambda text: text.encode("iso-8859-1")
)
_PLAIN_NAMES = st.sampled_from(
    [b"Content-Type", b"content-length", b"ETag", b"Set-Cookie", b"From", b"x!#$%&'*+.^_`|~"]
)
_PLAIN_LINES = st.builds(lambda name, value: name + b":" + value + b"\r\n", _PLAIN_NAMES, _PLAIN_VALUES)
_LINES = st.one_of(
    _PLAIN_LINES,
    _PLAIN_LINES,
    _PLAIN_LINES,
    _PLAIN_LINES,
    st.builds(lambda name, value, end: name + b":" + value + end, _NAMES, _VALUES, st.sampled_from([b"\r\n", b"\n"])),
    st.sampled_from([b" folded\r\n", b"\tfolded\r\n", b"no colon\r\n", b"From someone\r\n", b"Name : v\r\n"]),
)
_BLOCKS = st.builds(
    lambda lines, end: b"".join(lines) + end, st.lists(_LINES, max_size=8), st.sampled_from([b"\r\n", b"\n", b""])
)


# Blocks as servers send them, with the odd value or body type that the email parser still has a say on.
_PLAIN_BLOCKS = st.builds(
    lambda lines: b"".join(lines) + b"\r\n",
    st.lists(
        st.one_of(_PLAIN_LINES, st.builds(lambda value: b"Content-Type:" + value + b"\r\n", _VALUES)), max_size=10
    ),
)


def seen(message: Any) -> dict[str, Any]:
    """Everything the message holds, its defects by kind."""
    state = dict(vars(message))
    state["defects"] = [type(defect).__name__ for defect in message.defects]
    if isinstance(state["_payload"], list):  # a message/* or multipart body: the parts, read the same way
        state["_payload"] = [seen(part) for part in state["_payload"]]
    return state


@hypothesis.settings(max_examples=1500, deadline=None, database=None)
@hypothesis.given(st.one_of(_BLOCKS, _PLAIN_BLOCKS))
def test_a_header_block_is_read_as_http_clients_own_parse_reads_it(block: bytes) -> None:
    theirs = http.client.parse_headers(io.BytesIO(block))
    ours = parse_headers(io.BytesIO(block))
    assert type(ours) is type(theirs)
    assert seen(ours) == seen(theirs)


def test_a_servers_plain_block_is_read_without_the_email_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    import email.parser

    monkeypatch.delattr(email.parser, "Parser")  # used, it would fail
    message = parse_headers(io.BytesIO(NGINX))
    assert message["content-length"] == "2048" and message.get_all("ETag") == ['"6b144339-800"']


def test_the_limits_of_http_clients_read_still_hold() -> None:
    with pytest.raises(http.client.HTTPException):
        parse_headers(io.BytesIO(b"".join(b"X-%d: v\r\n" % n for n in range(101)) + b"\r\n"))


def test_a_response_reads_its_status_and_headers_as_http_clients_does() -> None:
    wire = b"HTTP/1.1 200 OK\r\n" + NGINX + b"x" * 2048

    class Socket:
        def makefile(self, mode: str) -> io.BufferedReader:
            return io.BufferedReader(io.BytesIO(wire))

    ours, theirs = HTTPResponse(Socket()), http.client.HTTPResponse(Socket())  # type: ignore[arg-type]
    ours.begin()
    theirs.begin()
    assert (ours.status, ours.reason, ours.length, ours.chunked, ours.will_close) == (
        theirs.status, theirs.reason, theirs.length, theirs.chunked, theirs.will_close)  # fmt: skip
    assert seen(ours.msg) == seen(theirs.msg)
    assert ours.read() == theirs.read() == b"x" * 2048


def test_this_pythons_http_client_lets_the_response_use_it() -> None:
    # Where it does not, HTTPResponse is http.client's own (still right, just slower): say so here.
    assert HTTPResponse.begin is not http.client.HTTPResponse.begin


def test_the_sessions_fetcher_makes_read_headers_without_the_email_parser(
    server: srv.LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import email.parser

    url = server.route("/f", srv.body(b"x" * 100, headers={"ETag": '"v1"'}))
    users: list[threading.Thread] = []  # the server's threads parse requests with it; the client must not

    class Parser(email.parser.Parser):
        def parsestr(self, text: str, headersonly: bool = False) -> Any:
            users.append(threading.current_thread())
            return super().parsestr(text, headersonly)

    monkeypatch.setattr(email.parser, "Parser", Parser)
    with new_session(FetcherConfig(dest=tmp_path)) as session:
        response = session.get(url, timeout=5)
    assert response.content == b"x" * 100 and response.headers["ETag"] == '"v1"'
    assert users and threading.current_thread() not in users
