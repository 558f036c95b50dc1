"""docker-compose.yml cannot run here (no Docker engine): check it agrees with CLI and config."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from typer.main import get_command

from finsent.cli import app
from finsent.config import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _cli_paths() -> dict[tuple[str, ...], object]:
    root = get_command(app)
    paths: dict[tuple[str, ...], object] = {}

    def walk(cmd, prefix: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
        paths[prefix] = cmd
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, (*prefix, name))

    walk(root, ())
    return paths


def test_services_present_and_kafka_is_kraft_with_volume() -> None:
    services = COMPOSE["services"]
    assert {"kafka", "postgres", "worker", "dashboard"} <= set(services)
    kafka = services["kafka"]
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]
    assert kafka["volumes"], "Kafka needs a persistent volume"
    assert "ports" not in services["worker"], "workers must scale: no fixed host ports"


def test_every_command_and_option_exists_in_the_cli() -> None:
    paths = _cli_paths()
    for name, svc in COMPOSE["services"].items():
        if "build" not in svc:
            continue
        args = list(svc["command"])
        words = [a for a in args if not a.startswith("-")]
        cmd = None
        for n in range(len(words), 0, -1):
            if tuple(words[:n]) in paths:
                cmd = paths[tuple(words[:n])]
                break
        assert cmd is not None, f"service {name}: no CLI command {args}"
        opts = {o for p in cmd.params for o in getattr(p, "opts", [])}  # type: ignore[attr-defined]
        for a in args:
            if a.startswith("--"):
                assert a in opts, f"service {name}: option {a} unknown to `finsent {words}`"


def test_environment_names_are_settings_and_ports_agree() -> None:
    fields = {f"FINSENT_{n.upper()}" for n in Settings.model_fields}
    for name, svc in COMPOSE["services"].items():
        for key in svc.get("environment") or {}:
            if key.startswith("FINSENT_"):
                assert key in fields, f"service {name}: {key} is not a setting"
    env = COMPOSE["services"]["worker"]["environment"]
    assert env["FINSENT_KAFKA_BOOTSTRAP"].split(":")[0] == "kafka"
    assert re.match(r"postgresql(\+psycopg)?://", env["FINSENT_DATABASE_URL"])
    dash = COMPOSE["services"]["dashboard"]
    port = dash["command"][dash["command"].index("--port") + 1]
    assert any(p.endswith(f":{port}") for p in dash["ports"])
    kafka_listeners = COMPOSE["services"]["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert env["FINSENT_KAFKA_BOOTSTRAP"] in kafka_listeners
