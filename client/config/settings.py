"""Where the token, the three base URLs, the proxy and the preferences come from.

The token's order of precedence is ``account.sources``' (the environment, then
RunComfy's sign-in file ``token.json``, then the pack's old ``api_token``);
every path is ``paths``'. The token is never a node input, so it can never be
saved into a workflow or an image's metadata.

RunComfy answers on three bases (runcomfy-api.md, "Base and auth"):

| base | default | override |
|---|---|---|
| Model API (submit, status, result, cancel, model info) | ``https://model-api.runcomfy.net`` | ``RUNCOMFY_API_BASE_URL`` (no ``/v1``), or RunComfy CLI's ``RUNCOMFY_MODEL_API_BASE`` (with ``/v1``), or ``"base_url"`` in the config file |
| www (who am I, device sign-in) | ``https://www.runcomfy.com`` | ``RUNCOMFY_WWW_BASE_URL`` |
| api (balance) | ``https://api.runcomfy.net`` | ``RUNCOMFY_ACCOUNT_BASE_URL`` |

With the Model API moved elsewhere (a simulator, a gateway) and a www or api
base not set, that base is unknown (None) rather than RunComfy's: a token
meant for another service is never sent to runcomfy.com.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import math
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit

from ..account.sources import NONE, TOKEN_VARIABLES, TokenChoice, find_token
from ..account.token_text import MAX_TOKEN_LENGTH, check_token_text
from ..errors import ConfigurationError, MissingTokenError, register_secret
from .paths import CONFIG_PATH_VARIABLE, PACK_ROOT, default_config_path, refuse_inside_pack, token_file_path
from .private_file import read_json_object, write_private_file

__all__ = [
    "ACCOUNT_BASE_VARIABLE", "BASE_URL_VARIABLE", "CLI_BASE_VARIABLE", "CONFIG_PATH_VARIABLE",
    "DEFAULT_ACCOUNT_BASE_URL", "DEFAULT_BASE_URL", "DEFAULT_WWW_BASE_URL", "MAX_TOKEN_LENGTH", "PACK_ROOT",
    "PREFERENCE_DEFAULTS", "Settings", "TOKEN_VARIABLES", "WWW_BASE_VARIABLE", "check_base_url",
    "check_preference", "check_proxy_url", "check_token_text", "default_config_path", "is_loopback_host",
    "load_settings", "proxy_variables", "read_config_values", "read_preferences", "update_config_file",
]

DEFAULT_BASE_URL = "https://model-api.runcomfy.net"
DEFAULT_WWW_BASE_URL = "https://www.runcomfy.com"
DEFAULT_ACCOUNT_BASE_URL = "https://api.runcomfy.net"
BASE_URL_VARIABLE = "RUNCOMFY_API_BASE_URL"
CLI_BASE_VARIABLE = "RUNCOMFY_MODEL_API_BASE"  # RunComfy CLI's name; its value ends in /v1
WWW_BASE_VARIABLE = "RUNCOMFY_WWW_BASE_URL"
ACCOUNT_BASE_VARIABLE = "RUNCOMFY_ACCOUNT_BASE_URL"
CONFIG_WHAT = "Config file"
# Fresh each process: a fingerprint is comparable within one ComfyUI session
# (all a cache needs) but links nothing across machines or restarts.
_FINGERPRINT_SALT = secrets.token_bytes(16)


def is_loopback_host(host: str | None) -> bool:
    """True for localhost and the loopback ranges, where plain http is acceptable."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_base_url(url: object, source: str = BASE_URL_VARIABLE) -> str:
    """Refuse base URLs that would send the token in clear text over a network.

    ``source`` names where the URL came from (the variable, or the config file's key).
    """
    try:
        parts = urlsplit(url.strip()) if isinstance(url, str) else None
        host = parts.hostname if parts else None
    except ValueError:
        parts = host = None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not host:
        raise ConfigurationError(f"{source} = {url!r} is not an http(s) URL; use https://... or remove it")
    if parts.scheme.lower() == "http" and not is_loopback_host(host):
        raise ConfigurationError(
            f"{source} uses plain http to {host}, which would expose your API token; use https "
            "(plain http is only allowed on loopback)"
        )
    return url.strip().rstrip("/")


PROXY_SCHEMES = ("http", "https")  # what httpx speaks without extra packages (no SOCKS)


