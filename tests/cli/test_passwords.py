"""No user name or password from a URL reaches anything fetcher writes, logs or prints.

The real command runs in this process (so that the ``fetcher`` logger can be
captured at DEBUG) against loopback servers, with every output it has: a
state database, shared slot files, a JSON Lines and a CSV report, and
``fetcher report`` in each of its formats.  Then every file it wrote, what it
printed and what it logged are searched for each credential.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from fetcher.cli.main import main
from tests import server as srv


def fetcher(*args: str | Path) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    return int(exit_info.value.code or 0)


def with_userinfo(url: str, userinfo: str) -> str:
    return url.replace("http://", f"http://{userinfo}@", 1)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then let go): connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def debug_log(tmp_path: Path) -> Iterator[Path]:
    """Everything the ``fetcher`` logger says, down to DEBUG, goes to this file."""
    path = tmp_path / "out" / "fetcher.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("fetcher")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield path
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()


#: The credentials in the URLs below.  Each is searched for as written, percent-encoded and decoded;
#: none is made only of hex digits, so no run id or hash can hold one by chance.
USERS = ["bobby-u", "dave-u", "carol-u", "erin-u", "frank-u", "gina-u", "hank-u", "ivy-u"]
PASSWORDS = ["hunter2", "l1st@pw", "s3cret", "refus3d", "sl4sh3d", "junkpw", "r3dir", "cutpw"]


def forms(secret: str) -> set[str]:
    return {secret, quote(secret, safe=""), secret.split("@")[0]}


def test_no_credential_reaches_a_file_the_log_or_the_terminal(
    server: srv.LoopbackServer,
    server_b: srv.LoopbackServer,
    tmp_path: Path,
    debug_log: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    out = debug_log.parent  # every file the commands write is in here
    dest, reports, slots = out / "dest", out / "reports", out / "slots" / "nightly"
    other = server_b.route("/t.bin", srv.body(b"moved"))
    lines = [
        with_userinfo(server.route("/q.bin", srv.body(b"q")), "dave-u:l1st%40pw"),
        # Redirected to another host, with credentials of its own in the Location.
        with_userinfo(server.route("/r", srv.redirect(with_userinfo(other, "carol-u:s3cret"))), "ivy-u:s3cret"),
        # requests' own error text (connection refused) for a URL with credentials.
        f"http://erin-u:refus3d@127.0.0.1:{closed_port()}/x.bin",
        # A password with a raw "/": an invalid line whose reason comes from urllib.
        with_userinfo(server.url("/f.bin"), "frank-u:sl4sh3d/pw"),
        "gina-u:junkpw@junk.example/j.bin",
        # A redirect to a URL requests cannot parse, for the same reason.
        with_userinfo(server.route("/bad", srv.redirect(with_userinfo(other, "hank-u:r3dir/pw"))), "hank-u:r3dir"),
        # Cut short every time, past the size worth keeping: a partial file kept, and on record in the state
        # database.
        with_userinfo(
            server.route("/cut.bin", srv.Resource(b"c" * (3 << 20), cut_after=(1 << 20) + 100, cuts=99)), "hank-u:cutpw"
        ),
    ]
    listing = tmp_path / "input" / "urls.txt"
    listing.parent.mkdir()
    listing.write_text("\n".join(lines) + "\n")
    common: list[str | Path] = [
        "-d", dest, "--max", "2", "--shared-slots", slots, "--retries", "1", "--retry-wait-max", "0"
    ]  # fmt: skip

    argument = with_userinfo(server.route("/p.bin", srv.body(b"p")), "bobby-u:hunter2")
    assert fetcher(argument, "--report", reports / "report.jsonl", *common) == 0
    assert fetcher(listing, "--report", reports / "report.csv", *common) == 1
    for report in (reports / "report.jsonl", reports / "report.csv"):
        assert fetcher("report", report) == 0
        assert fetcher("report", report, "--json") == 0
        assert fetcher("report", report, "--html", out / f"{report.name}.html") == 0
    printed = capfd.readouterr()

    texts = {"stdout": printed.out, "stderr": printed.err}
    texts.update({str(path): path.read_bytes().decode(errors="replace") for path in out.rglob("*") if path.is_file()})
    assert str(reports / "report.csv.runs.jsonl") in texts and any(".part" in name for name in texts)
    assert "connection refused" in printed.err and "invalid URL after redirect" in printed.err
    leaks = [(form, where) for secret in USERS + PASSWORDS for form in forms(secret)
             for where, text in texts.items() if form in text]  # fmt: skip
    assert leaks == [], "\n".join(map(str, leaks))


def test_a_url_argument_is_recorded_in_the_run_record_without_its_credentials(
    server: srv.LoopbackServer, tmp_path: Path
) -> None:
    url = server.route("/p.bin", srv.body(b"p"))
    assert fetcher(with_userinfo(url, "bobby-u:hunter2"), "-q", "-d", tmp_path / "dest") == 0
    lines = (tmp_path / "dest" / "fetcher-report.jsonl").read_text().splitlines()
    [run] = [record for record in map(json.loads, lines) if record.get("record") == "run"]
    assert run["options"]["list"] == url


def test_a_refused_connection_fails_without_its_credentials_in_the_error_or_the_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{closed_port()}/x.bin"
    dest = tmp_path / "dest"
    assert fetcher(with_userinfo(url, "erin-u:refus3d"), "--retries", "0", "-d", dest) == 1
    [record] = [json.loads(line) for line in (dest / "fetcher-report.jsonl").read_text().splitlines()[:1]]
    assert (record["url"], record["error"]) == (url, "connection refused")
    err = capfd.readouterr().err
    assert url in err and "refus3d" not in err and "erin-u" not in err
