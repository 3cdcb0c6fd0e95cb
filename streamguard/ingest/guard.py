"""One source's connections, held to the address policy (see :mod:`~streamguard.ingest.addresses`).

How each kind of source is held to it:

- **HTTP, HTTPS, HLS** go through the source's :class:`~streamguard.ingest.proxy.PolicyProxy`
  (FFmpeg's ``http_proxy`` option): the stream's URL, every redirect, every HLS playlist,
  segment and key, plain or tunnelled TLS. A denial anywhere fails the connection, even one
  FFmpeg would shrug off (an HLS segment it skips): a source does not get to pick around it.
- **RTMPS** goes through the proxy too, as a ``CONNECT`` tunnel: FFmpeg's TLS layer takes
  the ``http_proxy`` option (``httpproxy`` is in its whitelist), so the URL keeps its host
  name, and with it the TLS SNI and the ``tcUrl``.
- **RTMP** is resolved once per connection attempt, every address checked, and the URL
  handed to FFmpeg names the checked address (``rtmp://203.0.113.7/live/room``), so FFmpeg
  has nothing left to resolve; ``rtmp_tcurl`` keeps the host's name in the ``connect``
  command. Successive attempts take the resolved addresses in turn.
- **RTSP** is resolved and checked the same way, and FFmpeg connects to the source's
  :class:`~streamguard.ingest.rtsp_relay.RtspRelay`, which connects to the checked address
  and checks (and re-aims) the redirects FFmpeg would otherwise follow by itself.
- **Local files** make no connection.

Whatever goes wrong is reported with the stream's own URL: not the pinned address, not the
proxy's 403 or 502 (a refused connection is ``Connection refused``, as without the proxy).
"""

from __future__ import annotations

from dataclasses import replace
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit, urlunsplit

from streamguard.config.ingest import IngestConfig
from streamguard.core.errors import SourceError, SourceTimeout
from streamguard.ingest.addresses import AddressNotAllowed, AddressPolicy, IPAddress
from streamguard.ingest.protocols import SourceTarget
from streamguard.ingest.proxy import PolicyProxy
from streamguard.ingest.rtsp_relay import RtspRelay

__all__ = ["AddressGuard"]

_PROXIED = frozenset({"http", "https", "hls", "rtmps"})
# What FFmpeg makes of the proxy's 502 (see reader.plain_error): the real reason is the proxy's.
_SERVER_FAILED = "the server failed (HTTP 5xx)"
_TCURL_KEPT = 1023  # FFmpeg builds the tcUrl in 1024 bytes


