"""Rules: the alert rules, create and edit them (validated like `finsent rules add`), and
enable or disable them."""

from __future__ import annotations

from typing import Any

import streamlit as st

from alerts import rules as rule_ops
from alerts.exceptions import AlertsError
from alerts.rules import DOC_KINDS, KINDS, SCOPES, spec_from_row, validate_rule
from dashboard import data

url = data.settings().database_url
engine = data.engine(url)

KIND_HELP = (
    "mean_below / mean_above: mean score over the window; neg_share_above: share of negative "
    "documents; volume_z: document count against the previous 24 windows (z-score)."
)
NEW_RULE: dict[str, Any] = {
    "name": "", "kind": "mean_below", "scope": "ticker", "target": None, "threshold": -0.3,
    "resolve_threshold": -0.1, "window_s": 3600, "min_count": 5, "for_s": 300,
    "cooldown_s": 1800,
}

st.title("Alert rules")
NOTICE_KEY = "rules_notice"
if notice := st.session_state.pop(NOTICE_KEY, None):
    st.success(notice)


def _fmt(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def rule_form(key: str, start: dict[str, Any], submit: str) -> dict[str, Any] | None:
    """The rule's fields; returns them when submitted, else None."""
    with st.form(key):
        name = st.text_input("Name", value=start["name"], key=f"{key}_name")
        c1, c2, c3 = st.columns(3)
        kind = c1.selectbox("Kind", KINDS, index=KINDS.index(start["kind"]), help=KIND_HELP,
                            key=f"{key}_kind")
        scope = c2.selectbox("Scope", SCOPES, index=SCOPES.index(start["scope"]),
                             key=f"{key}_scope",
                             help=f"ticker: per ticker; kind: per source kind "
                             f"({', '.join(DOC_KINDS)}); market: everything.")
        target = c3.text_input("Target (empty = each ticker / kind)",
                               value=start["target"] or "", key=f"{key}_target")
        c1, c2, c3 = st.columns(3)
        threshold = c1.number_input("Threshold", value=float(start["threshold"]), step=0.05,
                                    format="%.3f", key=f"{key}_threshold")
        resolve = c2.number_input(
            "Resolve threshold (empty = threshold)",
            value=None if start["resolve_threshold"] is None else float(start["resolve_threshold"]),
            step=0.05, format="%.3f", key=f"{key}_resolve",
            help="Hysteresis: the alert resolves only past this value.",
        )
        min_count = c3.number_input("Min documents", value=int(start["min_count"]), step=1,
                                    key=f"{key}_min_count")
        c1, c2, c3 = st.columns(3)
        window = c1.text_input("Window", value=_fmt(start["window_s"]), key=f"{key}_window",
                               help="e.g. 30m, 1h, 1d")
        for_ = c2.text_input("For", value=_fmt(start["for_s"]), key=f"{key}_for",
                             help="How long the breach must hold before the alert opens.")
        cooldown = c3.text_input("Cooldown", value=_fmt(start["cooldown_s"]),
                                 key=f"{key}_cooldown",
                                 help="Quiet time after a resolve before it may open again.")
        if not st.form_submit_button(submit):
            return None
    return {
        "name": name.strip(), "kind": kind, "scope": scope, "target": target or None,
        "threshold": threshold, "resolve_threshold": resolve, "min_count": int(min_count),
        "window_s": window, "for_s": for_, "cooldown_s": cooldown,
    }


rows = data.rules(url)
if rows:
    st.dataframe(
        [
            {"id": r["id"], "name": r["name"], "enabled": r["enabled"],
             "open alerts": r["open_alerts"], "definition": spec_from_row(r).describe()}
            for r in rows
        ],
        hide_index=True,
        key="rules_table",
        column_config={"definition": st.column_config.TextColumn(width="large")},
    )
else:
    st.info("No rules yet. The workers install the default rules at start; or create one below.")

create_tab, edit_tab = st.tabs(["Create a rule", "Edit, enable or disable"])
with create_tab:
    fields = rule_form("create_rule", NEW_RULE, "Create rule")
    if fields is not None:
        try:
            spec = validate_rule(**fields)
            rule_ops.add_rule(engine, spec)
        except AlertsError as e:
            st.error(str(e))
        else:
            data.alerts_changed()
            st.session_state[NOTICE_KEY] = f"Rule {spec.name} created: {spec.describe()}"
            st.rerun()

with edit_tab:
    if not rows:
        st.caption("Nothing to edit yet.")
    else:
        by_id = {r["id"]: r for r in rows}
        chosen = st.selectbox(
            "Rule", list(by_id), key="edit_pick",
            format_func=lambda i: f"{by_id[i]['name']} ({'on' if by_id[i]['enabled'] else 'off'})",
        )
        row = by_id[chosen]
        fields = rule_form(f"edit_rule_{chosen}", row, "Save changes")
        if fields is not None:
            try:
                spec = validate_rule(**fields, enabled=row["enabled"])
                rule_ops.update_rule(engine, chosen, spec)
            except AlertsError as e:
                st.error(str(e))
            else:
                data.alerts_changed()
                st.session_state[NOTICE_KEY] = f"Rule {spec.name} saved: {spec.describe()}"
                st.rerun()
        label = "Disable rule" if row["enabled"] else "Enable rule"
        if st.button(label, key=f"toggle_{chosen}"):
            closed = rule_ops.set_rule_enabled(engine, chosen, not row["enabled"])
            data.alerts_changed()
            st.session_state[NOTICE_KEY] = (
                f"Rule {row['name']} {'disabled' if row['enabled'] else 'enabled'}"
                + (f"; {closed} open alert(s) resolved." if closed else ".")
            )
            st.rerun()
