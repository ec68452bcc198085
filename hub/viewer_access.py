"""Who may read: the viewer token, the viewer session cookie and the Origin check.

docs/protocol.md ("Viewer access") and docs/security.md ("Viewer access") say
what clients see; this module decides it for both the dashboard door and the
``/api/`` routes, so the two never disagree.

Origin. A browser sends ``Origin`` with every WebSocket handshake and every
cross-origin or non-GET request. Without a check, any web site a visitor opens
could read the hub's live data through the visitor's browser (the browser's
same-origin policy does not cover WebSockets). So a request whose ``Origin`` is
neither the hub's own (its host and port are the request's ``Host``) nor one
of ``--allow-origin`` is refused. Non-browser clients send no ``Origin`` and
are not affected; ``Origin: null`` (sandboxed frames, ``file:``) is refused.

Viewer token. Offered as ``Authorization: Bearer`` or ``?token=`` (kept for
existing clients), or through the session cookie below. The built-in dashboard
never puts it in a URL: its login form posts it once to ``POST /api/session``,
which answers with the cookie.

Wrong tokens. Each wrong token offered costs its client address one unit of a
failure budget (hub/guess_budget.py); a spent address gets 429 (API, sign-in)
or 403 (the door) without a comparison until its minute has passed.

Session cookie. ``ems_viewer=v1.<expires>.<mac>`` where ``mac`` is
HMAC-SHA256 keyed by the viewer token over the version and expiry: nothing is
stored, a hub restart keeps sessions valid, a new viewer token ends them all,
and the cookie does not reveal the token. ``HttpOnly`` (scripts cannot read
it), ``SameSite=Strict`` (other sites' requests do not carry it), ``Secure``
when the request came over TLS.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Final
from urllib.parse import urlsplit

from fastapi import APIRouter, Body, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import HTTPConnection

from hub.auth import AuthFailure, ViewerGate, bearer_token
from hub.gatekeeper import LogLimiter
from hub.guess_budget import GuessBudget
from hub.refusals import log_refusal, shown

SESSION_COOKIE: Final = "ems_viewer"
SESSION_LIFETIME_S: Final = 30 * 24 * 3600  # a wall display stays signed in for a month
_SESSION_VERSION: Final = "v1"


# -- Origin --------------------------------------------------------------------


def normalize_origin(url: str) -> str:
    """``scheme://host[:port]`` in lower case; ValueError for anything else (a path, no host)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an origin (want http(s)://host[:port]): {url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError(f"an origin has no path, query or user: {url!r}")
    return f"{parts.scheme}://{parts.netloc}".lower()


def origin_allowed(origin: str | None, host: str | None, allowed: Iterable[str]) -> bool:
    """Whether a request with this ``Origin`` header may read (module docstring)."""
    if origin is None:
        return True  # not a browser, or a same-origin GET
    try:
        normalized = normalize_origin(origin)
    except ValueError:
        return False  # "null", garbage
    if host and urlsplit(normalized).netloc == host.strip().lower():
        return True
    return normalized in allowed


# -- Session cookie --------------------------------------------------------------


