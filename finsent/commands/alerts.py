"""`finsent alerts`, `finsent rules ...`, `finsent prices load` and `finsent dashboard`."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from finsent.config import Settings, load_settings
from finsent.exceptions import FinsentError

log = logging.getLogger("finsent.alerts")

DatabaseUrl = Annotated[
    str | None, typer.Option("--database-url", help="Store URL (FINSENT_DATABASE_URL).")
]

rules_app = typer.Typer(help="List, add, enable and disable alert rules.", no_args_is_help=True)
prices_app = typer.Typer(help="Daily prices for the ticker page's overlay.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Adds the alerts, rules, prices and dashboard commands to the finsent app."""
    app.command("alerts")(alerts)
    app.command("dashboard")(dashboard)
    app.add_typer(rules_app, name="rules")
    app.add_typer(prices_app, name="prices")


@contextmanager
def _alerts_errors() -> Iterator[None]:
    """Alerts errors become finsent user errors, database errors storage errors: one line on
    stderr and exit code 2 (a missing or unmigrated store is a user problem)."""
    from sqlalchemy.exc import SQLAlchemyError

    from alerts.exceptions import AlertsError
    from storage.db import wrap_error

    try:
        yield
    except AlertsError as e:
        raise FinsentError(str(e)) from e
    except SQLAlchemyError as e:
        raise wrap_error(e, "reading the store (did `finsent up` or a migration run?)") from e


def _engine(settings: Settings):  # type: ignore[no-untyped-def]
    from storage.db import make_engine

    return make_engine(settings.database_url)


def alerts(
    once: Annotated[bool, typer.Option("--once", help="Evaluate once and exit.")] = False,
    interval: Annotated[
        float, typer.Option("--interval", min=0.1, help="Seconds between evaluations.")
    ] = 10.0,
    database_url: DatabaseUrl = None,
    webhook_url: Annotated[
        str | None, typer.Option("--webhook-url", help="POST alerts here (FINSENT_WEBHOOK_URL).")
    ] = None,
) -> None:
    """Evaluate the alert rules without a worker (default rules are installed when none exist)."""
    from alerts.defaults import install_default_rules
    from alerts.engine import evaluate_rules
    from alerts.webhook import WebhookNotifier

    settings = load_settings(database_url=database_url, webhook_url=webhook_url)
    with _alerts_errors():
        engine = _engine(settings)
        notifier = WebhookNotifier(settings.webhook_url) if settings.webhook_url else None
        if install_default_rules(engine):
            typer.echo("installed the default alert rules (`finsent rules list`)")
        try:
            while True:
                for ev in evaluate_rules(engine, notifier=notifier):
                    value = "n/a" if ev.value is None else f"{ev.value:.3f}"
                    typer.echo(
                        f"{ev.at.isoformat()} {ev.event} alert {ev.alert_id}: rule {ev.rule_name}"
                        f" on {ev.ticker}, value {value}"
                    )
                if once:
                    break
                time.sleep(interval)
        except KeyboardInterrupt:
            pass
        finally:
            if notifier is not None:
                notifier.close(timeout_s=10.0)
            engine.dispose()


@rules_app.command("list")
def rules_list(
    database_url: DatabaseUrl = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
) -> None:
    """Every rule with its definition and open alert count."""
    from rich.console import Console
    from rich.table import Table

    from alerts.rules import spec_from_row
    from storage import queries

    with _alerts_errors():
        rows = queries.list_rules(_engine(load_settings(database_url=database_url)))
    if as_json:
        for r in rows:
            r = {k: v for k, v in r.items() if k != "state"}
            typer.echo(json.dumps(r, default=str))
        return
    table = Table("id", "name", "kind", "enabled", "open", "definition")
    for r in rows:
        table.add_row(
            str(r["id"]), r["name"], r["kind"], "yes" if r["enabled"] else "no",
            str(r["open_alerts"]), spec_from_row(r).describe(),
        )
    Console(width=max(Console().width, 140)).print(table)