def check_proxy_url(url: object, source: str) -> str:
    """A proxy URL httpx can use, or a one-line error naming ``source`` (never the password).

    The URL's credentials are registered as secrets at once, so no later
    message can leak them.
    """
    text = url.strip() if isinstance(url, str) else ""
    try:
        parts = urlsplit(text)
        host, password = parts.hostname, parts.password
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        parts, host, password = None, None, None
    register_secret(password)
    if password:
        register_secret(text)
    if parts is None or parts.scheme.lower() not in PROXY_SCHEMES or not host or parts.path not in ("", "/") \
            or parts.query or parts.fragment:
        shown = "a proxy URL" if password else repr(text[:80])
        raise ConfigurationError(
            f"{source} = {shown} is not a proxy this pack can use: write http://host:port "
            "(or http://user:password@host:port; https:// for a TLS proxy; SOCKS is not supported)"
        )
    return text.rstrip("/")


def proxy_variables(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The ``*_proxy`` variables of ``env``, names lower-cased, a lower-case name winning
    over its upper-case twin (as urllib, and so httpx, read them)."""
    found: dict[str, str] = {}
    for lower_pass in (False, True):
        for name, value in env.items():
            lowered = name.lower()
            if not lowered.endswith("_proxy") or (name == lowered) != lower_pass:
                continue
            if value.strip():
                found[lowered] = value.strip()
            elif lower_pass:
                found.pop(lowered, None)
    return tuple(sorted(found.items()))


@dataclass(frozen=True)
class Settings:
    """Resolved configuration; ``token`` is kept out of ``repr``."""

    base_url: str = DEFAULT_BASE_URL
    token: str | None = field(default=None, repr=False)
    token_source: str = "none"
    """Where the token comes from, in words (``TokenChoice.describe``)."""
    token_kind: str = NONE
    """``environment``, ``cli_sign_in``, ``saved_here`` or ``none`` (``account.sources``)."""
    www_base_url: str | None = None
    """Who-am-I and the device sign-in; None: not known for this Model API, so not asked."""
    account_base_url: str | None = None
    """The balance; None: not known for this Model API, so not asked."""
    download_hosts: tuple[str, ...] = ()
    config_path: Path | None = None
    reuse_results: bool = True
    daily_spend_limit_usd: float | None = None
    result_store_bytes: int = 2 * 1024**3
    # The config file's "proxy" (wins), and the environment's *_proxy variables
    # as found at load time; both may hold a password, so neither is in repr.
    proxy: str | None = field(default=None, repr=False)
    proxy_environment: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        register_secret(self.token)

    def require_token(self) -> str:
        """The token, or a one-line error that says how to set one."""
        if not self.token:
            raise MissingTokenError(
                "No RunComfy API token found: sign in with RunComfy or paste a token in ComfyUI's Settings > "
                "RunComfy, run `runcomfy login` (or `python <pack folder> login`), or set RUNCOMFY_TOKEN or "
                "RUNCOMFY_API_TOKEN in the environment (for ComfyUI: before starting it); the sign-in file is "
                f"{token_file_path()}"
            )
        return self.token

    def account_fingerprint(self) -> str:
        """A short, salted, one-way hash of base URL + token.

        Lets ComfyUI re-run a node when the account changes. ComfyUI writes
        this value into saved PNG metadata, so it is keyed with a random
        per-process salt: nothing about the token can be learned from it.
        """
        message = f"{self.base_url}\0{self.token or ''}".encode()
        return hmac.new(_FINGERPRINT_SALT, message, hashlib.sha256).hexdigest()[:16]


def _read_config_file(path: Path) -> dict:
    if path.is_file():
        refuse_inside_pack(path, CONFIG_WHAT, f"move it to {default_config_path()}")
    return read_json_object(path, CONFIG_WHAT) or {}


def _base_url(env: Mapping[str, str], variable: str, default: str | None) -> str | None:
    return check_base_url(env[variable], variable) if env.get(variable, "").strip() else default


def choose_token(env: Mapping[str, str], values: Mapping[str, object], config_path: Path) -> TokenChoice:
    """The token and where it comes from; a conflict of the two variables is an error here."""
    choice = find_token(env, values, config_path)
    if choice.conflict:
        raise ConfigurationError(choice.conflict)
    return choice


def load_settings(env: Mapping[str, str] = os.environ) -> Settings:
    """Resolve settings from the environment, the sign-in file and the per-user config file."""
    config_path = default_config_path(env)
    file_values = _read_config_file(config_path)
    choice = choose_token(env, file_values, config_path)

    if env.get(BASE_URL_VARIABLE):
        base_url = check_base_url(env[BASE_URL_VARIABLE])
    elif env.get(CLI_BASE_VARIABLE, "").strip():
        base_url = check_base_url(env[CLI_BASE_VARIABLE], CLI_BASE_VARIABLE).removesuffix("/v1")
    elif "base_url" in file_values:
        base_url = check_base_url(file_values["base_url"], f'"base_url" in {config_path}')
    else:
        base_url = DEFAULT_BASE_URL
    runcomfy = base_url == DEFAULT_BASE_URL
    www_base_url = _base_url(env, WWW_BASE_VARIABLE, DEFAULT_WWW_BASE_URL if runcomfy else None)
    account_base_url = _base_url(env, ACCOUNT_BASE_VARIABLE, DEFAULT_ACCOUNT_BASE_URL if runcomfy else None)
    hosts = file_values.get("download_hosts") or []
    if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
        raise ConfigurationError(
            f'"download_hosts" in {config_path} must be a list of host names'
        )
    store_gib = file_values.get("result_store_gib", 2)
    if isinstance(store_gib, bool) or not isinstance(store_gib, (int, float)) or not 0 <= store_gib < 1e6:
        raise ConfigurationError(f'"result_store_gib" in {config_path} must be a number of GiB (0 keeps nothing)')
    proxy = file_values.get("proxy")
    if proxy is not None and not isinstance(proxy, str):
        raise ConfigurationError(f'"proxy" in {config_path} must be text: a URL such as "http://host:3128"')
    return Settings(
        proxy=check_proxy_url(proxy, f'"proxy" in {config_path}') if proxy and proxy.strip() else None,
        proxy_environment=proxy_variables(env),
        base_url=base_url,
        www_base_url=www_base_url,
        account_base_url=account_base_url,
        result_store_bytes=int(store_gib * 1024**3),
        token=choice.token,
        token_source=choice.describe(),
        token_kind=choice.kind,
        download_hosts=tuple(h.strip().lower() for h in hosts if h.strip()),
        config_path=config_path,
        **read_preferences(file_values, config_path),
    )


# -- preferences, token text and writing the config file -------------------
# Written by the editor's RunComfy settings panel (routes/), read by the nodes.

PREFERENCE_DEFAULTS: Mapping[str, object] = {"reuse_results": True, "daily_spend_limit_usd": None}


def check_preference(name: str, value: object, where: str = "") -> object:
    """A preference value of the right type, or a one-line error naming it (and ``where``)."""
    if name == "reuse_results":
        if not isinstance(value, bool):
            raise ConfigurationError(f'"reuse_results"{where} must be true or false')
        return value
    if name == "daily_spend_limit_usd":
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ConfigurationError(
                f'"daily_spend_limit_usd"{where} must be a positive number of US dollars, or null for no limit'
            )
        return float(value)
    raise ConfigurationError(f"Unknown preference {name!r}: the preferences are {', '.join(PREFERENCE_DEFAULTS)}")


def read_preferences(values: Mapping[str, object], path: Path) -> dict[str, object]:
    """The preferences in a config file's values, defaults for the missing ones."""
    return {
        name: check_preference(name, values[name], f" in {path}") if name in values else default
        for name, default in PREFERENCE_DEFAULTS.items()
    }


def read_config_values(env: Mapping[str, str] = os.environ) -> tuple[Path, dict]:
    """The per-user config file's path and its values ({} when it does not exist)."""
    path = default_config_path(env)
    return path, _read_config_file(path)


def update_config_file(
    changes: Mapping[str, object], remove: tuple[str, ...] = (), env: Mapping[str, str] = os.environ
) -> Path:
    """Set ``changes`` and drop ``remove`` in the per-user config file, keeping every other key.

    Owner-only and atomic (``private_file``); a file that cannot be read is
    left alone rather than overwritten.
    """
    path = default_config_path(env)
    target = path.resolve() if path.is_symlink() else path
    refuse_inside_pack(target, CONFIG_WHAT, f"set {CONFIG_PATH_VARIABLE} to a path outside it")
    values = {**_read_config_file(target), **changes}
    for key in remove:
        values.pop(key, None)
    write_private_file(path, json.dumps(values, indent=2) + "\n", CONFIG_WHAT)
    return path
