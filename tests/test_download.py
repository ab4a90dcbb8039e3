"""client/transport/download.py and client/formats.py: which result files are fetched, and what they are."""

from __future__ import annotations

import pytest

from packloader import pack_import

download = pack_import("client.transport.download")
errors = pack_import("client.errors")
formats = pack_import("client.formats")


@pytest.mark.parametrize(
    "url, ok",
    [
        ("https://cdn.runcomfy.net/a.png", True),
        ("https://runcomfy.net/a.png", True),
        ("https://cdn.runcomfy.com/a.png", True),
        ("https://evil-runcomfy.com/a.png", False),
        ("http://cdn.runcomfy.com/a.png", False),
        ("https://model-api.example/a.png", True),
        ("https://files.partner.example/a.png", True),
        ("https://evil-runcomfy.net/a.png", False),
        ("https://runcomfy.net.evil.example/a.png", False),
        ("http://cdn.runcomfy.net/a.png", False),
        ("file:///etc/passwd", False),
        ("https://127.0.0.1/a.png", False),
    ],
)
def test_download_hosts(url, ok):
    policy = download.DownloadPolicy(api_host="model-api.example", extra_hosts=("*.partner.example",))
    if ok:
        assert policy.check_url(url) == url
    else:
        with pytest.raises(errors.DownloadError):
            policy.check_url(url)


def test_sniffing_recognises_images_only():
    assert formats.sniff(b"\x89PNG\r\n\x1a\n....").mime == "image/png"
    assert formats.sniff(b"\xff\xd8\xff\xe0").mime == "image/jpeg"
    assert formats.sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ").mime == "image/webp"
    assert formats.sniff(b"<!doctype html><html>") is None  # named "an HTML page" in the error: test_jobs
