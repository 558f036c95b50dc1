"""Alerts: open and resolved alerts, acknowledge, evidence documents, and a toast when a new
alert opens while the page is open.

The alert engine runs in the workers (or `finsent alerts`), not here: alerts fire whether or
not anyone watches. This page only polls the table (a fragment every few seconds).
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard import data
from dashboard.widgets import documents_table
from storage import queries

POLL_S = 5.0
SEEN_KEY = "alerts_seen_id"
OPEN_COLUMNS = ["id", "rule_name", "ticker", "opened_at", "value", "last_value", "acknowledged_at"]
RESOLVED_COLUMNS = ["id", "rule_name", "ticker", "opened_at", "resolved_at", "value", "last_value"]

ALERT_COLUMNS_CONFIG = {
    "rule_name": st.column_config.TextColumn("rule"),
    "opened_at": st.column_config.DatetimeColumn("opened (UTC)", format="YYYY-MM-DD HH:mm"),
    "resolved_at": st.column_config.DatetimeColumn("resolved (UTC)", format="YYYY-MM-DD HH:mm"),
    "acknowledged_at": st.column_config.DatetimeColumn("acknowledged", format="YYYY-MM-DD HH:mm"),
    "value": st.column_config.NumberColumn("value at open", format="%+.3f"),
    "last_value": st.column_config.NumberColumn("latest value", format="%+.3f"),
}

url = data.settings().database_url

st.title("Alerts")
st.caption(
    "Alerts are raised by the workers after each committed batch (or by `finsent alerts`), "
    "whether or not this page is open. Times are data time (UTC)."
)


def _toast_new_alerts() -> None:
    """A toast per alert opened since this session last looked (none on first load)."""
    newest = data.newest_alert_id(url)
    seen = st.session_state.get(SEEN_KEY)
    st.session_state[SEEN_KEY] = newest
    if seen is None or newest <= seen:
        return
    data.alerts_changed()
    for a in queries.list_alerts(data.engine(url), status="open", limit=50):
        if a["id"] > seen:
            value = "" if a["value"] is None else f" (value {a['value']:+.3f})"
            st.toast(f"New alert: {a['rule_name']} on {a['ticker']}{value}",
                     icon=":material/notifications_active:")


def _label(a: dict[str, Any]) -> str:
    return f"#{a['id']} {a['rule_name']} on {a['ticker']} ({a['status']})"


def _details(a: dict[str, Any]) -> None:
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Value when opened", "n/a" if a["value"] is None else f"{a['value']:+.3f}")
    c2.metric("Latest value", "n/a" if a["last_value"] is None else f"{a['last_value']:+.3f}")
    c3.metric("Threshold", f"{a['threshold']:+g}")
    c4.metric("Status", a["status"])
    st.caption(
        f"rule {a['rule_name']} ({a['rule_kind']}, {a['rule_scope']}) · opened "
        f"{a['opened_at']:%Y-%m-%d %H:%M}"
        + (f" · resolved {a['resolved_at']:%Y-%m-%d %H:%M}" if a["resolved_at"] else "")
        + (f" · acknowledged {a['acknowledged_at']:%Y-%m-%d %H:%M}" if a["acknowledged_at"]
           else "")
    )
    notice = st.session_state.pop("alerts_notice", None)
    if notice:
        st.success(notice)
    clicked = a["acknowledged_at"] is None and st.button("Acknowledge", key=f"ack_{a['id']}")
    if clicked and queries.acknowledge_alert(data.engine(url), a["id"]):
        data.alerts_changed()
        st.session_state["alerts_notice"] = f"Alert #{a['id']} acknowledged."
        st.rerun()
    st.markdown("**Evidence** — the window's documents that best show why it fired")
    documents_table(data.documents(url, tuple(a["evidence"] or ())), key=f"evidence_{a['id']}")


@st.fragment(run_every=POLL_S)
def board() -> None:
    _toast_new_alerts()
    open_rows = data.alerts(url, "open")
    resolved_rows = data.alerts(url, "resolved", 100)
    c1, c2, c3 = st.columns(3)
    c1.metric("Open", len(open_rows))
    c2.metric("Unacknowledged", sum(1 for a in open_rows if a["acknowledged_at"] is None))
    c3.metric("Resolved (latest 100)", len(resolved_rows))

    st.subheader("Open alerts")
    if open_rows:
        st.dataframe(data.frame_rows(open_rows, OPEN_COLUMNS), hide_index=True, key="open_table",
                     column_config=ALERT_COLUMNS_CONFIG)
    else:
        st.caption("No open alerts.")
    st.subheader("Resolved alerts")
    if resolved_rows:
        st.dataframe(
            data.frame_rows(resolved_rows, RESOLVED_COLUMNS), hide_index=True,
            key="resolved_table", column_config=ALERT_COLUMNS_CONFIG,
        )
    else:
        st.caption("No resolved alerts yet.")

    every = open_rows + resolved_rows
    if not every:
        return
    st.subheader("Alert details")
    by_id = {a["id"]: a for a in every}
    chosen = st.selectbox(
        "Alert", list(by_id), format_func=lambda i: _label(by_id[i]), key="alert_pick"
    )
    _details(by_id[chosen])


board()
