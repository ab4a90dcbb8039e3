"""Input images of an edit request: inline data URIs and fetched URLs.

Data URIs are decoded while the submit is answered, so a broken one is a 422
on ``image_urls[i]``, as a schema-validating backend would answer. URLs are
fetched later, by the job, like RunComfy's backend does; a failure there makes
the job fail with an error that names the URL. The simulator must never touch
the real network, so only loopback hosts are fetched: anything else fails the
job without a connection being attempted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import http.client
import io
import ipaddress
import re
import warnings
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from PIL import Image, UnidentifiedImageError

MAX_FETCH_BYTES = 50 * 1000 * 1000  # "images <= 50 MB" on RunComfy's model pages
FETCH_TIMEOUT_SECONDS = 10.0
MAX_REDIRECTS = 3
# RFC 2397: the scheme, the media type and ";base64" are case-insensitive.
_DATA_URI = re.compile(r"^data:image/([A-Za-z0-9.+-]+);base64,(.*)$", re.DOTALL | re.IGNORECASE)
_OPAQUE_FORMATS = ("heic", "heif")  # accepted by the real model, not decodable by Pillow here


def is_loopback_host(host: str | None) -> bool:
    """localhost or a loopback address: the only hosts the simulator ever connects to."""
    if not host:
        return False
    try:
        return host.lower() == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class InputError(ValueError):
    """An input image is unusable; ``str()`` is the message for the client."""


@dataclass(frozen=True)
class InputImage:
    """One entry of ``image_urls``: either decoded bytes or a URL to fetch later."""

    index: int
    url: str | None
    data: bytes | None
    size: tuple[int, int] | None
    digest: str

    @property
    def field(self) -> str:
        return f"image_urls[{self.index}]"


def inspect_image(data: bytes, declared: str | None = None) -> tuple[int, int] | None:
    """Fully decode ``data`` and return its size; raise ``InputError`` if it is no image.

    HEIC/HEIF is accepted without decoding (size unknown, None) when the bytes
    look like an ISO-BMFF file, because the real model accepts it and Pillow
    cannot read it without a plugin.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                return image.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(f"has too many pixels (limit {Image.MAX_IMAGE_PIXELS} pixels)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        if (declared or "").lower() in _OPAQUE_FORMATS and data[4:8] == b"ftyp":
            return None
        raise InputError(f"is not a decodable image ({type(exc).__name__})") from None


def decode_data_uri(index: int, uri: str) -> InputImage:
    """Decode one ``data:image/...;base64,`` URI (strict base64, a real image)."""
    match = _DATA_URI.match(uri)
    if not match:
        raise InputError("is not a data:image/<type>;base64,<data> URI")
    try:
        data = base64.b64decode(match.group(2), validate=True)
    except (binascii.Error, ValueError):
        raise InputError("has invalid base64 data") from None
    if not data:
        raise InputError("is an empty image")
    size = inspect_image(data, match.group(1))
    return InputImage(index, None, data, size, hashlib.sha256(data).hexdigest())


def parse_image_urls(urls: list[str]) -> tuple[list[InputImage], list[tuple[str, str]]]:
    """Decode every data URI now and keep URLs for later.

    Returns the inputs and a list of (field, message) problems.
    """
    images: list[InputImage] = []
    problems: list[tuple[str, str]] = []
    for index, value in enumerate(urls):
        if value[:5].lower() == "data:":
            try:
                images.append(decode_data_uri(index, value))
            except InputError as exc:
                problems.append((f"image_urls[{index}]", str(exc)))
        else:
            digest = hashlib.sha256(value.encode("utf-8")).hexdigest()
            images.append(InputImage(index, value, None, None, digest))
    return images, problems


class FetchError(Exception):
    """A URL input could not be fetched; ``str()`` says why, ``status`` if one came."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def fetch(url: str, *, timeout: float = FETCH_TIMEOUT_SECONDS, max_bytes: int = MAX_FETCH_BYTES) -> tuple[bytes, int]:
    """GET ``url`` from a loopback host and return (body, HTTP status).

    Redirects are followed only while they stay on loopback. No proxy settings
    are consulted (``http.client`` ignores them), so nothing leaves the host.
    """
    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchError("not an http(s) URL")
        if not is_loopback_host(parts.hostname):
            raise FetchError(
                f"host {parts.hostname} is not reachable from the simulator "
                "(it only fetches loopback URLs and never touches the real network)"
            )
        host = "127.0.0.1" if parts.hostname.lower() == "localhost" else parts.hostname
        connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        connection = connection_class(host, parts.port, timeout=timeout)
        try:
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            connection.request("GET", target, headers={"User-Agent": "runcomfy-simulator/1", "Host": parts.netloc})
            response = connection.getresponse()
            if 300 <= response.status < 400 and response.getheader("Location"):
                url = urljoin(url, response.getheader("Location", ""))
                response.read(65536)
                continue
            if response.status != 200:
                raise FetchError(f"HTTP {response.status}", response.status)
            body = response.read(max_bytes + 1)
            if len(body) > max_bytes:
                raise FetchError(f"larger than {max_bytes} bytes", response.status)
            return body, response.status
        except (OSError, http.client.HTTPException) as exc:
            raise FetchError(f"connection failed ({type(exc).__name__})") from None
        finally:
            connection.close()
    raise FetchError("too many redirects")
