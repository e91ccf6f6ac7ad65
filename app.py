"""Finetune Studio dashboard: navigation and the shared sidebar. Every page lives in pages/, every decision in engine/.

    studio ui            (or: make run)
"""

import streamlit as st

from ui import sidebar

st.set_page_config(page_title="Finetune Studio", page_icon=":material/tune:", layout="wide")

navigation = st.navigation([
    st.Page("pages/home.py", title="Notebook", icon=":material/menu_book:", default=True),
    st.Page("pages/data.py", title="1 · Data", icon=":material/upload_file:"),
    st.Page("pages/quality.py", title="2 · Quality", icon=":material/fact_check:"),
])
sidebar.render()
navigation.run()