def _mac(token: str, expires: int) -> str:
    message = f"ems-viewer-session.{_SESSION_VERSION}.{expires}".encode()
    digest = hmac.new(token.encode("utf-8"), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def issue_session(token: str, now: float) -> str:
    expires = int(now) + SESSION_LIFETIME_S
    return f"{_SESSION_VERSION}.{expires}.{_mac(token, expires)}"


def session_valid(token: str, value: str, now: float) -> bool:
    version, _, rest = value.partition(".")
    expires_text, _, mac = rest.partition(".")
    if version != _SESSION_VERSION or not expires_text.isdigit() or len(expires_text) > 12:
        return False
    expires = int(expires_text)
    if not now < expires <= now + SESSION_LIFETIME_S + 60:
        return False
    return hmac.compare_digest(mac.encode("ascii", "replace"), _mac(token, expires).encode())


# -- The decision ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: AuthFailure
    detail: str
    retry_after: int | None = None  # THROTTLED: seconds until the address may try again


def offered_token(conn: HTTPConnection) -> str | None:
    """The viewer token a client offered: header first, then ``?token=``."""
    return bearer_token(conn.headers.get("authorization")) or conn.query_params.get("token")


def client_address(conn: HTTPConnection) -> str:
    return conn.client.host if conn.client is not None else "unknown"


def check_guess(
    viewer: ViewerGate, offered: str, address: str, guesses: GuessBudget
) -> Refusal | None:
    """Whether ``offered`` opens the door for ``address``, within its failure budget.

    A throttled address gets no comparison at all: an answer would tell a
    right guess from a wrong one (hub/guess_budget.py).
    """
    now = time.monotonic()
    wait = guesses.retry_after(address, now)
    if wait is not None:
        return Refusal(
            AuthFailure.THROTTLED, f"too many wrong viewer tokens, retry in {wait} s", wait
        )
    if viewer.allows(offered):
        return None
    guesses.failed(address, now)
    return Refusal(AuthFailure.BAD, "wrong viewer token")


def viewer_refusal(
    conn: HTTPConnection,
    viewer: ViewerGate,
    allowed_origins: Iterable[str],
    guesses: GuessBudget,
) -> Refusal | None:
    """Why this client may not read, or None when it may."""
    origin = conn.headers.get("origin")
    if not origin_allowed(origin, conn.headers.get("host"), allowed_origins):
        return Refusal(AuthFailure.BAD_ORIGIN, f"origin {shown(origin or '')} not allowed")
    if not viewer.required:
        return None
    # A valid session cookie reads even from a throttled address: it was earned
    # with the right token, and its MAC is not worth guessing.
    cookie = conn.cookies.get(SESSION_COOKIE)
    if cookie and viewer.token and session_valid(viewer.token, cookie, time.time()):
        return None
    offered = offered_token(conn)
    if offered is None:
        if not cookie:
            return Refusal(AuthFailure.MISSING, "no viewer token")
        return Refusal(AuthFailure.BAD, "expired or foreign session")
    return check_guess(viewer, offered, client_address(conn), guesses)


@dataclass(frozen=True, slots=True)
class ViewerPolicy:
    """Who may read, as the dashboard door, the API and the pages all ask it.

    The running hub builds one (hub/runtime.py) and hub/app.py keeps it on
    ``app.state.viewer``: the viewer token, the origins besides the hub's own,
    the budget of wrong guesses per address, and the shared refusal log budget.
    """

    viewer: ViewerGate
    allowed_origins: tuple[str, ...]
    guesses: GuessBudget
    refusal_log: LogLimiter

    def refusal(self, conn: HTTPConnection) -> Refusal | None:
        """Why this client may not read, or None when it may."""
        return viewer_refusal(conn, self.viewer, self.allowed_origins, self.guesses)


def viewer_policy(conn: HTTPConnection) -> ViewerPolicy:
    """The running hub's :class:`ViewerPolicy`."""
    policy: ViewerPolicy = conn.app.state.viewer
    return policy


def _too_many_guesses(refusal: Refusal) -> HTTPException:
    return HTTPException(
        status_code=429,
        detail="too many wrong viewer tokens from this address: try again later",
        headers={"Retry-After": str(refusal.retry_after or 1)},
    )


def require_viewer(request: Request) -> None:
    """FastAPI dependency of the ``/api/`` data routes: 403 for a foreign origin, 401 without,
    429 for an address that offered too many wrong tokens."""
    policy = viewer_policy(request)
    refusal = policy.refusal(request)
    if refusal is None:
        return
    if refusal.reason is AuthFailure.BAD_ORIGIN:
        raise HTTPException(status_code=403, detail="cross-origin request refused")
    if refusal.reason is not AuthFailure.MISSING:
        log_refusal(policy.refusal_log, "viewer API", client_address(request), refusal.detail)
    if refusal.reason is AuthFailure.THROTTLED:
        raise _too_many_guesses(refusal)
    raise HTTPException(
        status_code=401,
        detail="viewer token required",
        headers={"WWW-Authenticate": 'Bearer realm="ems"'},
    )


# -- Routes: the dashboard's login ---------------------------------------------------


class SessionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    token: str = Field(min_length=1, max_length=4096)


router = APIRouter(prefix="/api", include_in_schema=True, tags=["viewer session"])


@router.post("/session", status_code=204)
async def open_session(
    request: Request,
    response: Response,
    body: Annotated[SessionRequest | None, Body()] = None,
) -> None:
    """Exchange the viewer token (JSON ``{"token": ...}`` or ``Authorization: Bearer``) for
    the session cookie; 401 if it is wrong, 429 with ``Retry-After`` once its address
    offered too many wrong tokens. A hub without a viewer token sets no cookie."""
    policy = viewer_policy(request)
    viewer, guesses = policy.viewer, policy.guesses
    if not origin_allowed(
        request.headers.get("origin"), request.headers.get("host"), policy.allowed_origins
    ):
        raise HTTPException(status_code=403, detail="cross-origin request refused")
    if not viewer.required or viewer.token is None:
        return
    offered = body.token if body is not None else bearer_token(request.headers.get("authorization"))
    client = client_address(request)
    refusal = (
        Refusal(AuthFailure.MISSING, "no token")
        if offered is None
        else check_guess(viewer, offered, client, guesses)
    )
    if refusal is not None:
        log_refusal(policy.refusal_log, "viewer login", client, refusal.detail)
        if refusal.reason is AuthFailure.THROTTLED:
            raise _too_many_guesses(refusal)
        raise HTTPException(status_code=401, detail="wrong viewer token")
    response.set_cookie(
        SESSION_COOKIE,
        issue_session(viewer.token, time.time()),
        max_age=SESSION_LIFETIME_S,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


@router.get("/session")
async def session_state(request: Request) -> dict[str, bool]:
    """Whether this client may read (200) or must sign in first (401); the dashboard asks
    this when its socket is refused, to tell "sign in" from "hub unreachable"."""
    require_viewer(request)
    return {"viewer_token_required": viewer_policy(request).viewer.required}


@router.delete("/session", status_code=204)
async def close_session(response: Response) -> None:
    """Forget the session cookie (sign out)."""
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
