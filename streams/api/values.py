"""What stored values look like in the API's JSON (numbers, hashes, alerts) and the JSON response."""

from __future__ import annotations

import contextlib
import math
from datetime import datetime
from typing import Any

import orjson
from aiohttp import web

# --------------------------------------------------------------------------------------------------


def _number(value: str | None) -> float:
    """A stored number (17 significant digits, see README); 0 when absent or unreadable."""
    try:
        number = float(value) if value is not None else 0.0
    except ValueError:
        return 0.0
    return number if math.isfinite(number) else 0.0


def _activity(raw: dict[str, str]) -> dict[str, Any]:
    """An activity hash as the API shows it: counts as integers, the score as the stored double."""
    return {
        "interactions": int(_number(raw.get("interactions"))),
        "participants": int(_number(raw.get("participants"))),
        "posts": int(_number(raw.get("posts"))),
        "score": _number(raw.get("score")),
    }


def _maybe(value: str | None) -> float | None:
    """A stored number that may be undefined: None when absent, empty ("" is an undefined rate),
    unreadable or not finite."""
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _maybe_int(value: str | None) -> int | None:
    number = _maybe(value)
    return int(number) if number is not None else None


def _text(value: Any) -> str:
    """A reply as text: the clients decode responses, but redis-py's types still say bytes | str."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _field(value: Any) -> Any:
    """A hash field written by an operator: a finite number, a JSON object/array, or the text."""
    value = _text(value)
    with contextlib.suppress(ValueError):
        number = float(value)
        if math.isfinite(number):
            return number
    if value[:1] in ("{", "["):
        with contextlib.suppress(orjson.JSONDecodeError):
            return orjson.loads(value)
    return value


def _alert(raw: str, community: str) -> dict[str, Any]:
    """One element of ``pulse:alerts:{community}``: a JSON object, tagged with its community.

    Anything else (plain text from an older writer) is kept as the alert's ``message``.
    """
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict):
        return {"community": community, "message": raw}
    doc.setdefault("community", community)
    return doc


def alert_time_ms(alert: dict[str, Any]) -> float:
    """When an alert was raised, in epoch ms, for merging lists; 0 when it does not say.

    ``ts`` may be epoch ms, epoch seconds (< 1e11) or an RFC 3339 string, as events' ``ts`` may.

    >>> alert_time_ms({"ts": 1_700_000_000_000}), alert_time_ms({"ts": 1_700_000_000})
    (1700000000000, 1700000000000)
    >>> alert_time_ms({"ts": "2023-11-14T22:13:20Z"}), alert_time_ms({})
    (1700000000000.0, 0)
    """
    ts = alert.get("ts")
    if isinstance(ts, bool):
        return 0
    if isinstance(ts, int | float) and math.isfinite(ts):
        return ts * 1000 if abs(ts) < 1e11 else ts
    if isinstance(ts, str):
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000
    return 0


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """orjson-encoded JSON; never cached (every answer is a live read)."""
    return web.Response(
        body=orjson.dumps(data),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


