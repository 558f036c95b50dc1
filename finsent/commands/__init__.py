"""Command groups; each module exposes ``register(app)`` and owns its commands."""

from __future__ import annotations

from collections.abc import Callable

import typer

from finsent.commands import alerts, data, model, produce, stream

REGISTRARS: list[Callable[[typer.Typer], None]] = [
    stream.register,
    produce.register,
    model.register,
    data.register,
    alerts.register,
]
