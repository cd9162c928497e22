"""Real-browser fixtures: one studio per session, Debian's Chromium driven by Playwright, screenshots on failure."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# relabel_tabs marks every tab label with an invisible character once the page-load handler has returned.
LOADED_JS = ("() => [...document.querySelectorAll('[role=tab]')]"
             ".some(t => t.textContent.includes('\\u200b') || t.textContent.includes('\\u200c'))")


def chromium_path() -> str:
    found = os.environ.get("STUDIO_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("Chromium is not installed: `apt-get install -y chromium` (the README's test command does it)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def studio_server(tmp_path_factory: pytest.TempPathFactory, tiny_model_cache: Path) -> Iterator[tuple[str, object]]:
    """The real app on a free port over a fresh data directory: (url, Studio)."""
    import app as studio_app

    root = tmp_path_factory.mktemp("browser-studio") / "data"
    shutil.copytree(tiny_model_cache, root / "models")
    port = free_port()
    blocks, studio = studio_app.launch(
        studio_app.parse_args(["--port", str(port), "--data-dir", str(root)]), block=False)
    yield f"http://127.0.0.1:{port}/", studio
    blocks.close()
    studio.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


def opened(browser: object, url: str, locale: str, first_tab: str, request: pytest.FixtureRequest
           ) -> Iterator[object]:
    """A fresh page on the studio in a browser of ``locale``, once the page-load handler has returned; saved as
    test-artifacts/<test>.png when the test fails."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale=locale)
    tab = context.new_page()
    tab.goto(url)
    tab.get_by_role("tab", name=first_tab).wait_for(timeout=30_000)
    # The page-load handler sets the language switch; a click before it returns would be undone by it.
    tab.wait_for_function(LOADED_JS, timeout=30_000)
    yield tab
    failed = getattr(request.node, "report_call", None)
    if failed is not None and failed.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        tab.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()


@pytest.fixture
def page(browser: object, studio_server: tuple[str, object], request: pytest.FixtureRequest) -> Iterator[object]:
    """A fresh page on the studio in an English browser."""
    yield from opened(browser, studio_server[0], "en-US", "Datasets", request)


@pytest.fixture
def zh_page(browser: object, studio_server: tuple[str, object], request: pytest.FixtureRequest) -> Iterator[object]:
    """A fresh page on the studio in a browser whose language is Simplified Chinese."""
    yield from opened(browser, studio_server[0], "zh-CN", "数据集", request)
