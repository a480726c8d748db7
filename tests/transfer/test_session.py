"""FetcherSession: what requests would send, with the environment read once (requests itself is the oracle)."""

from __future__ import annotations

import base64
import pickle
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import responses

from fetcher._config import FetcherConfig
from fetcher.transfer import session as session_module
from fetcher.transfer.download import download
from fetcher.transfer.session import MOST_HOSTS_KEPT, FetcherSession, hosts_kept, new_session
from fetcher.transfer.tempfiles import TempFiles
from tests import server as srv

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No proxy, CA bundle or netrc from the machine running the tests."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


@pytest.fixture
def proxy() -> Iterator[srv.LoopbackServer]:
    """A loopback server that answers proxy requests (GET http://host/path) routed by their whole URL."""
    loopback = srv.LoopbackServer(host="127.0.0.3").start()
    yield loopback
    loopback.stop()


def theirs(config: FetcherConfig) -> requests.Session:
    """A plain requests Session with the settings new_session gives."""
    session = requests.Session()
    session.max_redirects = config.max_redirects
    session.headers["User-Agent"] = config.user_agent
    return session


def sent_by(session: requests.Session, url: str, **kwargs: object) -> requests.PreparedRequest:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(url.split("#")[0], body=b"x")
        session.get(url, **kwargs)  # type: ignore[arg-type]
        request = mock.calls[-1].request
    assert isinstance(request, requests.PreparedRequest)
    return request


def fetch(url: str, tmp_path: Path) -> bytes:
    config = FetcherConfig(dest=tmp_path, timeout=5.0)
    with new_session(config) as session:
        outcome = download(
            session, url, tmp_path / "f", config=config, temp_files=TempFiles(), cancelled=threading.Event()
        )
    assert outcome.error is None, outcome.error
    return (tmp_path / "f").read_bytes()


def basic(login: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()


# -- what is sent: as requests sends it (HTTP level) ------------------------------


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("https://Files.Example/a b/r\u00e9sum\u00e9.pdf?q=1&r=%41#part", None),
        ("http://files.example", {"If-None-Match": '"abc"', "If-Modified-Since": "Sun, 06 Nov 1994 08:49:37 GMT"}),
        ("http://user:p%40ss@files.example/f", {"Range": "bytes=10-", "Accept-Encoding": "identity"}),
        ("http://files.example/f", {"accept-encoding": None}),
    ],
)
def test_a_plain_get_is_sent_as_requests_sends_it(
    tmp_path: Path, url: str, headers: dict[str, str | None] | None
) -> None:
    config = FetcherConfig(dest=tmp_path)
    ours = sent_by(new_session(config), url, stream=True, timeout=5.0, headers=headers)
    expected = sent_by(theirs(config), url, stream=True, timeout=5.0, headers=headers)
    assert (ours.method, ours.url, ours.body) == (expected.method, expected.url, expected.body)
    assert list(ours.headers.items()) == list(expected.headers.items())


def test_the_session_cookies_are_sent_as_requests_sends_them(tmp_path: Path) -> None:
    config = FetcherConfig(dest=tmp_path)
    ours, plain = new_session(config), theirs(config)
    for session in (ours, plain):
        session.cookies.set("k", "v", domain="files.example", path="/")
        session.cookies.set("other", "w", domain="elsewhere.example", path="/")
    sent = sent_by(ours, "http://files.example/f").headers.get("Cookie")
    assert sent == sent_by(plain, "http://files.example/f").headers.get("Cookie") == "k=v"


@pytest.mark.parametrize(
    "environment",
    [
        {},
        {"HTTP_PROXY": "http://proxy.example:3128", "HTTPS_PROXY": "http://proxy.example:3129"},
        {"HTTP_PROXY": "http://proxy.example:3128", "NO_PROXY": "files.example"},
        {"ALL_PROXY": "http://proxy.example:3128", "NO_PROXY": "127.0.0.0/8"},
        {"REQUESTS_CA_BUNDLE": "/somewhere/ca.pem"},
        {"CURL_CA_BUNDLE": "/somewhere/curl.pem"},
    ],
    ids=["none", "proxies", "no-proxy", "all-proxy", "requests-ca", "curl-ca"],
)
@pytest.mark.parametrize("url", ["http://files.example/f", "https://127.0.0.1:8443/f"])
def test_the_environment_settings_are_the_ones_requests_derives(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], url: str
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    ours, plain = FetcherSession(), requests.Session()
    for proxies in ({}, {"no_proxy": "files.example"}):
        ours_settings = ours.merge_environment_settings(url, dict(proxies), None, None, None)
        assert ours_settings == plain.merge_environment_settings(url, dict(proxies), None, None, None)
    prepared = requests.Request("GET", url).prepare()
    assert ours.proxies_for(url, None) == requests.utils.resolve_proxies(prepared, None, True)


