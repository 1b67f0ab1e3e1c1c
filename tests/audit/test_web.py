"""The review UI over plain HTTP (Starlette's TestClient): sessions, CSRF, headers, blindness, labels."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from web_helpers import (
    IMG_PAYLOAD,
    SCRIPT_PAYLOAD,
    make_store,
    pair_sample,
    payload_sample,
    point_sample,
    verdict_marker,
)

from judge.audit import AuditStore
from judge.audit._web import create_app
from judge.audit._web_review import shown_order
from judge.audit._web_security import CSP, SESSION_COOKIE, SessionSigner

BASE = "http://127.0.0.1"
SAME_ORIGIN = {"Origin": BASE}
SECRET = b"s" * 32


@pytest.fixture
def store(tmp_path: Path) -> AuditStore:
    return make_store(tmp_path / "audit.sqlite", [pair_sample(i) for i in range(3)] + [point_sample(0)])


def client_for(store: AuditStore, overlap: float = 0.0) -> TestClient:
    return TestClient(create_app(store.path, overlap=overlap, secret=SECRET), base_url=BASE)


def signed_in(store: AuditStore, name: str = "alice", overlap: float = 0.0) -> TestClient:
    client = client_for(store, overlap)
    r = client.get(f"/login?token={store.add_reviewer(name)}", follow_redirects=False)
    assert r.status_code == 303, r.text
    return client


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]


def current_sample(html: str) -> str:
    return re.search(r'data-sample="([^"]+)"', html).group(1)  # type: ignore[union-attr]


def before_rows(store: AuditStore, reviewer: str = "alice") -> list:
    return [lb for lb in store.labels(reviewer=reviewer) if lb.phase == "before_reveal" and lb.undoes is None]


def test_every_response_carries_a_strict_csp_and_protective_headers(store: AuditStore) -> None:
    client = client_for(store)
    for r in (client.get("/login"), client.get("/review"), client.get("/static/review.js")):
        assert r.headers["content-security-policy"] == CSP
        assert "default-src 'self'" in CSP and "script-src 'self'" in CSP and "unsafe-inline" not in CSP
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "same-origin"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["cache-control"] == "no-store"
    # No inline script anywhere: the only script is the static file.
    page = signed_in(store).get("/review").text
    assert re.findall(r"<script[^>]*>", page) == ['<script src="/static/review.js" defer>']


def test_login_url_is_exchanged_for_a_strict_httponly_cookie_once(store: AuditStore) -> None:
    token = store.add_reviewer("alice")
    client = client_for(store)
    r = client.get(f"/login?token={token}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/signed-in"  # the token leaves the address bar
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert token not in cookie
    assert client.get("/review").status_code == 200
    # A second use of the same URL is refused, in a fresh browser as in the same one.
    again = client_for(store).get(f"/login?token={token}", follow_redirects=False)
    assert again.status_code == 401 and "already used" in again.text and "set-cookie" not in again.headers
    assert client_for(store).get("/login?token=not-a-token").status_code == 401


def test_two_sign_ins_racing_with_one_token_give_one_session(store: AuditStore) -> None:
    token = store.add_reviewer("alice")
    results: list[str | None] = []
    threads = [threading.Thread(target=lambda: results.append(AuditStore(store.path).redeem_token(token))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and results.count("alice") == 1 and results.count(None) == 7


def test_no_session_no_page(store: AuditStore) -> None:
    client = client_for(store)
    for path in ("/review", "/reveal/s-pair-0"):
        r = client.get(path)
        assert r.status_code == 401 and "Sign in" in r.text
        assert "Question 0" not in r.text and verdict_marker("s-pair-0") not in r.text
    # A forged cookie (signed with another secret) or a tampered one is no session either.
    _, good = SessionSigner(SECRET).issue("alice")
    _, forged = SessionSigner(b"x" * 32).issue("alice")
    payload, sig = good.split(".")
    for cookie, status in ((forged, 401), (payload + "." + sig[:-2] + "AA", 401), ("garbage", 401), (good, 200)):
        client.cookies.set(SESSION_COOKIE, cookie)
        assert client.get("/review").status_code == status, cookie
    client.cookies.clear()
    # And no state change without a session.
    r = client.post("/label", data={"sample_id": "s-pair-0", "choice": "first"}, headers=SAME_ORIGIN)
    assert r.status_code == 401 and store.labels() == []


def test_state_changes_need_the_csrf_token_and_our_origin(store: AuditStore) -> None:
    client = signed_in(store)
    page = client.get("/review").text
    form = {"csrf": csrf_of(page), "sample_id": current_sample(page), "phase": "before_reveal", "choice": "first"}
    refused = [
        ({k: v for k, v in form.items() if k != "csrf"}, SAME_ORIGIN),  # no token
        ({**form, "csrf": "A" * 43}, SAME_ORIGIN),  # a wrong token
        ({**form, "csrf": client_csrf_of_other_session(store)}, SAME_ORIGIN),  # another session's token
        (form, {"Origin": "http://evil.example"}),  # another site
        (form, {"Origin": "http://127.0.0.1:9999"}),  # another local service
        (form, {"Origin": "null"}),
        (form, {"Sec-Fetch-Site": "cross-site"}),
        (form, {"Sec-Fetch-Site": "same-site"}),
        (form, {}),  # neither header: not a page of ours
    ]
    for data, headers in refused:
        r = client.post("/label", data=data, headers=headers, follow_redirects=False)
        assert r.status_code == 403, (data, headers, r.status_code)
        assert store.labels() == []
    for path in ("/skip", "/undo", "/logout"):
        assert client.post(path, data={"sample_id": form["sample_id"]}, headers=SAME_ORIGIN).status_code == 403
    r = client.post("/label", data=form, headers={"Sec-Fetch-Site": "same-origin"}, follow_redirects=False)
    assert r.status_code == 303 and len(store.labels()) == 1


def client_csrf_of_other_session(store: AuditStore) -> str:
    return csrf_of(signed_in(store, "bob").get("/review").text)


def test_only_configured_hosts_are_served(store: AuditStore) -> None:
    client = client_for(store)
    assert client.get("/login", headers={"Host": "evil.example"}).status_code == 400
    assert client.get("/login", headers={"Host": "localhost:8765"}).status_code == 401  # allowed, just signed out


def test_request_bodies_are_bounded(store: AuditStore) -> None:
    client = signed_in(store)
    page = client.get("/review").text
    big = {"csrf": csrf_of(page), "sample_id": current_sample(page), "choice": "first", "note": "x" * 100_000}
    r = client.post("/label", data=big, headers=SAME_ORIGIN)
    assert r.status_code == 413 and store.labels() == []
    # A body that announces no length is counted as it streams.
    chunks = (b"note=" + b"x" * 10_000 for _ in range(10))
    r = client.post("/label", content=chunks, headers={**SAME_ORIGIN, "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413 and store.labels() == []


def test_verdict_is_absent_until_a_label_is_committed_then_revealed(store: AuditStore) -> None:
    client = signed_in(store)
    page = client.get("/review").text
    sid = current_sample(page)
    sample = store.sample(sid)
    assert sample.item.prompt in page  # type: ignore[union-attr]
    assert verdict_marker(sid) not in page and "p_a" not in page and "judge chose" not in page.lower()
    assert "Which response is more helpful" in page  # the rubric is shown
    assert client.get(f"/reveal/{sid}").status_code == 404  # no committing, no verdict
    r = client.post("/label", data={"csrf": csrf_of(page), "sample_id": sid, "phase": "before_reveal", "choice": "second"},
                    headers=SAME_ORIGIN, follow_redirects=False)
    assert r.headers["location"] == f"/reveal/{sid}"
    reveal = client.get(f"/reveal/{sid}").text
    assert verdict_marker(sid) in reveal and "The judge chose" in reveal
    # A skip is not a committed label: it reveals nothing.
    page = client.get("/review").text
    other = current_sample(page)
    client.post("/skip", data={"csrf": csrf_of(page), "sample_id": other}, headers=SAME_ORIGIN)
    assert client.get(f"/reveal/{other}").status_code == 404


def test_pair_order_is_drawn_per_reviewer_and_mapped_back_explicitly(tmp_path: Path) -> None:
    store = make_store(tmp_path / "a.sqlite", [pair_sample(i) for i in range(24)])
    orders = {r: [shown_order(s, r) for s in store.samples()] for r in ("alice", "bob")}
    assert set(orders["alice"]) == {"AB", "BA"} and orders["alice"] != orders["bob"]
    assert orders["alice"] == [shown_order(s, "alice") for s in store.samples()]  # deterministic
    client = signed_in(store)
    seen = {"AB": 0, "BA": 0}
    for _ in range(24):
        page = client.get("/review").text
        sample = store.sample(current_sample(page))
        order = shown_order(sample, "alice")
        first = sample.item.response_a if order == "AB" else sample.item.response_b  # type: ignore[union-attr]
        assert page.index(first) < page.index("Response B")  # the first shown sits under "Response A"
        client.post("/label", data={"csrf": csrf_of(page), "sample_id": sample.sample_id, "choice": "first"},
                    headers=SAME_ORIGIN)
        row = before_rows(store)[-1]
        assert row.shown_order == order and row.order_seed is not None
        assert row.value == ("a" if order == "AB" else "b")  # "first shown" in the item's own terms
        seen[order] += 1
    assert seen["AB"] > 0 and seen["BA"] > 0
    assert store.progress("alice") == (24, 24)


def test_pointwise_scores_are_validated_against_the_rubric(store: AuditStore) -> None:
    client = signed_in(store)
    sid = "s-point-0"
    csrf = csrf_of(client.get("/review").text)
    bad = [{"score.helpfulness": "6", "score.accuracy": "2"}, {"score.helpfulness": "4"}, {"score.helpfulness": "x", "score.accuracy": "1"}]
    for fields in bad:
        r = client.post("/label", data={"csrf": csrf, "sample_id": sid, **fields}, headers=SAME_ORIGIN)
        assert r.status_code == 400 and "score." in r.text
    assert store.labels() == []
    r = client.post("/label", data={"csrf": csrf, "sample_id": sid, "score.helpfulness": "5", "score.accuracy": "3", "note": " fine "},
                    headers=SAME_ORIGIN)
    assert r.status_code == 200
    (row,) = store.labels()
    assert row.value == {"helpfulness": 5, "accuracy": 3} and row.note == "fine" and row.shown_order is None
    reveal = client.get(f"/reveal/{sid}").text
    assert re.search(r"<td>helpfulness</td><td>5</td>\s*<td>4</td>", reveal)  # you 5, judge 4


def test_change_after_reveal_undo_and_skip_keep_an_append_only_history(store: AuditStore) -> None:
    client = signed_in(store)
    page = client.get("/review").text
    csrf, sid = csrf_of(page), current_sample(page)
    order = shown_order(store.sample(sid), "alice")
    first_item, second_item = ("a", "b") if order == "AB" else ("b", "a")
    client.post("/label", data={"csrf": csrf, "sample_id": sid, "choice": "first"}, headers=SAME_ORIGIN)
    # A replayed blind label does not replace the first one (it was given before the reveal).
    client.post("/label", data={"csrf": csrf, "sample_id": sid, "choice": "second"}, headers=SAME_ORIGIN)
    assert [r.value for r in store.labels()] == [first_item]
    # A blind label whose verdict was shown cannot be undone (a new one would be anchored).
    assert client.post("/undo", data={"csrf": csrf}, headers=SAME_ORIGIN).status_code == 409
    r = client.post("/label", data={"csrf": csrf, "sample_id": sid, "phase": "after_reveal", "choice": "second",
                                    "note": "missed the error"}, headers=SAME_ORIGIN, follow_redirects=False)
    assert r.headers["location"] == "/review"
    current = {lb.phase: lb.value for lb in store.current_labels(sample_id=sid, reviewer="alice")}
    assert current == {"before_reveal": first_item, "after_reveal": second_item}
    # Undo retracts the change (a new row) and returns to its reveal page.
    r = client.post("/undo", data={"csrf": csrf}, headers=SAME_ORIGIN, follow_redirects=False)
    assert r.headers["location"] == f"/reveal/{sid}"
    assert {lb.phase for lb in store.current_labels(sample_id=sid, reviewer="alice")} == {"before_reveal"}
    # Skip, then undo the skip: the sample comes back to the queue.
    nxt = current_sample(client.get("/review").text)
    client.post("/skip", data={"csrf": csrf, "sample_id": nxt, "note": "unsure"}, headers=SAME_ORIGIN)
    assert current_sample(client.get("/review").text) != nxt
    client.post("/undo", data={"csrf": csrf}, headers=SAME_ORIGIN)
    assert current_sample(client.get("/review").text) == nxt
    kinds = [("undo" if r.undoes else "skip" if r.skipped else r.phase) for r in store.labels()]
    assert kinds == ["before_reveal", "after_reveal", "undo", "skip", "undo"]


def test_judged_texts_are_escaped(tmp_path: Path) -> None:
    store = make_store(tmp_path / "a.sqlite", [payload_sample()])
    client = signed_in(store)
    page = client.get("/review").text
    assert SCRIPT_PAYLOAD not in page and IMG_PAYLOAD not in page and "<img" not in page
    assert "&lt;script&gt;window.__pwned = 1;" in page and "&lt;img src=&#34;x&#34; onerror=" in page
    sid = current_sample(page)
    client.post("/label", data={"csrf": csrf_of(page), "sample_id": sid, "choice": "tie"}, headers=SAME_ORIGIN)
    reveal = client.get(f"/reveal/{sid}").text
    assert verdict_marker(sid) in reveal and SCRIPT_PAYLOAD not in reveal and "<img" not in reveal


def test_overlap_share_sends_samples_to_a_second_reviewer(tmp_path: Path) -> None:
    store = make_store(tmp_path / "a.sqlite", [pair_sample(i) for i in range(20)])
    wanted = sum(AuditStore.reviews_wanted(s.sample_id, 0.5) for s in store.samples())
    done = {}
    for name in ("alice", "bob", "carol"):
        client = signed_in(store, name, overlap=0.5)
        n = 0
        while 'id="done"' not in (page := client.get("/review").text):
            client.post("/label", data={"csrf": csrf_of(page), "sample_id": current_sample(page), "choice": "first"},
                        headers=SAME_ORIGIN)
            n += 1
        done[name] = n
    assert sum(done.values()) == wanted and 20 < wanted < 40
    per_sample = {}
    for lb in store.current_labels(phase="before_reveal"):
        per_sample[lb.sample_id] = per_sample.get(lb.sample_id, 0) + 1
    assert per_sample == {s.sample_id: AuditStore.reviews_wanted(s.sample_id, 0.5) for s in store.samples()}


def test_cli_add_reviewer_prints_a_working_one_time_url(tmp_path: Path, store: AuditStore) -> None:
    from judge.cli import main

    result = CliRunner().invoke(main, ["audit", "add-reviewer", "dana", "--store", str(store.path), "--port", "9000"])
    assert result.exit_code == 0, result.output
    url = result.output.strip()
    assert re.fullmatch(r"http://127\.0\.0\.1:9000/login\?token=[A-Za-z0-9_\-]{43}", url)
    token = url.split("token=")[1]
    assert store.reviewer_for_token(token) == "dana"
    stored = b"".join(p.read_bytes() for p in store.path.parent.glob(store.path.name + "*"))
    assert token.encode() not in stored  # only a hash is stored
    client = client_for(store)
    assert client.get(f"/login?token={token}", follow_redirects=False).status_code == 303
    assert "dana" in client.get("/review").text
    result = CliRunner().invoke(main, ["audit", "serve", "--store", str(tmp_path / "missing.sqlite")])
    assert result.exit_code == 2 and "no audit store" in result.output
    help_text = CliRunner().invoke(main, ["audit", "serve", "--help"]).output
    assert "--overlap" in help_text and "127.0.0.1" in help_text


def test_sessions_expire_and_csrf_tokens_are_bound_to_their_session() -> None:
    signer = SessionSigner(SECRET, ttl_s=3600)
    session, cookie = signer.issue("alice", now=1_000_000)
    assert signer.verify(cookie, now=1_000_000 + 3599) == session
    assert signer.verify(cookie, now=1_000_000 + 3601) is None
    other, _ = signer.issue("alice", now=1_000_000)
    assert signer.check_csrf(session, signer.csrf_token(session))
    assert not signer.check_csrf(session, signer.csrf_token(other)) and not signer.check_csrf(session, None)
    assert not SessionSigner(b"y" * 32).check_csrf(session, signer.csrf_token(session))


def test_login_tokens_never_reach_the_access_log() -> None:
    import logging

    from judge.audit._web import _RedactTokens

    record = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5", "GET", "/login?token=SECRET-abc_123&x=1", "1.1", 303), None)
    assert _RedactTokens().filter(record)
    assert "SECRET" not in record.getMessage() and "token=<redacted>&x=1" in record.getMessage()


def test_samples_without_item_or_rubric_text_still_show_what_the_judge_saw(tmp_path: Path) -> None:
    from judge.core._records import RubricRef
    from judge.inputs._rubric import resolve_rubric

    library = resolve_rubric("helpfulness")
    known = point_sample(1).model_copy(update={
        "rubric_def": None, "rubric": RubricRef(id="helpfulness", version=library.version, hash=library.content_hash)})
    stale = point_sample(2).model_copy(update={
        "rubric_def": None, "rubric": RubricRef(id="helpfulness", version=1, hash="an-older-wording")})
    bare = pair_sample(3).model_copy(update={"item": None})
    store = make_store(tmp_path / "a.sqlite", [known, stale, bare])
    client = signed_in(store)
    pages = {}
    for _ in range(3):
        page = client.get("/review").text
        sid = current_sample(page)
        pages[sid] = page
        client.post("/skip", data={"csrf": csrf_of(page), "sample_id": sid}, headers=SAME_ORIGIN)
    # The library's rubric, because its hash is the one the judge used: its level descriptions show.
    assert library.criteria[0].scale[5] in pages["s-point-1"] and 'name="score.helpfulness"' in pages["s-point-1"]
    # A rubric whose wording changed since is not shown as if the judge had used it.
    assert library.criteria[0].scale[5] not in pages["s-point-2"] and "score.helpfulness" not in pages["s-point-2"]
    assert "does not carry the rubric the judge used" in pages["s-point-2"]
    # Without the item, the judge's own user message (not its system instructions).
    assert "judge pair 3" in pages["s-pair-3"] and "You compare responses." not in pages["s-pair-3"]
