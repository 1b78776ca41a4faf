"""Which stateful operators a worker runs (``PULSE_OPERATORS``), built from the settings.

Imported lazily, so a worker that runs only some operators never loads the others' models.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from streams.config import Settings
from streams.operators.base import StatefulOperator

OPERATORS: dict[str, str] = {
    "forecasts": "streams.operators.forecasts:DemandSupplyForecaster",
    "turnout": "streams.operators.turnout:TurnoutPredictor",
    "trends": "streams.operators.trends:TrendingTopics",
    "members": "streams.operators.members:MemberInsights",
    "kpis": "streams.operators.kpis:OperationsKpis",
    "atmosphere": "streams.operators.atmosphere:AtmosphereIndex",
    "matching": "streams.operators.matching:MatchMaker",
    "recommendations": "streams.operators.recommendations:MeetupRecommender",
}
"""name → ``module:Class``; every class has ``from_settings(settings)``."""

CORE_OPERATORS: tuple[str, ...] = ("forecasts", "turnout")
"""``PULSE_OPERATORS=core``: the demand/supply and turnout models alone, the lightest useful worker
(what ``default`` meant before every operator was on by default)."""

ALIASES: dict[str, tuple[str, ...]] = {
    "all": tuple(OPERATORS),
    "default": tuple(OPERATORS),
    "core": CORE_OPERATORS,
}
"""Names standing for several operators.  ``default`` is ``all``: the default runs every operator."""


def build_operator(name: str, settings: Settings) -> StatefulOperator[Any]:
    module, _, cls = OPERATORS[name].partition(":")
    return getattr(import_module(module), cls).from_settings(settings)  # type: ignore[no-any-return]


def operator_names(spec: str) -> list[str]:
    """``PULSE_OPERATORS`` → operator names, in registry order for aliases, else as written.

    Comma-separated names or aliases (``all``, ``default`` = ``all``, ``core``); a name preceded by
    ``-`` is turned off (``all,-trends``, or just ``-trends``: every operator but trends).  Empty:
    none (the activity score only).

    >>> operator_names("all,-trends,-members") == [n for n in OPERATORS if n not in ("trends", "members")]
    True
    >>> operator_names("core"), operator_names("turnout, forecasts"), operator_names("")
    (['forecasts', 'turnout'], ['turnout', 'forecasts'], [])
    >>> operator_names("-trends") == operator_names("all,-trends") != operator_names("all")
    True
    """
    names: list[str] = []
    off: set[str] = set()
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        if item.startswith("-"):
            off.add(item[1:].strip())
            continue
        for name in ALIASES.get(item, (item,)):
            if name not in names:
                names.append(name)
    if off and not names:  # only turning some off: off from the default, every operator
        names = list(OPERATORS)
    unknown = [n for n in [*names, *sorted(off)] if n not in OPERATORS]
    if unknown:
        raise ValueError(
            f"unknown operators {unknown}; known: {', '.join(OPERATORS)} (or {', '.join(ALIASES)})"
        )
    return [n for n in names if n not in off]


def build_operators(settings: Settings) -> list[StatefulOperator[Any]]:
    """The operators named in ``settings.operators`` (see :func:`operator_names`)."""
    return [build_operator(n, settings) for n in operator_names(settings.operators)]
