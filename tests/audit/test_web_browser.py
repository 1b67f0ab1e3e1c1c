"""The review UI in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright).

The server runs in-process (uvicorn in a thread) on 127.0.0.1 and a free port; sample data is built
with the store API. Without chromium or playwright these tests skip, except under CI, where they fail.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest
from web_helpers import (
    IMG_PAYLOAD,
    SCRIPT_PAYLOAD,
    LiveServer,
    make_store,
    pair_sample,
    payload_sample,
    point_sample,
    verdict_marker,
)

from judge.audit import AuditStore
from judge.audit._web_review import shown_order
from judge.audit._web_security import SESSION_COOKIE

pytestmark = pytest.mark.browser

# Debian's package; JUDGELOOP_CHROMIUM points elsewhere (another distribution's path).
CHROMIUM = os.environ.get("JUDGELOOP_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
SHOTS = Path(__file__).resolve().parents[2] / "runs" / "screenshots"


def _require_browser() -> None:
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(f"{CHROMIUM} (apt-get install -y chromium, or `make setup`)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install playwright==1.64.1, in the dev extra)")
    if missing:
        message = "browser tests need " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message)  # a CI machine must run them, not skip them
        pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def sign_in(browser: Any, server: LiveServer, store: AuditStore, name: str) -> tuple[Any, Any]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.goto(f"{server.base}/login?token={store.add_reviewer(name)}")
    page.wait_for_url(f"{server.base}/review")
    return ctx, page


def sample_on(page: Any) -> str:
    return page.get_attribute("main > div.layout", "data-sample")


def test_one_time_login_url_becomes_an_httponly_session(browser: Any, tmp_path: Path) -> None:
    store = make_store(tmp_path / "a.sqlite", [pair_sample(0)])
    with LiveServer(store.path) as server:
        token = store.add_reviewer("alice")
        url = f"{server.base}/login?token={token}"
        ctx = browser.new_context()
        page = ctx.new_page()
        page.goto(url)
        page.wait_for_url(f"{server.base}/review")
        assert token not in page.url and "token" not in page.url
        assert "Question 0" in page.content()
        (cookie,) = [c for c in ctx.cookies() if c["name"] == SESSION_COOKIE]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and token not in cookie["value"]
        assert page.evaluate("document.cookie") == ""  # script cannot read the session
        # The same URL again, in another browser: refused.
        other = browser.new_context().new_page()
        response = other.goto(url)
        assert response.status == 401 and "already used" in other.inner_text("#message")
        assert not [c for c in other.context.cookies() if c["name"] == SESSION_COOKIE]
        ctx.close()
        other.context.close()


def test_a_page_without_a_session_is_refused(browser: Any, tmp_path: Path) -> None:
    store = make_store(tmp_path / "a.sqlite", [pair_sample(0)])
    with LiveServer(store.path) as server:
        page = browser.new_context().new_page()
        for path in ("/review", "/reveal/s-pair-0", "/"):
            response = page.goto(server.base + path)
            assert response.status == 401 and page.inner_text("h1") == "Sign in"
            assert "Question 0" not in page.content() and verdict_marker("s-pair-0") not in page.content()
        page.context.close()


def test_label_a_queue_with_the_keyboard_verdict_revealed_only_after(browser: Any, tmp_path: Path) -> None:
    store = make_store(tmp_path / "a.sqlite", [pair_sample(i) for i in range(3)] + [point_sample(i) for i in range(2)])
    SHOTS.mkdir(parents=True, exist_ok=True)
    with LiveServer(store.path) as server:
        ctx, page = sign_in(browser, server, store, "alice")
        # Skip the first sample with s, then bring it back with u.
        first = sample_on(page)
        with page.expect_navigation():
            page.keyboard.press("s")
        assert sample_on(page) != first
        with page.expect_navigation():
            page.keyboard.press("u")
        assert sample_on(page) == first
        expected: dict[str, Any] = {}
        changed: dict[str, Any] = {}
        shot_pair = shot_point = shot_point_reveal = False
        for step in range(5):
            sid = sample_on(page)
            assert verdict_marker(sid) not in page.content()  # blind: not in the HTML at all
            assert page.inner_text("#progress-text") == f"{step} / 5"
            sample = store.sample(sid)
            if sample.kind == "pairwise":
                if not shot_pair:
                    page.screenshot(path=str(SHOTS / "review_pair.png"), full_page=True)
                key = "ab"[step % 2]
                if step == 0:  # a note, typed after n; Escape leaves the note box
                    page.keyboard.press("n")
                    page.keyboard.type("a/b/t typed here must not label")
                    page.keyboard.press("Escape")
                order = shown_order(sample, "alice")
                expected[sid] = {"AB": {"a": "a", "b": "b"}, "BA": {"a": "b", "b": "a"}}[order][key]  # type: ignore[index]
                page.keyboard.press(key)
            else:
                if not shot_point:
                    page.screenshot(path=str(SHOTS / "review_point.png"), full_page=True)
                    shot_point = True
                page.keyboard.press("4")  # helpfulness, then accuracy: the form sends itself
                page.keyboard.press("2")
                expected[sid] = {"helpfulness": 4, "accuracy": 2}
            page.wait_for_url(f"**/reveal/{sid}")
            assert verdict_marker(sid) in page.inner_text("#verdict")
            if sample.kind == "pairwise" and not shot_pair:
                page.screenshot(path=str(SHOTS / "reveal_pair.png"), full_page=True)
                shot_pair = True
            elif sample.kind == "pointwise" and not shot_point_reveal:
                page.screenshot(path=str(SHOTS / "reveal_point.png"), full_page=True)
                shot_point_reveal = True
            if step == 1:  # change the label after the reveal: t for a tie
                with page.expect_navigation():
                    page.keyboard.press("t")
                changed[sid] = "tie"
            else:
                with page.expect_navigation():
                    page.keyboard.press("Enter")
        page.wait_for_selector("#done")
        assert page.inner_text("#progress-text") == "5 / 5"
        ctx.close()
    before = {lb.sample_id: lb for lb in store.current_labels(reviewer="alice", phase="before_reveal")}
    assert {sid: lb.value for sid, lb in before.items()} == expected
    assert [lb.note for lb in before.values() if lb.note] == ["a/b/t typed here must not label"]
    after = {lb.sample_id: lb.value for lb in store.current_labels(reviewer="alice", phase="after_reveal")}
    assert after == changed


def test_script_payloads_are_shown_as_text_and_never_run(browser: Any, tmp_path: Path) -> None:
    store = make_store(tmp_path / "a.sqlite", [payload_sample()])
    with LiveServer(store.path) as server:
        ctx, page = sign_in(browser, server, store, "alice")
        shown = {page.inner_text("#response-first"), page.inner_text("#response-second")}
        assert shown == {SCRIPT_PAYLOAD, IMG_PAYLOAD}
        assert page.inner_text("#prompt").endswith(SCRIPT_PAYLOAD)
        assert page.locator("main script, main img").count() == 0
        with page.expect_navigation():
            page.keyboard.press("t")
        assert SCRIPT_PAYLOAD in page.inner_text("#rationale") and IMG_PAYLOAD in page.inner_text("#rationale")
        assert page.locator("main script, main img").count() == 0
        assert page.evaluate("window.__pwned") is None
        assert page.title() != "pwned" and "judgeloop" in page.title()
        ctx.close()


def test_forged_posts_are_refused(browser: Any, tmp_path: Path) -> None:
    store = make_store(tmp_path / "a.sqlite", [pair_sample(i) for i in range(2)])
    with LiveServer(store.path) as server:
        ctx, page = sign_in(browser, server, store, "alice")
        sid = sample_on(page)
        csrf = page.get_attribute("#label-form input[name=csrf]", "value")
        # 1. Our own form without its CSRF token.
        page.evaluate("document.querySelector('#label-form input[name=csrf]').remove()")
        with page.expect_navigation() as nav:
            page.keyboard.press("a")
        assert nav.value.status == 403 and "security token" in page.inner_text("#message")
        # 2. A right token with a wrong Origin.
        r = ctx.request.post(f"{server.base}/label", form={"csrf": csrf, "sample_id": sid, "choice": "first"},
                             headers={"Origin": "http://evil.example"}, max_redirects=0)
        assert r.status == 403
        # 3. Another local service (same site, other port) posting a form, even with a leaked token:
        #    the browser sends the cookie (same site) and the Origin check refuses it.
        # 4. Another site: the SameSite=Strict cookie is not sent at all.
        for origin, status, token in ((f"http://127.0.0.1:{server.port + 1}", 403, csrf), ("http://evil.test", 401, "")):
            attacker = ctx.new_page()
            attacker.route(f"{origin}/**", lambda route: route.fulfill(content_type="text/html", body=(
                f'<form method="post" action="{server.base}/label"><input name="csrf" value="{token}">'
                f'<input name="sample_id" value="{sid}"><input name="choice" value="first">'
                '<button id="go">go</button></form>')))
            attacker.goto(f"{origin}/")
            with attacker.expect_navigation() as nav:
                attacker.click("#go")
            assert nav.value.status == status, origin
            attacker.close()
        assert store.labels() == []
        # The real form still works.
        page.goto(f"{server.base}/review")
        with page.expect_navigation():
            page.keyboard.press("a")
        assert len(store.labels()) == 1
        ctx.close()


async def _label_all(browser: Any, base: str, token: str, key: str) -> int:
    ctx = await browser.new_context()
    page = await ctx.new_page()
    await page.goto(f"{base}/login?token={token}")
    await page.wait_for_url(f"{base}/review")
    n = 0
    while await page.locator("#done").count() == 0:
        async with page.expect_navigation():
            await page.keyboard.press(key)
        n += 1
        async with page.expect_navigation():
            await page.keyboard.press("Enter")
    await ctx.close()
    return n


def test_two_reviewers_labelling_at_once_lose_nothing(tmp_path: Path) -> None:
    _require_browser()
    store = make_store(tmp_path / "a.sqlite", [pair_sample(i) for i in range(12)])
    overlap = 0.5
    tokens = {"alice": store.add_reviewer("alice"), "bob": store.add_reviewer("bob")}
    counts: dict[str, int] = {}
    errors: list[BaseException] = []

    async def main(base: str) -> None:
        from playwright.async_api import async_playwright

        async with async_playwright() as p:
            b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            results = await asyncio.gather(_label_all(b, base, tokens["alice"], "a"), _label_all(b, base, tokens["bob"], "b"))
            counts.update(zip(tokens, results))
            await b.close()

    def run(base: str) -> None:
        try:
            asyncio.run(main(base))
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    with LiveServer(store.path, overlap=overlap) as server:
        # Its own thread: the async API must not share a thread with the sync fixtures' event loop.
        t = threading.Thread(target=run, args=(server.base,))
        t.start()
        t.join(timeout=300)
    assert not errors, errors
    rows = store.labels()
    assert len(rows) == counts["alice"] + counts["bob"]  # every press stored, none twice
    assert counts["alice"] > 0 and counts["bob"] > 0
    per_sample: dict[str, list[str]] = {}
    for lb in store.current_labels(phase="before_reveal"):
        per_sample.setdefault(lb.sample_id, []).append(lb.reviewer)
    wanted = {s.sample_id: AuditStore.reviews_wanted(s.sample_id, overlap) for s in store.samples()}
    # Every sample got its reviews. (Two reviewers opening the same single-review sample at the
    # same moment may both label it: both labels are kept, none is refused.)
    assert all(len(per_sample.get(sid, [])) >= n for sid, n in wanted.items())
    assert any(len(per_sample[sid]) == 2 for sid, n in wanted.items() if n == 2)  # the overlap went to both
    assert all(len(set(who)) == len(who) for who in per_sample.values())  # nobody labelled a sample twice
