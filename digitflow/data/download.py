"""HTTP(S) downloads with one deadline for the whole transfer, credentials from netrc or the
environment, and URLs shown without their credentials.

A per-read timeout cannot stop a server that sends one byte a second: each read succeeds.
A ``Deadline`` shuts the connections it watches down when its time is up, whatever they are
doing (connecting, reading headers or the body), and the download then fails saying so.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import http.client
import netrc
import os
import re
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from types import TracebackType
from typing import Any

from digitflow.errors import SourceError, SourceUnreachable

CHUNK = 1 << 20


def has_credentials(url: str) -> bool:
    """Whether a URL carries user information (a user name, a password or a token)."""
    return "@" in urllib.parse.urlsplit(url).netloc


def redact(url: str) -> str:
    """``url`` with its user information replaced by ``***``: for logs, errors and records."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))


def redact_urls(text: str) -> str:
    """``text`` with the user information of every URL in it replaced by ``***``."""
    return _USERINFO.sub(r"\1***@", text)


# Up to the authority's last "@": a password may hold an "@" of its own, unencoded.
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s]*@")


class Deadline:
    """One time limit for several downloads: when it passes, their sockets are shut down."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._cut = False  # every download shut: the deadline passed, or ``cut``
        self._end = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self._timer.cancel()

    def remaining(self) -> float:
        """Seconds left (at least a millisecond, so that a timeout of 0 never means 'none')."""
        return max(self._end - time.monotonic(), 0.001)

    def watch(self, sock: socket.socket) -> socket.socket:
        """Shut ``sock`` down when the deadline passes (at once if it has)."""
        with self._lock:
            self._sockets.append(sock)
            if self._cut:
                _shut(sock)
        return sock

    def cut(self) -> None:
        """End every download now (their caller is stopping; or the deadline passed)."""
        with self._lock:
            self._cut = True
            for sock in self._sockets:
                _shut(sock)

    def _expire(self) -> None:
        self.expired = True  # before the downloads fail: their errors say why
        self.cut()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # closed already
        sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked reading it


def _watched(deadline: Deadline, *args: Any, **kwargs: Any) -> socket.socket:
    return deadline.watch(socket.create_connection(*args, **kwargs))


class _HTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args: Any, deadline: Deadline, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = functools.partial(_watched, deadline)


class _HTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args: Any, deadline: Deadline, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = functools.partial(_watched, deadline)


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: Deadline) -> None:
        super().__init__()
        self._deadline = deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_HTTPConnection, deadline=self._deadline), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: Deadline) -> None:
        super().__init__()
        self._deadline = deadline
        self._tls = ssl.create_default_context()

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        connection = functools.partial(_HTTPSConnection, deadline=self._deadline)
        return self.do_open(connection, req, context=self._tls)


def _login(parts: urllib.parse.SplitResult) -> tuple[str, str] | None:
    """User and password: from the URL (set in the environment), else from netrc."""
    if parts.username is not None:
        return urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or "")
    path = os.environ.get("NETRC") or os.path.expanduser("~/.netrc")
    if not parts.hostname or not os.path.isfile(path):
        return None
    try:
        entry = netrc.netrc(path).authenticators(parts.hostname)
    except netrc.NetrcParseError as exc:  # its message may quote the file: give the line only
        raise SourceError(f"{path}: not a valid netrc file (line {exc.lineno})") from None
    except OSError as exc:
        raise SourceError(f"{path}: cannot be read ({exc.strerror})") from exc
    return (entry[0], entry[2] or "") if entry else None


def _request(url: str) -> urllib.request.Request:
    parts = urllib.parse.urlsplit(url)
    bare = urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    request = urllib.request.Request(bare)
    login = _login(parts)
    if login is not None:
        token = base64.b64encode(":".join(login).encode()).decode()
        # Unredirected: a redirect to another host must not take the password along.
        request.add_unredirected_header("Authorization", f"Basic {token}")
    return request


def download(url: str, timeout_s: float, deadline: Deadline) -> bytes:
    """The body at ``url``; errors name the URL without its credentials."""
    shown = redact(url)
    received = bytearray()
    opener = urllib.request.build_opener(_HTTPHandler(deadline), _HTTPSHandler(deadline))
    try:
        with opener.open(_request(url), timeout=min(timeout_s, deadline.remaining())) as response:
            while chunk := response.read(CHUNK):
                received += chunk
                if deadline.expired:
                    break
    except urllib.error.HTTPError as exc:
        hint = ": put the credentials for this host in ~/.netrc" if exc.code in (401, 403) else ""
        raise SourceError(f"{shown}: HTTP {exc.code} {exc.reason}{hint}") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        if not deadline.expired:
            reason = getattr(exc, "reason", exc)
            raise SourceUnreachable(f"{shown}: unreachable ({reason})") from exc
    if deadline.expired:
        raise SourceError(
            f"{shown}: the download did not finish within {deadline.seconds:g} s "
            f"(DIGITFLOW_DOWNLOAD_DEADLINE_S; {len(received):,} bytes arrived): the server "
            "is stalled or too slow; try another source, or allow more time"
        )
    return bytes(received)
