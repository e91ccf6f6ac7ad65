"""Safe text: anything that may carry user or model text is escaped before it reaches st.markdown."""

from __future__ import annotations

import re

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def md_escape(text: str) -> str:
    """Backslash-escape Markdown syntax so text shows literally (no links, images, HTML or formatting)."""
    return _MD_SPECIAL.sub(r"\\\1", str(text))
