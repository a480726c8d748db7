"""The requests Session each worker thread downloads with.

requests re-derives on every request what does not change within a run, and
on a small file that costs more than the download itself:

- it merges the session's settings into each request through generic helpers
  (seven ``merge_setting`` calls, each with runtime protocol checks);
- with ``trust_env`` on, it re-reads every proxy variable, tests the URL
  against NO_PROXY and looks for a netrc file (a file read when there is one);
- it asks the file system whether the CA bundle is a folder (hangup.py's
  adapter remembers the answer);
- it runs the cookie jar over every response, and the redirect code, even
  when the response sets no cookie and is no redirect; and it looks up the
  connection pool of a URL's origin afresh for each request (hangup.py's
  adapter remembers it).

``FetcherSession`` reads the environment once, when it is made, remembers
per host what NO_PROXY and the netrc file say of it, prepares the plain
GET fetcher sends (a URL, a few headers, a hook, a timeout) directly, taking
a URL already in requests' form as it is and the session's headers as
checked once (prepare.py), and sends it (``send``) without the steps that
would find nothing to do.  What it sends is what requests would send: the
same URL normal form, headers, auth (from the URL or the netrc file),
cookies, proxies and CA bundle.  Redirects, cookies across them, the
stripping of auth on a cross-host redirect and the redirect limit stay
requests' own.  Any other kind of request goes through requests unchanged.
"""

from __future__ import annotations

import datetime
import os
import time
import urllib.request
from collections.abc import Mapping, MutableMapping
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.auth import HTTPProxyAuth
from requests.cookies import RequestsCookieJar, extract_cookies_to_jar, merge_cookies
from requests.utils import get_auth_from_url, get_netrc_auth, resolve_proxies, should_bypass_proxies

from .._config import FetcherConfig
from .._openfiles import soft_limit
from .hangup import HangUpAdapter, sets_cookies
from .prepare import PlainPreparer

#: Arguments of ``Session.request`` the prepared fast path handles; any other given makes it requests' own.
_PLAIN = frozenset({"headers", "timeout", "allow_redirects", "hooks", "stream"})

#: Hosts remembered per session (NO_PROXY and netrc answers); past this the memory starts afresh.
_HOSTS_REMEMBERED = 4096

#: The most hosts whose idle connection one session keeps.
MOST_HOSTS_KEPT = 256

#: The sessions of a process keep idle connections in at most 1/_IDLE_SHARE of its file descriptors:
#: the rest are for the connections in use, the files being written, the pipes, the state database.
_IDLE_SHARE = 4

