"""SQL: a read-only console on the same guard as `finsent sql` (one SELECT/WITH/EXPLAIN, a
time limit, a row cap, a read-only connection), a schema browser and CSV download."""

from __future__ import annotations

import csv
import io

import streamlit as st

from dashboard import data
from storage.exceptions import StorageError
from storage.sqlrunner import QueryResult, run_readonly

EXAMPLES = {
    "Hourly sentiment of one ticker": (
        "SELECT bucket, n, mean_score, negative_share\nFROM ticker_sentiment_hour\n"
        "WHERE ticker = 'AAPL'\nORDER BY bucket DESC\nLIMIT 48"
    ),
    "Most mentioned tickers": (
        "SELECT ticker, COUNT(*) AS n\nFROM mentions\nGROUP BY ticker\nORDER BY n DESC\nLIMIT 20"
    ),
    "Most negative documents": (
        "SELECT d.event_at, d.source, s.score, d.text\nFROM documents d\n"
        "JOIN scores s ON s.document_id = d.id\nORDER BY s.score\nLIMIT 20"
    ),
    "Open alerts": (
        "SELECT a.id, r.name, a.ticker, a.opened_at, a.value\nFROM alerts a\n"
        "JOIN alert_rules r ON r.id = a.rule_id\nWHERE a.status = 'open'"
    ),
}



def unique_names(columns: list[str]) -> list[str]:
    """`SELECT a.id, r.id` gives two 'id' columns; a table needs distinct names."""
    seen: dict[str, int] = {}
    out = []
    for c in columns:
        seen[c] = seen.get(c, 0) + 1
        out.append(c if seen[c] == 1 else f"{c}_{seen[c]}")
    return out


config = data.settings()
url = config.database_url

st.title("SQL console")
st.caption(
    f"Read-only: one SELECT, WITH, EXPLAIN or VALUES statement; at most {config.sql_timeout_s:g} s "
    f"(FINSENT_SQL_TIMEOUT_S) and {config.sql_max_rows:,} rows (FINSENT_SQL_MAX_ROWS)."
)

query_col, schema_col = st.columns([3, 1])
with schema_col:
    st.subheader("Schema")
    for item in data.schema(url):
        with st.expander(f"{item['name']} ({item['type']})"):
            st.markdown("\n".join(f"- `{c['column']}` {c['type']}" for c in item["columns"]))

with query_col:
    example = st.selectbox("Examples", list(EXAMPLES), key="sql_example")
    sql = st.text_area("Query", value=EXAMPLES[example], height=180, key=f"sql_text_{example}")
    if st.button("Run", type="primary", key="sql_run"):
        try:
            st.session_state["sql_result"] = run_readonly(
                url,
                sql,
                timeout_s=config.sql_timeout_s,
                max_rows=config.sql_max_rows,
                readonly_url=config.database_readonly_url,
            )
            st.session_state.pop("sql_error", None)
        except StorageError as e:
            st.session_state.pop("sql_result", None)
            st.session_state["sql_error"] = str(e)
    if "sql_error" in st.session_state:
        st.error(st.session_state["sql_error"])
    result: QueryResult | None = st.session_state.get("sql_result")
    if result is not None:
        note = f"{len(result.rows):,} row(s) in {result.elapsed_s * 1000:.0f} ms"
        if result.truncated:
            note += f" — truncated at the row cap ({config.sql_max_rows:,})"
        st.caption(note)
        names = unique_names(result.columns)
        table = [dict(zip(names, row, strict=True)) for row in result.rows]
        st.dataframe(table, hide_index=True, key="sql_table")
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(result.columns)
        writer.writerows(result.rows)
        st.download_button(
            "Download CSV", buffer.getvalue(), file_name="finsent-query.csv", mime="text/csv",
            key="sql_csv", on_click="ignore",
        )
