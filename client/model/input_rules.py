"""What the pack refuses before paying, beyond what the model pages' schemas say.

Each rule catches an input that RunComfy would accept, bill, and then fail on
(or that the model cannot use): a prompt that is blank once invisible
characters are gone, a seed Gemini cannot take, an image URL RunComfy's
servers cannot fetch. Each returns a problem (worded to follow the field's
name) or None.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import unicodedata
from urllib.parse import urlsplit

from ..formats import sniff
from ..limits import MAX_PROMPT_CHARS, SEED_MAX, SEED_MIN

# Host names that only mean something on the user's own machine or network.
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".lan", ".home.arpa")
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


def prompt_problem(text: str) -> str | None:
    """Blank (spaces, control and zero-width characters only), NULs, broken text, or too long."""
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        return "contains broken characters (unpaired surrogates): retype or paste it again"
    if "\0" in text:
        return "contains NUL characters: remove them"
    if not any(unicodedata.category(ch)[0] not in "CZ" for ch in text):
        return "is empty: describe the image you want"
    if len(text) > MAX_PROMPT_CHARS:
        return f"is {len(text)} characters long, over the {MAX_PROMPT_CHARS} the pack sends: shorten it"
    return None


def seed_problem(value: int) -> str | None:
    if not SEED_MIN <= value <= SEED_MAX:
        return f"must be between {SEED_MIN} and {SEED_MAX} (Gemini takes a 32-bit seed), got {value}"
    return None


def data_uri_problem(uri: str) -> str | None:
    """Why a ``data:image/...;base64,`` URI given as text would be refused: bad base64,
    no bytes, or bytes that are no image of a format the model takes inline."""
    try:
        data = base64.b64decode(uri.partition(",")[2], validate=True)
    except (binascii.Error, ValueError):
        return "has invalid base64 data"
    if not data:
        return "holds no image data"
    kind = sniff(data)
    if kind is None or not kind.inline:
        return "does not hold a PNG, JPEG, WebP, HEIC or HEIF image"
    return None


def image_url_problem(url: str, *, local_api: bool = False) -> str | None:
    """Why RunComfy's servers could not fetch this hosted image URL, if they could not.

    ``local_api``: the API itself runs on this machine (a simulator, a test
    server), so loopback addresses are reachable for it.
    """
    if any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in url):
        return "contains spaces or control characters: encode them (a space is %20)"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as error:
        return f"is not a valid URL ({error})"
    if parts.scheme.lower() not in ("http", "https"):
        return "is neither an http(s) URL nor a data:image URI"
    host = (parts.hostname or "").rstrip(".")
    if not host:
        return "has no host name"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        if address.is_global or (local_api and address.is_loopback):
            return None
        return f"points at {host}, a private, loopback or reserved address RunComfy's servers cannot reach"
    try:
        labels = host.encode("idna").decode("ascii").split(".")
    except UnicodeError:
        labels = []
    if len(labels) < 2 or not all(_HOST_LABEL.match(label) for label in labels):
        return f"has no real host name ({host!r}): RunComfy's servers fetch it over the internet"
    if not local_api and (host == "localhost" or host.endswith(_LOCAL_SUFFIXES)):
        return f"points at {host}, a name only your own network knows: host the image publicly"
    return None
