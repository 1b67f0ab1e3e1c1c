"""The blind review web UI: ``judgeloop audit serve``.

Server-rendered pages (FastAPI + Jinja2 with autoescaping), one small static script for keyboard
shortcuts, no inline script. A reviewer signs in with the one-time URL from ``audit add-reviewer``,
labels the next sample of their queue (:meth:`AuditStore.next_for`), and only then sees the judge's
decision on a reveal page, where they may record a changed label (phase ``after_reveal``).

Blindness is structural: the review page is rendered from :func:`review_view`, which carries no
field of the judge's output, and the reveal page of a sample answers 404 until the reviewer has a
committed before-reveal label on it. Security (sessions, CSRF, headers) lives in
:mod:`._web_security`.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route functions' annotations
# at run time, and ``Request`` is imported inside create_app (so importing this module stays light).
import logging
import re
from pathlib import Path
from typing import Any

from judge.audit._records import HumanLabel
from judge.audit._store import AuditStore, AuditStoreError
from judge.audit._web_review import (
    FormError,
    label_from_form,
    reveal_context,
    review_view,
    shown_order,
    skip_label,
    value_position,
)
from judge.audit._web_security import (
    MAX_BODY_BYTES,
    SESSION_COOKIE,
    BodyLimitMiddleware,
    SecurityHeadersMiddleware,
    Session,
    SessionSigner,
    load_or_create_secret,
    same_origin,
)

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "create_app", "login_url", "run_server"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
_HERE = Path(__file__).resolve().parent


def login_url(token: str, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> str:
    """The one-time login URL a reviewer opens."""
    return f"http://{host}:{port}/login?token={token}"


class _NoSession(Exception):
    pass


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def create_app(
    store_path: str | Path,
    *,
    overlap: float = 0.2,
    host: str = DEFAULT_HOST,
    secret: bytes | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> Any:
    """The review application for one audit store.

    Args:
        store_path: The project's audit SQLite file.
        overlap: Share of samples shown to two or more reviewers (the human-human ceiling), in [0, 1].
        host: The host the server is reached at; with 127.0.0.1 and localhost, the only Host
            headers accepted (DNS-rebinding defence).
        secret: Session signing secret; by default read from (or created in) ``<store>.secret``.
        max_body_bytes: Largest request body accepted.
    """
    from fastapi import FastAPI, Request
    from fastapi.responses import HTMLResponse, RedirectResponse, Response
    from fastapi.staticfiles import StaticFiles
    from jinja2 import Environment, FileSystemLoader, StrictUndefined
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    if not 0.0 <= overlap <= 1.0:
        raise ValueError(f"overlap must be in [0, 1], got {overlap}")
    store_path = Path(store_path)
    if not store_path.exists():
        raise FileNotFoundError(f"{store_path}: no audit store here; create it with `judgeloop audit sample`")
    signer = SessionSigner(secret if secret is not None else load_or_create_secret(Path(f"{store_path}.secret")))
    # autoescape=True for every template: judged texts are untrusted and are only ever escaped.
    env = Environment(loader=FileSystemLoader(_HERE / "templates"), autoescape=True, undefined=StrictUndefined)

    app = FastAPI(title="judgeloop review", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=_HERE / "static"), name="static")
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=sorted({"127.0.0.1", "localhost", host}))
    app.add_middleware(SecurityHeadersMiddleware)  # outermost: also covers 400/413 answers

    def store() -> AuditStore:
        # One connection per request: sqlite connections are not shared across the worker threads.
        return AuditStore(store_path)

    def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(**context), status_code=status)

    def session_of(request: Request) -> Session:
        session = signer.verify(request.cookies.get(SESSION_COOKIE))
        if session is None:
            raise _NoSession()
        return session

    async def checked_form(request: Request) -> tuple[Session, dict[str, str]]:
        """The session and form of a state-changing request, after the origin and CSRF checks."""
        session = session_of(request)
        if not same_origin(request.headers, request.url.scheme):
            raise _Refused(403, "This request did not come from this site's own pages (Origin check failed).")
        form = await request.form(max_files=0, max_fields=64, max_part_size=16 * 1024)
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        if not signer.check_csrf(session, fields.get("csrf")):
            raise _Refused(403, "The form's security token is missing or wrong. Reload the page and try again.")
        return session, fields

    @app.exception_handler(_NoSession)
    async def _no_session(request: Request, exc: _NoSession) -> HTMLResponse:
        return page("login.html", 401, message="Sign in with the one-time link from `judgeloop audit add-reviewer`.")

    @app.exception_handler(_Refused)
    async def _refused(request: Request, exc: _Refused) -> HTMLResponse:
        return page("error.html", exc.status, message=exc.message)

    @app.get("/login")
    def login(token: str | None = None) -> Response:
        if not token:
            return page("login.html", 401, message="Sign in with the one-time link from `judgeloop audit add-reviewer`.")
        reviewer = store().redeem_token(token)
        if reviewer is None:
            return page(
                "login.html",
                401,
                message="This login link is not valid or was already used. Ask for a new one "
                "(`judgeloop audit add-reviewer NAME`).",
            )
        _, cookie = signer.issue(reviewer)
        # Not straight to /review: after a cross-site navigation (a link in a mail client) the
        # browser withholds a SameSite=Strict cookie along the whole redirect chain. The landing
        # page moves on by itself, as a same-site navigation that carries the cookie.
        response = RedirectResponse("/signed-in", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            cookie,
            max_age=signer.ttl_s,
            httponly=True,
            samesite="strict",
            secure=False,  # served over plain HTTP on the loopback interface
            path="/",
        )
        return response

    @app.get("/signed-in")
    def signed_in() -> HTMLResponse:
        return page("signed_in.html")

    @app.get("/")
    def index() -> RedirectResponse:
        return RedirectResponse("/review", status_code=303)

    @app.get("/review")
    def review(request: Request) -> HTMLResponse:
        session = session_of(request)
        st = store()
        done, total = st.progress(session.reviewer, overlap)
        sample = st.next_for(session.reviewer, overlap)
        last = _last_action(st, session.reviewer)
        common = {
            "reviewer": session.reviewer,
            "csrf": signer.csrf_token(session),
            "done": done,
            "total": total,
            "can_undo": _undoable(last),
            "undo_what": "skip" if last is not None and last.skipped else "change",
            # The last labelled sample's reveal page, where a blind label can be corrected.
            "previous": last.sample_id if last is not None and not last.skipped else None,
        }
        if sample is None:
            return page("done.html", **common)
        return page("review.html", **common, v=review_view(sample, session.reviewer))

    @app.post("/label")
    async def label(request: Request) -> Response:
        session, form = await checked_form(request)
        st = store()
        sample = _sample_or_404(st, form.get("sample_id", ""))
        phase = form.get("phase", "before_reveal")
        if phase not in ("before_reveal", "after_reveal"):
            raise _Refused(400, f"phase: must be before_reveal or after_reveal, got {phase!r}")
        committed = _committed(st, sample.sample_id, session.reviewer)
        if phase == "before_reveal" and committed is not None:
            # A replayed or double-submitted blind label: the first one stands, the reveal follows.
            return RedirectResponse(f"/reveal/{sample.sample_id}", status_code=303)
        if phase == "after_reveal" and committed is None:
            raise _Refused(409, "Label this sample before changing your label after the reveal.")
        try:
            row = label_from_form(sample, session.reviewer, form, phase)  # type: ignore[arg-type]
        except FormError as exc:
            raise _Refused(400, f"Invalid label: {exc}") from None
        st.add_label(row)
        target = f"/reveal/{sample.sample_id}" if phase == "before_reveal" else "/review"
        return RedirectResponse(target, status_code=303)

    @app.post("/skip")
    async def skip(request: Request) -> Response:
        session, form = await checked_form(request)
        st = store()
        sample = _sample_or_404(st, form.get("sample_id", ""))
        if _committed(st, sample.sample_id, session.reviewer) is None:
            try:
                st.add_label(skip_label(sample, session.reviewer, form))
            except FormError as exc:
                raise _Refused(400, f"Invalid note: {exc}") from None
        return RedirectResponse("/review", status_code=303)

    @app.post("/undo")
    async def undo(request: Request) -> Response:
        session, _ = await checked_form(request)
        st = store()
        last = _last_action(st, session.reviewer)
        if not _undoable(last):
            raise _Refused(
                409,
                "Nothing to undo: a label whose verdict you have seen is final. "
                "Change it on its reveal page instead (it is recorded as a change after the reveal).",
            )
        assert last is not None
        st.add_label(
            HumanLabel(
                sample_id=last.sample_id, reviewer=session.reviewer, phase=last.phase, undoes=last.label_id, source="web"
            )
        )
        # Undoing a change made after the reveal returns to that reveal; undoing a skip to the queue.
        target = f"/reveal/{last.sample_id}" if last.phase == "after_reveal" else "/review"
        return RedirectResponse(target, status_code=303)

    @app.get("/reveal/{sample_id}")
    def reveal(request: Request, sample_id: str) -> HTMLResponse:
        session = session_of(request)
        st = store()
        sample = _sample_or_404(st, sample_id)
        committed = _committed(st, sample_id, session.reviewer)
        if committed is None:
            # Same answer as an unknown sample: the verdict exists only after a committed label.
            raise _Refused(404, "Nothing to reveal: label this sample first.")
        current = {lb.phase: lb for lb in st.current_labels(sample_id=sample_id, reviewer=session.reviewer)}
        after = current.get("after_reveal")
        last = _last_action(st, session.reviewer)
        order = shown_order(sample, session.reviewer)
        done, total = st.progress(session.reviewer, overlap)
        return page(
            "reveal.html",
            reviewer=session.reviewer,
            csrf=signer.csrf_token(session),
            done=done,
            total=total,
            v=review_view(sample, session.reviewer),
            judge=reveal_context(sample, session.reviewer),
            before=value_position(committed.value, order),
            before_note=committed.note,
            after=value_position(after.value, order) if after is not None and after.value is not None else None,
            after_note=after.note if after is not None else None,
            # Undo here retracts this sample's latest change, when that is the reviewer's last action.
            can_undo=_undoable(last) and last is not None and last.sample_id == sample_id,
        )

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        await checked_form(request)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return response

    return app


def _sample_or_404(st: AuditStore, sample_id: str) -> Any:
    try:
        return st.sample(sample_id)
    except AuditStoreError:
        raise _Refused(404, "No such sample.") from None


def _committed(st: AuditStore, sample_id: str, reviewer: str) -> HumanLabel | None:
    """The reviewer's current before-reveal label on a sample (not a skip), if any."""
    for lb in st.current_labels(sample_id=sample_id, reviewer=reviewer):
        if lb.phase == "before_reveal" and not lb.skipped and lb.value is not None:
            return lb
    return None