@rules_app.command("add")
def rules_add(
    name: Annotated[str, typer.Argument(help="Unique rule name.")],
    kind: Annotated[str, typer.Option(help="mean_below|mean_above|neg_share_above|volume_z")],
    threshold: Annotated[float, typer.Option(help="Fires when the value is past this.")],
    scope: Annotated[str, typer.Option(help="ticker|kind|market")] = "ticker",
    target: Annotated[
        str | None, typer.Option(help="A ticker or kind; none = each ticker/kind.")
    ] = None,
    resolve: Annotated[
        float | None, typer.Option(help="Resolve threshold (hysteresis); default = threshold.")
    ] = None,
    window: Annotated[str, typer.Option(help="Window length, e.g. 1h, 30m.")] = "1h",
    min_count: Annotated[int, typer.Option(help="Documents needed in the window.")] = 5,
    for_: Annotated[str, typer.Option("--for", help="Breach must hold this long.")] = "0",
    cooldown: Annotated[str, typer.Option(help="Quiet time after a resolve.")] = "0",
    disabled: Annotated[bool, typer.Option("--disabled", help="Store it disabled.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Add a rule; a bad definition is refused with one line and exit code 2."""
    from alerts.rules import add_rule, validate_rule

    with _alerts_errors():
        spec = validate_rule(
            name=name, kind=kind, scope=scope, target=target, threshold=threshold,
            resolve_threshold=resolve, window_s=window, min_count=min_count, for_s=for_,
            cooldown_s=cooldown, enabled=not disabled,
        )
        rule_id = add_rule(_engine(load_settings(database_url=database_url)), spec)
    typer.echo(f"rule {rule_id} {spec.name}: {spec.describe()}")


@rules_app.command("disable")
def rules_disable(
    rule: Annotated[str, typer.Argument(help="Rule name or id.")],
    database_url: DatabaseUrl = None,
) -> None:
    """Stop evaluating a rule; its open alerts are resolved."""
    from alerts.rules import set_rule_enabled

    with _alerts_errors():
        closed = set_rule_enabled(_engine(load_settings(database_url=database_url)), rule, False)
    typer.echo(f"rule {rule} disabled ({closed} open alert(s) resolved)")


@rules_app.command("enable")
def rules_enable(
    rule: Annotated[str, typer.Argument(help="Rule name or id.")],
    database_url: DatabaseUrl = None,
) -> None:
    """Evaluate a disabled rule again."""
    from alerts.rules import set_rule_enabled

    with _alerts_errors():
        set_rule_enabled(_engine(load_settings(database_url=database_url)), rule, True)
    typer.echo(f"rule {rule} enabled")


@prices_app.command("load")
def prices_load(
    path: Annotated[
        Path | None,
        typer.Argument(help="A price CSV or a folder of them (default: StockNet price_raw)."),
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Load daily OHLCV CSVs (Date,Open,High,Low,Close,Adj Close,Volume; one file per ticker)."""
    from storage.prices import load_prices

    settings = load_settings(database_url=database_url)
    source = path or settings.data_dir / "stocknet" / "price_raw"
    with _alerts_errors():
        result = load_prices(_engine(settings), source)
    typer.echo(
        f"loaded {result.rows} daily prices for {len(result.tickers)} ticker(s) from "
        f"{result.files} file(s) in {source} ({result.skipped} empty row(s) skipped)"
    )


def dashboard(
    port: Annotated[int | None, typer.Option(help="Port (FINSENT_DASHBOARD_PORT).")] = None,
    address: Annotated[
        str, typer.Option(help="Listen address; 0.0.0.0 exposes it beyond this machine.")
    ] = "127.0.0.1",
    database_url: DatabaseUrl = None,
) -> None:
    """Serve the Streamlit dashboard (headless); settings reach it as FINSENT_* variables."""
    from dashboard.launch import streamlit_command

    settings = load_settings(database_url=database_url, dashboard_port=port)
    env = dict(os.environ)
    env["FINSENT_DATABASE_URL"] = settings.database_url
    env["FINSENT_DASHBOARD_PORT"] = str(settings.dashboard_port)
    cmd = streamlit_command(settings.dashboard_port, address)
    typer.echo(f"dashboard on http://{address}:{settings.dashboard_port}")
    sys.stdout.flush()
    child = subprocess.Popen(cmd, env=env)

    def _stop(signum: int, _frame: object) -> None:  # a supervisor's SIGTERM reaches streamlit
        child.terminate()

    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        code = child.wait()
    except KeyboardInterrupt:
        child.terminate()
        code = child.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
    if code not in (0, -signal.SIGTERM, -signal.SIGINT):
        raise typer.Exit(code)