def test_other_requests_go_through_requests_own_code(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/f", srv.body(b"x"))
    with new_session(FetcherConfig(dest=tmp_path)) as session:
        assert session.get(url, params={"a": "1"}).url == url + "?a=1"


# -- the environment, on real connections -------------------------------------------


def test_a_proxy_from_the_environment_carries_the_request(
    monkeypatch: pytest.MonkeyPatch, proxy: srv.LoopbackServer, tmp_path: Path
) -> None:
    url = "http://127.0.0.2:9/f"  # nobody listens there: only the proxy can answer
    proxy.route(url, srv.body(b"through the proxy"))
    monkeypatch.setenv("HTTP_PROXY", proxy.base)
    assert fetch(url, tmp_path) == b"through the proxy"


def test_a_host_in_no_proxy_is_fetched_directly(
    monkeypatch: pytest.MonkeyPatch, proxy: srv.LoopbackServer, server_b: srv.LoopbackServer, tmp_path: Path
) -> None:
    url = server_b.route("/f", srv.body(b"direct"))
    proxy.route(url, srv.body(b"through the proxy"))
    monkeypatch.setenv("HTTP_PROXY", proxy.base)
    monkeypatch.setenv("NO_PROXY", "127.0.0.2")
    assert fetch(url, tmp_path) == b"direct"


def test_the_environment_is_read_when_the_session_is_made(
    monkeypatch: pytest.MonkeyPatch, proxy: srv.LoopbackServer, server: srv.LoopbackServer, tmp_path: Path
) -> None:
    url = server.route("/f", srv.body(b"direct"))
    proxy.route(url, srv.body(b"through the proxy"))
    with new_session(FetcherConfig(dest=tmp_path)) as session:
        monkeypatch.setenv("HTTP_PROXY", proxy.base)
        assert session.get(url, timeout=5.0).content == b"direct"


def test_a_netrc_login_is_sent_to_its_host_only(
    monkeypatch: pytest.MonkeyPatch, server: srv.LoopbackServer, server_b: srv.LoopbackServer, tmp_path: Path
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login alice password s3cret\n")
    monkeypatch.setenv("NETRC", str(netrc))
    fetch(server.route("/f", srv.body(b"x")), tmp_path)
    fetch(server_b.route("/f", srv.body(b"x")), tmp_path)
    assert server.headers_seen["/f"][-1].get("Authorization") == basic("alice", "s3cret")
    assert "Authorization" not in server_b.headers_seen["/f"][-1]


# -- redirects: requests' own rules --------------------------------------------------


def test_a_cookie_set_by_a_redirect_goes_to_its_target(server: srv.LoopbackServer, tmp_path: Path) -> None:
    server.route("/new", srv.body(b"moved here"))
    url = server.route("/old", srv.status(302, {"Location": "/new", "Set-Cookie": "seen=1; Path=/"}))
    assert fetch(url, tmp_path) == b"moved here"
    assert server.headers_seen["/new"][-1].get("Cookie") == "seen=1"


def test_a_cookie_set_by_a_plain_answer_is_sent_with_the_next_request(
    server: srv.LoopbackServer, tmp_path: Path
) -> None:
    first = server.route("/first", srv.body(b"x", headers={"Set-Cookie": "seen=1; Path=/"}))
    second = server.route("/second", srv.body(b"y"))
    with new_session(FetcherConfig(dest=tmp_path)) as session:
        assert session.get(first, stream=True).cookies.get("seen") == "1"
        session.get(second, stream=True).close()
    assert server.headers_seen["/second"][-1].get("Cookie") == "seen=1"


def test_a_redirect_not_followed_names_its_next_request_as_requests_does(
    server: srv.LoopbackServer, tmp_path: Path
) -> None:
    url = server.route("/old", srv.redirect("/new"))
    with new_session(FetcherConfig(dest=tmp_path)) as session:
        ours = session.get(url, allow_redirects=False)
    with theirs(FetcherConfig(dest=tmp_path)) as plain:
        expected = plain.get(url, allow_redirects=False)
    assert ours.next is not None and expected.next is not None
    assert (ours.status_code, ours.next.url, ours.history) == (302, expected.next.url, [])


def test_a_pool_the_pool_manager_closed_is_not_used_again(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/f", srv.body(b"x"))
    with new_session(FetcherConfig(dest=tmp_path)) as session:
        assert session.get(url).content == b"x"
        adapter = session.get_adapter(url)
        assert isinstance(adapter, requests.adapters.HTTPAdapter)
        manager = adapter.poolmanager
        for key in list(manager.pools.keys()):  # what the manager does to a pool past pool_connections
            manager.pools[key].close()
        manager.clear()
        assert session.get(url).content == b"x"


def test_a_login_in_the_url_is_not_sent_on_to_another_host(
    server: srv.LoopbackServer, server_b: srv.LoopbackServer, tmp_path: Path
) -> None:
    target = server_b.route("/new", srv.body(b"moved here"))
    url = server.route("/old", srv.redirect(target)).replace("http://", "http://alice:s3cret@")
    assert fetch(url, tmp_path) == b"moved here"
    assert server.headers_seen["/old"][-1].get("Authorization") == basic("alice", "s3cret")
    assert "Authorization" not in server_b.headers_seen["/new"][-1]


def test_a_redirect_to_another_host_gets_that_hosts_netrc_login(
    monkeypatch: pytest.MonkeyPatch, server: srv.LoopbackServer, server_b: srv.LoopbackServer, tmp_path: Path
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.2 login bob password hunter2\n")
    monkeypatch.setenv("NETRC", str(netrc))
    target = server_b.route("/new", srv.body(b"moved here"))
    assert fetch(server.route("/old", srv.redirect(target)), tmp_path) == b"moved here"
    assert "Authorization" not in server.headers_seen["/old"][-1]
    assert server_b.headers_seen["/new"][-1].get("Authorization") == basic("bob", "hunter2")


def test_a_redirect_through_a_proxy_is_counted_against_the_limit(
    monkeypatch: pytest.MonkeyPatch, proxy: srv.LoopbackServer, tmp_path: Path
) -> None:
    url = "http://127.0.0.2:9/loop"
    proxy.route(url, srv.redirect(url))
    monkeypatch.setenv("HTTP_PROXY", proxy.base)
    config = FetcherConfig(dest=tmp_path, timeout=5.0, max_redirects=3)
    with new_session(config) as session, pytest.raises(requests.TooManyRedirects):
        session.get(url, timeout=5.0)
    assert proxy.requests[url] == 4


def test_an_unpickled_session_still_sends(server: srv.LoopbackServer, tmp_path: Path) -> None:
    url = server.route("/f", srv.body(b"x"))
    with pickle.loads(pickle.dumps(new_session(FetcherConfig(dest=tmp_path)))) as session:
        assert session.get(url, timeout=5.0).content == b"x"


def test_the_sessions_of_a_process_keep_idle_connections_in_a_quarter_of_its_descriptors() -> None:
    assert hosts_kept(4, 1024) == 64  # --max 8 over two worker processes, the usual soft limit
    assert hosts_kept(32, 1024) == 8
    assert hosts_kept(1, 1 << 20) == MOST_HOSTS_KEPT
    assert hosts_kept(5000, 1024) == 1


@pytest.fixture
def three_hosts() -> Iterator[list[srv.LoopbackServer]]:
    servers = [srv.LoopbackServer(host=f"127.0.0.{i}").start() for i in (1, 2, 3)]
    for each in servers:
        each.route("/f", srv.body(b"x"))
    yield servers
    for each in servers:
        each.stop()


def test_a_session_past_its_hosts_closes_the_connection_of_the_one_used_least_recently(
    monkeypatch: pytest.MonkeyPatch, three_hosts: list[srv.LoopbackServer], tmp_path: Path
) -> None:
    monkeypatch.setattr(session_module, "soft_limit", lambda: 8)  # two hosts for one session
    first, second, third = three_hosts
    with new_session(FetcherConfig(dest=tmp_path, timeout=5.0)) as session:
        for each in (first, second, third, second):
            assert session.get(each.url("/f")).content == b"x"
        assert first.wait_for_connections_ended(1)  # closed when the third host came, not left open
        assert (second.connections_ended, third.connections_ended) == (0, 0)
        assert session.get(first.url("/f")).content == b"x"
    assert (first.connections, second.connections, third.connections) == (2, 1, 1)


def test_a_session_within_its_hosts_keeps_each_ones_connection(
    monkeypatch: pytest.MonkeyPatch, three_hosts: list[srv.LoopbackServer], tmp_path: Path
) -> None:
    monkeypatch.setattr(session_module, "soft_limit", lambda: 12)  # three hosts
    with new_session(FetcherConfig(dest=tmp_path, timeout=5.0)) as session:
        for _ in range(3):
            for each in three_hosts:
                assert session.get(each.url("/f")).content == b"x"
    assert [each.connections for each in three_hosts] == [1, 1, 1]