def _last_action(st: AuditStore, reviewer: str) -> HumanLabel | None:
    """The reviewer's latest row that no undo has retracted yet (a label, a skip or a change)."""
    rows = st.labels(reviewer=reviewer)
    undone = {r.undoes for r in rows if r.undoes is not None}
    for row in reversed(rows):
        if row.undoes is None and row.label_id not in undone:
            return row
    return None


def _undoable(last: HumanLabel | None) -> bool:
    """Whether undo may retract ``last``.

    A skip and a change after the reveal may be retracted. A committed blind label may not: its
    reveal was shown at once, so a label given again would be anchored on the judge's verdict and
    would still count as blind. The reviewer corrects it on its reveal page instead (an
    after-reveal change, with a note).
    """
    return last is not None and (last.skipped or last.phase == "after_reveal")


class _RedactTokens(logging.Filter):
    """Keeps login tokens out of the access log (uvicorn logs every request's full path)."""

    _TOKEN = re.compile(r"(token=)[^&\s]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self._TOKEN.sub(r"\1<redacted>", a) if isinstance(a, str) else a for a in record.args)
        return True


def run_server(
    store_path: str | Path, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, overlap: float = 0.2
) -> None:
    """Serve the review UI until interrupted."""
    import uvicorn

    app = create_app(store_path, overlap=overlap, host=host)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="info",
        server_header=False,
        # Bounded header sizes and request counts: the body limit is the app's own middleware.
        h11_max_incomplete_event_size=16 * 1024,
        limit_concurrency=64,
        proxy_headers=False,
    )
    # After Config: it (re)configures uvicorn's loggers.
    logging.getLogger("uvicorn.access").addFilter(_RedactTokens())
    uvicorn.Server(config).run()
