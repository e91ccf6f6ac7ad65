"""Streamlit helpers shared by the pages: selection state, the sidebar, error display, finding rendering.

Only presentation lives here; every decision and computation comes from `engine`.
"""
