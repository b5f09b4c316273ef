"""A lean HTTP client for Locust users: one keep-alive connection each, and as little work per request as we can.

Why it exists: cost per request. On a 2-core machine the load generator competes with the server for CPU, so
every microsecond it spends per request is taken from the server it measures. Locust's FastHttpUser (a
geventhttpclient UserAgent underneath) cost ~150 µs of CPU a request, most of it in generality the item service
does not need: URL parsing, header and request objects, redirects, cookies, retries, a connection pool. Here a
request is one pre-built head (method, path, the headers fixed at start-up) sent on the user's own connection, and
a response is parsed by geventhttpclient's llhttp parser (chunked and keep-alive handling included) with no
header objects made: we keep the status, the body and whether the server keeps the connection open.

What stays as with FastHttpUser: `self.client.get/post/put/delete(path, json=..., name=...)` returning a response
with `status_code`, `content` and `json()`; every request fires Locust's request event (request_type, name,
response_time in ms, start_time, context, exception, response, response_length, url), so scenarios/base.py records
it; a status of 400 or above is a failure (HTTPStatusError, kind "HTTP <status>"); a refused connection, timeout,
reset or unparsable response is a failure recorded under its exception class, never a crash, and the next request
connects afresh. When a reused keep-alive connection turns out closed before any byte of the response arrived (the
server closed it while idle), the request is sent once more on a new connection. HTTP only (no TLS, no proxy);
paths come from our own scenarios and are not validated (a path with a space or CR/LF would be sent as is).
"""

from __future__ import annotations

import json as jsonlib
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import gevent.socket
from gevent import Greenlet
from gevent.pool import Group
from geventhttpclient._parser import HTTPParseError, HTTPResponseParser
from locust import User
from locust.env import Environment
from locust.event import EventHook
from locust.exception import StopTest

RECV_BYTES = 65536  # one recv holds any response of the item service (a page of 100 items is ~15 kB)
USER_AGENT = "bench-lean-client"


class HTTPStatusError(Exception):
    """The server answered with a status of 400 or above (its repr names the status, which sets the failure kind).
    A 5xx of the item service names what failed in its body's "error" (apps/contract.py): kept as `error_kind`."""

    def __init__(self, status_code: int, method: str, path: str, content: bytes = b"") -> None:
        side = "Client" if status_code < 500 else "Server"
        super().__init__(f"{status_code} {side} Error for {method} {path}")
        self.status_code = status_code
        self.error_kind = _error_kind(content) if status_code >= 500 else None


def _error_kind(content: bytes) -> str | None:
    try:
        kind = jsonlib.loads(content).get("error")
    except (ValueError, AttributeError):
        return None
    return kind[:80] if isinstance(kind, str) and kind else None


class ConnectionClosedError(ConnectionError):
    """The server closed the connection before the response was complete."""


class _NoResponseError(ConnectionClosedError):
    """Closed before any byte of the response: on a reused keep-alive connection, the request is sent again."""


class LeanResponse:
    """What a scenario needs of a response; `status_code` is 0 when there was none (`error` says why)."""

    __slots__ = ("content", "error", "status_code")

    def __init__(self, status_code: int, content: bytes, error: Exception | None) -> None:
        self.status_code = status_code
        self.content = content
        self.error = error

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)


class _ResponseParser(HTTPResponseParser):
    """llhttp (via geventhttpclient) keeping the body and the end of each response; headers are not kept.

    The C parser calls every callback below; the header ones do nothing, which is where this saves ~15 µs a
    response over geventhttpclient's HTTPResponse (which builds a case-insensitive header dict). One parser per
    connection: llhttp starts over by itself when the next response begins."""

    def __init__(self) -> None:
        super().__init__()
        self.body = bytearray()
        self.complete = False

    def expect_response(self) -> None:
        self.body = bytearray()
        self.complete = False

    def _on_message_begin(self) -> None:
        pass

    def _on_status(self, _status: str) -> None:
        pass

    def _on_header_field(self, _field: str) -> None:
        pass

    def _on_header_value(self, _value: str) -> None:
        pass

    def _on_headers_complete(self) -> bool:
        return False  # a body may follow (we send no HEAD requests)

    def _on_body(self, data: bytearray) -> None:
        self.body += data

    def _on_message_complete(self) -> None:
        self.complete = True


