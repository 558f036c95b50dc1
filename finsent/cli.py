"""The ``finsent`` command: one Typer app; each command group lives in ``finsent/commands``."""

from __future__ import annotations

import logging
import sys

import typer

from finsent.commands import REGISTRARS
from finsent.exceptions import FinsentError

app = typer.Typer(
    name="finsent",
    help="Streaming sentiment monitoring for financial text.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for register in REGISTRARS:
    register(app)


def _user_errors() -> tuple[type[BaseException], ...]:
    """Room error roots, imported lazily so `finsent --help` stays fast."""
    errors: list[type[BaseException]] = [FinsentError]
    for mod, name in (
        ("ingest.exceptions", "IngestError"),
        ("scorer.exceptions", "ScorerError"),
        ("storage.exceptions", "StorageError"),
        ("alerts.exceptions", "AlertsError"),
    ):
        try:
            module = __import__(mod, fromlist=[name])
            errors.append(getattr(module, name))
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # kafka-python logs every connection at INFO; our own lines say what matters
    logging.getLogger("kafka").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        app(standalone_mode=True)
    except _user_errors() as e:
        print(f"finsent: error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
