"""Security for the review web UI: sessions, CSRF, same-origin checks, headers and size limits.

Threats this module answers, with the defence for each:

* A stolen or guessed login token: tokens come from :meth:`AuditStore.add_reviewer`, are kept only
  as hashes, compared in constant time and are one-time: the login URL is exchanged for a session
  cookie (HttpOnly, SameSite=Strict) and a redirect, so the token leaves the address bar and the
  browser history holds a spent URL.
* Forged sessions: the cookie is ``payload.signature`` with an HMAC-SHA256 over the payload under a
  server secret (kept in a 0600 file next to the store), checked in constant time, and expires.
* Cross-site request forgery: every state-changing form carries a token derived from the session
  (HMAC of the session id, so it is bound to one session and cannot be minted without the secret),
  and the request must come from our own origin (``Origin``, or ``Sec-Fetch-Site`` when a browser
  sends no ``Origin``). Requests with neither header are refused: real browsers send one.
* Script injection from judged texts: Jinja2 autoescaping (in :mod:`._web`) plus a strict
  Content-Security-Policy without ``'unsafe-inline'``, so even an escaping bug would not run script.
* DNS rebinding: only the configured hosts are accepted in ``Host`` (TrustedHostMiddleware).
* Oversized requests: a body larger than :data:`MAX_BODY_BYTES` is refused with 413 before parsing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # starlette is imported only by the server, so `import judge.audit` stays light
    from starlette.datastructures import Headers
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "CSP",
    "MAX_BODY_BYTES",
    "SESSION_COOKIE",
    "SESSION_TTL_S",
    "BodyLimitMiddleware",
    "Session",
    "SecurityHeadersMiddleware",
    "SessionSigner",
    "load_or_create_secret",
    "same_origin",
]

#: Name of the session cookie.
SESSION_COOKIE = "jl_review"
#: Sessions last a working day; after that the reviewer asks for a new login URL.
SESSION_TTL_S = 12 * 3600
#: The largest request body accepted: a label form with a note is a few KB.
MAX_BODY_BYTES = 64 * 1024

#: No inline script or style, nothing from elsewhere, no framing, forms post only to us.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    # The login URL carries the token: no Referer may leave the site. Not "no-referrer": with it,
    # Chromium sends "Origin: null" on our own form posts and the same-origin check could not pass.
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}


def load_or_create_secret(path: Path) -> bytes:
    """The server's signing secret, created once (0600) so sessions survive a restart.

    Deleting the file signs every reviewer out.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        data = path.read_bytes().strip()
        if len(data) < 32:
            raise ValueError(f"{path}: the signing secret is too short ({len(data)} bytes); delete the file") from None
        return data
    secret = secrets.token_hex(32).encode("ascii")
    with os.fdopen(fd, "wb") as f:
        f.write(secret)
    return secret


@dataclass(frozen=True)
class Session:
    """A signed-in reviewer."""

    reviewer: str
    sid: str
    issued_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    """Signs session cookies and derives their CSRF tokens with one secret."""

    def __init__(self, secret: bytes, ttl_s: int = SESSION_TTL_S) -> None:
        if len(secret) < 32:
            raise ValueError(f"the signing secret must have at least 32 bytes, got {len(secret)}")
        # Separate keys per purpose, so a CSRF token can never pass as a session signature.
        self._session_key = hmac.new(secret, b"judgeloop-review-session", hashlib.sha256).digest()
        self._csrf_key = hmac.new(secret, b"judgeloop-review-csrf", hashlib.sha256).digest()
        self.ttl_s = ttl_s

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._session_key, payload.encode("ascii"), hashlib.sha256).digest())

    def issue(self, reviewer: str, now: float | None = None) -> tuple[Session, str]:
        """A new session for ``reviewer`` and its cookie value."""
        session = Session(reviewer=reviewer, sid=secrets.token_urlsafe(18), issued_at=int(now or time.time()))
        body = json.dumps({"r": session.reviewer, "s": session.sid, "t": session.issued_at}, separators=(",", ":"))
        payload = _b64(body.encode("utf-8"))
        return session, f"{payload}.{self._sign(payload)}"

    def verify(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session of a cookie value, or None when it is missing, forged, malformed or expired."""
        if not cookie or cookie.count(".") != 1 or len(cookie) > 1024:
            return None
        payload, signature = cookie.split(".")
        try:
            expected = self._sign(payload)
        except UnicodeEncodeError:
            return None
        if not hmac.compare_digest(expected, signature):
            return None
        try:
            data = json.loads(_unb64(payload))
            session = Session(reviewer=str(data["r"]), sid=str(data["s"]), issued_at=int(data["t"]))
        except (ValueError, KeyError, TypeError):
            return None
        age = (now or time.time()) - session.issued_at
        if age < -60 or age > self.ttl_s:
            return None
        return session

    def csrf_token(self, session: Session) -> str:
        """The CSRF token of a session: every form of that session carries it."""
        return _b64(hmac.new(self._csrf_key, session.sid.encode("ascii"), hashlib.sha256).digest())

    def check_csrf(self, session: Session, token: str | None) -> bool:
        """Whether ``token`` is this session's CSRF token (constant-time)."""
        return bool(token) and hmac.compare_digest(self.csrf_token(session), str(token))


def same_origin(headers: Headers, scheme: str) -> bool:
    """Whether a request comes from a page of this server.

    ``Origin`` must equal ``scheme://Host`` (the Host header was already checked against the
    trusted hosts). Without ``Origin``, ``Sec-Fetch-Site`` must say ``same-origin`` (or ``none``:
    typed by the user). A request with neither header did not come from a modern browser page
    and is refused.
    """
    origin = headers.get("origin")
    if origin is not None:
        host = headers.get("host", "")
        return bool(host) and hmac.compare_digest(origin.lower(), f"{scheme}://{host}".lower())
    site = headers.get("sec-fetch-site")
    return site in ("same-origin", "none")


class SecurityHeadersMiddleware:
    """Adds the CSP and the other protective headers to every response (errors included)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.decode("latin-1").lower() not in _HEADERS]
                headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in _HEADERS.items()]
                if not any(k.lower() == b"cache-control" for k, _ in headers):
                    # Pages show judged texts and labels: keep them out of shared and disk caches.
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimitMiddleware:
    """Refuses request bodies over ``max_bytes`` (413), whether announced or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from starlette.datastructures import Headers
        from starlette.responses import PlainTextResponse

        length = Headers(scope=scope).get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await PlainTextResponse("Request body too large", status_code=413)(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await PlainTextResponse("Request body too large", status_code=413)(scope, receive, send)


class _TooLarge(Exception):
    pass
