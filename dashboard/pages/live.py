"""Live feed: the newest scored documents, refreshed in place by one fragment.

Only the fragment reruns on its timer, so the rest of the page (and its widgets) stays
still; the table keeps its key, so Streamlit updates it rather than rebuilding it (no
flicker). Pausing sets ``run_every`` to None: the feed freezes until resumed.
"""

from __future__ import annotations

from datetime import datetime

import streamlit as st

from dashboard import data
from dashboard.widgets import documents_table

REFRESH_S = 2.0
ROWS = 50

url = data.settings().database_url

st.title("Live feed")
left, right = st.columns([1, 3])
with left:
    live = st.toggle("Live updates", value=True, key="live_on",
                     help=f"Refresh every {REFRESH_S:g} s; switch off to pause and read.")
with right:
    st.caption(
        f"newest {ROWS} scores written, refreshed every {REFRESH_S:g} s"
        if live else "paused: the feed is frozen until you switch live updates back on"
    )


@st.fragment(run_every=REFRESH_S if live else None)
def feed() -> None:
    rows = data.live_feed(url, ROWS)
    if not rows:
        st.info("Waiting for the first scored documents…")
        return
    newest = rows[0]["scored_at"]
    neg = sum(1 for r in rows if r["label"] == "negative")
    c1, c2, c3 = st.columns(3)
    c1.metric("Newest score written", f"{newest:%H:%M:%S}" if isinstance(newest, datetime)
              else str(newest))
    c2.metric("Negative in view", f"{neg}/{len(rows)}")
    c3.metric("Mean score in view", f"{sum(r['score'] for r in rows) / len(rows):+.3f}")
    documents_table(rows, key="live_table", height=600)


feed()
