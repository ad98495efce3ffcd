"""Proxy headers (``X-Forwarded-Proto``, ``X-Forwarded-For``) are believed only from the proxies
``CONVEYOR_TRUSTED_PROXIES`` lists: by default not even from 127.0.0.1, so a local client cannot
pose as HTTPS. Served by real uvicorn servers, as ``starter.py dev`` and ``starter.py api`` do."""

from __future__ import annotations

import httpx
import pytest

from conveyor.api import ApiDeps
from conveyor.server import create_app, server_config
from conveyor.settings import Settings
from conveyor.web.server import free_port, start_server
from tests.api.conftest import Api


async def _sign_in_cookie(api: Api, trusted_proxies: list[str] | None) -> str:
    """The sign-in's Set-Cookie for the key, from a server on 127.0.0.1 told it is HTTPS."""
    app = create_app(ApiDeps(conveyor=api.conveyor, sessions=api.sessions, data_dir=api.data_dir))
    port = free_port()
    server, serving = await start_server(app, port=port, trusted_proxies=trusted_proxies)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            r = await http.post(
                "/signin",
                data={"key": api.keys["vera"]},
                headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"},
            )
        assert r.status_code == 303, r.text
        [cookie] = [c for c in r.headers.get_list("set-cookie") if c.startswith("conveyor_key=")]
        return cookie
    finally:
        server.should_exit = True
        await serving


async def test_forwarded_proto_from_localhost_is_not_believed_by_default(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CONVEYOR_TRUSTED_PROXIES", raising=False)
    cookie = await _sign_in_cookie(api, None)
    assert "secure" not in cookie.lower(), cookie


async def test_forwarded_proto_from_a_listed_proxy_is_believed(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_TRUSTED_PROXIES", "127.0.0.1")
    assert "secure" in (await _sign_in_cookie(api, None)).lower()
    # passed in, as the embedding program may
    monkeypatch.delenv("CONVEYOR_TRUSTED_PROXIES")
    assert "secure" in (await _sign_in_cookie(api, ["10.0.0.0/8", "127.0.0.1"])).lower()
    assert "secure" not in (await _sign_in_cookie(api, ["10.0.0.0/8"])).lower()


def test_the_setting_and_starter_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONVEYOR_TRUSTED_PROXIES", raising=False)
    assert Settings.from_env().uvicorn_proxy_options() == {"proxy_headers": False}
    config = server_config("127.0.0.1", 8000)
    assert config.proxy_headers is False
    monkeypatch.setenv("CONVEYOR_TRUSTED_PROXIES", " 10.1.2.3, 172.16.0.0/12 ,")
    assert Settings.from_env().trusted_proxies == ("10.1.2.3", "172.16.0.0/12")
    config = server_config("127.0.0.1", 8000)
    assert config.proxy_headers is True
    assert config.forwarded_allow_ips == ["10.1.2.3", "172.16.0.0/12"]
    monkeypatch.setenv("CONVEYOR_TRUSTED_PROXIES", "proxy.internal")
    with pytest.raises(ValueError, match=r"CONVEYOR_TRUSTED_PROXIES.*not an IP address"):
        Settings.from_env()
