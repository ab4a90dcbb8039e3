"""Fetching result files safely.

Result URLs come from the API's answer, so they are treated as untrusted:
only http(s) to known hosts, never with the Authorization header, no redirect
to another host, a hard size cap while streaming, and the bytes must look like
an image before anyone tries to decode them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import httpx

from .. import formats
from ..config.settings import is_loopback_host
from ..errors import CutFileError, DownloadError, shorten
from ..limits import MAX_RESULT_FILE_BYTES
from .addresses import Resolver, is_loopback_name, literal_address, non_public, system_resolver

MAX_REDIRECTS = 3
_UNSAFE = re.compile(r"[\x00-\x20\x7f]")  # whitespace and control characters never belong in a URL
# RunComfy's CLI trusts result files on both of RunComfy's domains (runcomfy-api.md, result hosts).
TRUSTED_DOMAINS = ("runcomfy.net", "runcomfy.com")


def _describe_non_image(data: bytes) -> str:
    head = data[:64].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return "an HTML page"
    if head.startswith((b"{", b"[")):
        return "JSON"
    if not data:
        return "an empty body"
    return f"{len(data)} bytes of unknown data"


@dataclass(frozen=True)
class DownloadPolicy:
    """Which hosts result files may come from, over which scheme, at which addresses.

    A file on the API's own host is fetched wherever that is (the token already
    goes there). Any other host must be one of RunComfy's domains or listed in
    ``extra_hosts``, over https, at a public address: neither a literal nor a
    resolved loopback, private or link-local one. Only when the API itself is
    on loopback (the simulator) may files come from loopback, over plain http.
    """

    api_host: str
    extra_hosts: tuple[str, ...] = ()
    max_bytes: int = MAX_RESULT_FILE_BYTES
    resolver: Resolver = field(default=system_resolver, compare=False, repr=False)

    @property
    def local_api(self) -> bool:
        """The API runs on this machine (a simulator): its files are on loopback too."""
        return is_loopback_host(self.api_host) or is_loopback_name(self.api_host)

    def host_allowed(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        if host == self.api_host.lower():
            return True
        if any(host == domain or host.endswith("." + domain) for domain in TRUSTED_DOMAINS):
            return True
        for allowed in self.extra_hosts:
            if allowed.startswith("*.") and host.endswith(allowed[1:]):
                return True
            if host == allowed:
                return True
        return False

    def check_url(self, url: str, request_id: str | None = None) -> str:
        """Return the URL if it may be fetched, else raise a one-line DownloadError."""
        try:
            parts = urlsplit(url)
            host = parts.hostname or ""
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError:
            host, parts = "", None
        if parts is None or parts.scheme not in ("http", "https") or not host or _UNSAFE.search(url):
            raise DownloadError(
                f"RunComfy's answer names a result URL that cannot be fetched: {shorten(repr(url), 80)}",
                request_id=request_id,
            )
        on_api_host = host.lower().rstrip(".") == self.api_host.lower().rstrip(".")
        loopback = is_loopback_host(host) or is_loopback_name(host)
        if parts.scheme == "http" and not (loopback and self.local_api):
            raise DownloadError(
                f"Refused to download from {host} over plain http; results must use https", request_id=request_id
            )
        if not self.host_allowed(host):
            raise DownloadError(
                f"Refused to download a result from {host}: not a RunComfy host; if you trust it, "
                'add it to "download_hosts" in your RunComfy config file',
                request_id=request_id,
            )
        address = literal_address(host)
        if address is not None:
            why = non_public(address, loopback_ok=self.local_api)
        else:  # a name: only the ones that always mean this machine are judged before resolving
            why = "a loopback address (this machine)" if loopback and not self.local_api else None
        if why and not on_api_host:
            raise _private_address(host, why, request_id)
        return url

    async def check_address(self, url: str, request_id: str | None = None) -> None:
        """Refuse a checked URL whose host name resolves to a non-public address.

        Called right before each connection. A name that does not resolve is
        left to the connection, which then fails on its own; a literal address
        was judged by ``check_url`` already.
        """
        parts = urlsplit(url)
        host = parts.hostname or ""
        if literal_address(host) is not None or host.lower().rstrip(".") == self.api_host.lower().rstrip("."):
            return
        if is_loopback_name(host):
            return  # judged by check_url: allowed only beside a local API
        try:
            found = await self.resolver(host, parts.port or 443)
        except OSError:
            return
        for text in found:
            address = literal_address(text)
            why = "an address that is not an IP" if address is None else non_public(address, loopback_ok=self.local_api)
            if why:
                raise _private_address(host, f"{why}, {text}", request_id)


def _private_address(host: str, why: str, request_id: str | None) -> DownloadError:
    return DownloadError(
        f"Refused to download a result from {shorten(host, 80)}: it points to {why}, not to RunComfy's "
        "servers", request_id=request_id,
    )


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port or {"http": 80, "https": 443}.get(parts.scheme)


async def download_image(
    http: httpx.AsyncClient, url: str, policy: DownloadPolicy, *, request_id: str | None = None,
    proxy: str | None = None,
) -> bytes:
    """Fetch one result file into memory, enforcing ``policy`` at every hop.

    ``DownloadError.transient`` tells what may go better a moment later (a
    server error, a broken connection, a cut-off body) from what will not.
    ``proxy``: the proxy the download goes through, named (password hidden)
    when it is the one that failed.
    """
    through = f" through the proxy {proxy}" if proxy else ""
    current = policy.check_url(url, request_id)
    for _ in range(MAX_REDIRECTS + 1):
        if not proxy:  # through a proxy, the proxy resolves the name; only literal addresses are judged here
            await policy.check_address(current, request_id)
        try:
            async with http.stream("GET", current, follow_redirects=False) as response:
                if response.is_redirect:
                    target = urljoin(current, response.headers.get("location", ""))
                    if _origin(target) != _origin(current):
                        raise DownloadError(
                            f"Result download was redirected from {urlsplit(current).netloc} to "
                            f"{shorten(urlsplit(target).netloc, 80)}; refused",
                            request_id=request_id,
                        )
                    current = policy.check_url(target, request_id)
                    continue
                if proxy and response.status_code == 407:
                    raise DownloadError(
                        f"The proxy {proxy} refused the result download (HTTP 407 Proxy Authentication "
                        "Required); write its user name and password in the proxy URL",
                        request_id=request_id,
                    )
                if response.status_code != 200:
                    transient = response.status_code >= 500 or response.status_code in (408, 425, 429)
                    raise DownloadError(
                        f"Result download failed with HTTP {response.status_code}"
                        + ("" if transient else "; the file may have expired"),
                        request_id=request_id, transient=transient,
                    )
                data = await _read_capped(response, policy.max_bytes, request_id)
        except httpx.TimeoutException:
            raise DownloadError("Result download timed out", request_id=request_id, transient=True) from None
        except httpx.InvalidURL:
            raise DownloadError(
                f"RunComfy's answer names a result URL that cannot be fetched: {shorten(repr(current), 80)}",
                request_id=request_id,
            ) from None
        except (httpx.ProxyError, httpx.ConnectError) as exc:
            raise DownloadError(
                f"Result download could not connect{through} ({type(exc).__name__})", request_id=request_id,
                transient=True,
            ) from None
        except httpx.HTTPError as exc:
            raise DownloadError(
                f"Result download broke off{through} ({type(exc).__name__})", request_id=request_id, transient=True
            ) from None
        kind = formats.sniff(data)
        if kind is None:
            raise DownloadError(f"The result file is {_describe_non_image(data)}, not an image", request_id=request_id)
        if not kind.complete(data):
            raise CutFileError(
                f"The result file ({kind.name.upper()}, {len(data)} bytes) is cut off", request_id=request_id,
                length=len(data), sha256=hashlib.sha256(data).hexdigest(),
            )
        return data
    raise DownloadError(f"Result download was redirected more than {MAX_REDIRECTS} times", request_id=request_id)


async def _read_capped(response: httpx.Response, max_bytes: int, request_id: str | None) -> bytes:
    too_big = DownloadError(
        f"The result file is larger than {max_bytes // (1024 * 1024)} MiB; refused", request_id=request_id
    )
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise too_big
    buffer = bytearray()
    async for chunk in response.aiter_bytes():
        buffer += chunk
        if len(buffer) > max_bytes:
            raise too_big
    return bytes(buffer)
