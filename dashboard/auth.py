"""The optional password gate: with FINSENT_DASHBOARD_PASSWORD set, no page runs before it.

The gate is a navigation with a single login page, so an unauthenticated session cannot
reach another page by URL either (only registered pages run). The password is compared in
constant time; success is remembered in the session only.
"""

from __future__ import annotations

import hmac

import streamlit as st

SESSION_KEY = "finsent_authenticated"


def password_ok(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def is_authenticated(password: str | None) -> bool:
    return password is None or bool(st.session_state.get(SESSION_KEY))


def login_page(password: str) -> None:
    """The only page of an unauthenticated session."""
    st.title("finsent")
    st.write("This dashboard is protected. Enter the password to continue.")
    with st.form("login"):
        given = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Log in")
    if submitted:
        if password_ok(given, password):
            st.session_state[SESSION_KEY] = True
            st.rerun()
        else:
            st.error("Wrong password.")


def logout_button() -> None:
    if st.sidebar.button("Log out", key="logout"):
        st.session_state[SESSION_KEY] = False
        st.rerun()
