"""Finetune Studio dashboard: navigation and the shared sidebar. Every page lives in pages/, every decision in
engine/. (With st.navigation the pages/ folder is not auto-discovered: tests/test_browser.py clicks every page link
in Chromium and checks that the shared sidebar stays.)

Navigation depends on the role: a signed-out visitor gets only Sign in; a reviewer only their review queue; analysts
and admins every page (and admins the Users page). Each page checks the role again itself. Every page's address
exists for everyone, so a refresh or a typed address never meets "page not found": a visitor gets the sign-in form
there (and, once signed in, the page itself), a reviewer a pointer to their queue.

    studio ui            (or: make run)
"""

import streamlit as st

from ui import session, sidebar, signin

st.set_page_config(page_title="Finetune Studio", page_icon=":material/tune:", layout="wide")

# (file, title, icon, roles that see it); the first is the default page of analysts and admins
PAGES = [
    ("pages/home.py", "Notebook", ":material/menu_book:", ("admin", "analyst")),
    ("pages/data.py", "1 · Data", ":material/upload_file:", ("admin", "analyst")),
    ("pages/quality.py", "2 · Quality", ":material/fact_check:", ("admin", "analyst")),
    ("pages/train.py", "3 · Train", ":material/model_training:", ("admin", "analyst")),
    ("pages/runs.py", "4 · Runs", ":material/monitoring:", ("admin", "analyst")),
    ("pages/evaluate.py", "5 · Evaluate", ":material/balance:", ("admin", "analyst")),
    ("pages/playground.py", "Playground", ":material/forum:", ("admin", "analyst")),
    ("pages/review.py", "6 · Review", ":material/reviews:", ("admin", "analyst")),
    ("pages/ab.py", "7 · A/B", ":material/science:", ("admin", "analyst")),
    ("pages/models.py", "8 · Models", ":material/deployed_code:", ("admin", "analyst")),
    ("pages/monitor.py", "9 · Monitor", ":material/query_stats:", ("admin", "analyst")),
    ("pages/my_reviews.py", "My reviews", ":material/rate_review:", ("admin", "analyst", "reviewer")),
    ("pages/users.py", "Users", ":material/group:", ("admin",)),
]


def url_path(file: str) -> str:
    return file.removeprefix("pages/").removesuffix(".py")


user = session.current_user()
if user is None:
    allowed = []
    pages = [st.Page("pages/signin.py", title="Sign in", icon=":material/login:", default=True)]
    stand_in = signin.render  # every other address shows the sign-in form, and the page itself once signed in
else:
    allowed = [p for p in PAGES if user.role in p[3]]
    # Streamlit serves its default page at "/" and knows it by no other address: a reviewer opening /my_reviews (the
    # address the navigation shows) met "Page not found". So "/" is a hidden copy of the role's first page, and
    # every page in the navigation keeps its own address.
    file, title, icon, _ = allowed[0]
    pages = [st.Page(file, title=title, icon=icon, url_path="start", default=True, visibility="hidden")]
    pages += [st.Page(f, title=t, icon=i) for f, t, i, _ in allowed]
    stand_in = signin.not_for_this_role
pages += [st.Page(stand_in, title=title, url_path=url_path(file), visibility="hidden")
          for file, title, _, _ in PAGES if file not in {p[0] for p in allowed}]
navigation = st.navigation(pages, expanded=True)  # every step in view: collapsed, the last pages hid behind "more"
session.sync_cookie()
sidebar.render(user)
navigation.run()
