"""Browser tests: the real app (API + web pages) served by uvicorn in the test's event loop,
against the session's Temporal dev server, a real worker and the session's store; headless
Chromium (Debian's ``chromium``) driven by Playwright.

Screenshots of the main pages are taken on every run; with ``CONVEYOR_SCREENSHOTS=DIR`` (the
README's are made with ``CONVEYOR_SCREENSHOTS=docs/screenshots``) they are kept in DIR.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, async_playwright
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from activities.llm import LlmSettings
from conveyor.api import ApiDeps
from conveyor.client import ConveyorClient
from conveyor.server import create_app
from conveyor.starting import background_starts
from conveyor.web.server import free_port, start_server
from store.db import make_engine, migrate, session_factory, transaction
from store.users import create_key, upsert_user
from tests.support.fake_openai import FakeOpenAI
from worker import build_worker

CHROMIUM = os.environ.get("CONVEYOR_CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
VIEWPORT: ViewportSize = {"width": 1360, "height": 900}


@dataclass
class WebApp:
    base_url: str
    conveyor: ConveyorClient
    sessions: sessionmaker[Session]
    keys: dict[str, str]
    """user name -> API key: root (admin), vic (viewer), ana (writer, labeler), bo (reviewer)."""


@pytest.fixture(scope="module")
def web_store(tmp_path_factory: pytest.TempPathFactory) -> sessionmaker[Session]:
    """A store of the browser tests' own: the pages list every task a user may work on, so
    tasks other tests left in the session's store would crowd them."""
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('web-store') / 'conveyor.db'}")
    migrate(engine)
    return session_factory(engine)


@pytest.fixture(scope="module")
async def web(
    client: Client,
    fake_llm: FakeOpenAI,
    web_store: sessionmaker[Session],
) -> AsyncIterator[WebApp]:
    """The whole app on a free port, with a worker on a fresh task queue behind it."""
    store_sessions = web_store
    task_queue = f"web-{uuid.uuid4().hex[:8]}"
    worker = build_worker(
        client,
        task_queue,
        sessions=store_sessions,
        llm=LlmSettings(api_base=fake_llm.base_url, api_key="test-key"),
    )
    conveyor = ConveyorClient(client, task_queue, update_timeout=20)
    suffix = uuid.uuid4().hex[:6]
    users = {
        "root": ("admin", []),
        "vic": ("viewer", []),
        "ana": ("contributor", ["writer", "annotator"]),
        "bo": ("contributor", ["reviewer"]),
    }
    keys: dict[str, str] = {}
    with transaction(store_sessions) as session:
        for name, (role, roles) in users.items():
            upsert_user(session, name, role, roles)
            keys[name] = create_key(session, name, f"browser tests {suffix}")
    app = create_app(ApiDeps(conveyor=conveyor, sessions=store_sessions))
    port = free_port()
    # As worker.py: the background starter runs next to the worker (lazy start's queued tasks).
    async with worker, background_starts(conveyor.starter, store_sessions, poll_seconds=0.1):
        server, serving = await start_server(app, port=port)
        try:
            yield WebApp(f"http://127.0.0.1:{port}", conveyor, store_sessions, keys)
        finally:
            server.should_exit = True
            await serving


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: the browser tests need Debian's chromium "
            "(apt-get install -y chromium), or set CONVEYOR_CHROMIUM to another Chromium binary"
        )
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield launched
        finally:
            await launched.close()


SignIn = Callable[[str], Awaitable[Page]]


@pytest.fixture
async def sign_in(browser: Browser, web: WebApp) -> AsyncIterator[SignIn]:
    """``await sign_in("ana")``: a page in a fresh browser context, signed in through the
    sign-in page with that user's key."""
    contexts: list[BrowserContext] = []

    async def open_as(name: str) -> Page:
        context = await browser.new_context(
            base_url=web.base_url, viewport=VIEWPORT, accept_downloads=True
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = await context.new_page()
        await page.goto("/signin")
        await page.fill("#key", web.keys[name])
        await page.click("button[type=submit]")
        await page.wait_for_load_state()
        return page

    yield open_as
    for context in contexts:
        await context.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Path]]:
    """``path = screenshots("work-queue")``: where to save a page's screenshot."""
    keep = os.environ.get("CONVEYOR_SCREENSHOTS")
    scratch = tmp_path_factory.mktemp("screenshots")

    def path(name: str) -> Path:
        return scratch / f"{name}.png"

    yield path
    if keep:
        target = (ROOT / keep) if not Path(keep).is_absolute() else Path(keep)
        target.mkdir(parents=True, exist_ok=True)
        for shot in scratch.glob("*.png"):
            shutil.copy(shot, target / shot.name)