class LeanHttpClient:
    """HTTP/1.1 to one host over one keep-alive connection (made on first use, remade after any failure)."""

    def __init__(
        self,
        base_url: str,
        *,
        request_event: EventHook,
        context: Callable[[], dict[str, Any]] = dict,
        connection_timeout: float = 60.0,
        network_timeout: float = 60.0,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the lean client speaks plain HTTP to one host; cannot use {base_url!r}")
        self.address = (parts.hostname, parts.port or 80)
        self.path_prefix = parts.path.rstrip("/")  # a base URL may name a mount point: http://host/api
        self._request_event = request_event
        self._context = context
        self._connection_timeout = connection_timeout
        self._network_timeout = network_timeout
        # Every request's head ends with these; only the request line and a body's headers change.
        self._fixed_headers = f"Host: {parts.netloc}\r\nUser-Agent: {USER_AGENT}\r\nAccept: application/json\r\n"
        self._sock: gevent.socket.socket | None = None
        self._parser = _ResponseParser()

    def get(self, path: str, *, name: str | None = None) -> LeanResponse:
        return self.request("GET", path, name=name)

    def post(self, path: str, *, json: Any = None, name: str | None = None) -> LeanResponse:
        return self.request("POST", path, json=json, name=name)

    def put(self, path: str, *, json: Any = None, name: str | None = None) -> LeanResponse:
        return self.request("PUT", path, json=json, name=name)

    def delete(self, path: str, *, name: str | None = None) -> LeanResponse:
        return self.request("DELETE", path, name=name)

    def request(self, method: str, path: str, *, json: Any = None, name: str | None = None) -> LeanResponse:
        """Send one request, read its response in full, fire Locust's request event, and return the response.
        Network and protocol errors are recorded as failures and returned (status_code 0), not raised."""
        target = self.path_prefix + path
        head = f"{method} {target} HTTP/1.1\r\n{self._fixed_headers}"
        if json is None:
            data = (head + "\r\n").encode("latin-1")
        else:
            body = jsonlib.dumps(json, separators=(",", ":")).encode()
            data = (head + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
        context = self._context()
        start_time = time.time()
        started = time.perf_counter()
        try:
            status_code, content = self._exchange(data)
        except (OSError, HTTPParseError) as exc:  # refused, reset, timed out, closed early, unparsable
            self.close()
            response = LeanResponse(0, b"", exc)
        else:
            error = HTTPStatusError(status_code, method, path, content) if status_code >= 400 else None
            response = LeanResponse(status_code, content, error)
        self._request_event.fire(
            request_type=method,
            name=name or path,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=len(response.content),
            response=response,
            context=context,
            exception=response.error,
            start_time=start_time,
            url=target,
        )
        return response

    def close(self) -> None:
        """Close the connection (the next request opens a new one)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def _connect(self) -> gevent.socket.socket:
        sock = gevent.socket.create_connection(self.address, timeout=self._connection_timeout)
        sock.settimeout(self._network_timeout)
        sock.setsockopt(gevent.socket.IPPROTO_TCP, gevent.socket.TCP_NODELAY, 1)
        self._sock = sock
        self._parser = _ResponseParser()
        return sock

    def _exchange(self, data: bytes) -> tuple[int, bytes]:
        sock = self._sock
        if sock is None:
            return self._send_and_read(self._connect(), data)
        try:
            return self._send_and_read(sock, data)
        except (ConnectionResetError, BrokenPipeError, _NoResponseError):
            # The server closed the idle keep-alive connection without reading this request: send it again.
            self.close()
            return self._send_and_read(self._connect(), data)

    def _send_and_read(self, sock: gevent.socket.socket, data: bytes) -> tuple[int, bytes]:
        sock.sendall(data)
        parser = self._parser
        parser.expect_response()
        received = False
        while not parser.complete:
            chunk = sock.recv(RECV_BYTES)
            if not chunk:
                if not received:
                    raise _NoResponseError("connection closed before the response began")
                parser.feed(b"")  # the end of a body delimited by the close; HTTPParseError if incomplete
                if not parser.complete:
                    raise ConnectionClosedError("connection closed before the end of the response")
                self.close()
                break
            received = True
            parser.feed(chunk)
        if not parser.should_keep_alive():
            self.close()
        return parser.get_code(), bytes(parser.body)


class LeanHttpUser(User):
    """A Locust User whose `client` is a LeanHttpClient to the run's host (--host), closed when the user stops."""

    abstract = True
    connection_timeout: float = 60.0  # as FastHttpUser's defaults: a slow server is measured, not cut short
    network_timeout: float = 60.0

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        if self.host is None:
            raise StopTest("no host: give --host (or a host attribute on the User class)")
        self.client = LeanHttpClient(
            self.host,
            request_event=environment.events.request,
            context=self.context,
            connection_timeout=self.connection_timeout,
            network_timeout=self.network_timeout,
        )

    def start(self, group: Group) -> Greenlet:
        greenlet: Greenlet = super().start(group)
        # However the user ends (stopped, killed at the stop timeout, failed), its connection is closed.
        greenlet.link(lambda _ended: self.client.close())
        return greenlet