class AddressGuard:
    """Routes one source's connections through the address policy.

    ``async with`` it around the source's reading (it owns the source's proxy); then, on the
    reader thread, :meth:`route` before each connection attempt, :meth:`check` as packets
    come, and :meth:`explain` on any error of the attempt.
    """

    def __init__(self, target: SourceTarget, settings: IngestConfig, stream_id: str) -> None:
        self._target = target
        self._policy = AddressPolicy.of(settings.addresses)
        timeout = settings.open_timeout
        self._proxy: PolicyProxy | RtspRelay | None = None
        if target.kind in _PROXIED:
            self._proxy = PolicyProxy(self._policy, stream_id=stream_id, connect_timeout=timeout)
        elif target.kind == "rtsp":
            self._proxy = RtspRelay(self._policy, stream_id=stream_id, connect_timeout=timeout)
        self._pinned: str | None = None
        self._attempts = 0

    async def __aenter__(self) -> Self:
        if self._proxy is not None:
            await self._proxy.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proxy is not None:
            await self._proxy.__aexit__(exc_type, exc, tb)

    def route(self) -> SourceTarget:
        """The target to open for the next attempt. Blocking (may resolve a name)."""
        if isinstance(self._proxy, PolicyProxy):
            self._proxy.begin()
            options = {**self._target.options, "http_proxy": self._proxy.url}
            return replace(self._target, options=options)
        if isinstance(self._proxy, RtspRelay):
            self._proxy.begin()
            addresses, port = self._resolved()
            self._proxy.aim(addresses, port)
            self._pinned = self._proxy.url_for(self._target.url)
            return replace(self._target, url=self._pinned)
        if self._target.kind == "rtmp":
            return self._pin()
        return self._target

    def check(self) -> None:
        """Raise ``AddressNotAllowed`` once the proxy refused anything in this attempt."""
        if self._proxy is not None and self._proxy.denied:
            raise AddressNotAllowed(self._target.url)

    def explain(self, exc: SourceError) -> SourceError:
        """``exc`` as the stream's user should read it (the same object when unchanged)."""
        if isinstance(exc, AddressNotAllowed) or (self._proxy is not None and self._proxy.denied):
            return (
                exc if isinstance(exc, AddressNotAllowed) else AddressNotAllowed(self._target.url)
            )
        message = str(exc)
        if self._pinned is not None:
            message = message.replace(self._pinned, self._target.url)
        failure = self._proxy.failure if self._proxy is not None else None
        if failure and isinstance(self._proxy, RtspRelay):
            # FFmpeg only saw the relay hang up: the relay knows why.
            message = f"cannot open {self._target.url}: {failure}"
        elif failure and message.endswith(_SERVER_FAILED):
            message = message[: -len(_SERVER_FAILED)] + failure
        if message == str(exc):
            return exc
        return SourceTimeout(message) if isinstance(exc, SourceTimeout) else SourceError(message)

    def _resolved(self) -> tuple[list[IPAddress], int]:
        """The stream's host, resolved and every address checked; and its port."""
        url = self._target.url
        parts = urlsplit(url)
        port = parts.port or (1935 if self._target.kind == "rtmp" else 554)
        try:
            return self._policy.resolve(parts.hostname or "", port), port
        except AddressNotAllowed:
            raise AddressNotAllowed(url) from None
        except SourceError as exc:
            raise SourceError(f"cannot open {url}: {exc}") from exc

    def _pin(self) -> SourceTarget:
        parts = urlsplit(self._target.url)
        addresses, _ = self._resolved()
        address = addresses[self._attempts % len(addresses)]
        self._attempts += 1
        userinfo, at, _ = parts.netloc.rpartition("@")
        shown = f"[{address}]" if address.version == 6 else str(address)
        netloc = f"{userinfo}{at}{shown}" + (f":{parts.port}" if parts.port else "")
        self._pinned = urlunsplit(parts._replace(netloc=netloc))
        # FFmpeg would name the pinned address in the connect command's tcUrl, by which CDN
        # and vhost servers pick the application: name the host, as without pinning.
        options = {**self._target.options, "rtmp_tcurl": _tc_url(self._target.url)}
        return replace(self._target, url=self._pinned, options=options)


def _tc_url(url: str) -> str:
    """The ``tcUrl`` FFmpeg's RTMP client sends for ``url`` (``rtmp://host:port/app``), worked
    out as its ``rtmp_open`` does: the host as written, the port always, the app from the path
    (whatever precedes the last part, with FFmpeg's ``slist=`` and ``/ondemand/`` cases)."""
    scheme, _, rest = url.partition("://")
    cut = min((i for c in "/?#" if (i := rest.find(c)) >= 0), default=len(rest))
    hostinfo, path = rest[:cut].rpartition("@")[2], rest[cut:]
    port = urlsplit(url).port or 1935
    host = (
        hostinfo if hostinfo.endswith("]") or ":" not in hostinfo else hostinfo.rpartition(":")[0]
    )
    return f"{scheme}://{host}:{port}/{_rtmp_app(path)}"[:_TCURL_KEPT]


def _rtmp_app(path: str) -> str:
    query = path.find("?")
    if query >= 0 and "slist=" in path[query:]:
        return path[1:]
    if path.startswith("/ondemand/"):
        return "ondemand"
    rest = path[1:]
    first = rest.find("/")
    if first < 0:
        return rest
    after = rest[first + 1 :]
    colon, second = after.find(":"), after.find("/")
    if second < 0 or 0 <= colon < second:
        return rest[:first]
    return rest[: first + 1 + second]
