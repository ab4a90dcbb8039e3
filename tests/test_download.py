"""client/transport/download.py and client/formats.py: which result files are fetched, and what they are."""

from __future__ import annotations

import pytest

from packloader import pack_import

addresses = pack_import("client.transport.addresses")
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


# ---------------------------------------------------------------- addresses (issue 14)
# A trusted name proves nothing about where it points; literal and resolved
# addresses must be public. The resolver is injected: no test needs a network.

PUBLIC = "104.18.32.7"


def resolving_to(*addresses, calls=None):
    async def resolve(host, port):
        if calls is not None:
            calls.append((host, port))
        if not addresses:
            raise OSError(f"{host} does not resolve")
        return list(addresses)
    return resolve


@pytest.mark.parametrize(
    "host, words",
    [
        ("127.0.0.1", "loopback"),
        ("[::1]", "loopback"),
        ("[::ffff:127.0.0.1]", "loopback"),
        ("10.0.0.5", "private"),
        ("192.168.1.20", "private"),
        ("[fd00::7]", "private"),
        ("169.254.169.254", "link-local"),
        ("[fe80::1]", "link-local"),
        ("0.0.0.0", "private or reserved"),
        ("100.64.0.1", "non-public"),
    ],
)
def test_literal_non_public_addresses_are_refused_even_when_listed(host, words):
    bare = host.strip("[]")
    policy = download.DownloadPolicy(api_host="model-api.example", extra_hosts=(bare,))
    with pytest.raises(errors.DownloadError, match=words):
        policy.check_url(f"https://{host}/a.png", request_id="req-9")


def test_a_listed_public_address_is_fetched():
    policy = download.DownloadPolicy(api_host="model-api.example", extra_hosts=(PUBLIC,))
    assert policy.check_url(f"https://{PUBLIC}/a.png") == f"https://{PUBLIC}/a.png"


@pytest.mark.parametrize("host", ["localhost", "files.localhost", "LOCALHOST."])
@pytest.mark.anyio
async def test_names_of_this_machine_are_refused_beside_a_remote_api(host):
    calls = []
    policy = download.DownloadPolicy(api_host="model-api.example", extra_hosts=(host.lower().rstrip("."),),
                                     resolver=resolving_to(PUBLIC, calls=calls))
    with pytest.raises(errors.DownloadError, match="loopback"):
        policy.check_url(f"https://{host}/a.png")
    with pytest.raises(errors.DownloadError, match="plain http"):
        policy.check_url(f"http://{host}/a.png")
    assert calls == []  # judged by the name, never resolved


@pytest.mark.parametrize(
    "addresses, words",
    [
        (("127.0.0.1",), "loopback address .*127.0.0.1"),
        (("10.1.2.3",), "private or reserved address, 10.1.2.3"),
        (("169.254.169.254",), "link-local"),
        (("fe80::1%eth0",), "link-local"),
        (("::ffff:192.168.0.9",), "private"),
        ((PUBLIC, "192.168.0.9"), "192.168.0.9"),  # one bad address among good ones is enough
    ],
)
@pytest.mark.anyio
async def test_runcomfy_names_that_resolve_to_non_public_addresses_are_refused(addresses, words):
    calls = []
    policy = download.DownloadPolicy(api_host="model-api.example", resolver=resolving_to(*addresses, calls=calls))
    url = policy.check_url("https://cdn.runcomfy.com/a.png")  # the name itself is trusted
    with pytest.raises(errors.DownloadError, match=words) as caught:
        await policy.check_address(url, request_id="req-7")
    assert "req-7" in str(caught.value) and "RunComfy's servers" in str(caught.value)
    assert calls == [("cdn.runcomfy.com", 443)]


@pytest.mark.anyio
async def test_public_and_unresolvable_names_are_left_to_the_connection():
    for resolver in (resolving_to(PUBLIC, "2606:4700::6812:2007"), resolving_to()):
        policy = download.DownloadPolicy(api_host="model-api.example", resolver=resolver)
        await policy.check_address("https://files.runcomfy.net:8443/a.png")


@pytest.mark.anyio
async def test_the_api_host_and_a_local_simulator_keep_their_files():
    calls = []
    remote = download.DownloadPolicy(api_host="gateway.corp", extra_hosts=(), resolver=resolving_to("10.0.0.8", calls=calls))
    await remote.check_address(remote.check_url("https://gateway.corp/files/a.png"))  # the token goes there already
    assert calls == []
    local = download.DownloadPolicy(api_host="127.0.0.1", extra_hosts=("localhost", "10.0.0.9"),
                                    resolver=resolving_to("127.0.0.1"))
    assert local.check_url("http://localhost:8189/files/a.png")
    assert local.check_url("http://127.0.0.1:8189/files/a.png")
    with pytest.raises(errors.DownloadError, match="private"):
        local.check_url("https://10.0.0.9/a.png")  # loopback beside a simulator, never the local network


@pytest.mark.anyio
async def test_the_system_resolver_answers_for_localhost_without_a_network():
    found = await addresses.system_resolver("localhost", 443)
    assert found and all(addresses.literal_address(text).is_loopback for text in found)
