"""Finetune Studio dashboard: navigation and the shared sidebar. Every page lives in app_pages/, every decision in
engine/.

The page folder is not called `pages/`: with that name Streamlit 1.67 falls back to its legacy multipage mode when a
page link is clicked in a real browser, and the shared sidebar disappears (seen in tests/test_browser.py).

Navigation depends on the role: a signed-out visitor gets only Sign in; a reviewer only their review queue; analysts
and admins every page (and admins the Users page). Each page checks the role again itself.

    studio ui            (or: make run)
"""

import streamlit as st

from ui import session, sidebar

st.set_page_config(page_title="Finetune Studio", page_icon=":material/tune:", layout="wide")

user = session.current_user()
reviews = st.Page("app_pages/my_reviews.py", title="My reviews", icon=":material/rate_review:")
if user is None:
    pages = [st.Page("app_pages/signin.py", title="Sign in", icon=":material/login:", default=True)]
elif user.role == "reviewer":
    pages = [st.Page("app_pages/my_reviews.py", title="My reviews", icon=":material/rate_review:", default=True)]
else:
    pages = [
        st.Page("app_pages/home.py", title="Notebook", icon=":material/menu_book:", default=True),
        st.Page("app_pages/data.py", title="1 · Data", icon=":material/upload_file:"),
        st.Page("app_pages/quality.py", title="2 · Quality", icon=":material/fact_check:"),
        st.Page("app_pages/train.py", title="3 · Train", icon=":material/model_training:"),
        st.Page("app_pages/runs.py", title="4 · Runs", icon=":material/monitoring:"),
        st.Page("app_pages/evaluate.py", title="5 · Evaluate", icon=":material/balance:"),
        st.Page("app_pages/playground.py", title="Playground", icon=":material/forum:"),
        st.Page("app_pages/review.py", title="6 · Review", icon=":material/reviews:"),
        st.Page("app_pages/ab.py", title="7 · A/B", icon=":material/science:"),
        reviews,
    ]
    if user.role == "admin":
        pages.append(st.Page("app_pages/users.py", title="Users", icon=":material/group:"))
navigation = st.navigation(pages)
sidebar.render(user)
navigation.run()