def hosts_kept(sessions: int, descriptors: int | None = None) -> int:
    """How many hosts' idle connections each of a process's *sessions* keeps (one connection each).

    Together they hold at most a quarter of the process's file descriptors
    (*descriptors*: its soft limit, read when not given), so that a run with
    many threads and many hosts never runs out of them; each keeps at most
    MOST_HOSTS_KEPT, and at least one.  Past that a session closes the
    connection of the host it used least recently (hangup.py).
    """
    if descriptors is None:
        descriptors = soft_limit()
    return max(1, min(MOST_HOSTS_KEPT, descriptors // _IDLE_SHARE // max(1, sessions)))


def new_session(config: FetcherConfig, *, sessions: int = 1) -> FetcherSession:
    """A Session for one worker thread: keep-alive, bounded redirects, no retries, the CA bundle asked for.

    *sessions*: how many sessions the process makes (its download threads), which share its file descriptors
    for the connections they keep (``hosts_kept``).
    """
    session = FetcherSession()
    session.max_redirects = config.max_redirects
    session.headers["User-Agent"] = config.user_agent
    # Its connections report their sockets, so a stop can hang up a request in any phase (hangup.py).
    pools = hosts_kept(sessions)
    adapter = HangUpAdapter(pool_connections=pools, pool_maxsize=1, max_retries=0)
    if config.ca_certificate is not None:
        adapter = _TrustedCA(str(config.ca_certificate), pool_connections=pools, pool_maxsize=1, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class FetcherSession(requests.Session):
    """A Session that reads the environment once and prepares a plain request without requests' merging."""

    def __init__(self) -> None:
        super().__init__()
        self._read_environment()

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)  # unpickled: requests keeps only its own attributes
        self._read_environment()

    def _read_environment(self) -> None:
        # What requests would read from the environment on each request, read now.
        self.env_proxies: dict[str, str] = urllib.request.getproxies()
        self.env_ca_bundle: str | None = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        self.env_netrc = _netrc_present()
        self._bypass: dict[str, bool] = {}  # netloc -> whether NO_PROXY exempts it
        self._netrc: dict[str, tuple[str, str] | None] = {}  # netloc -> the netrc file's login for it
        self._preparer = PlainPreparer()

    def request(self, method: str, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        if args or method.upper() not in ("GET", "HEAD") or not self._plain(kwargs):
            return super().request(method, url, *args, **kwargs)
        if isinstance(url, bytes):
            url = url.decode("utf-8")
        # PreparedRequest.prepare, with the session's settings merged in as Session.prepare_request
        # merges them, without its generic helpers (prepare.py).
        prepared = self._preparer.prepare(method, url, self.headers, kwargs.get("headers"))
        jar = RequestsCookieJar()
        if self.cookies:
            prepared.prepare_cookies(merge_cookies(jar, self.cookies))
        else:
            prepared._cookies = jar  # an empty jar adds no header; redirects fill it
        auth = self.netrc_auth(url) if self.trust_env else None
        if auth is not None or "@" in (prepared.url or ""):  # without either, prepare_auth finds no auth
            prepared.prepare_auth(auth, url)
        if kwargs.get("hooks"):
            prepared.prepare_hooks(kwargs["hooks"])
        settings = self.merge_environment_settings(prepared.url, {}, kwargs.get("stream"), None, None)
        return self.send(
            prepared, timeout=kwargs.get("timeout"), allow_redirects=kwargs.get("allow_redirects", True), **settings
        )

    def _plain(self, kwargs: Mapping[str, Any]) -> bool:
        """Whether a request with *kwargs* is one the fast path prepares exactly as requests would."""
        if any(value is not None for name, value in kwargs.items() if name not in _PLAIN):
            return False
        if None in self.headers.values():
            return False
        return not self.params and self.auth is None and not any(self.hooks.values())

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> dict[str, Any]:
        """requests' own, with the environment as read when the session was made."""
        if self.trust_env:
            if proxies is not None and self.env_proxies:
                if proxies.get("no_proxy") is not None:
                    environ = requests.utils.get_environ_proxies(url, no_proxy=proxies["no_proxy"])
                else:
                    environ = {} if self.bypasses_proxies(url) else self.env_proxies
                for key, value in environ.items():
                    proxies.setdefault(key, value)
            if verify is True or verify is None:
                verify = self.env_ca_bundle or verify
        return {
            "proxies": _merged(proxies, self.proxies),
            "stream": self.stream if stream is None else stream,
            "verify": self.verify if verify is None else verify,
            "cert": self.cert if cert is None else cert,
        }

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        if "proxies" not in kwargs:
            kwargs["proxies"] = self.proxies_for(request.url, self.proxies)
        if kwargs["proxies"] or any(getattr(request, "hooks", {}).values()):
            return super().send(request, **kwargs)
        # Session.send, step by step, without the steps that find nothing to do: the cookie jar's
        # search of a response that sets no cookie, the redirect search of one that is no redirect.
        kwargs.setdefault("stream", self.stream)
        kwargs.setdefault("verify", self.verify)
        kwargs.setdefault("cert", self.cert)
        allow_redirects = kwargs.pop("allow_redirects", True)
        adapter = self.get_adapter(url=request.url or "")
        start = time.perf_counter()
        response = adapter.send(request, **kwargs)
        response.elapsed = datetime.timedelta(seconds=time.perf_counter() - start)
        for each in (*response.history, response):
            if sets_cookies(each.headers):
                extract_cookies_to_jar(self.cookies, each.request, each.raw)
        if response.is_redirect:
            redirects = self.resolve_redirects(response, request, yield_requests=not allow_redirects, **kwargs)
            if not allow_redirects:
                response._next = next(redirects, None)  # type: ignore[assignment]
            elif history := list(redirects):
                history.insert(0, response)
                response = history.pop()
                response.history = history
        if not kwargs["stream"]:
            response.content  # noqa: B018 -- reads the body, as requests does
        return response

    def rebuild_proxies(self, prepared_request: requests.PreparedRequest, proxies: Any) -> dict[str, str]:
        """requests' own (for the next hop of a redirect), with the environment as read."""
        url = prepared_request.url or ""
        headers = prepared_request.headers
        scheme = urlsplit(url).scheme
        new_proxies = self.proxies_for(url, proxies)
        if "Proxy-Authorization" in headers:
            del headers["Proxy-Authorization"]
        username, password = get_auth_from_url(new_proxies[scheme]) if scheme in new_proxies else (None, None)
        if not scheme.startswith("https") and username and password:
            HTTPProxyAuth(username, password)(prepared_request)
        return new_proxies

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        """requests' own (for the next hop of a redirect), with the netrc file as read."""
        headers = prepared_request.headers
        original = response.request.url if response.request is not None else None
        url = prepared_request.url or ""
        if "Authorization" in headers and self.should_strip_auth(original or "", url):
            del headers["Authorization"]  # not sent on to another host
        new_auth = self.netrc_auth(url) if self.trust_env else None
        if new_auth is not None:
            prepared_request.prepare_auth(new_auth)

    def proxies_for(self, url: str | None, proxies: MutableMapping[str, str] | None) -> dict[str, str]:
        """requests.utils.resolve_proxies for *url*, with the environment as read."""
        proxies = {} if proxies is None else proxies
        if self.trust_env and proxies.get("no_proxy") is not None:
            request = requests.Request(url=url)
            return resolve_proxies(request, dict(proxies), self.trust_env)  # a per-request NO_PROXY: requests' way
        new_proxies = dict(proxies)
        if self.trust_env and self.env_proxies and url and not self.bypasses_proxies(url):
            scheme = urlsplit(url).scheme
            proxy = self.env_proxies.get(scheme, self.env_proxies.get("all"))
            if proxy:
                new_proxies.setdefault(scheme, proxy)
        return new_proxies

    def bypasses_proxies(self, url: str) -> bool:
        """Whether NO_PROXY exempts *url*'s host, asked once per host."""
        netloc = urlsplit(url).netloc
        bypass = self._bypass.get(netloc)
        if bypass is None:
            if len(self._bypass) >= _HOSTS_REMEMBERED:
                self._bypass.clear()
            bypass = self._bypass[netloc] = should_bypass_proxies(url, no_proxy=None)
        return bypass

    def netrc_auth(self, url: str) -> tuple[str, str] | None:
        """The netrc file's login for *url*'s host, read once per host; None without a netrc file."""
        if not self.env_netrc:
            return None
        netloc = urlsplit(url).netloc
        if netloc not in self._netrc:
            if len(self._netrc) >= _HOSTS_REMEMBERED:
                self._netrc.clear()
            self._netrc[netloc] = get_netrc_auth(url)
        return self._netrc[netloc]


def _merged(setting: Mapping[str, Any] | None, session: Mapping[str, Any] | None) -> Any:
    """requests' merge_setting for two mappings (the proxies): the request's win, None removes."""
    if session is None:
        return setting
    if setting is None:
        return session
    merged = {**session, **setting}
    return {key: value for key, value in merged.items() if value is not None}


class _TrustedCA(HangUpAdapter):
    """An adapter that verifies with one CA bundle, whatever the environment says.

    Setting ``session.verify`` is not enough: with trust_env on, requests lets
    $REQUESTS_CA_BUNDLE replace it on every request.
    """

    def __init__(self, bundle: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bundle = bundle

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs["verify"] = self.bundle
        return super().send(request, **kwargs)


def _netrc_present() -> bool:
    """Whether requests would find a netrc file (the places it looks)."""
    netrc = os.environ.get("NETRC")
    names = [netrc] if netrc is not None else ["~/.netrc", "~/_netrc"]
    return any(os.path.exists(os.path.expanduser(name)) for name in names)
