"""Outbound proxies, tested through a real forwarding proxy (``forward_proxy.py``) in front of the simulator.

Every request of a node's run (submit, polls, result, file downloads) and the
editor's price/token lookup must go through the proxy: the proxy's log lists
them, and the simulator's log shows each arriving from the proxy's address
(127.0.0.2) with its ``Via`` header. The config file's ``proxy`` wins over
the environment's ``HTTP_PROXY``; ``NO_PROXY`` sends a host direct. A proxy
that is unreachable or refuses is one line naming it, never its password.
"""

from __future__ import annotations

import json
import socket

import pytest

from forward_proxy import VIA, ForwardProxy
from helpers import T2I, jobs_for, widget_defaults
from packloader import load_pack, pack_import

pack = load_pack()
errors = pack_import("client.errors")
settings_module = pack_import("client.config.settings")
proxy_module = pack_import("client.transport.proxy")
model_info = pack_import("client.pricing.model_info")
api_module = pack_import("client.transport.api")

TextToImage = pack.NODE_CLASS_MAPPINGS["RunComfyNanoBanana2TextToImage"]
pytestmark = pytest.mark.anyio
SMALL = {"prompt": "a lighthouse", "resolution": "0.5K"}
PASSWORD = "pr0xy-s3cret-word"


@pytest.fixture
def proxy():
    with ForwardProxy() as running:
        yield running


def write_config(monkeypatch, tmp_path, **values) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(values))
    path.chmod(0o600)
    monkeypatch.setenv("RUNCOMFY_CONFIG", str(path))


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def assert_all_came_through(simulator, proxy) -> None:
    records = [r for r in simulator.requests() if r.route != "input_fetch"]
    assert records, "the simulator saw nothing"
    assert all(r.peer == "127.0.0.2" and r.via == VIA for r in records), [(r.route, r.peer, r.via) for r in records]
    proxied = [(p.method, p.url.split(str(simulator.port), 1)[1].split("?")[0]) for p in proxy.requests]
    # The same requests, one for one (files download side by side, so not in a fixed order).
    assert sorted(proxied) == sorted((r.method, r.path) for r in records)


async def test_every_request_of_a_node_run_goes_through_the_configured_proxy(account, proxy, monkeypatch, tmp_path):
    write_config(monkeypatch, tmp_path, proxy=proxy.url)
    inputs = {**widget_defaults(TextToImage), **SMALL, "num_images": 2}
    images, info = await TextToImage().generate(unique_id="3", **inputs)
    assert images.shape[0] == 2
    routes = [r.route for r in account.requests()]
    assert routes.count("submit") == 1 and routes.count("file") == 2 and "status" in routes and "result" in routes
    assert_all_came_through(account, proxy)
    print(f"\nproxy log: {len(proxy.requests)} requests, e.g. {proxy.requests[0].method} {proxy.requests[0].url}")


async def test_the_price_and_token_lookup_goes_through_the_proxy_too(account, proxy, monkeypatch, tmp_path):
    write_config(monkeypatch, tmp_path, proxy=proxy.url)
    lookup = await model_info.fetch_model_info(settings_module.load_settings(), T2I)
    assert lookup.state == model_info.OK
    assert [r.route for r in account.requests()] == ["model"]
    assert_all_came_through(account, proxy)


async def test_any_client_the_pack_makes_without_settings_uses_the_users_proxy(account, proxy, monkeypatch, tmp_path):
    """The account calls (sign-in, balance) make their own client: it must still go through the proxy."""
    write_config(monkeypatch, tmp_path, proxy=proxy.url)
    async with api_module.new_http_client() as http:
        response = await http.get(f"{account.url}/v1/models/{T2I}")
    assert response.status_code in (200, 401)
    assert_all_came_through(account, proxy)


async def test_http_proxy_from_the_environment_is_used(account, proxy, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.delenv("http_proxy", raising=False)
    runner = jobs_for(settings_module.load_settings())
    async with runner.client:
        await runner.run(T2I, SMALL)
    assert_all_came_through(account, proxy)


async def test_no_proxy_sends_the_simulator_direct(account, proxy, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "example.com, 127.0.0.1")
    runner = jobs_for(settings_module.load_settings())
    async with runner.client:
        await runner.run(T2I, SMALL)
    assert proxy.requests == []
    assert all(r.peer == "127.0.0.1" and r.via is None for r in account.requests())


async def test_the_config_file_proxy_wins_over_the_environment(account, proxy, monkeypatch, tmp_path):
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port()}")  # would fail if used
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # the environment's exceptions go with the environment
    write_config(monkeypatch, tmp_path, proxy=proxy.url)
    runner = jobs_for(settings_module.load_settings())
    async with runner.client:
        await runner.run(T2I, SMALL)
    assert_all_came_through(account, proxy)


async def test_an_unreachable_proxy_is_one_line_naming_it_without_its_password(account, monkeypatch, tmp_path):
    port = closed_port()
    write_config(monkeypatch, tmp_path, proxy=f"http://alice:{PASSWORD}@127.0.0.1:{port}")
    runner = jobs_for(settings_module.load_settings())
    async with runner.client:
        with pytest.raises(errors.SubmitNotSentError) as caught:
            await runner.run(T2I, SMALL)
    message = str(caught.value)
    assert f"proxy http://alice:***@127.0.0.1:{port}" in message and "cannot be reached" in message
    assert PASSWORD not in message and "\n" not in message and "Nothing was submitted" in message
    assert account.requests() == []


