"""Which outbound proxy each call goes through, and how to name it without its password.

Many users reach RunComfy only through an HTTP(S) proxy. Two sources, the
pack's config file first:

- ``"proxy"`` in the config file (also set from Settings > RunComfy): one
  proxy for every call of the pack, whatever the environment says;
- else the standard variables, read as httpx reads them: ``HTTPS_PROXY``,
  ``HTTP_PROXY``, ``ALL_PROXY`` (lower-case names win over upper-case ones),
  and ``NO_PROXY`` for the hosts that are reached directly.

The client is built with ``trust_env=False`` and these rules as explicit
mounts, so nothing else of the environment (``.netrc`` credentials, say)
slips into a request. A proxy URL may carry ``user:password@``; the password
is a secret like the token: registered for scrubbing, shown as ``***``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Mapping
from urllib.parse import urlsplit

import httpx

from ..config.settings import Settings, check_proxy_url

__all__ = ["ProxySetup", "describe_proxy"]

_SCHEMES = ("http", "https", "all")


def describe_proxy(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``: safe for errors and the editor."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()


@dataclass(frozen=True)
class ProxySetup:
    """The proxy rules of one client: ``by_scheme`` ('http'/'https'/'all' -> URL),
    ``direct_hosts`` (NO_PROXY entries) and where they came from (``source``)."""

    by_scheme: tuple[tuple[str, str], ...] = ()
    direct_hosts: tuple[str, ...] = ()
    source: str = "none"

    @classmethod
    def from_settings(cls, settings: Settings) -> "ProxySetup":
        """The config file's proxy if set, else the environment's variables."""
        if settings.proxy:
            return cls(by_scheme=(("all", settings.proxy),), source="the RunComfy settings (config file)")
        return cls.from_environment(dict(settings.proxy_environment))

    @classmethod
    def from_environment(cls, variables: Mapping[str, str]) -> "ProxySetup":
        """``variables``: lower-case names (``https_proxy``, ``no_proxy`` ...) to values."""
        no_proxy = [host.strip() for host in variables.get("no_proxy", "").split(",") if host.strip()]
        if "*" in no_proxy:
            return cls(source="the environment (NO_PROXY=*)")
        found = []
        for scheme in _SCHEMES:
            value = variables.get(f"{scheme}_proxy", "").strip()
            if value:
                url = value if "://" in value else f"http://{value}"
                found.append((scheme, check_proxy_url(url, f"{scheme.upper()}_PROXY")))
        if not found:
            return cls()
        names = ", ".join(f"{scheme.upper()}_PROXY" for scheme, _ in found)
        return cls(by_scheme=tuple(found), direct_hosts=tuple(no_proxy), source=f"the environment ({names})")

    @property
    def active(self) -> bool:
        return bool(self.by_scheme)

    def for_url(self, url: str) -> str | None:
        """The proxy a request to ``url`` goes through (None: direct), as httpx's mounts decide."""
        if not self.by_scheme:
            return None
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if any(_bypasses(entry, parts.scheme, host) for entry in self.direct_hosts):
            return None
        proxies = dict(self.by_scheme)
        return proxies.get(parts.scheme) or proxies.get("all")

    def name_for(self, url: str) -> str | None:
        """The proxy of ``url`` as errors name it: password hidden, and where it was set."""
        proxy = self.for_url(url)
        return f"{describe_proxy(proxy)} (set in {self.source})" if proxy else None

    def mounts(self, limits: httpx.Limits) -> dict[str, httpx.AsyncBaseTransport | None]:
        """httpx mounts for these rules: a NO_PROXY host maps to None (the direct transport)."""
        if not self.by_scheme:
            return {}
        mounts: dict[str, httpx.AsyncBaseTransport | None] = {
            f"{scheme}://": httpx.AsyncHTTPTransport(proxy=httpx.Proxy(url), limits=limits, trust_env=False)
            for scheme, url in self.by_scheme
        }
        for entry in self.direct_hosts:
            mounts[_no_proxy_pattern(entry)] = None
        return mounts


def _no_proxy_pattern(entry: str) -> str:
    """One NO_PROXY entry as an httpx mount pattern (curl's reading, as httpx has it)."""
    if "://" in entry:
        return entry
    if _is_ip(entry.split("/")[0]):
        return f"all://[{entry}]" if ":" in entry else f"all://{entry}"
    if entry.lower() == "localhost":
        return f"all://{entry}"
    return f"all://*{entry}"


def _bypasses(entry: str, scheme: str, host: str) -> bool:
    """Whether NO_PROXY ``entry`` sends a request to ``host`` direct (the patterns above, matched)."""
    entry = entry.lower()
    if "://" in entry:
        entry_scheme, _, entry = entry.partition("://")
        if entry_scheme not in ("all", scheme):
            return False
        entry = entry.split(":")[0] if not entry.startswith("[") else entry
        if not entry:
            return True
    entry = entry.strip("[]")
    if _is_ip(entry.split("/")[0]) or entry == "localhost":
        return host.strip("[]") == entry
    if entry.startswith("."):
        return host.endswith(entry)
    return host == entry or host.endswith("." + entry)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
