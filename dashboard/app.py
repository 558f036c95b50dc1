"""finsent dashboard entry point: `finsent dashboard` runs `streamlit run dashboard/app.py`.

This script runs before every page: page config, the optional password gate, the navigation.
Pages live in ``pages/``; each reads the store through ``dashboard.data`` only.
"""

from __future__ import annotations

import streamlit as st

from dashboard import auth
from dashboard.data import settings
from storage.db import safe_url

st.set_page_config(page_title="finsent", page_icon=":material/monitoring:", layout="wide")

PAGES = [
    st.Page("pages/market.py", title="Market", icon=":material/monitoring:", default=True),
    st.Page("pages/ticker.py", title="Ticker", icon=":material/search:"),
    st.Page("pages/live.py", title="Live feed", icon=":material/bolt:"),
    st.Page("pages/alerts.py", title="Alerts", icon=":material/notifications:"),
    st.Page("pages/rules.py", title="Rules", icon=":material/rule:"),
    st.Page("pages/sql.py", title="SQL", icon=":material/database:"),
]

config = settings()
password = (
    config.dashboard_password.get_secret_value() if config.dashboard_password else None
)



def _login() -> None:
    auth.login_page(password or "")


if password and not auth.is_authenticated(password):
    st.navigation([st.Page(_login, title="Log in", icon=":material/lock:", url_path="login")]).run()
else:
    if password:
        auth.logout_button()
    st.sidebar.caption(f"store: {safe_url(config.database_url)}")
    st.navigation(PAGES).run()
