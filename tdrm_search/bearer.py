"""The Bearer-token check both HTTP servers use (`tdrm serve`, `tdrm serve-reward`), as a FastAPI dependency."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from fastapi import HTTPException, Request


def bearer_check(token: str | None) -> Callable[[Request], None]:
    """A dependency that refuses a request (401) whose Authorization header is not `Bearer <token>`; with no token
    set, every request passes."""

    def authorize(request: Request) -> None:
        if token is None:
            return
        given = request.headers.get("authorization", "")
        if not secrets.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    return authorize
