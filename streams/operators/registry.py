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

DEFAULT_OPERATORS: tuple[str, ...] = ("forecasts", "turnout")
"""What ``PULSE_OPERATORS=default`` runs: the models cheap enough for the throughput target.  The
others cost far more per event today (trends alone ~100–400 µs) and are opt-in by name or ``all``."""


def build_operator(name: str, settings: Settings) -> StatefulOperator[Any]:
    module, _, cls = OPERATORS[name].partition(":")
    return getattr(import_module(module), cls).from_settings(settings)  # type: ignore[no-any-return]


def build_operators(settings: Settings) -> list[StatefulOperator[Any]]:
    """The operators named in ``settings.operators`` (``default``, ``all``, or names), in order."""
    wanted = settings.operators.strip()
    if wanted in ("all", "default"):
        names = list(OPERATORS) if wanted == "all" else list(DEFAULT_OPERATORS)
    else:
        names = [n.strip() for n in wanted.split(",") if n.strip()]
    unknown = [n for n in names if n not in OPERATORS]
    if unknown:
        raise ValueError(f"unknown operators {unknown}; known: {', '.join(OPERATORS)}")
    return [build_operator(n, settings) for n in names]
