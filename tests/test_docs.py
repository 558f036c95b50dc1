"""The README is the reference: a setting or command missing from it fails the suite."""

from __future__ import annotations

from pathlib import Path

from typer.main import get_command

from finsent.cli import app
from finsent.config import Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    missing = [
        f"FINSENT_{name.upper()}"
        for name in Settings.model_fields
        if f"FINSENT_{name.upper()}" not in README
    ]
    assert not missing, f"README lacks: {missing}"


def test_every_cli_command_is_documented() -> None:
    root = get_command(app)
    missing: list[str] = []

    def walk(cmd, prefix: str) -> None:  # type: ignore[no-untyped-def]
        for name, sub in getattr(cmd, "commands", {}).items():
            full = f"{prefix} {name}".strip()
            if f"finsent {full}" not in README:
                missing.append(full)
            walk(sub, full)

    walk(root, "")
    assert not missing, f"README lacks commands: {missing}"
