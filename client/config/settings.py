"""Where the API token, base URL and extra download hosts come from.

The token is looked up in the environment first (``RUNCOMFY_API_TOKEN``, then
the older ``RUNCOMFY_TOKEN``, as RunComfy's own tools do), then in a JSON file
kept in the user's config directory. It is never a node input, so it can never
be saved into a workflow or an image's metadata.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import json
import math
import os
import secrets
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit

from ..errors import ConfigurationError, MissingTokenError, register_secret

DEFAULT_BASE_URL = "https://model-api.runcomfy.net"
TOKEN_VARIABLES = ("RUNCOMFY_API_TOKEN", "RUNCOMFY_TOKEN")
BASE_URL_VARIABLE = "RUNCOMFY_API_BASE_URL"
CONFIG_PATH_VARIABLE = "RUNCOMFY_CONFIG"
PACK_ROOT = Path(__file__).resolve().parents[2]
# Fresh each process: a fingerprint is comparable within one ComfyUI session
# (all a cache needs) but links nothing across machines or restarts.
_FINGERPRINT_SALT = secrets.token_bytes(16)


def default_config_path(env: Mapping[str, str] = os.environ) -> Path:
    """The per-user config file: outside any repo and any workflow."""
    if env.get(CONFIG_PATH_VARIABLE):
        return Path(env[CONFIG_PATH_VARIABLE]).expanduser()
    if sys.platform == "win32" and env.get("APPDATA"):
        return Path(env["APPDATA"]) / "runcomfy" / "config.json"
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "runcomfy" / "config.json"


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
        raise ConfigurationError(f"{source} = {url!r} is not an http(s) URL; use {DEFAULT_BASE_URL} or remove it")
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
            where = self.config_path or default_config_path()
            raise MissingTokenError(
                "No RunComfy API token found: paste one in ComfyUI's Settings > RunComfy, set the "
                "RUNCOMFY_API_TOKEN environment variable (for ComfyUI: before starting it), or put "
                f'{{"api_token": "..."}} in {where} (create a token in your RunComfy profile)'
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
    if not path.is_file():
        return {}
    resolved = path.resolve()
    if resolved.is_relative_to(PACK_ROOT):
        raise ConfigurationError(
            f"Config file {path} is inside the node pack folder, where it could be shared "
            f"or committed; move it to {default_config_path()}"
        )
    if os.name == "posix" and resolved.stat().st_mode & 0o002:
        raise ConfigurationError(
            f"Config file {path} can be changed by any user of this machine, who could send your token "
            f"elsewhere; run: chmod 600 {path}"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))  # tolerate a byte-order mark
    except (OSError, ValueError) as exc:
        raise ConfigurationError(
            f"Cannot read config file {path}: {type(exc).__name__}; fix or delete it"
        ) from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"Config file {path} must hold a JSON object")
    return data


def load_settings(env: Mapping[str, str] = os.environ) -> Settings:
    """Resolve settings from the environment and the per-user config file."""
    config_path = default_config_path(env)
    file_values = _read_config_file(config_path)

    token, source = None, "none"
    for name in TOKEN_VARIABLES:
        if env.get(name, "").strip():
            token, source = _checked_token(env[name], name), name
            break
    file_token = file_values.get("api_token")
    if token is None and file_token not in (None, ""):
        where = f'"api_token" in {config_path}'
        if not isinstance(file_token, str):
            raise ConfigurationError(f"{where} must be text: the token in double quotes")
        token, source = _checked_token(file_token, where), f"config file {config_path}"

    if env.get(BASE_URL_VARIABLE):
        base_url = check_base_url(env[BASE_URL_VARIABLE])
    elif "base_url" in file_values:
        base_url = check_base_url(file_values["base_url"], f'"base_url" in {config_path}')
    else:
        base_url = DEFAULT_BASE_URL
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
        result_store_bytes=int(store_gib * 1024**3),
        token=token,
        token_source=source,
        download_hosts=tuple(h.strip().lower() for h in hosts if h.strip()),
        config_path=config_path,
        **read_preferences(file_values, config_path),
    )


# -- preferences, token text and writing the config file -------------------
# Written by the editor's RunComfy settings panel (routes/), read by the nodes.

PREFERENCE_DEFAULTS: Mapping[str, object] = {"reuse_results": True, "daily_spend_limit_usd": None}
MAX_TOKEN_LENGTH = 512


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


def check_token_text(token: str) -> str:
    """The token without surrounding whitespace, or an error naming what is wrong (never the token).

    Checked before anything is sent or stored: a token pasted with a line
    break or a typographic character inside would otherwise only fail as an
    unreadable HTTP header or a rejection from RunComfy.
    """
    if not isinstance(token, str):
        raise ConfigurationError("The API token must be text")
    token = token.strip()
    if not token:
        raise ConfigurationError("The API token is empty: paste the token from your RunComfy profile (API Keys)")
    if len(token) > MAX_TOKEN_LENGTH:
        raise ConfigurationError(
            f"The API token is too long ({len(token)} characters, at most {MAX_TOKEN_LENGTH}): paste only the token"
        )
    for position, character in enumerate(token, start=1):
        if character.isspace():
            raise ConfigurationError(
                f"The API token has a space or line break inside (character {position}): paste it in one piece"
            )
        if not "!" <= character <= "~":
            raise ConfigurationError(
                f"The API token has a character that is not plain ASCII (character {position}): "
                "copy it again from your RunComfy profile"
            )
    return token


def _checked_token(token: str, source: str) -> str:
    """``check_token_text``, its error saying where the token came from."""
    try:
        return check_token_text(token)
    except ConfigurationError as error:
        raise ConfigurationError(f"{error} (the token in {source})") from None


def read_config_values(env: Mapping[str, str] = os.environ) -> tuple[Path, dict]:
    """The per-user config file's path and its values ({} when it does not exist)."""
    path = default_config_path(env)
    return path, _read_config_file(path)


def update_config_file(
    changes: Mapping[str, object], remove: tuple[str, ...] = (), env: Mapping[str, str] = os.environ
) -> Path:
    """Set ``changes`` and drop ``remove`` in the per-user config file, keeping every other key.

    The file holds the token, so it is written owner-only (0600) and
    atomically: a crash or a concurrent reader never sees half a file, and a
    file that cannot be read is left alone rather than overwritten.
    """
    path = default_config_path(env)
    target = path.resolve() if path.is_symlink() else path
    if target.resolve().is_relative_to(PACK_ROOT):
        raise ConfigurationError(
            f"Config file {path} is inside the node pack folder, where it could be shared "
            "or committed; set RUNCOMFY_CONFIG to a path outside it"
        )
    values = {**_read_config_file(target), **changes}
    for key in remove:
        values.pop(key, None)
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=".config-", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                os.chmod(temporary, 0o600)
                json.dump(values, handle, indent=2)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
    except OSError as exc:
        raise ConfigurationError(f"Cannot write config file {path}: {type(exc).__name__}") from None
    return path
