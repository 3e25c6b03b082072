# SPDX-License-Identifier: GPL-3.0-or-later
"""Download audio for /transcribe/url with an SSRF guard.

Every connection (first request and each redirect hop) resolves the host itself, refuses the whole
host when any of its addresses is loopback, private, link-local, reserved, multicast or otherwise
non-global (unless allowed), then connects to the checked address, so DNS rebinding between the
check and the connect cannot slip through. Only http and https; size and time limits.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Iterable

import certifi
import httpcore
import httpx
from httpcore._backends.anyio import AnyIOBackend

from .errors import ApiError, TooLarge, UrlRefused

_REDIRECTS = {301, 302, 303, 307, 308}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def address_refusal(ip: IPAddress, allow_private: bool, allowed: Iterable[ipaddress._BaseNetwork]) -> str | None:
    """Why ``ip`` may not be fetched, or None when it may."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in net for net in allowed):
        return None
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if allow_private:
        return None
    for attr, label in (
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_private", "private"),
        ("is_reserved", "reserved"),
    ):
        if getattr(ip, attr):
            return label
    if not ip.is_global:
        return "non-global"
    return None


class GuardedBackend(AnyIOBackend):
    """httpcore network backend that validates the resolved address before every TCP connect."""

    def __init__(self, allow_private: bool, allowed_networks: list[str]) -> None:
        self.allow_private = allow_private
        self.allowed = [ipaddress.ip_network(n, strict=False) for n in allowed_networks]

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise UrlRefused(f"the URL's host {host!r} does not resolve ({exc.strerror})", param="url") from exc
        addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
        for ip in addresses:
            why = address_refusal(ip, self.allow_private, self.allowed)
            if why:
                raise UrlRefused(
                    f"refusing to fetch {host!r}: it resolves to {ip}, a {why} address "
                    "(set WHISPER_API_ALLOW_PRIVATE_URLS=true or list its network in "
                    "WHISPER_API_URL_ALLOWED_NETWORKS to allow it)",
                    param="url",
                    code="url_not_allowed",
                )
        return await super().connect_tcp(str(addresses[0]), port, timeout=timeout,
                                         local_address=local_address, socket_options=socket_options)


def check_url(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise UrlRefused(f"{url!r} is not a valid URL: {exc}", param="url") from exc
    if parsed.scheme not in ("http", "https"):
        raise UrlRefused(
            f"only http and https URLs can be fetched, not {parsed.scheme or 'a scheme-less'!s} URL {url!r}",
            param="url",
        )
    if not parsed.host:
        raise UrlRefused(f"the URL {url!r} has no host", param="url")
    return parsed


def _client(allow_private: bool, allowed_networks: list[str]) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(retries=0)
    # httpx has no public hook for the network backend: give its transport a pool that uses ours.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl.create_default_context(cafile=certifi.where()),
        network_backend=GuardedBackend(allow_private, allowed_networks),
        max_connections=4,
    )
    return httpx.AsyncClient(transport=transport, follow_redirects=False, trust_env=False,
                             headers={"User-Agent": "whisper-api"})


async def fetch(url: str, *, max_bytes: int, timeout_s: float, max_redirects: int,
                allow_private: bool, allowed_networks: list[str]) -> tuple[bytes, str]:
    """Return (body, final URL). Raises ApiError subclasses with what went wrong."""
    current = check_url(url)
    try:
        async with asyncio.timeout(timeout_s), _client(allow_private, allowed_networks) as client:
            for _hop in range(max_redirects + 1):
                async with client.stream("GET", current) as resp:
                    if resp.status_code in _REDIRECTS:
                        location = resp.headers.get("location")
                        if not location:
                            raise UrlRefused(f"{current} answered {resp.status_code} without a Location", param="url")
                        current = check_url(str(current.join(location)))
                        continue
                    if resp.status_code >= 400:
                        raise UrlRefused(f"fetching {current} failed: HTTP {resp.status_code}", param="url",
                                         code="url_fetch_failed")
                    declared = resp.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > max_bytes:
                        raise TooLarge(_too_large(current, max_bytes), param="url")
                    chunks, size = [], 0
                    async for chunk in resp.aiter_bytes():
                        size += len(chunk)
                        if size > max_bytes:
                            raise TooLarge(_too_large(current, max_bytes), param="url")
                        chunks.append(chunk)
                    return b"".join(chunks), str(current)
            raise UrlRefused(f"{url} redirected more than {max_redirects} times", param="url")
    except TimeoutError as exc:
        raise UrlRefused(f"fetching {url} took longer than {timeout_s:g} s (WHISPER_API_URL_TIMEOUT_S)",
                         param="url", code="url_timeout") from exc
    except ApiError:
        raise
    except httpx.HTTPError as exc:
        raise UrlRefused(f"fetching {current} failed: {type(exc).__name__}: {exc}", param="url",
                         code="url_fetch_failed") from exc


def _too_large(url: httpx.URL, max_bytes: int) -> str:
    return (f"{url} is larger than the limit of {max_bytes / 1048576:g} MB (WHISPER_API_MAX_UPLOAD_MB)")
