"""Bearer tokens: every write needs one, reads too unless CROWDSOUND_API_PUBLIC_READ=1.

Tokens come from ``CROWDSOUND_API_TOKENS`` (``operator=token`` pairs); the settings keep only
their SHA-256 hashes, and a request's token is hashed and compared in constant time. The
operator's name goes into every cue and preferences record they write. Browsers cannot set
headers on a WebSocket, so there the token travels as a subprotocol: ``bearer, <token>``.
"""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request
from starlette.websockets import WebSocket

from infra.settings import Settings, token_hash

__all__ = ["AccessDenied", "operator_for", "read_access", "write_access", "websocket_operator"]


class AccessDenied(HTTPException):
    def __init__(self, reason: str) -> None:
        super().__init__(status_code=401, detail=reason, headers={"WWW-Authenticate": 'Bearer realm="crowdsound"'})


def operator_for(settings: Settings, token: str | None) -> str | None:
    """The operator a token belongs to, or None."""
    if not token:
        return None
    digest = token_hash(token)
    for known, operator in settings.api_tokens.items():
        if hmac.compare_digest(known, digest):
            return operator
    return None


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _check(settings: Settings, token: str | None, *, write: bool) -> str | None:
    if not write and settings.api_public_read:
        return operator_for(settings, token)
    if not settings.api_tokens:
        raise AccessDenied("no API tokens are configured (CROWDSOUND_API_TOKENS); "
                           + ("writes are refused" if write else "set CROWDSOUND_API_PUBLIC_READ=1 for open reads"))
    if token is None:
        raise AccessDenied("missing bearer token (Authorization: Bearer <token>)")
    operator = operator_for(settings, token)
    if operator is None:
        raise AccessDenied("unknown bearer token")
    return operator


def read_access(request: Request) -> str | None:
    """FastAPI dependency of every read: the operator, or None for an anonymous public read."""
    return _check(request.app.state.settings, _bearer(request.headers.get("authorization")), write=False)


def write_access(request: Request) -> str:
    """FastAPI dependency of every write: the operator (401 without a valid token)."""
    operator = _check(request.app.state.settings, _bearer(request.headers.get("authorization")), write=True)
    assert operator is not None
    return operator


def websocket_operator(websocket: WebSocket) -> tuple[str | None, str | None]:
    """(operator, subprotocol to accept) of a WebSocket; raises AccessDenied like a read."""
    token = _bearer(websocket.headers.get("authorization"))
    subprotocol = None
    offered = websocket.scope.get("subprotocols") or []
    if token is None and len(offered) >= 2 and offered[0] == "bearer":
        token, subprotocol = offered[1], "bearer"
    return _check(websocket.app.state.settings, token, write=False), subprotocol
