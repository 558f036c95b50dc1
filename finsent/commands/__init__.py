"""Command groups; each module exposes ``register(app)`` and owns its commands."""

from __future__ import annotations

from collections.abc import Callable

import typer

from finsent.commands import alerts, data, model, stream

REGISTRARS: list[Callable[[typer.Typer], None]] = [
    stream.register,
    model.register,
    data.register,
    alerts.register,
]
