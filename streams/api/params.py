"""The read API's limits, app keys, errors and request parameters (each checked before it
reaches Redis)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web

from streams.api.layout import ReadLayout
from streams.config import Settings

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
OPENAPI_PATH = HERE / "openapi.json"

MAX_LIMIT = 500
"""Upper bound of every ``limit``-like parameter: keeps one response and its Redis work small."""
MAX_COMMUNITY_CHARS = 256  # the event contract's maxLength for ``community``
MAX_WINDOW_START = 99_999_999_999  # epoch seconds, year 5138: 11 digits, far beyond any real window
MATCH_INDEX_READ = 1000  # at most this many posts of a community's match index per request

_LIMIT_RE = re.compile(r"[0-9]{1,4}")  # checked before int(): a 10,000-digit string never reaches it
_WINDOW_RE = re.compile(r"[0-9]{1,11}")
_BAD_COMMUNITY_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")

SETTINGS = web.AppKey("settings", Settings)
REDIS = web.AppKey("redis", aioredis.Redis)
LAYOUT = web.AppKey("layout", ReadLayout)
HEARTBEAT = web.AppKey("heartbeat_seconds", float)
COALESCE = web.AppKey("coalesce_seconds", float)
OPENAPI = web.AppKey("openapi", bytes)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# --------------------------------------------------------------------------------------------------
# Errors and parameters
# --------------------------------------------------------------------------------------------------


class ApiError(Exception):
    """A client-facing error: rendered as ``{"error", "detail", "parameter"?}`` with ``status``."""

    def __init__(self, status: int, error: str, detail: str, parameter: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.parameter = parameter

    def body(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"error": self.error, "detail": self.detail}
        if self.parameter is not None:
            doc["parameter"] = self.parameter
        return doc


def _shown(value: str) -> str:
    """A client's value quoted for an error message, cut short (it may be megabytes)."""
    return repr(value if len(value) <= 40 else value[:40] + "…")


def _single(request: web.Request, name: str) -> str | None:
    """The one value of query parameter ``name`` (a repeated one is ambiguous: rejected)."""
    values = request.query.getall(name, [])
    if len(values) > 1:
        raise ApiError(400, "bad_parameter", f"{name} is given {len(values)} times; give it once", name)
    return values[0] if values else None


def int_param(request: web.Request, name: str, default: int, maximum: int = MAX_LIMIT) -> int:
    """An integer query parameter in 1..``maximum`` (``default`` when absent)."""
    raw = _single(request, name)
    if raw is None:
        return default
    if not _LIMIT_RE.fullmatch(raw) or not 1 <= int(raw) <= maximum:
        raise ApiError(
            400, "bad_parameter", f"{name} must be an integer from 1 to {maximum}, got {_shown(raw)}", name
        )
    return int(raw)


def window_param(request: web.Request, size: int) -> int | None:
    """The requested window's start, or None for ``current`` (the newest window with data).

    Any epoch second inside a window names that window, so ``window=<now>`` works as well as the
    exact start.
    """
    raw = _single(request, "window")
    if raw is None or raw == "current":
        return None
    if not _WINDOW_RE.fullmatch(raw):
        raise ApiError(
            400,
            "bad_parameter",
            f"window must be 'current' or an epoch second from 0 to {MAX_WINDOW_START}, got {_shown(raw)}",
            "window",
        )
    start = int(raw)
    return start - start % size


def id_param(request: web.Request, name: str) -> str:
    """An id path segment (``community``, ``member``): 1-256 characters, none a control character."""
    value = request.match_info[name]
    if len(value) > MAX_COMMUNITY_CHARS:
        raise ApiError(
            400,
            "bad_parameter",
            f"{name} must be at most {MAX_COMMUNITY_CHARS} characters, got {len(value)}",
            name,
        )
    bad = _BAD_COMMUNITY_CHARS.search(value)
    if bad:
        raise ApiError(
            400,
            "bad_parameter",
            f"{name} must not contain control characters, found U+{ord(bad.group()):04X}",
            name,
        )
    return value


def community_param(request: web.Request) -> str:
    """The ``{community}`` path segment: 1-256 characters, none of them a control character."""
    return id_param(request, "community")


# --------------------------------------------------------------------------------------------------
# Values
