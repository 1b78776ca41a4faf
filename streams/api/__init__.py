"""Pulse's read side over HTTP: a read-only JSON API, server-sent updates and the live page.

It reads Redis only (the documented read contract, see README) and never Kafka, so any number of
``pulse serve`` processes can run beside the workers without touching their consumer group.
"""

from streams.api.server import create_app, run

__all__ = ["create_app", "run"]