@pytest.mark.parametrize("given", [None, ("alice", "wrong-password")])
async def test_a_refusing_proxy_is_one_line_naming_it_and_nothing_reaches_runcomfy(account, monkeypatch, tmp_path, given):
    with ForwardProxy(credentials=("alice", PASSWORD)) as strict:
        host = strict.url.removeprefix("http://")
        url = f"http://{given[0]}:{given[1]}@{host}" if given else strict.url
        write_config(monkeypatch, tmp_path, proxy=url)
        runner = jobs_for(settings_module.load_settings())
        async with runner.client:
            with pytest.raises(errors.ProxyRefusedError) as caught:
                await runner.run(T2I, SMALL)
        assert [p.status for p in strict.requests] == [407]
    message = str(caught.value)
    assert "HTTP 407" in message and host in message and "Nothing reached RunComfy" in message
    assert PASSWORD not in message and "wrong-password" not in message
    assert account.requests() == []


async def test_the_right_credentials_get_through(account, monkeypatch, tmp_path):
    with ForwardProxy(credentials=("alice", PASSWORD)) as strict:
        write_config(monkeypatch, tmp_path, proxy=strict.url.replace("http://", f"http://alice:{PASSWORD}@"))
        runner = jobs_for(settings_module.load_settings())
        async with runner.client:
            await runner.run(T2I, SMALL)
        assert strict.requests and all(p.authorized and p.status == 200 for p in strict.requests)
        assert_all_came_through(account, strict)


@pytest.mark.parametrize("credentials, status, error", [
    (None, "HTTP 403 Forbidden", "SubmitNotSentError"),
    (("alice", PASSWORD), "HTTP 407 Proxy Authentication Required", "ProxyRefusedError"),
])
async def test_a_refused_https_tunnel_is_named_and_nothing_was_sent(monkeypatch, tmp_path, credentials, status, error):
    with ForwardProxy(credentials=credentials) as tunnel_refuser:
        write_config(monkeypatch, tmp_path, proxy=tunnel_refuser.url)
        settings = settings_module.load_settings({"RUNCOMFY_CONFIG": str(tmp_path / "config.json"),
                                                  "RUNCOMFY_API_TOKEN": "test-token-1234"})
        assert settings.base_url.startswith("https://")  # the real API: a CONNECT tunnel through the proxy
        runner = jobs_for(settings)
        async with runner.client:
            with pytest.raises(getattr(errors, error)) as caught:
                await runner.run(T2I, SMALL)
        assert {p.method for p in tunnel_refuser.requests} == {"CONNECT"}
        assert all(p.url == "model-api.runcomfy.net:443" for p in tunnel_refuser.requests)
    message = str(caught.value)
    assert status in message and tunnel_refuser.url in message and "\n" not in message


# -- reading the settings -------------------------------------------------------------------


def test_the_proxy_password_never_shows_in_settings_or_errors(tmp_path):
    env = {"RUNCOMFY_CONFIG": str(tmp_path / "c.json")}
    (tmp_path / "c.json").write_text(json.dumps({"proxy": f"http://bob:{PASSWORD}@proxy.internal:3128"}))
    settings = settings_module.load_settings(env)
    assert PASSWORD not in repr(settings)
    setup = proxy_module.ProxySetup.from_settings(settings)
    assert setup.name_for("https://model-api.runcomfy.net/v1") == (
        "http://bob:***@proxy.internal:3128 (set in the RunComfy settings (config file))")
    assert errors.redact(f"failed via {PASSWORD}") == "failed via ***"


@pytest.mark.parametrize("value", ["socks5://proxy:1080", "proxy:3128/path", "http://", "ftp://x", 42])
def test_a_proxy_the_pack_cannot_use_is_refused_with_what_to_write(tmp_path, value):
    (tmp_path / "c.json").write_text(json.dumps({"proxy": value}))
    with pytest.raises(errors.ConfigurationError, match='"proxy" in .* (is not a proxy|must be text)'):
        settings_module.load_settings({"RUNCOMFY_CONFIG": str(tmp_path / "c.json")})


def test_environment_variables_are_read_as_httpx_reads_them():
    env = {"HTTPS_PROXY": "upper.example:1", "https_proxy": "http://lower.example:2", "HTTP_PROXY": "h.example:3",
           "NO_PROXY": ".internal,localhost", "RUNCOMFY_API_TOKEN": "x"}
    setup = proxy_module.ProxySetup.from_environment(dict(settings_module.proxy_variables(env)))
    assert setup.for_url("https://model-api.runcomfy.net/v1") == "http://lower.example:2"  # lower case wins
    assert setup.for_url("http://cdn.example/x.png") == "http://h.example:3"  # no scheme: http:// assumed
    assert setup.for_url("https://a.internal/x") is None and setup.for_url("http://localhost:8188/") is None
    assert "HTTPS_PROXY" in setup.source and "HTTP_PROXY" in setup.source
    star = proxy_module.ProxySetup.from_environment({"https_proxy": "http://p:1", "no_proxy": "*"})
    assert not star.active and star.for_url("https://model-api.runcomfy.net") is None
