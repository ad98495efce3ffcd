"""The interactive docs work offline: every asset they load is served by this server."""

from __future__ import annotations

import re

from tests.api.conftest import Api


async def test_docs_and_their_assets_are_served_locally(api: Api) -> None:
    for page, kind in (("/docs", "swagger"), ("/redoc", "redoc")):
        r = await api.http.get(page)
        assert r.status_code == 200, r.text
        assert kind in r.text.lower()
        assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", r.text), r.text
        assets = re.findall(r'(?:src|href)="([^"]+)"', r.text)
        assert assets, r.text
        for asset in assets:
            assert asset.startswith("/"), asset
            served = await api.http.get(asset)
            assert served.status_code == 200, asset
            assert len(served.content) > 1000, asset
        assert "url: '/openapi.json'" in r.text or 'spec-url="/openapi.json"' in r.text
    js = await api.http.get("/docs-assets/swagger-ui-bundle.js")
    assert "javascript" in js.headers["content-type"]
    assert "SwaggerUIBundle" in js.text
    css = await api.http.get("/docs-assets/swagger-ui.css")
    assert css.headers["content-type"].startswith("text/css")
    assert (await api.http.get("/openapi.json")).json()["openapi"].startswith("3.")
    assert (await api.http.get("/docs/oauth2-redirect")).status_code == 200
