"""Request and account fingerprints: what makes two runs "the same" for reuse."""

from __future__ import annotations

import base64
import copy
import secrets
import subprocess
import sys

import pytest

from packloader import PACK_ROOT, pack_import

fingerprint = pack_import("client.ledger.fingerprint")
config = pack_import("client.config.settings")
schemas = pack_import("client.model.schemas")

EDIT = "google/nano-banana-2/edit"
PNG_A = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
PNG_B = PNG_A[:-1] + b"\x01"  # one byte differs


def _uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _body(**changes) -> dict:
    body = {
        "prompt": "a lighthouse at dusk",
        "image_urls": [_uri(PNG_A), "https://example.com/ref.jpg"],
        "num_images": 1,
        "seed": 42,
        "aspect_ratio": "16:9",
        "resolution": "1K",
        "output_format": "png",
    }
    body.update(changes)
    return body


def test_same_inputs_same_fingerprint_whatever_the_key_order():
    body = _body()
    reordered = dict(reversed(list(copy.deepcopy(body).items())))
    assert list(reordered) != list(body)
    first = fingerprint.request_fingerprint(EDIT, body)
    assert first == fingerprint.request_fingerprint(EDIT, reordered)
    assert len(first) == 64 and int(first, 16) >= 0


@pytest.mark.parametrize(
    "change",
    [
        {"seed": 43},
        {"seed": 42.0},  # differs on the wire, so differs here
        {"prompt": "a lighthouse at dawn"},
        {"num_images": 2},
        {"aspect_ratio": "1:1"},
        {"resolution": "2K"},
        {"output_format": "jpeg"},
        {"image_urls": [_uri(PNG_A), "https://example.com/other.jpg"]},
        {"image_urls": ["https://example.com/ref.jpg", _uri(PNG_A)]},  # order matters
        {"image_urls": [_uri(PNG_B), "https://example.com/ref.jpg"]},  # one image byte
        {"extra_field": None},
    ],
    ids=lambda change: ",".join(f"{k}={str(v)[:20]}" for k, v in change.items()),
)
def test_any_field_or_image_byte_changes_the_fingerprint(change):
    assert fingerprint.request_fingerprint(EDIT, _body(**change)) != fingerprint.request_fingerprint(EDIT, _body())


def test_model_id_is_part_of_the_fingerprint():
    body = _body()
    assert fingerprint.request_fingerprint(EDIT, body) != fingerprint.request_fingerprint(
        "google/nano-banana-2/text-to-image", body
    )


def test_inline_images_count_by_their_bytes_not_their_base64_text():
    wrapped = base64.encodebytes(PNG_A).decode("ascii")  # same bytes, line-wrapped base64
    assert "\n" in wrapped
    plain = _body()
    rewrapped = _body(image_urls=["data:image/png;base64," + wrapped, "https://example.com/ref.jpg"])
    assert fingerprint.request_fingerprint(EDIT, plain) == fingerprint.request_fingerprint(EDIT, rewrapped)


def test_an_inline_image_counts_as_the_same_bytes_sent_as_a_data_uri():
    body = _body()
    inline = _body(image_urls=[schemas.InlineImage(PNG_A, "image/png"), "https://example.com/ref.jpg"])
    assert fingerprint.request_fingerprint(EDIT, inline) == fingerprint.request_fingerprint(EDIT, body)
    other = _body(image_urls=[schemas.InlineImage(PNG_B, "image/png"), "https://example.com/ref.jpg"])
    assert fingerprint.request_fingerprint(EDIT, other) != fingerprint.request_fingerprint(EDIT, body)


def test_text_to_image_body_without_image_urls():
    body = {"prompt": "x", "seed": 1}
    assert fingerprint.request_fingerprint("m", body) != fingerprint.request_fingerprint("m", {**body, "seed": 2})


def test_account_fingerprint_hides_the_token_and_separates_accounts():
    token = secrets.token_urlsafe(32)  # generated: no token, not even a fake one, in a fixture
    first = fingerprint.account_fingerprint("https://model-api.runcomfy.net", token)
    assert token[:8] not in first
    assert first == fingerprint.account_fingerprint("https://model-api.runcomfy.net/", token)
    assert first != fingerprint.account_fingerprint("https://model-api.runcomfy.net", token + "x")
    assert first != fingerprint.account_fingerprint("http://127.0.0.1:8000", token)
    with pytest.raises(ValueError):
        fingerprint.account_fingerprint("https://model-api.runcomfy.net", "")


def test_account_fingerprint_is_stable_across_processes():
    """Unlike Settings.account_fingerprint (salted per process), a new process gets the same value."""
    token, base = secrets.token_urlsafe(32), "https://model-api.runcomfy.net"
    script = (
        "import sys\n"
        f"sys.path.insert(0, {str(PACK_ROOT / 'tests')!r})\n"
        "from packloader import pack_import\n"
        "print(pack_import('client.ledger.fingerprint').account_fingerprint(sys.argv[1], sys.stdin.read()))\n"
    )
    other_process = subprocess.run(
        [sys.executable, "-c", script, base], input=token, capture_output=True, text=True, check=True
    )
    assert other_process.stdout.strip() == fingerprint.account_fingerprint(base, token)
    salted = config.Settings(base_url=base, token=token).account_fingerprint()
    assert salted != fingerprint.account_fingerprint(base, token)
