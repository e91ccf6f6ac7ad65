"""Finetune Studio dashboard: navigation and the shared sidebar. Every page lives in app_pages/, every decision in
engine/.

The page folder is not called `pages/`: with that name Streamlit 1.67 falls back to its legacy multipage mode when a
page link is clicked in a real browser, and the shared sidebar disappears (seen in tests/test_browser.py).

    studio ui            (or: make run)
"""

import streamlit as st

from ui import sidebar

st.set_page_config(page_title="Finetune Studio", page_icon=":material/tune:", layout="wide")

navigation = st.navigation([
    st.Page("app_pages/home.py", title="Notebook", icon=":material/menu_book:", default=True),
    st.Page("app_pages/data.py", title="1 · Data", icon=":material/upload_file:"),
    st.Page("app_pages/quality.py", title="2 · Quality", icon=":material/fact_check:"),
    st.Page("app_pages/train.py", title="3 · Train", icon=":material/model_training:"),
    st.Page("app_pages/runs.py", title="4 · Runs", icon=":material/monitoring:"),
    st.Page("app_pages/evaluate.py", title="5 · Evaluate", icon=":material/balance:"),
    st.Page("app_pages/playground.py", title="Playground", icon=":material/forum:"),
])
sidebar.render()
navigation.run()
